//! `cutover audit` and `cutover audit verify` on SQLite and PostgreSQL, with rows tampered with
//! directly in the database.

use crate::support::Project;

fn sqlite_url(p: &Project) -> String {
    format!("sqlite:{}", p.path().join(".cutover/state.db").display())
}

/// Runs `statements` against the project's SQLite store, behind cutover's back.
fn tamper_sqlite(p: &Project, statements: &[&str]) {
    let url = sqlite_url(p);
    tokio_block(async move {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        for s in statements {
            sqlx::query(s).execute(&mut conn).await.unwrap();
        }
    });
}

fn tokio_block<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Several events: init, then re-inits.
fn project_with_events(extra_args: &[&str]) -> Project {
    let p = Project::new();
    let mut args = extra_args.to_vec();
    args.push("init");
    p.cutover(&args).success();
    args.push("--force");
    for _ in 0..4 {
        p.cutover(&args).success();
    }
    p
}

#[test]
fn an_intact_chain_verifies() {
    let p = project_with_events(&[]);
    let run = p.cutover(&["--json", "audit", "verify"]);
    run.success();
    assert_eq!(
        run.json(),
        serde_json::json!({"ok": true, "events": 5, "first_broken": null})
    );
    let listed = p.cutover(&[
        "--json",
        "audit",
        "--action",
        "project.initialized",
        "--limit",
        "2",
    ]);
    listed.success();
    let events = listed.json()["events"].as_array().unwrap().clone();
    assert_eq!(
        events
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [4, 5]
    );
    assert_eq!(events[1]["prev_hash"], events[0]["hash"]);
}

#[test]
fn an_altered_row_is_named() {
    let p = project_with_events(&[]);
    tamper_sqlite(
        &p,
        &["UPDATE audit SET actor = 'mallory@example.com' WHERE seq = 3"],
    );
    let run = p.cutover(&["audit", "verify"]);
    run.code(1);
    insta::assert_snapshot!(run.stderr.lines().next().unwrap(), @"error: audit chain broken at seq 3: contents hash to [HASH] but the stored hash is [HASH] (altered?)");
}

#[test]
fn deleted_inserted_and_reordered_rows_are_named() {
    let p = project_with_events(&[]);
    tamper_sqlite(&p, &["DELETE FROM audit WHERE seq = 2"]);
    let run = p.cutover(&["--json", "audit", "verify"]);
    run.code(1);
    assert_eq!(run.json()["first_broken"]["seq"], 2);

    let p = project_with_events(&[]);
    // An inserted event copied from another one, renumbered into the middle.
    tamper_sqlite(
        &p,
        &[
            "UPDATE audit SET seq = seq + 1000 WHERE seq >= 3",
            "UPDATE audit SET seq = seq - 999 WHERE seq >= 1003",
            "INSERT INTO audit (seq, at_us, actor, action, subject, payload, prev_hash, hash) \
         SELECT 3, at_us, actor, action, subject, payload, prev_hash, hash FROM audit WHERE seq = 5",
        ],
    );
    let run = p.cutover(&["--json", "audit", "verify"]);
    run.code(1);
    assert_eq!(run.json()["first_broken"]["seq"], 3);

    let p = project_with_events(&[]);
    // Two events swapped (their seqs exchanged).
    tamper_sqlite(
        &p,
        &[
            "UPDATE audit SET seq = 100 WHERE seq = 2",
            "UPDATE audit SET seq = 2 WHERE seq = 3",
            "UPDATE audit SET seq = 3 WHERE seq = 100",
        ],
    );
    let run = p.cutover(&["--json", "audit", "verify"]);
    run.code(1);
    assert_eq!(run.json()["first_broken"]["seq"], 2);
}

fn pg_url() -> String {
    std::env::var("CUTOVER_TEST_PG_URL").expect(
        "CUTOVER_TEST_PG_URL is not set: run `cargo xtask test`, which starts a throwaway PostgreSQL",
    )
}

/// A fresh database on the test cluster; returns its URL.
fn pg_database() -> String {
    let admin = pg_url();
    let name = format!("cutover_cli_{}", std::process::id()) + &format!("_{}", rand_suffix());
    let admin2 = admin.clone();
    let name2 = name.clone();
    tokio_block(async move {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin2).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name2}"))
            .execute(&mut conn)
            .await
            .unwrap();
    });
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now()) % 1_000_000_000
}

#[test]
fn postgres_chain_verifies_and_detects_tampering() {
    let url = pg_database();
    let p = project_with_events(&["--database", &url]);
    let ok = p.cutover(&["--database", &url, "--json", "audit", "verify"]);
    ok.success();
    assert_eq!(ok.json()["events"], 5);
    // The project's SQLite store was not used.
    assert!(!p.path().join(".cutover/state.db").exists());
    let url2 = url.clone();
    tokio_block(async move {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&url2).await.unwrap();
        sqlx::query("UPDATE audit SET payload = '{\"forged\":true}' WHERE seq = 4")
            .execute(&mut conn)
            .await
            .unwrap();
    });
    let broken = p.cutover_with(
        &["--json", "audit", "verify"],
        &[("CUTOVER_DATABASE_URL", &url)],
    );
    broken.code(1);
    assert_eq!(broken.json()["first_broken"]["seq"], 4);
}

#[test]
fn unreachable_database_is_a_usage_error_without_the_password() {
    let p = Project::new();
    let run = p.cutover(&[
        "--database",
        "postgres://cutover:hunter2@127.0.0.1:1/state",
        "audit",
    ]);
    run.code(2);
    assert!(
        !run.stderr.contains("hunter2"),
        "the password leaked: {}",
        run.stderr
    );
    assert!(run.stderr.starts_with("error:"), "{}", run.stderr);
    assert!(
        run.stderr.contains("127.0.0.1:1"),
        "names the server: {}",
        run.stderr
    );
}

#[test]
fn a_store_from_a_newer_cutover_is_refused_and_untouched() {
    let p = Project::new();
    p.cutover(&["init"]).success();
    tamper_sqlite(
        &p,
        &[
            "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) \
         VALUES (99991231000000, 'from the future', CURRENT_TIMESTAMP, 1, x'00', 0)",
        ],
    );
    let before = std::fs::read(p.path().join(".cutover/state.db")).unwrap();
    let run = p.cutover(&["audit"]);
    run.code(2);
    assert!(run.stderr.contains("newer"), "{}", run.stderr);
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
    let after = std::fs::read(p.path().join(".cutover/state.db")).unwrap();
    assert_eq!(before.len(), after.len(), "nothing was written");
}

#[test]
fn since_accepts_times_dates_and_durations_and_rejects_the_rest() {
    let p = project_with_events(&[]);
    for since in ["2000-01-01", "2000-01-01T00:00:00Z", "3650d"] {
        let run = p.cutover(&["--json", "audit", "--since", since]);
        run.success();
        assert_eq!(
            run.json()["events"].as_array().unwrap().len(),
            5,
            "--since {since}"
        );
    }
    let future = p.cutover(&["--json", "audit", "--since", "2999-01-01"]);
    assert_eq!(future.json()["events"].as_array().unwrap().len(), 0);
    let bad = p.cutover(&["audit", "--since", "yesterday-ish"]);
    bad.code(2);
    assert!(bad.stderr.contains("is not a time"));
}
