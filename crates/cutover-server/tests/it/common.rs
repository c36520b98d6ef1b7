//! A server on a loopback port over a fresh store, and a small HTTP client.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use cutover_server::{ServerState, app};
use cutover_store::{Store, TokenScope};
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// The configuration of the tests' project: three independent environments (no gates hold).
pub const CONFIG: &str = r#"
[project]
name = "hello"

[service]
start = ["{release_dir}/hello", "--port", "{port}"]

[environments.staging]
hosts = ["web-1"]
listen = "127.0.0.1:18080"

[environments.qa]
hosts = ["web-2"]
listen = "127.0.0.1:18090"

[environments.production]
hosts = ["web-3"]
listen = "127.0.0.1:18100"
"#;

pub fn config() -> cutover_config::Config {
    cutover_config::load_str::<&str, &str>(CONFIG, std::path::Path::new("cutover.toml"), &[])
        .unwrap()
}

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub state: ServerState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub async fn start(store: Arc<dyn Store>, root: &std::path::Path, public_read: bool) -> Server {
        let state = ServerState::new(store, config(), root.to_owned(), public_read);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = app(state.clone());
        let s = state.clone();
        let task = tokio::spawn(async move {
            cutover_server::serve(listener, &s, router, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Server {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops gracefully and waits until it has.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }
}

/// An answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The error code of an error answer.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn field(&self) -> Option<String> {
        self.json()["error"]["field"].as_str().map(str::to_owned)
    }
}

pub async fn send(
    method: Method,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut req = Request::builder().method(method).uri(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

pub async fn get(url: &str, token: Option<&str>) -> Answer {
    send(Method::GET, url, token, &[], Bytes::new()).await
}

pub async fn post(url: &str, token: Option<&str>, body: &str) -> Answer {
    send(Method::POST, url, token, &[], body.to_owned()).await
}

/// A token's secret.
pub async fn token(store: &dyn Store, name: &str, scope: TokenScope, envs: &[&str]) -> String {
    let envs: Vec<String> = envs.iter().map(|e| (*e).to_owned()).collect();
    cutover_server::tokens::create_token(store, name, scope, &envs, "test")
        .await
        .unwrap()
        .1
}

/// A SQLite store in `dir`.
pub async fn sqlite(dir: &std::path::Path) -> Arc<dyn Store> {
    cutover_store::open_sqlite(&dir.join(".cutover").join("state.db"))
        .await
        .unwrap()
}

/// Records a release (without artifact) created at a pinned time.
pub async fn release(store: &dyn Store, version: &str) {
    use chrono::TimeZone as _;
    let release = cutover_store::Release {
        version: version.to_owned(),
        tag: format!("v{version}"),
        commit: "0123456789abcdef0123456789abcdef01234567".to_owned(),
        kind: cutover_store::ReleaseKind::Normal,
        notes: format!("## {version}\n\n- feat: a thing\n"),
        changes: serde_json::json!([{"type": "feat", "summary": "a thing", "time": "2026-11-01T10:00:00Z"}]),
        artifact_digest: None,
        bom: Some(serde_json::json!({
            "bomFormat": "CycloneDX", "specVersion": "1.6",
            "components": [
                {"name": "serde", "licenses": [{"expression": "MIT OR Apache-2.0"}]},
                {"name": "left-pad", "licenses": [{"license": {"id": "MIT"}}]},
                {"name": "mystery"}
            ]
        })),
        vulns: None,
        created_at: chrono::Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap(),
    };
    store
        .apply_one(
            cutover_store::Change::InsertRelease(release),
            &cutover_store::Audit::new(
                "test",
                "release.created",
                format!("release:{version}"),
                serde_json::json!({}),
            ),
        )
        .await
        .unwrap();
}

/// The number of audit events (to show that a rejected request wrote nothing).
pub async fn audit_len(store: &dyn Store) -> usize {
    store
        .list_audit(&cutover_store::AuditFilter::default())
        .await
        .unwrap()
        .len()
}
