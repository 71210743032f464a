//! Issuing one generation of the sftunnel certificates: a new InternalCA for an FMC, the FMC's
//! own certificate and one per device, with consecutive serials, all as PEM bytes.
//!
//! Shared by `pki init` (a first generation) and `pki renew` (generate_certs.pl's new one), so
//! the two cannot drift apart in what they issue; where the files go is each caller's job.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::KeyPair;

use super::{
    InternalCa, PeerProfile, PkiError, Uuid, Validity, cert_to_pem, generate_rsa_key, key_to_pem,
};

/// What to issue.
pub(super) struct Request<'a> {
    pub fmc: Uuid,
    pub devices: &'a [Uuid],
    pub key_bits: u32,
    pub ca_validity: &'a Validity,
    pub peer_validity: &'a Validity,
    /// The FMC certificate's serial; devices follow in order.
    pub first_serial: u64,
}

/// A certificate and its private key, PEM-encoded.
pub(super) struct Issued {
    pub serial: u64,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

/// One generation: the CA (serial 0, v1) and the peers it signed.
pub(super) struct Generation {
    pub ca: InternalCa,
    pub ca_pem: Vec<u8>,
    pub ca_key_pem: Vec<u8>,
    pub fmc: Issued,
    /// In the order of [`Request::devices`].
    pub devices: Vec<Issued>,
    /// The serial the next certificate this CA signs should carry (the `serial` file).
    pub next_serial: u64,
}

/// Issues the generation `req` describes. Keys are the slow part (RSA generation): they are
/// made first, on every core.
pub(super) fn issue(req: &Request<'_>) -> Result<Generation, PkiError> {
    let mut keys = generate_keys(2 + req.devices.len(), req.key_bits)?.into_iter();
    let mut next_key = || keys.next().expect("one key per certificate was generated");
    let ca = InternalCa::create(req.fmc, next_key(), req.ca_validity)?;
    let mut serial = req.first_serial;
    let mut sign = |profile: PeerProfile| -> Result<Issued, PkiError> {
        let key = next_key();
        let der = ca.issue(profile, &key, serial, req.peer_validity)?;
        serial += 1;
        Ok(Issued {
            serial: serial - 1,
            cert_pem: cert_to_pem(&der).into_bytes(),
            key_pem: key_to_pem(&key).into_bytes(),
        })
    };
    let fmc = sign(PeerProfile::Fmc(req.fmc))?;
    let devices = req
        .devices
        .iter()
        .map(|&uuid| sign(PeerProfile::Device(uuid)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Generation {
        ca_pem: ca.cert_pem().into_bytes(),
        ca_key_pem: key_to_pem(ca.key()).into_bytes(),
        ca,
        fmc,
        devices,
        next_serial: serial,
    })
}

/// `n` RSA keys, generated on every available core.
fn generate_keys(n: usize, bits: u32) -> Result<Vec<KeyPair>, PkiError> {
    let threads = std::thread::available_parallelism()
        .map(|p| p.get())
        .unwrap_or(1)
        .min(n)
        .max(1);
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<Result<KeyPair, PkiError>>>> =
        Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let k = generate_rsa_key(bits);
                    crate::sync::lock(&slots)[i] = Some(k);
                }
            });
        }
    });
    crate::sync::into_inner(slots)
        .into_iter()
        .map(|k| k.unwrap_or(Err(PkiError::Random)))
        .collect()
}
