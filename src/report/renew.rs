//! What `pki renew` prints: the preflight before the prompt, the renewal once its files are in
//! place, the pushes' outcome, and what finishing or undoing a dead run's change did.
//!
//! Layout only: `pki::renew` decides what was renewed, pushed and recorded; these functions
//! turn its values into the lines users and scripts read (kept stable: CLI.md).

use std::borrow::Cow;
use std::io::{self, Write};
use std::path::Path;

use crate::pki::fsio::Recovery;
use crate::pki::renew::{GENERATION_LOG, Preflight, PushOutcome, PushRecord, Renewal, Unrecorded};
use crate::sftunnel::rfc3339;

fn rel_to<'a>(root: &Path, p: &'a Path) -> Cow<'a, str> {
    match p.strip_prefix(root) {
        Ok(r) => r.to_string_lossy(),
        Err(_) => p.to_string_lossy(),
    }
}

/// What recovering from a dead run did, if anything (shared by renew, copy and init).
pub fn recovery(w: &mut dyn Write, r: &Option<Recovery>) -> io::Result<()> {
    let Some(r) = r else { return Ok(()) };
    match &r.what {
        Some(what) if r.finished => writeln!(
            w,
            "Finished an interrupted {what} left by an earlier run: {} file(s) put in place",
            r.written.len()
        )?,
        Some(what) => writeln!(
            w,
            "Undid an interrupted {what} left by an earlier run: it had not changed any file"
        )?,
        None => {}
    }
    if !r.swept.is_empty() && r.what.is_none() {
        writeln!(
            w,
            "Removed {} leftover staging folder(s) of an earlier run",
            r.swept.len()
        )?;
    }
    Ok(())
}

/// The lines `pki renew` prints before asking to continue.
pub fn preflight(w: &mut dyn Write, p: &Preflight) -> io::Result<()> {
    recovery(w, &p.recovered)?;
    let l = &p.root.layout;
    writeln!(
        w,
        "Setting log file to {}",
        l.fmc_dir().join(GENERATION_LOG).display()
    )?;
    writeln!(
        w,
        "This generates a new InternalCA for FMC {} and new sftunnel certificates for the FMC and {} peer(s), then pushes each peer's files over its tunnel.",
        p.root.fmc.uuid,
        p.root.peers.len()
    )?;
    writeln!(
        w,
        "Current InternalCA ({}) notAfter {}: {}",
        rel_to(l.root(), &l.ca_cert()),
        rfc3339(&p.ca_not_after),
        p.standing
    )
}

/// A record that could not be written, with what it would have held.
fn unrecorded(w: &mut dyn Write, u: &Unrecorded) -> io::Result<()> {
    writeln!(
        w,
        "Could not write {} ({}); what it would have held:",
        u.path.display(),
        u.error
    )?;
    for l in &u.lines {
        writeln!(w, "  {l}")?;
    }
    Ok(())
}

/// What `pki renew` prints once the new files are in place.
pub fn renewal(w: &mut dyn Write, r: &Renewal) -> io::Result<()> {
    let root = r.root.layout.root();
    writeln!(
        w,
        "New InternalCA for FMC {}: v1, serial 0, {} .. {}, sha256 {}",
        r.root.fmc.uuid,
        rfc3339(&r.ca_validity.not_before),
        rfc3339(&r.ca_validity.not_after),
        &r.ca_sha256[..16]
    )?;
    writeln!(
        w,
        "Reissued sftunnel certificate for the FMC (serial {:X})",
        r.fmc_serial
    )?;
    for p in &r.peers {
        writeln!(
            w,
            "Reissued sftunnel certificate for {} {} {} (serial {:X}) -> {}",
            p.identity.role,
            p.identity.name,
            p.identity.uuid,
            p.serial,
            rel_to(
                root,
                p.files[0]
                    .source
                    .parent()
                    .unwrap_or(Path::new("certs_pushed"))
            )
        )?;
    }
    writeln!(w, "Kept {} replaced file(s) as *.backup", r.backups.len())?;
    for u in &r.unrecorded {
        unrecorded(w, u)?;
    }
    Ok(())
}

/// What `pki renew` prints after the pushes.
pub fn push(
    w: &mut dyn Write,
    r: &Renewal,
    outcomes: &[PushOutcome],
    rec: &PushRecord,
) -> io::Result<()> {
    for o in outcomes {
        let ip = r
            .peers
            .iter()
            .find(|p| p.identity.uuid == o.uuid)
            .map(|p| p.identity.ip.to_string())
            .unwrap_or_default();
        match &o.result {
            Ok(m) => writeln!(
                w,
                "Pushed certificates to {} ({}, {ip}): {m}",
                o.name, o.uuid
            )?,
            Err(e) => writeln!(
                w,
                "Could not push certificates to {} ({}, {ip}): {e}",
                o.name, o.uuid
            )?,
        }
    }
    for u in &rec.unrecorded {
        unrecorded(w, u)?;
    }
    let total = rec.failed + rec.pushed;
    match &rec.failed_push {
        _ if rec.failed == 0 => writeln!(
            w,
            "Certificates pushed to all {} peer(s). Done.",
            rec.pushed
        ),
        Some(path) => writeln!(
            w,
            "Failed to push certificates to {} of {total} peer(s). The list of their files is in {}: copy them to those devices (sfdiag pki copy, as copy_sftunnel_certs.py does).",
            rec.failed,
            path.display()
        ),
        None => writeln!(
            w,
            "Failed to push certificates to {} of {total} peer(s). Their FAILED_PUSH lines are above: copy those files to those devices (sfdiag pki copy, as copy_sftunnel_certs.py does).",
            rec.failed,
        ),
    }
}
