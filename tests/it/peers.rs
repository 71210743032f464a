//! The emulator against TLS peers that are not sfdiag, both directions, TLS 1.2 and 1.3:
//! `openssl s_server`/`s_client`, `gnutls-serv`/`gnutls-cli` (Debian's gnutls-bin) and python's
//! `ssl` module (OpenSSL underneath, but its own state machine and timing), each with a valid
//! PKI and with an expired InternalCA (`certs/openssl-pki.sh`). What they prove:
//! - `connect --once` gives the TLS handshake's verdict whatever the peer does after it (closes,
//!   stays silent, echoes, greets), says plainly that the peer is not an sfdiag FMC, logs `SSL
//!   handshake failed` only when the handshake failed, and agrees with `analyze` of its own
//!   `--pcap`;
//! - `serve` answers those clients as the appliance's OpenSSL does: alert 45 and the err 10
//!   block for an expired InternalCA, alert 40 for a TLS 1.2 client without a certificate (116
//!   in TLS 1.3, as OpenSSL 3 sends there);
//! - certificates OpenSSL loads (ECDSA, v1, an unknown critical extension, an undecodable
//!   extension value) are loaded and judged by the other side with `openssl verify`'s code,
//!   and the one aws-lc-rs cannot sign with (RSA 1024) is refused naming its file;
//! - setup errors of `connect` say what is wrong (DNS, an unknown `--device`), and a missing
//!   port is 8305.
//!
//! A test whose peer tool is missing skips with one `SKIPPED (no TOOL)` line, and fails instead
//! when `SFDIAG_REQUIRE_PEERS=1` (`.ci/run`). Everything listens on 127.0.0.1 port 0 except
//! `gnutls-serv`, which takes no listen address and cannot report a port it picked: it gets a
//! port the kernel just handed out and listens on every interface for the few seconds of its
//! test. Every wait is bounded.

use std::path::Path;
use std::process::{Command, ExitStatus};

use serde_json::Value;

use crate::common::{peer_tool, project_captures, sfdiag};
use crate::tunnel::{
    EXPIRED_CA, Pki, Proc, Side, assert_err10_block, has_line, openssl_pki, our_pki, run, s,
};

/// Both TLS versions sftunnel runs (before 7.6, from 7.6).
const VERSIONS: [&str; 2] = ["1.2", "1.3"];

