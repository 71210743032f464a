//! judge: a certificate chain + trust anchors + an explicit time -> OpenSSL-grade verdicts
//! (`X509_V_*` code, depth, text), per certificate and for the chain. Shared by the analyzer
//! (judging at a packet's time) and the live tunnel's verifiers (at the tunnel's clock); it never
//! reads the clock and never does I/O. Decoding is `cert`'s job; logging and alerts on the wire
//! are the callers' (they get [`alert_for`]).
//!
//! # The order, and why
//! The verdicts reproduce OpenSSL 3.0's `X509_verify_cert` (crypto/x509/x509_vfy.c) with its
//! default flags (trusted-first, no partial chains, no CRLs), step by step:
//!
//! 1. **EE key level** (only with `auth_level > 0`, as in TLS): 66 at depth 0.
//! 2. **build_chain**: starting from the leaf, at each step first look for the current top's
//!    issuer among the anchors, then among the certificates the peer sent. An issuer is a
//!    certificate whose subject matches the top's issuer name (OpenSSL's canonical name
//!    comparison), whose subjectKeyIdentifier/serial does not contradict the top's
//!    authorityKeyIdentifier, and whose key type fits the signature algorithm; among several,
//!    the first one valid at `at`, else the one expiring last. Signatures are *not* checked here,
//!    so a regenerated CA with the same DN is still chosen (and step 5 reports 7). The anchor is
//!    appended at depth n when the peer did not send it. A path ending in a self-signed anchor is
//!    trusted; otherwise the error goes to the top of the path: 18 (a lone self-signed leaf that
//!    is not an anchor), 19 (ends in another self-signed certificate), 2 (ends in an anchor that
//!    is not self-signed), 20 (ends in a sent certificate whose issuer is missing).
//! 3. **check_extensions**, bottom-up: 34 unhandled critical extension, 40 proxy certificate,
//!    79 (1.1.1's 24) when a certificate above the leaf is not a CA (basicConstraints CA:FALSE or absent; a
//!    v1 self-signed top is accepted as CA, like OpenSSL), 26 purpose (when a purpose is set:
//!    TLS uses sslclient/sslserver), 25 path length.
//! 4. **check_auth_level** (only with `auth_level > 0`): 67 CA key too small, 68 weak digest
//!    (not for the top certificate).
//! 5. **internal_verify**, top-down: for each certificate, first its signature with its issuer's
//!    key (32 issuer lacks keyCertSign, 6 issuer key unusable, 7 signature failure; the
//!    self-signed top's own signature is not checked, as OpenSSL does not by default), then its
//!    validity at `at` - *including the trust anchor*: 9 not yet valid, 10 expired, 13/14 a
//!    date that is unreadable or not in RFC 5280's fixed form (UTCTime without seconds or with
//!    an offset, GeneralizedTime with fractions: 1.1.1+ refuse them). If the path's top is not
//!    self-issued, its signature and dates are not checked at all (and a lone such leaf also
//!    gets 21), exactly as OpenSSL skips them. A signature we cannot check (see `sig`) is no
//!    error: the certificate's verdict keeps a `note` saying so.
//! 6. **check_name_constraints** (see `ncons`): 47 permitted / 48 excluded subtree violation,
//!    49 minimum/maximum, 51 unsupported constraint type, 53 bad name syntax, at the depth of
//!    the certificate whose names break a constraint of a certificate above it.
//!
//! Before all this, a chain with a certificate that does not decode at all (its DER structure
//! is broken, see `CertInfo::decode_error`) is not verified: an OpenSSL peer fails while it
//! reads the Certificate message and sends decode_error (50). Its verdict is
//! [`VerifyCode::NotDecoded`] with the text `certificate could not be decoded: <reason>`; the
//! other certificates of that chain are not judged (code 0, depth `None`, a note says why).
//!
//! [`Policy::openssl`] picks the release imitated (3.x by default; 1.1.1 and 1.0.2 differ in
//! codes, strings, time forms, key/digest levels and the order of the steps: see `flavour`).
//!
//! A certificate whose extensions OpenSSL 3.0 calls invalid (a duplicate, an undecodable
//! basicConstraints/keyUsage/...) or whose key it cannot decode is never anyone's issuer nor
//! "self-signed" in step 2, exactly as there: such a leaf gets 20.
//!
//! OpenSSL stops at the first error unless its callback says continue. We always continue and
//! record every error, which gives both answers: `overall` is the first error (what a TLS peer
//! with the default callback logs and alerts on: `err 10:certificate has expired` at depth 1 for
//! an expired InternalCA), and each certificate's own verdict is the first error reported at its
//! depth (the expired InternalCA's record says 10 while the leaf's says 0). Without anchors only
//! the dates are judged (top-down), each certificate at its index in the chain.
//!
//! Times compare at whole seconds (`at` is truncated, as OpenSSL's `time_t`); OpenSSL 3.0 calls a
//! certificate expired when `at >= notAfter` and not yet valid when `at < notBefore`.

#![warn(missing_docs)] // every pub item of judge says what it means (issue 10)

mod code;
mod flavour;
mod ncons;
mod sig;

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use time::OffsetDateTime;

