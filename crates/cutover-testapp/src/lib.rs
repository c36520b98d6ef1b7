//! The test app as a library: the binary and `cutover testapp` (hidden) share it.
//!
//! A small HTTP/1.1 service whose behaviour deploy tests and the demo steer with fault switches
//! (flags, or `TESTAPP_*` environment variables so that an agent's configured environment can set
//! them without touching the argv).
//!
//! Routes:
//! - `/` — `hello from cutover-testapp VERSION\n`
//! - `/health` — `200 ok`, or `503 unhealthy` with `--unhealthy`
//! - `/version` — the version, plain text, no newline (`--wrong-version` overrides it)
//! - `/slow?ms=N` — answers after N milliseconds (drain tests)
//! - `/stream?chunks=N&ms=M` — headers at once, then N lines `chunk i` M milliseconds apart
//! - `/headers` — the request headers, one `name: value` a line, sorted (proxy header tests)
//! - `/echo` — streams the request body back (streaming tests)
//! - `/notes` (with `--database-url` / `DATABASE_URL`, a `postgres://` URL or an SQLite path):
//!   `GET` lists the `notes` table's bodies, one a line, by id; `POST` inserts the request body
//!   (`?author=NAME` also writes the `author` column, which an expand migration adds: a release
//!   that uses it next to one that does not)
//! - `/upgrade` with `Upgrade: echo` — `101 Switching Protocols`, then echoes raw bytes (an upgraded
//!   connection like a WebSocket's, without the framing, for proxy pass-through tests)
//!
//! `--error-rate F` answers the F fraction of requests to every route but `/health` and `/version` with 500, evenly
//! spread by a request counter (request `n` fails when `floor(n·F) > floor((n-1)·F)`), so that tests see
//! an exact, repeatable count instead of a random one.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// Command-line arguments of the test app (also `cutover testapp`).
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "cutover-testapp",
    about = "A small HTTP service with fault switches"
)]
pub struct Args {
    /// Port to listen on; 0 picks a free one (the bound address is printed on stdout).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// Version this instance reports.
    #[arg(long, env = "CUTOVER_VERSION", default_value = "0.0.0")]
    pub version: String,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Fault: /health answers 503.
    #[arg(long, env = "TESTAPP_UNHEALTHY", value_parser = clap::builder::BoolishValueParser::new())]
    pub unhealthy: bool,
    /// Fault: wait this many seconds (fractions allowed) before binding the port.
    #[arg(long, env = "TESTAPP_SLOW_START", value_name = "SECS")]
    pub slow_start: Option<f64>,
    /// Fault: exit with status 1 this many seconds (fractions allowed) after start.
    #[arg(long, env = "TESTAPP_CRASH_AFTER", value_name = "SECS")]
    pub crash_after: Option<f64>,
    /// Fault: answer this fraction (0..=1) of requests with 500 (all routes but /health and /version).
    #[arg(
        long,
        env = "TESTAPP_ERROR_RATE",
        default_value_t = 0.0,
        value_name = "F"
    )]
    pub error_rate: f64,
    /// Fault: /version reports this instead of the real version.
    #[arg(long, env = "TESTAPP_WRONG_VERSION", value_name = "V")]
    pub wrong_version: Option<String>,
    /// Fault switches read from a file (`key = value` lines: `unhealthy`, `error_rate`,
    /// `wrong_version`, `crash_after`, `slow_start`; `#` comments), so that a release's artifact can
    /// carry its own fault. A missing file means no faults; the file wins over flags.
    #[arg(long, env = "TESTAPP_FAULTS_FILE", value_name = "PATH")]
    pub faults_file: Option<std::path::PathBuf>,
    /// The application database `/notes` uses: a `postgres://` URL or an SQLite file path.
    #[arg(long, env = "DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
}

