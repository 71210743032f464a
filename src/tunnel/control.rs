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
//! <- {"ok":false,"error":"peer ... is not connected"}
//! -> {"op":"reload","ca":"<path>","cert":"<path>","key":"<path>"}
//! <- {"ok":true}                                          (new tunnels use these files)
//! -> {"op":"restart","ca":"<path>","cert":"<path>","key":"<path>"}
//! <- {"ok":true}              (reload, then close every tunnel: devices reconnect to the new files)
//! ```
//!
//! A connection may send several requests. The socket is only as private as its directory:
//! it lives under the root the server was given, like the appliance's own sockets. Even so, a
//! client that goes silent is dropped after [`IDLE_TIMEOUT`] and a request line is at most
//! [`MAX_REQUEST`] bytes, so a stuck script cannot pin a task or grow a buffer for ever.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

use super::TunnelError;
use super::material::{Identity, TlsFiles};
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
pub struct WireFile {
    pub name: String,
    pub mode: u32,
    pub data_hex: String,
}

/// A request on the control socket.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Request {
    Status,
    Push {
        peer: String,
        files: Vec<WireFile>,
    },
    /// Load new certificates for the tunnels accepted from now on (after `pki renew`).
    Reload {
        ca: PathBuf,
        cert: PathBuf,
        key: PathBuf,
    },
    /// Reload, then close every open tunnel, as restarting sftunnel does.
    Restart {
        ca: PathBuf,
        cert: PathBuf,
        key: PathBuf,
    },
}

/// The answer to one request.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<PeerStatus>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<PushAck>,
}

fn control_err(path: &Path, reason: impl std::fmt::Display) -> TunnelError {
    TunnelError::Control {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Binds the socket at `path` and answers requests for `server` until it shuts down.
/// A socket file left by a dead server is replaced; one with a live server is an error.
pub(crate) async fn listen(
    path: &Path,
    server: ServerHandle,
) -> Result<JoinHandle<()>, TunnelError> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(control_err(path, "another server is already listening"));
        }
        std::fs::remove_file(path).map_err(|e| control_err(path, e))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| control_err(path, e))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| control_err(path, e))?;
    let mut stop = server.shutdown_signal();
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                r = listener.accept() => if let Ok((s, _)) = r {
                    tokio::spawn(serve_client(s, server.clone()));
                },
                _ = super::stopped(&mut stop) => break,
            }
        }
    }))
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
            Response {
                error: Some(format!("request longer than {MAX_REQUEST} bytes")),
                ..Response::default()
            }
        } else {
            match serde_json::from_slice::<Request>(&line) {
                Err(e) => Response {
                    error: Some(format!("bad request: {e}")),
                    ..Response::default()
                },
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

/// `reload` / `restart`: load `files` and hand them to the server.
fn new_files(server: &ServerHandle, files: TlsFiles, restart: bool) -> Response {
    let res = Identity::load(&files).and_then(|id| {
        if restart {
            server.restart(&id)
        } else {
            server.reload(&id)
        }
    });
    match res {
        Ok(()) => Response {
            ok: true,
            ..Response::default()
        },
        Err(e) => Response {
            error: Some(e.to_string()),
            ..Response::default()
        },
    }
}

async fn answer(req: Request, server: &ServerHandle) -> Response {
    match req {
        Request::Status => Response {
            ok: true,
            server: Some(server.info()),
            peers: Some(server.peers_seen()),
            ..Response::default()
        },
        Request::Reload { ca, cert, key } => new_files(server, TlsFiles { ca, cert, key }, false),
        Request::Restart { ca, cert, key } => new_files(server, TlsFiles { ca, cert, key }, true),
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
            let res = match files {
                Ok(files) => server.push(&peer, files).await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            match res {
                Ok(ack) => Response {
                    ok: true,
                    ack: Some(ack),
                    ..Response::default()
                },
                Err(e) => Response {
                    error: Some(e),
                    ..Response::default()
                },
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
    pub async fn connect(path: &Path) -> Result<Self, TunnelError> {
        let s = UnixStream::connect(path)
            .await
            .map_err(|e| control_err(path, e))?;
        let (r, w) = s.into_split();
        Ok(Self {
            path: path.to_owned(),
            lines: BufReader::new(r).lines(),
            w,
        })
    }

    async fn call(&mut self, req: &Request) -> Result<Response, TunnelError> {
        let mut line = serde_json::to_string(req).map_err(|e| control_err(&self.path, e))?;
        line.push('\n');
        self.w
            .write_all(line.as_bytes())
            .await
            .map_err(|e| control_err(&self.path, e))?;
        let answer = self
            .lines
            .next_line()
            .await
            .map_err(|e| control_err(&self.path, e))?
            .ok_or_else(|| control_err(&self.path, "server closed the socket"))?;
        let resp: Response =
            serde_json::from_str(&answer).map_err(|e| control_err(&self.path, e))?;
        match resp.error {
            Some(e) if !resp.ok => Err(control_err(&self.path, e)),
            _ => Ok(resp),
        }
    }

    /// The server's facts and its connected peers.
    pub async fn status(&mut self) -> Result<(ServerInfo, Vec<PeerStatus>), TunnelError> {
        let r = self.call(&Request::Status).await?;
        let info = r
            .server
            .ok_or_else(|| control_err(&self.path, "status answer without server"))?;
        Ok((info, r.peers.unwrap_or_default()))
    }

    /// Makes the server load `files` for the tunnels it accepts from now on.
    pub async fn reload(&mut self, files: &TlsFiles) -> Result<(), TunnelError> {
        self.call(&Request::Reload {
            ca: files.ca.clone(),
            cert: files.cert.clone(),
            key: files.key.clone(),
        })
        .await
        .map(|_| ())
    }

    /// [`Self::reload`], then the server closes every open tunnel (devices reconnect and meet
    /// the new certificates), as restarting sftunnel after a renewal does.
    pub async fn restart(&mut self, files: &TlsFiles) -> Result<(), TunnelError> {
        self.call(&Request::Restart {
            ca: files.ca.clone(),
            cert: files.cert.clone(),
            key: files.key.clone(),
        })
        .await
        .map(|_| ())
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