pub use code::{VerifyCode, alert_for};
pub use flavour::{OpenSsl, UnknownOpenSsl};

use crate::cert::{CertInfo, KeyKind, OID_CLIENT_AUTH, OID_SERVER_AUTH, key_usage};
use crate::sftunnel::TlsSide;
use crate::tls::AlertDescription;
use sig::SigCheck;

/// What the end-entity certificate must be good for (OpenSSL's `-purpose`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A TLS server's certificate (what a client checks): `sslserver`.
    SslServer,
    /// A TLS client's certificate (what a server checks): `sslclient`.
    SslClient,
}

impl Purpose {
    /// What a chain sent by the `sender` end of a TLS connection is checked for: a server's
    /// chain for `sslserver` (the client checks it), a client's for `sslclient`.
    pub fn of(sender: TlsSide) -> Purpose {
        match sender {
            TlsSide::Server => Purpose::SslServer,
            TlsSide::Client => Purpose::SslClient,
        }
    }
}

/// Verification settings beyond chain, anchors and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `None` like `openssl verify` without `-purpose`; TLS peers always set one.
    pub purpose: Option<Purpose>,
    /// OpenSSL's auth (security) level: 0 for no key/digest strength checks (as `openssl
    /// verify`), 1 for OpenSSL's default TLS level (80 bits: RSA >= 1024, no SHA-1 signatures
    /// below the anchor), 2 for 112 bits (Debian's default).
    pub auth_level: u8,
    /// Maximum number of intermediates (OpenSSL's verify depth, default 100).
    pub max_depth: usize,
    /// Also check the top self-signed certificate's own signature (X509_V_FLAG_CHECK_SS_SIGNATURE).
    pub check_self_signature: bool,
    /// The OpenSSL release whose verification is reproduced (3.x by default).
    pub openssl: OpenSsl,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            purpose: None,
            auth_level: 0,
            max_depth: 100,
            check_self_signature: false,
            openssl: OpenSsl::V3,
        }
    }
}

impl Policy {
    /// What an OpenSSL TLS peer at security level 1 applies to the other side's chain.
    pub fn tls(peer_is: Purpose) -> Policy {
        Policy {
            purpose: Some(peer_is),
            auth_level: 1,
            ..Policy::default()
        }
    }

    /// What an OpenSSL TLS peer applies to the chain the `sender` end sent:
    /// [`Policy::tls`] for [`Purpose::of`] it. The analyzer and the live tunnel both judge
    /// through this, so they agree.
    pub fn for_peer(sender: TlsSide) -> Policy {
        Policy::tls(Purpose::of(sender))
    }

    /// The same policy, imitating another OpenSSL release.
    pub fn with_openssl(self, openssl: OpenSsl) -> Policy {
        Policy { openssl, ..self }
    }
}

/// Where a certificate of the verified path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Index into the chain as sent.
    Chain(usize),
    /// Index into the anchors.
    Anchor(usize),
}

/// The judgement of one certificate (or of a whole chain), with the facts a report prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// What OpenSSL would conclude (`Ok` when fine).
    pub code: VerifyCode,
    /// Depth in the verified path (0 = leaf); `None` for a certificate that is not part of it,
    /// or for a chain verdict that is fine.
    pub depth: Option<usize>,
    /// The time judged at.
    pub at: OffsetDateTime,
    /// The certificate concerned, RFC 4514; `None` when no certificate is (a chain verdict
    /// that is fine) or its subject did not decode.
    pub subject: Option<String>,
    /// Its issuer's name, RFC 4514; `None` as for `subject`.
    pub issuer: Option<String>,
    /// OpenSSL one-line forms for the messages-log lines (`issuer = /title=InternalCA/...`).
    pub subject_oneline: Option<String>,
    /// The issuer's, in the same form.
    pub issuer_oneline: Option<String>,
    /// The certificate's notBefore; `None` without a certificate or a decodable date.
    pub not_before: Option<OffsetDateTime>,
    /// Its notAfter; `None` as for `not_before`.
    pub not_after: Option<OffsetDateTime>,
    /// Lowercase hex SHA-256 of its DER; `None` without a certificate.
    pub sha256: Option<String>,
    /// What the verdict leaves unsaid: a signature that could not be checked here although
    /// OpenSSL could, or why a certificate was not judged at all.
    pub note: Option<String>,
    /// For [`VerifyCode::NotDecoded`]: `certificate could not be decoded: <x509-parser's
    /// reason>`, which is then the verdict's text.
    pub decode_error: Option<String>,
    /// The OpenSSL release whose words [`Verdict::text`] uses.
    pub openssl: OpenSsl,
}

impl Verdict {
    fn new(
        code: VerifyCode,
        depth: Option<usize>,
        at: OffsetDateTime,
        cert: Option<&CertInfo>,
    ) -> Self {
        Verdict {
            code,
            depth,
            at,
            subject: cert.and_then(|c| c.subject.as_ref()).map(|n| n.rfc4514()),
            issuer: cert.and_then(|c| c.issuer.as_ref()).map(|n| n.rfc4514()),
            subject_oneline: cert.and_then(|c| c.subject.as_ref()).map(|n| n.oneline()),
            issuer_oneline: cert.and_then(|c| c.issuer.as_ref()).map(|n| n.oneline()),
            not_before: cert.and_then(|c| c.not_before),
            not_after: cert.and_then(|c| c.not_after),
            sha256: cert.map(|c| c.sha256.clone()),
            note: None,
            decode_error: None,
            openssl: OpenSsl::V3,
        }
    }

