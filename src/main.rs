//! The `sfdiag` binary: parse arguments, set up tracing, run, map the outcome to an exit code
//! (with a hint at the next step under an error, from `cli::hints`).

use std::process::ExitCode;

mod cli;

fn main() -> ExitCode {
    let args = cli::help::parse();
    // The tool's own story goes to stderr through tracing; stdout is the report. -q/-v set
    // the level, else RUST_LOG, else warnings. Colour only on a terminal, never with NO_COLOR.
    let filter = match args.log_level() {
        Some(level) => tracing_subscriber::EnvFilter::new(level),
        None => tracing_subscriber::EnvFilter::try_from_default_env()
            // rustls warns once per odd peer (a stray ChangeCipherSpec): the tunnel logs that
            // peer's failure in OpenSSL's words already, so rustls's own say is kept to errors.
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rustls=error")),
    };
    // A stderr that is closed (`2>&1 | head`) must not end the run: tracing-subscriber's
    // fallback report of a failed write is an eprintln!, which panics there.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(cli::colour(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .init();
    match cli::run(args) {
        Ok(code) => code,
        // `sfdiag analyze big.pcap | head`: the reader left; that is not an error to report.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // Library errors carry file names and peer text: the last pass makes sure no
            // control character reaches the terminal (what was escaped before stays as it is).
            eprintln!("sfdiag: {}", sfdiag::sftunnel::escape_line(&chain_text(&e)));
            if let Some(hint) = cli::hints::hint(&e) {
                eprintln!("hint: {hint}");
            }
            // Setup errors: 2 for analyze/connect/validate/inventory; `check` maps its own
            // usage errors to 3 (UNKNOWN), this is the catch-all for unexpected ones.
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes joined by ": ", like anyhow's `{:#}`, but without a cause whose
/// text the message already holds: many library errors put their source in their own text
/// ("create folder X: No such file"), and the chain would repeat it.
fn chain_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
