//! `cargo xtask bench queue`: queue throughput (enqueue and dispatch of no-op jobs, jobs/s) on
//! SQLite and PostgreSQL with 1 and 4 workers, and the time from enqueueing a hotfix job to its
//! start behind a backlog of 10,000 queued jobs.
//!
//! Every enqueue and completion writes its audit event in the same transaction (the store's rule),
//! so these are the rates of the audited queue. Two paths are measured: `single` (one job per
//! enqueue, claim and completion transaction: workers of capacity 1 that write each completion at
//! once) and `batched` (enqueues of [`ENQUEUE_BATCH`] jobs, workers of capacity [`CAPACITY`] (by default) that
//! claim their free slots in one statement and write completions together every [`FLUSH_MS`]).
//! Built in debug mode it re-runs itself in release mode. Sizes: `CUTOVER_BENCH_QUEUE_JOBS`
//! (default 4,000 single, 20,000 batched), `CUTOVER_BENCH_QUEUE_BACKLOG` (default 10,000).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::bench::{rerun_in_release, size};
use anyhow::{Context, Result};
use async_trait::async_trait;
use cutover_core::queue::{JobClass, QueuePolicy};
use cutover_queue::{JobError, JobHandler, Registry, WorkerConfig, run_workers, shutdown_signal};
use cutover_store::{EnqueueJob, Job, Store};
use serde_json::{Value, json};
use sqlx::Connection;

pub fn run() -> Result<()> {
    if cfg!(debug_assertions) {
        return rerun_in_release();
    }
    let jobs = size("CUTOVER_BENCH_QUEUE_JOBS", 4_000);
    let batched_jobs = size("CUTOVER_BENCH_QUEUE_JOBS", 20_000);
    let backlog = size("CUTOVER_BENCH_QUEUE_BACKLOG", 10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("starting a throwaway PostgreSQL cluster…");
    let cluster = crate::pg::start()?;
    let tmp = tempfile::tempdir()?;
    let result = runtime.block_on(bench(&cluster, tmp.path(), jobs, batched_jobs, backlog));
    cluster.stop()?;
    result
}

/// Counts the jobs it ran (the run is complete once the count reaches the jobs enqueued; the
/// completion itself is written right after, so the figure is a hair optimistic).
struct Noop(Arc<AtomicUsize>);

#[async_trait]
impl JobHandler for Noop {
    async fn run(&self, _job: &Job) -> Result<Value, JobError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(Value::Null)
    }
}

fn registry(count: &Arc<AtomicUsize>) -> Registry {
    let mut r = Registry::new();
    r.register("noop", Arc::new(Noop(Arc::clone(count))));
    r
}

/// Jobs per enqueue transaction on the batched path.
const ENQUEUE_BATCH: usize = 500;
/// Jobs a worker runs at once on the batched path (`CUTOVER_BENCH_QUEUE_CAPACITY`).
const CAPACITY: usize = 64;
/// How long finished jobs wait to be completed together on the batched path, in milliseconds
/// (`CUTOVER_BENCH_QUEUE_FLUSH_MS`).
const FLUSH_MS: usize = 5;

fn capacity() -> usize {
    size("CUTOVER_BENCH_QUEUE_CAPACITY", CAPACITY).max(1)
}

fn flush() -> Duration {
    Duration::from_millis(size("CUTOVER_BENCH_QUEUE_FLUSH_MS", FLUSH_MS) as u64)
}

/// The two paths measured (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Single,
    Batched,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Single => "single",
            Path::Batched => "batched",
        }
    }
}

fn config(name: &str, path: Path) -> WorkerConfig {
    let base = WorkerConfig {
        poll: Duration::from_millis(20),
        ..WorkerConfig::new(name, "bench@example.com")
    };
    match path {
        Path::Single => WorkerConfig {
            capacity: 1,
            flush: Duration::ZERO,
            max_batch: 1,
            ..base
        },
        Path::Batched => WorkerConfig {
            capacity: capacity(),
            flush: flush(),
            max_batch: 256,
            ..base
        },
    }
}

