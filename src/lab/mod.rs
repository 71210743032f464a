//! `sfdiag lab`: whole renewal stories run in-process on loopback, in seconds, with a lab clock.
//!
//! Owns the scenarios ([`Scenario`]) and the stage they play on (`world`): a lab PKI made by
//! `pki::init` (in a temporary folder unless a root is given), the FMC's real `serve` with its
//! control socket (in the HA stories, one per FMC: the primary's and the secondary's, each
//! with its own InternalCA) and the devices' real `connect` clients (one per FMC a device
//! talks to), all on loopback (each FMC on 127.0.0.1 port 0, each device dialing from its own
//! 127.1.0.N), all on one
//! shared lab [`Clock`](crate::tunnel::Clock) that the story moves forward (the machine's clock
//! is never touched). Every appliance logs in the messages-log shape under its own host name
//! (`FMC`, `ftd1`, ...), straight to the lab's output, and each step ends with a status table.
//! The steps call the same library code as the commands they stand for (`pki renew` is
//! `pki::renew` + `tunnel::renewal::deliver`, `pki copy` is `pki::copy` over the local
//! transport, `check` is `pki::expiry`), and the FMC's traffic is recorded (`recorder`) and
//! analyzed at the end by `analysis`, as `sfdiag analyze` would.
//!
//! What this module leaves to others: certificates, layout and renewal files (`pki`), TLS,
//! logging and pushes (`tunnel`), packet synthesis (`recorder`), verdicts on the capture
//! (`analysis`). Nothing here prints: output goes to the writer the caller gives.

#![warn(missing_docs)] // every pub item of the lab says what it reports (issue 10)

mod out;
mod scenarios;
mod world;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use crate::tunnel::status::PeerStatus;

pub use out::Out;

/// A story `sfdiag lab` can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// The default: the InternalCA expires under three connected FTDs; one reboots and cannot
    /// come back (err 10); renewal pushes to the two still up, FAILED_PUSH lists the third;
    /// `pki copy` fixes it.
    Expiry,
    /// FMC HA, case 1: the primary's InternalCA expires; a device and the secondary cannot
    /// reconnect to it; a manual role switch keeps the devices managed by the secondary
    /// (its own InternalCA is valid); renewal on the primary pushes to the tunnels still up,
    /// FAILED_PUSH lists the device and the secondary, `pki copy` fixes both.
    Ha,
    /// FMC HA, case 2: the secondary's InternalCA expires; a device cannot reconnect to it;
    /// renewal on the secondary (`--fmc`) concerns only the devices; `pki copy` from it.
    HaSecondary,
    /// A routine renewal while one device is off: it comes back with the old files and fails
    /// with err 7 (certificate signature failure, alert 51) until `pki copy`.
    NotPushed,
    /// The 90- and 30-day warnings of `check` as the lab clock nears the CA's end, and an
    /// early renewal that pushes to everyone.
    Expiring,
    /// FMC 7.6 on TLS 1.3: after a renewal, a device trusts the new InternalCA but still
    /// presents a certificate of the old one; the FMC refuses it (7.6's post-handshake-auth
    /// lines), the capture without and with the key log, then `pki copy`.
    Upgrade76,
}

impl Scenario {
    /// Every scenario, the default first.
    pub const ALL: [Scenario; 6] = [
        Scenario::Expiry,
        Scenario::Ha,
        Scenario::HaSecondary,
        Scenario::NotPushed,
        Scenario::Expiring,
        Scenario::Upgrade76,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Expiry => "expiry",
            Scenario::Ha => "ha",
            Scenario::HaSecondary => "ha-secondary",
            Scenario::NotPushed => "not-pushed",
            Scenario::Expiring => "expiring",
            Scenario::Upgrade76 => "upgrade-76",
        }
    }

    /// One line for `--list`.
    pub fn summary(self) -> &'static str {
        match self {
            Scenario::Expiry => {
                "(default) InternalCA expires under 3 FTDs; one reboots and fails (err 10); renew pushes to 2, FAILED_PUSH lists 1; pki copy; all connected"
            }
            Scenario::Ha => {
                "FMC HA, the primary's InternalCA expires: ftd2 and FMC2 cannot reconnect (err 10); role switch to FMC2; renew on the primary; pki copy to ftd2 and FMC2"
            }
            Scenario::HaSecondary => {
                "FMC HA, the secondary's InternalCA expires: ftd2 cannot reconnect to FMC2 (err 10); renew --fmc FMC2 for the devices only; pki copy from FMC2"
            }
            Scenario::NotPushed => {
                "CA regenerated while one FTD was off: it comes back with old files (err 7, alert 51); validate fails, pki copy, validate passes"
            }
            Scenario::Expiring => {
                "check's 90- and 30-day warnings as the CA nears its end; an early renew pushes to every device, nothing breaks"
            }
            Scenario::Upgrade76 => {
                "FMC 7.6 (TLS 1.3): a device keeps an old-CA certificate after renewal; the FMC refuses it (post-handshake auth lines); the capture with and without keys; pki copy"
            }
        }
    }

    /// The scenario called `name`.
    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// `--list`: one line per scenario.
