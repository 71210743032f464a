//! What `pki copy` prints: `copy_sftunnel_certs.py`'s transcript, line for line, as the copy
//! goes, then sfdiag's summary (and the reasons the script does not print).
//!
//! ```text
//!
//! =====
//!
//! 2024-11-12 14:07:36 - Attempting connection to FMCpri
//! 2024-11-12 14:07:40 - Connected to FMCpri
//! 2024-11-12 14:07:41 - FMCpri is not an HA-peer. Certificates will not be copied
//! 2024-11-12 14:07:41 - Closing connection with FMCpri
//!
//! =====
//!
//! 2024-11-12 14:07:41 - Attempting connection to FTDv
//! 2024-11-12 14:07:43 - Connected to FTDv
//! 2024-11-12 14:07:44 - Copying certificates to peer
//! 2024-11-12 14:07:44 - Successfully copied certificates to FTDv
//! 2024-11-12 14:07:44 - Restarting sftunnel for FTDv
//! 2024-11-12 14:07:44 - Closing connection with FTDv
//!
//! =====
//!
//! 2024-11-12 14:07:44 - Attempting connection to BSNS-1120-1
//! 2024-11-12 14:08:04 - Could not connect to BSNS-1120-1
//!
//! =====
//! ```
//!
//! Each event carries its stamp (the caller's clock: the lab's, or `--at`). The lines the
//! script has no words for (a listed name that is no peer of the FMC, an install that failed)
//! are stamped lines of the same block in sfdiag's words. After the last `=====`: one
//! `sfdiag:` summary line, and why each failed appliance failed.
//!
//! Layout only: `pki::copy` decides what happened to each appliance.

use std::io::{self, Write};

use time::OffsetDateTime;

use crate::pki::copy::{CopyEvent, Restart};
use crate::sftunnel::script_stamp;

/// Lays out one copy's events as they come. The separator opens the transcript with the first
/// event; each block ends with its own `=====`.
pub struct Transcript<W: Write> {
    w: W,
    opened: bool,
    /// Why appliances failed, and notes on restarts, for the summary.
    notes: Vec<String>,
}

impl<W: Write> Transcript<W> {
    /// A transcript that writes to `w`; nothing is written before the first event.
    pub fn new(w: W) -> Self {
        Transcript {
            w,
            opened: false,
            notes: Vec::new(),
        }
    }

    fn line(&mut self, at: OffsetDateTime, text: &str) -> io::Result<()> {
        writeln!(self.w, "{} - {text}", script_stamp(at))
    }

    fn end_block(&mut self) -> io::Result<()> {
        writeln!(self.w)?;
        writeln!(self.w, "=====")
    }

    /// The lines for one event stamped `at`.
    pub fn event(&mut self, at: OffsetDateTime, e: &CopyEvent) -> io::Result<()> {
        if !self.opened {
            self.opened = true;
            self.end_block()?;
        }
        match e {
            CopyEvent::Attempting { name } => {
                writeln!(self.w)?;
                self.line(at, &format!("Attempting connection to {name}"))
            }
            CopyEvent::Unreachable { name, error } => {
                // The transport's error names the appliance already.
                self.notes.push(error.clone());
                self.line(at, &format!("Could not connect to {name}"))?;
                self.end_block()
            }
            CopyEvent::Connected { name } => self.line(at, &format!("Connected to {name}")),
            CopyEvent::NotHaPeer { name } => self.line(
                at,
                &format!("{name} is not an HA-peer. Certificates will not be copied"),
            ),
            CopyEvent::Skipped { why, .. } => self.line(at, why),
            CopyEvent::Copying { .. } => self.line(at, "Copying certificates to peer"),
            CopyEvent::Copied { name } => {
                self.line(at, &format!("Successfully copied certificates to {name}"))
            }
            CopyEvent::Restarted { name, restart } => {
                if *restart == Restart::OnNextAttempt {
                    self.notes.push(format!(
                        "no running sftunnel of {name} could be restarted: it loads the new certificates at its next connection attempt"
                    ));
                }
                self.line(at, &format!("Restarting sftunnel for {name}"))
            }
            CopyEvent::Failed { name, error } => {
                self.notes
                    .push(format!("could not copy certificates to {name}: {error}"));
                self.line(at, &format!("Could not copy certificates to {name}"))
            }
            CopyEvent::Closing { name } => {
                self.line(at, &format!("Closing connection with {name}"))?;
                self.end_block()
            }
            CopyEvent::Done {
                copied,
                failed,
                skipped,
            } => {
                writeln!(
                    self.w,
                    "sfdiag: copied certificates to {copied} appliance(s); {failed} failed, {skipped} skipped"
                )?;
                for n in std::mem::take(&mut self.notes) {
                    writeln!(self.w, "sfdiag: {n}")?;
                }
                self.w.flush()
            }
        }
    }
}
