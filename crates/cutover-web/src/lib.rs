//! cutover's web dashboard: server-rendered HTML pages over the store (the environments board,
//! releases, deployments with live updates, the audit explorer, DORA charts, the queue).
//!
//! Every page reads fully without JavaScript; the little script there is (embedded, like the CSS
//! and the icons: no CDN) only adds what arrives over server-sent events (`/events`) after a
//! page was rendered. The router has no authentication of its own: the server mounts it behind
//! its token layer. Every response carries a strict Content-Security-Policy (this origin only).

mod assets;
mod error;
mod model;
mod pages;
mod render;
mod sse;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use cutover_config::Config;
use cutover_store::Store;

pub use error::WebError;

/// What the dashboard needs; cheap to clone.
#[derive(Clone)]
pub struct WebState {
    pub store: Arc<dyn Store>,
    /// The project's configuration: its environments and hosts are what the board shows.
    pub config: Arc<Config>,
    /// The path the router is mounted under (`""` at the root, else e.g. `"/ui"`, without a
    /// trailing slash); every link and asset URL starts with it.
    pub base_path: String,
    /// How often `/events` looks for new audit events.
    pub event_poll: Duration,
    /// Cancelled when the server begins to stop: every open `/events` stream then ends, so that a
    /// browser left open never holds up a graceful shutdown.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl std::fmt::Debug for WebState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebState")
            .field("store", &self.store)
            .field("base_path", &self.base_path)
            .field("event_poll", &self.event_poll)
            .finish_non_exhaustive()
    }
}

impl WebState {
    /// Mounted at the root, polling the audit log every second.
    #[must_use]
    pub fn new(store: Arc<dyn Store>, config: Arc<Config>) -> Self {
        Self {
            store,
            config,
            base_path: String::new(),
            event_poll: Duration::from_secs(1),
            shutdown: tokio_util::sync::CancellationToken::new(),
        }
    }
}

/// The dashboard's routes (GET only): `/`, `/releases`, `/releases/{version}`, `/deployments`,
/// `/deployments/{id}`, `/events` (server-sent events), `/audit`, `/metrics/dora`, `/queue` and
/// `/assets/{file}`.
pub fn routes(state: WebState) -> Router {
    Router::new()
        .route("/", get(pages::board))
        .route("/releases", get(pages::releases))
        .route("/releases/{version}", get(pages::release))
        .route("/deployments", get(pages::deployments))
        .route("/deployments/{id}", get(pages::deployment))
        .route("/audit", get(pages::audit))
        .route("/queue", get(pages::queue))
        .route("/metrics/dora", get(pages::dora))
        .route("/events", get(sse::events))
        .route("/assets/{file}", get(assets::asset))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Every response: only this origin's scripts, styles and images (a second line of defence
/// behind the templates' escaping), no sniffing, no framing, no referrer to other sites.
async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}
