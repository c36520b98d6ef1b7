//! The application database through the real deploy path: a blue-green deployment whose release
//! brings an expand migration while the old release keeps serving reads and writes of its
//! `notes` table, contract migrations after the observation window, rollback through down
//! migrations, a refused rollback across an irreversible migration, and the recovery point
//! restored instead.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cutover_config::{Contract, Database, Engine as DbEngine, Secret};
use cutover_deploy::{DeployError, DeployOutcome, DeployRequest, Engine};
use cutover_store::AuditFilter;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::world::{World, WorldSpec, get_version};

/// One HTTP/1.1 request on a fresh connection: (status, body).
async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

struct Setup {
    engine: Engine,
    db_url: String,
    pg: bool,
}

fn write(dir: &Path, file: &str, text: &str) {
    let d = dir.join("migrations");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(file), text).unwrap();
}

async fn setup(w: &World, pg_admin: Option<&str>) -> Setup {
    use sqlx::Connection as _;
    let db_url = match pg_admin {
        None => w.dir.path().join("app.db").display().to_string(),
        Some(admin) => {
            let name = format!(
                "appdb_deploy_{}_{}",
                std::process::id(),
                chrono::Utc::now().timestamp_micros()
            );
            let mut c = sqlx::PgConnection::connect(admin).await.unwrap();
            sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
                .execute(&mut c)
                .await
                .unwrap();
            c.close().await.unwrap();
            let (base, _) = admin.rsplit_once('/').unwrap();
            format!("{base}/{name}")
        }
    };
    std::fs::write(w.dir.path().join("app-db-url"), &db_url).unwrap();
    let engine = w.with_config(|c| {
        c.database = Some(Database {
            engine: if pg_admin.is_some() {
                DbEngine::Postgres
            } else {
                DbEngine::Sqlite
            },
            url: Secret::File {
                file: "app-db-url".into(),
            },
            migrations: "migrations".into(),
            contract: Contract::AfterObserve,
            keep_recovery_points: 10,
            drill: None,
        });
    });
    Setup {
        engine,
        db_url,
        pg: pg_admin.is_some(),
    }
}

async fn deploy(e: &Engine, version: &str) -> Result<DeployOutcome, DeployError> {
    e.deploy(
        DeployRequest {
            environment: "staging".into(),
            version: version.into(),
            trigger: "cli".into(),
            reverts: None,
            wait_for_lock: false,
            message: None,
        },
        &|p| println!("    [{} {}] {}", p.deployment, p.state, p.message),
    )
    .await
}

fn live(o: &DeployOutcome) -> i64 {
    match o {
        DeployOutcome::Live { deployment } => *deployment,
        other => panic!("expected live, got {other:?}"),
    }
}

/// Writes and reads notes through the environment's router until stopped; counts failures.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

fn load(addr: SocketAddr) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let task = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        tokio::spawn(async move {
            let mut errors = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let w = http(addr, "POST", "/notes", &format!("during {i}")).await;
                let r = http(addr, "GET", "/notes", "").await;
                for (what, (status, body)) in [("POST", w), ("GET", r)] {
                    if (200..300).contains(&status) {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                        errors.push(format!("{what}: {status} {body}"));
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            errors
        })
    };
    Load {
        stop,
        ok,
        failed,
        task,
    }
}

impl Load {
    async fn stop(self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let errors = self.task.await.unwrap();
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            errors,
        )
    }
}

async fn steps(w: &World, id: i64) -> Vec<String> {
    w.store
        .list_deployment_steps(id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.step)
        .collect()
}