fn valid_and_expired(dir: &Path) -> [(&'static str, Pki); 2] {
    [
        ("valid", openssl_pki(&dir.join("valid"), None)),
        (
            "expired",
            openssl_pki(&dir.join("expired"), Some(EXPIRED_CA)),
        ),
    ]
}

/// `-tls1_2` / `-tls1_3`.
fn openssl_flag(v: &str) -> String {
    format!("-tls{}", v.replace('.', "_"))
}

/// gnutls' priority string for exactly TLS `v`.
fn gnutls_priority(v: &str) -> String {
    format!("NORMAL:-VERS-ALL:+VERS-TLS{v}")
}

/// `openssl s_server` configured like sftunnel's FMC (client certificate required and
/// verified), speaking TLS `v`; stdin stays open until [`Proc::close_stdin`].
fn openssl_server(side: &Side, v: &str, extra: &[&str]) -> (Proc, String) {
    let p = Proc::spawn(
        Command::new("openssl")
            .args(["s_server", "-accept", "127.0.0.1:0", &openssl_flag(v)])
            .args(["-Verify", "1", "-verify_return_error", "-naccept", "1"])
            .args([
                "-CAfile",
                s(&side.ca),
                "-cert",
                s(&side.cert),
                "-key",
                s(&side.key),
            ])
            .args(extra),
    );
    let l = p.wait_for(20, |l| l.starts_with("ACCEPT "));
    (p, l.trim_start_matches("ACCEPT ").trim().to_owned())
}

/// `openssl s_client` speaking TLS `v` with `side`'s files (none: no client certificate).
fn openssl_client(addr: &str, side: Option<&Side>, v: &str, extra: &[&str]) -> Proc {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", addr, &openssl_flag(v)]);
    if let Some(side) = side {
        cmd.args([
            "-CAfile",
            s(&side.ca),
            "-cert",
            s(&side.cert),
            "-key",
            s(&side.key),
        ]);
    }
    Proc::spawn(cmd.args(extra))
}

/// A port the kernel just handed out on 127.0.0.1 (for `gnutls-serv`, see the module doc).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `gnutls-serv` as an echo server with `side`'s files, client certificate required and
/// verified, speaking TLS `v`.
fn gnutls_server(side: &Side, v: &str) -> (Proc, String) {
    let port = free_port();
    let p = Proc::spawn(
        Command::new("gnutls-serv")
            .args(["--port", &port.to_string(), "--echo"])
            .args(["--require-client-cert", "--verify-client-cert"])
            .args(["--x509cafile", s(&side.ca), "--x509certfile", s(&side.cert)])
            .args([
                "--x509keyfile",
                s(&side.key),
                "--priority",
                &gnutls_priority(v),
            ]),
    );
    // gnutls-serv prints "listening on IPv4 ... port N..." and then "done" or "failed" (the
    // port taken between free_port and its bind): only "done" means it listens.
    p.wait_for(20, |l| {
        l.contains("listening on IPv4") && l.ends_with("done")
    });
    (p, format!("127.0.0.1:{port}"))
}

/// A TLS server in python's `ssl` (client certificate required): argv CA CERT KEY VERSION
/// MODE; prints `LISTENING <port>`, then `HANDSHAKE OK <version>` or `HANDSHAKE FAILED
/// <reason>`; MODE `silent` then says nothing, `greet` sends a line of its own protocol.
const PY_SERVER: &str = r#"
import socket, ssl, sys, time
ca, cert, key, version, mode = sys.argv[1:6]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
v = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
ctx.minimum_version = ctx.maximum_version = v
ctx.load_cert_chain(cert, key)
ctx.load_verify_locations(ca)
ctx.verify_mode = ssl.CERT_REQUIRED
srv = socket.create_server(("127.0.0.1", 0))
print("LISTENING", srv.getsockname()[1], flush=True)
srv.settimeout(20)
conn, _ = srv.accept()
conn.settimeout(10)
try:
    tls = ctx.wrap_socket(conn, server_side=True)
except (ssl.SSLError, OSError) as e:
    print("HANDSHAKE FAILED", e, flush=True)
    sys.exit(0)
print("HANDSHAKE OK", tls.version(), flush=True)
if mode == "greet":
    tls.sendall(b"220 python greeting, not sftunnel\r\n")
time.sleep(4)
"#;

/// A TLS client in python's `ssl`: argv HOST PORT CA CERT KEY VERSION verify|none; prints
/// `HANDSHAKE OK <version> <cipher>` then what a first read gave (`READ ...`), or `FAILED
/// <reason>` (in TLS 1.3 the server's refusal comes on that read).
const PY_CLIENT: &str = r#"
import socket, ssl, sys
host, port, ca, cert, key, version, verify = sys.argv[1:8]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
v = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
ctx.minimum_version = ctx.maximum_version = v
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_REQUIRED if verify == "verify" else ssl.CERT_NONE
ctx.load_verify_locations(ca)
ctx.load_cert_chain(cert, key)
try:
    with socket.create_connection((host, int(port)), timeout=10) as s:
        with ctx.wrap_socket(s) as tls:
            print("HANDSHAKE OK", tls.version(), tls.cipher()[0], flush=True)
            tls.settimeout(2)
            try:
                print("READ", tls.recv(64), flush=True)
            except socket.timeout:
                print("READ nothing", flush=True)
except (ssl.SSLError, OSError) as e:
    print("FAILED", e, flush=True)
"#;

fn python_server(side: &Side, v: &str, mode: &str) -> (Proc, String) {
    let p = Proc::spawn(Command::new("python3").args([
        "-c",
        PY_SERVER,
        s(&side.ca),
        s(&side.cert),
        s(&side.key),
        v,
        mode,
    ]));
    let l = p.wait_for(20, |l| l.starts_with("LISTENING "));
    (
        p,
        format!("127.0.0.1:{}", l.trim_start_matches("LISTENING ").trim()),
    )
}

/// `sfdiag connect ADDR --once` speaking TLS `v` with a 2-second HELLO wait; returns the exit
/// status and everything it printed.
fn once(addr: &str, side: &Side, v: &str, extra: &[&str]) -> (ExitStatus, String) {
    let mut p = Proc::spawn(
        sfdiag()
            .args([
                "connect",
                addr,
                "--once",
                "--timeout",
                "2",
                "--tls-version",
                v,
            ])
            .args(side.args())
            .args(extra),
    );
    let st = p.wait_exit(40);
    (st, p.text())
}

/// `sfdiag serve` on 127.0.0.1 port 0 speaking TLS `v`.
fn serve(side: &Side, v: &str, extra: &[&str]) -> (Proc, String) {
    let mut args = side.args();
    args.extend(["--tls-version".to_owned(), v.to_owned()]);
    args.extend(extra.iter().map(|a| a.to_string()));
    crate::tunnel::serve(&args)
}

/// The verdict of `--once` on a peer that is not sfdiag: a good handshake is exit 0, said so,
/// and no `SSL handshake failed`; an expired InternalCA is the err 10 block and exit 1.
fn assert_once_verdict(what: &str, pki: &str, st: ExitStatus, log: &str) {
    if pki == "valid" {
        assert!(st.success(), "{what}: {log}");
        assert!(
            has_line(log, "Successfully connected using SSL to: 127.0.0.1"),
            "{what}: {log}"
        );
        assert!(
            has_line(log, "is not an sfdiag FMC (no HELLO: "),
            "{what}: {log}"
        );
        assert!(
            has_line(log, "both sides accepted each other's certificates"),
            "{what}: {log}"
        );
        assert!(!log.contains("SSL handshake failed"), "{what}: {log}");
    } else {
        assert_eq!(st.code(), Some(1), "{what}: {log}");
        assert_err10_block(log);
        assert!(!log.contains("not an sfdiag FMC"), "{what}: {log}");
    }
}

/// `analyze --format jsonl` of `pcap` with `ca`: exit code and records.
fn analyze(pcap: &Path, ca: &Path) -> (i32, Vec<Value>) {
    analyze_with(pcap, ca, &[])
}

/// [`analyze`] with more arguments (`--keylog FILE`).
fn analyze_with(pcap: &Path, ca: &Path, more: &[&str]) -> (i32, Vec<Value>) {
    let out = run(
        sfdiag()
            .args(["analyze", "--format", "jsonl", "--ca"])
            .arg(ca)
            .args(more)
            .arg(pcap),
        60,
    );
    let records = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    (out.status.code().expect("exit code"), records)
}

fn of_type<'a>(records: &'a [Value], t: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["type"] == t).collect()
}

