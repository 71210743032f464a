//! rustls configurations for both ends of the tunnel, built synchronously so they can be
//! tested without sockets.
//!
//! Owns the TLS policy of sftunnel as the appliance runs it: one protocol version
//! (`proxy_tls_version`: TLS 1.2 before 7.6, TLS 1.3 from 7.6), ECDHE with AES-GCM for RSA and
//! ECDSA certificates (and the three TLS 1.3 suites OpenSSL enables by default), the aws-lc-rs
//! provider, client certificates required, trust = the InternalCA, verification by
//! [`PeerVerifier`] at the tunnel's [`Clock`], no session resumption on the device side (every
//! reconnect is a full handshake, so the certificates are judged every time, as when an FTD
//! reboots), the presented chain completed with the InternalCA as OpenSSL does, and optional
//! NSS key logging for Wireshark.
//!
//! Our own certificate is handed to rustls as it is ([`OwnCert`]), never parsed by webpki: a
//! v1 leaf, an unknown critical extension or an extension value OpenSSL would send anyway is
//! sent, and the other side judges it (with OpenSSL's code when the other side is us).
//!
//! TLS 1.3 differs from the appliance in one way: FMC 7.6 asks for the device's certificate
//! after the handshake (post-handshake authentication, `SSL_verify_client_post_handshake`),
//! which rustls does not implement. The emulated FMC asks for it inside the handshake, in its
//! CertificateRequest, so the same certificate is judged by the same rules with the same
//! verdict and alert; only where it travels differs (inside the handshake flight instead of
//! after Finished). `lab upgrade-76` says so where it matters.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::client::{ResolvesClientCert, Resumption};
use rustls::crypto::CryptoProvider;
use rustls::crypto::aws_lc_rs::{self, cipher_suite};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, KeyLog, ServerConfig, SignatureScheme, SupportedProtocolVersion};

use super::TunnelError;
use super::clock::Clock;
use super::material::Identity;
use super::verify::{self, PeerVerifier};
use crate::sftunnel::TlsSide;

// The version knob is `pki::conf`'s (its one public path); tunnel's modules name it from here.
pub(super) use crate::pki::conf::TlsVersion;

/// aws-lc-rs limited to the suites sftunnel negotiates. TLS 1.2: ECDHE-RSA and ECDHE-ECDSA
/// with AES-256-GCM first, then AES-128-GCM (an ECDSA InternalCA or peer key is OpenSSL's to
/// load, so ours too). TLS 1.3: OpenSSL's default list, in its order.
pub(super) fn provider() -> Arc<CryptoProvider> {
    let mut p = aws_lc_rs::default_provider();
    p.cipher_suites = vec![
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cipher_suite::TLS13_AES_256_GCM_SHA384,
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        cipher_suite::TLS13_AES_128_GCM_SHA256,
    ];
    Arc::new(p)
}

/// The one protocol version a tunnel speaks.
fn versions(v: TlsVersion) -> &'static [&'static SupportedProtocolVersion] {
    static TLS12: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
    static TLS13: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    match v {
        TlsVersion::Tls12 => &TLS12,
        TlsVersion::Tls13 => &TLS13,
    }
}

fn config_err(e: rustls::Error) -> TunnelError {
    TunnelError::Config(e.to_string())
}

/// This side's certificate chain and key, as loaded ([`Identity`]): given to rustls without
/// the webpki parse `with_single_cert` does (see the module doc). On the device side it also
/// notes that the server asked for it, so `connect` can say when a peer never did.
#[derive(Debug)]
pub struct OwnCert(Arc<CertifiedKey>);

impl OwnCert {
    /// `id`'s chain, completed with the InternalCA as OpenSSL completes it, and its key.
    pub fn of(id: &Identity) -> Self {
        OwnCert(Arc::new(CertifiedKey::new(
            super::chain::complete_chain(&id.chain, &id.anchors),
            id.signer.clone(),
        )))
    }
}

impl ResolvesServerCert for OwnCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl ResolvesClientCert for OwnCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        verify::note_certificate_requested();
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The FMC side over TLS 1.2 ([`server_config_for`]).
pub fn server_config(
    id: &Identity,
    clock: &Clock,
    keylog: Option<Arc<dyn KeyLog>>,
) -> Result<Arc<ServerConfig>, TunnelError> {
    server_config_for(TlsVersion::Tls12, id, clock, keylog)
}

/// The FMC side: speaks `version`, requires a client certificate and judges it at `clock`'s
/// time.
pub fn server_config_for(
    version: TlsVersion,
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
        .with_protocol_versions(versions(version))
        .map_err(config_err)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(OwnCert::of(id)));
    if let Some(k) = keylog {
        c.key_log = k;
    }
    Ok(Arc::new(c))
}

/// The device side over TLS 1.2 ([`client_config_for`]).
pub fn client_config(
    id: &Identity,
    clock: &Clock,
    keylog: Option<Arc<dyn KeyLog>>,
) -> Result<Arc<ClientConfig>, TunnelError> {
    client_config_for(TlsVersion::Tls12, id, clock, keylog)
}

/// The device side: speaks `version`, presents its certificate, judges the FMC's chain (not
/// its name) at `clock`'s time, never resumes.
pub fn client_config_for(
    version: TlsVersion,
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
        .with_protocol_versions(versions(version))
        .map_err(config_err)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(OwnCert::of(id)));
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
            tls_version: Default::default(),
        })
        .unwrap();
        let load = |f: pki::layout::PeerFiles| {
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
        handshake_in(TlsVersion::Tls12, fmc, ftd, lab)
    }

    fn handshake_in(v: TlsVersion, fmc: &Clock, ftd: &Clock, lab: &Lab) -> Outcome {
        let s = server_config_for(v, &lab.fmc, fmc, None).unwrap();
        let c = client_config_for(v, &lab.ftd, ftd, None).unwrap();
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
                let want = match v {
                    TlsVersion::Tls12 => rustls::ProtocolVersion::TLSv1_2,
                    TlsVersion::Tls13 => rustls::ProtocolVersion::TLSv1_3,
                };
                assert_eq!(c.protocol_version(), Some(want));
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

    #[test]
    fn tls13_negotiates_aes256_with_client_auth_and_refuses_an_expired_ca_with_45() {
        let ok = fresh();
        let o = handshake_in(TlsVersion::Tls13, &Clock::system(), &Clock::system(), &ok);
        assert!(
            o.client.is_ok() && o.server.is_ok(),
            "{:?} {:?}",
            o.client,
            o.server
        );
        assert_eq!(o.suite, Some(rustls::CipherSuite::TLS13_AES_256_GCM_SHA384));
        let old = lab((
            datetime!(2014-06-01 00:00:00 UTC),
            datetime!(2024-06-01 00:00:00 UTC),
        ));
        let o = handshake_in(TlsVersion::Tls13, &Clock::system(), &Clock::system(), &old);
        // The device refuses the FMC's chain; the (encrypted) alert reaches the FMC.
        assert_eq!(
            o.client.unwrap_err(),
            rustls::Error::InvalidCertificate(rustls::CertificateError::Expired)
        );
        assert_eq!(
            o.server.unwrap_err(),
            rustls::Error::AlertReceived(AlertDescription::CertificateExpired)
        );
    }
}
