//! `sfdiag inventory`'s layouts: a table with the plan under it, JSON, and the `devices.csv`
//! skeleton that `sfdiag pki copy` and copy_sftunnel_certs.py read.
//!
//! Layout only: entries, actions and reasons are `inventory::plan`'s. The CSV has the FMC(s)
//! first (copy_sftunnel_certs.py and `pki copy` read the certificates from the first line's
//! FMC), then one line per peer that needs a `copy`; the other peers follow as comments so the
//! skeleton can be widened by removing a `#`. Login and password are left empty for the user
//! to fill in: they are never guessed and never printed from anywhere.

use std::io::{self, Write};

use serde_json::{Value, json};

use crate::inventory::plan::{Action, CertSource, Entry, Inventory};
use crate::sftunnel::{Role, rfc3339};

fn date(c: &Option<CertSource>) -> String {
    c.as_ref()
        .and_then(|c| c.not_after)
        .map_or("-".to_string(), |t| rfc3339(&t))
}

/// Keeps a field on one line and out of the CSV's separators (names come from files and
/// captures).
fn field(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() || c == ',' { '_' } else { c })
        .collect()
}

fn name(e: &Entry) -> String {
    field(
        &e.name
            .clone()
            .or(e.uuid.clone())
            .unwrap_or_else(|| e.ip.map_or("?".into(), |i| i.to_string())),
    )
}

fn handshakes(e: &Entry) -> String {
    match &e.handshakes {
        None => "-".into(),
        Some(h) => format!("{} ok, {} failed", h.ok, h.failed),
    }
}

/// `--format text`: a table, then the renewal plan in order.
pub fn render_text(w: &mut impl Write, inv: &Inventory) -> io::Result<()> {
    writeln!(
        w,
        "inventory at {}: {} appliance{} (health alert within {} days, critical within {} days)",
        rfc3339(&inv.at),
        inv.entries.len(),
        if inv.entries.len() == 1 { "" } else { "s" },
        inv.thresholds.warn_days,
        inv.thresholds.critical_days
    )?;
    let rows: Vec<[String; 10]> = inv
        .entries
        .iter()
        .map(|e| {
            [
                name(e),
                e.role.to_string(),
                e.uuid.clone().unwrap_or_else(|| "-".into()),
                e.ip.map_or("-".into(), |i| i.to_string()),
                date(&e.cert),
                date(&e.ca),
                e.days_left.map_or("-".into(), |d| d.to_string()),
                e.status.as_str().to_string(),
                handshakes(e),
                e.action.as_str().to_string(),
            ]
        })
        .collect();
    let head = [
        "NAME",
        "ROLE",
        "UUID",
        "IP",
        "CERT NOT AFTER",
        "CA NOT AFTER",
        "DAYS",
        "STATUS",
        "HANDSHAKES",
        "ACTION",
    ];
    let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s
    };
    writeln!(w, "{}", line(head.to_vec()))?;
    for r in &rows {
        writeln!(w, "{}", line(r.iter().map(String::as_str).collect()))?;
    }
    for e in &inv.entries {
        if let Some(err) = e.handshakes.as_ref().and_then(|h| h.last_error.as_deref()) {
            writeln!(w, "{}: last failed handshake: {}", name(e), field(err))?;
        }
    }
    writeln!(w, "\nplan:")?;
    let mut step = 0;
    for e in inv.entries.iter().filter(|e| e.action == Action::Renew) {
        step += 1;
        let pushed: Vec<String> = peers_of(inv, e, Action::Push);
        writeln!(
            w,
            "{step}. renew on {} {} ({}): sfdiag pki renew (generate_certs.pl){}",
            noun(e.role),
            name(e),
            e.reason,
            if pushed.is_empty() {
                String::new()
            } else {
                format!("; it pushes to {}", pushed.join(", "))
            }
        )?;
    }
    let copies: Vec<&Entry> = inv
        .entries
        .iter()
        .filter(|e| e.action == Action::Copy)
        .collect();
    if !copies.is_empty() {
        step += 1;
        writeln!(
            w,
            "{step}. copy the FMC's files to {} (sfdiag inventory --format csv > devices.csv, fill in login and password, sfdiag pki copy --devices devices.csv):",
            copies
                .iter()
                .map(|e| name(e))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        for e in &copies {
            writeln!(w, "   {}: {}", name(e), e.reason)?;
        }
    }
    if step == 0 && inv.unreadable.is_empty() {
        writeln!(w, "nothing to do: every appliance is fine")?;
    } else if step == 0 {
        // Files that could not be read may hold an appliance that needs something.
        writeln!(
            w,
            "nothing to do for the appliances read; the files below could not be read"
        )?;
    }
    for u in &inv.unreadable {
        writeln!(w, "UNREADABLE {}", field(&u.message))?;
    }
    Ok(())
}

