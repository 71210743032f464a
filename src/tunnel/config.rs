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
        id.anchors.clone(),
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
        id.anchors.clone(),
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
    /// Opens `path` for appending (created if missing).
    pub fn open(path: &Path) -> Result<Arc<dyn KeyLog>, TunnelError> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
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
        let mut f = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // A key log that cannot be written must not break the tunnel.
        let _ = f.write_all(line.as_bytes());
    }
}
