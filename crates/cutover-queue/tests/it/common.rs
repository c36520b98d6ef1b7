//! Test databases: a SQLite file in a temp dir, or a fresh database on the throwaway PostgreSQL.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use cutover_store::Store;
use sqlx::Connection;

pub struct TestDb {
    pub store: Arc<dyn Store>,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let url = format!("sqlite:{}", path.display());
    TestDb {
        store: cutover_store::open(&url).await.unwrap(),
        url,
        _dir: Some(dir),
    }
}

pub async fn postgres() -> TestDb {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let admin = std::env::var("CUTOVER_TEST_PG_URL").unwrap_or_else(|_| {
        panic!("CUTOVER_TEST_PG_URL is not set: run `cargo xtask pg -- cargo test -p cutover-queue`, which starts a throwaway PostgreSQL")
    });
    let name = format!(
        "cutover_queue_test_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let base = admin.split('?').next().unwrap();
    let query = admin.strip_prefix(base).unwrap_or("");
    let url = format!("{}/{name}{query}", &base[..base.rfind('/').unwrap()]);
    TestDb {
        store: cutover_store::open(&url).await.unwrap(),
        url,
        _dir: None,
    }
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
