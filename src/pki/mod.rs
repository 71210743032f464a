//! The lab PKI: a copy of the FMC/FTD sftunnel certificate set in the appliance's file layout.
//!
//! Owns the v1 InternalCA (our own DER writer, `ca`), the v3 peer certificates (rcgen, issued by
//! that CA), the names they carry (`names`), the folder layout under a root and its loader
//! (`layout`), the `ims.conf`/`sftunnel.conf` files (`conf`), how files change (`fsio`: one
//! transaction per multi-file change, a lock per root, never a symlink out of it), one
//! generation of certificates (`issue`, shared by `pki init` (`init`) and `pki renew`), recognising a certificate's role from its path (`roles`), finding certificate
//! files under a folder (`scan`) and the expiry thresholds of `sfdiag check` (`expiry`). It writes only under the root it is given and never reads the
//! clock: every time is an argument. Decoding certificates for display is `cert`'s job; judging
//! a chain is `judge`'s.

#![warn(missing_docs)] // every pub item of the lab PKI says what it holds (issue 10)

mod ca;
pub mod conf;
pub mod copy;
pub mod expiry;
pub mod fsio;
mod guard;
mod init;
mod issue;
mod keys;
pub mod layout;
pub mod names;
pub mod renew;
pub mod roles;
pub mod scan;
mod uuid;

use std::path::PathBuf;

use time::OffsetDateTime;

// The shared vocabulary, for this module and its children: the one RFC 3339 form of its
// messages and the appliance role.
use crate::sftunnel::{Role, rfc3339};

// One public path per item: a `pub mod` is the path to its items; the façade re-exports
// only from private modules.
pub use ca::{InternalCa, PeerProfile, Validity, read_next_serial, write_next_serial};
pub use init::{DeviceSpec, InitOptions, init};
pub use keys::{PublicKeySummary, load_key, load_key_pem, public_key_summary};
pub use uuid::Uuid;
// Helpers for pki's own modules only.
use guard::refuse_writable_by_others;
use keys::{generate_rsa_key, key_to_pem};

