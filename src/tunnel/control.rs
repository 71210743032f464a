//! The local control socket of a running `serve`: a unix socket under the PKI root
//! (`<root>/fmc/var/run/sftunnel.sock`) through which `sfdiag status` asks which peers are
//! connected and `pki renew` pushes files to them.
//!
//! Owns the socket's protocol, one JSON object per line each way:
//!
//! ```text
//! -> {"op":"status"}
//! <- {"ok":true,"server":{...},"peers":[{"name","uuid","ip","connected","since",...}]}
//! -> {"op":"push","peer":"<device uuid>","files":[{"name":"cacert.pem","mode":420,"data_hex":"2d2d..."}]}
//! <- {"ok":true,"ack":{"ok":true,"message":""}}          (the device's own answer)
//! <- {"ok":false,"kind":"not_connected","error":"peer ... is not connected"}
//! -> {"op":"reload"}
//! <- {"ok":true}          (the server re-read its own files; new tunnels use them)
//! -> {"op":"restart"}
//! <- {"ok":true}          (reload, then close every tunnel: devices reconnect to the new files)
//! ```
//!
//! A refusal is `{"ok":false,"kind":KIND,"error":TEXT}`, KIND one of [`ErrorKind`]'s
//! (`bad_request`, `too_long`, `forbidden`, `not_connected`, `push_failed`, `reload_failed`),
//! so a client acts on the kind and prints the text. `reload` and `restart` take no paths:
//! the server re-reads the files it was started with (`pki renew` replaced them in place), so
//! no client can make it trust a CA of its choosing; a request that names files is refused.
//!
//! Who may talk to it: the socket is created 0600 in a folder the server creates 0700 (bound
//! in a private staging folder, then linked into place, so it is never reachable with looser
//! modes whatever the umask), and every connection's peer credentials (`SO_PEERCRED`) must be
//! the server's own user or root; anyone else gets one `forbidden` line and is closed. An
//! existing folder must be the server's user's or root's, and not writable by others (unless
//! sticky, like `/tmp`). At the path, only a stale socket (a socket nobody answers on) is ever
//! replaced: a live one is another server's, and anything else (a regular file, a link) is
//! refused, never deleted. A client that goes silent is dropped after [`IDLE_TIMEOUT`] and a
//! request line is at most [`MAX_REQUEST`] bytes, so a stuck script cannot pin a task or grow
//! a buffer for ever.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

use super::TunnelError;
use super::proto::{PushAck, PushFile};
use super::server::ServerHandle;
use super::status::{PeerStatus, ServerInfo};

/// How long a control client may stay silent between requests.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest request line: a push of files up to the tunnel's frame limit, hex-encoded
/// (twice the bytes), with room for the JSON around them. A bigger push gets the frame-limit
/// error from the server rather than this one.
pub const MAX_REQUEST: usize = 4 * super::proto::MAX_FRAME + 64 * 1024;

/// A file in a push request, hex-encoded so JSON carries any bytes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct WireFile {
    pub name: String,
    pub mode: u32,
    pub data_hex: String,
}

/// A request on the control socket.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub(super) enum Request {
    Status,
    Push {
        peer: String,
        files: Vec<WireFile>,
    },
    /// Re-read the server's own files for the tunnels accepted from now on (after `pki renew`).
    Reload,
    /// Reload, then close every open tunnel, as restarting sftunnel does.
    Restart,
}

/// Why the server refused a request: what a client acts on (the text is for people).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// Not a request this server understands (bad JSON, unknown op, paths for `reload`).
    BadRequest,
    /// A request line over [`MAX_REQUEST`]; the connection is closed after this answer.
    TooLong,
    /// The client is neither the server's user nor root.
    Forbidden,
    /// The push's peer has no tunnel up.
    NotConnected,
    /// The push reached no acknowledgement (tunnel lost, deadline, over the frame limit).
    PushFailed,
    /// The server could not load its files again; it keeps the ones it had.
    ReloadFailed,
    /// A kind this client does not know (a newer server).
    #[serde(other)]
    Other,
}