impl Args {
    /// Applies the faults file, if one is named and exists.
    fn with_faults_file(mut self) -> Result<Self, Error> {
        let Some(path) = self.faults_file.clone() else {
            return Ok(self);
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(self),
            Err(source) => {
                return Err(Error::FaultsFile {
                    path,
                    line: 0,
                    message: source.to_string(),
                });
            }
        };
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let bad = |message: String| Error::FaultsFile {
                path: path.clone(),
                line: i + 1,
                message,
            };
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| bad(format!("expected `key = value`, found `{line}`")))?;
            let (key, value) = (key.trim(), value.trim().trim_matches('"'));
            let number = || {
                value
                    .parse::<f64>()
                    .map_err(|_| bad(format!("`{key}` expects a number, found `{value}`")))
            };
            match key {
                "unhealthy" => {
                    self.unhealthy = matches!(value, "true" | "1" | "yes");
                }
                "error_rate" => self.error_rate = number()?,
                "crash_after" => self.crash_after = Some(number()?),
                "slow_start" => self.slow_start = Some(number()?),
                "wrong_version" => self.wrong_version = Some(value.to_owned()),
                other => {
                    return Err(bad(format!(
                        "unknown fault `{other}`; expected unhealthy, error_rate, crash_after, slow_start or wrong_version"
                    )));
                }
            }
        }
        Ok(self)
    }
}

/// What can stop the test app.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("--error-rate {0} is out of range; expected a fraction between 0 and 1 (e.g. 0.25)")]
    ErrorRate(f64),
    #[error("--{flag} {value} is not a valid number of seconds; expected a non-negative number")]
    Seconds { flag: &'static str, value: f64 },
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    FaultsFile {
        path: std::path::PathBuf,
        line: usize,
        message: String,
    },
    #[error("cannot start the tokio runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot install the signal handler: {0}")]
    Signal(#[source] std::io::Error),
    #[error("the database URL is unusable: {0}")]
    Database(String),
}

struct State {
    args: Args,
    counter: AtomicU64,
    notes: Option<Notes>,
}

/// The application database behind `/notes`.
enum Notes {
    Pg(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

impl Notes {
    async fn open(url: &str) -> Result<Notes, Error> {
        let fail = |e: sqlx::Error| Error::Database(e.to_string());
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(4)
                .connect_lazy(url)
                .map_err(fail)?;
            Ok(Notes::Pg(pool))
        } else {
            let path = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
                .unwrap_or(url);
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .busy_timeout(Duration::from_secs(10));
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(4)
                .connect_lazy_with(opts);
            Ok(Notes::Sqlite(pool))
        }
    }

    async fn list(&self) -> Result<Vec<String>, sqlx::Error> {
        let q = "SELECT body FROM notes ORDER BY id";
        match self {
            Notes::Pg(p) => sqlx::query_scalar(q).fetch_all(p).await,
            Notes::Sqlite(p) => sqlx::query_scalar(q).fetch_all(p).await,
        }
    }

    async fn add(&self, body: &str, author: Option<&str>) -> Result<(), sqlx::Error> {
        match (self, author) {
            (Notes::Pg(p), None) => sqlx::query("INSERT INTO notes (body) VALUES ($1)")
                .bind(body)
                .execute(p)
                .await
                .map(drop),
            (Notes::Pg(p), Some(a)) => {
                sqlx::query("INSERT INTO notes (body, author) VALUES ($1, $2)")
                    .bind(body)
                    .bind(a)
                    .execute(p)
                    .await
                    .map(drop)
            }
            (Notes::Sqlite(p), None) => sqlx::query("INSERT INTO notes (body) VALUES (?)")
                .bind(body)
                .execute(p)
                .await
                .map(drop),
            (Notes::Sqlite(p), Some(a)) => {
                sqlx::query("INSERT INTO notes (body, author) VALUES (?, ?)")
                    .bind(body)
                    .bind(a)
                    .execute(p)
                    .await
                    .map(drop)
            }
        }
    }
}

type Body = BoxBody<Bytes, hyper::Error>;

fn seconds(flag: &'static str, value: Option<f64>) -> Result<Option<Duration>, Error> {
    value
        .map(|v| Duration::try_from_secs_f64(v).map_err(|_| Error::Seconds { flag, value: v }))
        .transpose()
}

/// Runs the test app until SIGTERM or SIGINT (then stops accepting, lets in-flight requests
/// finish and returns `Ok`). Builds its own tokio runtime.
pub fn run(args: Args) -> Result<(), Error> {
    let args = args.with_faults_file()?;
    if !(0.0..=1.0).contains(&args.error_rate) {
        return Err(Error::ErrorRate(args.error_rate));
    }
    let slow_start = seconds("slow-start", args.slow_start)?;
    let crash_after = seconds("crash-after", args.crash_after)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    rt.block_on(serve(args, slow_start, crash_after))
}

async fn serve(
    args: Args,
    slow_start: Option<Duration>,
    crash_after: Option<Duration>,
) -> Result<(), Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(Error::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(Error::Signal)?;
    if let Some(after) = crash_after {
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            // The crash is the point of the switch: a supervisor must see a non-zero exit.
            std::process::exit(1);
        });
    }
    if let Some(delay) = slow_start {
        tokio::time::sleep(delay).await;
    }
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    // Tests and supervisors learn the port from this line when they asked for port 0.
    let _ = writeln!(std::io::stdout(), "listening on http://{local}");
    let _ = std::io::stdout().flush();

    let notes = match &args.database_url {
        Some(url) => Some(Notes::open(url).await?),
        None => None,
    };
    let state = Arc::new(State {
        args,
        counter: AtomicU64::new(0),
        notes,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a sender; when all are gone, every connection has finished.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = term.recv() => break,
            _ = int.recv() => break,
        };
        let Ok((stream, _peer)) = accepted else {
            // Out of file descriptors and the like: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let mut stop_rx = stop_rx.clone();
        let alive = alive_tx.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(state.clone(), req));
            let conn = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop_rx.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(alive);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_tx);
    let _ = alive_rx.recv().await;
    Ok(())
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(body.into())
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn should_fail(state: &State) -> bool {
    let rate = state.args.error_rate;
    if rate <= 0.0 {
        return false;
    }
    let n = state.counter.fetch_add(1, Ordering::Relaxed) + 1;
    // Exact and evenly spread: over any N consecutive requests about N·rate fail.
    #[allow(clippy::cast_precision_loss)]
    let (now, before) = ((n as f64 * rate).floor(), ((n - 1) as f64 * rate).floor());
    now > before
}

fn upgrade_echo(mut req: Request<Incoming>) -> Response<Body> {
    let wants_echo = req
        .headers()
        .get(hyper::header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"echo"));
    if !wants_echo {
        return text(StatusCode::BAD_REQUEST, "expected Upgrade: echo\n");
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let (mut r, mut w) = tokio::io::split(TokioIo::new(upgraded));
            let _ = tokio::io::copy(&mut r, &mut w).await;
        }
    });
    let mut resp = text(StatusCode::SWITCHING_PROTOCOLS, "");
    resp.headers_mut().insert(
        hyper::header::UPGRADE,
        hyper::header::HeaderValue::from_static("echo"),
    );
    resp.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("upgrade"),
    );
    resp
}

