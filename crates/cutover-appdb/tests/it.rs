//! The application database on a real SQLite file and a real PostgreSQL (the throwaway cluster
//! of `cargo xtask pg -- cargo test -p cutover-appdb`, URL in `CUTOVER_TEST_PG_URL`; without it
//! the PostgreSQL cases fail without the throwaway cluster's URL, never skip).
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cutover_appdb::{AppDb, AppDbError, Engine, Phase, Selection, recovery};
use sqlx::Connection as _;

#[path = "it/split.rs"]
mod split;

struct Fx {
    dir: tempfile::TempDir,
    db: AppDb,
    url: String,
}

impl Fx {
    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, file: &str, text: &str) {
        let d = self.root().join("migrations");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(file), text).unwrap();
    }

    fn remove(&self, file: &str) {
        std::fs::remove_file(self.root().join("migrations").join(file)).unwrap();
    }

    async fn exec(&self, sql: &str) {
        match self.db.engine() {
            Engine::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
                c.close().await.unwrap();
            }
            Engine::Sqlite => {
                let mut c = sqlite_conn(&self.db).await;
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
                c.close().await.unwrap();
            }
        }
    }

    async fn count(&self, sql: &str) -> i64 {
        match self.db.engine() {
            Engine::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap();
                c.close().await.unwrap();
                n
            }
            Engine::Sqlite => {
                let mut c = sqlite_conn(&self.db).await;
                let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap();
                c.close().await.unwrap();
                n
            }
        }
    }

    async fn has_table(&self, name: &str) -> bool {
        let sql = match self.db.engine() {
            Engine::Postgres => format!(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = '{name}'"
            ),
            Engine::Sqlite => format!(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '{name}'"
            ),
        };
        self.count(&sql).await > 0
    }

    async fn versions(&self) -> Vec<i64> {
        self.db
            .applied()
            .await
            .unwrap()
            .iter()
            .map(|a| a.version)
            .collect()
    }
}

async fn sqlite_conn(db: &AppDb) -> sqlx::SqliteConnection {
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db.sqlite_path())
        .create_if_missing(true);
    sqlx::SqliteConnection::connect_with(&opts).await.unwrap()
}

fn sqlite_fx() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let url = "app.db".to_owned();
    let db = AppDb::new(Engine::Sqlite, &url, dir.path());
    Fx { dir, db, url }
}

/// The throwaway cluster's superuser URL. Never `None`: a PostgreSQL case fails rather than
/// skips without one (`cargo xtask test` and `cargo xtask pg -- …` provide it), like the store's
/// suite; the `Option` keeps the callers' shape.
fn pg_admin_url() -> Option<String> {
    Some(std::env::var("CUTOVER_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "CUTOVER_TEST_PG_URL is not set: run `cargo xtask pg -- cargo test -p cutover-appdb` (or `cargo xtask test`)"
        )
    }))
}

fn with_database(url: &str, name: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let (base, query) = url.split_at(url.find('?').unwrap_or(url.len()));
    let end = base[start..].find('/').map_or(base.len(), |i| i + start);
    format!("{}/{name}{query}", &base[..end])
}

async fn pg_fx() -> Option<Fx> {
    static N: AtomicU32 = AtomicU32::new(0);
    let admin = pg_admin_url()?;
    let name = format!(
        "appdb_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        chrono::Utc::now().timestamp_subsec_nanos()
    );
    let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let url = with_database(&admin, &name);
    let dir = tempfile::tempdir().unwrap();
    let db = AppDb::new(Engine::Postgres, &url, dir.path());
    Some(Fx { dir, db, url })
}

/// Runs one case on SQLite and on PostgreSQL.
macro_rules! both {
    ($case:ident) => {
        mod $case {
            #[tokio::test]
            async fn sqlite() {
                super::$case(super::sqlite_fx()).await;
            }
            #[tokio::test]
            async fn postgres() {
                if let Some(fx) = super::pg_fx().await {
                    super::$case(fx).await;
                }
            }
        }
    };
}