/// The answer to one request.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request was carried out; when not, `kind` and `error` say why.
    pub ok: bool,
    /// Why it was refused (`None` when `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ErrorKind>,
    /// The refusal in words (`None` when `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The server's facts, in the answer to `status` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerInfo>,
    /// The server's rows ([`ServerHandle::peers_seen`]: connected peers, those that left,
    /// devices dialed and never reached), in the answer to `status` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<PeerStatus>>,
    /// The device's acknowledgement, in the answer to a `push` that got one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<PushAck>,
}

impl Response {
    fn refused(kind: ErrorKind, error: impl std::fmt::Display) -> Self {
        Response {
            kind: Some(kind),
            error: Some(error.to_string()),
            ..Response::default()
        }
    }

    fn ok() -> Self {
        Response {
            ok: true,
            ..Response::default()
        }
    }
}

fn control_err(path: &Path, reason: impl std::fmt::Display) -> TunnelError {
    TunnelError::Control {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Binds the socket at `path` (see the module doc for the modes and what may be replaced)
/// and answers requests for `server` until it shuts down.
pub(crate) async fn listen(
    path: &Path,
    server: ServerHandle,
) -> Result<JoinHandle<()>, TunnelError> {
    clear_stale(path).await?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    private_folder(dir).map_err(|e| control_err(path, e))?;
    let listener = bind_private(dir, path).map_err(|e| control_err(path, e))?;
    // The socket's owner is this process's user: the one allowed beside root. A folder of
    // another user's could have the socket swapped under us.
    let owner = std::fs::symlink_metadata(path)
        .map_err(|e| control_err(path, e))?
        .uid();
    let dir_owner = std::fs::metadata(dir)
        .map_err(|e| control_err(path, e))?
        .uid();
    if dir_owner != owner && dir_owner != 0 {
        let _ = std::fs::remove_file(path);
        return Err(control_err(
            path,
            format!(
                "folder {} belongs to uid {dir_owner}, not to this server's user (uid {owner}) \
                 or root",
                dir.display()
            ),
        ));
    }
    let mut stop = server.shutdown_signal();
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                r = listener.accept() => if let Ok((s, _)) = r {
                    match s.peer_cred().map(|c| c.uid()) {
                        Ok(uid) if uid == owner || uid == 0 => {
                            tokio::spawn(serve_client(s, server.clone()));
                        }
                        other => {
                            tokio::spawn(refuse(s, owner, other.ok(), server.clone()));
                        }
                    }
                },
                _ = super::stopped(&mut stop) => break,
            }
        }
    }))
}

/// What is at `path` before binding: nothing, a stale socket (removed), or a refusal.
async fn clear_stale(path: &Path) -> Result<(), TunnelError> {
    let meta = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(control_err(path, e)),
        Ok(m) => m,
    };
    if !meta.file_type().is_socket() {
        return Err(control_err(
            path,
            "exists and is not a socket; not replacing it (remove it or pick another --control)",
        ));
    }
    if tokio::time::timeout(Duration::from_secs(2), UnixStream::connect(path))
        .await
        .is_ok_and(|r| r.is_ok())
    {
        return Err(control_err(path, "another server is already listening"));
    }
    std::fs::remove_file(path).map_err(|e| control_err(path, e))
}

