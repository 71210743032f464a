//! Helpers shared by the integration tests: where the binary and the shared corpus are.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The `sfdiag` binary built for this test run.
pub fn sfdiag() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sfdiag"))
}

/// `../shared` beside the project (CI lays a copy there too).
pub fn shared_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

/// The third-party captures with ground truth.
pub fn shared_captures() -> PathBuf {
    shared_dir().join("captures")
}

/// The project's own recorded captures.
pub fn project_captures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("captures")
}

/// True when the `openssl` command is on PATH (CI installs it; tests that cross-check need it).
pub fn have_openssl() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}