fn noun(r: Role) -> &'static str {
    match r {
        Role::Fmc => "FMC",
        Role::Device => "device",
        Role::HaSecondary => "HA secondary",
    }
}

fn peers_of(inv: &Inventory, fmc: &Entry, action: Action) -> Vec<String> {
    inv.entries
        .iter()
        .filter(|e| e.action == action && e.manager.is_some() && e.manager == fmc.uuid)
        .map(name)
        .collect()
}

fn cert_json(c: &Option<CertSource>) -> Value {
    match c {
        None => Value::Null,
        Some(c) => json!({
            "not_after": c.not_after.map(|t| rfc3339(&t)),
            "sha256": c.sha256,
            "file": c.file.as_ref().map(|f| f.display().to_string()),
        }),
    }
}

/// `--format json`.
pub fn render_json(w: &mut impl Write, inv: &Inventory) -> io::Result<()> {
    let entries: Vec<Value> = inv
        .entries
        .iter()
        .map(|e| {
            json!({
                "uuid": e.uuid,
                "name": e.name,
                "role": e.role.to_string(),
                "ip": e.ip.map(|i| i.to_string()),
                "cert_not_after": e.cert.as_ref().and_then(|c| c.not_after).map(|t| rfc3339(&t)),
                "ca_not_after": e.ca.as_ref().and_then(|c| c.not_after).map(|t| rfc3339(&t)),
                "days_left": e.days_left,
                "status": e.status.as_str(),
                "health_alert": e.days_left.is_some_and(|d| d < i64::from(inv.thresholds.warn_days)),
                "critical": e.days_left.is_some_and(|d| d < i64::from(inv.thresholds.critical_days)),
                "handshakes": e.handshakes.as_ref().map(|h| json!({
                    "ok": h.ok,
                    "failed": h.failed,
                    "last_error": h.last_error,
                    "last_alert": h.last_alert.as_ref().map(|a| json!({
                        "code": a.code,
                        "description": a.description,
                        "sender": a.sender,
                        "side": a.side.map(|s| s.as_str()),
                    })),
                })),
                "manager": e.manager,
                "problems": e.problems.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                "action": e.action.as_str(),
                "reason": e.reason.to_string(),
                "cert": cert_json(&e.cert),
                "ca": cert_json(&e.ca),
            })
        })
        .collect();
    let errors: Vec<Value> = inv
        .unreadable
        .iter()
        .map(|u| json!({"file": u.file.display().to_string(), "message": u.message}))
        .collect();
    let doc = json!({
        "at": rfc3339(&inv.at),
        "warn_days": inv.thresholds.warn_days,
        "critical_days": inv.thresholds.critical_days,
        "exit_code": inv.exit_code(),
        "entries": entries,
        "errors": errors,
    });
    super::safejson::to_writer_pretty(&mut *w, &doc)?;
    writeln!(w)
}

/// `--format csv`: the `devices.csv` skeleton (see the module doc).
pub fn render_csv(w: &mut impl Write, inv: &Inventory) -> io::Result<()> {
    writeln!(w, "#device_name,ipaddr,login,password")?;
    let ip = |e: &Entry| e.ip.map_or(String::new(), |i| i.to_string());
    for e in inv.entries.iter().filter(|e| e.role == Role::Fmc) {
        writeln!(w, "{},{},,", name(e), ip(e))?;
    }
    for e in inv.entries.iter().filter(|e| e.role != Role::Fmc) {
        if e.action == Action::Copy {
            writeln!(w, "{},{},,", name(e), ip(e))?;
        }
    }
    for e in inv.entries.iter().filter(|e| e.role != Role::Fmc) {
        if e.action != Action::Copy {
            writeln!(
                w,
                "#{},{},,  (action: {})",
                name(e),
                ip(e),
                e.action.as_str()
            )?;
        }
    }
    Ok(())
}
