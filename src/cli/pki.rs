//! `sfdiag pki ...`: flags -> `sfdiag::pki` calls, and the human-readable output.
//!
//! `init` resolves times against the clock (the only place that reads it for this command)
//! and hands the library a complete `InitOptions`; `show` decodes certificate and key files
//! for reading.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::builder::TypedValueParser;
use clap::{Args, Subcommand};
use time::OffsetDateTime;

use sfdiag::cert::{self, CertError, CertInfo};
use sfdiag::files;
use sfdiag::pki::roles::{CertRole as RoleName, RoleNamer};
use sfdiag::pki::{self, DeviceSpec, InitOptions, Uuid, Validity};
use sfdiag::sftunnel::{self, SubjectRole};

use super::time_arg::parse_time;

/// `sfdiag pki`.
#[derive(Debug, Args)]
pub(crate) struct PkiArgs {
    #[command(subcommand)]
    pub command: PkiCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PkiCommand {
    /// Write a lab PKI in the FMC/FTD file layout: a v1 InternalCA, the FMC's and each
    /// device's sftunnel certificate and key, sftunnel.conf and each appliance's identity.
    Init(Box<InitArgs>),
    /// Decode certificates (PEM or DER, several per file) and describe key files by their
    /// public half.
    Show(ShowArgs),
    /// generate_certs.pl: a new InternalCA (same FMC UUID), every peer's certificate reissued,
    /// pushed through a running serve; the rest listed in var/tmp/certs/<time>/FAILED_PUSH.
    /// Exit 0 all pushed, 1 some not pushed (or declined), 2 refused.
    Renew(Box<super::renew::RenewArgs>),
    /// copy_sftunnel_certs.py: copy each listed device's renewed files from the FMC's
    /// certs_pushed/ into its tree (old files kept as *.backup). A `connect` running for that
    /// device loads them at its next connection attempt (it retries with backoff). Exit 0 all
    /// copied, 1 some failed.
    Copy(super::renew::CopyArgs),
}

/// Flags of `pki show`.
#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// Certificate or key files, or folders (every .pem/.crt/.cer/.der/.cert file under
    /// them, as `check` finds them).
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
}

/// Flags of `pki init` (CLI.md).
#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The lab root: DIR/fmc/... for the FMC, DIR/NAME/... for each device.
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// The FMC's UUID (random when absent).
    #[arg(long, value_name = "UUID", value_parser = parse_uuid)]
    pub fmc_uuid: Option<Uuid>,
    /// Make N devices named ftd1..ftdN (default: 1).
    #[arg(long, value_name = "N", conflicts_with = "device")]
    pub devices: Option<u32>,
    /// A device by name, optionally with its UUID; repeat for several.
    #[arg(long = "device", value_name = "NAME[=UUID]", value_parser = parse_device)]
    pub device: Vec<DeviceSpec>,
    /// Also make a secondary FMC (HA), optionally with its UUID: an FMC of its own (its own
    /// InternalCA, sftunnel certificate and tunnel files for every device) that the primary
    /// manages like a device.
    #[arg(long, value_name = "NAME[=UUID]")]
    pub ha_secondary: Option<String>,
    /// The HA secondary's InternalCA notBefore (default: the primary's): RFC 3339 or an offset.
    #[arg(
        long,
        value_name = "TIME",
        allow_hyphen_values = true,
        requires = "ha_secondary"
    )]
    pub ha_not_before: Option<String>,
    /// The HA secondary's InternalCA notAfter.
    #[arg(
        long,
        value_name = "TIME",
        conflicts_with = "ha_days",
        allow_hyphen_values = true,
        requires = "ha_secondary"
    )]
    pub ha_not_after: Option<String>,
    /// The HA secondary's InternalCA lifetime in days from its notBefore (default 3650).
    #[arg(long, value_name = "N", requires = "ha_secondary")]
    pub ha_days: Option<u32>,
    /// notBefore of the certificates the HA secondary signs (default: its InternalCA's, or the
    /// primary's peer certificates' when no --ha-* date is given).
    #[arg(
        long,
        value_name = "TIME",
        allow_hyphen_values = true,
        requires = "ha_secondary"
    )]
    pub ha_peer_not_before: Option<String>,
    /// notAfter of the certificates the HA secondary signs.
    #[arg(
        long,
        value_name = "TIME",
        conflicts_with = "ha_peer_days",
        allow_hyphen_values = true,
        requires = "ha_secondary"
    )]
    pub ha_peer_not_after: Option<String>,
    /// Lifetime in days of the certificates the HA secondary signs.
    #[arg(long, value_name = "N", requires = "ha_secondary")]
    pub ha_peer_days: Option<u32>,
    /// InternalCA notBefore: RFC 3339 or an offset like -3650d (default: now).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub not_before: Option<String>,
    /// InternalCA notAfter: RFC 3339 or an offset from now like +10d.
    #[arg(
        long,
        value_name = "TIME",
        conflicts_with = "days",
        allow_hyphen_values = true
    )]
    pub not_after: Option<String>,
    /// InternalCA lifetime in days from notBefore (default 3650, as on the appliance).
    #[arg(long, value_name = "N")]
    pub days: Option<u32>,
    /// Peer certificates' notBefore (default: the InternalCA's).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub peer_not_before: Option<String>,
    /// Peer certificates' notAfter (default: the InternalCA's, or --peer-not-before + 3650 days).
    #[arg(
        long,
        value_name = "TIME",
        conflicts_with = "peer_days",
        allow_hyphen_values = true
    )]
    pub peer_not_after: Option<String>,
    /// Peer certificates' lifetime in days from their notBefore.
    #[arg(long, value_name = "N")]
    pub peer_days: Option<u32>,
    /// RSA key size for every key.
    #[arg(long, value_name = "BITS", default_value_t = 2048,
          value_parser = clap::builder::PossibleValuesParser::new(["2048", "3072", "4096"])
              .map(|s| s.parse::<u32>().expect("listed values are numbers")))]
    pub key_bits: u32,
    /// Replace an existing PKI; its files are kept as *.backup.
    #[arg(long)]
    pub force: bool,
    /// `proxy_tls_version` written to every sftunnel.conf: 1.2 (before 7.6) or 1.3 (FMC/FTD
    /// 7.6+); `serve`, `connect` and `validate` with `--root` run it by default.
    #[arg(long, value_name = "1.2|1.3", default_value = "1.2")]
    pub tls_version: pki::conf::TlsVersion,
}

