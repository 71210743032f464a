//! Command line: clap structs -> validated settings -> calls into the library.
//!
//! The only module that knows about flags. Each subcommand group lives in its own file and
//! exposes `run(args) -> anyhow::Result<ExitCode>`; exit codes follow CLI.md per command.
//! Shared argument parsing (times like `2034-10-05T12:16:56Z` or `+90d`) is in `time_arg`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod analyze;
pub mod time_arg;

pub mod check;
pub mod pki;
pub mod tunnel;

/// Diagnose Cisco Firepower sftunnel (FMC <-> FTD mutual TLS on 8305): lab PKI, live tunnel,
/// offline capture analysis.
#[derive(Debug, Parser)]
#[command(name = "sfdiag", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Analyze captures: certificates on the wire, OpenSSL verdicts at packet time, alerts,
    /// session outcomes.
    Analyze(analyze::AnalyzeArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell to generate completions for.
        shell: clap_complete::Shell,
    },
    /// Lab PKI in the FMC/FTD file layout: init, show.
    Pki(pki::PkiArgs),
    /// How long each certificate has left: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    Check(check::CheckArgs),
    #[command(flatten)]
    Tunnel(tunnel::TunnelCommand),
}

/// Runs the parsed command and returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Analyze(args) => analyze::run(args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "sfdiag", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Pki(args) => pki::run(args),
        Command::Check(args) => check::run(args),
        Command::Tunnel(cmd) => tunnel::run(cmd),
    }
}
