//! What a session whose records stayed encrypted still shows, and which key-log lines would
//! open it: the clauses `engine` appends to a session's reason.
//!
//! Without keys a TLS 1.3 handshake is a series of protected records, yet their count, sizes,
//! order and the TCP close say a good deal: whether the client ever sent its encrypted flight
//! (and so its Finished), whether the server answered it, whether a side's last record has
//! the size of an encrypted alert (2 bytes, its type and a 16-byte tag: 19), and who closed.
//! This module says that much and no more: what the records mean is "most likely", never
//! stated as a fact. Then it names the key-log labels the connection needs and its client
//! random, so the reader knows what to ask the peer's owner for (`SSLKEYLOGFILE`).
//!
//! Pure: `tls::Progress` and the close in, text out.

use super::findings::timestamp_rfc3339;
use super::outcome::{Close, Wire};
use crate::net::Mark;
use crate::sftunnel::TlsSide;
use crate::tls::{Progress, SecretKind, Side};

/// An encrypted TLS 1.3 alert's record payload: level, description, content type, AEAD tag.
const ALERT_RECORD_LEN: u16 = 19;

fn records(n: u32) -> String {
    match n {
        1 => "1 encrypted record".to_string(),
        n => format!("{n} encrypted records"),
    }
}

/// TLS 1.3 without (enough) keys: what the protected records and the close show. `None` when
/// the records were decrypted. When handshake bytes are missing (`wire`), the record counts
/// are only what was captured, and nothing is read into them.
pub(super) fn without_keys(
    p: &Progress,
    close: Option<(Close, Mark)>,
    wire: &Wire,
) -> Option<String> {
    if !p.is_tls13() || p.decryption.decrypted.contains(&true) {
        return None;
    }
    let server = p.side_of(TlsSide::Server)?;
    let client = server.other();
    let (ci, si) = (client.index(), server.index());
    let r = &p.protected;
    let mut parts = vec![format!(
        "client sent {} ({} bytes), server {} ({} bytes)",
        records(r.records[ci]),
        r.bytes[ci],
        records(r.records[si]),
        r.bytes[si]
    )];
    // The last turn is one record of an alert's size.
    let alert_last = |side: Side| {
        r.last == Some(side) && r.in_turn == 1 && r.last_len[side.index()] == ALERT_RECORD_LEN
    };
    let client_closed_first = matches!(close, Some((Close::Fin(s), _)) if s == client);
    let finished = if let Some(lost) = wire.lost_text(p) {
        format!(
            "the handshake is partly not captured ({lost}): whether it finished cannot be told \
             from the records"
        )
    } else if r.records[ci] == 0 {
        "the client never sent its encrypted flight (no Finished): the handshake did not finish"
            .to_string()
    } else if r.turns == 2 && alert_last(client) {
        "the client's only encrypted record has the size of an encrypted alert (19 bytes): it \
         most likely rejected the server's certificate"
            .to_string()
    } else if r.turns == 2 {
        "the server sent nothing after the client's encrypted flight: whether it accepted the \
         client's certificate cannot be told"
            .to_string()
    } else if r.turns == 3 && alert_last(server) {
        "the server answered the client's encrypted flight with one record the size of an \
         encrypted alert (19 bytes): it most likely rejected the client's certificate"
            .to_string()
    } else if alert_last(server) && r.last_len[ci] == ALERT_RECORD_LEN && client_closed_first {
        // close_notify is an alert too: the client's last record had its size, then the
        // client closed and the server's last record answered it. Post-handshake
        // authentication would end with the server's alert alone.
        format!(
            "the server answered the client's encrypted flight ({} turns of records), so the \
             handshake most likely completed; the client's last record and then the server's \
             have the size of an encrypted alert (19 bytes) and the client closed first: most \
             likely an orderly close (close_notify both ways)",
            r.turns
        )
    } else if alert_last(server) {
        format!(
            "the server answered the client's encrypted flight ({} turns of records), so the \
             handshake most likely completed; its last record, alone, has the size of an \
             encrypted alert (19 bytes), as when post-handshake authentication rejects the \
             client's certificate",
            r.turns
        )
    } else {
        format!(
            "the server answered the client's encrypted flight ({} turns of records): the \
             handshake most likely completed",
            r.turns
        )
    };
    parts.push(finished);
    if let Some((how, mark)) = close {
        let (side, what) = match how {
            Close::Fin(s) => (s, "FIN"),
            Close::Rst(s) => (s, "RST"),
        };
        let who = if side == server { "server" } else { "client" };
        parts.push(format!(
            "the {who} closed the connection first ({what}, frame {}, {})",
            mark.frame,
            timestamp_rfc3339(&mark.ts)
        ));
    }
    Some(parts.join("; "))
}

