//! Real workers on both backends: aging under constant hotfix load, a killed worker's job retried
//! after its lease, concurrency groups, parallel workers never running a job twice, and QA
//! checks through the queue (including the ones that hang or do not exist).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use cutover_core::queue::{AgingPolicy, BackoffPolicy, JobClass, QueuePolicy};
use cutover_queue::check::{CheckSpec, CheckStatus};
use cutover_queue::*;
use cutover_store::{AuditFilter, EnqueueJob, Job, JobFilter, Store};
use serde_json::{Value, json};

use crate::common::{TestDb, on_both};

on_both!(
    background_starts_within_bound_under_hotfix_load,
    killed_workers_job_is_retried_after_its_lease,
    concurrency_group_runs_one_at_a_time,
    parallel_workers_run_each_job_once,
    batched_workers_run_each_job_once,
    batched_workers_keep_groups_one_at_a_time,
    checks_run_through_the_queue,
);

const ACTOR: &str = "worker@example.com";

fn fast_policy() -> QueuePolicy {
    QueuePolicy {
        aging: AgingPolicy {
            class_delay: [
                Duration::ZERO,
                Duration::from_millis(100),
                Duration::from_millis(200),
                Duration::from_millis(400),
            ],
            priority_step: Duration::from_millis(1),
        },
        backoff: BackoffPolicy {
            base: Duration::from_millis(10),
            factor: 2,
            max: Duration::from_millis(100),
            jitter: 0.5,
        },
    }
}

fn config(name: &str) -> WorkerConfig {
    WorkerConfig {
        lease: Duration::from_secs(30),
        heartbeat: Duration::from_millis(200),
        poll: Duration::from_millis(50),
        reclaim_every: Duration::from_millis(100),
        policy: fast_policy(),
        ..WorkerConfig::new(name, ACTOR)
    }
}

/// Sleeps `ms` from its payload; hotfix jobs enqueue their replacement when they start, so the
/// queue always holds the same number of hotfix jobs.
struct Sleeper {
    store: Arc<dyn Store>,
    policy: QueuePolicy,
    refill: Arc<Mutex<bool>>,
}

#[async_trait]
impl JobHandler for Sleeper {
    async fn run(&self, job: &Job) -> Result<Value, JobError> {
        if job.class == "hotfix" && *self.refill.lock().unwrap() {
            let next = EnqueueJob::new(JobClass::Hotfix, "sleep", job.payload.clone());
            self.store
                .enqueue_job(&next, &self.policy, ACTOR)
                .await
                .map_err(|e| JobError::transient(e.to_string()))?;
        }
        let ms = job.payload["ms"].as_u64().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(json!({"slept_ms": ms}))
    }
}

