//! Name constraints, as OpenSSL checks them (crypto/x509/v3_ncons.c `NAME_CONSTRAINTS_check`,
//! `NAME_CONSTRAINTS_check_CN` and x509_vfy.c `check_name_constraints`, release 3.0).
//!
//! Every certificate of the path (a self-issued one only if it is the leaf) is checked against
//! the nameConstraints of every certificate above it, the trust anchor included: its subject DN
//! (when not empty) as a directoryName, each emailAddress attribute of the subject as an
//! rfc822Name, each subjectAltName, and - for the leaf without a DNS SAN, since 1.1.1 - each CN
//! that looks like a host name (two or more labels) as a dNSName. The error is reported at the
//! depth of the certificate checked. Matching is OpenSSL's, byte for byte: DNS names and e-mail
//! hosts compare ASCII case-insensitively as suffixes on label boundaries (a leading `.` in the
//! constraint means "below"), local parts case-sensitively, URIs by host, IP addresses under a
//! mask, directory names as a prefix of the canonical encoding.
//!
//! Known gaps: an SmtpUTF8Mailbox constraint host written as an A-label (`xn--...`) is compared
//! as written, where OpenSSL first converts it to a U-label. 3.0's SmtpUTF8Mailbox quirks are
//! kept on purpose (see `nc_email_eai`): that is what the installed 3.0.19 says.

use crate::cert::{CertInfo, GeneralName, GeneralSubtree, NameConstraints};

use super::{OpenSsl, VerifyCode};

const OID_EMAIL_ADDRESS: &str = "1.2.840.113549.1.9.1";
const OID_COMMON_NAME: &str = "2.5.4.3";
const OID_SMTP_UTF8_MAILBOX: &str = "1.3.6.1.5.5.7.8.9";
const IA5_STRING: u8 = 0x16;
const UTF8_STRING: u8 = 0x0c;
/// NAME_CHECK_MAX: names x constraints above this is refused as too costly (code 1).
const NAME_CHECK_MAX: usize = 1 << 20;

/// What one comparison says (X509_V_OK or an error code).
type Match = Result<(), VerifyCode>;

const PERMITTED: VerifyCode = VerifyCode::PermittedViolation;
const EXCLUDED: VerifyCode = VerifyCode::ExcludedViolation;
const NAME_SYNTAX: VerifyCode = VerifyCode::UnsupportedNameSyntax;

/// Checks certificate `x` against the constraints `nc` of a certificate above it; `leaf` says
/// whether `x` is at depth 0 (only the leaf's CN is checked).
pub(crate) fn check(x: &CertInfo, nc: &NameConstraints, leaf: bool, flavour: OpenSsl) -> Match {
    let sans = x.v3.subject_alt_names.as_deref().unwrap_or(&[]);
    let entries = x.subject.as_ref().map_or(0, |s| s.attributes().count());
    if flavour != OpenSsl::V1_0_2 {
        let names = entries + sans.len();
        let constraints = nc.permitted.len() + nc.excluded.len();
        if names > 0 && constraints > NAME_CHECK_MAX / names {
            return Err(VerifyCode::Unspecified);
        }
    }
    if let Some(subject) = x.subject.as_ref().filter(|_| entries > 0) {
        nc_match(&GeneralName::Directory(subject.clone()), nc, flavour)?;
        for a in subject.attributes().filter(|a| a.oid == OID_EMAIL_ADDRESS) {
            if a.tag != IA5_STRING {
                return Err(NAME_SYNTAX);
            }
            nc_match(&GeneralName::Email(a.raw.clone()), nc, flavour)?;
        }
    }
    for g in sans {
        nc_match(g, nc, flavour)?;
    }
    // 1.1.1+: the leaf's CN too, unless a DNS SAN says what the host names are.
    let dns_san = sans.iter().any(|g| matches!(g, GeneralName::Dns(_)));
    if leaf && flavour != OpenSsl::V1_0_2 && !dns_san {
        let cns = x.subject.iter().flat_map(|s| s.attributes());
        for a in cns.filter(|a| a.oid == OID_COMMON_NAME) {
            // ASN1_STRING_to_UTF8: a value that is no string cannot be a host name.
            let Some(text) = &a.text else { continue };
            if let Some(host) = cn_dns_id(text.as_bytes())? {
                nc_match(&GeneralName::Dns(host.to_vec()), nc, flavour)?;
            }
        }
    }
    Ok(())
}

