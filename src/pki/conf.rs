//! The two text files that say who is who: `etc/sf/ims.conf` (an appliance's own identity)
//! and `etc/sf/sftunnel.conf` (the `proxyssl` block naming the tunnel's cert, key and CA, and
//! one `peer` block per peer).
//!
//! Rendering and parsing only: no file access. `ims.conf` here is "ims.conf-like": shell-style
//! `KEY=value` lines the appliance's scripts would source; `sftunnel.conf` follows the
//! appliance's brace-and-semicolon syntax.

use std::net::IpAddr;
use std::path::Path;

use super::layout::Identity;
use super::{PkiError, Role, Uuid};

/// The TLS version sftunnel is pinned to before 7.6 (`proxy_tls_version`'s default).
pub const TLS_VERSION: &str = "TLSv1.2";

/// The TLS version a tunnel runs: `proxy_tls_version` in `sftunnel.conf`. TLS 1.2 before
/// FMC/FTD 7.6, TLS 1.3 from 7.6 on (where the FMC asks for the device's certificate after the
/// handshake; see `tunnel::config` for how the emulator differs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TlsVersion {
    /// `TLSv1.2`, the default.
    #[default]
    Tls12,
    /// `TLSv1.3`.
    Tls13,
}

impl TlsVersion {
    /// How `sftunnel.conf` and OpenSSL name it: `TLSv1.2`, `TLSv1.3`.
    pub fn name(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        }
    }

    /// The command line's short form: `1.2`, `1.3`.
    pub fn short(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "1.2",
            TlsVersion::Tls13 => "1.3",
        }
    }
}

impl std::fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for TlsVersion {
    type Err = String;

    /// `1.2`, `TLSv1.2` (any case), `1.3`, `TLSv1.3`.
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let t = t
            .strip_prefix("TLSv")
            .or_else(|| t.strip_prefix("tlsv"))
            .or_else(|| t.strip_prefix("TLSV"))
            .unwrap_or(t);
        match t {
            "1.2" => Ok(TlsVersion::Tls12),
            "1.3" => Ok(TlsVersion::Tls13),
            _ => Err(format!(
                "unsupported TLS version {s:?}: sftunnel runs TLSv1.2 or TLSv1.3"
            )),
        }
    }
}
/// sftunnel's TCP port.
pub const SFTUNNEL_PORT: u16 = 8305;

/// What an `ims.conf` says about its appliance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImsConf {
    /// The appliance itself.
    pub identity: Identity,
    /// For a managed device or HA secondary: the FMC that manages it.
    pub manager_uuid: Option<Uuid>,
}

/// `ims.conf` text.
pub fn render_ims_conf(c: &ImsConf) -> String {
    let mut s = String::from(
        "# Appliance identity, written by sfdiag pki init (lab copy; the addresses are labels).\n",
    );
    s += &format!("APPLIANCE_NAME={}\n", c.identity.name);
    s += &format!("APPLIANCE_UUID={}\n", c.identity.uuid);
    s += &format!("APPLIANCE_IP={}\n", c.identity.ip);
    s += &format!("APPLIANCE_ROLE={}\n", c.identity.role);
    if let Some(m) = c.manager_uuid {
        s += &format!("MANAGER_UUID={m}\n");
    }
    s
}

/// Parses `ims.conf` text; `path` names the file in errors.
pub fn parse_ims_conf(text: &str, path: &Path) -> Result<ImsConf, PkiError> {
    let bad = |reason: String| PkiError::Parse {
        path: path.to_path_buf(),
        reason,
    };
    let (mut name, mut uuid, mut ip, mut role, mut manager) = (None, None, None, None, None);
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(bad(format!("line {}: expected KEY=value", n + 1)));
        };
        let v = v.trim().trim_matches('"');
        match k.trim() {
            "APPLIANCE_NAME" => name = Some(v.to_string()),
            "APPLIANCE_UUID" => uuid = Some(v.parse::<Uuid>().map_err(|e| bad(e.to_string()))?),
            "APPLIANCE_IP" => {
                ip = Some(
                    v.parse::<IpAddr>()
                        .map_err(|_| bad(format!("invalid APPLIANCE_IP {v:?}")))?,
                )
            }
            "APPLIANCE_ROLE" => role = Some(v.parse::<Role>().map_err(bad)?),
            "MANAGER_UUID" => manager = Some(v.parse::<Uuid>().map_err(|e| bad(e.to_string()))?),
            _ => {} // the appliance's file has many more keys; they are not ours to judge
        }
    }
    let missing = |k: &str| bad(format!("{k} is missing"));
    Ok(ImsConf {
        identity: Identity {
            name: name.ok_or_else(|| missing("APPLIANCE_NAME"))?,
            uuid: uuid.ok_or_else(|| missing("APPLIANCE_UUID"))?,
            ip: ip.ok_or_else(|| missing("APPLIANCE_IP"))?,
            role: role.ok_or_else(|| missing("APPLIANCE_ROLE"))?,
        },
        manager_uuid: manager,
    })
}

