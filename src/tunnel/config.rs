//! rustls configurations for both ends of the tunnel, built synchronously so they can be
//! tested without sockets.
//!
//! Owns the TLS policy of sftunnel as the appliance runs it: TLS 1.2 only (`proxy_tls_version
//! TLSv1.2`), ECDHE-RSA with AES-GCM, the aws-lc-rs provider, client certificates required,
//! trust = the InternalCA, verification by [`PeerVerifier`] at the tunnel's [`Clock`], no
//! session resumption on the device side (every reconnect is a full handshake, so the
//! certificates are judged every time, as when an FTD reboots), the presented chain completed
//! with the InternalCA as OpenSSL does, and optional NSS key logging for Wireshark.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::crypto::aws_lc_rs::{self, cipher_suite};
use rustls::{ClientConfig, KeyLog, ServerConfig};

use super::TunnelError;
use super::chain;
use super::clock::Clock;
use super::material::Identity;
use super::verify::PeerVerifier;
use crate::sftunnel::TlsSide;

/// aws-lc-rs limited to the suites sftunnel negotiates: ECDHE-RSA-AES256-GCM-SHA384 first,
/// then ECDHE-RSA-AES128-GCM-SHA256.
pub fn provider() -> Arc<CryptoProvider> {
    let mut p = aws_lc_rs::default_provider();
    p.cipher_suites = vec![
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ];
    Arc::new(p)
}

fn config_err(e: rustls::Error) -> TunnelError {
    TunnelError::Config(e.to_string())
}

/// The FMC side: requires a client certificate and judges it at `clock`'s time.
pub fn server_config(
    id: &Identity,
    clock: &Clock,
    keylog: Option<Arc<dyn KeyLog>>,
) -> Result<Arc<ServerConfig>, TunnelError> {
    let p = provider();
    let verifier = Arc::new(PeerVerifier::new(
        &id.anchors,
        TlsSide::Client,
        p.signature_verification_algorithms,
    ));
    let mut c = ServerConfig::builder_with_details(p, Arc::new(clock.clone()))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .map_err(config_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            chain::complete_chain(&id.chain, &id.anchors),
            id.key.clone_key(),
        )
        .map_err(config_err)?;
    if let Some(k) = keylog {
        c.key_log = k;
    }
    Ok(Arc::new(c))
}

/// The device side: presents its certificate, judges the FMC's chain (not its name) at
/// `clock`'s time, never resumes.
pub fn client_config(
    id: &Identity,
    clock: &Clock,
    keylog: Option<Arc<dyn KeyLog>>,
) -> Result<Arc<ClientConfig>, TunnelError> {
    let p = provider();
    let verifier = Arc::new(PeerVerifier::new(
        &id.anchors,
        TlsSide::Server,
        p.signature_verification_algorithms,
    ));
    let mut c = ClientConfig::builder_with_details(p, Arc::new(clock.clone()))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .map_err(config_err)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(
            chain::complete_chain(&id.chain, &id.anchors),
            id.key.clone_key(),
        )
        .map_err(config_err)?;
    c.resumption = Resumption::disabled();
    // sftunnel dials an IP address; never send a host name.
    c.enable_sni = false;
    if let Some(k) = keylog {
        c.key_log = k;
    }
    Ok(Arc::new(c))
}

/// NSS key log lines (`CLIENT_RANDOM <random> <master secret>`) appended to a file.
#[derive(Debug)]
pub struct KeyLogFile(Mutex<File>);

impl KeyLogFile {
    /// Opens `path` for appending (created if missing, mode 0600 whatever the umask: it holds
    /// the secrets that decrypt every recorded session).
    pub fn open(path: &Path) -> Result<Arc<dyn KeyLog>, TunnelError> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(crate::pki::fsio::KEY_MODE)
            .open(path)
            .map_err(|e| TunnelError::File {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Arc::new(KeyLogFile(Mutex::new(f))))
    }
}

impl KeyLog for KeyLogFile {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let line = format!(
            "{label} {} {}\n",
            hex::encode(client_random),
            hex::encode(secret)
        );
        let mut f = crate::sync::lock(&self.0);
        // A key log that cannot be written must not break the tunnel.
        let _ = f.write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    //! Both configurations against each other in memory (no sockets), on lab PKIs made by
    //! `pki::init`, with the clocks as the only thing that changes.
    use super::*;
    use crate::pki::{self, DeviceSpec, InitOptions, Validity};
    use crate::tunnel::material::TlsFiles;
    use rustls::{AlertDescription, ClientConnection, ServerConnection};
    use time::macros::datetime;
    use time::{Duration, OffsetDateTime};

    struct Lab {
        _dir: tempfile::TempDir,
        fmc: Identity,
        ftd: Identity,
    }