/// Which key-log lines would open what stayed encrypted, for this client random; `None` when
/// nothing is missing (or nothing was encrypted that matters).
pub(super) fn key_lines(p: &Progress) -> Option<String> {
    let random = hex::encode(p.client_random?);
    let d = &p.decryption;
    let failed = d.failed.contains(&true);
    if d.unsupported_suite {
        let suite = p.cipher.map(|c| c.to_string()).unwrap_or_default();
        return Some(format!(
            "the key log has secrets for client random {random}, but {suite} cannot be decrypted here"
        ));
    }
    if failed {
        let sides: Vec<&str> = [Side::A, Side::B]
            .into_iter()
            .filter(|s| d.failed[s.index()])
            .filter_map(|s| p.role(s).map(TlsSide::as_str))
            .collect();
        return Some(format!(
            "records from the {} did not decrypt with the key log's secrets for client random \
             {random} (a key log from another run, or records missing from the capture)",
            sides.join(" and ")
        ));
    }
    let missing = needed_secrets(p);
    if missing.is_empty() {
        return None;
    }
    let purpose = if !p.is_tls13() {
        "to name the encrypted alert"
    } else if missing
        .iter()
        .any(|k| matches!(k, SecretKind::ClientHandshake | SecretKind::ServerHandshake))
    {
        "to see the certificates"
    } else {
        "to see post-handshake messages (the FMC's request for the device's certificate)"
    };
    let labels: Vec<&str> = missing.iter().map(|k| k.label()).collect();
    Some(format!(
        "add {} for client random {random} to a --keylog file {purpose}",
        labels.join(", ")
    ))
}