const NOTES_UP: &str =
    "-- cutover:phase expand\nCREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);\n";
const NOTES_DOWN: &str = "DROP TABLE notes;\n";

both!(migrate_records_and_plans);
async fn migrate_records_and_plans(fx: Fx) {
    fx.write("0001_notes.up.sql", NOTES_UP);
    fx.write("0001_notes.down.sql", NOTES_DOWN);
    fx.write(
        "0002_tags.up.sql",
        "-- cutover:phase expand\nCREATE TABLE tags (name TEXT);\n",
    );
    fx.write(
        "0003_drop_tags.up.sql",
        "-- cutover:phase contract\n-- cutover:irreversible\nDROP TABLE tags;\n",
    );
    fx.write("README.md", "not a migration");
    let all = fx.db.load_migrations().unwrap();
    assert_eq!(all.len(), 3);
    let plan = fx.db.plan(&all).await.unwrap();
    assert_eq!(
        plan.expand.iter().map(|m| m.id()).collect::<Vec<_>>(),
        ["0001_notes", "0002_tags"]
    );
    assert_eq!(plan.contract.len(), 1);
    assert!(plan.contract[0].irreversible);

    let done = fx
        .db
        .migrate(&all, Some(Phase::Expand), Some("1.1.0"))
        .await
        .unwrap();
    assert_eq!(done.len(), 2);
    assert!(fx.has_table("tags").await);
    let status = fx.db.status(&all).await.unwrap();
    assert_eq!(status.applied.len(), 2);
    assert_eq!(status.applied[0].release.as_deref(), Some("1.1.0"));
    assert!(status.applied[0].has_down);
    assert!(!status.applied[1].has_down);
    assert_eq!(status.pending.len(), 1);

    let done = fx
        .db
        .migrate(&all, Some(Phase::Contract), None)
        .await
        .unwrap();
    assert_eq!(done.len(), 1);
    assert!(!fx.has_table("tags").await);
    assert!(fx.db.plan(&all).await.unwrap().is_empty());
    // Nothing left: migrating again is a no-op.
    assert!(fx.db.migrate(&all, None, None).await.unwrap().is_empty());
}

both!(syntax_error_names_file_and_line_and_applies_nothing);
async fn syntax_error_names_file_and_line_and_applies_nothing(fx: Fx) {
    fx.write("0001_notes.up.sql", NOTES_UP);
    let all = fx.db.load_migrations().unwrap();
    fx.db.migrate(&all, None, None).await.unwrap();
    fx.write(
        "0002_broken.up.sql",
        "-- cutover:phase expand\nCREATE TABLE half (x INTEGER);\nINSERT INTO half VALUES (1);\nCREAT TABLE other (y INTEGER);\n",
    );
    let all = fx.db.load_migrations().unwrap();
    let e = fx.db.migrate(&all, None, None).await.unwrap_err();
    let text = e.to_string();
    let AppDbError::MigrationFailed {
        path,
        line,
        message,
        ..
    } = &e
    else {
        panic!("expected a migration failure, got {e:?}");
    };
    assert!(path.ends_with("0002_broken.up.sql"), "{text}");
    assert_eq!(*line, 4, "{text}");
    assert!(message.to_lowercase().contains("syntax"), "{text}");
    assert!(text.contains("nothing of it was applied"), "{text}");
    assert!(e.hint().is_some());
    assert!(
        !fx.has_table("half").await,
        "the migration's transaction was rolled back"
    );
    assert_eq!(fx.versions().await, [1]);
}

