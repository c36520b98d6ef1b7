//! `cargo xtask bench audit`: the audit append rate (events/s) on SQLite and PostgreSQL with 1 and
//! 4 writers, and the `audit verify` rate over 1,000,000 events on both, with ratios.
//!
//! Runs against a fresh SQLite file in a temp dir and a throwaway PostgreSQL cluster. Built in
//! debug mode it re-runs itself in release mode (timings of a debug build mean nothing).
//! Sizes can be lowered for a quick look: `CUTOVER_BENCH_AUDIT_APPENDS`, `CUTOVER_BENCH_AUDIT_VERIFY`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bench::{rerun_in_release, size};
use anyhow::Result;
use chrono::Utc;
use cutover_core::audit::{AuditEvent, ChainVerifier, GENESIS_HASH, canonical_json};
use cutover_store::{Audit, PgStore, SqliteStore, Store};
use serde_json::json;
use sqlx::Connection;

/// Events appended per configuration (split among the writers).
const APPENDS: usize = 4_000;
/// Events in the chain that `verify` reads.
const VERIFY_EVENTS: usize = 1_000_000;
/// Rows per INSERT when filling the chain for the verify benchmark (under both bind-count limits).
const FILL_BATCH: usize = 2_000;

pub fn run() -> Result<()> {
    if cfg!(debug_assertions) {
        return rerun_in_release();
    }
    let appends = size("CUTOVER_BENCH_AUDIT_APPENDS", APPENDS);
    let verify_events = size("CUTOVER_BENCH_AUDIT_VERIFY", VERIFY_EVENTS);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("starting a throwaway PostgreSQL cluster…");
    let cluster = crate::pg::start()?;
    let tmp = tempfile::tempdir()?;
    let result = runtime.block_on(bench(&cluster, tmp.path(), appends, verify_events));
    cluster.stop()?;
    result
}

struct Rates {
    sqlite: [f64; 2],
    postgres: [f64; 2],
    verify_sqlite: (Duration, u64),
    verify_postgres: (Duration, u64),
    verify_floor: Duration,
}

async fn bench(
    cluster: &crate::pg::PgCluster,
    tmp: &std::path::Path,
    appends: usize,
    verify_events: usize,
) -> Result<()> {
    let mut db_counter = 0;
    let mut fresh_pg = || {
        db_counter += 1;
        let name = format!("bench_audit_{db_counter}");
        let admin = cluster.url.clone();
        let url = cluster.url_for(&name);
        async move {
            let mut c = sqlx::PgConnection::connect(&admin).await?;
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut c)
                .await?;
            c.close().await?;
            anyhow::Ok(url)
        }
    };

    let mut rates = Rates {
        sqlite: [0.0; 2],
        postgres: [0.0; 2],
        verify_sqlite: (Duration::ZERO, 0),
        verify_postgres: (Duration::ZERO, 0),
        verify_floor: Duration::ZERO,
    };
    for (i, writers) in [1usize, 4].into_iter().enumerate() {
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&tmp.join(format!("append-{writers}.db"))).await?);
        rates.sqlite[i] = append_rate(store, writers, appends).await?;
        let store: Arc<dyn Store> = Arc::new(PgStore::open(&fresh_pg().await?).await?);
        rates.postgres[i] = append_rate(store, writers, appends).await?;
    }

    println!("filling a chain of {verify_events} events on each backend…");
    let sqlite = SqliteStore::open(&tmp.join("verify.db")).await?;
    fill_sqlite(&sqlite, verify_events).await?;
    rates.verify_sqlite = timed_verify(&sqlite, verify_events).await?;
    sqlite.close().await;
    let postgres = PgStore::open(&fresh_pg().await?).await?;
    fill_postgres(&postgres, verify_events).await?;
    rates.verify_postgres = timed_verify(&postgres, verify_events).await?;
    postgres.close().await;
    rates.verify_floor = hashing_floor(verify_events);

    print_table(&rates, appends, verify_events);
    Ok(())
}

