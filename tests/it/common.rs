//! Helpers shared by the integration tests: where the binary, the project's own fixtures and
//! the third-party corpus are, and how a test that needs that corpus skips without it.
//!
//! The corpus (`../shared/captures/`, `../shared/captures-new/`: captures with ground truth
//! made by others) is not part of the project. A test that needs it asks [`corpus!`]: when
//! the folder is missing it prints one `SKIPPED (no ../shared/captures): module::test` line
//! on stderr and returns, so `cargo test` passes in a bare clone and says what it did not
//! run. `SFDIAG_REQUIRE_CORPUS=1` (set by `.ci/run`) turns that skip into a failure, so CI
//! cannot pass without the corpus.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `sfdiag` binary built for this test run.
pub(crate) fn sfdiag() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sfdiag"))
}

/// `../shared` beside the project (CI lays a copy there too).
pub(crate) fn shared_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

/// The third-party captures with ground truth. Tests reach it through [`corpus!`], which
/// skips them when it is absent.
pub(crate) fn shared_captures() -> PathBuf {
    shared_dir().join("captures")
}

/// The variable that turns a corpus skip into a failure (`.ci/run` sets it).
pub(crate) const REQUIRE_CORPUS: &str = "SFDIAG_REQUIRE_CORPUS";

/// `../shared/<folder>` when it is there. When it is not: a failure if [`REQUIRE_CORPUS`] is
/// set (to anything but empty or `0`), else `None` after one `SKIPPED` line naming `test`
/// and, if given, the part of it that did not run. Use [`corpus!`], which names the test.
pub(crate) fn find_corpus(folder: &str, test: &str, part: Option<&str>) -> Option<PathBuf> {
    let dir = shared_dir().join(folder);
    if dir.is_dir() {
        return Some(dir);
    }
    let required = std::env::var(REQUIRE_CORPUS).is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        !required,
        "{test}: ../shared/{folder} is missing and {REQUIRE_CORPUS} is set \
         (CI must run with the corpus: lay ../shared beside the project)"
    );
    let part = part.map(|p| format!(" ({p})")).unwrap_or_default();
    // Straight to the process's stderr: libtest captures `eprintln!` of passing tests, and
    // this line is meant to be seen.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED (no ../shared/{folder}): {test}{part}"
    );
    None
}

/// `corpus!("captures")` -> `Option<PathBuf>`: [`find_corpus`] for the calling test, named by its
/// module path (`truth::analyze_agrees_...`). `corpus!("captures", "the two zeek captures")`
/// names the part of the test that is skipped when the rest still runs.
macro_rules! corpus {
    ($folder:literal $(, $part:expr)?) => {{
        fn here() {}
        let name = std::any::type_name_of_val(&here);
        let name = name.strip_suffix("::here").unwrap_or(name);
        let name = name.strip_prefix("it::").unwrap_or(name);
        #[allow(unused_mut, unused_assignments)]
        let mut part: Option<&str> = None;
        $(part = Some($part);)?
        $crate::common::find_corpus($folder, name, part)
    }};
}
pub(crate) use corpus;

/// The project's own openssl recipe for an sftunnel-shaped PKI (`certs/openssl-pki.sh`).
pub(crate) fn openssl_pki_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("certs/openssl-pki.sh")
}

/// Runs [`openssl_pki_script`] into `dir` (ca, fmc, ftd `.pem` + `.key`), with the
/// InternalCA valid `ca_window` (`YYYYMMDDHHMMSSZ` both) when given, else now + 3650 days.
pub(crate) fn openssl_pki(dir: &Path, ca_window: Option<(&str, &str)>) {
    assert!(
        have_openssl(),
        "the openssl command is needed (.ci/run installs it)"
    );
    let mut cmd = Command::new("bash");
    cmd.arg(openssl_pki_script()).arg(dir);
    if let Some((from, to)) = ca_window {
        cmd.args([from, to]);
    }
    let out = cmd.output().expect("run certs/openssl-pki.sh");
    assert!(
        out.status.success(),
        "certs/openssl-pki.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The project's own recorded captures.
pub(crate) fn project_captures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("captures")
}

/// True when the `openssl` command is on PATH (CI installs it; tests that cross-check need it).
pub(crate) fn have_openssl() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The variable that turns a missing interop peer (gnutls-serv, python3, ...) into a failure
/// (`.ci/run` sets it, and installs them).
pub(crate) const REQUIRE_PEERS: &str = "SFDIAG_REQUIRE_PEERS";

/// True when `tool` runs (`tool --version`, or `-h` for those without one). When it does not:
/// a failure if [`REQUIRE_PEERS`] is set (to anything but empty or `0`), else false after one
/// `SKIPPED (no TOOL): test` line. Use [`peer_tool!`], which names the test.
pub(crate) fn find_tool(tool: &str, test: &str) -> bool {
    let runs = |arg: &str| {
        Command::new(tool)
            .arg(arg)
            .stdin(std::process::Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if runs("--version") || runs("version") {
        return true;
    }
    let required = std::env::var(REQUIRE_PEERS).is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        !required,
        "{test}: {tool} is not installed and {REQUIRE_PEERS} is set (.ci/run installs it)"
    );
    let _ = writeln!(std::io::stderr(), "SKIPPED (no {tool}): {test}");
    false
}

/// `peer_tool!("gnutls-serv")` -> bool: [`find_tool`] for the calling test.
macro_rules! peer_tool {
    ($tool:literal) => {{
        fn here() {}
        let name = std::any::type_name_of_val(&here);
        let name = name.strip_suffix("::here").unwrap_or(name);
        let name = name.strip_prefix("it::").unwrap_or(name);
        $crate::common::find_tool($tool, name)
    }};
}
pub(crate) use peer_tool;