// ---- connect --once -> peers that are not sfdiag ----

#[test]
fn connect_once_against_openssl_s_server_that_closes_after_the_handshake_agrees_with_analyze() {
    let d = tempfile::tempdir().unwrap();
    for v in VERSIONS {
        for (pki_name, pki) in valid_and_expired(d.path()) {
            let what = format!("s_server TLS {v}, {pki_name} PKI");
            let (mut srv, addr) = openssl_server(&pki.fmc, v, &[]);
            let pcap = d.path().join(format!("once-{v}-{pki_name}.pcap"));
            let keylog = d.path().join(format!("once-{v}-{pki_name}.keylog"));
            let mut cli = Proc::spawn(
                sfdiag()
                    .args([
                        "connect",
                        &addr,
                        "--once",
                        "--timeout",
                        "10",
                        "--tls-version",
                        v,
                    ])
                    .args(["--pcap", s(&pcap), "--keylog", s(&keylog)])
                    .args(pki.ftd.args()),
            );
            if pki_name == "valid" {
                // s_server closes the connection once its stdin ends: right after the
                // handshake, the way it closed on the user of issue 12.
                srv.wait_for(20, |l| l.contains("CIPHER is "));
                srv.close_stdin();
            }
            let st = cli.wait_exit(40);
            let log = cli.text();
            assert_once_verdict(&what, pki_name, st, &log);
            if pki_name == "valid" {
                assert!(
                    has_line(&log, "(no HELLO: it closed the connection)"),
                    "{log}"
                );
            }
            srv.close_stdin();
            srv.wait_exit(20);
            // The capture of the same session says the same. In TLS 1.3 everything after
            // ServerHello is encrypted, the refusal too: without keys the analyzer can only say
            // so; with the key log `connect --keylog` wrote, it says what TLS 1.2's capture says.
            let (_, plain) = analyze(&pcap, &pki.fmc.ca);
            let (code, records) = analyze_with(&pcap, &pki.fmc.ca, &["--keylog", s(&keylog)]);
            for (records, keyed) in [(&plain, false), (&records, true)] {
                let sessions = of_type(records, "session");
                assert_eq!(sessions.len(), 1, "{what}: {records:?}");
                let outcome = &sessions[0]["outcome"];
                match (v, pki_name, keyed) {
                    ("1.3", _, false) => {
                        assert_eq!(outcome, "encrypted_certificates", "{what}: {records:?}")
                    }
                    (_, "valid", _) => assert_eq!(outcome, "established", "{what}: {records:?}"),
                    _ => assert_eq!(outcome, "failed", "{what}: {records:?}"),
                }
            }
            assert_eq!(code, i32::from(pki_name != "valid"), "{what}: {records:?}");
            if v == "1.3" {
                let decrypted = of_type(&records, "certificate")
                    .iter()
                    .any(|c| c["decrypted"] == true);
                assert!(
                    decrypted,
                    "{what}: the key log opened no certificate: {records:?}"
                );
            }
        }
    }
}

