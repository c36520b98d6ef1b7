//! The agent's side of the protocol: a small HTTP/1.1 client to the control plane over a unix
//! socket (`unix:PATH`, the embedded default) or loopback TCP (`http://…`).
//!
//! One connection per request: a long poll holds its connection for its whole wait anyway, and a
//! fresh connection after a control-plane restart needs no stale-pool handling. The token goes in
//! `Authorization: Bearer …`, the host's name in [`AGENT_HEADER`]; neither is ever put in an error.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

use crate::protocol::{Assignment, Register, Registered, Report};

/// The header that names the agent (its host name); the token is checked against that host's.
pub const AGENT_HEADER: &str = "x-cutover-agent";

/// Where the control plane is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlUrl {
    /// `unix:PATH`.
    Unix(PathBuf),
    /// `http://HOST:PORT`, an IP address (no name resolution: loopback is checked on the address).
    Http(SocketAddr),
}

impl fmt::Display for ControlUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlUrl::Unix(p) => write!(f, "unix:{}", p.display()),
            ControlUrl::Http(a) => write!(f, "http://{a}"),
        }
    }
}

impl ControlUrl {
    /// Parses `unix:PATH` or `http://IP:PORT`. Plain HTTP carries the token in clear, so a
    /// non-loopback address is refused unless `allow_remote_http`.
    pub fn parse(url: &str, allow_remote_http: bool) -> Result<ControlUrl, ClientError> {
        let bad = |expected: &str| ClientError::BadUrl {
            url: url.to_owned(),
            expected: expected.to_owned(),
        };
        if let Some(path) = url.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad("a socket path after `unix:`"));
            }
            return Ok(ControlUrl::Unix(PathBuf::from(path)));
        }
        if url.starts_with("https://") {
            return Err(bad(
                "`unix:PATH` or `http://IP:PORT`; https is not supported by this agent yet",
            ));
        }
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(bad("`unix:PATH` or `http://IP:PORT`"));
        };
        let authority = rest.trim_end_matches('/');
        let addr: SocketAddr = authority
            .parse()
            .map_err(|_| bad("`http://IP:PORT` with a numeric address and port"))?;
        if !allow_remote_http && !is_loopback(addr.ip()) {
            return Err(ClientError::RemoteHttp { addr });
        }
        Ok(ControlUrl::Http(addr))
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// What went wrong talking to the control plane.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("control plane URL {url:?} is not valid; expected {expected}")]
    BadUrl { url: String, expected: String },
    #[error(
        "refusing plain http to the non-loopback address {addr}: the token would travel in clear; hint: use https, a unix socket, or pass the explicit allow flag"
    )]
    RemoteHttp { addr: SocketAddr },
    #[error("cannot connect to the control plane at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{method} {path} at {url} failed: {what}")]
    Transport {
        url: String,
        method: &'static str,
        path: String,
        what: String,
    },
    #[error(
        "the control plane refused the agent's token for {path} (401); hint: check --token-file"
    )]
    Unauthorized { path: String },
    #[error("{path} answered {status}: {body}")]
    Status {
        path: String,
        status: u16,
        body: String,
    },
    #[error("{path} answered a body that is not the expected JSON: {source}")]
    Decode {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the artifact downloaded for sha256 {expected} has sha256 {actual}; it was discarded")]
    DigestMismatch { expected: String, actual: String },
    #[error("cannot write the artifact {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ClientError {
    /// Whether the control plane refused the token (retrying with the same token will not help).
    #[must_use]
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, ClientError::Unauthorized { .. })
    }
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Io for T {}

/// A client of one control plane, as one agent.
#[derive(Clone)]
pub struct Client {
    url: ControlUrl,
    name: String,
    token: String,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the token.
        f.debug_struct("Client")
            .field("url", &self.url)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Client {
    #[must_use]
    pub fn new(url: ControlUrl, name: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            url,
            name: name.into(),
            token: token.into(),
        }
    }

    #[must_use]
    pub fn url(&self) -> &ControlUrl {
        &self.url
    }

    async fn connect(&self) -> Result<Box<dyn Io>, ClientError> {
        let io: std::io::Result<Box<dyn Io>> = match &self.url {
            ControlUrl::Unix(p) => tokio::net::UnixStream::connect(p)
                .await
                .map(|s| Box::new(s) as Box<dyn Io>),
            ControlUrl::Http(a) => tokio::net::TcpStream::connect(a).await.map(|s| {
                let _ = s.set_nodelay(true);
                Box::new(s) as Box<dyn Io>
            }),
        };
        io.map_err(|source| ClientError::Connect {
            url: self.url.to_string(),
            source,
        })
    }