both!(drifted_checksum_is_refused);
async fn drifted_checksum_is_refused(fx: Fx) {
    fx.write("0001_notes.up.sql", NOTES_UP);
    let all = fx.db.load_migrations().unwrap();
    fx.db.migrate(&all, None, None).await.unwrap();
    fx.write(
        "0001_notes.up.sql",
        "-- cutover:phase expand\nCREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, extra TEXT);\n",
    );
    fx.write(
        "0002_more.up.sql",
        "-- cutover:phase expand\nCREATE TABLE more (x INTEGER);\n",
    );
    let all = fx.db.load_migrations().unwrap();
    let status = fx.db.status(&all).await.unwrap();
    assert_eq!(status.drifted.len(), 1);
    assert_eq!(status.drifted[0].version, 1);
    let e = fx.db.migrate(&all, None, None).await.unwrap_err();
    assert!(matches!(e, AppDbError::Drift { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("0001_notes was edited after it ran"),
        "{text}"
    );
    assert!(e.is_user_error());
    assert!(!fx.has_table("more").await, "nothing changed");
}

both!(rollback_runs_down_migrations_contract_first);
async fn rollback_runs_down_migrations_contract_first(fx: Fx) {
    fx.write("0001_notes.up.sql", NOTES_UP);
    fx.write("0001_notes.down.sql", NOTES_DOWN);
    fx.write(
        "0002_tags.up.sql",
        "-- cutover:phase expand\nCREATE TABLE tags (name TEXT);\n",
    );
    fx.write("0002_tags.down.sql", "DROP TABLE tags;\n");
    fx.write(
        "0003_notes_body.up.sql",
        "-- cutover:phase contract\nCREATE TABLE notes_archive (id INTEGER);\n",
    );
    fx.write("0003_notes_body.down.sql", "DROP TABLE notes_archive;\n");
    let all = fx.db.load_migrations().unwrap();
    fx.db.migrate(&all, None, Some("1.0.0")).await.unwrap();
    let plan = fx
        .db
        .rollback_plan(&Selection::AfterVersion(1))
        .await
        .unwrap();
    assert_eq!(
        plan.iter().map(|a| a.version).collect::<Vec<_>>(),
        [3, 2],
        "contract first, then newest first"
    );
    // The files are gone: the recorded down migrations still work.
    for f in ["0002_tags.down.sql", "0003_notes_body.down.sql"] {
        fx.remove(f);
    }
    let done = fx
        .db
        .rollback(&Selection::AfterVersion(1), &[])
        .await
        .unwrap();
    assert_eq!(done.iter().map(|a| a.version).collect::<Vec<_>>(), [3, 2]);
    assert!(!fx.has_table("tags").await);
    assert!(!fx.has_table("notes_archive").await);
    assert!(fx.has_table("notes").await);
    assert_eq!(fx.versions().await, [1]);
    let done = fx
        .db
        .rollback(&Selection::Releases(vec!["1.0.0".into()]), &[])
        .await
        .unwrap();
    assert_eq!(done.len(), 1);
    assert!(!fx.has_table("notes").await);
}

both!(rollback_across_irreversible_or_missing_down_is_refused);
async fn rollback_across_irreversible_or_missing_down_is_refused(fx: Fx) {
    fx.write("0001_notes.up.sql", NOTES_UP);
    fx.write("0001_notes.down.sql", NOTES_DOWN);
    fx.write(
        "0002_drop_col.up.sql",
        "-- cutover:phase contract\n-- cutover:irreversible\nCREATE TABLE gone (x INTEGER);\n",
    );
    fx.write("0002_drop_col.down.sql", "DROP TABLE gone;\n");
    fx.write(
        "0003_nodown.up.sql",
        "-- cutover:phase expand\nCREATE TABLE nodown (x INTEGER);\n",
    );
    let all = fx.db.load_migrations().unwrap();
    fx.db.migrate(&all, None, None).await.unwrap();

    let e = fx
        .db
        .rollback(&Selection::AfterVersion(0), &all)
        .await
        .unwrap_err();
    assert!(matches!(e, AppDbError::Irreversible { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("0002_drop_col"), "{text}");
    assert!(e.hint().unwrap().contains("--restore-recovery-point"));
    assert_eq!(fx.versions().await, [1, 2, 3], "nothing changed");

    let e = fx
        .db
        .rollback(&Selection::AfterVersion(2), &all)
        .await
        .unwrap_err();
    assert!(matches!(e, AppDbError::MissingDown { .. }), "{e:?}");
    assert!(e.to_string().contains("0003_nodown.down.sql"), "{e}");
    assert!(fx.has_table("nodown").await, "nothing changed");
}

both!(unreachable_database);
async fn unreachable_database(fx: Fx) {
    let db = match fx.db.engine() {
        Engine::Postgres => {
            // A port nothing listens on (bound then released).
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            AppDb::new(
                Engine::Postgres,
                format!("postgres://app:hunter2@127.0.0.1:{port}/app"),
                fx.root(),
            )
        }
        Engine::Sqlite => AppDb::new(Engine::Sqlite, "no/such/dir/app.db", fx.root()),
    };
    let e = db.status(&[]).await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, AppDbError::Connect { .. }), "{e:?}");
    assert!(
        text.starts_with("cannot connect to the application database"),
        "{text}"
    );
    assert!(
        !text.contains("hunter2"),
        "the password is never shown: {text}"
    );
    assert!(!format!("{db:?}").contains("hunter2"));
    assert!(e.hint().is_some());
}

both!(two_migrators_at_once);
async fn two_migrators_at_once(fx: Fx) {
    for i in 1..=5 {
        fx.write(
            &format!("{i:04}_t{i}.up.sql"),
            &format!("-- cutover:phase expand\nCREATE TABLE t{i} (x INTEGER);\nINSERT INTO t{i} VALUES ({i});\n"),
        );
    }
    let all = fx.db.load_migrations().unwrap();
    let (a, b) = tokio::join!(
        fx.db.migrate(&all, None, Some("a")),
        fx.db.migrate(&all, None, Some("b"))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len() + b.len(), 5, "each migration ran exactly once");
    assert_eq!(fx.versions().await, [1, 2, 3, 4, 5]);

    // While another session holds the lock, a migrator waits, then gives up with a clear error.
    fx.write(
        "0006_t6.up.sql",
        "-- cutover:phase expand\nCREATE TABLE t6 (x INTEGER);\n",
    );
    let all = fx.db.load_migrations().unwrap();
    let short = fx.db.clone().with_lock_timeout(Duration::from_millis(300));
    let e = match fx.db.engine() {
        Engine::Postgres => {
            let mut holder = sqlx::PgConnection::connect(&fx.url).await.unwrap();
            sqlx::query("SELECT pg_advisory_lock(27995165641041266)")
                .execute(&mut holder)
                .await
                .unwrap();
            let e = short.migrate(&all, None, None).await.unwrap_err();
            holder.close().await.unwrap();
            e
        }
        Engine::Sqlite => {
            let mut holder = sqlite_conn(&fx.db).await;
            sqlx::raw_sql("BEGIN EXCLUSIVE")
                .execute(&mut holder)
                .await
                .unwrap();
            let e = short.migrate(&all, None, None).await.unwrap_err();
            sqlx::raw_sql("ROLLBACK")
                .execute(&mut holder)
                .await
                .unwrap();
            holder.close().await.unwrap();
            e
        }
    };
    assert!(matches!(e, AppDbError::LockBusy { .. }), "{e:?}");
    assert!(!fx.has_table("t6").await);
    assert_eq!(fx.db.migrate(&all, None, None).await.unwrap().len(), 1);
}

both!(recovery_point_restore_and_drill);
async fn recovery_point_restore_and_drill(fx: Fx) {
    fx.write("0001_notes.up.sql", NOTES_UP);
    let all = fx.db.load_migrations().unwrap();
    fx.db.migrate(&all, None, None).await.unwrap();
    fx.exec("INSERT INTO notes (id, body) VALUES (1, 'kept'), (2, 'also kept')")
        .await;
    let point = fx.db.snapshot("production", Some("1.0.0")).await.unwrap();
    assert!(
        point
            .path()
            .starts_with(fx.root().join(".cutover/recovery-points/production"))
    );
    let manifest = recovery::load_manifest(&point.manifest_path()).unwrap();
    assert_eq!(manifest, point);
    // New points carry a BLAKE3 digest (what `b3sum FILE` prints), named in the manifest.
    assert_eq!(point.algorithm, recovery::DigestAlgorithm::Blake3);
    let bytes = std::fs::read(point.path()).unwrap();
    assert_eq!(point.digest, blake3::hash(&bytes).to_hex().as_str());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(point.manifest_path()).unwrap()).unwrap();
    assert_eq!(json["algorithm"], "blake3");
    assert_eq!(json["digest"], point.digest.as_str());

    // Changes after the point, including a table an expand migration created.
    fx.write(
        "0002_later.up.sql",
        "-- cutover:phase expand\nCREATE TABLE later (x INTEGER);\n",
    );
    let all = fx.db.load_migrations().unwrap();
    fx.db.migrate(&all, None, None).await.unwrap();
    fx.exec("DELETE FROM notes WHERE id = 1; INSERT INTO notes (id, body) VALUES (3, 'lost')")
        .await;

    let drill = fx
        .db
        .drill(&point, "SELECT body FROM notes ORDER BY id")
        .await
        .unwrap();
    assert_eq!(drill.rows, 2);
    let e = fx
        .db
        .drill(&point, "SELECT body FROM notes WHERE id = 99")
        .await
        .unwrap_err();
    assert!(matches!(e, AppDbError::DrillEmpty { .. }), "{e:?}");
    assert_eq!(
        fx.count("SELECT count(*) FROM notes").await,
        2,
        "the drill did not touch the database"
    );

    let found = recovery::find(fx.root(), "production", None).unwrap();
    fx.db.restore(&found).await.unwrap();
    assert_eq!(
        fx.count("SELECT count(*) FROM notes WHERE body IN ('kept', 'also kept')")
            .await,
        2
    );
    assert_eq!(fx.count("SELECT count(*) FROM notes").await, 2);
    assert!(!fx.has_table("later").await);
    assert_eq!(fx.versions().await, [1]);
    // The history is consistent with the restored schema: migrating again works.
    fx.db.migrate(&all, None, None).await.unwrap();
    assert!(fx.has_table("later").await);
}

both!(recovery_point_digest_mismatch_restores_nothing);
async fn recovery_point_digest_mismatch_restores_nothing(fx: Fx) {
    fx.write("0001_notes.up.sql", NOTES_UP);
    let all = fx.db.load_migrations().unwrap();
    fx.db.migrate(&all, None, None).await.unwrap();
    fx.exec("INSERT INTO notes (id, body) VALUES (1, 'a')")
        .await;
    let point = fx.db.snapshot("staging", None).await.unwrap();
    fx.exec("INSERT INTO notes (id, body) VALUES (2, 'b')")
        .await;
    let mut bytes = std::fs::read(point.path()).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(point.path(), bytes).unwrap();
    let e = fx.db.restore(&point).await.unwrap_err();
    assert!(matches!(e, AppDbError::DigestMismatch { .. }), "{e:?}");
    assert!(e.to_string().contains("digest no longer matches"), "{e}");
    assert_eq!(
        fx.count("SELECT count(*) FROM notes").await,
        2,
        "nothing restored"
    );
    let e = fx.db.drill(&point, "SELECT 1").await.unwrap_err();
    assert!(matches!(e, AppDbError::DigestMismatch { .. }), "{e:?}");
}

#[tokio::test]
async fn recovery_points_are_pruned_and_audited() {
    let fx = sqlite_fx();
    fx.write("0001_notes.up.sql", NOTES_UP);
    let all = fx.db.load_migrations().unwrap();
    fx.db.migrate(&all, None, None).await.unwrap();
    let cfg: cutover_config::Database = toml::from_str(
        "engine = \"sqlite\"\nurl = { env = \"APP_DB\" }\nkeep_recovery_points = 2\n",
    )
    .unwrap();
    let db = AppDb::from_config(&cfg, fx.root(), &|k| {
        (k == "APP_DB").then(|| "app.db".into())
    })
    .unwrap();
    let e = AppDb::from_config(&cfg, fx.root(), &|_| None).unwrap_err();
    assert!(e.to_string().contains("env:APP_DB"), "{e}");
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(db.snapshot("staging", None).await.unwrap().id);
    }
    let kept: Vec<String> = recovery::list(fx.root(), "staging")
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(kept, ids[1..]);

    let store = cutover_store::open_sqlite(&fx.root().join("state.db"))
        .await
        .unwrap();
    let point = recovery::find(fx.root(), "staging", None).unwrap();
    let ev = recovery::record(&*store, "tester", &point).await.unwrap();
    assert_eq!(ev.action, "db.recovery_point");
    assert_eq!(ev.subject, "env:staging");
    assert_eq!(ev.payload["digest"], format!("blake3:{}", point.digest));
}

