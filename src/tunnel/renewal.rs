//! Delivering a renewal through a running `serve`: the push half of `generate_certs.pl`.
//!
//! Owns the order of the conversation with the FMC's control socket after `pki::renew` has put
//! the new files in place: first the server re-reads its own certificate and InternalCA (now
//! the new ones) for the tunnels it accepts from now on (sftunnel's restart), then each peer
//! gets its three files over its live tunnel and answers; the peer installs them atomically
//! and reconnects with them, which now succeeds. A peer without a tunnel is refused with the
//! socket's `not_connected` kind, so no status round trip is needed to tell it from a push that
//! failed. Every peer that is not connected, or whose push fails, comes back as an error for
//! `pki::renew::record_push` to list in `FAILED_PUSH`. With no server running, every peer
//! does. Making the files and writing `FAILED_PUSH` are `pki`'s job.

use std::path::Path;
use std::time::Duration;

use super::TunnelError;
use super::control::ControlClient;
use super::proto::PushFile;
use crate::pki::PkiError;
use crate::pki::fsio::Recovery;
use crate::pki::renew::{
    self, PeerBundle, Preflight, PushOutcome, PushRecord, RenewOptions, Renewal,
};

/// How the FMC's side of the delivery went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerSide {
    /// No server answered on the control socket: nothing was pushed.
    NotRunning(String),
    /// The server refused the new files: nothing was pushed (pushing would have cut the peers
    /// off from an FMC still presenting the old certificate).
    ReloadFailed(String),
    /// The server loaded the new files; the outcomes say which peers got theirs.
    Reloaded,
}

impl ServerSide {
    /// In a sentence, for the report's details.
    pub fn describe(&self) -> &str {
        match self {
            ServerSide::NotRunning(why) | ServerSide::ReloadFailed(why) => why,
            ServerSide::Reloaded => {
                "sftunnel on the FMC loaded the new certificates; each peer's files went over its tunnel"
            }
        }
    }
}

/// The result of [`deliver`].
#[derive(Clone, Debug)]
pub struct Delivery {
    /// Whether the server was there and took the new files.
    pub server: ServerSide,
    /// One per bundle, in order.
    pub outcomes: Vec<PushOutcome>,
}

/// Longest wait for one push's answer on top of the server's own push timeout.
const PUSH_WAIT: Duration = Duration::from_secs(60);

/// Asks the server on `socket` to re-read its files (the FMC's renewed ones), then pushes
/// each bundle to its peer.
pub async fn deliver(socket: &Path, bundles: &[PeerBundle]) -> Delivery {
    let all_failed = |why: String| {
        bundles
            .iter()
            .map(|b| PushOutcome {
                uuid: b.identity.uuid,
                name: b.identity.name.clone(),
                result: Err(why.clone()),
            })
            .collect()
    };
    let mut ctl = match ControlClient::connect(socket).await {
        Ok(c) => c,
        Err(e) => {
            let why = format!("sftunnel is not running on the FMC ({e})");
            return Delivery {
                outcomes: all_failed(why.clone()),
                server: ServerSide::NotRunning(why),
            };
        }
    };
    if let Err(e) = ctl.reload().await {
        let why = format!("the FMC could not load its new certificates: {e}");
        return Delivery {
            outcomes: all_failed(why.clone()),
            server: ServerSide::ReloadFailed(why),
        };
    }
    let mut outcomes = Vec::new();
    for b in bundles {
        let uuid = b.identity.uuid.to_string();
        let files: Vec<PushFile> = b
            .files
            .iter()
            .map(|f| PushFile {
                name: f.name.to_owned(),
                mode: f.mode,
                data: f.data.clone(),
            })
            .collect();
        let result = match tokio::time::timeout(PUSH_WAIT, ctl.push(&uuid, &files)).await {
            Err(_) => Err("no answer in time".to_owned()),
            Ok(Err(TunnelError::NotConnected { .. })) => Err("not connected".to_owned()),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(ack)) if ack.ok => Ok(ack.message),
            Ok(Ok(ack)) => Err(format!("refused by the device: {}", ack.message)),
        };
        outcomes.push(PushOutcome {
            uuid: b.identity.uuid,
            name: b.identity.name.clone(),
            result,
        });
    }
    Delivery {
        server: ServerSide::Reloaded,
        outcomes,
    }
}

/// What [`renew_and_push`] did: everything `report::renew::run` lays out.
#[derive(Debug)]
pub struct RenewRun {
    /// The new generation, unlocked.
    pub renewal: Renewal,
    /// How its bundles reached the server and the peers.
    pub delivery: Delivery,
    /// What [`renew::record_push`] wrote of the pushes (`FAILED_PUSH`, the log).
    pub record: PushRecord,
    /// What finishing or undoing a dead run did before this one (from the preflight).
    pub recovered: Option<Recovery>,
}

/// `pki renew` once confirmed (the dialogue's questions answered: `report::renew`):
/// regenerate under `pre`'s lock (on a blocking thread: RSA keys), deliver through the server
/// on `socket`, record `FAILED_PUSH`, unlock the root. The command and `sfdiag lab` share it,
/// and both print the result with `report::renew::run`, so the lab's renewal is the
/// command's. Nothing is printed here: once the new files are committed, the pushes and their
/// record happen whatever becomes of the output.
pub async fn renew_and_push(
    pre: Preflight,
    opts: RenewOptions,
    socket: &Path,
) -> Result<RenewRun, PkiError> {
    let recovered = pre.recovered.clone();
    let mut renewal = tokio::task::spawn_blocking(move || renew::renew(&opts, pre))
        .await
        .map_err(|e| PkiError::io("run", "renewal", std::io::Error::other(e.to_string())))??;
    let delivery = deliver(socket, &renewal.peers).await;
    let record = renew::record_push(&renewal, &delivery.outcomes);
    renewal.unlock();
    Ok(RenewRun {
        renewal,
        delivery,
        record,
        recovered,
    })
}