/// The `proxyssl` block: paths as the appliance sees them (absolute from its own root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxySsl {
    /// `proxy_cert`: this appliance's sftunnel certificate.
    pub cert: String,
    /// `proxy_key`: its key.
    pub key: String,
    /// `proxy_ca`: the InternalCA it trusts.
    pub ca: String,
    /// `proxy_tls_version`.
    pub tls_version: String,
}

impl ProxySsl {
    /// `proxy_tls_version` read as a version.
    pub fn version(&self) -> Result<TlsVersion, String> {
        self.tls_version.parse()
    }
}

/// One `peer` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerEntry {
    /// Who the peer is.
    pub identity: Identity,
    /// Its sftunnel port.
    pub port: u16,
}

/// A parsed `sftunnel.conf`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SftunnelConf {
    /// The `proxyssl` block.
    pub proxy: ProxySsl,
    /// The `peer` blocks, in file order.
    pub peers: Vec<PeerEntry>,
}

/// `sftunnel.conf` text.
pub fn render_sftunnel_conf(c: &SftunnelConf) -> String {
    let mut s = String::from(
        "# sftunnel configuration, written by sfdiag pki init (lab copy).\n\
         # Paths are as this appliance sees them, from its own root folder.\n",
    );
    s += "proxyssl {\n";
    s += &format!("    proxy_cert {};\n", c.proxy.cert);
    s += &format!("    proxy_key {};\n", c.proxy.key);
    s += &format!("    proxy_ca {};\n", c.proxy.ca);
    s += &format!("    proxy_tls_version {};\n", c.proxy.tls_version);
    s += "};\n";
    s += "peers {\n";
    for p in &c.peers {
        s += "    peer {\n";
        s += &format!("        uuid {};\n", p.identity.uuid);
        s += &format!("        name {};\n", p.identity.name);
        s += &format!("        ip {};\n", p.identity.ip);
        s += &format!("        role {};\n", p.identity.role);
        s += &format!("        port {};\n", p.port);
        s += "    };\n";
    }
    s += "};\n";
    s
}

/// Parses `sftunnel.conf` text; `path` names the file in errors.
pub fn parse_sftunnel_conf(text: &str, path: &Path) -> Result<SftunnelConf, PkiError> {
    let bad = |reason: String| PkiError::Parse {
        path: path.to_path_buf(),
        reason,
    };
    let nodes = parse_blocks(text).map_err(&bad)?;
    let proxy_block =
        find_block(&nodes, "proxyssl").ok_or_else(|| bad("no proxyssl block".into()))?;
    let arg = |block: &[Node], key: &str| -> Result<String, PkiError> {
        block
            .iter()
            .find(|n| n.name == key && n.block.is_none())
            .and_then(|n| n.args.first().cloned())
            .ok_or_else(|| bad(format!("{key} is missing")))
    };
    let proxy = ProxySsl {
        cert: arg(proxy_block, "proxy_cert")?,
        key: arg(proxy_block, "proxy_key")?,
        ca: arg(proxy_block, "proxy_ca")?,
        tls_version: arg(proxy_block, "proxy_tls_version")
            .unwrap_or_else(|_| TLS_VERSION.to_string()),
    };
    let mut peers = Vec::new();
    let peer_nodes = find_block(&nodes, "peers").unwrap_or(&[]);
    for p in peer_nodes.iter().filter(|n| n.name == "peer") {
        let b = p.block.as_deref().unwrap_or(&[]);
        let uuid = arg(b, "uuid")?;
        let ip = arg(b, "ip")?;
        let role = arg(b, "role")?;
        let port = arg(b, "port").unwrap_or_else(|_| SFTUNNEL_PORT.to_string());
        peers.push(PeerEntry {
            identity: Identity {
                uuid: uuid.parse().map_err(|e: PkiError| bad(e.to_string()))?,
                name: arg(b, "name").unwrap_or_else(|_| uuid.clone()),
                ip: ip
                    .parse()
                    .map_err(|_| bad(format!("invalid peer ip {ip:?}")))?,
                role: role.parse().map_err(bad)?,
            },
            port: port
                .parse()
                .map_err(|_| bad(format!("invalid peer port {port:?}")))?,
        });
    }
    Ok(SftunnelConf { proxy, peers })
}

/// A directive: `name args... ;` or `name args... { ... }`.
#[derive(Debug)]
struct Node {
    name: String,
    args: Vec<String>,
    block: Option<Vec<Node>>,
}

fn find_block<'a>(nodes: &'a [Node], name: &str) -> Option<&'a [Node]> {
    nodes
        .iter()
        .find(|n| n.name == name)
        .and_then(|n| n.block.as_deref())
}

fn tokenize(text: &str) -> Result<Vec<String>, String> {
    let mut toks = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            c if c.is_whitespace() => {
                chars.next();
            }
            '{' | '}' | ';' => {
                toks.push(c.to_string());
                chars.next();
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(c) => s.push(c),
                        None => return Err("unterminated quoted string".into()),
                    }
                }
                toks.push(s);
            }
            _ => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '{' | '}' | ';' | '#') {
                        break;
                    }
                    s.push(c);
                    chars.next();
                }
                toks.push(s);
            }
        }
    }
    Ok(toks)
}

