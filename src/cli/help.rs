//! What `--help` (and the man pages, and the completions) are built from: the clap
//! definitions of [`super::Cli`] plus an "Exit codes" paragraph for every command, kept here
//! as one table beside CLI.md's so the two are read and changed together.
//!
//! The paragraphs go in `after_long_help`: `--help` and `sfdiag man` show them, `-h` stays short.

use clap::{CommandFactory, FromArgMatches};

use super::Cli;

/// `(command path, paragraph)`; the path as typed after `sfdiag` ("" for `sfdiag` itself).
/// Every command has one (a test walks the tree); the codes are CLI.md's table and what each
/// command's `run` returns.
// Lines stay under 70 columns so the man pages' EXTRA section does not wrap them (a line
// that starts with spaces begins a new line in roff, a long one wraps without its indent).
const EXIT_CODES: &[(&str, &str)] = &[
    (
        "",
        "Exit codes: each command's own (`sfdiag COMMAND --help`);
2 for a usage error.",
    ),
    (
        "analyze",
        "Exit codes (grep's convention):
  0  nothing wrong found
  1  findings: a failed verdict, a fatal alert, a failed handshake
  2  an input could not be read (the other files are still analyzed,
     each with its `capture` record and `read_error`), or a usage
     error",
    ),
    (
        "completions",
        "Exit codes:
  0  the script was printed
  2  a usage error (an unknown shell)",
    ),
    (
        "pki",
        "Exit codes: those of the subcommand
(`sfdiag pki SUBCOMMAND --help`); 2 for a usage error.",
    ),
    (
        "pki init",
        "Exit codes:
  0  the PKI was written
  2  refused, nothing written: a PKI already there (without
     --force), a folder that is not safe, bad dates or names; or a
     usage error",
    ),
    (
        "pki show",
        "Exit codes:
  0  every path was decoded
  2  some path could not be read or decoded (the others are still
     shown), or a usage error",
    ),
    (
        "pki renew",
        "Exit codes:
  0  renewed, every peer pushed over its live tunnel
  1  renewed, some peers not pushed (listed in FAILED_PUSH: copy
     them with `pki copy`); or declined at the prompt (nothing
     changed)
  2  refused, nothing changed: no --yes and no terminal to ask on,
     a root that does not load; or a usage error",
    ),
    (
        "pki copy",
        "Exit codes:
  0  every listed device got its files
  1  some device did not (each one is reported)
  2  a root or devices.csv that cannot be read or lists no device,
     or a usage error",
    ),
    (
        "check",
        "Exit codes (monitoring-plugin convention):
  0  OK
  1  WARNING: a certificate ends within --warn-days (default 90)
  2  CRITICAL: a certificate ends within --critical-days (default
     30), has expired or is not yet valid, a chain fails --ca, a
     device trusts another InternalCA than its FMC's, a key that
     does not match its certificate (CRITICAL outranks UNKNOWN)
  3  UNKNOWN: an input could not be read, no certificate found, or
     a usage error",
    ),
    (
        "inventory",
        "Exit codes:
  0  every FMC, device and HA secondary is fine
  1  some peer needs action (push, copy, renew)
  2  an input could not be read, or a usage error",
    ),
    (
        "lab",
        "Exit codes:
  0  the story ran as it should (or --list)
  1  it did not: a step went otherwise or timed out (printed)
  2  an unknown scenario, a setup error, or a usage error",
    ),
    (
        "serve",
        "Exit codes:
  0  stopped by SIGINT or SIGTERM (SIGHUP restarts the tunnel
     service and keeps running)
  2  a setup error (files missing or unusable, the port busy), or a
     usage error",
    ),
    (
        "connect",
        "Exit codes:
  0  every TLS handshake succeeded (--once, --count); a peer that is
     not sfdiag and speaks no lab protocol after it still counts as
     a success. Without --once/--count: stopped by SIGINT/SIGTERM.
  1  a handshake failed (the reason is logged)
  2  a usage or setup error (files missing, a device the root does
     not know)",
    ),
    (
        "validate",
        "Exit codes:
  0  every handshake succeeded both ways
  1  a handshake failed (the reason is printed)
  2  a usage or setup error (files missing)",
    ),
    (
        "status",
        "Exit codes:
  0  the server answered on its control socket
  1  no server answered (\"sftunnel is not running\"; with --root
     its devices are still listed)
  2  a root that does not load, or a usage error",
    ),
    (
        "man",
        "Exit codes:
  0  the page (with --dir: every page) was written
  2  no such command, a page that could not be written, or a usage
     error",
    ),
];

