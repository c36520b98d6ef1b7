//! `cargo xtask bench db [--size 1G] [--runs 4] [--engine postgres|sqlite]`: recovery point and
//! restore times of the application database (cutover-appdb) against the tools run by hand, on a
//! PostgreSQL database and an SQLite file of the given size each (default 1 GB, as issue 10 asks;
//! also `CUTOVER_BENCH_DB_MB`): `pg_dump -Fc` / `pg_restore --clean --if-exists
//! --single-transaction` and `sqlite3 .backup` / `.restore`. cutover adds the digest, the
//! manifest, the digest check during a restore (and, on PostgreSQL, the `pg_restore --list` of
//! tables to drop); the ratio says what that costs.
//!
//! Each database is generated once. Each pair runs `--runs` times (default 4, also
//! `CUTOVER_BENCH_DB_RUNS`), interleaved, alternating which goes first. Before every timed
//! operation the previous one's dirty pages are flushed (`sync`) and the inputs are read once,
//! so both tools start from the same state: everything warm in the page cache, nothing left to
//! write back. The medians are compared, every run is printed, and the load average is printed
//! before and after. Built in debug mode it re-runs itself in release mode (set
//! `CUTOVER_BENCH_DEBUG=1` to measure the debug build anyway).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use cutover_appdb::recovery::{DigestAlgorithm, digest_file};
use cutover_appdb::{AppDb, Engine};
use sqlx::Connection as _;

use crate::bench::{rerun_in_release, size};