/// The PEM encoding of one certificate (LF line endings, like OpenSSL writes).
pub(crate) fn cert_to_pem(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// Everything that can go wrong building, writing or loading a lab PKI.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// `pki init` over an existing PKI without `--force`.
    #[error(
        "a PKI already exists at {path} (use --force to replace it; old files are kept as *.backup)"
    )]
    Exists {
        /// The first appliance folder of the root that already holds PKI files.
        path: PathBuf,
    },
    /// A file or folder in the PKI that every local user may write (`guard`).
    #[error(
        "{path} is writable by every user: anyone could replace the certificates or keys (run `chmod o-w {path}`)"
    )]
    WorldWritable {
        /// The first such file or folder found.
        path: PathBuf,
    },
    /// A file or folder in the PKI that its group may write (`guard`, OpenSSH's StrictModes).
    #[error(
        "{path} is writable by its group: any member could replace the certificates or keys, or swap a folder for a link (run `chmod g-w {path}`)"
    )]
    GroupWritable {
        /// The first such file or folder found.
        path: PathBuf,
    },
    /// A file or folder in the PKI owned by a user other than the one sfdiag runs as and
    /// other than root (`guard`): its owner may change it, or its mode, at any time.
    #[error(
        "{path} is owned by uid {owner}, not by uid {euid} (who runs sfdiag) or root: its owner could replace the certificates or keys (run `chown {euid} {path}`, or run sfdiag as uid {owner})"
    )]
    ForeignOwner {
        /// The first such file or folder found.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// The effective uid sfdiag runs as.
        euid: u32,
    },
    /// A file-system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`read`, `write`, `rename into place`, ...).
        op: &'static str,
        /// The file or folder it was done to.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The system random generator failed.
    #[error("random number generator failed")]
    Random,
    /// Key generation failed or the size is not one we make.
    #[error("cannot generate an RSA {bits}-bit key: {reason}")]
    KeyGen {
        /// The size asked for.
        bits: u32,
        /// The sizes we make, or the generator's words.
        reason: String,
    },
    /// A key file could not be read as a private key.
    #[error("{path}: not a usable private key: {reason}")]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What the PEM or key decoder said.
        reason: String,
    },
    /// Signing or encoding a certificate failed.
    #[error("cannot sign {what}: {reason}")]
    Sign {
        /// The certificate being made (`InternalCA`, a peer's name).
        what: String,
        /// What the signer or encoder said.
        reason: String,
    },
    /// notBefore after notAfter.
    #[error(
        "notBefore {} is after notAfter {}",
        rfc3339(not_before),
        rfc3339(not_after)
    )]
    InvalidValidity {
        /// The start given.
        not_before: OffsetDateTime,
        /// The end given, before it.
        not_after: OffsetDateTime,
    },
    /// A time X.509 cannot carry (before year 0 or after 9999).
    #[error(
        "time {} cannot be written in a certificate (years 0000-9999 only)",
        rfc3339(time)
    )]
    TimeOutOfRange {
        /// The time given.
        time: OffsetDateTime,
    },
    /// Not a textual UUID.
    #[error("invalid UUID {value:?}: expected 8-4-4-4-12 hex digits")]
    InvalidUuid {
        /// The text given.
        value: String,
    },
    /// A device name that cannot be a folder name, or clashes with another.
    #[error("invalid device name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it (and, from a root, which `ims.conf` says it).
        reason: String,
    },
    /// Two peers given the same UUID.
    #[error("UUID {uuid} is used twice")]
    DuplicateUuid {
        /// The UUID given twice.
        uuid: Uuid,
    },
    /// The certificate at `path` is not an InternalCA this module can issue from.
    #[error("{path}: not an sftunnel InternalCA: {reason}")]
    NotInternalCa {
        /// The certificate file.
        path: PathBuf,
        /// What does not fit (its encoding, its subject's CN, its key).
        reason: String,
    },
    /// `--fmc NAME` names no FMC of the root.
    #[error(
        "{name} is not an FMC of {root} (its FMCs: {}): --fmc takes the primary's folder name or an HA secondary with its own InternalCA",
        fmcs.join(", ")
    )]
    NotAnFmc {
        /// The name given.
        name: String,
        /// The root.
        root: PathBuf,
        /// The names `--fmc` takes there.
        fmcs: Vec<String>,
    },
    /// A root that lacks a file every PKI has.
    #[error("{root} is not an sfdiag PKI root: {missing} is missing")]
    NotAPki {
        /// The root given.
        root: PathBuf,
        /// The file looked for (the FMC's InternalCA certificate).
        missing: PathBuf,
    },
    /// A configuration or certificate file that does not parse.
    #[error("{path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What does not parse, and where in it.
        reason: String,
    },
    /// A certificate or key file that `cert` could not read (the error names the file).
    #[error(transparent)]
    Cert(crate::cert::CertError),
    /// `pki renew` while the FMC says a critical operation (deployment, backup, upgrade) runs.
    #[error(
        "refusing to renew certificates: a critical operation is in progress ({operation}), according to {path}; wait for it to finish"
    )]
    CriticalOperation {
        /// The FMC's critical-operation lock file.
        path: PathBuf,
        /// Its first line (`unknown operation` when empty).
        operation: String,
    },
    /// `pki copy` could not reach an appliance (or its files).
    #[error("could not connect to {host}: {reason}")]
    Unreachable {
        /// The appliance, by name.
        host: String,
        /// What failed, naming the folder or address.
        reason: String,
    },
    /// Another run holds the root's lock (`fsio::RootLock`).
    #[error(
        "another sfdiag run is changing {root}: refusing to change it at the same time; try again when it has finished"
    )]
    Busy {
        /// The root whose lock is held.
        root: PathBuf,
    },
    /// A path that would leave the root (`..`, or a path elsewhere).
    #[error("{path} is outside {root}: refusing to read or write it")]
    OutsideRoot {
        /// The path asked for.
        path: PathBuf,
        /// The root it must stay under.
        root: PathBuf,
    },
    /// A symbolic link on the way to a file under the root.
    #[error(
        "{path} is a symbolic link: refusing to follow it (nothing outside {root} is read or written)"
    )]
    Symlink {
        /// The link met on the way.
        path: PathBuf,
        /// The root it lies under.
        root: PathBuf,
    },
    /// A change that passed its commit point and then failed: its journal stays, and the next
    /// change of this root (`pki renew`, `pki copy`, `pki init`) finishes it.
    #[error(
        "the {what} was committed but not finished ({source}); its journal {journal} is kept and the next sfdiag run on this root finishes it"
    )]
    Unfinished {
        /// The change (`init`, `renewal`, `copy`, `push`).
        what: String,
        /// The journal left for the next run.
        journal: PathBuf,
        /// What failed after the commit point.
        source: Box<PkiError>,
    },
    /// A root a dead run left in the middle of a change (`fsio::interrupted`).
    #[error(
        "{root} is in the middle of a change a run did not finish ({journal} is left): `sfdiag pki renew --root {root}` finishes or undoes it first (its prompt may then be declined)"
    )]
    Interrupted {
        /// The root.
        root: PathBuf,
        /// The journal the dead run left.
        journal: PathBuf,
    },
    /// `pki init --root /` and other folders the system or users live in.
    #[error("refusing to use {path} as a PKI root: {reason}; give a folder of its own")]
    SystemRoot {
        /// The folder given.
        path: PathBuf,
        /// Why it is refused (a system folder, a user's home folder, ...).
        reason: String,
    },
}

impl From<crate::cert::CertError> for PkiError {
    /// A file that could not be read stays an I/O error (with its hints); the rest is `cert`'s.
    fn from(e: crate::cert::CertError) -> Self {
        match e {
            crate::cert::CertError::Io { path, source } => PkiError::io("read", path, source),
            e => PkiError::Cert(e),
        }
    }
}

/// The first certificate of a PEM bundle or DER file, read by `cert` (its errors name the
/// file and what it holds instead).
pub(crate) fn first_cert(path: &std::path::Path) -> Result<crate::cert::CertInfo, PkiError> {
    crate::cert::read_certs(path)?
        .into_iter()
        .next()
        .ok_or_else(|| PkiError::Parse {
            path: path.to_path_buf(),
            reason: "no certificate".into(),
        })
}

impl PkiError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PkiError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