/// Creates `dir` 0700 if it is missing (and any missing parents, 0700 too, whatever the
/// umask); an existing folder must not let others replace what is in it.
fn private_folder(dir: &Path) -> std::io::Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) => {
            let mode = m.permissions().mode();
            // Writable by group or others, and not sticky: anyone could swap the socket. As in
            // the PKI guard (`pki::guard`), the user's own folder writable only by the user's
            // own group passes: a umask of 002 with user private groups makes every folder so.
            let own_group = m.uid() == rustix::process::geteuid().as_raw()
                && m.gid() == rustix::process::getegid().as_raw();
            let others = if own_group { 0o002 } else { 0o022 };
            if mode & others != 0 && mode & 0o1000 == 0 {
                return Err(std::io::Error::other(format!(
                    "folder {} is writable by others (mode {:o}): anyone could replace the \
                     socket; chmod go-w it",
                    dir.display(),
                    mode & 0o7777
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
            // The umask may have taken bits from 0700 (never added any): set it exactly.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        }
        Err(e) => Err(e),
    }
}

/// Binds the socket in a fresh 0700 folder beside `path`, makes it 0600, then links it into
/// place (failing, not replacing, if something appeared there meanwhile).
fn bind_private(dir: &Path, path: &Path) -> std::io::Result<UnixListener> {
    let stage = tempfile::Builder::new().prefix(".ctl").tempdir_in(dir)?;
    std::fs::set_permissions(stage.path(), std::fs::Permissions::from_mode(0o700))?;
    let staged = stage.path().join("s");
    let listener = UnixListener::bind(&staged)?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
    std::fs::hard_link(&staged, path)?;
    Ok(listener)
}

/// One `forbidden` line for a client that is not the server's user or root, then close.
async fn refuse(mut s: UnixStream, owner: u32, uid: Option<u32>, server: ServerHandle) {
    let who = uid.map_or("a client whose uid is unknown".to_owned(), |u| {
        format!("uid {u}")
    });
    server.main_log().warn(&format!(
        "Control socket: refused {who} (only uid {owner} and root may use it)"
    ));
    let resp = Response::refused(
        ErrorKind::Forbidden,
        format!("{who} may not use this socket: it belongs to uid {owner}"),
    );
    let mut out = serde_json::to_string(&resp).unwrap_or_default();
    out.push('\n');
    // Then take what the client sends for a moment before closing: closing with its request
    // unread would reset the connection, and it would see a broken pipe instead of why.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        s.write_all(out.as_bytes()).await?;
        s.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut total = 0;
        while total < 64 * 1024 {
            match s.read(&mut sink).await? {
                0 => break,
                n => total += n,
            }
        }
        Ok::<(), std::io::Error>(())
    })
    .await;
}

async fn serve_client(s: UnixStream, server: ServerHandle) {
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut limited = (&mut r).take(MAX_REQUEST as u64 + 1);
        let read = limited.read_until(b'\n', &mut line);
        // Silent too long, closed, or broken: nothing to answer.
        let Ok(Ok(n)) = tokio::time::timeout(IDLE_TIMEOUT, read).await else {
            break;
        };
        if n == 0 {
            break;
        }
        let too_long = line.len() > MAX_REQUEST;
        let resp = if too_long {
            Response::refused(
                ErrorKind::TooLong,
                format!("request longer than {MAX_REQUEST} bytes"),
            )
        } else {
            match parse_request(&line) {
                Err(e) => Response::refused(ErrorKind::BadRequest, e),
                Ok(req) => answer(req, &server).await,
            }
        };
        let mut out = serde_json::to_string(&resp).unwrap_or_default();
        out.push('\n');
        // The rest of an over-long line would read as garbage requests: say why, then close.
        if w.write_all(out.as_bytes()).await.is_err() || too_long {
            break;
        }
    }
}

/// One request line. `reload`/`restart` naming files (what an older client sent) is refused
/// rather than obeyed or silently ignored.
fn parse_request(line: &[u8]) -> Result<Request, String> {
    let v: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| format!("bad request: {e}"))?;
    let op = v.get("op").and_then(|o| o.as_str());
    if matches!(op, Some("reload" | "restart")) && v.as_object().is_some_and(|o| o.len() > 1) {
        return Err(format!(
            "{} takes no paths: the server re-reads the files it was started with",
            op.unwrap_or_default()
        ));
    }
    serde_json::from_value(v).map_err(|e| format!("bad request: {e}"))
}

