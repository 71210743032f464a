//! Certificate and key files: every certificate in a PEM bundle (or a single DER certificate,
//! or a PKCS#12 bundle that needs no password, read by `pkcs12`), and the private key of a
//! key file, with errors that name the file and what was wrong: not a certificate, bad base64,
//! an unterminated block, a private key where a certificate was expected (said to be a key,
//! never printed), no key or an encrypted one where a key was, a PKCS#12 bundle that needs a
//! password.
//! Every module that reads a PEM or X.509 file (`pki`, `tunnel`, the CLI) reads it here.
//!
//! Parsing ([`parse_pem_bundle`], [`parse_key_pem`]) is pure; [`read_certs`] and [`read_key`]
//! are the only functions here that touch the file system. Non-certificate blocks beside
//! certificates (a key in a combined file, a CSR) are skipped, and so are certificates beside a
//! key; a file with neither is an error naming what it did hold.

use std::path::{Path, PathBuf};

use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};

use super::{CertInfo, der};

/// Why certificates or a key could not be read from a file or buffer.
///
/// `what` names the input in every message: the file's path as displayed for [`read_certs`]
/// and [`read_key`], the caller's name for [`parse_named`] and [`parse_key_pem`], `input` for
/// [`parse_pem_bundle`]. PEM block numbers (`index`) count every block of the input from 1,
/// whatever its label; line numbers count from 1.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path as the caller gave it.
        path: PathBuf,
        /// Why the open or read failed, or that it is not a regular file, or larger than 16 MiB.
        #[source]
        source: std::io::Error,
    },
    /// Certificates were wanted, and the input holds a private key and no certificate (the
    /// key's bytes are never put in the message).
    #[error("{what}: holds a private key ({label}), not a certificate")]
    PrivateKey {
        /// Names the input (see [`CertError`]).
        what: String,
        /// The first key block's PEM label (`PRIVATE KEY`, `RSA PRIVATE KEY`, ...), or `DER`
        /// for a DER file that opens as keys do (SEQUENCE { INTEGER ...).
        label: String,
    },
    /// A line inside a PEM block is not base64 (or has data after its `=` padding, or is not
    /// a whole number of 4-character groups).
    #[error("{what}: PEM block {index} ({label}) has bad base64 on line {line}")]
    BadBase64 {
        /// Names the input (see [`CertError`]).
        what: String,
        /// The block's number, from 1.
        index: usize,
        /// The block's label, from its BEGIN line.
        label: String,
        /// The bad line's number, from 1.
        line: usize,
    },
    /// A BEGIN line with no END line before the input ends or the next BEGIN line.
    #[error("{what}: PEM block {index} ({label}) starting on line {line} has no END line")]
    Unterminated {
        /// Names the input (see [`CertError`]).
        what: String,
        /// The block's number, from 1.
        index: usize,
        /// The block's label, from its BEGIN line.
        label: String,
        /// The number of its BEGIN line, from 1.
        line: usize,
    },
    /// A block closed by an END line with another label than its BEGIN line's
    /// (`BEGIN CERTIFICATE` ... `END X509 CRL`): OpenSSL refuses it too (`bad end line`).
    #[error(
        "{what}: PEM block {index} ({label}) starting on line {line} ends with END {end} on line {end_line}"
    )]
    MismatchedEnd {
        /// Names the input (see [`CertError`]).
        what: String,
        /// The block's number, from 1.
        index: usize,
        /// The block's label, from its BEGIN line.
        label: String,
        /// The number of its BEGIN line, from 1.
        line: usize,
        /// The END line's label.
        end: String,
        /// The number of the END line, from 1.
        end_line: usize,
    },
    /// No certificate in the input: it is empty, holds other PEM blocks only (a CSR, ...), is
    /// neither PEM nor DER, or is a PKCS#12 bundle without certificate bags. (A private key
    /// instead is [`CertError::PrivateKey`].)
    #[error("{what}: no certificate found{found}")]
    NoCertificate {
        /// Names the input (see [`CertError`]).
        what: String,
        /// What the input held instead, with its leading space and parentheses
        /// (` (empty)`, ` (PEM blocks: CERTIFICATE REQUEST)`, ` (no PEM block, and not DER:
        /// a pcap capture ...)`), appended to the message as is.
        found: String,
    },
    /// A certificate PEM block (`CERTIFICATE`, `X509 CERTIFICATE`, `TRUSTED CERTIFICATE`), a
    /// PKCS#12 certificate bag, or DER input, whose bytes do not even hold a tbsCertificate (DER
    /// input: or a serialNumber). A certificate that merely has a bad field is returned instead.
    #[error("{what}: certificate {index} is not a DER certificate: {reason}")]
    NotACertificate {
        /// Names the input (see [`CertError`]).
        what: String,
        /// The PEM block's number, or the bag's in a PKCS#12 bundle (from 1); 1 for DER input.
        index: usize,
        /// [`CertInfo::parse_error`] of what was decoded.
        reason: String,
    },
    /// A key was wanted and none is there: empty, PEM blocks with no private key among them,
    /// or bytes that are neither PEM nor a DER key.
    #[error("{what}: no private key found{found}")]
    NoKey {
        /// Names the input (see [`CertError`]).
        what: String,
        /// What the input held instead, as [`CertError::NoCertificate`]'s `found` is
        /// (` (PEM blocks: CERTIFICATE)`, ...).
        found: String,
    },
    /// The first key block is PKCS#8 `ENCRYPTED PRIVATE KEY`: sfdiag takes no passphrase.
    #[error(
        "{what}: PEM block {index} is an encrypted private key ({label}); decrypt it first (openssl pkey -in FILE -out KEY)"
    )]
    EncryptedKey {
        /// Names the input (see [`CertError`]).
        what: String,
        /// The block's number, from 1.
        index: usize,
        /// The block's label (`ENCRYPTED PRIVATE KEY`).
        label: String,
    },
    /// The first key block has a label other than PKCS#8's, PKCS#1's or SEC1's
    /// (`OPENSSH PRIVATE KEY`, `DSA PRIVATE KEY`, ...).
    #[error("{what}: holds a {label}, not a key format sfdiag reads (PKCS#8, PKCS#1 or SEC1)")]
    UnsupportedKey {
        /// Names the input (see [`CertError`]).
        what: String,
        /// The block's label.
        label: String,
    },
    /// A PKCS#12 bundle that needs a password (sfdiag reads only those that need none): its
    /// MAC does not verify, or a bag does not decrypt, with the empty password.
    #[error(
        "{what}: a PKCS#12 bundle protected by a password; sfdiag reads only bundles without one (export its certificates first: openssl pkcs12 -in FILE -nokeys -out FILE.pem)"
    )]
    Pkcs12Password {
        /// Names the input (see [`CertError`]).
        what: String,
    },
    /// A PKCS#12 bundle that does not parse.
    #[error("{what}: not a readable PKCS#12 bundle: {reason}")]
    Pkcs12 {
        /// Names the input (see [`CertError`]).
        what: String,
        /// p12-keystore's error, in its words.
        reason: String,
    },
}

