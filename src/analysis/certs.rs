//! Certificates seen on the wire -> decoded `CertInfo`s and chain verdicts, cached.
//!
//! A long capture repeats the same few chains thousands of times (every sftunnel reconnect), so
//! decoding is cached by DER and chain verdicts by (chain, sender role, second judged at):
//! OpenSSL judges at whole seconds, so a cached verdict is exactly what a fresh one would say
//! once re-stamped with the packet's own time.
//! Both caches are bounded and simply start over when full. Decoding is `cert`'s job and
//! judging `judge`'s; this module only decides what to judge against: the `--ca` anchors with
//! the TLS purpose of the sender's role (what the receiving OpenSSL peer checks), or, without
//! anchors, the dates of every certificate.

use std::collections::HashMap;

use time::OffsetDateTime;

use crate::cert::{self, CertInfo};
use crate::judge::{self, ChainVerdict, Policy};
use crate::sftunnel::TlsSide;

/// Entries kept per cache before it is cleared.
const CACHE_CAP: usize = 4096;

pub(super) struct CertJudge {
    anchors: Vec<CertInfo>,
    decoded: HashMap<Box<[u8]>, CertInfo>,
    verdicts: HashMap<(Vec<String>, Option<TlsSide>, i64), ChainVerdict>,
}

impl CertJudge {
    pub(super) fn new(anchors: Vec<CertInfo>) -> Self {
        Self {
            anchors,
            decoded: HashMap::new(),
            verdicts: HashMap::new(),
        }
    }

    pub(super) fn decode(&mut self, der: &[u8]) -> CertInfo {
        if let Some(c) = self.decoded.get(der) {
            return c.clone();
        }
        if self.decoded.len() >= CACHE_CAP {
            self.decoded.clear();
        }
        let c = cert::parse(der);
        self.decoded.insert(der.into(), c.clone());
        c
    }

    /// Judges a chain as sent by a peer playing `role`, at `at`.
    pub(super) fn judge(
        &mut self,
        chain: &[CertInfo],
        role: Option<TlsSide>,
        at: OffsetDateTime,
    ) -> ChainVerdict {
        let key = (
            chain.iter().map(|c| c.sha256.clone()).collect::<Vec<_>>(),
            role,
            at.unix_timestamp(),
        );
        if let Some(v) = self.verdicts.get(&key) {
            // Same second, same verdict; but `at` is this packet's own time.
            let mut v = v.clone();
            v.set_at(at);
            return v;
        }
        let verdict = if self.anchors.is_empty() {
            judge::verify(chain, &[], at)
        } else {
            let policy = role.map_or_else(Policy::default, Policy::for_peer);
            judge::verify_with(chain, &self.anchors, at, &policy)
        };
        if self.verdicts.len() >= CACHE_CAP {
            self.verdicts.clear();
        }
        self.verdicts.insert(key, verdict.clone());
        verdict
    }
}