    /// A PKI whose InternalCA is valid `ca`, peer certificates valid around now.
    fn lab(ca: (OffsetDateTime, OffsetDateTime)) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let root = pki::init(&InitOptions {
            root: dir.path().to_owned(),
            fmc_uuid: None,
            devices: vec![DeviceSpec {
                name: "ftd1".into(),
                uuid: None,
            }],
            ha_secondary: None,
            ha_ca_validity: None,
            ha_peer_validity: None,
            ca_validity: Validity::new(ca.0, ca.1).unwrap(),
            peer_validity: Validity::new(now - Duration::days(1), now + Duration::days(3650))
                .unwrap(),
            key_bits: 2048,
            force: false,
        })
        .unwrap();
        let load = |f: pki::PeerFiles| {
            Identity::load(&TlsFiles {
                ca: f.ca,
                cert: f.cert,
                key: f.key,
            })
            .unwrap()
        };
        Lab {
            fmc: load(root.fmc_files()),
            ftd: load(root.device_files("ftd1").unwrap()),
            _dir: dir,
        }
    }

    fn fresh() -> Lab {
        let now = OffsetDateTime::now_utc();
        lab((now - Duration::days(1), now + Duration::days(3650)))
    }

    /// What happened on each side and which alerts crossed the wire.
    struct Outcome {
        client: Result<(), rustls::Error>,
        server: Result<(), rustls::Error>,
        client_sent: Option<u8>,
        server_sent: Option<u8>,
        suite: Option<rustls::CipherSuite>,
    }

    /// A plaintext alert record's description (handshake-time alerts are not encrypted yet).
    fn alert_in(bytes: &[u8]) -> Option<u8> {
        let mut rest = bytes;
        while rest.len() >= 5 {
            let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
            let body = rest.get(5..5 + len)?;
            if rest[0] == 0x15 && len == 2 {
                return Some(body[1]);
            }
            rest = &rest[5 + len..];
        }
        None
    }

    fn handshake(fmc: &Clock, ftd: &Clock, lab: &Lab) -> Outcome {
        let s = server_config(&lab.fmc, fmc, None).unwrap();
        let c = client_config(&lab.ftd, ftd, None).unwrap();
        let name = rustls_pki_types::ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
        let mut c = ClientConnection::new(c, name).unwrap();
        let mut s = ServerConnection::new(s).unwrap();
        let mut o = Outcome {
            client: Ok(()),
            server: Ok(()),
            client_sent: None,
            server_sent: None,
            suite: None,
        };
        for _ in 0..10 {
            let mut wire = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut wire).unwrap();
            }
            o.client_sent = o.client_sent.or(alert_in(&wire));
            if o.server.is_ok() && !wire.is_empty() {
                s.read_tls(&mut &wire[..]).unwrap();
                o.server = s.process_new_packets().map(|_| ());
            }
            let mut wire = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut wire).unwrap();
            }
            o.server_sent = o.server_sent.or(alert_in(&wire));
            if o.client.is_ok() && !wire.is_empty() {
                c.read_tls(&mut &wire[..]).unwrap();
                o.client = c.process_new_packets().map(|_| ());
            }
            if o.client.is_err() || o.server.is_err() {
                continue;
            }
            if !c.is_handshaking() && !s.is_handshaking() {
                o.suite = c.negotiated_cipher_suite().map(|s| s.suite());
                assert_eq!(c.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
                break;
            }
        }
        o
    }

    #[test]
    fn valid_pki_negotiates_tls12_ecdhe_rsa_aes256_gcm_with_client_auth() {
        let lab = fresh();
        let o = handshake(&Clock::system(), &Clock::system(), &lab);
        assert!(
            o.client.is_ok() && o.server.is_ok(),
            "{:?} {:?}",
            o.client,
            o.server
        );
        assert_eq!(
            o.suite,
            Some(rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384)
        );
    }

    #[test]
    fn expired_internal_ca_is_refused_with_alert_45_though_webpki_would_accept_it() {
        let lab = lab((
            datetime!(2014-06-01 00:00:00 UTC),
            datetime!(2024-06-01 00:00:00 UTC),
        ));
        // webpki alone accepts this chain: it never looks at the anchor's own dates.
        let anchors = [webpki::anchor_from_trusted_cert(&lab.fmc.anchors[0]).unwrap()];
        let ee = webpki::EndEntityCert::try_from(&lab.fmc.chain[0]).unwrap();
        ee.verify_for_usage(
            provider().signature_verification_algorithms.all,
            &anchors,
            &[],
            rustls_pki_types::UnixTime::now(),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .unwrap();
        let o = handshake(&Clock::system(), &Clock::system(), &lab);
        // The device judges the FMC's chain first and refuses it.
        assert_eq!(o.client_sent, Some(45));
        assert_eq!(
            o.client.unwrap_err(),
            rustls::Error::InvalidCertificate(rustls::CertificateError::Expired)
        );
        assert_eq!(
            o.server.unwrap_err(),
            rustls::Error::AlertReceived(AlertDescription::CertificateExpired)
        );
    }

    #[test]
    fn the_fmc_on_a_lab_clock_past_the_ca_refuses_the_device_with_45() {
        let lab = fresh();
        let later = Clock::lab(OffsetDateTime::now_utc() + Duration::days(11 * 365));
        let o = handshake(&later, &Clock::system(), &lab);
        assert_eq!(o.server_sent, Some(45));
        assert_eq!(
            o.client.unwrap_err(),
            rustls::Error::AlertReceived(AlertDescription::CertificateExpired)
        );
    }

    #[test]
    fn a_not_yet_valid_chain_gets_bad_certificate_42_as_from_openssl() {
        let lab = fresh();
        let before = Clock::lab(OffsetDateTime::now_utc() - Duration::days(30));
        let o = handshake(&Clock::system(), &before, &lab);
        assert_eq!(o.client_sent, Some(42));
        assert_eq!(
            o.server.unwrap_err(),
            rustls::Error::AlertReceived(AlertDescription::BadCertificate)
        );
    }
}