#[test]
fn connect_once_against_gnutls_serv_gives_the_handshakes_verdict() {
    if !peer_tool!("gnutls-serv") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    for v in VERSIONS {
        for (pki_name, pki) in valid_and_expired(d.path()) {
            let (srv, addr) = gnutls_server(&pki.fmc, v);
            let (st, log) = once(&addr, &pki.ftd, v, &[]);
            assert_once_verdict(
                &format!("gnutls-serv TLS {v}, {pki_name}"),
                pki_name,
                st,
                &log,
            );
            if pki_name == "expired" {
                // Our alert reached gnutls, which says why it has no certificate to judge.
                srv.wait_for(20, |l| l.contains("Error in handshake"));
            }
        }
    }
}

#[test]
fn connect_once_against_python_ssl_servers_silent_or_with_their_own_greeting() {
    if !peer_tool!("python3") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    for v in VERSIONS {
        for (pki_name, pki) in valid_and_expired(d.path()) {
            for mode in ["silent", "greet"] {
                let what = format!("python {mode} TLS {v}, {pki_name}");
                let (srv, addr) = python_server(&pki.fmc, v, mode);
                let (st, log) = once(&addr, &pki.ftd, v, &[]);
                assert_once_verdict(&what, pki_name, st, &log);
                let said = srv.wait_for(20, |l| l.starts_with("HANDSHAKE "));
                if pki_name == "valid" {
                    assert!(
                        said.starts_with(&format!("HANDSHAKE OK TLSv{v}")),
                        "{what}: {said}"
                    );
                    let why = if mode == "silent" {
                        "(no HELLO: it said nothing for 2 seconds)"
                    } else {
                        "(no HELLO: it spoke another protocol ("
                    };
                    assert!(has_line(&log, why), "{what}: {log}");
                } else {
                    // python's OpenSSL got our alert 45.
                    assert!(said.contains("alert certificate expired"), "{what}: {said}");
                }
            }
        }
    }
}

// ---- serve <- clients that are not sfdiag ----

#[test]
fn serve_against_gnutls_cli_accepts_it_or_refuses_an_expired_ca_with_45() {
    if !peer_tool!("gnutls-cli") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    for v in VERSIONS {
        for (pki_name, pki) in valid_and_expired(d.path()) {
            let what = format!("gnutls-cli TLS {v}, {pki_name}");
            let (srv, addr) = serve(&pki.fmc, v, &[]);
            let (_, port) = addr.rsplit_once(':').unwrap();
            let mut cmd = Command::new("gnutls-cli");
            cmd.args(["127.0.0.1", "-p", port, "--priority", &gnutls_priority(v)])
                .args([
                    "--x509cafile",
                    s(&pki.ftd.ca),
                    "--x509certfile",
                    s(&pki.ftd.cert),
                ])
                .args(["--x509keyfile", s(&pki.ftd.key)]);
            if pki_name == "valid" {
                // The FMC certificate says CN=localhost, as on the appliance.
                cmd.args(["--verify-hostname", "localhost"]);
            } else {
                // Let gnutls go on past our expired CA so that serve judges its certificate.
                cmd.arg("--insecure");
            }
            let mut cli = Proc::spawn(&mut cmd);
            if pki_name == "valid" {
                cli.wait_for(20, |l| l.contains("Handshake was completed"));
                srv.wait_for(20, |l| {
                    l.contains("SSL connection established with 127.0.0.1")
                        && l.contains(&format!("TLSv{v}"))
                });
                assert!(
                    !cli.text()
                        .contains("verification of server certificate failed"),
                    "{what}: {}",
                    cli.text()
                );
                cli.close_stdin();
            } else {
                cli.wait_for(20, |l| l.contains("Received alert [45]"));
                srv.wait_for(20, |l| l.contains("SSL handshake failed"));
                assert_err10_block(&srv.text());
            }
            cli.wait_exit(20);
        }
    }
}

