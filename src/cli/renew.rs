//! `sfdiag pki renew` and `sfdiag pki copy`: the renewal runbook's two scripts on a lab root.
//!
//! Glue only: `renew` reads the clock (or `--at`), takes the root (`pki::renew::preflight`:
//! its lock, the recovery of a dead run, one load), asks for confirmation, then
//! `tunnel::renewal::renew_and_push` renews, pushes through a running `serve` and records what
//! could not be pushed; `copy` parses `devices.csv` and runs `pki::copy::copy` over the local
//! transport. `report::renew` and `report::copy` lay out what they print. Exit codes: 0 done
//! for every device, 1 some device was not done (listed in FAILED_PUSH / reported by copy), the
//! user declined, or a renewal was committed but could not be finished (the next run finishes
//! it), 2 refusal or setup error: nothing changed.
//!
//! `--fault-after N` (hidden, for tests only) kills the process with SIGKILL before the
//! (N+1)th file-system step of the change, as a crash or `kill -9` would: no cleanup runs.
//! With `--fault-kind enospc` that step fails with "No space left on device" instead. A flag
//! and not an environment variable, so nothing in a user's environment can turn it on; the
//! library takes the hook as an argument (`pki::fsio::Faults`).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};
use clap::builder::TypedValueParser;
use clap::{Args, ValueEnum};
use time::OffsetDateTime;

use sfdiag::files;
use sfdiag::pki::copy::{self, LocalTransport};
use sfdiag::pki::fsio::Faults;
use sfdiag::pki::layout::PkiRoot;
use sfdiag::pki::renew::{self, RenewOptions};
use sfdiag::pki::{PkiError, Validity};
use sfdiag::report;
use sfdiag::tunnel::renewal;

use super::time_arg::parse_time;

/// Flags of `pki renew`.
#[derive(Debug, Args)]
pub(crate) struct RenewArgs {
    /// The lab root made by `pki init`.
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// Which FMC of an HA pair renews its InternalCA (its folder name; default: the primary,
    /// whose peers are the devices and the HA secondary; the secondary's are the devices).
    #[arg(long, value_name = "NAME")]
    pub fmc: Option<String>,
    /// Do not ask for confirmation (scripts). Without it, stdin must be a terminal.
    #[arg(long)]
    pub yes: bool,
    /// Act as if the clock showed TIME (RFC 3339 or +90d): days left, notBefore, log stamps
    /// and the var/tmp/certs/<unix time> folder.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub at: Option<String>,
    /// notBefore of the new InternalCA and certificates (default: now / --at).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub not_before: Option<String>,
    /// Lifetime in days of the new InternalCA and certificates.
    #[arg(long, value_name = "N", default_value_t = 3650)]
    pub days: u32,
    /// RSA key size for every new key.
    #[arg(long, value_name = "BITS", default_value_t = 2048,
          value_parser = clap::builder::PossibleValuesParser::new(["2048", "3072", "4096"])
              .map(|s| s.parse::<u32>().expect("listed values are numbers")))]
    pub key_bits: u32,
    /// The running serve's control socket (default: ROOT/<FMC>/var/run/sftunnel.sock).
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,
    #[command(flatten)]
    pub fault: FaultArgs,
}

/// Test-only fault injection (hidden from --help; see the module doc).
#[derive(Debug, Args)]
pub(crate) struct FaultArgs {
    /// TEST ONLY: stop before the (N+1)th file-system step of the change.
    #[arg(long, value_name = "N", hide = true)]
    pub fault_after: Option<usize>,
    /// TEST ONLY: how that step stops.
    #[arg(long, value_enum, default_value_t = FaultKind::Kill, hide = true)]
    pub fault_kind: FaultKind,
}

/// How a `--fault-after` step stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum FaultKind {
    /// SIGKILL to itself.
    Kill,
    /// The step fails with ENOSPC.
    Enospc,
}

impl FaultArgs {
    fn faults(&self) -> Faults {
        let Some(after) = self.fault_after else {
            return Faults::none();
        };
        let kind = self.fault_kind;
        let steps = AtomicUsize::new(0);
        Faults::new(move |step| {
            if steps.fetch_add(1, Ordering::SeqCst) < after {
                return Ok(());
            }
            match kind {
                FaultKind::Kill => {
                    tracing::debug!(?step, "--fault-after: killed");
                    let me = rustix::process::getpid();
                    let _ = rustix::process::kill_process(me, rustix::process::Signal::KILL);
                    // SIGKILL cannot be caught: never reached.
                    std::process::abort()
                }
                FaultKind::Enospc => Err(std::io::Error::from_raw_os_error(28)),
            }
        })
    }
}

/// Flags of `pki copy`.
#[derive(Debug, Args)]
pub(crate) struct CopyArgs {
    /// The lab root: each appliance is a folder (ROOT/fmc, ROOT/NAME).
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// `device_name,ipaddr,login,password` lines (`#` comments); the first may be the FMC.
    #[arg(long, value_name = "FILE")]
    pub devices: PathBuf,
    /// Stamp every line of the transcript as if the clock showed TIME (RFC 3339 or +90d).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub at: Option<String>,
    /// The FMC the copy runs on (its folder name; default: the primary). The HA secondary
    /// copies the files its own InternalCA signed to its devices.
    #[arg(long, value_name = "NAME")]
    pub fmc: Option<String>,
    #[command(flatten)]
    pub fault: FaultArgs,
}

