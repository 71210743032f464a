//! What `pki copy` prints, one line (or two) per [`CopyEvent`] as the copy goes: the lines of
//! `copy_sftunnel_certs.py` (`Attempting connection to X`, `Successfully copied certificates
//! to X`, `Could not connect to X`) that users grep for, kept stable (CLI.md).
//!
//! Layout only: `pki::copy` decides what happened to each device.

use std::io::{self, Write};

use crate::pki::copy::{CopyEvent, Restart};

/// The lines for one event.
pub fn event(w: &mut dyn Write, e: &CopyEvent) -> io::Result<()> {
    match e {
        CopyEvent::UsingFmc { name, ip } => writeln!(
            w,
            "Using {name} ({ip}) as the FMC: certificates are read from it"
        ),
        CopyEvent::Attempting { name } => writeln!(w, "Attempting connection to {name}"),
        CopyEvent::Unreachable { name, error } => {
            writeln!(w, "Could not connect to {name}")?;
            writeln!(w, "  ({error})")
        }
        CopyEvent::Skipped { name, why } => writeln!(w, "Skipping {name}: {why}"),
        CopyEvent::Copied { name, restart } => {
            writeln!(w, "Successfully copied certificates to {name}")?;
            match restart {
                Restart::Restarted => writeln!(w, "Restarted sftunnel on {name}"),
                Restart::OnNextAttempt => writeln!(
                    w,
                    "sftunnel on {name} loads the new certificates at its next connection attempt"
                ),
            }
        }
        CopyEvent::Failed { name, error } => {
            writeln!(w, "Could not copy certificates to {name}: {error}")
        }
        CopyEvent::Done {
            copied,
            failed,
            skipped,
        } => writeln!(
            w,
            "Copied certificates to {copied} device(s); {failed} failed, {skipped} skipped"
        ),
    }
}
