//! Command line: clap structs -> validated settings -> calls into the library.
//!
//! The only module that knows about flags. Each subcommand group lives in its own file and
//! exposes `run(args) -> anyhow::Result<ExitCode>`; exit codes follow CLI.md per command.
//! Shared argument parsing (times like `2034-10-05T12:16:56Z` or `+90d`) is in `time_arg`.

use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand};

pub(crate) mod analyze;
pub(crate) mod time_arg;

pub(crate) mod check;
pub(crate) mod help;
pub(crate) mod hints;
pub(crate) mod inventory;
pub(crate) mod lab;
pub(crate) mod man;
pub(crate) mod pki;
pub(crate) mod renew;
pub(crate) mod tunnel;

/// Diagnose Cisco Firepower sftunnel (FMC <-> FTD mutual TLS on 8305): lab PKI, live tunnel,
/// offline capture analysis.
///
/// Parse with [`help::parse`], which adds each command's exit codes to its `--help`.
#[derive(Debug, Parser)]
#[command(name = "sfdiag", version, about, long_about = None)]
pub(crate) struct Cli {
    /// More of the tool's own story on stderr: -v info, -vv debug, -vvv trace (default:
    /// warnings; RUST_LOG filters finer when neither -v nor -q is given).
    // Under their own heading, which clap lists after every command's own options.
    #[arg(short, long, action = ArgAction::Count, global = true, help_heading = GLOBAL)]
    pub verbose: u8,
    /// Only errors on stderr (the report on stdout is unchanged).
    #[arg(short, long, global = true, conflicts_with = "verbose", help_heading = GLOBAL)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The help heading of the options every command takes.
const GLOBAL: &str = "Global options";

impl Cli {
    /// The tracing filter for `-q`/`-v`, or `None` to use RUST_LOG (default `warn`).
    pub(crate) fn log_level(&self) -> Option<&'static str> {
        match (self.quiet, self.verbose) {
            (true, _) => Some("error"),
            (false, 0) => None,
            (false, 1) => Some("info"),
            (false, 2) => Some("debug"),
            (false, _) => Some("trace"),
        }
    }
}

/// A path as the CLI prints it (messages, `pki show` headers): [`sfdiag::sftunnel::escape`]
/// of its text, so a file name in a shared folder cannot forge a line or drive the terminal.
/// Bytes that are not UTF-8 show as U+FFFD, as `Path::display` shows them.
pub(crate) fn shown(p: &std::path::Path) -> String {
    sfdiag::sftunnel::escape(&p.to_string_lossy()).into_owned()
}

/// Colour on a stream only when it is a terminal and NO_COLOR (https://no-color.org) is
/// unset or empty.
pub(crate) fn colour(stream: &impl std::io::IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Analyze captures: certificates on the wire, OpenSSL verdicts at packet time, alerts,
    /// session outcomes.
    Analyze(analyze::AnalyzeArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell to generate completions for.
        shell: clap_complete::Shell,
    },
    /// Lab PKI in the FMC/FTD file layout: init, show, renew (generate_certs.pl), copy
    /// (copy_sftunnel_certs.py).
    Pki(pki::PkiArgs),
    /// How long each certificate has left: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    Check(check::CheckArgs),
    /// The renewal plan: one entry per FMC, device and HA secondary, and its action (none,
    /// push, copy, renew); --format csv writes the devices.csv skeleton for `pki copy`.
    Inventory(inventory::InventoryArgs),
    /// Run a renewal story in-process on loopback with a lab clock (default: expiry); --list.
    Lab(lab::LabArgs),
    #[command(flatten)]
    Tunnel(tunnel::TunnelCommand),
    /// Print the manual page (roff) to stdout, or write every page with --dir.
    Man(man::ManArgs),
}

/// Runs the parsed command and returns the process exit code.
pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Analyze(args) => analyze::run(args, cli.quiet),
        Command::Completions { shell } => {
            let mut cmd = help::command();
            clap_complete::generate(shell, &mut cmd, "sfdiag", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Pki(args) => pki::run(args, cli.verbose > 0),
        Command::Check(args) => check::run(args),
        Command::Inventory(args) => inventory::run(args),
        Command::Lab(args) => lab::run(args),
        Command::Tunnel(cmd) => tunnel::run(cmd),
        Command::Man(args) => man::run(args),
    }
}