    /// OpenSSL's text for the code (in the words of the release judged as), or for a
    /// certificate that could not be decoded, `certificate could not be decoded: <reason>`.
    pub fn text(&self) -> &str {
        match &self.decode_error {
            Some(t) => t,
            None => self.code.text_in(self.openssl),
        }
    }

    /// The verdict as the appliance would log it after `err ` (`10:certificate has expired`),
    /// or the decode failure in plain words (no OpenSSL code exists for it).
    pub fn describe(&self) -> String {
        match self.code {
            VerifyCode::NotDecoded => self.text().to_string(),
            c => format!("{}:{}", c.code(), self.text()),
        }
    }

    /// Re-stamps the time judged at (verdicts are equal within one second: see `verify`).
    pub fn set_at(&mut self, at: OffsetDateTime) {
        self.at = at;
    }

    /// True when the code is `Ok` (0).
    pub fn is_ok(&self) -> bool {
        self.code.is_ok()
    }

    /// The TLS alert OpenSSL would send for this verdict.
    pub fn alert(&self) -> AlertDescription {
        alert_for(self.code)
    }

    /// This verdict as an error, `None` when it is fine.
    pub fn error(&self) -> Option<VerifyError> {
        let depth = self.depth.unwrap_or(0);
        Some(match (self.code, self.not_after, self.not_before) {
            (VerifyCode::Ok, _, _) => return None,
            (VerifyCode::NotDecoded, _, _) => VerifyError::NotDecoded {
                text: self.text().to_string(),
            },
            (VerifyCode::CertHasExpired, Some(not_after), _) => VerifyError::Expired {
                depth,
                not_after,
                at: self.at,
            },
            (VerifyCode::CertNotYetValid, _, Some(not_before)) => VerifyError::NotYetValid {
                depth,
                not_before,
                at: self.at,
            },
            (code, _, _) => VerifyError::Chain {
                code,
                depth: self.depth,
                subject: self.subject.clone(),
            },
        })
    }
}

impl Serialize for Verdict {
    /// `{"code","text","depth","at"}` as CLI.md's `verdict` object (`note` when present).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Verdict", 5)?;
        st.serialize_field("code", &self.code.code())?;
        st.serialize_field("text", self.text())?;
        st.serialize_field("depth", &self.depth)?;
        st.serialize_field("at", &crate::sftunnel::rfc3339(&self.at))?;
        if let Some(n) = &self.note {
            st.serialize_field("note", n)?;
        } else {
            st.skip_field("note")?;
        }
        st.end()
    }
}

/// A failed verification, carrying what a report or log line prints.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// 10: the time judged at is at or past a certificate's notAfter.
    #[error("certificate has expired (depth {depth}, notAfter {}, at {})",
        crate::sftunnel::rfc3339(.not_after), crate::sftunnel::rfc3339(.at))]
    Expired {
        /// Of the expired certificate in the verified path (0 = leaf).
        depth: usize,
        /// Its notAfter.
        not_after: OffsetDateTime,
        /// The time judged at.
        at: OffsetDateTime,
    },
    /// 9: a certificate's notBefore is after the time judged at.
    #[error("certificate is not yet valid (depth {depth}, notBefore {}, at {})",
        crate::sftunnel::rfc3339(.not_before), crate::sftunnel::rfc3339(.at))]
    NotYetValid {
        /// Of the certificate in the verified path (0 = leaf).
        depth: usize,
        /// Its notBefore.
        not_before: OffsetDateTime,
        /// The time judged at.
        at: OffsetDateTime,
    },
    /// Any other failed code (or 9/10 without the date that explains it).
    #[error("{} (depth {})", .code.text(), .depth.map_or("-".to_string(), |d| d.to_string()))]
    Chain {
        /// The failed code.
        code: VerifyCode,
        /// Of the certificate concerned (0 = leaf); `None` when it is not in the path.
        depth: Option<usize>,
        /// That certificate's subject, RFC 4514; `None` when unknown.
        subject: Option<String>,
    },
    /// A certificate of the chain could not be decoded (a TLS peer sends decode_error).
    #[error("{text}")]
    NotDecoded {
        /// `certificate could not be decoded: <reason>`.
        text: String,
    },
}

impl VerifyError {
    /// The OpenSSL verify code.
    pub fn code(&self) -> VerifyCode {
        match self {
            VerifyError::Expired { .. } => VerifyCode::CertHasExpired,
            VerifyError::NotYetValid { .. } => VerifyCode::CertNotYetValid,
            VerifyError::Chain { code, .. } => *code,
            VerifyError::NotDecoded { .. } => VerifyCode::NotDecoded,
        }
    }

    /// The TLS alert OpenSSL sends for it.
    pub fn alert(&self) -> AlertDescription {
        alert_for(self.code())
    }
}

