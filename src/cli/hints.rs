//! What to do next: a one-line hint under an error the user can fix, printed by `main`.
//!
//! The error itself says what went wrong (the library's messages carry the facts); this adds
//! the next step, in terms of commands and flags, which is why it lives in `cli`. Errors with
//! no useful next step get no hint rather than a generic one.

use std::io;

use sfdiag::capture::CaptureError;
use sfdiag::cert::CertError;
use sfdiag::pki::PkiError;
use sfdiag::tunnel::TunnelError;

/// The hint for the first error in `err`'s chain that has one.
pub(crate) fn hint(err: &anyhow::Error) -> Option<&'static str> {
    err.chain().find_map(|cause| {
        if let Some(e) = cause.downcast_ref::<PkiError>() {
            return pki(e);
        }
        if let Some(e) = cause.downcast_ref::<CertError>() {
            return cert(e);
        }
        if let Some(e) = cause.downcast_ref::<CaptureError>() {
            return capture(e);
        }
        if let Some(TunnelError::Bind { source, .. }) = cause.downcast_ref::<TunnelError>() {
            return match source.kind() {
                io::ErrorKind::InvalidInput => {
                    Some("give --listen as ADDR:PORT, e.g. 127.0.0.1:8305 or 0.0.0.0:8305")
                }
                kind => io_kind(kind),
            };
        }
        cause
            .downcast_ref::<io::Error>()
            .and_then(|e| io_kind(e.kind()))
    })
}

fn pki(e: &PkiError) -> Option<&'static str> {
    match e {
        PkiError::NotAPki { .. } => Some(
            "create a lab PKI there with `sfdiag pki init --root DIR`, or point --root at the \
             folder that holds fmc/",
        ),
        PkiError::BadKey { .. } => {
            Some("the file must hold a PEM private key; `sfdiag pki show FILE` says what it holds")
        }
        PkiError::Io { source, .. } => io_kind(source.kind()),
        _ => None,
    }
}

fn cert(e: &CertError) -> Option<&'static str> {
    match e {
        CertError::PrivateKey { .. } => {
            Some("pass the certificate (e.g. sftunnel-cert.pem or cacert.pem), not its key")
        }
        CertError::NoCertificate { .. }
        | CertError::NotACertificate { .. }
        | CertError::BadBase64 { .. }
        | CertError::Unterminated { .. }
        | CertError::MismatchedEnd { .. } => {
            Some("`sfdiag pki show FILE` or `openssl x509 -in FILE -text` shows what it holds")
        }
        CertError::Io { source, .. } => io_kind(source.kind()),
        _ => None,
    }
}

fn capture(e: &CaptureError) -> Option<&'static str> {
    match e {
        CaptureError::NotACapture { .. } => Some(
            "analyze reads pcap and pcapng, gzip-compressed or not; `file FILE` says what it is, \
             and `editcap -F pcapng IN OUT` (Wireshark) converts other capture formats",
        ),
        CaptureError::Open { source, .. } => io_kind(source.kind()),
        _ => None,
    }
}

fn io_kind(kind: io::ErrorKind) -> Option<&'static str> {
    match kind {
        io::ErrorKind::NotFound => Some("check the path; `ls` the folder it names"),
        io::ErrorKind::PermissionDenied => Some(
            "run as the user that owns the files (keys are mode 0600), or fix their permissions",
        ),
        io::ErrorKind::AddrInUse => {
            Some("another process listens there: stop it, or choose another --listen port")
        }
        io::ErrorKind::AddrNotAvailable => {
            Some("that address is not on this machine: use 127.0.0.1 or one of `ip -br addr`")
        }
        io::ErrorKind::ConnectionRefused => {
            Some("nothing listens there: start `sfdiag serve` first, or check ADDR:PORT")
        }
        _ => None,
    }
}
