//! What `pki renew` prints: `generate_certs.pl`'s own dialogue, line for line, then sfdiag's
//! summary of what it did (and with `-v`, the details).
//!
//! The appliance's transcript (APPLIANCE.md) comes first and alone, so a script written against
//! the box reads the lab unchanged:
//!
//! ```text
//! setting log file to <root>/fmc/var/log/sf/sfca_generation.log
//!
//! You are about to generate new certificates for FMC and devices.
//! ...
//! Do you want to continue? [yes/no]:yes
//!
//! Current ca_root expires in 3646 days - at Oct  9 10:12:50 2034 GMT
//! Do you want to continue? [yes/no]:yes
//!
//! Failed to push to ftd3 = /var/sf/peers/<FMC-UUID>/cacert.pem
//! ...
//!
//! Some files were failed to be pushed to remote peers. For more details check <root>/fmc/var/tmp/certs/<unix>/FAILED_PUSH
//! ```
//!
//! Paths of files on the FMC (the log, `FAILED_PUSH`) are the lab's own, under its root, so
//! they can be opened; paths on the device (`/var/sf/peers/<FMC-UUID>/...`) are the appliance's,
//! as the script prints them. The days left are the script's arithmetic: whole days, cut toward
//! zero, negative once the CA has ended. After the transcript: one `sfdiag:` summary line, then
//! (verbose) what was made and what each push answered.
//!
//! Layout only: `pki::renew` decides what was renewed, pushed and recorded.

use std::borrow::Cow;
use std::io::{self, Write};
use std::path::Path;

use crate::pki::fsio::Recovery;
use crate::pki::renew::{
    self, GENERATION_LOG, Preflight, PushOutcome, PushRecord, Renewal, Unrecorded,
};
use crate::sftunnel::{openssl_date, rfc3339};
use crate::tunnel::renewal::RenewRun;

/// The question `generate_certs.pl` asks twice (no newline: the answer follows it).
pub const QUESTION: &str = "Do you want to continue? [yes/no]:";

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

/// The script's opening: where it logs, the notice, and the first question (unanswered).
pub fn opening(w: &mut dyn Write, p: &Preflight) -> io::Result<()> {
    let log = p.root.layout.fmc_dir().join(GENERATION_LOG);
    writeln!(w, "setting log file to {}", log.display())?;
    writeln!(w)?;
    writeln!(
        w,
        "You are about to generate new certificates for FMC and devices."
    )?;
    writeln!(
        w,
        "After successful cert generation, device specific certs will be pushed automatically"
    )?;
    writeln!(
        w,
        "If the connection between FMC and a device is down, user needs to copy the certificates onto the device manually"
    )?;
    writeln!(
        w,
        "For more details on disconnected devices, use sftunnel_status.pl"
    )?;
    write!(w, "{QUESTION}")
}

/// An answer the user did not type (`--yes`, the lab): printed after the question as the
/// appliance's terminal shows a typed one. A typed answer is echoed by the terminal instead.
pub fn answered(w: &mut dyn Write, answer: &str) -> io::Result<()> {
    writeln!(w, "{answer}")
}

/// The InternalCA's end (the whole days left, cut toward zero as the script's arithmetic
/// does) and the second question (unanswered).
pub fn ca_question(w: &mut dyn Write, p: &Preflight) -> io::Result<()> {
    let days = (p.ca_not_after - p.at).whole_days();
    writeln!(w)?;
    writeln!(
        w,
        "Current ca_root expires in {days} days - at {}",
        openssl_date(p.ca_not_after)
    )?;
    write!(w, "{QUESTION}")
}

/// What follows the second answer, before the new files are made.
pub fn confirmed(w: &mut dyn Write) -> io::Result<()> {
    writeln!(w)
}

/// The script's account of the pushes: one `Failed to push to NAME = DEST` per file of each
/// peer not pushed (cacert, key, cert), then where `FAILED_PUSH` is. Nothing when every peer
/// got its files.
pub fn pushes(
    w: &mut dyn Write,
    r: &Renewal,
    outcomes: &[PushOutcome],
    rec: &PushRecord,
) -> io::Result<()> {
    let mut any = false;
    for p in renew::not_pushed(r, outcomes) {
        for f in &p.files {
            writeln!(
                w,
                "Failed to push to {} = {}",
                p.identity.name, f.dest_on_peer
            )?;
            any = true;
        }
    }
    if !any {
        return Ok(());
    }
    writeln!(w)?;
    // When FAILED_PUSH could not be written, the script's line still names where it belongs;
    // the summary says it is missing and prints its lines.
    let path = rec
        .failed_push
        .clone()
        .unwrap_or_else(|| r.root.layout.failed_push(r.unix_time()));
    writeln!(
        w,
        "Some files were failed to be pushed to remote peers. For more details check {}",
        path.display()
    )
}

/// A record that could not be written, with what it would have held.
fn unrecorded(w: &mut dyn Write, u: &Unrecorded) -> io::Result<()> {
    writeln!(
        w,
        "sfdiag: could not write {} ({}); what it would have held:",
        u.path.display(),
        u.error
    )?;
    for l in &u.lines {
        writeln!(w, "  {l}")?;
    }
    Ok(())
}