/// Verdicts for a whole chain.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainVerdict {
    /// One per certificate of the chain as given (leaf first). A certificate the verified
    /// path did not use has `depth: None` and code 0; one byte-identical to an anchor in the
    /// path gets that anchor's verdict.
    pub per_cert: Vec<Verdict>,
    /// Verdicts for the anchors the path used that the chain did not contain (depth order):
    /// e.g. the InternalCA at depth 1 when the peer sent only its own certificate.
    pub anchors: Vec<Verdict>,
    /// The verified path, leaf first.
    pub path: Vec<Source>,
    /// Every error in the order OpenSSL reports them when told to continue.
    pub errors: Vec<Verdict>,
    /// The first error (what OpenSSL stops at), or code 0.
    pub overall: Verdict,
    /// The path ends in a trusted anchor (even if other checks failed).
    pub trusted: bool,
}

impl ChainVerdict {
    /// `Ok` when the chain verifies, else the first error.
    pub fn result(&self) -> Result<(), VerifyError> {
        match self.overall.error() {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Re-stamps every verdict with the time judged at: a verdict cached for one second is
    /// what a fresh one at another instant of that second says, except for `at` itself.
    pub fn set_at(&mut self, at: OffsetDateTime) {
        for v in self
            .per_cert
            .iter_mut()
            .chain(&mut self.anchors)
            .chain(&mut self.errors)
        {
            v.set_at(at);
        }
        self.overall.set_at(at);
    }

    /// The verdict of the certificate at `depth` of the verified path.
    pub fn at_depth(&self, depth: usize) -> Option<&Verdict> {
        self.per_cert
            .iter()
            .chain(&self.anchors)
            .find(|v| v.depth == Some(depth))
    }
}

/// Judges `chain` (leaf first, as sent on the wire) against `anchors` at `at`, with the default
/// policy (that of `openssl verify -attime`). See the module doc for the rules.
pub fn verify(chain: &[CertInfo], anchors: &[CertInfo], at: OffsetDateTime) -> ChainVerdict {
    verify_with(chain, anchors, at, &Policy::default())
}

/// [`verify`] with explicit settings (TLS peers: [`Policy::tls`]).
pub fn verify_with(
    chain: &[CertInfo],
    anchors: &[CertInfo],
    at: OffsetDateTime,
    policy: &Policy,
) -> ChainVerdict {
    let mut run = Run {
        chain,
        anchors,
        at,
        secs: at.unix_timestamp(),
        policy,
        flavour: policy.openssl,
        path: Vec::new(),
        num_untrusted: 0,
        events: Vec::new(),
        notes: Vec::new(),
        trusted: false,
    };
    if chain.is_empty() {
        let overall = run.verdict(VerifyCode::Unspecified, None, None);
        return ChainVerdict {
            per_cert: Vec::new(),
            anchors: Vec::new(),
            path: Vec::new(),
            errors: vec![overall.clone()],
            overall,
            trusted: false,
        };
    }
    if let Some(bad) = chain.iter().position(|c| c.decode_error.is_some()) {
        return run.not_decoded(bad);
    }
    if anchors.is_empty() {
        run.path = (0..chain.len()).map(Source::Chain).collect();
        run.num_untrusted = chain.len();
        for d in (0..chain.len()).rev() {
            run.check_time(d);
        }
    } else {
        run.path.push(Source::Chain(0));
        run.num_untrusted = 1;
        if !run.key_level_ok(0) {
            run.fail(VerifyCode::EeKeyTooSmall, 0);
        }
        run.build_chain();
        run.check_extensions();
        if run.flavour == OpenSsl::V1_0_2 {
            // 1.0.2's X509_verify_cert checks name constraints before any signature or date.
            run.check_name_constraints();
            run.internal_verify();
        } else {
            run.check_auth_level();
            run.internal_verify();
            run.check_name_constraints();
        }
    }
    run.finish()
}

struct Run<'a> {
    chain: &'a [CertInfo],
    anchors: &'a [CertInfo],
    at: OffsetDateTime,
    secs: i64,
    policy: &'a Policy,
    flavour: OpenSsl,
    path: Vec<Source>,
    num_untrusted: usize,
    /// (code, depth, note) in report order.
    events: Vec<(VerifyCode, usize, Option<String>)>,
    /// Notes on certificates that are no errors (depth, text): a signature not checked here.
    notes: Vec<(usize, String)>,
    trusted: bool,
}

const NS_SSL_CLIENT: u8 = 0x80;
const NS_SSL_SERVER: u8 = 0x40;
const NS_SSL_CA: u8 = 0x04;
const NS_ANY_CA: u8 = 0x07;
const OID_PROXY_CERT_INFO: &str = "1.3.6.1.5.5.7.1.14";
const OID_NS_SGC: &str = "2.16.840.1.113730.4.1";
const OID_MS_SGC: &str = "1.3.6.1.4.1.311.10.3.3";

impl<'a> Run<'a> {
    fn cert(&self, src: Source) -> &'a CertInfo {
        match src {
            Source::Chain(i) => &self.chain[i],
            Source::Anchor(i) => &self.anchors[i],
        }
    }

