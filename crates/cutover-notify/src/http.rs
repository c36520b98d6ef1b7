//! A small HTTP/1.1 client for outgoing notifications: one POST per connection, `http://` or
//! `https://` (rustls with the ring provider and the system's trust roots), bounded by a timeout.
//!
//! Errors name the target as `scheme://host:port` only: a Slack incoming-webhook URL is a
//! credential in its path, and an error message ends up in the audit log.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Uri;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The body bytes of an answer kept for error messages.
const KEPT_BODY: usize = 512;

/// What the receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The start of the body (lossy UTF-8, at most 512 bytes).
    pub body: String,
}

/// Why a POST did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL is not an absolute `http://` or `https://` URL.
    #[error("the URL is not an absolute http:// or https:// URL with a host (`{shown}`)")]
    BadUrl {
        /// The URL with its path and query left out.
        shown: String,
    },
    /// No TCP connection could be made.
    #[error("cannot connect to {target}: {message}")]
    Connect {
        /// `scheme://host:port`.
        target: String,
        /// The OS error.
        message: String,
    },
    /// The TLS handshake failed (certificate, protocol).
    #[error("TLS with {target} failed: {message}")]
    Tls {
        /// `scheme://host:port`.
        target: String,
        /// What rustls said.
        message: String,
    },
    /// The exchange failed half way (connection reset, malformed answer).
    #[error("the request to {target} failed: {message}")]
    Exchange {
        /// `scheme://host:port`.
        target: String,
        /// What hyper said.
        message: String,
    },
    /// No answer within the timeout.
    #[error("no answer from {target} within {timeout:?}")]
    Timeout {
        /// `scheme://host:port`.
        target: String,
        /// The timeout.
        timeout: Duration,
    },
}

/// A parsed target: enough to connect, and what may be shown of it.
struct Target {
    https: bool,
    host: String,
    port: u16,
    path_and_query: String,
    shown: String,
}

fn target(url: &str) -> Result<Target, HttpError> {
    let bad = |shown: String| HttpError::BadUrl { shown };
    let uri: Uri = url.parse().map_err(|_| {
        // Only the scheme and host part may be shown; cut at the first '/' after "://".
        let shown = match url.split_once("://") {
            Some((scheme, rest)) => format!("{scheme}://{}", rest.split('/').next().unwrap_or("")),
            None => "<not a URL>".to_owned(),
        };
        bad(shown)
    })?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(bad(format!("{}://…", uri.scheme_str().unwrap_or("?")))),
    };
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad(url_head(&uri)))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path_and_query = uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let scheme = if https { "https" } else { "http" };
    let shown = if host.contains(':') {
        format!("{scheme}://[{host}]:{port}")
    } else {
        format!("{scheme}://{host}:{port}")
    };
    Ok(Target {
        https,
        host,
        port,
        path_and_query,
        shown,
    })
}

fn url_head(uri: &Uri) -> String {
    format!("{}://", uri.scheme_str().unwrap_or("?"))
}

/// `scheme://host:port` of `url`, safe to show (no userinfo, path or query); `None` when it is not
/// an http(s) URL.
pub fn shown_target(url: &str) -> Option<String> {
    target(url).ok().map(|t| t.shown)
}

fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            // Certificates the system store holds but rustls cannot parse are skipped: one odd
            // certificate must not disable TLS altogether.
            let found = rustls_native_certs::load_native_certs();
            let _ = roots.add_parsable_certificates(found.certs);
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(roots).with_no_client_auth());
            match config {
                Ok(config) => Arc::new(config),
                // The ring provider supports the default protocol versions; this cannot fail,
                // but a config without roots (every handshake refused) beats a panic.
                Err(_) => Arc::new(
                    rustls::ClientConfig::builder()
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth(),
                ),
            }
        })
        .clone()
}

/// POSTs `body` to `url` with `headers` (plus `Host`, `Content-Length` and
/// `User-Agent: cutover-notify`), within `timeout` for the whole exchange.
pub async fn post(
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<HttpResponse, HttpError> {
    let t = target(url)?;
    let shown = t.shown.clone();
    match tokio::time::timeout(timeout, exchange(t, headers, body)).await {
        Ok(result) => result,
        Err(_) => Err(HttpError::Timeout {
            target: shown,
            timeout,
        }),
    }
}

async fn exchange(
    t: Target,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<HttpResponse, HttpError> {
    let tcp = TcpStream::connect((t.host.as_str(), t.port))
        .await
        .map_err(|e| HttpError::Connect {
            target: t.shown.clone(),
            message: e.to_string(),
        })?;
    let _ = tcp.set_nodelay(true);
    if t.https {
        let name = ServerName::try_from(t.host.clone()).map_err(|e| HttpError::Tls {
            target: t.shown.clone(),
            message: e.to_string(),
        })?;
        let tls = tokio_rustls::TlsConnector::from(tls_config())
            .connect(name, tcp)
            .await
            .map_err(|e| HttpError::Tls {
                target: t.shown.clone(),
                message: e.to_string(),
            })?;
        send(tls, &t, headers, body).await
    } else {
        send(tcp, &t, headers, body).await
    }
}

async fn send<I>(
    io: I,
    t: &Target,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<HttpResponse, HttpError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let failed = |e: &dyn std::fmt::Display| HttpError::Exchange {
        target: t.shown.clone(),
        message: e.to_string(),
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| failed(&e))?;
    // The connection task ends with the exchange (or with this future when it times out).
    let driver = tokio::spawn(conn);
    let default_port = if t.https { 443 } else { 80 };
    let host = match (t.host.contains(':'), t.port == default_port) {
        (true, true) => format!("[{}]", t.host),
        (true, false) => format!("[{}]:{}", t.host, t.port),
        (false, true) => t.host.clone(),
        (false, false) => format!("{}:{}", t.host, t.port),
    };
    let mut request = hyper::Request::post(t.path_and_query.as_str())
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, "cutover-notify")
        .header(hyper::header::CONTENT_LENGTH, body.len());
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| failed(&e))?;
    let response = sender.send_request(request).await.map_err(|e| failed(&e));
    let result = match response {
        Ok(response) => {
            let status = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let kept = &bytes[..bytes.len().min(KEPT_BODY)];
            Ok(HttpResponse {
                status,
                body: String::from_utf8_lossy(kept).into_owned(),
            })
        }
        Err(e) => Err(e),
    };
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_targets_leave_out_paths_queries_and_credentials() {
        assert_eq!(
            shown_target("https://hooks.slack.com/services/T000/B000/XXXX").as_deref(),
            Some("https://hooks.slack.com:443")
        );
        assert_eq!(
            shown_target("http://127.0.0.1:8080/hook?token=abc").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            shown_target("http://[::1]:9/x").as_deref(),
            Some("http://[::1]:9")
        );
        assert_eq!(shown_target("ftp://example.com/x"), None);
        assert_eq!(shown_target("not a url"), None);
    }

    #[test]
    fn bad_urls_do_not_show_their_path() {
        let err = target("https://hooks.example/services/SECRET PART").err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("https://hooks.example"), "{text}");
        assert!(!text.contains("SECRET"), "{text}");
    }

    proptest::proptest! {
        #[test]
        fn target_parsing_never_panics(s in "\\PC{0,80}") {
            let _ = target(&s);
        }
    }
}
