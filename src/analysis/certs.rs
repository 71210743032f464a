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

use super::findings::{AnchorMismatch, CertRef, Checked};
use crate::cert::{self, CertInfo};
use crate::judge::{self, ChainVerdict, Policy, Source};
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

    /// What verdicts cover: the whole chain with `--ca` anchors, else only dates.
    pub(super) fn checked(&self) -> Checked {
        if self.anchors.is_empty() {
            Checked::Dates
        } else {
            Checked::Chain
        }
    }

    /// The certificate at `depth` of a verdict's path: from the chain as sent, or an anchor.
    pub(super) fn at_depth<'a>(
        &'a self,
        chain: &'a [CertInfo],
        v: &ChainVerdict,
        depth: usize,
    ) -> Option<&'a CertInfo> {
        match v.path.get(depth)? {
            Source::Chain(i) => chain.get(*i),
            Source::Anchor(k) => self.anchors.get(*k),
        }
    }

    /// A failed verdict whose path ends in a `--ca` anchor that is not the CA certificate the
    /// peer sent under that name (another key or other dates): what it says is about the
    /// file given, not the peers. `None` when the verdict is fine or no such pair exists.
    pub(super) fn anchor_mismatch(
        &self,
        chain: &[CertInfo],
        v: &ChainVerdict,
    ) -> Option<AnchorMismatch> {
        if v.overall.is_ok() {
            return None;
        }
        v.path.iter().enumerate().find_map(|(depth, src)| {
            let Source::Anchor(k) = *src else {
                return None;
            };
            let anchor = self.anchors.get(k)?;
            let name = anchor.subject.as_ref()?;
            let sent = chain.iter().find(|c| {
                c.sha256 != anchor.sha256 && c.subject.as_ref().is_some_and(|n| n.matches(name))
            })?;
            Some(AnchorMismatch {
                depth,
                anchor: CertRef::of(anchor),
                sent: CertRef::of(sent),
            })
        })
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