fn parse_uuid(s: &str) -> Result<Uuid, String> {
    s.parse().map_err(|e: pki::PkiError| e.to_string())
}

fn parse_device(s: &str) -> Result<DeviceSpec, String> {
    match s.split_once('=') {
        Some((name, uuid)) => Ok(DeviceSpec {
            name: name.to_string(),
            uuid: Some(parse_uuid(uuid)?),
        }),
        None => Ok(DeviceSpec {
            name: s.to_string(),
            uuid: None,
        }),
    }
}

/// Runs `sfdiag pki ...`.
pub(crate) fn run(args: PkiArgs, verbose: bool) -> anyhow::Result<ExitCode> {
    match args.command {
        PkiCommand::Init(a) => init(*a, OffsetDateTime::now_utc()),
        PkiCommand::Show(a) => show(&a.paths),
        PkiCommand::Renew(a) => super::renew::run_renew(*a, verbose),
        PkiCommand::Copy(a) => super::renew::run_copy(a),
    }
}

fn time_flag(
    flag: &str,
    v: &Option<String>,
    now: OffsetDateTime,
) -> anyhow::Result<Option<OffsetDateTime>> {
    v.as_deref()
        .map(|s| parse_time(s, now).map_err(|e| anyhow::anyhow!("{flag}: {e}")))
        .transpose()
}

/// One FMC's date flags: its InternalCA's (`--not-before`, `--not-after`, `--days`) and its
/// peers' (`--peer-*`), with the flags' names for messages.
struct DateFlags<'a> {
    prefix: &'static str,
    not_before: &'a Option<String>,
    not_after: &'a Option<String>,
    days: Option<u32>,
    peer_not_before: &'a Option<String>,
    peer_not_after: &'a Option<String>,
    peer_days: Option<u32>,
}

impl DateFlags<'_> {
    fn any(&self) -> bool {
        self.not_before.is_some()
            || self.not_after.is_some()
            || self.days.is_some()
            || self.peer_not_before.is_some()
            || self.peer_not_after.is_some()
            || self.peer_days.is_some()
    }
}

/// The InternalCA's and the peers' validity windows from the flags.
fn windows(a: &InitArgs, now: OffsetDateTime) -> anyhow::Result<(Validity, Validity)> {
    windows_of(
        &DateFlags {
            prefix: "",
            not_before: &a.not_before,
            not_after: &a.not_after,
            days: a.days,
            peer_not_before: &a.peer_not_before,
            peer_not_after: &a.peer_not_after,
            peer_days: a.peer_days,
        },
        now,
    )
}