fn parse_blocks(text: &str) -> Result<Vec<Node>, String> {
    let toks = tokenize(text)?;
    let mut i = 0;
    let nodes = parse_seq(&toks, &mut i, 0)?;
    if i != toks.len() {
        return Err("unexpected '}'".into());
    }
    Ok(nodes)
}

fn parse_seq(toks: &[String], i: &mut usize, depth: usize) -> Result<Vec<Node>, String> {
    // Nesting in the real file is two levels; a bound keeps hostile input from recursing deep.
    if depth > 16 {
        return Err("blocks nested too deeply".into());
    }
    let mut nodes = Vec::new();
    while *i < toks.len() {
        match toks[*i].as_str() {
            "}" => return Ok(nodes),
            ";" => {
                *i += 1;
                continue;
            }
            "{" => return Err("a block without a name".into()),
            _ => {}
        }
        let name = toks[*i].clone();
        *i += 1;
        let mut args = Vec::new();
        loop {
            match toks.get(*i).map(String::as_str) {
                None => return Err(format!("{name}: missing ';'")),
                Some(";") => {
                    *i += 1;
                    nodes.push(Node {
                        name,
                        args,
                        block: None,
                    });
                    break;
                }
                Some("{") => {
                    *i += 1;
                    let inner = parse_seq(toks, i, depth + 1)?;
                    if toks.get(*i).map(String::as_str) != Some("}") {
                        return Err(format!("{name}: missing '}}'"));
                    }
                    *i += 1;
                    nodes.push(Node {
                        name,
                        args,
                        block: Some(inner),
                    });
                    break;
                }
                Some("}") => return Err(format!("{name}: missing ';'")),
                Some(a) => {
                    args.push(a.to_string());
                    *i += 1;
                }
            }
        }
    }
    if depth > 0 {
        return Err("missing '}'".into());
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(name: &str, role: Role) -> Identity {
        Identity {
            name: name.into(),
            uuid: Uuid::random().unwrap(),
            ip: "127.1.0.1".parse().unwrap(),
            role,
        }
    }

    #[test]
    fn ims_conf_round_trips() {
        let c = ImsConf {
            identity: ident("ftd1", Role::Device),
            manager_uuid: Some(Uuid::random().unwrap()),
        };
        let back = parse_ims_conf(&render_ims_conf(&c), Path::new("ims.conf")).unwrap();
        assert_eq!(back, c);
        let e = parse_ims_conf("APPLIANCE_NAME=x\n", Path::new("e/ims.conf")).unwrap_err();
        assert!(e.to_string().contains("e/ims.conf"), "{e}");
    }

    #[test]
    fn sftunnel_conf_round_trips() {
        let c = SftunnelConf {
            proxy: ProxySsl {
                cert: "/etc/sf/keys/sftunnel-cert.pem".into(),
                key: "/etc/sf/keys/sftunnel-key.pem".into(),
                ca: "/etc/sf/ca_root/cacert.pem".into(),
                tls_version: TLS_VERSION.into(),
            },
            peers: vec![
                PeerEntry {
                    identity: ident("ftd1", Role::Device),
                    port: 8305,
                },
                PeerEntry {
                    identity: ident("fmc2", Role::HaSecondary),
                    port: 8305,
                },
            ],
        };
        let text = render_sftunnel_conf(&c);
        assert!(text.contains("proxyssl {\n    proxy_cert /etc/sf/keys/sftunnel-cert.pem;"));
        assert_eq!(parse_sftunnel_conf(&text, Path::new("s")).unwrap(), c);
    }

    #[test]
    fn proxy_tls_version_reads_both_spellings_and_refuses_others() {
        for (t, v) in [
            ("TLSv1.2", TlsVersion::Tls12),
            ("1.2", TlsVersion::Tls12),
            ("tlsv1.3", TlsVersion::Tls13),
            ("TLSv1.3", TlsVersion::Tls13),
        ] {
            assert_eq!(t.parse::<TlsVersion>(), Ok(v), "{t}");
        }
        for v in [TlsVersion::Tls12, TlsVersion::Tls13] {
            assert_eq!(v.name().parse::<TlsVersion>(), Ok(v));
            assert_eq!(v.short().parse::<TlsVersion>(), Ok(v));
        }
        let e = "TLSv1.1".parse::<TlsVersion>().unwrap_err();
        assert!(e.contains("\"TLSv1.1\""), "{e}");
    }

    #[test]
    fn broken_sftunnel_conf_is_an_error_not_a_panic() {
        for t in [
            "proxyssl {",
            "proxyssl { proxy_cert a; }",
            "}",
            "{ }",
            "proxyssl { proxy_cert \"a",
            &"a {".repeat(100),
            "peers { peer { uuid x; } }",
        ] {
            assert!(parse_sftunnel_conf(t, Path::new("s")).is_err(), "{t}");
        }
    }
}