/// Runs `pki renew`.
pub(crate) fn run_renew(a: RenewArgs, verbose: bool) -> anyhow::Result<ExitCode> {
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let at = match &a.at {
        Some(s) => parse_time(s, now).map_err(|e| anyhow::anyhow!("--at: {e}"))?,
        None => now,
    };
    let nb = match &a.not_before {
        Some(s) => parse_time(s, at).map_err(|e| anyhow::anyhow!("--not-before: {e}"))?,
        None => at,
    };
    let validity = Validity::days(nb, a.days).context("--not-before/--days")?;
    let pre = renew::preflight_for(&a.root, a.fmc.as_deref(), at)
        .with_context(|| format!("--root {}", super::shown(&a.root)))?;
    if let Some(lock) = &pre.lock {
        bail!(
            "refusing to renew certificates while a critical operation runs ({}, according to {}); wait for it to finish",
            lock.operation,
            super::shown(&lock.path)
        );
    }
    // generate_certs.pl's dialogue (report::renew), its two questions answered by the user or
    // by --yes (then printed as the appliance's terminal shows them).
    let mut out = std::io::stdout().lock();
    report::renew::opening(&mut out, &pre)?;
    if !confirm(&mut out, a.yes)? {
        return Ok(ExitCode::from(1));
    }
    report::renew::ca_question(&mut out, &pre)?;
    if !confirm(&mut out, a.yes)? {
        return Ok(ExitCode::from(1));
    }
    report::renew::confirmed(&mut out)?;
    let socket = a
        .control
        .clone()
        .unwrap_or_else(|| sfdiag::tunnel::control::socket_path(&pre.root.layout.fmc_dir()));
    let opts = RenewOptions {
        at,
        ca_validity: validity,
        peer_validity: validity,
        key_bits: a.key_bits,
        faults: a.fault.faults(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    drop(out);
    let mut out = std::io::stdout();
    let run = match rt.block_on(renewal::renew_and_push(pre, opts, &socket)) {
        Ok(run) => run,
        // Committed: files changed, so not "refused: nothing changed". Nothing was pushed.
        Err(e @ PkiError::Unfinished { .. }) => {
            eprintln!("sfdiag: {}", sfdiag::sftunnel::escape(&e.to_string()));
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    // The files are committed and the pushes recorded: output that cannot be written ends
    // nothing, it is logged.
    if let Err(e) = report::renew::run(&mut out, &run, verbose) {
        tracing::warn!(error = %e, "cannot write the renewal's report");
    }
    let rec = run.record;
    Ok(if rec.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Answers the question just printed: `yes` with `--yes`; else the user's answer from a
/// terminal (echoed by it). False, after saying nothing changed, when the answer is not yes.
fn confirm(out: &mut impl Write, yes: bool) -> anyhow::Result<bool> {
    if yes {
        report::renew::answered(out, "yes")?;
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        writeln!(out)?;
        bail!("refusing to renew without confirmation: stdin is not a terminal (use --yes)");
    }
    out.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        return Ok(true);
    }
    writeln!(out, "sfdiag: not renewed: nothing was changed.")?;
    Ok(false)
}

/// Runs `pki copy`.
pub(crate) fn run_copy(a: CopyArgs) -> anyhow::Result<ExitCode> {
    // A list of a few hundred devices is a few KiB: 1 MiB bounds a wrong path (a FIFO, a
    // device, a huge file), and a byte that is not UTF-8 (a Latin-1 password) names its line.
    let text = files::read_text_bounded(&a.devices, 1 << 20, files::Links::Follow)
        .with_context(|| format!("--devices {}", a.devices.display()))?;
    let entries = copy::parse_devices_csv(&text, &a.devices)?;
    if entries.is_empty() {
        bail!("--devices {}: no device lines", a.devices.display());
    }
    // The root's lock first: a renewal or copy that died is finished before anything is read.
    let mut transport = LocalTransport::open(&a.root)
        .with_context(|| format!("--root {}", super::shown(&a.root)))?
        .with_faults(a.fault.faults());
    let root =
        PkiRoot::load(&a.root).with_context(|| format!("--root {}", super::shown(&a.root)))?;
    let root = match &a.fmc {
        Some(name) => root.as_fmc(name)?,
        None => root,
    };
    let mut out = std::io::stdout().lock();
    report::renew::recovery(&mut out, &transport.recovered().cloned())?;
    // The stamps: the system clock, or --at for every line (as if the clock showed TIME, so
    // a transcript made with --at is the same each time).
    let now = OffsetDateTime::now_utc();
    let at = match &a.at {
        Some(s) => Some(parse_time(s, now).map_err(|e| anyhow::anyhow!("--at: {e}"))?),
        None => None,
    };
    let clock = move || at.unwrap_or_else(OffsetDateTime::now_utc);
    let mut transcript = report::copy::Transcript::new(&mut out);
    let mut broken = false;
    let report = copy::copy(
        &entries,
        &copy::local_fmc_entry(&root),
        &mut transport,
        &clock,
        // Output that cannot be written does not stop the copies (each device's is its own).
        &mut |at, e| {
            if !broken && let Err(err) = transcript.event(at, e) {
                broken = true;
                tracing::warn!(error = %err, "cannot write the copy's report");
            }
        },
    )?;
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
