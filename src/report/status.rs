//! The tables of `sfdiag status` (and of the lab's status steps): the FMC's view of its peers,
//! like `sftunnel_status.pl`, as a text table or one JSON object, and `status --brief`: the FTD
//! CLI's `sftunnel-status-brief` blocks ([`brief`]).
//!
//! Owns layout only: which rows there are and what they say is `tunnel::status`'s. Times are
//! typed until here and printed as RFC 3339 (UTC, whole seconds); every cell is escaped
//! ([`crate::sftunnel::escape_line`]: names and UUIDs off a socket were [`crate::sftunnel::escape`]d
//! when they arrived, so the table escapes what is unsafe and never twice) so no value can
//! break a row in two.

use std::io::{self, Write};

use crate::sftunnel::{ctime_utc, escape_line as escape};
use crate::tunnel::status::{PeerStatus, ServerInfo, wire_time};

/// A header line about the server, then a table with one row per peer.
pub fn text(w: &mut impl Write, info: Option<&ServerInfo>, peers: &[PeerStatus]) -> io::Result<()> {
    match info {
        Some(i) => writeln!(
            w,
            "sftunnel on {} ({}) listening on {}, up since {}, clock {}",
            escape(&i.hostname),
            escape(i.uuid.as_deref().unwrap_or("-")),
            escape(&i.listen),
            wire_time::format(i.started),
            wire_time::format(i.now)
        )?,
        None => writeln!(w, "sftunnel is not running")?,
    }
    let time = |t: Option<time::OffsetDateTime>| t.map_or_else(|| "-".into(), wire_time::format);
    let rows: Vec<[String; 7]> = peers
        .iter()
        .map(|p| {
            [
                escape(&p.name).into_owned(),
                escape(&p.uuid).into_owned(),
                escape(&p.ip).into_owned(),
                if p.connected {
                    "connected"
                } else {
                    "disconnected"
                }
                .into(),
                time(p.since),
                time(p.last_heartbeat),
                time(p.cert_not_after),
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
    let mut width: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
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

/// `{"server": {...} | null, "peers": [...]}` on one line (the rows' own serde shape; JSON
/// escapes what a table must).
pub fn json(w: &mut impl Write, info: Option<&ServerInfo>, peers: &[PeerStatus]) -> io::Result<()> {
    let v = serde_json::json!({ "server": info, "peers": peers });
    super::safejson::to_writer(&mut *w, &v)?;
    writeln!(w)
}

/// [`brief`], first saying `sftunnel is not running` (as [`text`] does) when there is no
/// server (`info` is `None`): the blocks are then the root's peers, none of them seen.
pub fn brief_for(
    w: &mut impl Write,
    info: Option<&ServerInfo>,
    peers: &[PeerStatus],
) -> io::Result<()> {
    if info.is_none() {
        writeln!(w, "sftunnel is not running")?;
        if !peers.is_empty() {
            writeln!(w)?;
        }
    }
    brief(w, peers)
}

/// `sftunnel-status-brief`'s block per peer (APPLIANCE.md, line for line), blocks separated by
/// an empty line. Up (a channel connected):
/// ```text
/// PEER:10.10.17.202
/// Peer channel Channel-A is valid type (CONTROL), using 'eth0', connected to '10.10.17.202' via '10.10.17.222'
/// Peer channel Channel-B is valid type (EVENT), using 'eth0', connected to '10.10.17.202' via '10.10.17.222'
/// Registration: Completed.
/// IPv4 Connection to peer '10.10.17.202' Start Time: Wed Jun 10 14:27:12 2020 UTC
/// Heartbeat Send Time: Mon Jun 15 09:02:08 2020 UTC
/// Heartbeat Received Time: Mon Jun 15 09:02:16 2020 UTC
/// ```
/// Down:
/// ```text
/// PEER:10.10.17.202
/// Registration: Completed.
/// Connection to peer '10.10.17.202' Attempted at Mon Jun 15 09:21:57 2020 UTC
/// Last disconnect time : Mon Jun 15 09:19:09 2020 UTC
/// Last disconnect reason : Both control and event channel connections with peer went down
/// ```
/// Our rows are the FMC's view, so `connected to` is the device and `via` the FMC's own
/// address on that connection. A line whose fact is not known is left out (no heartbeat yet;
/// `Attempted at` only when the FMC dials the peer; a peer that never registered has neither
/// `Registration: Completed.` nor a disconnect). A peer the FMC has neither seen nor dialed
/// (APPLIANCE.md shows no block for it) says so in the down block's words: `Connection to
/// peer '10.10.17.202' not attempted yet`, so no block is a bare `PEER:` line.
pub fn brief(w: &mut impl Write, peers: &[PeerStatus]) -> io::Result<()> {
    let ip_of = |a: &str| {
        a.parse::<std::net::SocketAddr>()
            .map_or_else(|_| a.to_owned(), |s| s.ip().to_string())
    };
    for (n, p) in peers.iter().enumerate() {
        if n > 0 {
            writeln!(w)?;
        }
        let ip = escape(&p.ip);
        writeln!(w, "PEER:{ip}")?;
        if p.connected {
            for c in &p.channels {
                writeln!(
                    w,
                    "Peer channel {} is valid type ({}), using '{}', connected to '{}' via '{}'",
                    c.channel.label(),
                    c.channel.kind(),
                    escape(&c.iface),
                    escape(&ip_of(&c.peer)),
                    escape(&ip_of(&c.local)),
                )?;
            }
            writeln!(w, "Registration: Completed.")?;
            if let Some(t) = p.since {
                let v = if p.ip.contains(':') { "IPv6" } else { "IPv4" };
                writeln!(
                    w,
                    "{v} Connection to peer '{ip}' Start Time: {}",
                    ctime_utc(t)
                )?;
            }
            if let Some(t) = p.heartbeat_sent {
                writeln!(w, "Heartbeat Send Time: {}", ctime_utc(t))?;
            }
            if let Some(t) = p.last_heartbeat {
                writeln!(w, "Heartbeat Received Time: {}", ctime_utc(t))?;
            }
        } else {
            // `since` of a down row is when it went down; a row without it never registered.
            if p.since.is_some() {
                writeln!(w, "Registration: Completed.")?;
            }
            match p.attempted {
                Some(t) => {
                    writeln!(w, "Connection to peer '{ip}' Attempted at {}", ctime_utc(t))?;
                }
                None if p.since.is_none() => {
                    writeln!(w, "Connection to peer '{ip}' not attempted yet")?;
                }
                None => {}
            }
            if let Some(t) = p.since {
                writeln!(w, "Last disconnect time : {}", ctime_utc(t))?;
                writeln!(
                    w,
                    "Last disconnect reason : Both control and event channel connections with peer went down"
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn peers() -> Vec<PeerStatus> {
        vec![
            PeerStatus {
                name: "ftd1".into(),
                uuid: "u1".into(),
                ip: "127.0.0.1".into(),
                connected: true,
                since: Some(datetime!(2034-10-05 12:00:00.4 UTC)),
                last_heartbeat: Some(datetime!(2034-10-05 12:00:30 UTC)),
                cert_not_after: Some(datetime!(2036-11-23 15:12:10 UTC)),
                ..PeerStatus::unseen(String::new(), String::new(), String::new())
            },
            PeerStatus {
                name: "ftd-two".into(),
                uuid: "u2".into(),
                ip: "10.0.0.2".into(),
                connected: false,
                since: None,
                last_heartbeat: None,
                cert_not_after: None,
                ..PeerStatus::unseen(String::new(), String::new(), String::new())
            },
        ]
    }

    #[test]
    fn table_aligns_and_marks_disconnected_peers() {
        let peers = peers();
        let mut out = Vec::new();
        text(&mut out, None, &peers).unwrap();
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
        json(&mut out, None, &peers).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["peers"][1]["connected"], false);
        assert_eq!(v["peers"][0]["since"], "2034-10-05T12:00:00Z");
        assert!(v["server"].is_null());
    }

    #[test]
    fn brief_says_the_server_is_down_and_what_an_unseen_peer_is() {
        let peers = peers();
        let mut out = Vec::new();
        brief_for(&mut out, None, &peers[1..]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "sftunnel is not running\n\nPEER:10.0.0.2\nConnection to peer '10.0.0.2' not attempted yet\n"
        );
    }

    #[test]
    fn a_name_with_a_newline_cannot_add_a_row() {
        let mut peers = peers();
        peers[1].name = "ftd-two\nftd9     u9    10.9.9.9   connected".into();
        let info = ServerInfo {
            hostname: "fmc\nsftunnel is not running".into(),
            uuid: None,
            listen: "127.0.0.1:8305".into(),
            now: datetime!(2034-10-05 12:01:00 UTC),
            started: datetime!(2034-10-05 11:00:00 UTC),
        };
        let mut out = Vec::new();
        text(&mut out, Some(&info), &peers).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert_eq!(s.lines().count(), 4, "{s}");
        assert!(s.contains("ftd-two\\x0Aftd9"), "{s}");
        assert!(
            s.starts_with("sftunnel on fmc\\x0Asftunnel is not running (-)"),
            "{s}"
        );
    }
}