/// The `Exit codes` paragraph of the command at `path` ("" for the top level, "pki init").
pub(crate) fn exit_codes(path: &str) -> Option<&'static str> {
    EXIT_CODES.iter().find(|(p, _)| *p == path).map(|(_, t)| *t)
}

/// The whole command line: clap's definitions with every exit-code paragraph added.
pub(crate) fn command() -> clap::Command {
    with_exit_codes(Cli::command(), "")
}

fn with_exit_codes(cmd: clap::Command, path: &str) -> clap::Command {
    let cmd = match exit_codes(path) {
        Some(text) => cmd.after_long_help(text),
        None => cmd,
    };
    cmd.mut_subcommands(|sub| {
        let sub_path = if path.is_empty() {
            sub.get_name().to_owned()
        } else {
            format!("{path} {}", sub.get_name())
        };
        with_exit_codes(sub, &sub_path)
    })
}

/// Parses the process's arguments against [`command`] (so `--help` shows the exit codes);
/// on an error or `--help`, prints and exits like `Cli::parse`.
pub(crate) fn parse() -> Cli {
    let mut cmd = command();
    let parsed = cmd
        .try_get_matches_from_mut(std::env::args_os())
        .and_then(|mut m| Cli::from_arg_matches_mut(&mut m));
    let e = match parsed {
        Ok(cli) => return cli,
        Err(e) => e.format(&mut cmd),
    };
    // A monitoring system reads exit 2 as CRITICAL: a usage error of `check` is UNKNOWN (3),
    // with a status line on stdout as plugins give; every other command keeps clap's 2.
    if e.use_stderr() && invokes_check(std::env::args_os().skip(1)) {
        let text = e.render().to_string();
        let first = text
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ");
        println!("UNKNOWN: usage error: {first}");
        let _ = e.print();
        std::process::exit(3);
    }
    e.exit()
}

/// True when the subcommand on a command line is `check`: the first word that is not a
/// global flag (`-v`, `-q` and their long forms take no value).
fn invokes_check(args: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    args.into_iter()
        .find(|a| !a.to_string_lossy().starts_with('-'))
        .is_some_and(|a| a == "check")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command but clap's own `help`, as the path typed after `sfdiag`.
    fn paths(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        out.push(path.to_owned());
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let p = format!("{path} {}", sub.get_name());
            paths(sub, p.trim_start(), out);
        }
    }

    #[test]
    fn every_command_states_its_exit_codes_and_the_table_names_no_other() {
        let mut cmd = command();
        cmd.build();
        let mut all = Vec::new();
        paths(&cmd, "", &mut all);
        assert!(all.len() >= 15, "{all:?}");
        for p in &all {
            let mut c = &cmd;
            for w in p.split_whitespace() {
                c = c.find_subcommand(w).unwrap();
            }
            let help = c.get_after_long_help().map(|h| h.to_string());
            assert!(
                help.as_deref().is_some_and(|h| h.starts_with("Exit codes")),
                "`sfdiag {p} --help` states no exit codes"
            );
        }
        for (p, text) in EXIT_CODES {
            assert!(
                all.iter().any(|a| a == p),
                "EXIT_CODES names `{p}`, not a command"
            );
            assert!(
                text.lines().all(|l| l.len() < 70),
                "`{p}`: a line over 69 columns"
            );
        }
    }

    #[test]
    fn every_option_and_argument_says_what_it_is_and_global_ones_come_last() {
        let mut cmd = command();
        cmd.build();
        let mut all = Vec::new();
        paths(&cmd, "", &mut all);
        for p in &all {
            let mut c = &cmd;
            for w in p.split_whitespace() {
                c = c.find_subcommand(w).unwrap();
            }
            for a in c.get_arguments() {
                assert!(
                    a.get_help().is_some(),
                    "`sfdiag {p}`: --{} has no description",
                    a.get_id()
                );
            }
            // What `--help` prints: the global options under their heading, after the rest.
            let help = c.clone().render_long_help().to_string();
            let (own, global) = help.split_once("Global options:").unwrap_or_else(|| {
                panic!("`sfdiag {p} --help` has no Global options heading:\n{help}")
            });
            assert!(
                !own.contains("--verbose") && !own.contains("--quiet"),
                "{help}"
            );
            assert!(
                global.contains("--verbose") && global.contains("--quiet"),
                "{help}"
            );
        }
    }
}