async fn answer(req: Request, server: &ServerHandle) -> Response {
    match req {
        Request::Status => Response {
            ok: true,
            server: Some(server.info()),
            peers: Some(server.peers_seen()),
            ..Response::default()
        },
        Request::Reload => match server.reload_files() {
            Ok(()) => Response::ok(),
            Err(e) => Response::refused(ErrorKind::ReloadFailed, e),
        },
        Request::Restart => match server.restart_files() {
            Ok(()) => Response::ok(),
            Err(e) => Response::refused(ErrorKind::ReloadFailed, e),
        },
        Request::Push { peer, files } => {
            let files: Result<Vec<PushFile>, String> = files
                .into_iter()
                .map(|f| {
                    Ok(PushFile {
                        data: hex::decode(&f.data_hex)
                            .map_err(|e| format!("{}: bad hex: {e}", f.name))?,
                        name: f.name,
                        mode: f.mode,
                    })
                })
                .collect();
            let files = match files {
                Ok(f) => f,
                Err(e) => return Response::refused(ErrorKind::BadRequest, e),
            };
            match server.push(&peer, files).await {
                Ok(ack) => Response {
                    ok: true,
                    ack: Some(ack),
                    ..Response::default()
                },
                Err(e @ TunnelError::NotConnected { .. }) => {
                    Response::refused(ErrorKind::NotConnected, e)
                }
                Err(e) => Response::refused(ErrorKind::PushFailed, e),
            }
        }
    }
}

/// A client of a running server's control socket.
#[derive(Debug)]
pub struct ControlClient {
    path: PathBuf,
    lines: tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    w: tokio::net::unix::OwnedWriteHalf,
}

impl ControlClient {
    /// Connects to the socket at `path` (fails if no server is running there).
    /// A socket this user may not open is [`TunnelError::Refused`] (`forbidden`), not a
    /// server that is down.
    pub async fn connect(path: &Path) -> Result<Self, TunnelError> {
        let s = UnixStream::connect(path).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                TunnelError::Refused {
                    path: path.to_owned(),
                    kind: ErrorKind::Forbidden,
                    reason: format!("{e}: the socket and its folder are its owner's only"),
                }
            } else {
                control_err(path, e)
            }
        })?;
        let (r, w) = s.into_split();
        Ok(Self {
            path: path.to_owned(),
            lines: BufReader::new(r).lines(),
            w,
        })
    }

    /// One request; a refusal becomes the error its kind says ([`TunnelError::NotConnected`]
    /// for a push to a peer without a tunnel, else [`TunnelError::Refused`]).
    async fn call(&mut self, req: &Request) -> Result<Response, TunnelError> {
        let v = serde_json::to_value(req).map_err(|e| control_err(&self.path, e))?;
        let resp = self.request(&v).await?;
        if resp.ok {
            return Ok(resp);
        }
        let reason = resp
            .error
            .unwrap_or_else(|| "refused without a reason".into());
        Err(match (resp.kind, req) {
            (Some(ErrorKind::NotConnected), Request::Push { peer, .. }) => {
                TunnelError::NotConnected { uuid: peer.clone() }
            }
            (kind, _) => TunnelError::Refused {
                path: self.path.clone(),
                kind: kind.unwrap_or(ErrorKind::Other),
                reason,
            },
        })
    }

    /// The server's facts and its connected peers.
    pub async fn status(&mut self) -> Result<(ServerInfo, Vec<PeerStatus>), TunnelError> {
        let r = self.call(&Request::Status).await?;
        let info = r
            .server
            .ok_or_else(|| control_err(&self.path, "status answer without server"))?;
        Ok((info, r.peers.unwrap_or_default()))
    }

    /// Makes the server re-read its own files for the tunnels it accepts from now on.
    pub async fn reload(&mut self) -> Result<(), TunnelError> {
        self.call(&Request::Reload).await.map(|_| ())
    }

    /// [`Self::reload`], then the server closes every open tunnel (devices reconnect and meet
    /// the new certificates), as restarting sftunnel after a renewal does.
    pub async fn restart(&mut self) -> Result<(), TunnelError> {
        self.call(&Request::Restart).await.map(|_| ())
    }

    /// Sends one request as it is and returns the server's answer, refusals included (for
    /// tools and tests that speak the protocol directly).
    pub async fn request(&mut self, req: &serde_json::Value) -> Result<Response, TunnelError> {
        let mut line = req.to_string();
        line.push('\n');
        let sent = self.w.write_all(line.as_bytes()).await;
        if let Err(e) = sent {
            // A server that refused us may have said why before closing: prefer its words.
            return match self.lines.next_line().await {
                Ok(Some(answer)) => {
                    serde_json::from_str(&answer).map_err(|_| control_err(&self.path, e))
                }
                _ => Err(control_err(&self.path, e)),
            };
        }
        let answer = self
            .lines
            .next_line()
            .await
            .map_err(|e| control_err(&self.path, e))?
            .ok_or_else(|| control_err(&self.path, "server closed the socket"))?;
        serde_json::from_str(&answer).map_err(|e| control_err(&self.path, e))
    }

    /// Pushes `files` to the connected device `peer_uuid` and returns the device's answer.
    pub async fn push(
        &mut self,
        peer_uuid: &str,
        files: &[PushFile],
    ) -> Result<PushAck, TunnelError> {
        let files = files
            .iter()
            .map(|f| WireFile {
                name: f.name.clone(),
                mode: f.mode,
                data_hex: hex::encode(&f.data),
            })
            .collect();
        let r = self
            .call(&Request::Push {
                peer: peer_uuid.to_owned(),
                files,
            })
            .await?;
        r.ack
            .ok_or_else(|| control_err(&self.path, "push answer without ack"))
    }
}

