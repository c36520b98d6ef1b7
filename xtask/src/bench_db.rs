//! `cargo xtask bench db [--size-mb N]`: recovery point and restore times of the application
//! database (cutover-appdb) against the tools run by hand, on a PostgreSQL database and an SQLite
//! file of N MB each (default 1024, also `CUTOVER_BENCH_DB_MB`): `pg_dump -Fc` / `pg_restore
//! --clean --if-exists` and `sqlite3 .backup` / `.restore`. cutover adds the sha256 digest, the
//! manifest, the digest check before a restore (and, on PostgreSQL, the `pg_restore --list` of
//! tables to drop); the ratio says what that costs. Built in debug mode it re-runs itself in
//! release mode (set `CUTOVER_BENCH_DEBUG=1` to measure the debug build anyway).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use cutover_appdb::{AppDb, Engine};
use sqlx::Connection as _;

use crate::bench::{rerun_in_release, size};

pub fn run(size_mb: Option<u64>) -> Result<()> {
    if cfg!(debug_assertions) && std::env::var_os("CUTOVER_BENCH_DEBUG").is_none() {
        return rerun_in_release();
    }
    let mb = size_mb.unwrap_or_else(|| size("CUTOVER_BENCH_DB_MB", 1024) as u64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let tmp = tempfile::tempdir()?;
    println!("application database recovery points, {mb} MB per engine");
    let sqlite = runtime.block_on(bench_sqlite(tmp.path(), mb))?;
    println!("starting a throwaway PostgreSQL cluster…");
    let cluster = crate::pg::start()?;
    let pg = runtime.block_on(bench_pg(&cluster, tmp.path(), mb));
    cluster.stop()?;
    let pg = pg?;
    println!();
    println!(
        "{:<28} {:>12} {:>12} {:>9}",
        "", "cutover", "by hand", "overhead"
    );
    for (name, (c, h)) in [
        ("PostgreSQL recovery point", pg.0),
        ("PostgreSQL restore", pg.1),
        ("SQLite recovery point", sqlite.0),
        ("SQLite restore", sqlite.1),
    ] {
        println!(
            "{name:<28} {:>10.2} s {:>10.2} s {:>8.1}%",
            c.as_secs_f64(),
            h.as_secs_f64(),
            (c.as_secs_f64() / h.as_secs_f64() - 1.0) * 100.0
        );
    }
    Ok(())
}

type Pair = (Duration, Duration);

fn timed(what: &str, mut cmd: Command) -> Result<Duration> {
    let t = Instant::now();
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    ensure!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(t.elapsed())
}

async fn bench_sqlite(dir: &Path, mb: u64) -> Result<(Pair, Pair)> {
    let path = dir.join("app.sqlite");
    let t = Instant::now();
    {
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Off);
        let mut c = sqlx::SqliteConnection::connect_with(&opts).await?;
        sqlx::raw_sql("CREATE TABLE blob (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
            .execute(&mut c)
            .await?;
        // 1 KiB random rows: incompressible, like real data after compression.
        let rows = mb * 1024;
        sqlx::query("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) INSERT INTO blob (payload) SELECT randomblob(1000) FROM n")
            .bind(i64::try_from(rows)?)
            .execute(&mut c)
            .await?;
        sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut c)
            .await?;
        c.close().await?;
    }
    let size = std::fs::metadata(&path)?.len();
    println!(
        "  SQLite file: {:.0} MB, generated in {:.1?}",
        size as f64 / 1e6,
        t.elapsed()
    );
    let db = AppDb::new(Engine::Sqlite, path.display().to_string(), dir);

    let by_hand = dir.join("by-hand.sqlite");
    let mut cmd = Command::new("sqlite3");
    cmd.arg(&path)
        .arg(format!(".backup '{}'", by_hand.display()));
    let hand_backup = timed("sqlite3 .backup", cmd)?;
    let t = Instant::now();
    let point = db.snapshot("bench", None).await?;
    let cutover_backup = t.elapsed();

    let mut cmd = Command::new("sqlite3");
    cmd.arg(&path)
        .arg(format!(".restore '{}'", by_hand.display()));
    let hand_restore = timed("sqlite3 .restore", cmd)?;
    let t = Instant::now();
    db.restore(&point).await?;
    let cutover_restore = t.elapsed();
    let _ = std::fs::remove_file(&by_hand);
    let _ = std::fs::remove_file(point.path());
    Ok((
        (cutover_backup, hand_backup),
        (cutover_restore, hand_restore),
    ))
}

async fn bench_pg(cluster: &crate::pg::PgCluster, dir: &Path, mb: u64) -> Result<(Pair, Pair)> {
    let mut c = sqlx::PgConnection::connect(&cluster.url).await?;
    sqlx::raw_sql("CREATE DATABASE bench_appdb")
        .execute(&mut c)
        .await?;
    c.close().await?;
    let url = cluster.url_for("bench_appdb");
    let t = Instant::now();
    let mut c = sqlx::PgConnection::connect(&url).await?;
    sqlx::raw_sql("CREATE TABLE blob (id BIGINT PRIMARY KEY, payload TEXT NOT NULL)")
        .execute(&mut c)
        .await?;
    // ~1 KiB of hex per row: 32 md5s of random numbers (compresses about 2:1, like text data).
    let rows = mb * 1024;
    let chunk = 50_000;
    let mut from = 1;
    while from <= rows {
        let to = (from + chunk - 1).min(rows);
        sqlx::query(
            "INSERT INTO blob SELECT g, (SELECT string_agg(md5(random()::text || i::text || g::text), '') FROM generate_series(1, 32) i) FROM generate_series($1::bigint, $2::bigint) g",
        )
        .bind(i64::try_from(from)?)
        .bind(i64::try_from(to)?)
        .execute(&mut c)
        .await?;
        from = to + 1;
    }
    let size: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(&mut c)
        .await?;
    c.close().await?;
    println!(
        "  PostgreSQL database: {:.0} MB, generated in {:.1?}",
        size as f64 / 1e6,
        t.elapsed()
    );
    let db = AppDb::new(Engine::Postgres, &url, dir);

    let by_hand = dir.join("by-hand.dump");
    let mut cmd = Command::new("pg_dump");
    cmd.args(["--format=custom", "--file"])
        .arg(&by_hand)
        .args(["--dbname", &url]);
    let hand_dump = timed("pg_dump", cmd)?;
    let t = Instant::now();
    let point = db.snapshot("bench", None).await?;
    let cutover_dump = t.elapsed();

    let mut cmd = Command::new("pg_restore");
    cmd.args([
        "--clean",
        "--if-exists",
        "--no-owner",
        "--single-transaction",
        "--exit-on-error",
        "--dbname",
        &url,
    ])
    .arg(&by_hand);
    let hand_restore = timed("pg_restore", cmd)?;
    let t = Instant::now();
    db.restore(&point).await?;
    let cutover_restore = t.elapsed();
    let _ = std::fs::remove_file(&by_hand);
    Ok(((cutover_dump, hand_dump), (cutover_restore, hand_restore)))
}