/// The HA secondary's windows from the `--ha-*` flags: `None` when none is given (the
/// secondary then gets the primary's dates).
fn ha_windows(a: &InitArgs, now: OffsetDateTime) -> anyhow::Result<Option<(Validity, Validity)>> {
    let f = DateFlags {
        prefix: "ha-",
        not_before: &a.ha_not_before,
        not_after: &a.ha_not_after,
        days: a.ha_days,
        peer_not_before: &a.ha_peer_not_before,
        peer_not_after: &a.ha_peer_not_after,
        peer_days: a.ha_peer_days,
    };
    f.any().then(|| windows_of(&f, now)).transpose()
}

fn windows_of(f: &DateFlags<'_>, now: OffsetDateTime) -> anyhow::Result<(Validity, Validity)> {
    const DEFAULT_DAYS: u32 = 3650;
    let p = f.prefix;
    let flag = |name: &str| format!("--{p}{name}");
    let ca_nb = time_flag(&flag("not-before"), f.not_before, now)?.unwrap_or(now);
    let ca = match time_flag(&flag("not-after"), f.not_after, now)? {
        Some(na) => Validity::new(ca_nb, na),
        None => Validity::days(ca_nb, f.days.unwrap_or(DEFAULT_DAYS)),
    }
    .with_context(|| {
        format!(
            "InternalCA validity ({}/{}/{})",
            flag("not-before"),
            flag("not-after"),
            flag("days")
        )
    })?;
    let peer_nb = time_flag(&flag("peer-not-before"), f.peer_not_before, now)?;
    let peer_na = time_flag(&flag("peer-not-after"), f.peer_not_after, now)?;
    let peer = match (peer_nb, peer_na, f.peer_days) {
        (None, None, None) => Ok(ca),
        (nb, Some(na), _) => Validity::new(nb.unwrap_or(ca.not_before), na),
        (nb, None, days) => {
            Validity::days(nb.unwrap_or(ca.not_before), days.unwrap_or(DEFAULT_DAYS))
        }
    }
    .with_context(|| {
        format!(
            "peer certificate validity ({}/{}/{})",
            flag("peer-not-before"),
            flag("peer-not-after"),
            flag("peer-days")
        )
    })?;
    Ok((ca, peer))
}

fn init(a: InitArgs, now: OffsetDateTime) -> anyhow::Result<ExitCode> {
    let (ca_validity, peer_validity) = windows(&a, now)?;
    let ha = ha_windows(&a, now)?;
    let devices = if a.device.is_empty() {
        (1..=a.devices.unwrap_or(1))
            .map(|i| DeviceSpec {
                name: format!("ftd{i}"),
                uuid: None,
            })
            .collect()
    } else {
        a.device.clone()
    };
    let opts = InitOptions {
        root: a.root.clone(),
        fmc_uuid: a.fmc_uuid,
        devices,
        ha_secondary: a.ha_secondary.clone(),
        ha_ca_validity: ha.map(|(ca, _)| ca),
        ha_peer_validity: ha.map(|(_, peer)| peer),
        ca_validity,
        peer_validity,
        key_bits: a.key_bits,
        force: a.force,
        tls_version: a.tls_version,
    };
    let root = pki::init(&opts)?;
    let mut out = std::io::stdout().lock();
    print_summary(&mut out, &root, &opts)?;
    Ok(ExitCode::SUCCESS)
}

fn rel<'a>(root: &Path, p: &'a Path) -> std::borrow::Cow<'a, str> {
    match p.strip_prefix(root) {
        Ok(r) => r.to_string_lossy(),
        Err(_) => p.to_string_lossy(),
    }
}