async fn notes(state: &State, req: Request<Incoming>) -> Response<Body> {
    let Some(db) = &state.notes else {
        return text(
            StatusCode::NOT_FOUND,
            "no database: start with --database-url\n",
        );
    };
    let failed = |e: sqlx::Error| text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"));
    match *req.method() {
        hyper::Method::GET => match db.list().await {
            Ok(rows) => text(
                StatusCode::OK,
                rows.iter().map(|r| format!("{r}\n")).collect::<String>(),
            ),
            Err(e) => failed(e),
        },
        hyper::Method::POST => {
            let author = req.uri().query().and_then(|q| {
                q.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .find(|(k, _)| *k == "author")
                    .map(|(_, v)| v.to_owned())
            });
            let body = match req.into_body().collect().await {
                Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
                Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
            };
            match db.add(&body, author.as_deref()).await {
                Ok(()) => text(StatusCode::CREATED, "created\n"),
                Err(e) => failed(e),
            }
        }
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "GET or POST\n"),
    }
}

fn query_ms(query: Option<&str>) -> Option<u64> {
    query_param(query, "ms")
}

fn query_param(query: Option<&str>, name: &str) -> Option<u64> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
}

/// A body that trickles: one line per tick.
struct Trickle {
    sent: u64,
    chunks: u64,
    ticks: tokio::time::Interval,
}