#[test]
fn bad_migration_directories_are_explained() {
    let fx = sqlite_fx();
    fx.write("0001_notes.up.sql", "CREATE TABLE notes (id INTEGER);\n");
    let e = fx.db.load_migrations().unwrap_err().to_string();
    assert!(e.ends_with("0001_notes.up.sql:1: the first line must be the phase marker `-- cutover:phase expand` or `-- cutover:phase contract`, found `CREATE TABLE notes (id INTEGER);`"), "{e}");
    fx.write("0001_notes.up.sql", NOTES_UP);
    fx.write("0002_x.sql", "");
    let e = fx.db.load_migrations().unwrap_err();
    assert!(
        e.to_string().contains("neither `.up.sql` nor `.down.sql`"),
        "{e}"
    );
    assert!(e.hint().unwrap().contains("NNNN_name.up.sql"));
    fx.remove("0002_x.sql");
    fx.write("0003_y.down.sql", "");
    let e = fx.db.load_migrations().unwrap_err().to_string();
    assert!(
        e.ends_with("0003_y.down.sql: a down migration without its up migration"),
        "{e}"
    );
    fx.remove("0003_y.down.sql");
    fx.write("01_dup.up.sql", NOTES_UP);
    let e = fx.db.load_migrations().unwrap_err().to_string();
    assert!(e.starts_with("two migrations have version 1"), "{e}");
}