#[test]
fn serve_against_python_ssl_clients_accepts_or_refuses_with_45() {
    if !peer_tool!("python3") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    for v in VERSIONS {
        for (pki_name, pki) in valid_and_expired(d.path()) {
            let what = format!("python client TLS {v}, {pki_name}");
            let (srv, addr) = serve(&pki.fmc, v, &[]);
            let (host, port) = addr.rsplit_once(':').unwrap();
            // With an expired CA the client must not stop at our chain, so serve judges its.
            let verify = if pki_name == "valid" {
                "verify"
            } else {
                "none"
            };
            let out = run(
                Command::new("python3").args([
                    "-c",
                    PY_CLIENT,
                    host,
                    port,
                    s(&pki.ftd.ca),
                    s(&pki.ftd.cert),
                    s(&pki.ftd.key),
                    v,
                    verify,
                ]),
                40,
            );
            let said = String::from_utf8_lossy(&out.stdout).into_owned();
            if pki_name == "valid" {
                assert!(
                    said.contains(&format!("HANDSHAKE OK TLSv{v}")),
                    "{what}: {said}"
                );
                assert!(
                    said.contains("READ nothing") || said.contains("READ b''"),
                    "{what}: {said}"
                );
                srv.wait_for(20, |l| {
                    l.contains("SSL connection established with 127.0.0.1")
                });
            } else {
                assert!(
                    said.contains("FAILED") && said.contains("alert certificate expired"),
                    "{what}: {said}"
                );
                srv.wait_for(20, |l| l.contains("SSL handshake failed"));
                assert_err10_block(&srv.text());
            }
        }
    }
}

/// The alert records (`level`, `code`, `description`, sent by the server) of `records`.
fn server_alerts(records: &[Value]) -> Vec<(Value, Value, Value)> {
    of_type(records, "alert")
        .into_iter()
        .map(|a| {
            (
                a["level"].clone(),
                a["code"].clone(),
                a["description"].clone(),
            )
        })
        .collect()
}

#[test]
fn serve_answers_a_client_without_certificate_with_openssls_alert_in_both_versions() {
    let d = tempfile::tempdir().unwrap();
    let pki = openssl_pki(d.path(), None);
    for v in VERSIONS {
        // What OpenSSL's own server sends a client that has no certificate ...
        let (mut osrv, oaddr) = openssl_server(&pki.fmc, v, &[]);
        let mut ocli = openssl_client(&oaddr, None, v, &[]);
        ocli.wait_exit(20);
        osrv.close_stdin();
        osrv.wait_exit(20);
        let theirs = alert_number(&ocli.text()).expect("s_client names OpenSSL's alert");
        // ... is what serve sends.
        let pcap = d.path().join(format!("no-cert-{v}.pcap"));
        let (srv, addr) = serve(&pki.fmc, v, &["--pcap", s(&pcap)]);
        let mut cli = openssl_client(&addr, None, v, &[]);
        cli.wait_exit(20);
        let ours = alert_number(&cli.text()).expect("s_client names our alert");
        assert_eq!(ours, theirs, "TLS {v}: ours {ours}, OpenSSL's {theirs}");
        srv.wait_for(20, |l| l.contains("peer did not return a certificate"));
        srv.wait_for(20, |l| l.contains("SSL handshake failed"));
        if v == "1.2" {
            assert_eq!(ours, 40);
            // And the wire agrees with the project's capture of OpenSSL doing it.
            drop(srv);
            let (_, recorded) = analyze(&pcap, &pki.fmc.ca);
            let (_, reference) = analyze(
                &project_captures().join("sftunnel-no-client-cert.pcap"),
                &project_captures().join("valid.ca.pem"),
            );
            assert_eq!(server_alerts(&recorded), server_alerts(&reference));
            assert_eq!(server_alerts(&recorded).len(), 1, "{recorded:?}");
        }
    }
}

