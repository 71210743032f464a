//! `sfdiag check`'s layouts: the monitoring-plugin text (status line with perfdata, then one
//! line per item, worst first), JSON, and the appliance's own words (the 30-day one-liner, the
//! FMC health alert) exactly as APPLIANCE.md shows them.
//!
//! Layout only: statuses, order and which message applies are `inventory::check`'s.
//!
//! The status line follows the Nagios plugin guidelines (also Icinga's and Zabbix's):
//! `STATUS: text | perfdata`, with one `'label'=DAYSd;WARN;CRIT` per certificate, where
//! DAYS is whole days left (negative once expired) and the thresholds are written as ranges
//! (`90:` = "alert below 90"), since a bare `90` would mean "alert above 90". Labels are the
//! paths `inventory::collect` gives (stable across runs); inside them `'` is doubled and
//! characters that would end the label or the line or reorder it (`=`, `|`, what
//! [`is_unsafe`] names: controls, C1, bidirectional marks and overrides) become `_`.

use std::io::{self, Write};

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::inventory::check::{self as decide, CheckReport, Checked, HealthAlert, Item, OneLiner};
use crate::inventory::peers::{CertRef, Facts, PeerProblem};
use crate::pki::expiry::{Standing, Status};
use crate::sftunnel::{Role, escape, is_unsafe, rfc3339};

/// `May 29 00:00:00 2024 GMT`, as `openssl x509 -enddate` prints it.
fn openssl_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let fmt = time::macros::format_description!(
        "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year] GMT"
    );
    t.format(&fmt).unwrap_or_else(|_| t.to_string())
}

/// What a certificate is called in the report: its role in an appliance tree (the peer names
/// in it come from the tree's files, so they are [`escape`]d), else its subject (RFC 4514,
/// which escapes unsafe characters its own way).
pub fn cert_name(c: &Checked) -> String {
    match &c.cert.role {
        Some(r) => escape(&r.to_string()).into_owned(),
        None => match &c.cert.info.subject {
            Some(s) if !s.is_empty() => s.rfc4514(),
            _ => "certificate with an empty subject".to_string(),
        },
    }
}

fn where_(c: &Checked) -> String {
    if c.cert.of > 1 {
        format!("{}#{}", c.cert.file.display(), c.cert.index)
    } else {
        c.cert.file.display().to_string()
    }
}

/// One perfdata item: `'label'=DAYSd;WARN:;CRIT:`.
pub fn perfdata(label: &str, days: i64, warn: u32, crit: u32) -> String {
    let mut quoted = String::with_capacity(label.len());
    for ch in label.chars() {
        match ch {
            '\'' => quoted.push_str("''"),
            '=' | '|' => quoted.push('_'),
            c if is_unsafe(c) => quoted.push('_'),
            c => quoted.push(c),
        }
    }
    format!("'{quoted}'={days}d;{warn}:;{crit}:")
}

fn chain_text(c: &Checked) -> Option<String> {
    let v = c.chain.as_ref()?;
    Some(if v.is_ok() {
        "chain: ok".to_string()
    } else {
        match v.depth {
            Some(d) => format!("chain: err {} (depth {d})", v.describe()),
            None => format!("chain: err {}", v.describe()),
        }
    })
}

fn serial(c: &CertRef) -> String {
    c.serial.clone().unwrap_or_else(|| "?".into())
}

fn short(sha: &str) -> &str {
    sha.get(..16).unwrap_or(sha)
}

/// One line about a peer problem (after the status column).
pub fn problem_text(p: &PeerProblem) -> String {
    let noun = noun(p.role);
    let peer = &p.peer;
    let end = |c: &CertRef| c.not_after.map_or("?".to_string(), |t| rfc3339(&t));
    match &p.facts {
        Facts::CaMismatch {
            trusted,
            current,
            fmc,
        } => format!(
            "ca_mismatch: {noun} {peer} trusts InternalCA serial {} (sha256 {}..., notAfter {}) in {}, \
             but FMC {fmc}'s current InternalCA is serial {} (sha256 {}..., notAfter {}): its next \
             reconnect fails; copy the FMC's files to it (sfdiag pki copy)",
            serial(trusted),
            short(&trusted.sha256),
            end(trusted),
            trusted.file.display(),
            serial(current),
            short(&current.sha256),
            end(current),
        ),
        Facts::Chain { cert, ca, verdict } => format!(
            "chain: {noun} {peer}'s certificate {} does not chain to the InternalCA it trusts ({}): err {}{}: its next reconnect fails",
            cert.file.display(),
            ca.file.display(),
            verdict.describe(),
            verdict
                .depth
                .map_or(String::new(), |d| format!(" (depth {d})")),
        ),
        Facts::KeyMismatch { cert, key_file } => format!(
            "key_mismatch: {noun} {peer}'s key {} is not the key of its certificate {}: its next handshake fails",
            key_file.display(),
            cert.file.display()
        ),
        Facts::KeyUnreadable {
            key_file, reason, ..
        } => format!(
            "key_unreadable: {noun} {peer}'s key {} cannot be read ({reason}): its next handshake fails",
            key_file.display()
        ),
        Facts::Missing { files, fmc } => format!(
            "missing: {noun} {peer}'s tunnel files toward FMC {fmc} are not there: {}: its next handshake fails; copy the FMC's files to it (sfdiag pki copy)",
            paths(files)
        ),
        Facts::Interrupted { root, journal } => format!(
            "interrupted: a change to {} was interrupted (journal {}): {peer}'s files may be a mix of old and new; run `sfdiag pki renew` or `sfdiag pki copy` on that root to finish it",
            root.display(),
            journal.display()
        ),
    }
}