/// `CREATE INDEX CONCURRENTLY` runs only outside a transaction: refused in a plain migration
/// (nothing applied), applied with `-- cutover:no-transaction`, reverted by a down migration
/// marked the same way; a failure part-way says what stays applied and records nothing.
#[tokio::test]
async fn no_transaction_migrations_on_postgres() {
    let fx = pg_fx().await.unwrap();
    fx.write("0001_notes.up.sql", NOTES_UP);
    fx.write(
        "0002_notes_body.up.sql",
        "-- cutover:phase expand\nCREATE INDEX CONCURRENTLY notes_body ON notes (body);\n",
    );
    let all = fx.db.load_migrations().unwrap();
    let e = fx.db.migrate(&all, None, None).await.unwrap_err();
    let AppDbError::MigrationFailed { message, .. } = &e else {
        panic!("{e:?}");
    };
    assert!(
        message.contains("cannot run inside a transaction block"),
        "{e}"
    );
    assert_eq!(fx.versions().await, [1]);

    fx.write(
        "0002_notes_body.up.sql",
        "-- cutover:phase expand\n-- cutover:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS notes_body ON notes (body);\nCREATE INDEX CONCURRENTLY IF NOT EXISTS notes_id_body ON notes (id, body);\n",
    );
    fx.write(
        "0002_notes_body.down.sql",
        "-- cutover:no-transaction\nDROP INDEX CONCURRENTLY notes_id_body;\nDROP INDEX CONCURRENTLY notes_body;\n",
    );
    let all = fx.db.load_migrations().unwrap();
    assert!(all[1].no_transaction);
    fx.db.migrate(&all, None, Some("1.1.0")).await.unwrap();
    assert_eq!(fx.versions().await, [1, 2]);
    let valid = "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname IN ('notes_body', 'notes_id_body') AND i.indisvalid";
    assert_eq!(fx.count(valid).await, 2);

    let undone = fx
        .db
        .rollback(&Selection::AfterVersion(1), &all)
        .await
        .unwrap();
    assert_eq!(undone.len(), 1);
    assert_eq!(fx.versions().await, [1]);
    assert_eq!(fx.count(valid).await, 0);

    // The second statement fails (a unique index over duplicates): the first stays.
    fx.exec("INSERT INTO notes (id, body) VALUES (1, 'same'), (2, 'same')")
        .await;
    fx.write(
        "0003_unique_body.up.sql",
        "-- cutover:phase expand\n-- cutover:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS notes_plain ON notes (id);\nCREATE UNIQUE INDEX CONCURRENTLY notes_unique_body ON notes (body);\n",
    );
    let all = fx.db.load_migrations().unwrap();
    let e = fx.db.migrate(&all, None, None).await.unwrap_err();
    let AppDbError::PartiallyApplied {
        id,
        path,
        line,
        applied,
        reverting,
        ..
    } = &e
    else {
        panic!("{e:?}");
    };
    assert_eq!(id, "0003_unique_body");
    assert!(path.ends_with("0003_unique_body.up.sql"), "{path}");
    assert_eq!((*line, *applied, *reverting), (4, 1, false));
    assert!(e.to_string().contains("recorded as not applied"), "{e}");
    let text = e.to_string();
    assert!(text.contains("may be partially applied"), "{text}");
    assert!(text.contains("could not create unique index"), "{text}");
    assert!(e.hint().unwrap().contains("DROP INDEX CONCURRENTLY"));
    assert_eq!(fx.versions().await, [1, 2], "0003 is not recorded");
    assert_eq!(
        fx.count("SELECT count(*) FROM pg_class WHERE relname = 'notes_plain'")
            .await,
        1,
        "the statement before the failing one stays applied"
    );
    // Fixed (the invalid index dropped, the data made unique), it runs again.
    fx.exec("DROP INDEX CONCURRENTLY IF EXISTS notes_unique_body")
        .await;
    fx.exec("UPDATE notes SET body = 'other' WHERE id = 2")
        .await;
    assert_eq!(fx.db.migrate(&all, None, None).await.unwrap().len(), 1);
    assert_eq!(fx.versions().await, [1, 2, 3]);
}