    /// Sends one request; returns the status and the response (body not read yet).
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let transport = |what: String| ClientError::Transport {
            url: self.url.to_string(),
            method: if method == Method::GET { "GET" } else { "POST" },
            path: path.to_owned(),
            what,
        };
        let io = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| transport(e.to_string()))?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let host = match &self.url {
            ControlUrl::Unix(_) => "localhost".to_owned(),
            ControlUrl::Http(a) => a.to_string(),
        };
        let mut req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(hyper::header::HOST, host)
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            )
            .header(AGENT_HEADER, &self.name);
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| transport(e.to_string()))?;
        let resp = sender.send_request(req).await.map_err(|e| {
            driver.abort();
            transport(e.to_string())
        })?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(ClientError::Unauthorized {
                path: path.to_owned(),
            });
        }
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            return Err(ClientError::Status {
                path: path.to_owned(),
                status,
                body,
            });
        }
        Ok(resp)
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let resp = self.send(method.clone(), path, body).await?;
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Transport {
                url: self.url.to_string(),
                method: if method == Method::GET { "GET" } else { "POST" },
                path: path.to_owned(),
                what: e.to_string(),
            })?
            .to_bytes();
        serde_json::from_slice(&bytes).map_err(|source| ClientError::Decode {
            path: path.to_owned(),
            source,
        })
    }

    /// `POST /agent/v1/register`.
    pub async fn register(&self, register: &Register) -> Result<Registered, ClientError> {
        let body = serde_json::to_vec(register).expect("a Register always serializes");
        self.json(Method::POST, "/agent/v1/register", Some(body))
            .await
    }

    /// `GET /agent/v1/poll?generation=G`: the desired state, at once when its generation differs
    /// from `generation`, else after the control plane's long-poll timeout.
    pub async fn poll(&self, generation: u64) -> Result<Assignment, ClientError> {
        let path = format!("/agent/v1/poll?generation={generation}");
        self.json(Method::GET, &path, None).await
    }

    /// `POST /agent/v1/report`.
    pub async fn report(&self, report: &Report) -> Result<(), ClientError> {
        let body = serde_json::to_vec(report).expect("a Report always serializes");
        let resp = self
            .send(Method::POST, "/agent/v1/report", Some(body))
            .await?;
        // Read to the end, so the control plane sees the exchange complete.
        let _ = resp.into_body().collect().await;
        Ok(())
    }

    /// `GET /agent/v1/artifacts/sha256/<digest>` into `dest`, streamed to disk and hashed on the
    /// way: `dest` appears (atomically) only when the bytes have the expected digest.
    pub async fn download_artifact(&self, sha256: &str, dest: &Path) -> Result<(), ClientError> {
        let expected = sha256.to_ascii_lowercase();
        if expected.len() != 64 || !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ClientError::DigestMismatch {
                expected,
                actual: "(not a sha256 digest)".to_owned(),
            });
        }
        let path = format!("/agent/v1/artifacts/sha256/{expected}");
        let resp = self.send(Method::GET, &path, None).await?;
        let write_err = |source| ClientError::Write {
            path: dest.to_owned(),
            source,
        };
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(write_err)?;
        }
        let tmp = dest.with_extension("part");
        let mut file = tokio::fs::File::create(&tmp).await.map_err(write_err)?;
        let mut hasher = Sha256::new();
        let mut body = resp.into_body();
        let result = async {
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| ClientError::Transport {
                    url: self.url.to_string(),
                    method: "GET",
                    path: path.clone(),
                    what: e.to_string(),
                })?;
                if let Ok(data) = frame.into_data() {
                    hasher.update(&data);
                    file.write_all(&data).await.map_err(write_err)?;
                }
            }
            file.sync_all().await.map_err(write_err)?;
            let actual = hex::encode(hasher.finalize());
            if actual != expected {
                return Err(ClientError::DigestMismatch {
                    expected: expected.clone(),
                    actual,
                });
            }
            tokio::fs::rename(&tmp, dest).await.map_err(write_err)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls_parse_and_remote_http_needs_the_flag() {
        assert_eq!(
            ControlUrl::parse("unix:/run/cutover.sock", false).unwrap(),
            ControlUrl::Unix("/run/cutover.sock".into())
        );
        assert_eq!(
            ControlUrl::parse("http://127.0.0.1:7000/", false).unwrap(),
            ControlUrl::Http("127.0.0.1:7000".parse().unwrap())
        );
        assert!(ControlUrl::parse("http://[::1]:7000", false).is_ok());
        let err = ControlUrl::parse("http://10.0.0.5:7000", false).unwrap_err();
        assert!(matches!(err, ClientError::RemoteHttp { .. }), "{err}");
        assert!(ControlUrl::parse("http://10.0.0.5:7000", true).is_ok());
        for bad in [
            "unix:",
            "ftp://x",
            "http://example.com:80",
            "https://h:1",
            "",
        ] {
            assert!(ControlUrl::parse(bad, true).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn url_parsing_never_panics(s in ".{0,64}") {
            let _ = ControlUrl::parse(&s, false);
        }
    }
}