/// Enqueues `n` no-op jobs from `writers` tasks, of every class (`class: None`) or of one.
async fn enqueue_noops(
    store: &Arc<dyn Store>,
    n: usize,
    writers: usize,
    class: Option<JobClass>,
    path: Path,
) -> Result<Duration> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = Arc::clone(store);
        let each = n / writers + usize::from(w < n % writers);
        tasks.push(tokio::spawn(async move {
            let policy = QueuePolicy::default();
            let job = |i: usize| {
                let class = class.unwrap_or(JobClass::ALL[i % 4]);
                EnqueueJob::new(class, "noop", json!({"w": w, "i": i}))
            };
            match path {
                Path::Single => {
                    for i in 0..each {
                        store
                            .enqueue_job(&job(i), &policy, "bench@example.com")
                            .await?;
                    }
                }
                Path::Batched => {
                    let mut i = 0;
                    while i < each {
                        let end = (i + ENQUEUE_BATCH).min(each);
                        let batch: Vec<EnqueueJob> = (i..end).map(job).collect();
                        store
                            .enqueue_jobs(&batch, &policy, "bench@example.com")
                            .await?;
                        i = end;
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(start.elapsed())
}

/// (enqueue, dispatch) durations for `n` no-op jobs with `workers` workers.
async fn throughput(
    store: Arc<dyn Store>,
    n: usize,
    workers: usize,
    path: Path,
) -> Result<(Duration, Duration)> {
    let enqueue = enqueue_noops(&store, n, workers, None, path).await?;
    let (stop, listener) = shutdown_signal();
    let start = Instant::now();
    let count = Arc::new(AtomicUsize::new(0));
    let pool = tokio::spawn(run_workers(
        Arc::clone(&store),
        registry(&count),
        config("tp", path),
        workers,
        listener,
    ));
    while count.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Workers write their last completions before they stop: the run ends with them.
    stop.trigger();
    let stats = pool.await?;
    let dispatch = start.elapsed();
    let completed: u64 = stats.iter().map(|s| s.completed).sum();
    anyhow::ensure!(
        completed == n as u64,
        "{completed} of {n} jobs were recorded as completed"
    );
    Ok((enqueue, dispatch))
}

/// Hotfix start latencies behind `backlog` queued no-op jobs being drained by 4 workers.
async fn hotfix_latency(
    store: Arc<dyn Store>,
    backlog: usize,
    samples: usize,
    path: Path,
) -> Result<Vec<Duration>> {
    // The backlog is ordinary work (normal and background); the hotfix must pass it.
    enqueue_noops(&store, backlog / 2, 4, Some(JobClass::Normal), path).await?;
    enqueue_noops(
        &store,
        backlog - backlog / 2,
        4,
        Some(JobClass::Background),
        path,
    )
    .await?;
    let (stop, listener) = shutdown_signal();
    let count = Arc::new(AtomicUsize::new(0));
    let pool = tokio::spawn(run_workers(
        Arc::clone(&store),
        registry(&count),
        config("lat", path),
        4,
        listener,
    ));
    let policy = QueuePolicy::default();
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        let at = chrono::Utc::now();
        let job = EnqueueJob::new(JobClass::Hotfix, "noop", json!({"hotfix": true}));
        let id = store
            .enqueue_job(&job, &policy, "bench@example.com")
            .await?
            .id;
        let started = loop {
            let j = store
                .get_job(id)
                .await?
                .context("the hotfix job vanished")?;
            if let Some(s) = j.started_at {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        out.push((started - at).to_std().unwrap_or(Duration::ZERO));
        // Stop sampling once half the backlog is gone: the figure is "behind a backlog".
        if count.load(Ordering::Relaxed) > backlog / 2 {
            break;
        }
    }
    stop.trigger();
    pool.await?;
    out.sort();
    Ok(out)
}

async fn bench(
    cluster: &crate::pg::PgCluster,
    tmp: &std::path::Path,
    jobs: usize,
    batched_jobs: usize,
    backlog: usize,
) -> Result<()> {
    let mut counter = 0;
    let mut fresh_pg = || {
        counter += 1;
        let name = format!("bench_queue_{counter}");
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
    let _ = std::process::Command::new("uptime").status();
    println!(
        "queue throughput: no-op jobs (enqueue, then dispatch), audited; single = one job per \
         transaction, batched = enqueues of {ENQUEUE_BATCH}, workers of capacity {} \
         completing together every {} ms",
        capacity(),
        flush().as_millis()
    );
    println!(
        "{:<10} {:<8} {:>7} {:>7} {:>11} {:>11} {:>11} {:>8}",
        "backend", "path", "workers", "jobs", "enqueue/s", "dispatch/s", "overall/s", "× single"
    );
    for backend in ["sqlite", "postgres"] {
        for workers in [1usize, 4] {
            let mut single_overall = None;
            for path in [Path::Single, Path::Batched] {
                let n = match path {
                    Path::Single => jobs,
                    Path::Batched => batched_jobs,
                };
                let url = match backend {
                    "sqlite" => format!(
                        "sqlite:{}",
                        tmp.join(format!("tp-{workers}-{}.db", path.name()))
                            .display()
                    ),
                    _ => fresh_pg().await?,
                };
                let store = cutover_store::open(&url).await?;
                let (enq, disp) = throughput(Arc::clone(&store), n, workers, path).await?;
                anyhow::ensure!(
                    store.verify_audit().await?.first_broken.is_none(),
                    "the audit chain does not verify after the run"
                );
                store.close().await;
                let rate = |d: Duration| n as f64 / d.as_secs_f64();
                let overall = rate(enq + disp);
                let ratio = match single_overall {
                    None => {
                        single_overall = Some(overall);
                        "1.0".to_owned()
                    }
                    Some(single) => format!("{:.1}", overall / single),
                };
                println!(
                    "{:<10} {:<8} {:>7} {:>7} {:>11.0} {:>11.0} {:>11.0} {:>8}",
                    backend,
                    path.name(),
                    workers,
                    n,
                    rate(enq),
                    rate(disp),
                    overall,
                    ratio
                );
            }
        }
    }
    println!(
        "\nhotfix start latency behind a backlog of {backlog} queued jobs (4 workers draining it)"
    );
    for backend in ["sqlite", "postgres"] {
        for path in [Path::Single, Path::Batched] {
            let url = match backend {
                "sqlite" => format!(
                    "sqlite:{}",
                    tmp.join(format!("latency-{}.db", path.name())).display()
                ),
                _ => fresh_pg().await?,
            };
            let store = cutover_store::open(&url).await?;
            let lat = hotfix_latency(Arc::clone(&store), backlog, 50, path).await?;
            store.close().await;
            let pick = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize];
            println!(
                "{:<10} {:<8} samples {:>3}  median {:>8.2} ms  p95 {:>8.2} ms  max {:>8.2} ms",
                backend,
                path.name(),
                lat.len(),
                pick(0.5).as_secs_f64() * 1e3,
                pick(0.95).as_secs_f64() * 1e3,
                pick(1.0).as_secs_f64() * 1e3
            );
        }
    }
    let _ = std::process::Command::new("uptime").status();
    println!(
        "\nanchors (other hardware): River ≈46k jobs/s on 8 cores; graphile-worker ≈15.6k jobs/s unbatched"
    );
    Ok(())
}
