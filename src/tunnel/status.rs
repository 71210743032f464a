//! What `sfdiag status` shows: the FMC's view of its peers, like `sftunnel_status.pl`, and its
//! renderers (text table, JSON) onto any `io::Write`.
//!
//! The rows come from the running server over the control socket (connected peers, and the
//! last state of those that left), merged by [`rows_for_root`] with the devices a PKI root
//! knows about, so a device that never connected is listed too.

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::pki::PkiRoot;
use crate::sftunnel::rfc3339;

/// One peer row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub name: String,
    pub uuid: String,
    pub ip: String,
    pub connected: bool,
    /// Since when the peer is in its state (RFC 3339, on the server's clock): when the tunnel
    /// came up, or when it went down.
    pub since: Option<String>,
    pub last_heartbeat: Option<String>,
    /// The notAfter of the certificate the peer presented (or has on disk when not connected).
    pub cert_not_after: Option<String>,
}

/// The server itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    pub hostname: String,
    pub uuid: Option<String>,
    pub listen: String,
    /// The server's clock when it answered (a lab clock shows its lab time).
    pub now: String,
    pub started: String,
}

/// One row per peer of `root` (in its `sftunnel.conf` order) from the server's `seen` rows;
/// a peer the server has not seen gets a disconnected row with the notAfter of the
/// certificate it has on disk; peers the server saw that the root does not know follow.
pub fn rows_for_root(seen: &[PeerStatus], root: &PkiRoot) -> Vec<PeerStatus> {
    let mut rows: Vec<PeerStatus> = root
        .peers
        .iter()
        .map(|p| {
            let uuid = p.uuid.to_string();
            // The newest row for the device: a connection that replaced an older one.
            match seen.iter().rev().find(|s| s.uuid == uuid) {
                Some(s) => s.clone(),
                None => PeerStatus {
                    name: p.name.clone(),
                    uuid,
                    ip: p.ip.to_string(),
                    connected: false,
                    since: None,
                    last_heartbeat: None,
                    cert_not_after: root
                        .device_files(&p.name)
                        .and_then(|f| crate::cert::read_certs(f.cert).ok())
                        .and_then(|certs| certs.first().and_then(super::chain::facts))
                        .map(|c| rfc3339(&c.not_after)),
                },
            }
        })
        .collect();
    for s in seen {
        if !rows.iter().any(|r| r.uuid == s.uuid) {
            rows.push(s.clone());
        }
    }
    rows
}

/// A table with one row per peer.
pub fn render_text(
    info: Option<&ServerInfo>,
    peers: &[PeerStatus],
    w: &mut impl Write,
) -> io::Result<()> {
    match info {
        Some(i) => writeln!(
            w,
            "sftunnel on {} ({}) listening on {}, up since {}, clock {}",
            i.hostname,
            i.uuid.as_deref().unwrap_or("-"),
            i.listen,
            i.started,
            i.now
        )?,
        None => writeln!(w, "sftunnel is not running")?,
    }
    let dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    let rows: Vec<[String; 7]> = peers
        .iter()
        .map(|p| {
            [
                p.name.clone(),
                p.uuid.clone(),
                p.ip.clone(),
                if p.connected {
                    "connected"
                } else {
                    "disconnected"
                }
                .into(),
                dash(&p.since),
                dash(&p.last_heartbeat),
                dash(&p.cert_not_after),
            ]
        })
        .collect();
    let head = [
        "NAME",
        "UUID",
        "IP",
        "STATE",
        "SINCE",
        "LAST HEARTBEAT",
        "CERT NOT AFTER",
    ];
    let mut width: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = width[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    writeln!(w, "{}", line(head.to_vec()))?;
    for r in &rows {
        writeln!(w, "{}", line(r.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

/// `{"server": {...} | null, "peers": [...]}` on one line.
pub fn render_json(
    info: Option<&ServerInfo>,
    peers: &[PeerStatus],
    w: &mut impl Write,
) -> io::Result<()> {
    let v = serde_json::json!({ "server": info, "peers": peers });
    writeln!(w, "{v}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_and_marks_disconnected_peers() {
        let peers = vec![
            PeerStatus {
                name: "ftd1".into(),
                uuid: "u1".into(),
                ip: "127.0.0.1".into(),
                connected: true,
                since: Some("2034-10-05T12:00:00Z".into()),
                last_heartbeat: Some("2034-10-05T12:00:30Z".into()),
                cert_not_after: Some("2036-11-23T15:12:10Z".into()),
            },
            PeerStatus {
                name: "ftd-two".into(),
                uuid: "u2".into(),
                ip: "10.0.0.2".into(),
                connected: false,
                since: None,
                last_heartbeat: None,
                cert_not_after: None,
            },
        ];
        let mut out = Vec::new();
        render_text(None, &peers, &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "sftunnel is not running");
        assert!(
            lines[1].starts_with("NAME     UUID  IP         STATE"),
            "{s}"
        );
        assert!(
            lines[2].starts_with("ftd1     u1    127.0.0.1  connected     2034-10-05T12:00:00Z"),
            "{s}"
        );
        assert!(
            lines[3].starts_with("ftd-two  u2    10.0.0.2   disconnected  -"),
            "{s}"
        );
        let mut out = Vec::new();
        render_json(None, &peers, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["peers"][1]["connected"], false);
        assert!(v["server"].is_null());
    }
}