/// What sfdiag adds after the transcript.
#[derive(Clone, Copy, Debug)]
pub struct Summary<'a> {
    /// The renewal whose files were pushed.
    pub renewal: &'a Renewal,
    /// One per peer asked, in push order.
    pub outcomes: &'a [PushOutcome],
    /// What the push left on disk (counts, `FAILED_PUSH`, lines not written).
    pub record: &'a PushRecord,
    /// How the FMC's own sftunnel took the new files (`tunnel::renewal`'s words), if a server
    /// was asked.
    pub server: Option<&'a str>,
    /// What finishing or undoing a dead run did before this one.
    pub recovered: &'a Option<Recovery>,
    /// `-v`: what was made, and each push's answer.
    pub verbose: bool,
}

/// The `sfdiag:` summary line after the transcript; with `verbose`, the details below it.
/// Records that could not be written are always shown, with their lines.
pub fn summary(w: &mut dyn Write, s: &Summary<'_>) -> io::Result<()> {
    let r = s.renewal;
    let rec = s.record;
    let total = rec.pushed + rec.failed;
    // Peers not pushed, grouped by why (in the renewal's order), so one reason for all is
    // said once.
    let mut failed: Vec<(String, Vec<&str>)> = Vec::new();
    for p in renew::not_pushed(r, s.outcomes) {
        let why = match s.outcomes.iter().find(|o| o.uuid == p.identity.uuid) {
            Some(PushOutcome { result: Err(e), .. }) => e.clone(),
            _ => "not attempted".to_owned(),
        };
        match failed.iter_mut().find(|(w, _)| *w == why) {
            Some((_, names)) => names.push(&p.identity.name),
            None => failed.push((why, vec![&p.identity.name])),
        }
    }
    let mut line = format!(
        "sfdiag: new InternalCA for FMC {} valid {} .. {}; certificates pushed to {} of {total} peer(s)",
        r.root.fmc.uuid,
        rfc3339(&r.ca_validity.not_before),
        rfc3339(&r.ca_validity.not_after),
        rec.pushed
    );
    if !failed.is_empty() {
        let groups: Vec<String> = failed
            .iter()
            .map(|(why, names)| format!("{} ({why})", names.join(", ")))
            .collect();
        line += &format!(
            "; not pushed: {}: copy their files (sfdiag pki copy, as copy_sftunnel_certs.py does)",
            groups.join("; ")
        );
    }
    writeln!(w, "{line}")?;
    let mut recovered = Vec::new();
    recovery(&mut recovered, s.recovered)?;
    for l in String::from_utf8_lossy(&recovered).lines() {
        writeln!(w, "sfdiag: {l}")?;
    }
    for u in r.unrecorded.iter().chain(&rec.unrecorded) {
        unrecorded(w, u)?;
    }
    if s.verbose {
        details(w, s)?;
    }
    Ok(())
}

/// A confirmed `pki renew` as `tunnel::renewal::renew_and_push` ran it: the script's account
/// of the pushes, then sfdiag's summary (`verbose`: its details). `pki renew` and `sfdiag lab`
/// both print a renewal with this.
pub fn run(w: &mut dyn Write, run: &RenewRun, verbose: bool) -> io::Result<()> {
    pushes(w, &run.renewal, &run.delivery.outcomes, &run.record)?;
    summary(
        w,
        &Summary {
            renewal: &run.renewal,
            outcomes: &run.delivery.outcomes,
            record: &run.record,
            server: Some(run.delivery.server.describe()),
            recovered: &run.recovered,
            verbose,
        },
    )
}

/// `-v`: what the renewal made and what each push answered.
fn details(w: &mut dyn Write, s: &Summary<'_>) -> io::Result<()> {
    let r = s.renewal;
    let root = r.root.layout.root();
    writeln!(
        w,
        "  new InternalCA: v1, serial 0, CN={}, sha256 {}",
        r.root.fmc.uuid, r.ca_sha256
    )?;
    writeln!(
        w,
        "  reissued the FMC's sftunnel certificate (serial {:X})",
        r.fmc_serial
    )?;
    for p in &r.peers {
        writeln!(
            w,
            "  reissued {} {} {} (serial {:X}) -> {}",
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
    writeln!(w, "  kept {} replaced file(s) as *.backup", r.backups.len())?;
    if let Some(server) = s.server {
        writeln!(w, "  {server}")?;
    }
    for o in s.outcomes {
        let ip = r
            .peers
            .iter()
            .find(|p| p.identity.uuid == o.uuid)
            .map(|p| p.identity.ip.to_string())
            .unwrap_or_default();
        match &o.result {
            Ok(m) => writeln!(w, "  pushed to {} ({}, {ip}): {m}", o.name, o.uuid)?,
            Err(e) => writeln!(w, "  not pushed to {} ({}, {ip}): {e}", o.name, o.uuid)?,
        }
    }
    if let Some(fp) = &s.record.failed_push {
        writeln!(w, "  FAILED_PUSH: {}", fp.display())?;
    }
    Ok(())
}