/// cn2dnsid: the CN as a DNS-ID when it looks like a host name with two or more labels.
fn cn_dns_id(mut v: &[u8]) -> Result<Option<&[u8]>, VerifyCode> {
    while let [rest @ .., 0] = v {
        v = rest; // a harmless trailing NUL
    }
    if v.contains(&0) {
        return Err(NAME_SYNTAX);
    }
    let mut dns = false;
    for (i, &c) in v.iter().enumerate() {
        if c.is_ascii_alphanumeric() || c == b'_' {
            continue;
        }
        if i > 0 && i + 1 < v.len() {
            if c == b'-' {
                continue;
            }
            if c == b'.' && v[i + 1] != b'.' && v[i - 1] != b'-' && v[i + 1] != b'-' {
                dns = true;
                continue;
            }
        }
        dns = false;
        break;
    }
    Ok(dns.then_some(v))
}

/// The type a name is matched as: an SmtpUTF8Mailbox otherName counts as an e-mail address.
fn effective_type(g: &GeneralName) -> u8 {
    match g {
        GeneralName::OtherName { oid, .. } if oid == OID_SMTP_UTF8_MAILBOX => 1,
        g => g.type_number(),
    }
}

fn same_kind(g: &GeneralName, effective: u8, base: &GeneralName) -> bool {
    if effective != base.type_number() {
        return false;
    }
    match (g, base) {
        (GeneralName::OtherName { oid: a, .. }, GeneralName::OtherName { oid: b, .. }) => a == b,
        _ => true,
    }
}

/// nc_minmax_valid: `maximum` absent, `minimum` absent or 0 (1.0.2: both absent).
fn minmax_valid(sub: &GeneralSubtree, flavour: OpenSsl) -> bool {
    if sub.maximum {
        return false;
    }
    match &sub.minimum {
        None => true,
        Some(_) if flavour == OpenSsl::V1_0_2 => false,
        Some(m) => !m.is_empty() && m.iter().all(|&b| b == 0),
    }
}