fn print_summary(
    out: &mut impl std::io::Write,
    root: &pki::layout::PkiRoot,
    opts: &InitOptions,
) -> anyhow::Result<()> {
    let r = root.layout.root();
    let fmt = |t: OffsetDateTime| sftunnel::rfc3339(&t);
    writeln!(out, "lab PKI written under {}", super::shown(r))?;
    writeln!(
        out,
        "InternalCA  {}  FMC {}  {} .. {}",
        rel(r, &root.layout.ca_cert()),
        root.fmc.uuid,
        fmt(opts.ca_validity.not_before),
        fmt(opts.ca_validity.not_after)
    )?;
    for sec in root.fmcs().into_iter().skip(1) {
        let v = opts.ha_ca_validity.unwrap_or(opts.ca_validity);
        writeln!(
            out,
            "InternalCA  {}  HA secondary {} {}  {} .. {}",
            rel(r, &root.fmc_files_of(sec).ca),
            sec.name,
            sec.uuid,
            fmt(v.not_before),
            fmt(v.not_after)
        )?;
    }
    writeln!(
        out,
        "peer certs  {} .. {}",
        fmt(opts.peer_validity.not_before),
        fmt(opts.peer_validity.not_after)
    )?;
    writeln!(
        out,
        "{:<12} {:<13} {:<36}  {:<15}  cert",
        "name", "role", "uuid", "ip"
    )?;
    writeln!(
        out,
        "{:<12} {:<13} {:<36}  {:<15}  {}",
        root.fmc.name,
        root.fmc.role.to_string(),
        root.fmc.uuid.to_string(),
        root.fmc.ip.to_string(),
        rel(r, &root.fmc_files().cert)
    )?;
    for p in &root.peers {
        let files = root
            .device_files(&p.name)
            .map(|f| rel(r, &f.cert).into_owned())
            .unwrap_or_default();
        writeln!(
            out,
            "{:<12} {:<13} {:<36}  {:<15}  {}",
            p.name,
            p.role.to_string(),
            p.uuid.to_string(),
            p.ip.to_string(),
            files
        )?;
    }
    // The HA secondary's own tunnels: its certificate, and each device's for it.
    for sec in root.fmcs().into_iter().skip(1) {
        writeln!(
            out,
            "tunnels to HA secondary {}: {}",
            sec.name,
            std::iter::once(rel(r, &root.fmc_files_of(sec).cert).into_owned())
                .chain(root.peers_of(sec).iter().filter_map(|p| {
                    let f = root.device_files_for(&p.name, sec)?;
                    Some(rel(r, &f.cert).into_owned())
                }))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    Ok(())
}

/// What one file turned out to hold.
enum Shown {
    Certs(Vec<CertInfo>),
    Key(Result<pki::PublicKeySummary, String>, String),
}

fn show(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let mut failed = false;
    let mut shown: Vec<(PathBuf, Shown)> = Vec::new();
    let mut files = Vec::new();
    for p in paths {
        if !p.is_dir() {
            files.push(p.clone());
            continue;
        }
        let found = pki::scan::cert_files(p);
        for (dir, e) in &found.errors {
            failed = true;
            eprintln!("sfdiag: {}: {e}", super::shown(dir));
        }
        if found.files.is_empty() && found.errors.is_empty() {
            failed = true;
            eprintln!(
                "sfdiag: {}: no .pem/.crt/.cer/.der/.cert file under it",
                super::shown(p)
            );
        }
        files.extend(found.files);
    }
    for p in &files {
        match cert::read_certs(p) {
            Ok(certs) => shown.push((p.clone(), Shown::Certs(certs))),
            Err(CertError::PrivateKey { label, .. }) => {
                let key = files::read_text_bounded(p, files::MAX_CERT_FILE, files::Links::Follow)
                    .map_err(|e| e.to_string())
                    .and_then(|text| {
                        pki::load_key_pem(&text, p)
                            .map(|k| pki::public_key_summary(&k))
                            .map_err(|e| e.to_string())
                    });
                shown.push((p.clone(), Shown::Key(key, label)));
            }
            Err(e) => {
                failed = true;
                // The error names the file, whose name the folder's writer chose.
                eprintln!("sfdiag: {}", sftunnel::escape(&e.to_string()));
            }
        }
    }
    let mut namer = RoleNamer::new();
    let mut first = true;
    for (path, what) in &shown {
        match what {
            Shown::Certs(certs) => {
                let role = namer.role_of(path);
                for (i, c) in certs.iter().enumerate() {
                    if !first {
                        writeln!(out)?;
                    }
                    first = false;
                    let role = if i == 0 { role.as_ref() } else { None };
                    write_cert(&mut out, path, i + 1, certs.len(), c, role)?;
                }
                if files::read_bounded(path, files::MAX_CERT_FILE, files::Links::Follow)
                    .map(|b| contains(&b, b"PRIVATE KEY-----"))
                    .unwrap_or(false)
                {
                    writeln!(
                        out,
                        "Note:        this file also holds a private key (not shown)"
                    )?;
                }
            }
            Shown::Key(summary, label) => {
                if !first {
                    writeln!(out)?;
                }
                first = false;
                write_key(&mut out, path, label, summary, &shown)?;
            }
        }
    }
    out.flush()?;
    Ok(if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// A private key file: what it is and its public half, and which shown certificate it fits.
fn write_key(
    out: &mut impl Write,
    path: &Path,
    label: &str,
    summary: &Result<pki::PublicKeySummary, String>,
    shown: &[(PathBuf, Shown)],
) -> std::io::Result<()> {
    writeln!(out, "== {}", super::shown(path))?;
    writeln!(
        out,
        "Private key: {label} (the private part is never shown)"
    )?;
    let k = match summary {
        Ok(k) => k,
        Err(e) => return writeln!(out, "Public half: not readable: {e}"),
    };
    writeln!(out, "Key:         {}", k.kind)?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &k.spki_der);
    writeln!(
        out,
        "Key SHA-256: {} (of the SubjectPublicKeyInfo)",
        hex::encode(digest.as_ref())
    )?;
    let mut matching = Vec::new();
    for (p, s) in shown {
        let Shown::Certs(certs) = s else { continue };
        for (i, c) in certs.iter().enumerate() {
            if c.public_key() == Some(k.key_bits.as_slice()) {
                matching.push(if certs.len() > 1 {
                    format!("{}#{}", super::shown(p), i + 1)
                } else {
                    super::shown(p)
                });
            }
        }
    }
    if !matching.is_empty() {
        writeln!(out, "Matches:     {}", matching.join(", "))?;
    }
    write!(out, "{}", k.pem)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn or_unknown(v: Option<String>) -> String {
    v.unwrap_or_else(|| "(unreadable)".to_string())
}

fn write_cert(
    out: &mut impl Write,
    path: &Path,
    index: usize,
    of: usize,
    c: &CertInfo,
    role: Option<&RoleName>,
) -> std::io::Result<()> {
    if of > 1 {
        writeln!(
            out,
            "== {} [certificate {index} of {of}]",
            super::shown(path)
        )?;
    } else {
        writeln!(out, "== {}", super::shown(path))?;
    }
    if let Some(r) = role {
        writeln!(out, "Role:        {r}")?;
    }
    let id = c.sftunnel_identity();
    let sftunnel = match id.role {
        SubjectRole::InternalCa => Some(format!(
            "InternalCA of FMC {}",
            id.uuid.as_deref().unwrap_or("?")
        )),
        SubjectRole::Fmc => Some(format!("FMC {}", id.uuid.as_deref().unwrap_or("?"))),
        SubjectRole::Ftd => Some(format!("device {}", id.uuid.as_deref().unwrap_or("?"))),
        _ => None,
    };
    if let Some(s) = sftunnel {
        writeln!(out, "sftunnel:    {s}")?;
    }
    writeln!(
        out,
        "Version:     {}",
        or_unknown(
            c.version
                .map(|v| format!("{v} (0x{:x})", v.saturating_sub(1)))
        )
    )?;
    writeln!(
        out,
        "Serial:      {}",
        or_unknown(c.serial.as_ref().map(|s| serial_text(s)))
    )?;
    let name = |n: &Option<cert::DistinguishedName>| {
        n.as_ref()
            .map(|n| format!("{}\n             RFC 4514: {}", n.oneline(), n.rfc4514()))
    };
    writeln!(out, "Subject:     {}", or_unknown(name(&c.subject)))?;
    writeln!(out, "Issuer:      {}", or_unknown(name(&c.issuer)))?;
    let t = |t: Option<OffsetDateTime>| t.map(|t| sftunnel::rfc3339(&t));
    writeln!(out, "Not Before:  {}", or_unknown(t(c.not_before)))?;
    writeln!(out, "Not After:   {}", or_unknown(t(c.not_after)))?;
    writeln!(out, "Key:         {}", or_unknown(c.key.clone()))?;
    writeln!(out, "Signature:   {}", or_unknown(c.sig_alg.clone()))?;
    if c.extensions.is_empty() {
        writeln!(out, "Extensions:  none")?;
    } else {
        writeln!(out, "Extensions:")?;
        for e in &c.extensions {
            writeln!(
                out,
                "  {}{}{}",
                e.name.map(str::to_string).unwrap_or_else(|| e.oid.clone()),
                if e.critical { " (critical)" } else { "" },
                e.value
                    .as_ref()
                    // Extension text is the certificate's (a SAN's dNSName, an OID's
                    // string): escaped like every other string a file chose.
                    .map(|v| format!(": {}", sftunnel::escape(v)))
                    .unwrap_or_default()
            )?;
        }
    }
    writeln!(
        out,
        "Self-signed: {}",
        if c.self_signed { "yes" } else { "no" }
    )?;
    writeln!(out, "SHA-256:     {}", c.sha256)?;
    if let Some(e) = &c.parse_error {
        writeln!(out, "Problem:     {e}")?;
    }
    Ok(())
}

/// `15 (0xf)` for serials that fit in 128 bits, the hex otherwise.
fn serial_text(hex: &str) -> String {
    let (neg, digits) = match hex.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", hex),
    };
    match u128::from_str_radix(digits, 16) {
        Ok(n) => format!("{neg}{n} ({neg}0x{digits})"),
        Err(_) => format!("{neg}0x{digits}"),
    }
}
