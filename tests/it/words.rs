//! The appliance's own words (APPLIANCE.md), as golden files: what `pki renew`, `FAILED_PUSH`
//! and `pki copy` print on a lab made with the transcripts' own names, UUIDs and times, whole,
//! compared with `tests/golden/*.snap` (refresh: `INSTA_UPDATE=always cargo test --locked
//! --test it words::`, then read `git diff tests/golden`). The lab root's path is the only
//! thing replaced (by `ROOT`): it is a temporary folder.

use std::path::Path;
use std::process::Output;

use crate::common::sfdiag;

/// The FMC and the first device of APPLIANCE.md's renewal transcript.
const FMC_UUID: &str = "cdb123c8-4347-11ef-aca1-f3aa241412a1";
const BSNS_UUID: &str = "c8d5d5c6-87c9-11ef-a993-b9831565bc4e";
/// A second device for the transcript's EMEA-FPR3110-08 (its UUID is not shown there).
const EMEA_UUID: &str = "d1e2f3a4-87c9-11ef-a993-b9831565bc4e";
/// The renewal's time: unix 1728915794, the transcript's `var/tmp/certs/1728915794`.
const RENEW_AT: &str = "2024-10-14T14:23:14Z";
/// An InternalCA of 3650 days that ends `Oct  9 10:12:50 2034 GMT`, as in the transcript.
const CA_NOT_BEFORE: &str = "2024-10-11T10:12:50Z";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn run(args: &[&str]) -> Output {
    sfdiag().args(args).output().expect("run sfdiag")
}

/// stdout with the root replaced, and the exit code.
fn transcript(o: &Output, root: &Path) -> String {
    let mut t = String::from_utf8_lossy(&o.stdout).replace(s(root), "ROOT");
    t.push_str(&format!("[exit {}]\n", o.status.code().unwrap_or(-1)));
    t
}

fn golden(name: &str, description: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../golden");
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.set_description(description);
    settings.bind(|| insta::assert_snapshot!(name, text));
}

/// `pki init` of the transcripts' FMC and two devices.
fn lab(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("lab");
    let o = run(&[
        "pki",
        "init",
        "--root",
        s(&root),
        "--fmc-uuid",
        FMC_UUID,
        "--device",
        &format!("BSNS-1120-1={BSNS_UUID}"),
        "--device",
        &format!("EMEA-FPR3110-08={EMEA_UUID}"),
        "--not-before",
        CA_NOT_BEFORE,
        "--days",
        "3650",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    root
}

/// generate_certs.pl's dialogue with `--yes`, no sftunnel running: every file of both devices
/// failed to push, in the order cacert, key, cert, then where FAILED_PUSH is; FAILED_PUSH as
/// the appliance writes it; then `pki copy` of copy_sftunnel_certs.py with the FMC's row, a
/// device, and a device that cannot be reached.
#[test]
fn renew_with_failed_pushes_failed_push_and_copy_in_the_appliances_words() {
    let d = tempfile::tempdir().unwrap();
    let root = lab(d.path());
    let args = [
        "pki",
        "renew",
        "--root",
        s(&root),
        "--yes",
        "--at",
        RENEW_AT,
    ];
    let o = run(&args);
    golden(
        "renew-failed-push.txt",
        "sfdiag pki renew --root ROOT --yes --at 2024-10-14T14:23:14Z (no serve running)",
        &transcript(&o, &root),
    );

    let fp = root.join("fmc/var/tmp/certs/1728915794/FAILED_PUSH");
    let list = std::fs::read_to_string(&fp).unwrap();
    golden(
        "failed-push.txt",
        "ROOT/fmc/var/tmp/certs/1728915794/FAILED_PUSH after that renewal",
        &list,
    );

    // The FMC first (as copy_sftunnel_certs.py's devices.csv lists it), a device, and one
    // that is not there.
    let csv = d.path().join("devices.csv");
    std::fs::write(
        &csv,
        "#device_name,ipaddr,login,password\n\
         fmc,127.0.0.1,admin,Admin123\n\
         BSNS-1120-1,127.1.0.1,admin,Admin123\n\
         FTDv,10.48.67.99,admin,Admin123\n",
    )
    .unwrap();
    let o = run(&[
        "pki",
        "copy",
        "--root",
        s(&root),
        "--devices",
        s(&csv),
        "--at",
        "2024-11-12T14:07:36Z",
    ]);
    golden(
        "copy.txt",
        "sfdiag pki copy --root ROOT --devices devices.csv --at 2024-11-12T14:07:36Z (fmc, BSNS-1120-1, an unreachable FTDv)",
        &transcript(&o, &root),
    );
    // The device that was copied to holds the FMC's files for it.
    let own = root.join(format!("BSNS-1120-1/var/sf/peers/{FMC_UUID}"));
    for f in ["cacert.pem", "sftunnel-key.pem", "sftunnel-cert.pem"] {
        assert_eq!(
            std::fs::read(own.join(f)).unwrap(),
            std::fs::read(root.join(format!("fmc/var/sf/peers/{BSNS_UUID}/certs_pushed/{f}")))
                .unwrap(),
            "{f}"
        );
    }
}
