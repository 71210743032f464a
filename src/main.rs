//! The `sfdiag` binary: parse arguments, set up tracing, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    // The tool's own story goes to stderr through tracing (RUST_LOG); stdout is the report.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sfdiag: {e:#}");
            // Setup errors: 2 for analyze/connect/validate, 3 (UNKNOWN) for check; each command
            // maps its own expected failures, this is the catch-all for unexpected ones.
            ExitCode::from(2)
        }
    }
}