pub async fn expand_contract_rollback_and_restore(pg_admin: Option<&str>) {
    let w = World::start(WorldSpec::default()).await;
    let s = setup(&w, pg_admin).await;
    let root = w.dir.path();
    let id_col = if s.pg {
        "id BIGSERIAL PRIMARY KEY"
    } else {
        "id INTEGER PRIMARY KEY"
    };
    write(
        root,
        "0001_notes.up.sql",
        &format!("-- cutover:phase expand\nCREATE TABLE notes ({id_col}, body TEXT NOT NULL);\n"),
    );
    write(root, "0001_notes.down.sql", "DROP TABLE notes;\n");
    let flags = ["--database-url", s.db_url.as_str()];
    w.release("1.0.0", &flags).await;
    w.release("1.1.0", &flags).await;
    w.release("1.2.0", &flags).await;
    let addr = w.listen(0);

    // 1.0.0 creates its table before it starts.
    let first = live(&deploy(&s.engine, "1.0.0").await.unwrap());
    assert_eq!(
        steps(&w, first).await[..3],
        ["recovery_point", "migrate", "prepare"]
    );
    assert_eq!(http(addr, "POST", "/notes", "from 1.0.0").await.0, 201);

    // 1.1.0 brings an expand migration (a column 1.0.0 does not know) and a contract one.
    write(
        root,
        "0002_author.up.sql",
        "-- cutover:phase expand\nALTER TABLE notes ADD COLUMN author TEXT;\n",
    );
    write(
        root,
        "0002_author.down.sql",
        "ALTER TABLE notes DROP COLUMN author;\n",
    );
    write(
        root,
        "0003_index.up.sql",
        "-- cutover:phase contract\nCREATE INDEX notes_author ON notes (author);\n",
    );
    write(root, "0003_index.down.sql", "DROP INDEX notes_author;\n");
    // Before the migration, 1.1.0's writes would fail: the column does not exist yet.
    assert_eq!(
        http(addr, "POST", "/notes?author=early", "x").await.0,
        500,
        "the column is not there yet"
    );
    let l = load(addr);
    // The deployment starts once the load is really flowing (a bound, not a timing assertion).
    let flowing = tokio::time::Instant::now() + Duration::from_secs(10);
    while l.ok.load(Ordering::Relaxed) == 0 {
        assert!(
            tokio::time::Instant::now() < flowing,
            "the load never got an answer"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = live(&deploy(&s.engine, "1.1.0").await.unwrap());
    let (ok, failed, errors) = l.stop().await;
    assert_eq!(
        failed, 0,
        "the old release kept serving reads and writes: {errors:?}"
    );
    assert!(ok > 4, "the load ran ({ok} requests)");
    assert_eq!(get_version(addr).await, "1.1.0");
    assert_eq!(
        http(addr, "POST", "/notes?author=bob", "from 1.1.0")
            .await
            .0,
        201
    );
    let st = w.store.list_deployment_steps(second).await.unwrap();
    let names: Vec<&str> = st.iter().map(|s| s.step.as_str()).collect();
    assert_eq!(
        names[..3],
        ["recovery_point", "migrate", "prepare"],
        "{names:?}"
    );
    assert_eq!(st[1].intent["phase"], "expand");
    assert_eq!(st[1].intent["migrations"][0], "0002_author");
    assert_eq!(st[1].result.as_ref().unwrap()["ok"], true);
    let contract = st.last().unwrap();
    assert_eq!(
        (contract.step.as_str(), &contract.intent["phase"]),
        ("migrate", &serde_json::json!("contract")),
        "contract migrations run once live"
    );
    assert_eq!(
        contract.result.as_ref().unwrap()["applied"][0],
        "0003_index"
    );
    let points = w
        .store
        .list_audit(&AuditFilter {
            action: Some("db.recovery_point".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(points.len(), 2);
    assert_eq!(points[1].payload["release"], "1.1.0");
    let digest = points[1].payload["digest"].as_str().unwrap();
    assert!(
        digest.starts_with("blake3:") && digest.len() == 7 + 64,
        "{digest}"
    );

    // Rollback: down migrations (contract first), then the old release serves again.
    let back = live(
        &s.engine
            .rollback("staging", None, &|p| {
                println!("    [{} {}] {}", p.deployment, p.state, p.message);
            })
            .await
            .unwrap(),
    );
    assert_eq!(get_version(addr).await, "1.0.0");
    let st = w.store.list_deployment_steps(back).await.unwrap();
    let down = st.iter().find(|s| s.step == "migrate").unwrap();
    assert_eq!(down.intent["phase"], "down");
    assert_eq!(
        down.result.as_ref().unwrap()["reverted"],
        serde_json::json!(["0003_index", "0002_author"])
    );
    assert_eq!(http(addr, "POST", "/notes", "after rollback").await.0, 201);
    assert_eq!(
        http(addr, "POST", "/notes?author=bob", "x").await.0,
        500,
        "the column is gone again"
    );

    // 1.2.0 brings an irreversible contract migration.
    write(
        root,
        "0004_drop_early.up.sql",
        "-- cutover:phase contract\n-- cutover:irreversible\nDELETE FROM notes WHERE body LIKE 'during%';\n",
    );
    live(&deploy(&s.engine, "1.2.0").await.unwrap());
    let (_, body) = http(addr, "GET", "/notes", "").await;
    assert!(!body.contains("during"), "{body}");
    assert!(body.contains("after rollback"), "{body}");
    let before = w
        .store
        .list_deployments(&Default::default())
        .await
        .unwrap()
        .len();
    let e = s
        .engine
        .rollback("staging", None, &|_| {})
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(e.is_user_error(), "{text}");
    assert!(
        text.contains("irreversible") && text.contains("0004_drop_early"),
        "{text}"
    );
    assert!(e.hint().unwrap().contains("--restore-recovery-point"));
    assert_eq!(
        w.store
            .list_deployments(&Default::default())
            .await
            .unwrap()
            .len(),
        before,
        "a refused rollback records nothing"
    );
    assert_eq!(get_version(addr).await, "1.2.0");

    // With the recovery point: back to the data as it was before 1.2.0.
    assert_eq!(
        http(addr, "POST", "/notes", "written on 1.2.0").await.0,
        201
    );
    let restored = live(
        &s.engine
            .rollback_restoring("staging", None, &|p| {
                println!("    [{} {}] {}", p.deployment, p.state, p.message);
            })
            .await
            .unwrap(),
    );
    assert_eq!(get_version(addr).await, "1.0.0");
    let st = w.store.list_deployment_steps(restored).await.unwrap();
    assert!(
        st.iter()
            .any(|s| s.step == "recovery_point" && s.intent["restore"].is_string())
    );
    let (_, body) = http(addr, "GET", "/notes", "").await;
    assert!(body.contains("during"), "the deleted rows are back: {body}");
    assert!(
        !body.contains("written on 1.2.0"),
        "data written since is lost: {body}"
    );
    assert_eq!(w.store.verify_audit().await.unwrap().first_broken, None);
    w.stop().await;
}

/// A failing expand migration stops the deployment before any traffic moves.
pub async fn a_failing_migration_stops_the_deployment() {
    let w = World::start(WorldSpec::default()).await;
    let s = setup(&w, None).await;
    let root = w.dir.path();
    write(
        root,
        "0001_notes.up.sql",
        "-- cutover:phase expand\nCREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);\n",
    );
    let flags = ["--database-url", s.db_url.as_str()];
    w.release("1.0.0", &flags).await;
    w.release("1.1.0", &flags).await;
    live(&deploy(&s.engine, "1.0.0").await.unwrap());
    write(
        root,
        "0002_broken.up.sql",
        "-- cutover:phase expand\nALTER TABLE notes ADD COLUMN x TEXT;\nALTER TABEL notes ADD COLUMN y TEXT;\n",
    );
    let out = deploy(&s.engine, "1.1.0").await.unwrap();
    let (DeployOutcome::Failed { deployment, reason }
    | DeployOutcome::RolledBack { deployment, reason }) = out
    else {
        panic!("expected a failure: {out:?}");
    };
    assert!(reason.contains("0002_broken.up.sql:3:"), "{reason}");
    assert!(reason.contains("syntax error"), "{reason}");
    let names = steps(&w, deployment).await;
    assert!(
        !names.contains(&"prepare".to_owned()),
        "nothing started: {names:?}"
    );
    assert!(!names.contains(&"switch".to_owned()), "{names:?}");
    assert_eq!(get_version(w.listen(0)).await, "1.0.0");
    assert_eq!(
        http(w.listen(0), "POST", "/notes", "still fine").await.0,
        201
    );
    w.stop().await;
}

/// `[database.drill] on_release`: the drill runs right after each release's recovery point and
/// is audited; a failing drill fails the deployment before any migration or traffic moves
/// (`on_failure = "fail"`), or is only recorded and said (`on_failure = "warn"`).
pub async fn the_release_drill_gates_the_deployment() {
    use cutover_config::{Drill, DrillFailure};
    let w = World::start(WorldSpec::default()).await;
    let s = setup(&w, None).await;
    let root = w.dir.path();
    let with_drill = |query: &str, on_failure: DrillFailure| {
        let drill = Drill {
            query: query.into(),
            on_release: true,
            on_failure,
        };
        w.with_config(|c| {
            c.database = Some(Database {
                engine: DbEngine::Sqlite,
                url: Secret::File {
                    file: "app-db-url".into(),
                },
                migrations: "migrations".into(),
                contract: Contract::AfterObserve,
                keep_recovery_points: 10,
                drill: Some(drill),
            });
        })
    };
    let good = with_drill("SELECT count(*) FROM notes", DrillFailure::Fail);
    write(
        root,
        "0001_notes.up.sql",
        "-- cutover:phase expand\nCREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);\n",
    );
    let flags = ["--database-url", s.db_url.as_str()];
    for v in ["1.0.0", "1.1.0", "1.2.0"] {
        w.release(v, &flags).await;
    }
    // The first release's point holds an empty database: the drill is skipped, and recorded.
    let first = live(&deploy(&good, "1.0.0").await.unwrap());
    assert!(steps(&w, first).await.contains(&"drill".to_owned()));
    let events = |action: &'static str| {
        let store = w.store.clone();
        async move {
            store
                .list_audit(&AuditFilter {
                    action: Some(action.into()),
                    ..AuditFilter::default()
                })
                .await
                .unwrap()
        }
    };
    assert_eq!(events("db.drill.skip").await.len(), 1);
    assert_eq!(
        http(w.listen(0), "POST", "/notes", "before 1.1.0").await.0,
        201
    );

    // 1.1.0: point, drill (passes), then the expand migration.
    write(
        root,
        "0002_tags.up.sql",
        "-- cutover:phase expand\nCREATE TABLE tags (name TEXT);\n",
    );
    let second = live(&deploy(&good, "1.1.0").await.unwrap());
    let names = steps(&w, second).await;
    let at = |n: &str| names.iter().position(|s| s == n).unwrap();
    assert!(
        at("recovery_point") < at("drill") && at("drill") < at("migrate"),
        "{names:?}"
    );
    let passed = events("db.drill").await;
    assert_eq!(passed.len(), 1);
    assert_eq!(passed[0].payload["ok"], true);
    assert_eq!(passed[0].payload["rows"], 1);
    assert_eq!(passed[0].payload["version"], "1.1.0");

    // 1.2.0 with a drill that cannot pass: the deployment fails before its migration and
    // before any traffic moves.
    write(
        root,
        "0003_labels.up.sql",
        "-- cutover:phase expand\nCREATE TABLE labels (name TEXT);\n",
    );
    let strict = with_drill("SELECT body FROM notes_that_never_were", DrillFailure::Fail);
    let out = deploy(&strict, "1.2.0").await.unwrap();
    let (DeployOutcome::Failed { deployment, reason }
    | DeployOutcome::RolledBack { deployment, reason }) = out
    else {
        panic!("expected a failure: {out:?}");
    };
    assert!(reason.contains("restore drill"), "{reason}");
    assert!(reason.contains("notes_that_never_were"), "{reason}");
    let names = steps(&w, deployment).await;
    assert!(names.contains(&"drill".to_owned()), "{names:?}");
    for never in ["migrate", "prepare", "switch"] {
        assert!(!names.contains(&never.to_owned()), "{never}: {names:?}");
    }
    let failed = events("db.drill.fail").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].payload["on_failure"], "fail");
    assert_eq!(get_version(w.listen(0)).await, "1.1.0");
    let use_db = |sql: &'static str| {
        let path = s.db_url.clone();
        async move {
            use sqlx::Connection as _;
            let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
            let mut c = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
            let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap();
            c.close().await.unwrap();
            n
        }
    };
    assert_eq!(
        use_db("SELECT count(*) FROM sqlite_master WHERE name = 'labels'").await,
        0,
        "the migration did not run"
    );

    // The same drill with on_failure = "warn": recorded, said, and the release goes live.
    let lenient = with_drill("SELECT body FROM notes_that_never_were", DrillFailure::Warn);
    live(&deploy(&lenient, "1.2.0").await.unwrap());
    assert_eq!(get_version(w.listen(0)).await, "1.2.0");
    let failed = events("db.drill.fail").await;
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[1].payload["on_failure"], "warn");
    assert_eq!(
        use_db("SELECT count(*) FROM sqlite_master WHERE name = 'labels'").await,
        1
    );
    assert_eq!(use_db("SELECT count(*) FROM notes").await, 1);
    assert_eq!(w.store.verify_audit().await.unwrap().first_broken, None);
    w.stop().await;
}
