//! What `sfdiag status` shows: the FMC's view of its peers, like `sftunnel_status.pl`, and
//! what `status --brief` adds (each peer's channels, who dialed them, heartbeat times, the
//! FMC's last attempt to dial it).
//!
//! The rows come from the running server over the control socket (connected peers, and the
//! last state of those that left), merged by [`rows_for_root`] with the devices a PKI root
//! knows about, so a device that never connected is listed too. Times stay typed here and
//! become RFC 3339 (UTC, whole seconds) only at the edges: on the control socket's JSON and in
//! the tables `report::status` lays out.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::pki::layout::PkiRoot;
use crate::sftunnel::Channel;

/// One of a connected peer's channels (its own TLS connection).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelStatus {
    /// Which channel (control or events), as the peer's HELLO said.
    pub channel: Channel,
    /// The peer's address on this connection.
    pub peer: String,
    /// The FMC's own address on it (the brief's `via`).
    pub local: String,
    /// The interface the brief says it uses: `lo` on loopback, else `eth0` (the appliance's
    /// management interface; the emulator does not look interfaces up).
    #[serde(default)]
    pub iface: String,
    /// Who opened it: `device` (it dialed the FMC) or `fmc` (the FMC dialed it), as `Role`
    /// displays them.
    pub dialed_by: String,
    /// When it came up (on the server's clock).
    #[serde(with = "wire_time")]
    pub since: Option<OffsetDateTime>,
}

/// One peer row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// The peer's name: the root's for a peer the server knows from its root, else the one
    /// its HELLO gave (escaped).
    pub name: String,
    /// The peer's UUID: its certificate's `title`, else the one its HELLO gave (escaped); for
    /// a row from a root, the root's.
    pub uuid: String,
    /// The peer's IP address: the connection's, or the root's (or the dialed address's) for
    /// a peer without a tunnel.
    pub ip: String,
    /// Whether any of its channels is up.
    pub connected: bool,
    /// Since when the peer is in its state (on the server's clock): when the tunnel came up,
    /// or when it went down.
    #[serde(with = "wire_time")]
    pub since: Option<OffsetDateTime>,
    /// When its last heartbeat arrived (on the server's clock).
    #[serde(with = "wire_time")]
    pub last_heartbeat: Option<OffsetDateTime>,
    /// The notAfter of the certificate the peer presented (or has on disk when not connected).
    #[serde(with = "wire_time")]
    pub cert_not_after: Option<OffsetDateTime>,
    /// The channels up now, control first (empty when disconnected).
    #[serde(default)]
    pub channels: Vec<ChannelStatus>,
    /// When the FMC last answered a heartbeat of the peer.
    #[serde(default, with = "wire_time")]
    pub heartbeat_sent: Option<OffsetDateTime>,
    /// When the FMC last tried to dial the peer, if it does.
    #[serde(default, with = "wire_time")]
    pub attempted: Option<OffsetDateTime>,
    /// Why its last channel went down, when it is down.
    #[serde(default)]
    pub down_reason: Option<String>,
}

impl PeerStatus {
    /// A row for a peer the server has not seen (or only knows from its root).
    pub fn unseen(name: String, uuid: String, ip: String) -> Self {
        PeerStatus {
            name,
            uuid,
            ip,
            connected: false,
            since: None,
            last_heartbeat: None,
            cert_not_after: None,
            channels: Vec::new(),
            heartbeat_sent: None,
            attempted: None,
            down_reason: None,
        }
    }

    /// One row per peer (by UUID, in first-seen order) from one row per connection: a
    /// connection joins the first row of its UUID that lacks its channel (so a control and
    /// an events channel are one peer, while a second control connection of the same
    /// certificate, as a load run opens, is a row of its own). The peer is connected while
    /// any channel is; it came up with its oldest channel; its heartbeats are the latest of
    /// any channel.
    pub fn merge_channels(rows: Vec<PeerStatus>) -> Vec<PeerStatus> {
        let mut out: Vec<PeerStatus> = Vec::new();
        for r in rows {
            let joins = |m: &PeerStatus| {
                m.uuid == r.uuid
                    && !m
                        .channels
                        .iter()
                        .any(|c| r.channels.iter().any(|x| x.channel == c.channel))
            };
            let Some(m) = out.iter_mut().find(|m| joins(m)) else {
                out.push(r);
                continue;
            };
            m.connected |= r.connected;
            m.since = match (m.since, r.since) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            m.last_heartbeat = m.last_heartbeat.max(r.last_heartbeat);
            m.heartbeat_sent = m.heartbeat_sent.max(r.heartbeat_sent);
            m.attempted = m.attempted.max(r.attempted);
            // The newest connection's certificate and address.
            m.cert_not_after = r.cert_not_after.or(m.cert_not_after);
            m.ip = r.ip;
            m.channels.extend(r.channels);
            m.channels.sort_by_key(|c| c.channel);
        }
        out
    }
}