/// `SSL alert number N` in an OpenSSL tool's output.
fn alert_number(text: &str) -> Option<u32> {
    let at = text.find("SSL alert number ")? + "SSL alert number ".len();
    text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

// ---- certificates OpenSSL loads ----

/// `certs/openssl-leaf.sh DIR KIND`: the FMC side with an odd certificate of that kind.
fn odd_fmc(pki: &Pki, dir: &Path, kind: &str) -> Side {
    let out = run(
        Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/openssl-leaf.sh"))
            .arg(dir)
            .arg(kind),
        60,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Side {
        ca: pki.fmc.ca.clone(),
        cert: dir.join(format!("fmc-{kind}.pem")),
        key: dir.join(format!("fmc-{kind}.key")),
    }
}

/// `validate` of `fmc` against the device of `pki`: exit status and output.
fn validate(fmc: &Side, pki: &Pki, v: &str) -> (ExitStatus, String, String) {
    let out = run(
        sfdiag()
            .arg("validate")
            .args(fmc.args())
            .args([
                "--peer-cert",
                s(&pki.ftd.cert),
                "--peer-key",
                s(&pki.ftd.key),
            ])
            .args(["--tls-version", v]),
        60,
    );
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_ecdsa_fmc_certificate_negotiates_ecdhe_ecdsa_with_openssl_and_in_validate() {
    let d = tempfile::tempdir().unwrap();
    let pki = openssl_pki(d.path(), None);
    let fmc = odd_fmc(&pki, d.path(), "ecdsa");
    let (st, out, err) = validate(&fmc, &pki, "1.2");
    assert!(st.success(), "{out}{err}");
    assert!(
        out.contains(": ok, TLSv1.2 ECDHE-ECDSA-AES256-GCM-SHA384"),
        "{out}"
    );
    let (st, out, err) = validate(&fmc, &pki, "1.3");
    assert!(st.success() && out.contains(": ok, TLSv1.3 "), "{out}{err}");
    let (srv, addr) = serve(&fmc, "1.2", &[]);
    let mut cli = openssl_client(&addr, Some(&pki.ftd), "1.2", &[]);
    cli.wait_for(20, |l| l.contains("Verify return code: 0 (ok)"));
    cli.wait_for(20, |l| l.contains("ECDHE-ECDSA-AES256-GCM-SHA384"));
    srv.wait_for(20, |l| {
        l.contains("(TLSv1.2, ECDHE-ECDSA-AES256-GCM-SHA384)")
    });
    cli.close_stdin();
    cli.wait_exit(20);
}

/// `openssl verify`'s code for `cert` as a TLS server certificate (0 when it says OK).
fn openssl_verify_code(ca: &Path, cert: &Path) -> u32 {
    let out = run(
        Command::new("openssl").args([
            "verify",
            "-purpose",
            "sslserver",
            "-CAfile",
            s(ca),
            s(cert),
        ]),
        30,
    );
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        return 0;
    }
    let at = text.find("error ").expect("openssl verify names its error") + "error ".len();
    text[at..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no code in {text}"))
}

#[test]
fn fmc_certificates_openssl_loads_are_sent_and_judged_by_the_device_with_openssls_code() {
    let d = tempfile::tempdir().unwrap();
    let pki = openssl_pki(d.path(), None);
    for kind in ["v1", "critical", "badext"] {
        let fmc = odd_fmc(&pki, d.path(), kind);
        let want = openssl_verify_code(&pki.fmc.ca, &fmc.cert);
        for v in VERSIONS {
            let (st, out, err) = validate(&fmc, &pki, v);
            // It loads (no "unusable private key", nothing blamed on the key) ...
            assert!(
                !err.contains("unusable") && !err.contains("invalid peer certificate"),
                "{kind}: {err}"
            );
            // ... and the device's verdict is `openssl verify`'s.
            if want == 0 {
                assert!(
                    st.success() && out.contains(": ok, "),
                    "{kind} TLS {v}: {out}{err}"
                );
            } else {
                assert_eq!(st.code(), Some(1), "{kind} TLS {v}: {out}{err}");
                assert!(
                    out.contains(&format!(
                        "device rejected the FMC's certificate: err {want}:"
                    )),
                    "{kind} TLS {v}: want err {want}: {out}"
                );
            }
        }
        // The same certificate served to OpenSSL's client: the same verify code, and the
        // alert its refusal sends is the alert ours sends.
        let (srv, addr) = serve(&fmc, "1.2", &[]);
        let mut cli = openssl_client(&addr, Some(&pki.ftd), "1.2", &["-verify_return_error"]);
        cli.wait_exit(20);
        let text = cli.text();
        if want == 0 {
            assert!(!has_line(&text, "verify error:"), "{kind}: {text}");
            continue;
        }
        assert!(
            text.contains(&format!("verify error:num={want}:")),
            "{kind}: {text}"
        );
        // The FMC's line for the alert it received (`SSL_renegotiate error: 1: ...`, the
        // alert in OpenSSL's words).
        let theirs = srv.wait_for(20, |l| l.contains("SSL_renegotiate error: 1: "));
        let (st, log) = crate::tunnel::connect_handshake_only(&addr, &pki.ftd, &[]);
        assert_eq!(st.code(), Some(1), "{kind}: {log}");
        assert!(has_line(&log, &format!("err {want}:")), "{kind}: {log}");
        srv.wait_for(20, |l| {
            l.contains("SSL_renegotiate error: 1: ") && l != theirs
        });
        let alerts: Vec<String> = srv
            .text()
            .lines()
            .filter_map(|l| {
                l.split_once("SSL_renegotiate error: 1: ")
                    .map(|(_, a)| a.to_owned())
            })
            .collect();
        assert_eq!(alerts.len(), 2, "{kind}: {}", srv.text());
        assert_eq!(alerts[0], alerts[1], "{kind}: OpenSSL's alert, then ours");
    }
}

#[test]
fn an_rsa_1024_key_is_refused_naming_its_file_and_why() {
    let d = tempfile::tempdir().unwrap();
    let pki = openssl_pki(d.path(), None);
    let fmc = odd_fmc(&pki, d.path(), "rsa1024");
    let (st, out, err) = validate(&fmc, &pki, "1.2");
    assert_eq!(st.code(), Some(2), "{out}{err}");
    assert!(
        err.contains("fmc-rsa1024.key: the 1024-bit RSA key of "),
        "{err}"
    );
    assert!(err.contains("2048 to 8192 bits"), "{err}");
    // What the error says of OpenSSL holds for the one installed: at its default level it
    // refuses the certificate too.
    let out = run(
        Command::new("openssl").args([
            "s_server",
            "-accept",
            "127.0.0.1:0",
            "-cert",
            s(&fmc.cert),
            "-key",
            s(&fmc.key),
        ]),
        20,
    );
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("ee key too small"), "{text}");
}

// ---- connect's setup errors ----

#[test]
fn connect_says_what_is_wrong_with_its_setup_and_dials_8305_without_a_port() {
    let d = tempfile::tempdir().unwrap();
    let pki = openssl_pki(&d.path().join("o"), None);
    // A name that does not resolve is a setup error (2), and not a TLS one.
    let out = run(
        sfdiag()
            .args(["connect", "no-such-fmc.invalid", "--once"])
            .args(pki.ftd.args()),
        60,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot resolve no-such-fmc.invalid:8305"),
        "{err}"
    );
    assert!(!err.contains("tls configuration"), "{err}");
    // An unknown --device: the devices that exist.
    let root = d.path().join("lab");
    our_pki(&root, 2, &[]);
    let out = run(
        sfdiag().args([
            "connect",
            "127.0.0.1",
            "--once",
            "--root",
            s(&root),
            "--device",
            "ftd9",
        ]),
        30,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--device ftd9: not a device of") && err.contains("(its devices: ftd1, ftd2)"),
        "{err}"
    );
    // No port: 8305 (whatever answers there on this machine, the attempt names it).
    let out = run(
        sfdiag()
            .args(["connect", "127.0.0.1", "--once", "--timeout", "1"])
            .args(pki.ftd.args()),
        60,
    );
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        has_line(&log, "Initiating IPv4 connection to 127.0.0.1:8305"),
        "{log}"
    );
    assert!(
        has_line(&log, "Wait to connect to 8305 (IP: 127.0.0.1)"),
        "{log}"
    );
}

// ---- TLS 1.3 against OpenSSL, and where the default comes from ----

#[test]
fn serve_on_tls13_against_openssl_s_client_accepts_it_or_refuses_an_expired_ca_with_45() {
    let d = tempfile::tempdir().unwrap();
    for (pki_name, pki) in valid_and_expired(d.path()) {
        let (srv, addr) = serve(&pki.fmc, "1.3", &[]);
        let mut cli = openssl_client(&addr, Some(&pki.ftd), "1.3", &[]);
        if pki_name == "valid" {
            cli.wait_for(20, |l| l.contains("Verify return code: 0 (ok)"));
            cli.wait_for(20, |l| {
                l.contains("New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384")
            });
            srv.wait_for(20, |l| l.contains("(TLSv1.3, TLS_AES_256_GCM_SHA384)"));
            cli.close_stdin();
            cli.wait_exit(20);
        } else {
            // s_client goes on past our expired CA (it only reports it) and sends its
            // certificate; serve refuses it after s_client's Finished, as OpenSSL 3 does.
            cli.wait_exit(20);
            let out = cli.text();
            assert!(
                out.contains("verify error:num=10:certificate has expired"),
                "{out}"
            );
            assert_eq!(alert_number(&out), Some(45), "{out}");
            srv.wait_for(20, |l| l.contains("SSL handshake failed"));
            assert_err10_block(&srv.text());
        }
    }
}

#[test]
fn tls13_fmc_refusing_the_device_is_an_alert_on_the_device_as_from_openssl() {
    let d = tempfile::tempdir().unwrap();
    let [(_, ok), (_, old)] = valid_and_expired(d.path());
    // The FMC trusts only the expired CA; the device trusts the valid one but presents a
    // certificate of the expired one: OpenSSL's server refuses it after the handshake.
    let fmc = Side {
        ca: old.fmc.ca.clone(),
        ..ok.fmc.clone()
    };
    let device = Side {
        ca: ok.ftd.ca.clone(),
        ..old.ftd.clone()
    };
    let (mut srv, addr) = openssl_server(&fmc, "1.3", &[]);
    let (st, log) = once(&addr, &device, "1.3", &[]);
    assert_eq!(st.code(), Some(1), "{log}");
    assert!(
        has_line(
            &log,
            "SSL_renegotiate error: 1: error:0A000415:SSL routines::sslv3 alert certificate expired"
        ),
        "{log}"
    );
    assert!(has_line(&log, "Connect:SSL handshake failed"), "{log}");
    assert!(!has_line(&log, "not an sfdiag FMC"), "{log}");
    srv.close_stdin();
    srv.wait_exit(20);
    assert!(
        srv.text().contains("verify error:num=10:"),
        "{}",
        srv.text()
    );
    // sfdiag's own FMC in TLS 1.3 refuses it the same way, with FMC 7.6's lines after.
    let (srv, addr) = serve(&fmc, "1.3", &[]);
    let (st, log) = once(&addr, &device, "1.3", &[]);
    assert_eq!(st.code(), Some(1), "{log}");
    assert!(
        has_line(&log, "SSL routines::sslv3 alert certificate expired"),
        "{log}"
    );
    srv.wait_for(20, |l| l.contains("needs re-connect"));
    let fmc_log = srv.text();
    assert_err10_block(&fmc_log);
    for want in [
        "Unable to set Post Handshake Auth SSL context: SSL_verify_client_post_handshake:extension not received",
        "Failed to reload credentials",
        "Failed to add services",
        "Peer 127.0.0.1 needs re-connect",
    ] {
        assert!(has_line(&fmc_log, want), "{want}: {fmc_log}");
    }
}

#[test]
fn pki_init_tls_version_is_what_serve_connect_and_validate_run_by_default() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab76");
    our_pki(&root, 1, &["--tls-version", "1.3"]);
    let conf = std::fs::read_to_string(root.join("fmc/etc/sf/sftunnel.conf")).unwrap();
    assert!(conf.contains("proxy_tls_version TLSv1.3;"), "{conf}");
    let dev_conf = std::fs::read_to_string(root.join("ftd1/etc/sf/sftunnel.conf")).unwrap();
    assert!(
        dev_conf.contains("proxy_tls_version TLSv1.3;"),
        "{dev_conf}"
    );
    let (srv, addr) = crate::tunnel::serve(&["--root".into(), s(&root).into()]);
    let out = run(
        sfdiag().args([
            "connect",
            &addr,
            "--once",
            "--root",
            s(&root),
            "--device",
            "ftd1",
        ]),
        60,
    );
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{log}");
    assert!(has_line(&log, "(TLSv1.3, TLS_AES_256_GCM_SHA384)"), "{log}");
    assert!(has_line(&log, "registered this device as ftd1"), "{log}");
    srv.wait_for(20, |l| l.contains("(TLSv1.3, TLS_AES_256_GCM_SHA384)"));
    // A device told to speak 1.2 to it fails: the FMC speaks only 1.3.
    let out = run(
        sfdiag().args([
            "connect",
            &addr,
            "--once",
            "--root",
            s(&root),
            "--device",
            "ftd1",
            "--tls-version",
            "1.2",
        ]),
        60,
    );
    let log = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(has_line(&log, "SSL handshake failed"), "{log}");
    let out = run(sfdiag().args(["validate", "--root", s(&root)]), 60);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(": ok, TLSv1.3 TLS_AES_256_GCM_SHA384"),
        "{text}"
    );
}
