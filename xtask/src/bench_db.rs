//! `cargo xtask bench db [--size-mb N]`: recovery point and restore times of the application
//! database (cutover-appdb) against the tools run by hand, on a PostgreSQL database and an SQLite
//! file of N MB each (default 1024, also `CUTOVER_BENCH_DB_MB`): `pg_dump -Fc` / `pg_restore
//! --clean --if-exists` and `sqlite3 .backup` / `.restore`. cutover adds the sha256 digest, the
//! manifest, the digest check during a restore (and, on PostgreSQL, the `pg_restore --list` of
//! tables to drop); the ratio says what that costs. Each pair runs `CUTOVER_BENCH_DB_RUNS` times
//! (default 4), alternating which goes first: the second of a pair pays for the first's garbage
//! (PostgreSQL's dead tuples after a restore, the page cache), so an even count is fair. The
//! medians are compared, and the load average is printed before and after. Built in debug mode
//! it re-runs itself in release mode (set `CUTOVER_BENCH_DEBUG=1` to measure the debug build
//! anyway).

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
    let runs = size("CUTOVER_BENCH_DB_RUNS", 4).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let tmp = tempfile::tempdir()?;
    println!("application database recovery points, {mb} MB per engine, {runs} run(s) each");
    println!("load before: {}", load_average());
    let sqlite = runtime.block_on(bench_sqlite(tmp.path(), mb, runs))?;
    println!("starting a throwaway PostgreSQL cluster…");
    let cluster = crate::pg::start()?;
    let pg = runtime.block_on(bench_pg(&cluster, tmp.path(), mb, runs));
    cluster.stop()?;
    let pg = pg?;
    println!("load after: {}", load_average());
    println!();
    println!(
        "{:<28} {:>12} {:>12} {:>9}   (medians; every run: cutover / by hand)",
        "", "cutover", "by hand", "overhead"
    );
    for (name, (c, h)) in [
        ("PostgreSQL recovery point", pg.0),
        ("PostgreSQL restore", pg.1),
        ("SQLite recovery point", sqlite.0),
        ("SQLite restore", sqlite.1),
    ] {
        let (cm, hm) = (median(&c), median(&h));
        let all: Vec<String> = c
            .iter()
            .zip(&h)
            .map(|(c, h)| format!("{:.2}/{:.2}", c.as_secs_f64(), h.as_secs_f64()))
            .collect();
        println!(
            "{name:<28} {:>10.2} s {:>10.2} s {:>8.1}%   {}",
            cm.as_secs_f64(),
            hm.as_secs_f64(),
            (cm.as_secs_f64() / hm.as_secs_f64() - 1.0) * 100.0,
            all.join("  ")
        );
    }
    Ok(())
}

/// `/proc/loadavg`'s three averages (empty where there is none).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

/// Every run's time: (cutover, by hand).
type Pair = (Vec<Duration>, Vec<Duration>);

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

async fn bench_sqlite(dir: &Path, mb: u64, runs: usize) -> Result<(Pair, Pair)> {
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
    let (mut backup, mut restore): (Pair, Pair) = Default::default();
    for run in 0..runs {
        let hand_first = run % 2 == 0;
        let _ = std::fs::remove_file(&by_hand);
        let hand = || {
            let mut cmd = Command::new("sqlite3");
            cmd.arg(&path)
                .arg(format!(".backup '{}'", by_hand.display()));
            timed("sqlite3 .backup", cmd)
        };
        if hand_first {
            backup.1.push(hand()?);
        }
        let t = Instant::now();
        let point = db.snapshot("bench", None).await?;
        backup.0.push(t.elapsed());
        if !hand_first {
            backup.1.push(hand()?);
        }

        let hand = || {
            let mut cmd = Command::new("sqlite3");
            cmd.arg(&path)
                .arg(format!(".restore '{}'", by_hand.display()));
            timed("sqlite3 .restore", cmd)
        };
        if hand_first {
            restore.1.push(hand()?);
        }
        let t = Instant::now();
        db.restore(&point).await?;
        restore.0.push(t.elapsed());
        if !hand_first {
            restore.1.push(hand()?);
        }
        let _ = std::fs::remove_file(point.path());
        let _ = std::fs::remove_file(point.manifest_path());
    }
    let _ = std::fs::remove_file(&by_hand);
    Ok((backup, restore))
}

async fn bench_pg(
    cluster: &crate::pg::PgCluster,
    dir: &Path,
    mb: u64,
    runs: usize,
) -> Result<(Pair, Pair)> {
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
    let (mut dump, mut restore): (Pair, Pair) = Default::default();
    for run in 0..runs {
        let hand_first = run % 2 == 0;
        let hand = || {
            let mut cmd = Command::new("pg_dump");
            cmd.args(["--format=custom", "--file"])
                .arg(&by_hand)
                .args(["--dbname", &url]);
            timed("pg_dump", cmd)
        };
        if hand_first {
            dump.1.push(hand()?);
        }
        let t = Instant::now();
        let point = db.snapshot("bench", None).await?;
        dump.0.push(t.elapsed());
        if !hand_first {
            dump.1.push(hand()?);
        }

        let hand = || {
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
            timed("pg_restore", cmd)
        };
        if hand_first {
            restore.1.push(hand()?);
        }
        let t = Instant::now();
        db.restore(&point).await?;
        restore.0.push(t.elapsed());
        if !hand_first {
            restore.1.push(hand()?);
        }
        let _ = std::fs::remove_file(point.path());
        let _ = std::fs::remove_file(point.manifest_path());
    }
    let _ = std::fs::remove_file(&by_hand);
    Ok((dump, restore))
}
