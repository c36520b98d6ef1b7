//! The agent's side of the protocol: a small HTTP/1.1 client to the control plane over a unix
//! socket (`unix:PATH`, the embedded default), TLS (`https://…`, rustls) or loopback TCP
//! (`http://…`).
//!
//! TLS trusts the system's roots, or only the CA certificates of an explicit file
//! ([`Client::with_ca_file`], `cutover agent --ca-file`), as `curl --cacert` does: a private CA
//! then vouches for the control plane and nothing else does.
//!
//! One connection per request: a long poll holds its connection for its whole wait anyway, and a
//! fresh connection after a control-plane restart needs no stale-pool handling. The token goes in
//! `Authorization: Bearer …`, the host's name in [`AGENT_HEADER`]; neither is ever put in an error.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

use crate::protocol::{Assignment, LogChunk, LogRequests, Register, Registered, Report};

/// The header that names the agent (its host name); the token is checked against that host's.
pub const AGENT_HEADER: &str = "x-cutover-agent";

/// Where the control plane is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlUrl {
    /// `unix:PATH`.
    Unix(PathBuf),
    /// `http://HOST:PORT`, an IP address (no name resolution: loopback is checked on the address).
    Http(SocketAddr),
    /// `https://HOST[:PORT]`: a DNS name or an IP address, which the server's certificate must
    /// name; the port defaults to 443.
    Https { host: String, port: u16 },
}

impl fmt::Display for ControlUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlUrl::Unix(p) => write!(f, "unix:{}", p.display()),
            ControlUrl::Http(a) => write!(f, "http://{a}"),
            ControlUrl::Https { host, port } => write!(f, "https://{}", authority(host, *port)),
        }
    }
}

impl ControlUrl {
    /// Parses `unix:PATH`, `https://HOST[:PORT]` or `http://IP:PORT`. Plain HTTP carries the token
    /// in clear, so a non-loopback address is refused unless `allow_remote_http`.
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
        if let Some(rest) = url.strip_prefix("https://") {
            let (host, port) = split_authority(rest.strip_suffix('/').unwrap_or(rest))
                .ok_or_else(|| bad("`https://HOST[:PORT]` with a DNS name or an IP address"))?;
            return Ok(ControlUrl::Https { host, port });
        }
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(bad(
                "`unix:PATH`, `https://HOST[:PORT]` or `http://IP:PORT`",
            ));
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

/// `host:port`, with brackets around an IPv6 address.
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `HOST[:PORT]` of an https URL (no path, no user): a name a certificate can hold, and the port.
fn split_authority(authority: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => 443,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0)?,
    };
    // ServerName accepts exactly what a certificate can name: a DNS name or an IP address.
    if host.is_empty() || host.contains(['/', '@', '?', '#']) {
        return None;
    }
    ServerName::try_from(host).ok()?;
    Some((host.to_ascii_lowercase(), port))
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
    #[error("cannot read the CA file {}: {what}; expected PEM `CERTIFICATE` blocks", path.display())]
    CaFile { path: PathBuf, what: String },
    #[error(
        "TLS with the control plane at {url} failed: {what}; hint: its certificate must name the URL's host and chain to {roots}"
    )]
    Tls {
        url: String,
        what: String,
        roots: String,
    },
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

/// The TLS side of a client: its rustls configuration and what its roots are (for errors).
#[derive(Clone)]
struct Tls {
    config: Result<Arc<rustls::ClientConfig>, String>,
    roots: String,
}

impl Tls {
    fn with_roots(roots: rustls::RootCertStore, described: String) -> Tls {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| {
                let mut c = b.with_root_certificates(roots).with_no_client_auth();
                c.alpn_protocols = vec![b"http/1.1".to_vec()];
                Arc::new(c)
            })
            .map_err(|e| e.to_string());
        Tls {
            config,
            roots: described,
        }
    }

    /// The system's trust roots (certificates that fail to load are skipped; none at all is an
    /// error at connect time, with a hint).
    fn system() -> Tls {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = rustls::RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            return Tls {
                config: Err(
                    "no trust roots were found in the system store; pass --ca-file".to_owned(),
                ),
                roots: "the system's trust roots".to_owned(),
            };
        }
        Tls::with_roots(roots, "the system's trust roots".to_owned())
    }
}

/// A client of one control plane, as one agent.
#[derive(Clone)]
pub struct Client {
    url: ControlUrl,
    name: String,
    token: String,
    /// `Some` for an https URL.
    tls: Option<Tls>,
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
    /// A client of `url`; an https URL trusts the system's roots (see [`Client::with_ca_file`]).
    #[must_use]
    pub fn new(url: ControlUrl, name: impl Into<String>, token: impl Into<String>) -> Self {
        let tls = matches!(url, ControlUrl::Https { .. }).then(Tls::system);
        Self {
            url,
            name: name.into(),
            token: token.into(),
            tls,
        }
    }

