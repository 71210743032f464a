//! `sfdiag lab [SCENARIO] [--list] [--root DIR] [--pcap FILE] [--keylog FILE] [--tls-version V]`: flags -> `sfdiag::lab::run` on a
//! tokio runtime, its lines on stdout. Exit 0 when the story ran as written, 1 when an appliance
//! did something the story did not expect (the message says what), 2 for setup errors.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use sfdiag::lab::{self, LabError, LabOptions, Out, Scenario};

/// Flags of `sfdiag lab`.
#[derive(Debug, Args)]
pub(crate) struct LabArgs {
    /// The story to run (see --list); default: expiry.
    #[arg(value_name = "SCENARIO")]
    pub scenario: Option<String>,
    /// Name the scenarios and exit.
    #[arg(long)]
    pub list: bool,
    /// Build the lab PKI here and keep it (default: a temporary folder, removed at the end).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Write the capture of every tunnel here (default: inside the lab root).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Do not analyze the capture at the end.
    #[arg(long)]
    pub no_analysis: bool,
    /// Write the NSS key log of every tunnel here (default: beside the capture, e.g.
    /// lab.keylog for lab.pcap).
    #[arg(long, value_name = "FILE")]
    pub keylog: Option<PathBuf>,
    /// TLS version every appliance runs: 1.2 (before 7.6) or 1.3 (7.6+). Default: the
    /// story's (1.2; 1.3 for upgrade-76).
    #[arg(long, value_name = "1.2|1.3")]
    pub tls_version: Option<sfdiag::pki::conf::TlsVersion>,
}

pub(crate) fn run(a: LabArgs) -> anyhow::Result<ExitCode> {
    if a.list {
        lab::render_list(&mut std::io::stdout().lock())?;
        return Ok(ExitCode::SUCCESS);
    }
    let scenario = match a.scenario.as_deref() {
        None => Scenario::Expiry,
        Some(name) => match Scenario::from_name(name) {
            Some(s) => s,
            None => bail!(
                "unknown scenario {name:?}: expected one of {}",
                Scenario::ALL.map(|s| s.name()).join(", ")
            ),
        },
    };
    let opts = LabOptions {
        root: a.root,
        pcap: a.pcap,
        no_analysis: a.no_analysis,
        keylog: a.keylog,
        tls_version: a.tls_version,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match rt.block_on(lab::run(scenario, &opts, Out::new(std::io::stdout()))) {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e @ (LabError::Unexpected(_) | LabError::Timeout { .. })) => {
            eprintln!("sfdiag lab {}: {e}", scenario.name());
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e).with_context(|| format!("lab {}", scenario.name())),
    }
}