impl hyper::body::Body for Trickle {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        if self.sent == self.chunks {
            return std::task::Poll::Ready(None);
        }
        std::task::ready!(self.ticks.poll_tick(cx));
        self.sent += 1;
        let line = format!("chunk {}\n", self.sent);
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from(line)))))
    }
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let args = &state.args;
    let path = req.uri().path().to_owned();
    if path == "/health" {
        return Ok(if args.unhealthy {
            text(StatusCode::SERVICE_UNAVAILABLE, "unhealthy\n")
        } else {
            text(StatusCode::OK, "ok")
        });
    }
    // The version probe is a health endpoint too: a release that answers 5xx must be caught by
    // the traffic it serves (canary analysis, observation), not before it gets any.
    if path != "/version" && should_fail(&state) {
        return Ok(text(StatusCode::INTERNAL_SERVER_ERROR, "injected error\n"));
    }
    let resp = match path.as_str() {
        "/" => text(
            StatusCode::OK,
            format!("hello from cutover-testapp {}\n", args.version),
        ),
        "/version" => text(
            StatusCode::OK,
            args.wrong_version
                .clone()
                .unwrap_or_else(|| args.version.clone()),
        ),
        "/slow" => match query_ms(req.uri().query()) {
            Some(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                text(
                    StatusCode::OK,
                    format!("slept {ms}ms on {}\n", args.version),
                )
            }
            None => text(StatusCode::BAD_REQUEST, "expected /slow?ms=N\n"),
        },
        "/stream" => {
            let query = req.uri().query();
            match (query_param(query, "chunks"), query_param(query, "ms")) {
                (Some(chunks), Some(ms)) => {
                    let mut ticks = tokio::time::interval(Duration::from_millis(ms.max(1)));
                    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    let body = Trickle {
                        sent: 0,
                        chunks,
                        ticks,
                    };
                    Response::new(body.map_err(|never: Infallible| match never {}).boxed())
                }
                _ => text(StatusCode::BAD_REQUEST, "expected /stream?chunks=N&ms=M\n"),
            }
        }
        "/headers" => {
            let mut lines: Vec<String> = req
                .headers()
                .iter()
                .map(|(k, v)| format!("{}: {}", k, String::from_utf8_lossy(v.as_bytes())))
                .collect();
            lines.sort();
            lines.push(String::new());
            text(StatusCode::OK, lines.join("\n"))
        }
        "/notes" => notes(&state, req).await,
        "/upgrade" => upgrade_echo(req),
        "/echo" => {
            let mut resp = Response::new(req.into_body().boxed());
            resp.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/octet-stream"),
            );
            resp
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    };
    Ok(resp)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser as _;

    fn with_file(text: &str) -> Result<Args, Error> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("faults.conf");
        std::fs::write(&path, text).unwrap();
        Args::parse_from(["t", "--faults-file", path.to_str().unwrap()]).with_faults_file()
    }

    #[test]
    fn faults_file_sets_the_switches() {
        let a = with_file(
            "# a faulty release\nerror_rate = 0.5\nwrong_version = \"9.9.9\"\nunhealthy = true\n",
        )
        .unwrap();
        assert!((a.error_rate - 0.5).abs() < f64::EPSILON);
        assert_eq!(a.wrong_version.as_deref(), Some("9.9.9"));
        assert!(a.unhealthy);
    }

    #[test]
    fn a_missing_faults_file_means_no_faults() {
        let a = Args::parse_from(["t", "--faults-file", "/nonexistent/faults.conf"])
            .with_faults_file()
            .unwrap();
        assert!(!a.unhealthy);
        assert!(a.error_rate.abs() < f64::EPSILON);
    }

    #[test]
    fn a_bad_faults_file_names_the_line() {
        let e = with_file("\nerror_rate = lots\n").unwrap_err().to_string();
        assert!(
            e.ends_with("faults.conf:2: `error_rate` expects a number, found `lots`"),
            "{e}"
        );
        let e = with_file("explode = 1\n").unwrap_err().to_string();
        assert!(e.contains(":1: unknown fault `explode`"), "{e}");
        let e = with_file("no equals sign\n").unwrap_err().to_string();
        assert!(e.contains(":1: expected `key = value`"), "{e}");
    }
}