    fn at_depth(&self, d: usize) -> &'a CertInfo {
        self.cert(self.path[d])
    }

    fn fail(&mut self, code: VerifyCode, depth: usize) {
        self.events.push((code, depth, None));
    }

    fn verdict(&self, code: VerifyCode, depth: Option<usize>, cert: Option<&CertInfo>) -> Verdict {
        let mut v = Verdict::new(code, depth, self.at, cert);
        v.openssl = self.flavour;
        v
    }

    /// The chain is not verified: certificate `bad` of it does not decode.
    fn not_decoded(&self, bad: usize) -> ChainVerdict {
        let c = &self.chain[bad];
        let mut overall = self.verdict(VerifyCode::NotDecoded, None, Some(c));
        overall.decode_error = Some(format!(
            "certificate could not be decoded: {}",
            c.decode_error.as_deref().unwrap_or("")
        ));
        let per_cert = (0..self.chain.len())
            .map(|i| {
                if i == bad {
                    return overall.clone();
                }
                let mut v = self.verdict(VerifyCode::Ok, None, Some(&self.chain[i]));
                v.note = Some(format!(
                    "not judged: certificate {bad} of the chain could not be decoded"
                ));
                v
            })
            .collect();
        ChainVerdict {
            per_cert,
            anchors: Vec::new(),
            path: Vec::new(),
            errors: vec![overall.clone()],
            overall,
            trusted: false,
        }
    }

    /// The dates as the release imitated reads them: 1.1.1+ only RFC 5280's fixed forms.
    fn dates(&self, c: &CertInfo) -> (Option<OffsetDateTime>, Option<OffsetDateTime>) {
        let strict = self.flavour.strict_times();
        (
            c.not_before
                .filter(|_| !strict || c.not_before_lax.is_none()),
            c.not_after.filter(|_| !strict || c.not_after_lax.is_none()),
        )
    }

    /// ossl_x509_check_cert_time(ctx, x, -1): is `c` valid at `at` (no error reported).
    fn time_ok(&self, c: &CertInfo) -> bool {
        matches!(self.dates(c), (Some(nb), Some(na))
            if nb.unix_timestamp() <= self.secs && na.unix_timestamp() > self.secs)
    }

    fn check_time(&mut self, d: usize) {
        let (not_before, not_after) = self.dates(self.at_depth(d));
        match not_before {
            None => self.fail(VerifyCode::ErrorInCertNotBeforeField, d),
            Some(nb) if nb.unix_timestamp() > self.secs => {
                self.fail(VerifyCode::CertNotYetValid, d)
            }
            _ => {}
        }
        match not_after {
            None => self.fail(VerifyCode::ErrorInCertNotAfterField, d),
            // OpenSSL 3.0's X509_cmp_time() treats equality as "before": expired at notAfter.
            Some(na) if na.unix_timestamp() <= self.secs => {
                self.fail(VerifyCode::CertHasExpired, d)
            }
            _ => {}
        }
    }

    /// 3.x: ossl_x509_likely_issued(issuer, subject): names, AKID, signature/key type.
    /// 1.1.1/1.0.2: X509_check_issued: names, AKID, and the issuer's keyUsage allows
    /// certificate signing (no key type check).
    fn likely_issued(&self, issuer: &CertInfo, subject: &CertInfo) -> bool {
        // ossl_x509v3_cache_extensions() failing on either side means "not issued"; a
        // certificate that does not decode (an anchor: chains never get here) is none either.
        if issuer.v3.invalid.is_some()
            || subject.v3.invalid.is_some()
            || issuer.decode_error.is_some()
        {
            return false;
        }
        let names = match (&issuer.subject, &subject.issuer) {
            (Some(a), Some(b)) => a.matches(b),
            _ => false,
        };
        if !names || subject.akid_check(issuer).is_err() {
            return false;
        }
        match self.flavour {
            OpenSsl::V3 => subject.signature_fits_key_of(issuer),
            OpenSsl::V1_1_1 | OpenSsl::V1_0_2 => !ku_rejects_cert_sign(issuer),
        }
    }

    /// The top of the path issued itself (internal_verify's check_issued(xi, xi)).
    fn issued_itself(&self, c: &CertInfo) -> bool {
        match self.flavour {
            OpenSsl::V3 => self.likely_issued(c, c),
            // 1.1.1's check_issued(x, x) is cert_self_signed(x).
            OpenSsl::V1_1_1 | OpenSsl::V1_0_2 => self.self_signed(c),
        }
    }

    /// get0_best_issuer_sk: the first candidate valid at `at`, else the latest to expire.
    fn best_issuer(
        &self,
        subject: &CertInfo,
        candidates: impl Iterator<Item = (Source, &'a CertInfo)>,
    ) -> Option<Source> {
        let mut best: Option<(Source, &CertInfo)> = None;
        for (src, cand) in candidates {
            if !self.likely_issued(cand, subject) {
                continue;
            }
            if self.time_ok(cand) {
                return Some(src);
            }
            let later = match (&best, self.dates(cand).1) {
                (None, _) => true,
                // 1.1.1 and 1.0.2 keep the last candidate found.
                _ if self.flavour != OpenSsl::V3 => true,
                (Some((_, b)), Some(na)) => self.dates(b).1.is_none_or(|bna| na > bna),
                (Some(_), None) => false,
            };
            if later {
                best = Some((src, cand));
            }
        }
        best.map(|(s, _)| s)
    }

    fn build_chain(&mut self) {
        let max_len = self.policy.max_depth + 1;
        let mut search_untrusted = true;
        let mut search_trusted = true; // X509_V_FLAG_TRUSTED_FIRST, OpenSSL's default
        while search_trusted || search_untrusted {
            let num = self.path.len();
            if search_trusted {
                let curr = self.cert(self.path[num - 1]);
                let found = if num > max_len {
                    None
                } else {
                    let anchors = self.anchors.iter().enumerate();
                    self.best_issuer(curr, anchors.map(|(i, c)| (Source::Anchor(i), c)))
                };
                let mut ok = false;
                let mut self_signed = false;
                if let Some(src) = found {
                    let issuer = self.cert(src);
                    if !self.self_signed(curr) {
                        self.path.push(src);
                        self_signed = self.self_signed(issuer);
                        ok = true;
                    } else if issuer.der() == curr.der() {
                        // A self-signed certificate that is itself an anchor.
                        self.path[num - 1] = src;
                        self.num_untrusted = num - 1;
                        self_signed = true;
                        ok = true;
                    }
                    // else: a self-signed mimic of an anchor (same name, other bytes).
                }
                if ok {
                    search_untrusted = false;
                    // check_trust: a plain (no aux settings) trusted certificate is a trust
                    // anchor only when self-signed.
                    if self_signed {
                        self.trusted = true;
                        break;
                    }
                    continue;
                }
                if !search_untrusted {
                    break;
                }
            }
            if search_untrusted {
                let curr = self.cert(self.path[num - 1]);
                let issuer = if self.self_signed(curr) || num > max_len {
                    None
                } else {
                    let lone_self_issued = curr.self_issued && num == 1;
                    let path = &self.path;
                    let pool =
                        self.chain.iter().enumerate().filter(|(i, _)| {
                            lone_self_issued || !path.contains(&Source::Chain(*i))
                        });
                    self.best_issuer(curr, pool.map(|(i, c)| (Source::Chain(i), c)))
                };
                match issuer {
                    None => {
                        search_untrusted = false;
                        search_trusted = true;
                    }
                    Some(src) => {
                        self.path.push(src);
                        self.num_untrusted += 1;
                    }
                }
            }
        }
        if self.trusted {
            return;
        }
        let num = self.path.len();
        let top = self.cert(self.path[num - 1]);
        let code = if num > max_len {
            VerifyCode::CertChainTooLong
        } else if self.self_signed(top) {
            if num == 1 {
                VerifyCode::DepthZeroSelfSignedCert
            } else {
                VerifyCode::SelfSignedCertInChain
            }
        } else if self.num_untrusted < num {
            VerifyCode::UnableToGetIssuerCert
        } else {
            VerifyCode::UnableToGetIssuerCertLocally
        };
        self.fail(code, num - 1);
    }

    /// X509_self_signed(cert, 0) == 1: EXFLAG_SS, and OpenSSL could cache the certificate's
    /// extensions (a certificate with invalid extensions is never "self-signed" there).
    /// 1.1.1/1.0.2's EXFLAG_SS: self-issued, AKID fits, keyUsage allows keyCertSign.
    fn self_signed(&self, c: &CertInfo) -> bool {
        match self.flavour {
            OpenSsl::V3 => c.self_signed && c.v3.invalid.is_none(),
            OpenSsl::V1_1_1 | OpenSsl::V1_0_2 => {
                c.self_issued
                    && c.akid_check(c).is_ok()
                    && !ku_rejects_cert_sign(c)
                    && c.v3.invalid.is_none()
            }
        }
    }

    /// X509_check_ca: 0 not a CA, 1 basicConstraints CA, 3 v1 self-signed root, 4 keyUsage
    /// with keyCertSign and no basicConstraints, 5 Netscape CA type.
    fn check_ca(&self, c: &CertInfo) -> u8 {
        let v3 = &c.v3;
        if v3
            .key_usage
            .is_some_and(|ku| ku & key_usage::KEY_CERT_SIGN == 0)
        {
            return 0;
        }
        if let Some(bc) = v3.basic_constraints {
            return u8::from(bc.ca);
        }
        if c.version == Some(1) && self.self_signed(c) {
            3
        } else if v3.key_usage.is_some() {
            4
        } else if v3.ns_cert_type.is_some_and(|n| n & NS_ANY_CA != 0) {
            5
        } else {
            0
        }
    }

    fn purpose_ok(&self, c: &CertInfo, purpose: Purpose, ca: bool) -> bool {
        let v3 = &c.v3;
        // X509_check_purpose() returns -1 for a certificate with invalid extensions, which
        // check_purpose() accepts outside strict mode.
        if v3.invalid.is_some() {
            return true;
        }
        // OpenSSL's xku_reject(): anyExtendedKeyUsage alone does not satisfy a purpose.
        let eku_has = |oids: &[&str]| {
            v3.ext_key_usage
                .as_ref()
                .is_none_or(|e| e.iter().any(|o| oids.contains(&o.as_str())))
        };
        let ns_allows = |bit: u8| v3.ns_cert_type.is_none_or(|n| n & bit != 0);
        let ku_allows = |bits: u16| v3.key_usage.is_none_or(|k| k & bits != 0);
        let ssl_ca = || match self.check_ca(c) {
            0 => false,
            5 => v3.ns_cert_type.is_some_and(|n| n & NS_SSL_CA != 0),
            _ => true,
        };
        const DS: u16 = key_usage::DIGITAL_SIGNATURE;
        const KE: u16 = 1 << 2;
        const KA: u16 = 1 << 4;
        match purpose {
            Purpose::SslServer => {
                if !eku_has(&[OID_SERVER_AUTH, OID_NS_SGC, OID_MS_SGC]) {
                    return false;
                }
                if ca {
                    return ssl_ca();
                }
                ns_allows(NS_SSL_SERVER) && ku_allows(DS | KE | KA)
            }
            Purpose::SslClient => {
                if !eku_has(&[OID_CLIENT_AUTH]) {
                    return false;
                }
                if ca {
                    return ssl_ca();
                }
                ku_allows(DS | KA) && ns_allows(NS_SSL_CLIENT)
            }
        }
    }

    fn check_extensions(&mut self) {
        let num = self.path.len();
        let mut plen = 0u32;
        let mut must_be_ca = false;
        for i in 0..num {
            let x = self.at_depth(i);
            if x.v3.unhandled_critical.is_some() {
                self.fail(VerifyCode::UnhandledCriticalExtension, i);
            }
            if x.extensions.iter().any(|e| e.oid == OID_PROXY_CERT_INFO) {
                self.fail(VerifyCode::ProxyCertificatesNotAllowed, i);
            }
            let ret = self.check_ca(x);
            // Intermediates must be real CAs (ret 1); the top may be a v1 root etc. (ret != 0).
            // 1.0.2 accepts any CA-ish intermediate (keyUsage or nsCertType alone).
            let strict = i + 1 < num && self.flavour != OpenSsl::V1_0_2;
            if must_be_ca && (ret == 0 || (strict && ret != 1)) {
                let code = match self.flavour {
                    OpenSsl::V3 => VerifyCode::InvalidCa,
                    OpenSsl::V1_1_1 | OpenSsl::V1_0_2 => VerifyCode::InvalidCaLegacy,
                };
                self.fail(code, i);
            }
            if let Some(p) = self.policy.purpose
                && !self.purpose_ok(x, p, must_be_ca)
            {
                self.fail(VerifyCode::InvalidPurpose, i);
            }
            if let Some(pl) = x.v3.basic_constraints.and_then(|b| b.path_len)
                && i > 1
                && plen > pl
            {
                self.fail(VerifyCode::PathLengthExceeded, i);
            }
            if i > 0 && !x.self_issued {
                plen += 1;
            }
            must_be_ca = true;
        }
    }

    fn min_bits(&self) -> Option<u32> {
        const MINBITS: [u32; 5] = [80, 112, 128, 192, 256];
        if !self.flavour.has_security_levels() {
            return None;
        }
        match self.policy.auth_level {
            0 => None,
            l => Some(MINBITS[(l as usize).min(5) - 1]),
        }
    }

    fn key_level_ok(&self, d: usize) -> bool {
        let Some(min) = self.min_bits() else {
            return true;
        };
        // A key OpenSSL 3.0 cannot decode (ML-DSA, unknown types) has no strength there.
        self.at_depth(d)
            .key_kind()
            .filter(|k| !matches!(k, KeyKind::MlDsa(_) | KeyKind::Other(_)))
            .and_then(KeyKind::security_bits)
            .is_some_and(|b| b >= min)
    }

    fn check_auth_level(&mut self) {
        let Some(min) = self.min_bits() else {
            return;
        };
        let num = self.path.len();
        for i in 0..num {
            if i > 0 && !self.key_level_ok(i) {
                self.fail(VerifyCode::CaKeyTooSmall, i);
            }
            if i + 1 < num {
                let bits = sig_security_bits(self.at_depth(i), self.flavour);
                if bits.is_none_or(|b| b < min) {
                    self.fail(VerifyCode::CaMdTooWeak, i);
                }
            }
        }
    }

    fn internal_verify(&mut self) {
        let mut n = self.path.len() - 1;
        let mut xi = n;
        let mut xs = n;
        let top = self.at_depth(n);
        if !self.issued_itself(top) {
            // The top is not self-issued: its issuer is missing, so neither its signature nor
            // its dates are checked (OpenSSL starts one below it).
            if n > 0 {
                n -= 1;
                xs = n;
            } else {
                self.fail(VerifyCode::UnableToVerifyLeafSignature, 0);
            }
        }
        loop {
            let (s, i) = (self.at_depth(xs), self.at_depth(xi));
            if xs != xi || (self.policy.check_self_signature && self.self_signed(i)) {
                let issuer_depth = n + usize::from(xs != xi);
                // 3.x's ossl_x509_signing_allowed (1.1.1 refused such issuers while building).
                let signing_ok = (xs == xi && !i.is_ca()) || !ku_rejects_cert_sign(i);
                if !signing_ok && self.flavour == OpenSsl::V3 {
                    self.fail(VerifyCode::KeyusageNoCertsign, issuer_depth);
                }
                match sig::check(s, i) {
                    SigCheck::Good => {}
                    SigCheck::Bad => self.fail(VerifyCode::CertSignatureFailure, n),
                    SigCheck::NoIssuerKey => {
                        self.fail(VerifyCode::UnableToDecodeIssuerPublicKey, issuer_depth)
                    }
                    // Not a failure: we could not look. OpenSSL would check it; say so.
                    SigCheck::Unsupported(why) => self
                        .notes
                        .push((n, format!("signature not checked here: {why}"))),
                }
            }
            self.check_time(n);
            if n == 0 {
                break;
            }
            n -= 1;
            xi = xs;
            xs = n;
        }
    }

    /// check_name_constraints: each certificate (self-issued ones only as the leaf) against
    /// the constraints of every certificate above it, the anchor included.
    fn check_name_constraints(&mut self) {
        let num = self.path.len();
        for i in (0..num).rev() {
            let x = self.at_depth(i);
            if i != 0 && x.self_issued {
                continue;
            }
            for j in (i + 1..num).rev() {
                let Some(nc) = &self.at_depth(j).v3.name_constraints else {
                    continue;
                };
                if let Err(code) = ncons::check(x, nc, i == 0, self.flavour) {
                    self.fail(code, i);
                }
            }
        }
    }

    fn verdict_at(&self, d: usize) -> Verdict {
        let cert = self.at_depth(d);
        let note = || {
            self.notes
                .iter()
                .find(|(depth, _)| *depth == d)
                .map(|(_, n)| n.clone())
        };
        match self.events.iter().find(|(_, depth, _)| *depth == d) {
            Some((code, _, n)) => {
                let mut v = self.verdict(*code, Some(d), Some(cert));
                v.note = n.clone().or_else(note);
                v
            }
            None => {
                let mut v = self.verdict(VerifyCode::Ok, Some(d), Some(cert));
                v.note = note();
                v
            }
        }
    }

    fn finish(self) -> ChainVerdict {
        let path_verdicts: Vec<Verdict> =
            (0..self.path.len()).map(|d| self.verdict_at(d)).collect();
        let per_cert = self
            .chain
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let by_index = self.path.iter().position(|s| *s == Source::Chain(i));
                let by_bytes = || {
                    self.path.iter().position(|s| {
                        matches!(s, Source::Anchor(_)) && self.cert(*s).der() == c.der()
                    })
                };
                match by_index.or_else(by_bytes) {
                    Some(d) => path_verdicts[d].clone(),
                    None => self.verdict(VerifyCode::Ok, None, Some(c)),
                }
            })
            .collect();
        let anchors = self
            .path
            .iter()
            .enumerate()
            .filter(|(_, s)| match s {
                Source::Anchor(_) => !self.chain.iter().any(|c| c.der() == self.cert(**s).der()),
                Source::Chain(_) => false,
            })
            .map(|(d, _)| path_verdicts[d].clone())
            .collect();
        let errors: Vec<Verdict> = self
            .events
            .iter()
            .map(|(code, d, note)| {
                let mut v = self.verdict(*code, Some(*d), Some(self.at_depth(*d)));
                v.note = note.clone();
                v
            })
            .collect();
        let overall = errors
            .first()
            .cloned()
            .unwrap_or_else(|| self.verdict(VerifyCode::Ok, None, None));
        ChainVerdict {
            per_cert,
            anchors,
            path: self.path,
            errors,
            overall,
            trusted: self.trusted,
        }
    }
}