/// A no-transaction migration whose function bodies hold `;` (`$$ … $$`, `$tag$ … $tag$`)
/// runs each statement whole; an error after them still names its file and line.
#[tokio::test]
async fn no_transaction_migrations_keep_function_bodies_whole() {
    let fx = pg_fx().await.unwrap();
    fx.write("0001_notes.up.sql", NOTES_UP);
    fx.write(
        "0002_touch.up.sql",
        "-- cutover:phase expand\n-- cutover:no-transaction\nCREATE FUNCTION notes_count() RETURNS bigint AS $$\nDECLARE n bigint;\nBEGIN\n  SELECT count(*) INTO n FROM notes; -- counted;\n  RETURN n;\nEND;\n$$ LANGUAGE plpgsql;\nCREATE FUNCTION notes_label() RETURNS text AS $fn$ SELECT 'a;b' || $$;$$ $fn$ LANGUAGE sql;\nCREATE INDEX CONCURRENTLY IF NOT EXISTS notes_body ON notes (body);\n",
    );
    let all = fx.db.load_migrations().unwrap();
    assert!(all[1].no_transaction);
    fx.db.migrate(&all, None, None).await.unwrap();
    assert_eq!(fx.versions().await, [1, 2]);
    fx.exec("INSERT INTO notes (id, body) VALUES (1, 'x'), (2, 'y')")
        .await;
    assert_eq!(fx.count("SELECT notes_count()").await, 2);
    assert_eq!(
        fx.count("SELECT count(*) FROM notes WHERE notes_label() = 'a;b;'")
            .await,
        2
    );

    fx.write(
        "0003_broken.up.sql",
        "-- cutover:phase expand\n-- cutover:no-transaction\nCREATE FUNCTION ok() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n\nSELECT 'x;y' FROM no_such_table;\n",
    );
    let all = fx.db.load_migrations().unwrap();
    let e = fx.db.migrate(&all, None, None).await.unwrap_err();
    let AppDbError::PartiallyApplied {
        path,
        line,
        applied,
        ..
    } = &e
    else {
        panic!("{e:?}");
    };
    assert!(path.ends_with("0003_broken.up.sql"), "{path}");
    assert_eq!((*line, *applied), (5, 1), "{e}");
    assert!(e.to_string().contains("no_such_table"), "{e}");
    assert_eq!(fx.versions().await, [1, 2]);
}