/// A problem in a few words, for the status line.
pub fn problem_summary(p: &PeerProblem) -> String {
    let noun = noun(p.role);
    let peer = &p.peer;
    match &p.facts {
        Facts::CaMismatch { fmc, .. } => format!(
            "ca_mismatch: {noun} {peer} trusts another InternalCA than FMC {fmc}'s current one"
        ),
        Facts::Chain { verdict, .. } => format!(
            "chain: {noun} {peer}'s certificate does not chain to the InternalCA it trusts (err {})",
            verdict.describe()
        ),
        Facts::KeyMismatch { .. } => {
            format!("key_mismatch: {noun} {peer}'s key does not match its certificate")
        }
        Facts::KeyUnreadable { .. } => {
            format!("key_unreadable: {noun} {peer}'s key cannot be read")
        }
        Facts::Missing { files, .. } => {
            format!("missing: {noun} {peer} lacks {}", names(files))
        }
        Facts::Interrupted { root, .. } => format!(
            "interrupted: a change to {} was interrupted: run `sfdiag pki renew` or `pki copy` to finish it",
            root.display()
        ),
    }
}

fn paths(files: &[std::path::PathBuf]) -> String {
    let v: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    v.join(", ")
}

/// The files' names only, for the status line.
fn names(files: &[std::path::PathBuf]) -> String {
    let v: Vec<String> = files
        .iter()
        .map(|f| {
            f.file_name()
                .unwrap_or(f.as_os_str())
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.join(", ")
}

fn noun(role: Option<Role>) -> &'static str {
    match role {
        Some(Role::Fmc) => "FMC",
        Some(Role::HaSecondary) => "HA secondary",
        _ => "device",
    }
}

/// The status line's words about the worst item.
fn worst_text(item: &Item<'_>) -> String {
    match item {
        Item::Cert(c) => {
            let mut s = format!(
                "{} {}",
                cert_name(c),
                c.expiry
                    .map_or_else(String::new, |e| e.standing.to_string())
            );
            if let Some(v) = c.chain.as_ref().filter(|v| !v.is_ok()) {
                s.push_str(&format!(", chain err {}", v.describe()));
            }
            format!("{s} ({})", c.cert.label)
        }
        Item::Problem(p) => problem_summary(p),
        Item::Unreadable(u) => u.message.clone(),
    }
}

/// Keeps the status line one line and in order, whatever a file name or message holds.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if is_unsafe(c) || c == '|' { '_' } else { c })
        .collect()
}

