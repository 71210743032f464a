//! sfdiag: diagnose Cisco Firepower sftunnel (FMC <-> FTD mutual TLS 1.2 on TCP 8305).
//!
//! Three jobs share this library: a lab PKI and live tunnel that reproduce the appliance
//! (`pki`, `tunnel`, `lab`), an offline analyzer of customer captures (`capture` -> `net` ->
//! `tls` -> `cert` -> `judge` -> `analysis` -> `report`), and a live validation of renewed
//! certificates. The words they share (appliance roles, the TLS side, the messages-log line,
//! how times are written) are said once, in `sftunnel`, which depends on no other module. The
//! layering and its allowed directions are in ARCHITECTURE.md; the library never prints and
//! never reads the clock outside `tunnel` and `lab`.
#![forbid(unsafe_code)]

pub mod analysis;
pub mod capture;
pub mod cert;
pub mod files;
pub mod inventory;
pub mod judge;
pub mod lab;
pub mod net;
pub mod pki;
pub mod recorder;
pub mod report;
pub mod sftunnel;
mod sync;
pub mod tls;
pub mod tunnel;