/// SQLite knows statements that refuse a transaction too (`VACUUM`).
#[tokio::test]
async fn no_transaction_migrations_on_sqlite() {
    let fx = sqlite_fx();
    fx.write("0001_notes.up.sql", NOTES_UP);
    fx.write(
        "0002_vacuum.up.sql",
        "-- cutover:phase contract\n-- cutover:no-transaction\nCREATE TABLE IF NOT EXISTS scratch (x INTEGER);\nVACUUM;\n",
    );
    let all = fx.db.load_migrations().unwrap();
    fx.db.migrate(&all, None, None).await.unwrap();
    assert_eq!(fx.versions().await, [1, 2]);
    fx.write(
        "0003_bad.up.sql",
        "-- cutover:phase expand\n-- cutover:no-transaction\nCREATE TABLE kept (x INTEGER);\nCREATE TABLE kept (x INTEGER);\n",
    );
    let all = fx.db.load_migrations().unwrap();
    let e = fx.db.migrate(&all, None, None).await.unwrap_err();
    let AppDbError::PartiallyApplied { line, applied, .. } = &e else {
        panic!("{e:?}");
    };
    assert_eq!((*line, *applied), (4, 1));
    assert!(e.to_string().contains("already exists"), "{e}");
    assert!(fx.has_table("kept").await);
    assert_eq!(fx.versions().await, [1, 2]);
}