async fn background_starts_within_bound_under_hotfix_load(db: TestDb) {
    let policy = fast_policy();
    let (workers, hot_queued, run_ms) = (2usize, 4usize, 40u64);
    let refill = Arc::new(Mutex::new(true));
    let mut registry = Registry::new();
    registry.register(
        "sleep",
        Arc::new(Sleeper {
            store: Arc::clone(&db.store),
            policy,
            refill: Arc::clone(&refill),
        }),
    );
    for _ in 0..hot_queued {
        let j = EnqueueJob::new(JobClass::Hotfix, "sleep", json!({"ms": run_ms}));
        db.store.enqueue_job(&j, &policy, ACTOR).await.unwrap();
    }
    let (stop, listener) = shutdown_signal();
    let pool = tokio::spawn(run_workers(
        Arc::clone(&db.store),
        registry,
        config("aging"),
        workers,
        listener,
    ));
    // Let the hotfix load establish itself, then enqueue the background job.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let bg = EnqueueJob::new(JobClass::Background, "sleep", json!({"ms": 0}));
    let bg_id = db.store.enqueue_job(&bg, &policy, ACTOR).await.unwrap().id;
    let bg_job = loop {
        let j = db.store.get_job(bg_id).await.unwrap().unwrap();
        if j.state == "succeeded" {
            break j;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    *refill.lock().unwrap() = false;
    stop.trigger();
    pool.await.unwrap();

    // The bound's premise, independent of timing: no hotfix made runnable after
    // T = run_at + delay(background) + (P − p)·s started before the background job.
    let t_us = bg_job.run_at.timestamp_micros()
        + policy
            .aging
            .start_bound(
                JobClass::Background,
                0,
                1,
                Duration::ZERO,
                Duration::ZERO,
                0,
            )
            .unwrap()
            .as_micros() as i64;
    let bg_start = bg_job.started_at.unwrap();
    let hot = db
        .store
        .list_jobs(&JobFilter {
            kind: Some("sleep".into()),
            ..JobFilter::default()
        })
        .await
        .unwrap();
    let overtook: Vec<&Job> = hot
        .iter()
        .filter(|j| j.id != bg_id && j.started_at.is_some_and(|s| s < bg_start))
        .filter(|j| j.run_at.timestamp_micros() > t_us)
        .collect();
    assert!(
        overtook.is_empty(),
        "jobs runnable after T overtook the background job: {overtook:?}"
    );
    // And the bound itself, with the durations and claim delays this run actually had.
    let finished: Vec<&Job> = hot
        .iter()
        .filter(|j| j.finished_at.is_some() && j.started_at.is_some())
        .collect();
    let d = finished
        .iter()
        .map(|j| {
            (j.finished_at.unwrap() - j.started_at.unwrap())
                .to_std()
                .unwrap()
        })
        .max()
        .unwrap();
    let mut eps = Duration::ZERO;
    let mut by_worker: BTreeMap<String, Vec<&Job>> = BTreeMap::new();
    let audit = db
        .store
        .list_audit(&AuditFilter {
            action: Some("job.complete".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    // One event per completion batch: `job/<id>` for one job, `jobs` with the ids for several.
    let mut worker_of: BTreeMap<i64, String> = BTreeMap::new();
    for e in &audit {
        let worker = e.payload["worker"].as_str().unwrap().to_owned();
        match e.subject.strip_prefix("job/") {
            Some(id) => {
                worker_of.insert(id.parse().unwrap(), worker);
            }
            None => {
                for id in e.payload["ids"].as_array().unwrap() {
                    worker_of.insert(id.as_i64().unwrap(), worker.clone());
                }
            }
        }
    }
    for j in &finished {
        if let Some(w) = worker_of.get(&j.id) {
            by_worker.entry(w.clone()).or_default().push(j);
        }
    }
    for jobs in by_worker.values_mut() {
        jobs.sort_by_key(|j| j.started_at);
        for pair in jobs.windows(2) {
            let gap = pair[1].started_at.unwrap() - pair[0].finished_at.unwrap();
            eps = eps.max(gap.to_std().unwrap_or(Duration::ZERO));
        }
    }
    let bound = policy
        .aging
        .start_bound(
            JobClass::Background,
            0,
            workers as u32,
            d,
            eps,
            hot_queued as u32 + 1,
        )
        .unwrap();
    let waited = (bg_start - bg_job.run_at).to_std().unwrap();
    assert!(
        waited <= bound,
        "waited {waited:?}, bound {bound:?} (d {d:?}, ε {eps:?})"
    );
}

/// Blocks until released, so a test can kill its worker mid-job.
struct Gate {
    runs: Arc<Mutex<Vec<(i64, String)>>>,
    hold: bool,
}

#[async_trait]
impl JobHandler for Gate {
    async fn run(&self, job: &Job) -> Result<Value, JobError> {
        self.runs
            .lock()
            .unwrap()
            .push((job.id, job.lease_owner.clone().unwrap_or_default()));
        if self.hold {
            std::future::pending::<()>().await;
        }
        Ok(json!({"attempt": job.attempts}))
    }
}

async fn killed_workers_job_is_retried_after_its_lease(db: TestDb) {
    let policy = fast_policy();
    let runs = Arc::new(Mutex::new(Vec::new()));
    let id = db
        .store
        .enqueue_job(
            &EnqueueJob::new(JobClass::Normal, "gate", json!({})),
            &policy,
            ACTOR,
        )
        .await
        .unwrap()
        .id;
    let mut hanging = Registry::new();
    hanging.register(
        "gate",
        Arc::new(Gate {
            runs: Arc::clone(&runs),
            hold: true,
        }),
    );
    let doomed = Worker::new(
        Arc::clone(&db.store),
        hanging,
        WorkerConfig {
            lease: Duration::from_millis(300),
            heartbeat: Duration::from_millis(100),
            ..config("doomed")
        },
    );
    let (_stop, listener) = shutdown_signal();
    let task = tokio::spawn(async move { doomed.run(listener).await });
    while runs.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Kill the worker: no more heartbeats, no completion.
    task.abort();
    let _ = task.await;
    let mut healthy = Registry::new();
    healthy.register(
        "gate",
        Arc::new(Gate {
            runs: Arc::clone(&runs),
            hold: false,
        }),
    );
    let rescuer = Worker::new(Arc::clone(&db.store), healthy, config("rescuer"));
    let (stop, listener) = shutdown_signal();
    let rescue = tokio::spawn(async move { rescuer.run(listener).await });
    let job = loop {
        let j = db.store.get_job(id).await.unwrap().unwrap();
        if j.state == "succeeded" {
            break j;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    stop.trigger();
    let stats = rescue.await.unwrap();
    assert_eq!(stats.completed, 1);
    assert_eq!(stats.reclaimed, 1);
    assert_eq!(job.attempts, 2);
    assert_eq!(job.result, Some(json!({"attempt": 2})));
    assert!(
        job.last_error
            .unwrap()
            .contains("lease of worker doomed expired")
    );
    let owners: Vec<String> = runs.lock().unwrap().iter().map(|r| r.1.clone()).collect();
    assert_eq!(owners, ["doomed", "rescuer"]);
    let actions: Vec<String> = db
        .store
        .list_audit(&AuditFilter {
            subject: Some(format!("job/{id}")),
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["job.enqueue", "job.reclaim", "job.complete"]);
}

/// Records when each run starts and ends.
struct Spans(Arc<Mutex<Vec<(std::time::Instant, std::time::Instant)>>>);

#[async_trait]
impl JobHandler for Spans {
    async fn run(&self, _job: &Job) -> Result<Value, JobError> {
        let start = std::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(30)).await;
        self.0
            .lock()
            .unwrap()
            .push((start, std::time::Instant::now()));
        Ok(Value::Null)
    }
}

async fn concurrency_group_runs_one_at_a_time(db: TestDb) {
    let policy = fast_policy();
    let spans = Arc::new(Mutex::new(Vec::new()));
    let mut registry = Registry::new();
    registry.register("deploy", Arc::new(Spans(Arc::clone(&spans))));
    for _ in 0..6 {
        let j = EnqueueJob {
            concurrency_group: Some("deploy:production".into()),
            ..EnqueueJob::new(JobClass::Release, "deploy", json!({}))
        };
        db.store.enqueue_job(&j, &policy, ACTOR).await.unwrap();
    }
    let (stop, listener) = shutdown_signal();
    let pool = tokio::spawn(run_workers(
        Arc::clone(&db.store),
        registry,
        config("group"),
        3,
        listener,
    ));
    while spans.lock().unwrap().len() < 6 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.trigger();
    pool.await.unwrap();
    let mut spans = spans.lock().unwrap().clone();
    spans.sort();
    for pair in spans.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "two jobs of the group overlapped: {pair:?}"
        );
    }
}

struct Counter(Arc<Mutex<BTreeMap<i64, u32>>>);

#[async_trait]
impl JobHandler for Counter {
    async fn run(&self, job: &Job) -> Result<Value, JobError> {
        *self.0.lock().unwrap().entry(job.id).or_default() += 1;
        Ok(Value::Null)
    }
}

async fn parallel_workers_run_each_job_once(db: TestDb) {
    let policy = fast_policy();
    const JOBS: usize = 300;
    for i in 0..JOBS {
        let j = EnqueueJob::new(JobClass::ALL[i % 4], "count", json!({"i": i}));
        db.store.enqueue_job(&j, &policy, ACTOR).await.unwrap();
    }
    let counts = Arc::new(Mutex::new(BTreeMap::new()));
    // Two "processes" (separate stores, separate connections), two workers each.
    let mut pools = Vec::new();
    let (stop, listener) = shutdown_signal();
    for p in 0..2 {
        let store = cutover_store::open(&db.url).await.unwrap();
        let mut registry = Registry::new();
        registry.register("count", Arc::new(Counter(Arc::clone(&counts))));
        pools.push(tokio::spawn(run_workers(
            store,
            registry,
            config(&format!("p{p}")),
            2,
            listener.clone(),
        )));
    }
    while counts.lock().unwrap().values().sum::<u32>() < JOBS as u32 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.trigger();
    let mut completed = 0;
    for p in pools {
        completed += p.await.unwrap().iter().map(|s| s.completed).sum::<u64>();
    }
    let counts = counts.lock().unwrap();
    assert_eq!(counts.len(), JOBS);
    assert!(
        counts.values().all(|&n| n == 1),
        "a job ran twice: {counts:?}"
    );
    assert_eq!(completed, JOBS as u64);
}

async fn checks_run_through_the_queue(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let spec = |name: &str, argv: &[&str], timeout_ms: u64, required: bool| CheckSpec {
        name: name.into(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        timeout_ms,
        env: vec![],
        dir: dir.path().to_path_buf(),
        required,
    };
    let specs = vec![
        spec("test", &["sh", "-c", "echo all good"], 10_000, true),
        spec("missing", &["cutover-no-such-tool"], 10_000, true),
        spec("hang", &["sh", "-c", "echo waiting; sleep 1000"], 300, true),
        spec(
            "style",
            &["sh", "-c", "echo nit >&2; exit 1"],
            10_000,
            false,
        ),
    ];
    let (runs, _stats) = run_checks(
        Arc::clone(&db.store),
        &specs,
        JobClass::Release,
        Some("1.4.0"),
        2,
        config("checks"),
    )
    .await
    .unwrap();
    let summary: Vec<(String, String, Option<CheckStatus>, bool)> = runs
        .iter()
        .map(|r| {
            (
                r.job.payload["check"]["name"].as_str().unwrap().to_owned(),
                r.job.state.clone(),
                r.result.as_ref().map(|c| c.status),
                r.blocks(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "test".into(),
                "succeeded".into(),
                Some(CheckStatus::Passed),
                false
            ),
            (
                "missing".into(),
                "failed".into(),
                Some(CheckStatus::Error),
                true
            ),
            (
                "hang".into(),
                "failed".into(),
                Some(CheckStatus::TimedOut),
                true
            ),
            (
                "style".into(),
                "failed".into(),
                Some(CheckStatus::Failed),
                false
            ),
        ]
    );
    assert_eq!(runs[0].result.as_ref().unwrap().output, "all good\n");
    assert!(
        runs[1]
            .job
            .last_error
            .as_deref()
            .unwrap()
            .contains("command `cutover-no-such-tool` not found")
    );
    assert_eq!(runs[2].result.as_ref().unwrap().output, "waiting\n");
    assert_eq!(runs[3].result.as_ref().unwrap().output, "nit\n");
    // Attached to the release, and each failed attempt is final (no retry of a failing check).
    let of_release = db
        .store
        .list_jobs(&JobFilter {
            release_version: Some("1.4.0".into()),
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(of_release.len(), 4);
    assert!(of_release.iter().all(|j| j.attempts == 1));
    // The queue kept running: a job enqueued afterwards still runs.
    let (again, _) = run_checks(
        Arc::clone(&db.store),
        &specs[..1],
        JobClass::Normal,
        None,
        1,
        config("again"),
    )
    .await
    .unwrap();
    assert!(again[0].passed());
    let _ = Utc::now();
}

fn batched(name: &str, capacity: usize) -> WorkerConfig {
    WorkerConfig {
        capacity,
        flush: Duration::from_millis(5),
        max_batch: 16,
        ..config(name)
    }
}

async fn batched_workers_run_each_job_once(db: TestDb) {
    let policy = fast_policy();
    const JOBS: usize = 500;
    let jobs: Vec<EnqueueJob> = (0..JOBS)
        .map(|i| EnqueueJob::new(JobClass::ALL[i % 4], "count", json!({"i": i})))
        .collect();
    let ids: Vec<i64> = db
        .store
        .enqueue_jobs(&jobs, &policy, ACTOR)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let counts = Arc::new(Mutex::new(BTreeMap::new()));
    let (stop, listener) = shutdown_signal();
    let mut pools = Vec::new();
    for p in 0..2 {
        let store = cutover_store::open(&db.url).await.unwrap();
        let mut registry = Registry::new();
        registry.register("count", Arc::new(Counter(Arc::clone(&counts))));
        pools.push(tokio::spawn(run_workers(
            store,
            registry,
            batched(&format!("b{p}"), 16),
            2,
            listener.clone(),
        )));
    }
    while counts.lock().unwrap().values().sum::<u32>() < JOBS as u32 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Stopping writes the completions still waiting for their flush.
    stop.trigger();
    let mut completed = 0;
    for p in pools {
        completed += p.await.unwrap().iter().map(|s| s.completed).sum::<u64>();
    }
    assert_eq!(completed, JOBS as u64);
    {
        let counts = counts.lock().unwrap();
        assert_eq!(counts.len(), JOBS);
        assert!(counts.values().all(|&n| n == 1), "a job ran twice");
    }
    let succeeded = db
        .store
        .list_jobs(&JobFilter {
            ids: ids.clone(),
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert!(succeeded.iter().all(|j| j.state == "succeeded"));
    // Completions were written in batches: fewer events than jobs, every job in exactly one.
    let events = db
        .store
        .list_audit(&AuditFilter {
            action: Some("job.complete".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let mut listed: Vec<i64> = events
        .iter()
        .flat_map(|e| match e.subject.strip_prefix("job/") {
            Some(id) => vec![id.parse::<i64>().unwrap()],
            None => e.payload["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap())
                .collect(),
        })
        .collect();
    listed.sort_unstable();
    assert_eq!(listed, ids);
    assert!(
        events.len() < JOBS,
        "{} events for {JOBS} jobs",
        events.len()
    );
    assert_eq!(db.store.verify_audit().await.unwrap().first_broken, None);
}

async fn batched_workers_keep_groups_one_at_a_time(db: TestDb) {
    let policy = fast_policy();
    let spans = Arc::new(Mutex::new(Vec::new()));
    let mut registry = Registry::new();
    registry.register("deploy", Arc::new(Spans(Arc::clone(&spans))));
    let jobs: Vec<EnqueueJob> = (0..6)
        .map(|_| EnqueueJob {
            concurrency_group: Some("deploy:production".into()),
            ..EnqueueJob::new(JobClass::Release, "deploy", json!({}))
        })
        .collect();
    db.store.enqueue_jobs(&jobs, &policy, ACTOR).await.unwrap();
    let (stop, listener) = shutdown_signal();
    let pool = tokio::spawn(run_workers(
        Arc::clone(&db.store),
        registry,
        batched("group", 4),
        2,
        listener,
    ));
    while spans.lock().unwrap().len() < 6 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.trigger();
    pool.await.unwrap();
    let mut spans = spans.lock().unwrap().clone();
    spans.sort();
    for pair in spans.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "two jobs of the group overlapped: {pair:?}"
        );
    }
}