/// Reads every certificate in a PEM bundle or DER file.
pub fn read_certs(path: impl AsRef<Path>) -> Result<Vec<CertInfo>, CertError> {
    let (bytes, what) = read(path.as_ref())?;
    parse_named(&bytes, &what)
}

/// A file's bytes and the name its errors go by. A link is followed; a FIFO, device or
/// folder is refused at once, and so is a file of more than 16 MiB (`files::MAX_CERT_FILE`).
fn read(path: &Path) -> Result<(Vec<u8>, String), CertError> {
    let bytes = crate::files::read_bounded(
        path,
        crate::files::MAX_CERT_FILE,
        crate::files::Links::Follow,
    )
    .map_err(|source| CertError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((bytes, path.display().to_string()))
}

/// Parses every certificate in a PEM bundle, or `bytes` as one DER certificate when it holds no
/// PEM block. Errors call the input "input"; [`read_certs`] names the file instead.
pub fn parse_pem_bundle(bytes: &[u8]) -> Result<Vec<CertInfo>, CertError> {
    parse_named(bytes, "input")
}

/// [`parse_pem_bundle`] on bytes already read; `what` names them in errors (a file's name).
pub fn parse_named(bytes: &[u8], what: &str) -> Result<Vec<CertInfo>, CertError> {
    let blocks = pem_blocks(bytes, what)?;
    if blocks.is_empty() {
        if super::pkcs12::looks_like_pkcs12(bytes) {
            return super::pkcs12::parse_pkcs12(bytes, what);
        }
        return parse_der(bytes, what).map(|c| vec![c]);
    }
    let mut certs = Vec::new();
    let mut others: Vec<String> = Vec::new();
    let mut key_label = None;
    for (index, (label, body)) in blocks.into_iter().enumerate() {
        let index = index + 1;
        match label.as_str() {
            "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => {
                // A TRUSTED CERTIFICATE is the DER certificate followed by OpenSSL's trust
                // settings: keep only the certificate's own TLV.
                let end = match der::read_tlv(&body, 0) {
                    Some(t) if label == "TRUSTED CERTIFICATE" => t.full.end,
                    _ => body.len(),
                };
                let mut cert = body;
                cert.truncate(end);
                let info = CertInfo::from_arc(cert.into());
                if info.parts.tbs.is_none() {
                    return Err(CertError::NotACertificate {
                        what: what.to_string(),
                        index,
                        reason: info.parse_error.unwrap_or_default(),
                    });
                }
                certs.push(info);
            }
            l if l.contains("PRIVATE KEY") => {
                key_label.get_or_insert(label.clone());
            }
            _ => others.push(label),
        }
    }
    if certs.is_empty() {
        if let Some(label) = key_label {
            return Err(CertError::PrivateKey {
                what: what.to_string(),
                label,
            });
        }
        return Err(CertError::NoCertificate {
            what: what.to_string(),
            found: format!(" (PEM blocks: {})", others.join(", ")),
        });
    }
    Ok(certs)
}