/// ku_reject(x, KU_KEY_CERT_SIGN): a keyUsage is present and lacks keyCertSign.
fn ku_rejects_cert_sign(c: &CertInfo) -> bool {
    c.v3.key_usage
        .is_some_and(|ku| ku & key_usage::KEY_CERT_SIGN == 0)
}

/// OpenSSL's security bits of a certificate's signature (x509_init_sig_info): 3.x rates SHA-1
/// at 63 and MD5 at 39 bits, 1.1.1 at half the digest size (80 and 64).
fn sig_security_bits(c: &CertInfo, flavour: OpenSsl) -> Option<u32> {
    use crate::cert::{Hash, SigScheme as S};
    let digest = |h: &Hash| match (h, flavour) {
        (Hash::Sha1 | Hash::Md5, OpenSsl::V1_1_1 | OpenSsl::V1_0_2) => h.output_len() as u32 * 4,
        _ => h.security_bits(),
    };
    Some(match c.sig_scheme()? {
        S::RsaPkcs1(h) | S::Ecdsa(h) => digest(h),
        S::RsaPss { hash, .. } => digest(hash),
        S::Ed25519 => 128,
        S::Ed448 => 224,
        // ML-DSA is unknown to OpenSSL 3.0: X509_get_signature_info() fails.
        _ => return None,
    })
}