/// A point large enough to be hashed while it is copied: a damaged file is caught before the
/// copy commits, and the live database keeps its rows.
#[tokio::test]
async fn sqlite_restore_of_a_large_damaged_point_changes_nothing() {
    let fx = sqlite_fx();
    fx.write("0001_notes.up.sql", NOTES_UP);
    let all = fx.db.load_migrations().unwrap();
    fx.db.migrate(&all, None, None).await.unwrap();
    // A live database in WAL mode, as apps run them: the point is still one plain file.
    fx.exec("PRAGMA journal_mode=WAL").await;
    fx.exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) INSERT INTO notes (id, body) SELECT i, hex(randomblob(500)) FROM n")
        .await;
    let point = fx.db.snapshot("production", None).await.unwrap();
    assert!(point.size > 1_000_000, "{}", point.size);
    let header = std::fs::read(point.path()).unwrap();
    assert_eq!(&header[..16], b"SQLite format 3\0");
    assert_eq!(header[18..20], [1, 1], "a rollback-journal file, not WAL");
    let drill = fx
        .db
        .drill(&point, "SELECT count(*) FROM notes")
        .await
        .unwrap();
    assert_eq!(drill.rows, 1);
    fx.exec("DELETE FROM notes WHERE id > 10").await;

    // An intact point restores (the hashed, held-back path).
    fx.db.restore(&point).await.unwrap();
    assert_eq!(fx.count("SELECT count(*) FROM notes").await, 2000);
    assert!(!point.dir.join(format!("{}-wal", point.file)).exists());
    assert!(!point.dir.join(format!("{}-shm", point.file)).exists());

    fx.exec("DELETE FROM notes WHERE id > 10").await;
    let mut bytes = std::fs::read(point.path()).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(point.path(), bytes).unwrap();
    let e = fx.db.restore(&point).await.unwrap_err();
    assert!(matches!(e, AppDbError::DigestMismatch { .. }), "{e:?}");
    assert_eq!(
        fx.count("SELECT count(*) FROM notes").await,
        10,
        "nothing restored"
    );
    let e = fx.db.drill(&point, "SELECT 1").await.unwrap_err();
    assert!(matches!(e, AppDbError::DigestMismatch { .. }), "{e:?}");
}