/// nc_match: at least one permitted subtree of the name's type must hold it (when there are
/// any of that type), and no excluded one.
fn nc_match(g: &GeneralName, nc: &NameConstraints, flavour: OpenSsl) -> Match {
    let effective = effective_type(g);
    let mut seen = false;
    let mut matched = false;
    for sub in nc
        .permitted
        .iter()
        .filter(|s| same_kind(g, effective, &s.base))
    {
        if !minmax_valid(sub, flavour) {
            return Err(VerifyCode::SubtreeMinmax);
        }
        if matched {
            continue;
        }
        seen = true;
        match match_single(g, effective, &sub.base) {
            Ok(()) => matched = true,
            Err(e) if e == PERMITTED => {}
            Err(e) => return Err(e),
        }
    }
    if seen && !matched {
        return Err(PERMITTED);
    }
    for sub in nc
        .excluded
        .iter()
        .filter(|s| same_kind(g, effective, &s.base))
    {
        if !minmax_valid(sub, flavour) {
            return Err(VerifyCode::SubtreeMinmax);
        }
        match match_single(g, effective, &sub.base) {
            Ok(()) => return Err(EXCLUDED),
            Err(e) if e == PERMITTED => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn match_single(g: &GeneralName, effective: u8, base: &GeneralName) -> Match {
    use GeneralName as G;
    match (g, base) {
        (G::OtherName { value, .. }, G::Email(b)) if effective == 1 => nc_email_eai(value, b),
        (G::Directory(n), G::Directory(b)) => {
            if n.within(b) {
                Ok(())
            } else {
                Err(PERMITTED)
            }
        }
        (G::Dns(n), G::Dns(b)) => nc_dns(n, b),
        (G::Email(n), G::Email(b)) => nc_email(n, b),
        (G::Uri(n), G::Uri(b)) => nc_uri(n, b),
        (G::Ip(n), G::Ip(b)) => nc_ip(n, b),
        _ => Err(VerifyCode::UnsupportedConstraintType),
    }
}

fn ieq(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn check_eq(ok: bool) -> Match {
    if ok { Ok(()) } else { Err(PERMITTED) }
}

fn nc_dns(dns: &[u8], base: &[u8]) -> Match {
    if base.is_empty() {
        return Ok(());
    }
    if dns.len() < base.len() {
        return Err(PERMITTED);
    }
    let cut = dns.len() - base.len();
    // More labels on the left are fine, on a label boundary.
    if cut > 0 && base[0] != b'.' && dns[cut - 1] != b'.' {
        return Err(PERMITTED);
    }
    check_eq(ieq(base, &dns[cut..]))
}

fn nc_email(eml: &[u8], base: &[u8]) -> Match {
    let Some(eml_at) = eml.iter().rposition(|&c| c == b'@') else {
        return Err(NAME_SYNTAX);
    };
    let base_at = base.iter().rposition(|&c| c == b'@');
    if base_at.is_none() && base.first() == Some(&b'.') {
        // ".example.com": any host below it.
        return check_eq(eml.len() > base.len() && ieq(base, &eml[eml.len() - base.len()..]));
    }
    let base_host = match base_at {
        Some(at) => {
            if at != 0 {
                if at != eml_at {
                    return Err(PERMITTED);
                }
                if base[..at].contains(&0) || eml[..eml_at].contains(&0) {
                    return Err(NAME_SYNTAX);
                }
                // The local part compares case-sensitively.
                if base[..at] != eml[..eml_at] {
                    return Err(PERMITTED);
                }
            }
            &base[at + 1..]
        }
        None => base,
    };
    check_eq(ieq(base_host, &eml[eml_at + 1..]))
}

/// RFC 8398: an SmtpUTF8Mailbox (UTF8String) against an rfc822Name constraint, as OpenSSL 3.0
/// compares them: the constraint is taken as a host name only (one with a local part never
/// matches), and a leading-dot constraint is prefixed with one more dot before the suffix
/// comparison (so it practically never matches). Later releases fixed both; the installed
/// 3.0.19 behaves so.
fn nc_email_eai(value: &[u8], base: &[u8]) -> Match {
    if base.contains(&0) {
        return Err(NAME_SYNTAX);
    }
    let Some(eml) = crate::cert::der_string(value, UTF8_STRING) else {
        return Err(NAME_SYNTAX);
    };
    let Some(eml_at) = eml.iter().rposition(|&c| c == b'@') else {
        return Err(NAME_SYNTAX);
    };
    if base.first() == Some(&b'.') {
        let ulabel = [b".", base].concat();
        return check_eq(
            eml.len() > ulabel.len() && ieq(&ulabel, &eml[eml.len() - ulabel.len()..]),
        );
    }
    check_eq(ieq(base, &eml[eml_at + 1..]))
}

/// OpenSSL 3.0's nc_uri: the host between `scheme://` and the first `:` or `/`.
fn nc_uri(uri: &[u8], base: &[u8]) -> Match {
    let Some(colon) = uri.iter().position(|&c| c == b':') else {
        return Err(NAME_SYNTAX);
    };
    if uri.len() - colon < 3 || uri[colon + 1] != b'/' || uri[colon + 2] != b'/' {
        return Err(NAME_SYNTAX);
    }
    let rest = &uri[colon + 3..];
    let end = rest
        .iter()
        .position(|&c| c == b':')
        .or_else(|| rest.iter().position(|&c| c == b'/'))
        .unwrap_or(rest.len());
    let host = &rest[..end];
    if host.is_empty() {
        return Err(NAME_SYNTAX);
    }
    if base.first() == Some(&b'.') {
        return check_eq(host.len() > base.len() && ieq(&host[host.len() - base.len()..], base));
    }
    check_eq(ieq(host, base))
}

fn nc_ip(ip: &[u8], base: &[u8]) -> Match {
    if !matches!(ip.len(), 4 | 16) || !matches!(base.len(), 8 | 32) {
        return Err(NAME_SYNTAX);
    }
    if ip.len() * 2 != base.len() {
        return Err(PERMITTED); // IPv4 never matches an IPv6 subtree
    }
    let (net, mask) = base.split_at(ip.len());
    check_eq(
        ip.iter()
            .zip(net)
            .zip(mask)
            .all(|((a, n), m)| a & m == n & m),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_matches_on_label_boundaries_case_insensitively() {
        assert_eq!(nc_dns(b"www.Example.com", b"example.COM"), Ok(()));
        assert_eq!(nc_dns(b"example.com", b"example.com"), Ok(()));
        assert_eq!(nc_dns(b"badexample.com", b"example.com"), Err(PERMITTED));
        assert_eq!(nc_dns(b"example.com", b".example.com"), Err(PERMITTED));
        assert_eq!(nc_dns(b"a.example.com", b".example.com"), Ok(()));
        assert_eq!(nc_dns(b"anything", b""), Ok(()));
    }

    #[test]
    fn email_local_parts_are_case_sensitive_hosts_are_not() {
        assert_eq!(nc_email(b"joe@Example.com", b"example.com"), Ok(()));
        assert_eq!(nc_email(b"joe@example.com", b"joe@EXAMPLE.com"), Ok(()));
        assert_eq!(
            nc_email(b"Joe@example.com", b"joe@example.com"),
            Err(PERMITTED)
        );
        assert_eq!(nc_email(b"joe@mail.example.com", b".example.com"), Ok(()));
        assert_eq!(
            nc_email(b"joe@example.com", b".example.com"),
            Err(PERMITTED)
        );
        assert_eq!(
            nc_email(b"joe@mail.example.com", b"example.com"),
            Err(PERMITTED)
        );
        assert_eq!(nc_email(b"no-at-sign", b"example.com"), Err(NAME_SYNTAX));
    }

    #[test]
    fn uri_hosts_and_ip_masks() {
        assert_eq!(
            nc_uri(b"https://host.example.com:8305/x", b".example.com"),
            Ok(())
        );
        assert_eq!(nc_uri(b"https://example.com/x", b"example.com"), Ok(()));
        assert_eq!(
            nc_uri(b"https://other.com/x", b"example.com"),
            Err(PERMITTED)
        );
        assert_eq!(nc_uri(b"urn:x", b"example.com"), Err(NAME_SYNTAX));
        assert_eq!(nc_ip(&[10, 1, 2, 3], &[10, 0, 0, 0, 255, 0, 0, 0]), Ok(()));
        assert_eq!(
            nc_ip(&[11, 1, 2, 3], &[10, 0, 0, 0, 255, 0, 0, 0]),
            Err(PERMITTED)
        );
        assert_eq!(nc_ip(&[10, 1, 2, 3], &[0; 32]), Err(PERMITTED));
        assert_eq!(nc_ip(&[10, 1, 2], &[0; 8]), Err(NAME_SYNTAX));
    }

    #[test]
    fn cn_is_a_host_name_only_with_two_labels() {
        assert_eq!(
            cn_dns_id(b"www.example.com"),
            Ok(Some(&b"www.example.com"[..]))
        );
        assert_eq!(cn_dns_id(b"localhost"), Ok(None));
        assert_eq!(cn_dns_id(b"Firepower Management Center"), Ok(None));
        assert_eq!(cn_dns_id(b"a..b"), Ok(None));
        assert_eq!(cn_dns_id(b"a.-b"), Ok(None));
        assert_eq!(cn_dns_id(b"a.b\0"), Ok(Some(&b"a.b"[..])));
        assert_eq!(cn_dns_id(b"a\0.b"), Err(NAME_SYNTAX));
    }
}
