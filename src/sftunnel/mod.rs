//! sftunnel: the words every layer of sfdiag shares, each said once.
//!
//! Owns the vocabulary, not any behaviour built on it: the part an appliance plays
//! ([`Role`], and what a certificate says about it, [`SubjectRole`]), the two ends of a TLS
//! connection ([`TlsSide`]), a peer's two channels ([`Channel`]), the appliance's messages-log line ([`Line`] and its one formatter,
//! which escapes whatever a peer or a capture put in it, by the one rule of [`escape`]), and how times are written
//! ([`rfc3339`], [`syslog_stamp`], and the appliance's [`openssl_date`], [`ctime_utc`] and [`script_stamp`]). It depends on no other module of the crate, so `tls`,
//! `cert`, `judge`, `analysis`, `report`, `pki`, `tunnel` and `lab` can all use it without a
//! new arrow between them. TLS alerts stay `tls::AlertDescription` (the registry lives with
//! the wire format); OpenSSL's verdicts stay `judge::Verdict`.

#![warn(missing_docs)] // the shared words say what they mean (issue 10)

mod channel;
mod escape;
mod line;
mod role;
mod side;
mod timefmt;

pub use channel::Channel;
pub use escape::{escape, escape_line, is_unsafe};
pub use line::{At, Component, Level, Line, Pid, TidOrFrame};
pub use role::{Role, SubjectRole};
pub use side::TlsSide;
pub use timefmt::{
    ctime_utc, openssl_date, rfc3339, script_stamp, serialize_opt_rfc3339, syslog_stamp,
    whole_seconds,
};
