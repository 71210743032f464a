//! FMC 7.6 and later: sftunnel on TLS 1.3, where the FMC asks for the device's certificate
//! after the handshake (post-handshake authentication, OpenSSL's
//! `SSL_verify_client_post_handshake`), and what it logs when that fails.
//!
//! Owns the appliance's words for it (../shared/APPLIANCE.md): when the device presents a
//! certificate of another CA, the FMC logs `Unable to set Post Handshake Auth SSL context:
//! SSL_verify_client_post_handshake:extension not received`, `Failed to reload credentials`,
//! `Failed to add services` and `Peer <device> needs re-connect`.
//!
//! How the emulator differs: rustls has no post-handshake client authentication, and a second
//! TLS stack is not an option (deny.toml). So the emulated 7.6 FMC asks for the certificate in
//! the handshake's CertificateRequest ([`super::config`]); the certificate is judged by the
//! same rules, with the same verdict, alert and verify block as in TLS 1.2, and these lines
//! follow the refusal. On the appliance the handshake itself succeeds and the certificate
//! travels after both Finished messages, encrypted under the application traffic keys.
//! A capture shows the difference: the emulator's refusal is an encrypted alert right after
//! the client's handshake flight.

use super::failure::HandshakeFailure;

/// The lines the 7.6 FMC adds after refusing the certificate of the device at `peer` (its
/// address: a refused certificate names no one the FMC can trust). Empty for failures that
/// are not a refused certificate.
pub(super) fn fmc_lines(f: &HandshakeFailure, peer: &str) -> Vec<String> {
    if !matches!(f, HandshakeFailure::Rejected(_)) {
        return Vec::new();
    }
    vec![
        "Unable to set Post Handshake Auth SSL context: \
         SSL_verify_client_post_handshake:extension not received"
            .to_owned(),
        "Failed to reload credentials".to_owned(),
        "Failed to add services".to_owned(),
        format!("Peer {peer} needs re-connect"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refused_certificate_gets_the_post_handshake_auth_lines() {
        let v = crate::judge::verify(&[], &[], time::OffsetDateTime::UNIX_EPOCH).overall;
        let lines = fmc_lines(&HandshakeFailure::Rejected(Box::new(v)), "192.0.2.7");
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("Unable to set Post Handshake Auth SSL context: "));
        assert_eq!(lines[3], "Peer 192.0.2.7 needs re-connect");
        assert!(fmc_lines(&HandshakeFailure::Closed, "192.0.2.7").is_empty());
    }
}