/// The key-log secrets that would open what stayed encrypted: for TLS 1.3 a side's
/// handshake secret when it sent protected records that were not opened, the application
/// secrets once the handshake is done (post-handshake messages); for TLS 1.2 the master
/// secret, only when an encrypted alert ended the handshake unnamed.
pub(super) fn needed_secrets(p: &Progress) -> Vec<SecretKind> {
    let d = &p.decryption;
    if !p.is_tls13() {
        let unnamed = p.fatal_alert.is_some_and(|f| f.alert.is_none());
        let missing = d.missing.contains(&SecretKind::Master) || !d.keylog;
        return if unnamed && missing && p.client_random.is_some() {
            vec![SecretKind::Master]
        } else {
            Vec::new()
        };
    }
    let (Some(server), Some(client)) = (p.side_of(TlsSide::Server), p.side_of(TlsSide::Client))
    else {
        return Vec::new();
    };
    // A side's protected records that were not opened: its handshake secret would.
    let unopened = |s: Side| !d.decrypted[s.index()] && p.protected.records[s.index()] > 0;
    // The application secrets matter once both sides are past their handshake flights.
    let past_handshake = if d.decrypted.contains(&true) {
        p.done
    } else {
        p.protected.records.iter().all(|&n| n > 0)
    };
    d.missing
        .iter()
        .copied()
        .filter(|k| match k {
            SecretKind::ClientHandshake => unopened(client),
            SecretKind::ServerHandshake => unopened(server),
            SecretKind::ClientTraffic0 | SecretKind::ServerTraffic0 => past_handshake,
            SecretKind::Master => false,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{CipherSuite, ProtocolVersion};

    /// A TLS 1.3 session without keys whose protected records came in `turns`: (side, len).
    fn tls13(turns: &[(Side, &[u16])]) -> Progress {
        let mut p = Progress {
            server: Some(Side::B),
            client_hello_from: Some(Side::A),
            version: Some(ProtocolVersion::TLS13),
            cipher: Some(CipherSuite(0x1302)),
            client_random: Some([0x3a; 32]),
            ..Progress::default()
        };
        for (side, lens) in turns {
            for &len in *lens {
                p.protected.add(*side, len);
            }
        }
        p.decryption.missing = vec![
            SecretKind::ClientHandshake,
            SecretKind::ServerHandshake,
            SecretKind::ClientTraffic0,
            SecretKind::ServerTraffic0,
        ];
        p
    }

    #[test]
    fn a_server_answering_with_an_alert_sized_record_is_called_a_likely_rejection() {
        let p = tls13(&[
            (Side::B, &[2000, 100]),
            (Side::A, &[1500, 300, 53]),
            (Side::B, &[19]),
        ]);
        let text = without_keys(&p, None, &Wire::default()).unwrap();
        assert_eq!(
            text,
            "client sent 3 encrypted records (1853 bytes), server 3 encrypted records (2119 bytes); \
             the server answered the client's encrypted flight with one record the size of an \
             encrypted alert (19 bytes): it most likely rejected the client's certificate"
        );
        let lines = key_lines(&p).unwrap();
        assert_eq!(
            lines,
            format!(
                "add CLIENT_HANDSHAKE_TRAFFIC_SECRET, SERVER_HANDSHAKE_TRAFFIC_SECRET, \
                 CLIENT_TRAFFIC_SECRET_0, SERVER_TRAFFIC_SECRET_0 for client random {} to a \
                 --keylog file to see the certificates",
                "3a".repeat(32)
            )
        );
    }

    #[test]
    fn turns_of_records_tell_how_far_the_handshake_went() {
        let says =
            |turns: &[(Side, &[u16])]| without_keys(&tls13(turns), None, &Wire::default()).unwrap();
        assert!(says(&[(Side::B, &[3000])]).contains("did not finish"));
        assert!(says(&[(Side::B, &[3000]), (Side::A, &[19])]).contains("rejected the server's"));
        assert!(says(&[(Side::B, &[3000]), (Side::A, &[900, 53])]).contains("cannot be told"));
        let done = says(&[
            (Side::B, &[3000]),
            (Side::A, &[900, 53]),
            (Side::B, &[250, 250]),
            (Side::A, &[40]),
        ]);
        assert!(done.contains("(4 turns of records): the handshake most likely completed"));
        let pha = says(&[
            (Side::B, &[3000]),
            (Side::A, &[53]),
            (Side::B, &[250]),
            (Side::A, &[40]),
            (Side::B, &[120]),
            (Side::A, &[900, 300, 53]),
            (Side::B, &[19]),
        ]);
        assert!(
            pha.contains("post-handshake authentication rejects"),
            "{pha}"
        );
        // close_notify both ways, the client first (and its FIN first): an orderly close, even
        // with the same last server record as above.
        let turns: &[(Side, &[u16])] = &[
            (Side::B, &[3000]),
            (Side::A, &[900, 53]),
            (Side::B, &[250, 250]),
            (Side::A, &[40, 19]),
            (Side::B, &[19]),
        ];
        let client_fin = Some((Close::Fin(Side::A), Mark::default()));
        let close = without_keys(&tls13(turns), client_fin, &Wire::default()).unwrap();
        assert!(
            close.contains("most likely an orderly close (close_notify both ways)")
                && !close.contains("post-handshake"),
            "{close}"
        );
        // The server closing first after its alert-sized record is not that.
        let server_fin = Some((Close::Fin(Side::B), Mark::default()));
        let pha = without_keys(&tls13(turns), server_fin, &Wire::default()).unwrap();
        assert!(
            pha.contains("post-handshake authentication rejects"),
            "{pha}"
        );
        // decrypted sessions need no such guesswork
        let mut d = tls13(&[(Side::B, &[3000])]);
        d.decryption.decrypted = [true, true];
        assert_eq!(without_keys(&d, None, &Wire::default()), None);
    }

    #[test]
    fn records_of_a_handshake_with_holes_are_not_read_into() {
        // The client's flight cut by the snap length: no record of it was counted.
        let p = tls13(&[(Side::B, &[3000])]);
        let mut wire = Wire::default();
        wire.missing[Side::A.index()] = super::super::outcome::Missing {
            bytes: 1205,
            cut: 1205,
        };
        wire.snaplen = Some(1200);
        let text = without_keys(&p, None, &wire).unwrap();
        assert_eq!(
            text,
            "client sent 0 encrypted records (0 bytes), server 1 encrypted record (3000 bytes); \
             the handshake is partly not captured (1205 bytes from the client cut by the snap \
             length of 1200 bytes): whether it finished cannot be told from the records"
        );
    }

    #[test]
    fn tls12_asks_for_the_master_secret_only_for_an_unnamed_encrypted_alert() {
        let mut p = Progress {
            server: Some(Side::B),
            version: Some(ProtocolVersion::TLS12),
            client_random: Some([1; 32]),
            ..Progress::default()
        };
        p.decryption.missing = vec![SecretKind::Master];
        assert_eq!(key_lines(&p), None);
        p.fatal_alert = Some(crate::tls::FatalAlert {
            side: Side::B,
            alert: None,
            after: None,
        });
        assert!(
            key_lines(&p)
                .unwrap()
                .starts_with("add CLIENT_RANDOM for client random 0101")
        );
    }
}