/// `--format text`: the plugin status line, then one line per item, worst first.
pub fn render_text(w: &mut impl Write, r: &CheckReport) -> io::Result<()> {
    let items = r.items();
    let n = r.checked.len();
    let unknown = r.unreadable.len() + usize::from(items.is_empty());
    let mut line = format!("{}: ", r.status);
    match items.first() {
        Some(i) => line.push_str(&one_line(&worst_text(i))),
        None => line.push_str("no certificate given"),
    }
    line.push_str(&format!(
        "; {n} certificate{}: {} critical, {} warning, {} ok, {unknown} unknown",
        if n == 1 { "" } else { "s" },
        r.count(Status::Critical),
        r.count(Status::Warning),
        r.count(Status::Ok),
    ));
    if !r.problems.is_empty() {
        line.push_str(&format!(
            ", {} peer problem{}",
            r.problems.len(),
            if r.problems.len() == 1 { "" } else { "s" }
        ));
    }
    line.push_str(&format!(
        " (at {}; warning within {} days, critical within {} days)",
        rfc3339(&r.at),
        r.thresholds.warn_days,
        r.thresholds.critical_days
    ));
    let perf: Vec<String> = items
        .iter()
        .filter_map(|i| match i {
            Item::Cert(c) => c.days_left().map(|d| {
                perfdata(
                    &c.cert.label,
                    d,
                    r.thresholds.warn_days,
                    r.thresholds.critical_days,
                )
            }),
            _ => None,
        })
        .collect();
    if !perf.is_empty() {
        line.push_str(" | ");
        line.push_str(&perf.join(" "));
    }
    writeln!(w, "{line}")?;
    for item in &items {
        match item {
            Item::Cert(c) => {
                let mut text = format!(
                    "{:<8} {}: notAfter={}, {}",
                    c.status.as_str(),
                    cert_name(c),
                    c.cert.info.not_after.map_or("?".into(), openssl_date),
                    c.expiry
                        .map_or_else(String::new, |e| e.standing.to_string()),
                );
                if let Some(t) = chain_text(c) {
                    text.push_str(", ");
                    text.push_str(&t);
                }
                writeln!(w, "{} ({})", one_line(&text), one_line(&where_(c)))?;
            }
            Item::Problem(p) => writeln!(
                w,
                "{:<8} {}",
                Status::Critical.as_str(),
                one_line(&problem_text(p))
            )?,
            Item::Unreadable(u) => writeln!(
                w,
                "{:<8} {}",
                Status::Unknown.as_str(),
                one_line(&u.message)
            )?,
        }
    }
    if items.is_empty() {
        writeln!(w, "{:<8} no certificate given", Status::Unknown.as_str())?;
    }
    Ok(())
}

fn cert_ref(c: &CertRef) -> Value {
    json!({
        "file": c.file.display().to_string(),
        "sha256": c.sha256,
        "serial": c.serial,
        "not_after": c.not_after.map(|t| rfc3339(&t)),
    })
}

/// A peer problem as JSON: `{kind, peer, role, appliance, status, message, ...facts}`.
pub fn problem_json(p: &PeerProblem) -> Value {
    let mut v = json!({
        "kind": p.kind.as_str(),
        "peer": p.peer,
        "role": p.role.map(|r| r.to_string()),
        "appliance": p.appliance.display().to_string(),
        "status": Status::Critical.as_str(),
        "message": problem_text(p),
    });
    let extra = match &p.facts {
        Facts::CaMismatch {
            trusted,
            current,
            fmc,
        } => json!({"trusted_ca": cert_ref(trusted), "current_ca": cert_ref(current), "fmc": fmc}),
        Facts::Chain { cert, ca, verdict } => {
            json!({"cert": cert_ref(cert), "ca": cert_ref(ca), "verdict": verdict})
        }
        Facts::KeyMismatch { cert, key_file } => {
            json!({"cert": cert_ref(cert), "key_file": key_file.display().to_string()})
        }
        Facts::KeyUnreadable {
            cert,
            key_file,
            reason,
        } => {
            json!({"cert": cert_ref(cert), "key_file": key_file.display().to_string(), "reason": reason})
        }
        Facts::Missing { files, fmc } => json!({
            "files": files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
            "fmc": fmc,
        }),
        Facts::Interrupted { root, journal } => json!({
            "root": root.display().to_string(),
            "journal": journal.display().to_string(),
        }),
    };
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    v
}

/// `--format json`: one document, certificates worst first.
pub fn render_json(w: &mut impl Write, r: &CheckReport) -> io::Result<()> {
    let certs: Vec<Value> = r
        .checked
        .iter()
        .map(|c| {
            let (standing, days) = match c.expiry.map(|e| e.standing) {
                Some(Standing::Valid { days_left }) => ("valid", Some(days_left)),
                Some(Standing::Expired { days_ago }) => ("expired", Some(days_ago)),
                Some(Standing::NotYetValid { starts_in_days }) => {
                    ("not_yet_valid", Some(starts_in_days))
                }
                None => ("unknown", None),
            };
            json!({
                "file": c.cert.file.display().to_string(),
                "index": c.cert.index,
                "label": c.cert.label,
                "name": cert_name(c),
                "role": c.cert.role.as_ref().map(|r| r.kind()),
                "peer": c.cert.role.as_ref().and_then(|r| r.peer.clone()),
                "subject": c.cert.info.subject.as_ref().map(|s| s.rfc4514()),
                "issuer": c.cert.info.issuer.as_ref().map(|s| s.rfc4514()),
                "serial": c.cert.info.serial,
                "sha256": c.cert.info.sha256,
                "not_before": c.cert.info.not_before.map(|t| rfc3339(&t)),
                "not_after": c.cert.info.not_after.map(|t| rfc3339(&t)),
                "days_left": c.days_left(),
                "standing": standing,
                "standing_days": days,
                "message": c.expiry.map(|e| e.standing.to_string()),
                "chain_verdict": c.chain,
                "status": c.status.as_str(),
            })
        })
        .collect();
    let errors: Vec<Value> = r
        .unreadable
        .iter()
        .map(|u| {
            json!({
                "file": u.file.display().to_string(),
                "message": u.message,
                "status": Status::Unknown.as_str(),
            })
        })
        .collect();
    let skipped: Vec<Value> = r
        .skipped
        .iter()
        .map(|s| json!({"file": s.file.display().to_string(), "reason": s.reason.as_str()}))
        .collect();
    let items = r.items();
    let doc = json!({
        "status": r.status.as_str(),
        "exit_code": r.status.exit_code(),
        "worst": items.first().map(worst_text),
        "at": rfc3339(&r.at),
        "warn_days": r.thresholds.warn_days,
        "critical_days": r.thresholds.critical_days,
        "certificates": certs,
        "problems": r.problems.iter().map(problem_json).collect::<Vec<_>>(),
        "errors": errors,
        "skipped": skipped,
    });
    super::safejson::to_writer_pretty(&mut *w, &doc)?;
    writeln!(w)
}