pub fn render_list(w: &mut dyn Write) -> std::io::Result<()> {
    for s in Scenario::ALL {
        writeln!(w, "{:<11} {}", s.name(), s.summary())?;
    }
    Ok(())
}

/// How to run a scenario.
#[derive(Clone, Debug, Default)]
pub struct LabOptions {
    /// Where to build the PKI (must not hold one yet); a temporary folder when `None`.
    pub root: Option<PathBuf>,
    /// Where to write the capture; inside the root when `None`.
    pub pcap: Option<PathBuf>,
    /// Skip the analysis of the capture at the end.
    pub no_analysis: bool,
    /// Where to write the NSS key log of every tunnel; beside the capture (`lab.keylog` for
    /// `lab.pcap`) when `None`.
    pub keylog: Option<PathBuf>,
    /// The TLS version every appliance runs (`proxy_tls_version`); the story's own when
    /// `None` (TLS 1.2, and 1.3 for `upgrade-76`).
    pub tls_version: Option<crate::pki::conf::TlsVersion>,
}

/// One step of a story and the status table that closed it.
#[derive(Clone, Debug)]
pub struct StepReport {
    /// What the step did, as the story names it (`step N` if it gave no name).
    pub title: String,
    /// The lab clock when the step ended (RFC 3339).
    pub at: String,
    /// The table's rows: the peers of the FMC whose status was shown.
    pub peers: Vec<PeerStatus>,
}

/// What a run produced, for callers and tests.
#[derive(Clone, Debug)]
pub struct LabReport {
    /// The story that ran.
    pub scenario: Scenario,
    /// The PKI root (already deleted when it was temporary).
    pub root: PathBuf,
    /// False when the root was a temporary folder, removed at the end.
    pub root_kept: bool,
    /// Each status table, in story order.
    pub steps: Vec<StepReport>,
    /// FAILED_PUSH files written by the renewal, with their contents.
    pub failed_push: Vec<(PathBuf, String)>,
    /// The capture (already deleted with a temporary root unless `--pcap` named it).
    pub pcap: PathBuf,
    /// The NSS key log beside it (deleted with it, unless `--pcap` or `--keylog` named it).
    pub keylog: PathBuf,
    /// Packets written to the capture.
    pub packets: u64,
    /// Problems the analysis of the capture found (failed verdicts, fatal alerts, failed
    /// handshakes); `None` when it was skipped.
    pub analysis_problems: Option<u64>,
    /// Wall-clock time of the run (the machine's, not the lab clock's).
    pub elapsed: Duration,
}

/// Why a run could not finish. A story whose expected event does not come in time is an
/// error too: the lab says which wait timed out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// Making, renewing or copying the lab PKI failed.
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    /// An appliance's tunnel (serve, connect, control socket) failed.
    #[error(transparent)]
    Tunnel(#[from] crate::tunnel::TunnelError),
    /// Writing the lab's output (log lines, narration, tables) failed.
    #[error("lab output: {0}")]
    Output(#[from] std::io::Error),
    /// An event the story waits for did not come.
    #[error("timed out after {secs} s waiting for {what}")]
    Timeout {
        /// The event, in the story's words.
        what: String,
        /// How long the story waited, wall-clock seconds.
        secs: u64,
    },
    /// Something happened that the story does not allow for (what, in words).
    #[error("the story went off script: {0}")]
    Unexpected(String),
}

/// Runs `scenario`, writing every appliance's log lines and the lab's narration to `out`.
pub async fn run(scenario: Scenario, opts: &LabOptions, out: Out) -> Result<LabReport, LabError> {
    scenarios::run(scenario, opts, out).await
}
