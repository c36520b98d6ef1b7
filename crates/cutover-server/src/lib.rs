//! `cutover serve`: the JSON API under `/api/v1/` (described by the OpenAPI 3.1 document at
//! `/api/openapi.json`), API tokens and their scopes, Prometheus `/metrics`, and the agent
//! protocol (`/agent/v1/…`) on one listener, with graceful shutdown.
//!
//! The server only reads and writes the store (through the same library functions the CLI uses:
//! `cutover-views`, `cutover-gates`, the queue); deployments asked for over HTTP become `deploy`
//! jobs (`cutover_queue::pipeline`, see [`jobs`]) that any replica's queue workers run once. Several replicas may
//! share one PostgreSQL database: they keep no state of their own beyond counters.
//!
//! Layers, outermost first: metrics (counts every answer by route template and status, rejections
//! included), authentication ([`auth`]: bearer token, `cutover_token` cookie or `?token=`),
//! the body limit ([`MAX_BODY`] → 413), then the handlers ([`api`]), whose bad input answers 400
//! naming the field ([`body`]). Nothing is written for a rejected request.

pub mod api;
pub mod auth;
pub mod body;
pub mod cache;
pub mod error;
pub mod jobs;
pub mod metrics;
pub mod openapi;
pub mod tls;
pub mod tokens;

use std::future::{Future, IntoFuture as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use cutover_config::Config;
use cutover_control::ControlState;
use cutover_store::Store;

pub use error::ApiError;
pub use metrics::Metrics;

/// The largest request body accepted (larger ones answer 413 without being read).
pub const MAX_BODY: usize = 1024 * 1024;

/// How long a stopping server waits for the requests in flight before it closes their
/// connections anyway: under the 30 s a container runtime (e.g. Kubernetes'
/// `terminationGracePeriodSeconds`) grants before it kills the process.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct ServerState {
    pub store: Arc<dyn Store>,
    /// The project's configuration (environments, hosts, gates).
    pub config: Arc<Config>,
    /// The project directory (the deploy engine reads artifacts under `.cutover/`).
    pub project_root: PathBuf,
    /// The agent protocol's state: the deploy engine wakes the agents' polls through it.
    pub control: ControlState,
    /// GET requests need no token (`cutover serve --public-read`).
    pub public_read: bool,
    pub metrics: Arc<Metrics>,
    /// The read endpoints' answers per data version ([`cache`]); shared by clones.
    pub cache: Arc<cache::ResponseCache>,
    /// Cancelled by [`serve`] when its shutdown signal fires. Long-lived responses mounted beside
    /// the API (the dashboard's server-sent events: give them a clone) end on it, so that they
    /// never hold the graceful shutdown up.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerState")
            .field("store", &self.store.location())
            .field("project_root", &self.project_root)
            .field("public_read", &self.public_read)
            .finish_non_exhaustive()
    }
}

impl ServerState {
    /// The state for the project at `project_root` with `config`, serving `store`; agents' artifacts
    /// come from `<project_root>/.cutover/artifacts/sha256`.
    #[must_use]
    pub fn new(
        store: Arc<dyn Store>,
        config: Config,
        project_root: PathBuf,
        public_read: bool,
    ) -> Self {
        let control = ControlState::new(
            store.clone(),
            project_root
                .join(".cutover")
                .join("artifacts")
                .join("sha256"),
        );
        Self::with_control(store, config, project_root, control, public_read)
    }

    /// As [`ServerState::new`] with an existing agent-protocol state (e.g. other poll timings).
    #[must_use]
    pub fn with_control(
        store: Arc<dyn Store>,
        config: Config,
        project_root: PathBuf,
        control: ControlState,
        public_read: bool,
    ) -> Self {
        Self {
            store,
            config: Arc::new(config),
            project_root,
            control,
            public_read,
            metrics: Arc::new(Metrics::default()),
            cache: Arc::new(cache::ResponseCache::default()),
            shutdown: tokio_util::sync::CancellationToken::new(),
        }
    }
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("serving HTTP failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// The whole application: the JSON API, `/api/openapi.json`, `/metrics` and the agent protocol.
///
/// Mount points for the other parts of `cutover serve` (merged by the binary, inside the same
/// authentication and metrics layers when given through [`app_with`]): the dashboard, the
/// webhooks in, the Atom feed.
pub fn app(state: ServerState) -> Router {
    app_with(state, Router::new())
}

/// [`app`] with `extra` routes (dashboard, webhooks, feed) merged in; they get the same metrics and
/// authentication layers as the API (GET needs a viewer token unless `public_read`; webhooks
/// under `/webhooks/` carry their own signatures and need none).
pub fn app_with(state: ServerState, extra: Router) -> Router {
    let control = cutover_control::router(state.control.clone());
    Router::new()
        .merge(api::routes())
        .route("/metrics", axum::routing::get(metrics::scrape))
        .route("/api/openapi.json", axum::routing::get(openapi::serve))
        .with_state(state.clone())
        .merge(extra)
        .fallback(api::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        // The agent protocol authenticates hosts itself (host tokens), so it is merged outside
        // the API's token layer but inside the metrics layer.
        .merge(control)
        .layer(axum::middleware::from_fn_with_state(state, metrics::track))
}

/// Serves `router` ([`app`] or [`app_with`]) on `listener` (a `tokio::net::TcpListener`, or a
/// TLS listener) until `shutdown` completes. Then it stops accepting, cancels
/// [`ServerState::shutdown`] (server-sent event streams end), answers the agents' waiting polls at
/// once, and lets the requests in flight finish, for at most [`SHUTDOWN_GRACE`]: connections
/// still open after that are closed, so that a stuck client never keeps the process alive.
pub async fn serve<L>(
    listener: L,
    state: &ServerState,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let closer = state.control.clone();
    let stopping = state.shutdown.clone();
    let graceful = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            stopping.cancel();
            closer.close();
        })
        .into_future();
    let stopping = state.shutdown.clone();
    let deadline = async move {
        stopping.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        served = graceful => served.map_err(ServerError::Serve),
        () = deadline => {
            tracing::warn!(
                grace_s = SHUTDOWN_GRACE.as_secs(),
                "connections still open after the shutdown grace period were closed"
            );
            Ok(())
        }
    }
}