async fn append_rate(store: Arc<dyn Store>, writers: usize, appends: usize) -> Result<f64> {
    let each = appends / writers;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..each {
                let payload = json!({"environment": "production", "version": "1.2.3", "host": format!("web-{w}"), "i": i});
                store.append_audit(&Audit::new(format!("writer-{w}"), "deploy.step", format!("deployment/{i}"), payload)).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = start.elapsed();
    let report = store.verify_audit().await?;
    anyhow::ensure!(
        report.first_broken.is_none() && report.events == (each * writers) as u64,
        "the chain does not hold after the append benchmark: {report:?}"
    );
    store.close().await;
    Ok((each * writers) as f64 / elapsed.as_secs_f64())
}

/// The chain's events in order, `FILL_BATCH` at a time: (event, canonical payload, at in µs).
fn chain_batches(n: usize) -> impl Iterator<Item = Vec<(AuditEvent, String, i64)>> {
    let start = Utc::now() - chrono::Duration::days(365);
    let mut prev = GENESIS_HASH.to_owned();
    let mut seq = 0i64;
    std::iter::from_fn(move || {
        if seq as usize >= n {
            return None;
        }
        let mut batch = Vec::with_capacity(FILL_BATCH);
        while batch.len() < FILL_BATCH && (seq as usize) < n {
            seq += 1;
            let payload =
                json!({"environment": "production", "version": "1.2.3", "host": "web-1", "i": seq});
            let e = AuditEvent::seal(
                seq,
                start + chrono::Duration::milliseconds(seq),
                "bench",
                "deploy.step",
                format!("deployment/{seq}"),
                payload,
                prev.clone(),
            );
            prev = e.hash.clone();
            let p = canonical_json(&e.payload);
            let at = e.at.timestamp_micros();
            batch.push((e, p, at));
        }
        Some(batch)
    })
}

const INSERT_AUDIT: &str =
    "INSERT INTO audit (seq, at_us, actor, action, subject, payload, prev_hash, hash) ";

async fn fill_sqlite(store: &SqliteStore, n: usize) -> Result<()> {
    let mut tx = store.pool().begin().await?;
    for batch in chain_batches(n) {
        let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(INSERT_AUDIT);
        qb.push_values(batch, |mut b, (e, p, at)| {
            b.push_bind(e.seq)
                .push_bind(at)
                .push_bind(e.actor)
                .push_bind(e.action)
                .push_bind(e.subject)
                .push_bind(p)
                .push_bind(e.prev_hash)
                .push_bind(e.hash);
        });
        qb.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn fill_postgres(store: &PgStore, n: usize) -> Result<()> {
    let mut tx = store.pool().begin().await?;
    for batch in chain_batches(n) {
        let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new(INSERT_AUDIT);
        qb.push_values(batch, |mut b, (e, p, at)| {
            b.push_bind(e.seq)
                .push_bind(at)
                .push_bind(e.actor)
                .push_bind(e.action)
                .push_bind(e.subject)
                .push_bind(p)
                .push_bind(e.prev_hash)
                .push_bind(e.hash);
        });
        qb.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    sqlx::query("ANALYZE audit").execute(store.pool()).await?;
    Ok(())
}

async fn timed_verify(store: &dyn Store, n: usize) -> Result<(Duration, u64)> {
    let start = Instant::now();
    let report = store.verify_audit().await?;
    let elapsed = start.elapsed();
    anyhow::ensure!(
        report.first_broken.is_none() && report.events == n as u64,
        "verify failed: {report:?}"
    );
    Ok((elapsed, report.events))
}

/// Verifying the same chain from memory: the CPU cost of hashing, no database.
fn hashing_floor(n: usize) -> Duration {
    let mut verifier = ChainVerifier::new();
    let mut total = Duration::ZERO;
    for batch in chain_batches(n) {
        let start = Instant::now();
        for (e, p, _) in &batch {
            if verifier.push_stored(e, p).is_err() {
                break;
            }
        }
        total += start.elapsed();
    }
    total
}

fn thousands(x: f64) -> String {
    let n = x.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print_table(r: &Rates, appends: usize, verify_events: usize) {
    println!();
    println!(
        "audit append ({appends} events per run; each append is its own committed transaction)"
    );
    println!(
        "{:<22} {:>14} {:>14} {:>12}",
        "events/s", "SQLite", "PostgreSQL", "PG / SQLite"
    );
    for (i, label) in ["1 writer", "4 writers"].into_iter().enumerate() {
        println!(
            "{:<22} {:>14} {:>14} {:>11.2}x",
            label,
            thousands(r.sqlite[i]),
            thousands(r.postgres[i]),
            r.postgres[i] / r.sqlite[i]
        );
    }
    println!(
        "{:<22} {:>13.2}x {:>13.2}x",
        "4 writers / 1 writer",
        r.sqlite[1] / r.sqlite[0],
        r.postgres[1] / r.postgres[0]
    );
    println!();
    println!(
        "audit verify over {} events",
        thousands(verify_events as f64)
    );
    let floor = verify_events as f64 / r.verify_floor.as_secs_f64();
    for (label, (d, n)) in [
        ("SQLite", r.verify_sqlite),
        ("PostgreSQL", r.verify_postgres),
    ] {
        let rate = n as f64 / d.as_secs_f64();
        println!(
            "{:<22} {:>8.2} s {:>14} events/s   {:.2}x the in-memory hashing floor",
            label,
            d.as_secs_f64(),
            thousands(rate),
            rate / floor
        );
    }
    println!(
        "{:<22} {:>8.2} s {:>14} events/s",
        "hashing floor",
        r.verify_floor.as_secs_f64(),
        thousands(floor)
    );
}