/// `1G`, `1GB`, `256M`, `256MB` or a plain number of MB, in MB.
fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim().to_ascii_uppercase();
    let t = t.strip_suffix('B').unwrap_or(&t);
    let (num, factor) = match t.strip_suffix('G') {
        Some(n) => (n, 1024),
        None => (t.strip_suffix('M').unwrap_or(t), 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .with_context(|| format!("--size {s}: expected a size such as 1G or 256M"))?;
    ensure!(n > 0, "--size {s}: the size must be above zero");
    Ok(n * factor)
}

pub fn run(size_arg: Option<&str>, runs: Option<usize>, engine: Option<&str>) -> Result<()> {
    if cfg!(debug_assertions) && std::env::var_os("CUTOVER_BENCH_DEBUG").is_none() {
        return rerun_in_release();
    }
    let mb = match size_arg {
        Some(s) => parse_size(s)?,
        None => size("CUTOVER_BENCH_DB_MB", 1024) as u64,
    };
    let runs = runs
        .unwrap_or_else(|| size("CUTOVER_BENCH_DB_RUNS", 4))
        .max(1);
    let (do_pg, do_sqlite) = match engine {
        None => (true, true),
        Some("postgres" | "pg") => (true, false),
        Some("sqlite") => (false, true),
        Some(other) => bail!("--engine {other}: expected `postgres` or `sqlite`"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let tmp = tempfile::tempdir()?;
    println!("application database recovery points, {mb} MB per engine, {runs} run(s) each");
    println!("load before: {}", load_average());
    let mut rows = Vec::new();
    if do_sqlite {
        let (b, r) = runtime.block_on(bench_sqlite(tmp.path(), mb, runs))?;
        rows.push(("SQLite recovery point", b));
        rows.push(("SQLite restore", r));
    }
    if do_pg {
        println!("starting a throwaway PostgreSQL cluster…");
        let cluster = crate::pg::start()?;
        let pg = runtime.block_on(bench_pg(&cluster, tmp.path(), mb, runs));
        cluster.stop()?;
        let (d, r) = pg?;
        rows.insert(0, ("PostgreSQL restore", r));
        rows.insert(0, ("PostgreSQL recovery point", d));
    }
    println!("load after: {}", load_average());
    println!();
    println!(
        "{:<26} {:>10} {:>10} {:>9}   every run, cutover/by hand (* = cutover went first)",
        "(medians)", "cutover", "by hand", "overhead"
    );
    for (name, (c, h)) in rows {
        let (cm, hm) = (median(&c), median(&h));
        let all: Vec<String> = c
            .iter()
            .zip(&h)
            .enumerate()
            .map(|(i, (c, h))| {
                format!(
                    "{:.2}/{:.2}{} {:+.0}%",
                    c.as_secs_f64(),
                    h.as_secs_f64(),
                    if i % 2 == 1 { "*" } else { "" },
                    (c.as_secs_f64() / h.as_secs_f64() - 1.0) * 100.0
                )
            })
            .collect();
        println!(
            "{name:<26} {:>8.2} s {:>8.2} s {:>+8.1}%   {}",
            cm.as_secs_f64(),
            hm.as_secs_f64(),
            (cm.as_secs_f64() / hm.as_secs_f64() - 1.0) * 100.0,
            all.join("  ")
        );
    }
    Ok(())
}

/// The same starting state for whichever tool runs next: the previous operation's dirty pages
/// written back (else the next one pays for them), and `inputs` read once (warm in the page cache).
fn settle(inputs: &[&Path]) -> Result<()> {
    let status = Command::new("sync").status().context("running sync")?;
    ensure!(status.success(), "sync failed: {status}");
    for p in inputs {
        let mut f = std::fs::File::open(p).with_context(|| format!("reading {}", p.display()))?;
        std::io::copy(&mut f, &mut std::io::sink())?;
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
    let n = v.len();
    if n.is_multiple_of(2) {
        (v[n / 2 - 1] + v[n / 2]) / 2
    } else {
        v[n / 2]
    }
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
    // Where a recovery point's time goes besides the copy: the digest (either algorithm) of the
    // file, warm, and the flush of a fresh copy.
    settle(&[&path])?;
    for algorithm in [DigestAlgorithm::Sha256, DigestAlgorithm::Blake3] {
        let t = Instant::now();
        digest_file(&path, algorithm)?;
        let took = t.elapsed().as_secs_f64();
        println!(
            "  {} of the file: {took:.2} s ({:.0} MB/s)",
            algorithm.as_str(),
            size as f64 / 1e6 / took
        );
    }
    let db = AppDb::new(Engine::Sqlite, path.display().to_string(), dir);
    let by_hand = dir.join("by-hand.sqlite");
    let (mut backup, mut restore): (Pair, Pair) = Default::default();
    for run in 0..runs {
        let hand_first = run % 2 == 0;
        let _ = std::fs::remove_file(&by_hand);
        let hand = || {
            settle(&[&path])?;
            let mut cmd = Command::new("sqlite3");
            cmd.arg(&path)
                .arg(format!(".backup '{}'", by_hand.display()));
            timed("sqlite3 .backup", cmd)
        };
        if hand_first {
            backup.1.push(hand()?);
        }
        settle(&[&path])?;
        let t = Instant::now();
        let point = db.snapshot("bench", None).await?;
        backup.0.push(t.elapsed());
        if !hand_first {
            backup.1.push(hand()?);
        }

        let inputs = [point.path(), by_hand.clone()];
        let inputs: Vec<&Path> = inputs.iter().map(|p| p.as_path()).collect();
        let hand = || {
            settle(&inputs)?;
            let mut cmd = Command::new("sqlite3");
            cmd.arg(&path)
                .arg(format!(".restore '{}'", by_hand.display()));
            timed("sqlite3 .restore", cmd)
        };
        if hand_first {
            restore.1.push(hand()?);
        }
        settle(&inputs)?;
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
            settle(&[])?;
            let mut cmd = Command::new("pg_dump");
            cmd.args(["--format=custom", "--file"])
                .arg(&by_hand)
                .args(["--dbname", &url]);
            timed("pg_dump", cmd)
        };
        if hand_first {
            dump.1.push(hand()?);
        }
        settle(&[])?;
        let t = Instant::now();
        let point = db.snapshot("bench", None).await?;
        dump.0.push(t.elapsed());
        if !hand_first {
            dump.1.push(hand()?);
        }

        let inputs = [point.path(), by_hand.clone()];
        let inputs: Vec<&Path> = inputs.iter().map(|p| p.as_path()).collect();
        let hand = || {
            settle(&inputs)?;
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
        settle(&inputs)?;
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