/// The server itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// The hostname its log lines carry (the server's `SfLog`).
    pub hostname: String,
    /// The FMC's UUID, the `title` of its own certificate; `None` when that has none.
    pub uuid: Option<String>,
    /// The address it listens on, as bound (a port 0 asked for shows the port picked).
    pub listen: String,
    /// The server's clock when it answered (a lab clock shows its lab time).
    #[serde(with = "wire_time::required")]
    pub now: OffsetDateTime,
    /// When it started (on its clock).
    #[serde(with = "wire_time::required")]
    pub started: OffsetDateTime,
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
            // A row the server made from a dial that never got the device's certificate
            // (refused, timed out) has no notAfter: the file's stands in, as for a peer the
            // server has not seen at all.
            let on_disk = || {
                root.device_files(&p.name)
                    .and_then(|f| crate::cert::read_certs(f.cert).ok())
                    .and_then(|certs| certs.first().and_then(super::chain::facts))
                    .map(|c| c.not_after)
            };
            match seen.iter().rev().find(|s| s.uuid == uuid) {
                Some(s) => PeerStatus {
                    cert_not_after: s.cert_not_after.or_else(on_disk),
                    ..s.clone()
                },
                None => PeerStatus {
                    cert_not_after: on_disk(),
                    ..PeerStatus::unseen(p.name.clone(), uuid, p.ip.to_string())
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

/// The times of a row as they travel in JSON (the control socket, `status --format json`):
/// RFC 3339 in UTC, whole seconds, `null` when unknown, as CLI.md shows them.
pub mod wire_time {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    /// `t` as RFC 3339 in UTC, to the whole second.
    pub fn format(t: OffsetDateTime) -> String {
        crate::sftunnel::rfc3339(&crate::sftunnel::whole_seconds(t))
    }

    /// `t` as [`format()`] writes it, or `null`.
    pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format(*t)),
            None => s.serialize_none(),
        }
    }

    /// Any RFC 3339 time (or `null`), with its offset as written.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| OffsetDateTime::parse(&s, &Rfc3339).map_err(serde::de::Error::custom))
            .transpose()
    }

    /// The same for a time that is always there.
    pub mod required {
        use super::*;

        /// `t` as [`format()`] writes it.
        pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&format(*t))
        }

        /// Any RFC 3339 time, with its offset as written (`null` is an error).
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
            let s = String::deserialize(d)?;
            OffsetDateTime::parse(&s, &Rfc3339).map_err(serde::de::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn rows_travel_as_rfc3339_whole_seconds_and_come_back_typed() {
        let row = PeerStatus {
            name: "ftd1".into(),
            uuid: "u1".into(),
            ip: "127.0.0.1".into(),
            connected: true,
            since: Some(datetime!(2034-10-05 14:00:00.75 +02:00)),
            last_heartbeat: None,
            cert_not_after: Some(datetime!(2036-11-23 15:12:10 UTC)),
            ..PeerStatus::unseen(String::new(), String::new(), String::new())
        };
        let v = serde_json::to_value(&row).unwrap();
        assert_eq!(v["since"], "2034-10-05T12:00:00Z");
        assert!(v["last_heartbeat"].is_null());
        assert_eq!(v["cert_not_after"], "2036-11-23T15:12:10Z");
        let back: PeerStatus = serde_json::from_value(v).unwrap();
        assert_eq!(back.since, Some(datetime!(2034-10-05 12:00:00 UTC)));
        assert_eq!(back.cert_not_after, row.cert_not_after);
        let bad = serde_json::json!({"name": "x", "uuid": "u", "ip": "", "connected": false,
            "since": "yesterday", "last_heartbeat": null, "cert_not_after": null});
        assert!(serde_json::from_value::<PeerStatus>(bad).is_err());
    }
}
