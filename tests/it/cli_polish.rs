//! What users expect of a command-line tool, and its security hygiene, through the binary:
//! manual pages and completions generated from clap, `-q`/`-v` mapped to the log level,
//! colour only on a terminal and never with NO_COLOR, hints under fixable errors, keys
//! written 0600 and never printed or logged (even at `-vvv`), world-writable PKI roots refused.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{project_captures, sfdiag};

fn run(args: &[&str]) -> Output {
    sfdiag()
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .output()
        .expect("run sfdiag")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A lab PKI with one device, made by the binary.
fn lab_pki(dir: &Path) -> PathBuf {
    let root = dir.join("lab");
    let out = run(&[
        "pki",
        "init",
        "--root",
        root.to_str().unwrap(),
        "--devices",
        "1",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    root
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// A capture cut inside its last packet: reading it logs a warning.
fn cut_capture(dir: &Path) -> PathBuf {
    let bytes = std::fs::read(project_captures().join("sftunnel-valid.pcap")).unwrap();
    let p = dir.join("cut.pcap");
    std::fs::write(&p, &bytes[..bytes.len() - 10]).unwrap();
    p
}

// ---------------------------------------------------------------------------------------
// Manual pages and completions.

const SUBCOMMANDS: [&str; 9] = [
    "analyze",
    "check",
    "completions",
    "connect",
    "man",
    "pki",
    "serve",
    "status",
    "validate",
];

#[test]
fn man_prints_a_roff_page_that_lists_every_subcommand() {
    let out = run(&["man"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let page = text(&out.stdout);
    assert!(page.contains(".TH sfdiag 1"), "{page}");
    assert!(page.contains("\\fB\\-\\-verbose\\fR") && page.contains("\\fB\\-\\-quiet\\fR"));
    for sub in SUBCOMMANDS {
        assert!(page.contains(&format!("sfdiag\\-{sub}(1)")), "{sub} listed");
    }
    // groff, where installed, finds nothing to warn about.
    if let Ok(mut groff) = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        groff
            .stdin
            .take()
            .unwrap()
            .write_all(page.as_bytes())
            .unwrap();
        let o = groff.wait_with_output().unwrap();
        assert!(
            o.status.success() && o.stderr.is_empty(),
            "{}",
            text(&o.stderr)
        );
    }
}

#[test]
fn man_of_a_subcommand_documents_its_own_flags() {
    let page = text(&run(&["man", "analyze"]).stdout);
    assert!(page.contains(".TH sfdiag-analyze 1"), "{page}");
    assert!(
        page.contains("\\-\\-format") && page.contains("\\-\\-ca"),
        "{page}"
    );
    let page = text(&run(&["man", "pki", "init"]).stdout);
    assert!(page.contains(".TH sfdiag-pki-init 1"), "{page}");
    assert!(
        page.contains("\\-\\-root") && page.contains("\\-\\-force"),
        "{page}"
    );
    assert!(
        page.contains("sfdiag 0.1"),
        "the footer names the tool: {page}"
    );
    // Typed as one quoted word, the same page; its exit codes in the EXTRA section.
    let quoted = run(&["man", "pki init"]);
    assert!(quoted.status.success(), "{}", text(&quoted.stderr));
    assert_eq!(text(&quoted.stdout), page);
    assert!(page.contains(".SH EXTRA\nExit codes:"), "{page}");
}

#[test]
fn help_states_the_exit_codes_and_lists_global_options_last() {
    let out = run(&["check", "--help"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let help = text(&out.stdout);
    let own = help.find("--critical-days").unwrap();
    let global = help
        .find("Global options:")
        .expect("a Global options heading");
    let verbose = help.find("--verbose").unwrap();
    let codes = help.find("Exit codes").expect("an Exit codes paragraph");
    assert!(
        own < global && global < verbose && verbose < codes,
        "{help}"
    );
    for line in ["  0  OK", "  1  WARNING", "  2  CRITICAL", "  3  UNKNOWN"] {
        assert!(help.contains(line), "{line}: {help}");
    }
    // The short help stays short and points at the long one.
    let short = text(&run(&["check", "-h"]).stdout);
    assert!(
        !short.contains("Exit codes") && short.contains("'--help'"),
        "{short}"
    );
}

#[test]
fn man_of_an_unknown_command_says_where_to_look() {
    let out = run(&["man", "pki", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("no command `sfdiag pki nosuch`"), "{err}");
    assert!(err.contains("SUBCOMMANDS section of `sfdiag man`"), "{err}");
}

#[test]
fn man_dir_writes_one_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for name in [
        "sfdiag.1",
        "sfdiag-analyze.1",
        "sfdiag-pki.1",
        "sfdiag-pki-init.1",
    ] {
        let page = std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert!(page.contains(".TH "), "{name}");
    }
    assert!(!dir.path().join("sfdiag-help.1").exists());
}

#[test]
fn completions_for_every_shell_know_the_subcommands_and_global_flags() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = text(&out.stdout);
        assert!(
            script.contains("analyze") && script.contains("validate"),
            "{shell}"
        );
        assert!(
            script.contains("verbose") && script.contains("quiet"),
            "{shell}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// -q / -v and RUST_LOG.

#[test]
fn quiet_hides_warnings_but_not_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let cut = cut_capture(dir.path());
    let cut = cut.to_str().unwrap();
    let normal = run(&["analyze", "--format", "jsonl", cut]);
    assert!(text(&normal.stderr).contains("WARN"), "a cut capture warns");
    for args in [
        ["-q", "analyze", "--format", "jsonl", cut],
        ["analyze", "--quiet", "--format", "jsonl", cut],
    ] {
        let quiet = run(&args);
        assert_eq!(quiet.status.code(), normal.status.code());
        assert_eq!(quiet.stdout, normal.stdout, "the report is unchanged");
        assert!(
            !text(&quiet.stderr).contains("WARN"),
            "{}",
            text(&quiet.stderr)
        );
    }
}

#[test]
fn verbose_raises_the_log_level_one_step_per_v() {
    let dir = tempfile::tempdir().unwrap();
    let quiet_init = run(&[
        "pki",
        "init",
        "--root",
        dir.path().join("a").to_str().unwrap(),
    ]);
    assert!(!text(&quiet_init.stderr).contains("lab PKI written"));
    let info = run(&[
        "-v",
        "pki",
        "init",
        "--root",
        dir.path().join("b").to_str().unwrap(),
    ]);
    assert!(
        text(&info.stderr).contains("INFO"),
        "{}",
        text(&info.stderr)
    );
    assert!(text(&info.stderr).contains("lab PKI written"));

    // `check` lists the files it passed over (keys, ims.conf) at info level, once each.
    let root = dir.path().join("b");
    let root = root.to_str().unwrap();
    let info = run(&["-v", "check", root]);
    assert!(
        !text(&info.stderr).contains("DEBUG"),
        "{}",
        text(&info.stderr)
    );
    assert!(
        text(&info.stderr).contains("skipped: holds a private key"),
        "{}",
        text(&info.stderr)
    );
    let plain = run(&["check", root]);
    assert!(!text(&plain.stderr).contains("skipped"));
}

#[test]
fn rust_log_applies_unless_a_flag_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let with_env = |args: &[&str]| {
        sfdiag()
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR")
            .output()
            .unwrap()
    };
    let a = with_env(&[
        "pki",
        "init",
        "--root",
        dir.path().join("a").to_str().unwrap(),
    ]);
    assert!(text(&a.stderr).contains("lab PKI written"));
    let b = with_env(&[
        "-q",
        "pki",
        "init",
        "--root",
        dir.path().join("b").to_str().unwrap(),
    ]);
    assert!(!text(&b.stderr).contains("lab PKI written"), "-q wins");
}

#[test]
fn quiet_and_verbose_together_are_a_usage_error() {
    let out = run(&["-q", "-v", "man"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("--quiet") && err.contains("--verbose"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// Colour.

/// Runs `sfdiag ARGS` on a pseudo-terminal (util-linux `script`), `env` first; None when
/// `script` is not installed.
fn on_terminal(env: &str, args: &str) -> Option<String> {
    let bin = sfdiag().get_program().to_string_lossy().into_owned();
    let out = Command::new("script")
        .args([
            "-qec",
            &format!("env -u NO_COLOR {env} {bin} {args}"),
            "/dev/null",
        ])
        .env_remove("RUST_LOG")
        .output()
        .ok()?;
    Some(text(&out.stdout))
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let dir = tempfile::tempdir().unwrap();
    let cut = cut_capture(dir.path());
    let piped = run(&["analyze", cut.to_str().unwrap()]);
    assert!(text(&piped.stderr).contains("WARN"));
    assert!(!piped.stderr.contains(&0x1b), "no escapes into a pipe");
    assert!(!piped.stdout.contains(&0x1b));

    let args = format!("analyze {}", cut.display());
    let Some(tty) = on_terminal("", &args) else {
        return; // no `script`: the pipe case above is what CI checks
    };
    assert!(
        tty.contains("WARN") && tty.contains('\x1b'),
        "colour on a terminal: {tty:?}"
    );
    let no_color = on_terminal("NO_COLOR=1", &args).unwrap();
    assert!(
        no_color.contains("WARN") && !no_color.contains('\x1b'),
        "{no_color:?}"
    );
    // no-color.org: an empty NO_COLOR does not count.
    let empty = on_terminal("NO_COLOR=", &args).unwrap();
    assert!(empty.contains('\x1b'), "{empty:?}");
    // clap's own usage errors follow the same rule.
    let usage = on_terminal("NO_COLOR=1", "-q -v man").unwrap();
    assert!(
        usage.contains("--quiet") && !usage.contains('\x1b'),
        "{usage:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Errors that say what to do next.

#[test]
fn errors_end_with_a_hint_at_the_next_step() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("nothing-here");
    let out = run(&["validate", "--root", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("is not an sfdiag PKI root"), "{err}");
    assert!(
        err.contains("hint: create a lab PKI there with `sfdiag pki init --root DIR`"),
        "{err}"
    );

    // A key where a certificate was expected.
    let root = lab_pki(dir.path());
    let key = root.join("fmc/etc/sf/keys/sftunnel-key.pem");
    let pcap = project_captures().join("sftunnel-valid.pcap");
    let out = run(&[
        "analyze",
        "--ca",
        key.to_str().unwrap(),
        pcap.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("hint: pass the certificate"),
        "{}",
        text(&out.stderr)
    );

    // A file that is not a capture at all (here a certificate).
    let cert = root.join("fmc/etc/sf/keys/sftunnel-cert.pem");
    let out = run(&["analyze", cert.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("not a pcap or pcapng capture"), "{err}");
    assert!(
        err.contains(cert.to_str().unwrap()),
        "names the file: {err}"
    );
    assert!(err.contains("hint: analyze reads pcap and pcapng"), "{err}");

    // A capture that is not there: named once, and where to look.
    let missing = dir.path().join("missing.pcap");
    let out = run(&["analyze", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.matches("missing.pcap").count(), 1, "{err}");
    assert!(err.contains("hint: check the path"), "{err}");

    // A cause the message already holds is not repeated (the chain would say it twice).
    let out = run(&[
        "analyze",
        "--ca",
        missing.to_str().unwrap(),
        cert.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.matches("os error").count(), 1, "{err}");
    let out = run(&[
        "serve",
        "--root",
        root.to_str().unwrap(),
        "--listen",
        "nonsense",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.matches("invalid socket address").count(), 1, "{err}");
    assert!(err.contains("hint: give --listen as ADDR:PORT"), "{err}");

    // A port someone else holds.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = run(&["serve", "--root", root.to_str().unwrap(), "--listen", &addr]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains(&addr), "{err}");
    assert!(err.contains("hint: another process listens there"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Security hygiene.

/// The base64 lines of a PEM file's body.
fn pem_lines(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 40)
        .map(str::to_string)
        .collect()
}

#[test]
fn keys_are_0600_and_never_printed_or_logged_even_at_trace_level() {
    let dir = tempfile::tempdir().unwrap();
    let root = lab_pki(dir.path());
    let mut files = Vec::new();
    files_under(&root, &mut files);
    let keys: Vec<PathBuf> = files
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains("key"))
        .collect();
    assert!(keys.len() >= 4, "{keys:?}");
    let mut secrets = Vec::new();
    for k in &keys {
        assert_eq!(mode(k), 0o600, "{}", k.display());
        let pem = std::fs::read_to_string(k).unwrap();
        assert!(pem.contains("PRIVATE KEY"));
        secrets.extend(pem_lines(&pem));
    }
    let leaks = |out: &Output, what: &str| {
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        for s in &secrets {
            assert!(!all.contains(s.as_str()), "{what} printed key material");
        }
        assert!(!all.contains("BEGIN PRIVATE KEY"), "{what}");
    };
    for k in &keys {
        let out = run(&["-vvv", "pki", "show", k.to_str().unwrap()]);
        assert!(out.status.success());
        let shown = text(&out.stdout);
        assert!(shown.contains("the private part is never shown"), "{shown}");
        assert!(
            shown.contains("-----BEGIN PUBLIC KEY-----"),
            "its public half: {shown}"
        );
        leaks(&out, "pki show");
    }
    let root_s = root.to_str().unwrap();
    leaks(&run(&["-vvv", "check", root_s]), "check");
    // A whole folder: every certificate and every key (by its public half) shown.
    let out = run(&["-vvv", "pki", "show", root_s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert_eq!(
        shown.matches("the private part is never shown").count(),
        keys.len(),
        "{shown}"
    );
    assert!(shown.matches("Subject:").count() >= keys.len(), "{shown}");
    leaks(&out, "pki show ROOT");
    // Both ends of a real handshake, with rustls' own trace logging on.
    let out = run(&["-vvv", "validate", "--root", root_s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("TRACE"), "trace logging was on");
    leaks(&out, "validate");
}

#[test]
fn a_world_writable_pki_root_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let root = lab_pki(dir.path());
    let root_s = root.to_str().unwrap();
    let keys = root.join("fmc/etc/sf/keys");
    let set = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    };
    set(&keys, 0o777);
    let out = run(&["validate", "--root", root_s]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{} is writable by every user", keys.display())),
        "{err}"
    );
    assert!(err.contains("chmod o-w"), "{err}");
    assert!(matches!(
        sfdiag::pki::layout::PkiRoot::load(&root),
        Err(sfdiag::pki::PkiError::WorldWritable { .. })
    ));

    set(&keys, 0o700);
    let cacert = root.join("fmc/etc/sf/ca_root/cacert.pem");
    let before = mode(&cacert);
    set(&cacert, 0o666);
    assert_eq!(run(&["validate", "--root", root_s]).status.code(), Some(2));
    set(&cacert, before);
    let out = run(&["validate", "--root", root_s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