/// Reads the private key in a PEM file (PKCS#8 `PRIVATE KEY`, PKCS#1 `RSA PRIVATE KEY` or
/// SEC1 `EC PRIVATE KEY`; the first one when there are several) or a DER key file.
pub fn read_key(path: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>, CertError> {
    let (bytes, what) = read(path.as_ref())?;
    parse_key_pem(&bytes, &what)
}

/// [`read_key`] on bytes already read; `what` names them in errors (the file's path).
pub fn parse_key_pem(bytes: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, CertError> {
    let blocks = pem_blocks(bytes, what)?;
    if blocks.is_empty() {
        if bytes.is_empty() {
            return Err(CertError::NoKey {
                what: what.to_string(),
                found: " (empty)".into(),
            });
        }
        return PrivateKeyDer::try_from(bytes.to_vec()).map_err(|_| CertError::NoKey {
            what: what.to_string(),
            found: format!(
                " (no PEM block, and not a DER key: {})",
                describe_start(bytes)
            ),
        });
    }
    let mut labels = Vec::new();
    for (index, (label, body)) in blocks.into_iter().enumerate() {
        match label.as_str() {
            "PRIVATE KEY" => return Ok(PrivatePkcs8KeyDer::from(body).into()),
            "RSA PRIVATE KEY" => return Ok(PrivatePkcs1KeyDer::from(body).into()),
            "EC PRIVATE KEY" => return Ok(PrivateSec1KeyDer::from(body).into()),
            "ENCRYPTED PRIVATE KEY" => {
                return Err(CertError::EncryptedKey {
                    what: what.to_string(),
                    index: index + 1,
                    label,
                });
            }
            l if l.contains("PRIVATE KEY") => {
                return Err(CertError::UnsupportedKey {
                    what: what.to_string(),
                    label,
                });
            }
            _ => labels.push(label),
        }
    }
    Err(CertError::NoKey {
        what: what.to_string(),
        found: format!(" (PEM blocks: {})", labels.join(", ")),
    })
}

/// What a file that is neither PEM nor DER seems to be, for the error: a capture, gzip, or
/// its first bytes (as text when they are printable).
fn describe_start(bytes: &[u8]) -> String {
    match bytes.get(..4) {
        Some([0xa1, 0xb2, 0xc3, 0xd4] | [0xd4, 0xc3, 0xb2, 0xa1])
        | Some([0xa1, 0xb2, 0x3c, 0x4d] | [0x4d, 0x3c, 0xb2, 0xa1]) => {
            return "a pcap capture (`sfdiag analyze` reads those)".into();
        }
        Some([0x0a, 0x0d, 0x0d, 0x0a]) => {
            return "a pcapng capture (`sfdiag analyze` reads those)".into();
        }
        Some([0x1f, 0x8b, ..]) => return "gzip-compressed data".into(),
        _ => {}
    }
    let head = &bytes[..bytes.len().min(16)];
    if head.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("it starts with {:?}", String::from_utf8_lossy(head))
    } else {
        let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
        format!("it starts with bytes {}", hex.join(" "))
    }
}

fn parse_der(bytes: &[u8], what: &str) -> Result<CertInfo, CertError> {
    let not_cert = |reason: &str| CertError::NotACertificate {
        what: what.to_string(),
        index: 1,
        reason: reason.to_string(),
    };
    if bytes.is_empty() {
        return Err(CertError::NoCertificate {
            what: what.to_string(),
            found: " (empty)".into(),
        });
    }
    let Some(outer) = der::read_tlv(bytes, 0).filter(|t| t.tag == der::SEQUENCE) else {
        return Err(CertError::NoCertificate {
            what: what.to_string(),
            found: format!(" (no PEM block, and not DER: {})", describe_start(bytes)),
        });
    };
    // PKCS#1, SEC1 and PKCS#8 private keys all open with INTEGER version; a certificate
    // opens with its TBS SEQUENCE.
    if let Some(first) = der::read_tlv(bytes, outer.content.start)
        && first.tag == der::INTEGER
    {
        return Err(CertError::PrivateKey {
            what: what.to_string(),
            label: "DER".into(),
        });
    }
    let info = CertInfo::from_arc(bytes.into());
    if info.parts.tbs.is_none() || info.serial.is_none() {
        return Err(not_cert(info.parse_error.as_deref().unwrap_or("unknown")));
    }
    Ok(info)
}

/// Splits PEM text into (label, decoded body) blocks. Text outside blocks is ignored (OpenSSL
/// writes human-readable dumps before certificates with `-text`).
fn pem_blocks(bytes: &[u8], what: &str) -> Result<Vec<(String, Vec<u8>)>, CertError> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, usize, Vec<u8>, bool)> = None;
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = i + 1;
        let line = trim(raw);
        match &mut current {
            None => {
                if let Some(label) = strip_marker(line, b"-----BEGIN ") {
                    current = Some((label, line_no, Vec::new(), false));
                }
            }
            Some((label, start, body, seen_data)) => {
                if let Some(end) = strip_marker(line, b"-----END ") {
                    // OpenSSL's PEM reader wants `END <the BEGIN label>` (PEM_R_BAD_END_LINE).
                    if end != *label {
                        return Err(CertError::MismatchedEnd {
                            what: what.to_string(),
                            index: blocks.len() + 1,
                            label: label.clone(),
                            line: *start,
                            end,
                            end_line: line_no,
                        });
                    }
                    blocks.push((std::mem::take(label), std::mem::take(body)));
                    current = None;
                    continue;
                }
                if line.starts_with(b"-----BEGIN ") {
                    return Err(CertError::Unterminated {
                        what: what.to_string(),
                        index: blocks.len() + 1,
                        label: label.clone(),
                        line: *start,
                    });
                }
                // RFC 1421 headers (Proc-Type, DEK-Info) precede the data in old key files.
                if !*seen_data && (line.contains(&b':') || line.is_empty()) {
                    continue;
                }
                *seen_data = true;
                if !decode_base64_line(line, body) {
                    return Err(CertError::BadBase64 {
                        what: what.to_string(),
                        index: blocks.len() + 1,
                        label: label.clone(),
                        line: line_no,
                    });
                }
            }
        }
    }
    if let Some((label, start, _, _)) = current {
        return Err(CertError::Unterminated {
            what: what.to_string(),
            index: blocks.len() + 1,
            label,
            line: start,
        });
    }
    Ok(blocks)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