    /// Trusts only the CA certificates in the PEM file `path` for https (instead of the system's
    /// roots). Without effect on `unix:` and `http://` URLs, except that the file is checked.
    pub fn with_ca_file(mut self, path: &Path) -> Result<Self, ClientError> {
        let ca_err = |what: String| ClientError::CaFile {
            path: path.to_owned(),
            what,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| ca_err(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ca_err(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_err("it holds no certificate".to_owned()));
        }
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| ca_err(format!("a certificate is not a usable CA: {e}")))?;
        }
        if self.tls.is_some() {
            self.tls = Some(Tls::with_roots(
                roots,
                format!("the CA file {}", path.display()),
            ));
        }
        Ok(self)
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
            ControlUrl::Https { host, port } => return self.connect_tls(host, *port).await,
        };
        io.map_err(|source| ClientError::Connect {
            url: self.url.to_string(),
            source,
        })
    }

    async fn connect_tls(&self, host: &str, port: u16) -> Result<Box<dyn Io>, ClientError> {
        let tls = self
            .tls
            .as_ref()
            .expect("an https client always has its TLS side");
        let tls_err = |what: String| ClientError::Tls {
            url: self.url.to_string(),
            what,
            roots: tls.roots.clone(),
        };
        let config = tls.config.clone().map_err(tls_err)?;
        let server_name = ServerName::try_from(host.to_owned()).map_err(|e| {
            tls_err(format!(
                "{host:?} is not a name a certificate can hold: {e}"
            ))
        })?;
        let tcp = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|source| ClientError::Connect {
                url: self.url.to_string(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(server_name, tcp)
            .await
            .map_err(|e| {
                // rustls reports a refused certificate as an io::Error wrapping its own error.
                let what = e
                    .get_ref()
                    .map_or_else(|| e.to_string(), |inner| inner.to_string());
                tls_err(format!("the handshake failed: {what}"))
            })?;
        Ok(Box::new(stream))
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
            ControlUrl::Https { host, port } if *port == 443 => {
                authority(host, *port).trim_end_matches(":443").to_owned()
            }
            ControlUrl::Https { host, port } => authority(host, *port),
        };
        let mut req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(hyper::header::HOST, host)
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            );
        if !self.name.is_empty() {
            req = req.header(AGENT_HEADER, &self.name);
        }
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

    /// `GET /agent/v1/logs/requests`: the log reads asked of this host, at once when there are
    /// some, else (empty) after the control plane's long-poll timeout.
    pub async fn log_requests(&self) -> Result<LogRequests, ClientError> {
        self.json(Method::GET, "/agent/v1/logs/requests", None)
            .await
    }

    /// `POST /agent/v1/logs/{id}`: `true` while the reader wants more, `false` once it left
    /// (`410 Gone`, or a read the control plane no longer knows).
    pub async fn send_log_chunk(&self, id: &str, chunk: &LogChunk) -> Result<bool, ClientError> {
        let body = serde_json::to_vec(chunk).expect("a LogChunk always serializes");
        match self
            .send(Method::POST, &format!("/agent/v1/logs/{id}"), Some(body))
            .await
        {
            Ok(resp) => {
                let _ = resp.into_body().collect().await;
                Ok(true)
            }
            Err(ClientError::Status {
                status: 404 | 410, ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A client that reads logs as an operator, not as an agent: `key` is the secret of the
    /// `logs.read` audit event the reader wrote (see [`Client::read_logs`]).
    #[must_use]
    pub fn log_reader(url: ControlUrl, key: impl Into<String>) -> Self {
        Self::new(url, String::new(), key)
    }

    /// `GET /agent/v1/logs/read?request=SEQ`: the lines of the read that the audit event `SEQ`
    /// (action `logs.read`) describes, as a stream of JSON lines.
    pub async fn read_logs(&self, request: i64) -> Result<LogStream, ClientError> {
        let path = format!("/agent/v1/logs/read?request={request}");
        let resp = self.send(Method::GET, &path, None).await?;
        Ok(LogStream {
            body: resp.into_body(),
            buf: Vec::new(),
            url: self.url.to_string(),
            path,
        })
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

/// The answer of [`Client::read_logs`], one JSON document per line.
pub struct LogStream {
    body: hyper::body::Incoming,
    buf: Vec<u8>,
    url: String,
    path: String,
}

impl fmt::Debug for LogStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStream")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl LogStream {
    /// The next line (without its newline); `None` at the end of the answer.
    pub async fn next_line(&mut self) -> Result<Option<String>, ClientError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Ok(Some(
                    String::from_utf8_lossy(&line[..line.len() - 1]).into_owned(),
                ));
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => {
                    return Err(ClientError::Transport {
                        url: self.url.clone(),
                        method: "GET",
                        path: self.path.clone(),
                        what: e.to_string(),
                    });
                }
                None if self.buf.is_empty() => return Ok(None),
                None => {
                    let rest = std::mem::take(&mut self.buf);
                    return Ok(Some(String::from_utf8_lossy(&rest).into_owned()));
                }
            }
        }
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
        assert_eq!(
            ControlUrl::parse("https://Control.example.com/", false).unwrap(),
            ControlUrl::Https {
                host: "control.example.com".into(),
                port: 443
            }
        );
        assert_eq!(
            ControlUrl::parse("https://10.0.0.5:8443", false).unwrap(),
            ControlUrl::Https {
                host: "10.0.0.5".into(),
                port: 8443
            }
        );
        let v6 = ControlUrl::parse("https://[::1]:8443", false).unwrap();
        assert_eq!(v6.to_string(), "https://[::1]:8443");
        for bad in [
            "unix:",
            "ftp://x",
            "http://example.com:80",
            "https://",
            "https://h:0",
            "https://h:x",
            "https://h/path",
            "https://user@h",
            "https://[nope]:1",
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

        #[test]
        fn https_urls_round_trip_through_display(s in "https://[a-z0-9.:\\[\\]-]{0,30}") {
            if let Ok(url) = ControlUrl::parse(&s, false) {
                proptest::prop_assert_eq!(ControlUrl::parse(&url.to_string(), false).unwrap(), url);
            }
        }
    }
}