/// The control socket of an FMC whose appliance folder is `fmc_dir` (`<root>/fmc`):
/// `var/run/sftunnel.sock`, where the appliance keeps its own sockets.
pub fn socket_path(fmc_dir: &Path) -> PathBuf {
    fmc_dir.join("var/run/sftunnel.sock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_and_restart_take_no_paths() {
        assert!(matches!(
            parse_request(br#"{"op":"reload"}"#),
            Ok(Request::Reload)
        ));
        assert!(matches!(
            parse_request(br#"{"op":"restart"}"#),
            Ok(Request::Restart)
        ));
        // What a client could once send: a CA of its choosing. Refused, not ignored.
        let e = parse_request(
            br#"{"op":"reload","ca":"/tmp/evil/ca.pem","cert":"/tmp/evil/c.pem","key":"/tmp/evil/k.pem"}"#,
        )
        .unwrap_err();
        assert!(e.contains("reload takes no paths"), "{e}");
        assert!(parse_request(br#"{"op":"restart","ca":"x"}"#).is_err());
        assert!(parse_request(br#"{"op":"format_disk"}"#).is_err());
        assert!(parse_request(b"not json").is_err());
    }

    #[test]
    fn refusals_carry_a_kind_a_client_can_act_on() {
        let r = Response::refused(ErrorKind::NotConnected, "peer u is not connected");
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(
            line,
            r#"{"ok":false,"kind":"not_connected","error":"peer u is not connected"}"#
        );
        let back: Response = serde_json::from_str(&line).unwrap();
        assert_eq!(back.kind, Some(ErrorKind::NotConnected));
        // A kind from a newer server still parses.
        let newer: Response =
            serde_json::from_str(r#"{"ok":false,"kind":"quota","error":"x"}"#).unwrap();
        assert_eq!(newer.kind, Some(ErrorKind::Other));
    }
}
