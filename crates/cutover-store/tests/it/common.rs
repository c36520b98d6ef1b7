//! Test databases: a SQLite file in a temp dir, or a fresh database on the throwaway PostgreSQL.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, TimeZone, Utc};
use cutover_store::{Audit, Store};
use serde_json::json;
use sqlx::Connection;

/// A store under test, with what it takes to reach its tables directly.
pub struct TestDb {
    pub store: Arc<dyn Store>,
    pub raw: Raw,
    _dir: Option<tempfile::TempDir>,
}

/// How to reach the database behind the store's back (to tamper with it).
#[derive(Clone)]
pub enum Raw {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Raw {
    /// Runs statements directly, outside the store.
    pub async fn exec(&self, statements: &[&str]) {
        match self {
            Raw::Sqlite(path) => {
                let mut c =
                    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                        .await
                        .unwrap();
                for s in statements {
                    sqlx::query(s)
                        .execute(&mut c)
                        .await
                        .unwrap_or_else(|e| panic!("{s}: {e}"));
                }
                c.close().await.unwrap();
            }
            Raw::Postgres(url) => {
                let mut c = sqlx::PgConnection::connect(url).await.unwrap();
                for s in statements {
                    sqlx::query(s)
                        .execute(&mut c)
                        .await
                        .unwrap_or_else(|e| panic!("{s}: {e}"));
                }
                c.close().await.unwrap();
            }
        }
    }

    /// Reads one integer.
    pub async fn scalar(&self, sql: &str) -> i64 {
        match self {
            Raw::Sqlite(path) => {
                let mut c =
                    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                        .await
                        .unwrap();
                let (v,): (i64,) = sqlx::query_as(sql).fetch_one(&mut c).await.unwrap();
                v
            }
            Raw::Postgres(url) => {
                let mut c = sqlx::PgConnection::connect(url).await.unwrap();
                let (v,): (i64,) = sqlx::query_as(sql).fetch_one(&mut c).await.unwrap();
                v
            }
        }
    }

    /// The URL or path `cutover_store::open` takes.
    pub fn url(&self) -> String {
        match self {
            Raw::Sqlite(path) => format!("sqlite:{}", path.display()),
            Raw::Postgres(url) => url.clone(),
        }
    }
}

pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    // A nested path: opening must create the parent directories.
    let path = dir.path().join(".cutover").join("state.db");
    let store = cutover_store::open_sqlite(&path).await.unwrap();
    TestDb {
        store,
        raw: Raw::Sqlite(path),
        _dir: Some(dir),
    }
}

/// The superuser URL of the throwaway cluster. Without it the PostgreSQL tests fail: they never
/// skip silently.
pub fn pg_admin_url() -> String {
    std::env::var("CUTOVER_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "CUTOVER_TEST_PG_URL is not set: run `cargo xtask test`, which starts a throwaway PostgreSQL \
             (or export CUTOVER_TEST_PG_URL=postgres://USER@HOST:PORT/postgres of a superuser on a disposable cluster)"
        )
    })
}

/// Creates a database with a fresh name and returns its URL.
pub async fn fresh_pg_database() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let admin = pg_admin_url();
    let nanos = Utc::now().timestamp_subsec_nanos();
    let name = format!(
        "cutover_test_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut c = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connecting to CUTOVER_TEST_PG_URL");
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    with_database(&admin, &name)
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, name: &str) -> String {
    let authority_start = url.find("://").map(|i| i + 3).unwrap_or(0);
    let (base, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let host_end = base[authority_start..]
        .find('/')
        .map(|i| i + authority_start)
        .unwrap_or(base.len());
    format!("{}/{name}{query}", &base[..host_end])
}

pub async fn postgres() -> TestDb {
    let url = fresh_pg_database().await;
    let store = cutover_store::open(&url).await.unwrap();
    TestDb {
        store,
        raw: Raw::Postgres(url),
        _dir: None,
    }
}

/// A fixed time with microsecond precision (`n` microseconds after it).
pub fn t(n: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(1_764_000_000_123_456 + n)
        .single()
        .unwrap()
}

pub fn audit(action: &str, subject: &str) -> Audit {
    Audit::new(
        "ann@example.com",
        action,
        subject,
        json!({"note": "test", "n": [1, 2.5, null]}),
    )
}

/// Generates `sqlite` and `postgres` tests that run `$suite(TestDb)`.
macro_rules! on_both {
    ($($suite:ident),* $(,)?) => {
        $(
            mod $suite {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$suite(crate::common::sqlite().await).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$suite(crate::common::postgres().await).await;
                }
            }
        )*
    };
}
pub(crate) use on_both;