fn strip_marker(line: &[u8], prefix: &[u8]) -> Option<String> {
    let rest = line.strip_prefix(prefix)?.strip_suffix(b"-----")?;
    Some(String::from_utf8_lossy(rest).into_owned())
}

/// Appends one line of base64 to `out`. Lines are decoded independently, which is fine for
/// PEM: every line but the last carries a multiple of 4 characters.
fn decode_base64_line(line: &[u8], out: &mut Vec<u8>) -> bool {
    let mut acc = 0u32;
    let mut n = 0;
    let mut pad = 0;
    for &c in line {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                pad += 1;
                0
            }
            b' ' | b'\t' | b'\r' => continue,
            _ => return false,
        };
        if pad > 0 && c != b'=' {
            return false; // data after padding
        }
        acc = (acc << 6) | u32::from(v);
        n += 1;
        if n == 4 {
            let bytes = acc.to_be_bytes();
            let keep = 3 - pad.min(2);
            out.extend_from_slice(&bytes[1..1 + keep]);
            acc = 0;
            n = 0;
        }
    }
    n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_lines() {
        let mut out = Vec::new();
        assert!(decode_base64_line(b"TWFu", &mut out));
        assert!(decode_base64_line(b"TWE=", &mut out));
        assert!(decode_base64_line(b"TQ==", &mut out));
        assert_eq!(out, b"ManMaM");
        assert!(!decode_base64_line(b"TW!u", &mut out));
        assert!(!decode_base64_line(b"TWF", &mut out));
        assert!(!decode_base64_line(b"TQ==TWFu", &mut out));
    }

    #[test]
    fn key_is_named_not_printed() {
        let pem = b"-----BEGIN PRIVATE KEY-----\nTWFu\n-----END PRIVATE KEY-----\n";
        let e = parse_pem_bundle(pem).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, CertError::PrivateKey { .. }), "{msg}");
        assert_eq!(
            msg,
            "input: holds a private key (PRIVATE KEY), not a certificate"
        );
    }

    #[test]
    fn bad_base64_and_unterminated_blocks_are_named() {
        let pem = b"x\n-----BEGIN CERTIFICATE-----\nMII*\n-----END CERTIFICATE-----\n";
        assert_eq!(
            parse_pem_bundle(pem).unwrap_err().to_string(),
            "input: PEM block 1 (CERTIFICATE) has bad base64 on line 3"
        );
        let pem = b"-----BEGIN CERTIFICATE-----\nTWFu\n";
        assert!(matches!(
            parse_pem_bundle(pem).unwrap_err(),
            CertError::Unterminated { line: 1, .. }
        ));
        let e = parse_pem_bundle(b"-----BEGIN CERTIFICATE-----\nTWFu\n-----END CERTIFICATE-----")
            .unwrap_err();
        assert!(
            matches!(e, CertError::NotACertificate { index: 1, .. }),
            "{e}"
        );
    }

    #[test]
    fn an_end_line_with_another_label_is_refused_as_openssl_does() {
        let pem = b"-----BEGIN CERTIFICATE-----\nTWFu\n-----END X509 CRL-----\n";
        let e = parse_pem_bundle(pem).unwrap_err();
        assert_eq!(
            e.to_string(),
            "input: PEM block 1 (CERTIFICATE) starting on line 1 ends with END X509 CRL on line 3"
        );
        // Every block is held to it, a key block too.
        let pem = b"-----BEGIN PRIVATE KEY-----\nTWFu\n-----END RSA PRIVATE KEY-----\n";
        assert!(matches!(
            parse_key_pem(pem, "k").unwrap_err(),
            CertError::MismatchedEnd {
                index: 1,
                end_line: 3,
                ..
            }
        ));
    }

    #[test]
    fn keys_of_each_format_are_read_and_what_is_not_a_key_is_named() {
        let key = rcgen::KeyPair::generate().unwrap();
        let pkcs8 = key.serialize_pem();
        let got = parse_key_pem(pkcs8.as_bytes(), "k.pem").unwrap();
        assert!(matches!(got, PrivateKeyDer::Pkcs8(_)));
        assert_eq!(got.secret_der(), key.serialize_der().as_slice());
        // Beside a certificate, in a combined file, the key is found.
        let cert = rcgen::CertificateParams::new(vec!["x".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem();
        let both = format!("{cert}{pkcs8}");
        assert_eq!(
            parse_key_pem(both.as_bytes(), "k.pem")
                .unwrap()
                .secret_der(),
            key.serialize_der().as_slice()
        );
        let der = parse_key_pem(&key.serialize_der(), "k.der").unwrap();
        assert_eq!(der.secret_der(), key.serialize_der().as_slice());
        let rsa = b"-----BEGIN RSA PRIVATE KEY-----\nTWFu\n-----END RSA PRIVATE KEY-----\n";
        assert!(matches!(
            parse_key_pem(rsa, "r").unwrap(),
            PrivateKeyDer::Pkcs1(_)
        ));
        assert_eq!(
            parse_key_pem(cert.as_bytes(), "c.pem")
                .unwrap_err()
                .to_string(),
            "c.pem: no private key found (PEM blocks: CERTIFICATE)"
        );
        let enc =
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nTWFu\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(matches!(
            parse_key_pem(enc, "e").unwrap_err(),
            CertError::EncryptedKey { index: 1, .. }
        ));
        assert_eq!(
            parse_key_pem(b"hello", "h").unwrap_err().to_string(),
            "h: no private key found (no PEM block, and not a DER key: it starts with \"hello\")"
        );
        let ssh = b"-----BEGIN OPENSSH PRIVATE KEY-----\nTWFu\n-----END OPENSSH PRIVATE KEY-----\n";
        assert!(matches!(
            parse_key_pem(ssh, "s").unwrap_err(),
            CertError::UnsupportedKey { .. }
        ));
        assert!(matches!(
            parse_key_pem(b"", "z").unwrap_err(),
            CertError::NoKey { .. }
        ));
    }

    #[test]
    fn not_pem_not_der() {
        assert_eq!(
            parse_pem_bundle(b"hello").unwrap_err().to_string(),
            "input: no certificate found (no PEM block, and not DER: it starts with \"hello\")"
        );
        let pcap = [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        assert!(
            parse_pem_bundle(&pcap)
                .unwrap_err()
                .to_string()
                .contains("a pcap capture (`sfdiag analyze` reads those)")
        );
        assert!(
            parse_pem_bundle(&[0, 1, 0xff])
                .unwrap_err()
                .to_string()
                .ends_with("it starts with bytes 00 01 ff)")
        );
        assert!(matches!(
            parse_pem_bundle(b"").unwrap_err(),
            CertError::NoCertificate { .. }
        ));
        let csr = b"-----BEGIN CERTIFICATE REQUEST-----\nTWFu\n-----END CERTIFICATE REQUEST-----\n";
        assert_eq!(
            parse_pem_bundle(csr).unwrap_err().to_string(),
            "input: no certificate found (PEM blocks: CERTIFICATE REQUEST)"
        );
        // A DER private key (SEQUENCE { INTEGER 0, ... }).
        let der_key = [0x30, 0x05, 0x02, 0x01, 0x00, 0x04, 0x00];
        assert!(matches!(
            parse_pem_bundle(&der_key).unwrap_err(),
            CertError::PrivateKey { .. }
        ));
    }
}