/// `--format oneliner`: the 30-day one-liner's message for the InternalCA, word for word
/// (a header names each certificate when there are several).
pub fn render_oneliner(w: &mut impl Write, r: &CheckReport) -> io::Result<()> {
    let cas = r.internal_cas();
    for c in &cas {
        let Some(na) = c.cert.info.not_after else {
            continue;
        };
        if cas.len() > 1 {
            writeln!(
                w,
                "== {} ({})",
                one_line(&cert_name(c)),
                one_line(&c.cert.label)
            )?;
        }
        match decide::one_liner(na, r.at) {
            OneLiner::Expired { days_expired } => write!(
                w,
                "\nThe certificate has expired {days_expired} days ago.\n\
                 In case the sftunnel communication with the FTD is not yet lost, you need to take action immediately in renewing the certificate.\n\n"
            )?,
            OneLiner::Within30 { days_left } => write!(
                w,
                "\nThe certificate will expire within the next 30 days!\n\
                 It is ONLY valid for {days_left} more days.\n\
                 It is recommended to take action in renewing the certificate as quickly as possible.\n\n"
            )?,
            OneLiner::Valid { days_left } => write!(
                w,
                "\nThe certificate is valid for more than 30 days.\n\
                 It is valid for {days_left} more days.\n\
                 There is no immediate need to perform action but this depends on how far the expiry date is in the future.\n\n"
            )?,
        }
    }
    Ok(())
}

/// `--format health`: the FMC health alert's text for the InternalCA, word for word;
/// nothing when more than 90 days are left (the FMC shows no alert then).
pub fn render_health(w: &mut impl Write, r: &CheckReport) -> io::Result<()> {
    let cas = r.internal_cas();
    for c in &cas {
        let Some(na) = c.cert.info.not_after else {
            continue;
        };
        let text = match decide::health_alert(na, r.at) {
            HealthAlert::None => continue,
            HealthAlert::Expiring { days } => format!(
                "Firewall Management Center's internal root certificate is expiring in {days} days. If it expires, Firewall Threat Defense cannot be managed and might experience degradation. Review the Field Notice FN #74214 and regenerate the certificate."
            ),
            HealthAlert::Expired => "Firewall Management Center's internal root certificate has expired. As a result, Firewall Threat Defense cannot be managed and may experience degradation. Review the Field Notice FN #74214 and regenerate the certificate.".to_string(),
        };
        if cas.len() > 1 {
            writeln!(
                w,
                "== {} ({})",
                one_line(&cert_name(c)),
                one_line(&c.cert.label)
            )?;
        }
        writeln!(w, "{text}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfdata_labels_are_quoted_and_cannot_break_the_line() {
        assert_eq!(
            perfdata("fmc/etc/sf/ca_root/cacert.pem", -911, 90, 30),
            "'fmc/etc/sf/ca_root/cacert.pem'=-911d;90:;30:"
        );
        assert_eq!(
            perfdata("it's a=b|c\nd", 5, 60, 10),
            "'it''s a_b_c_d'=5d;60:;10:"
        );
        assert_eq!(
            perfdata("a\u{9b}2J\u{202e}b\u{2066}", 1, 60, 10),
            "'a_2J_b_'=1d;60:;10:"
        );
    }

    #[test]
    fn the_status_line_holds_no_reordering_or_c1_character() {
        assert_eq!(one_line("x\u{9b}y\u{202e}z\u{200f}|\n"), "x_y_z___");
    }
}
