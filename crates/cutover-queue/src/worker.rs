//! The worker loop: claim jobs, run them through the handler registered for their kind while a
//! heartbeat keeps each lease alive, then complete or fail them; reclaim the jobs of dead workers.
//!
//! Batching: a worker runs up to [`WorkerConfig::capacity`] jobs at once and claims as many as it
//! has free slots in one statement ([`Store::claim_jobs`]). Finished jobs are completed together
//! ([`Store::complete_jobs`]: one transaction, one audit event) once [`WorkerConfig::flush`] has
//! passed since the first of them finished or [`WorkerConfig::max_batch`] are waiting, so the
//! throughput of short jobs is bound by round trips, not by one transaction per job. Until its
//! completion is written a finished job still counts as running (its concurrency group stays
//! busy, a crash retries it): `flush` is the price in latency. Failures are written one by one at
//! the same moment. `capacity = 1` with `flush = 0` is the one-job-at-a-time worker.
//!
//! A worker never dies of a job: a missing handler, a panicking or failing handler, a store error
//! are recorded (or logged) and the loop goes on. Shutdown is graceful: the worker stops claiming
//! and finishes the job it runs. A worker that is killed instead stops heartbeating; its job's
//! lease expires and any worker's periodic reclaim queues it again (or fails it after its last
//! attempt).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use cutover_core::queue::QueuePolicy;
use cutover_store::{Job, Store, StoreError};
use serde_json::Value;
use tokio::sync::watch;

/// Why a job's attempt failed.
#[derive(Debug, Clone, PartialEq)]
pub struct JobError {
    pub message: String,
    /// What the attempt produced (stored with the job, e.g. a failed check's output).
    pub result: Option<Value>,
    /// Retrying cannot help (bad payload, a check that ran and failed): fail for good now.
    pub permanent: bool,
}

impl JobError {
    /// A failure worth retrying (after the backoff, up to the job's attempts).
    pub fn transient(message: impl Into<String>) -> JobError {
        JobError {
            message: message.into(),
            result: None,
            permanent: false,
        }
    }

    /// A failure that retrying cannot fix.
    pub fn permanent(message: impl Into<String>, result: Option<Value>) -> JobError {
        JobError {
            message: message.into(),
            result,
            permanent: true,
        }
    }
}

/// Runs the jobs of one kind.
#[async_trait]
pub trait JobHandler: Send + Sync {
    /// Runs `job`; `Ok(result)` completes it with that result.
    async fn run(&self, job: &Job) -> Result<Value, JobError>;
}

/// The job kinds a worker can run.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<String, Arc<dyn JobHandler>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.handlers.keys()).finish()
    }
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers `handler` for jobs of `kind` (replacing an earlier one).
    pub fn register(&mut self, kind: impl Into<String>, handler: Arc<dyn JobHandler>) -> &mut Self {
        self.handlers.insert(kind.into(), handler);
        self
    }

    /// The registry with cutover's built-in kinds (`check`).
    pub fn builtin() -> Registry {
        let mut r = Registry::new();
        r.register(crate::CHECK_KIND, Arc::new(crate::CheckHandler::default()));
        r
    }

    pub fn get(&self, kind: &str) -> Option<&Arc<dyn JobHandler>> {
        self.handlers.get(kind)
    }

    pub fn kinds(&self) -> Vec<&str> {
        self.handlers.keys().map(String::as_str).collect()
    }
}

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Unique among the workers sharing the database (it owns the leases it takes).
    pub name: String,
    /// Recorded as the actor of the audit events the worker writes.
    pub actor: String,
    /// How long a claim holds without a heartbeat.
    pub lease: Duration,
    /// How often a running job's lease is extended (well below `lease`).
    pub heartbeat: Duration,
    /// The longest wait for work before looking again (a wake-up comes sooner on PostgreSQL,
    /// and on SQLite from this process).
    pub poll: Duration,
    /// How often to look for jobs whose lease expired.
    pub reclaim_every: Duration,
    pub policy: QueuePolicy,
    /// Jobs this worker runs at once (at least 1); it claims its free slots in one call, once a
    /// quarter of them (at least one) are free or all are.
    pub capacity: usize,
    /// How long a finished job's completion may wait to be written with others (zero: at once).
    pub flush: Duration,
    /// Completions written in one transaction at most (written as soon as this many wait).
    pub max_batch: usize,
}

impl WorkerConfig {
    /// Defaults: 30 s lease, heartbeat every 10 s, poll 1 s, reclaim every 5 s, one job at a
    /// time, completions written within 2 ms in batches of up to 256.
    pub fn new(name: impl Into<String>, actor: impl Into<String>) -> WorkerConfig {
        WorkerConfig {
            name: name.into(),
            actor: actor.into(),
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            poll: Duration::from_secs(1),
            reclaim_every: Duration::from_secs(5),
            policy: QueuePolicy::default(),
            capacity: 1,
            flush: Duration::from_millis(2),
            max_batch: 256,
        }
    }

    /// A worker name unique to this process and `index`: `host:pid:index`.
    pub fn default_name(index: usize) -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into());
        format!("{host}:{}:{index}", std::process::id())
    }
}

/// What one worker did before it stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerStats {
    pub completed: u64,
    pub failed: u64,
    /// Jobs whose lease this worker lost while running them.
    pub lost: u64,
    pub reclaimed: u64,
}

/// How a job's run ended, as far as this worker is concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum Ran {
    Completed(Job),
    /// Failed; the job is `queued` again (a retry) or `failed`.
    Failed(Job),
    /// The lease was lost (reclaimed by another worker); nothing recorded.
    Lost,
}

/// Tells workers to stop (gracefully: the running job finishes).
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Sender<bool>);

/// Passed to workers; see [`shutdown_signal`].
#[derive(Debug, Clone)]
pub struct ShutdownListener(watch::Receiver<bool>);

/// A shutdown switch and its listener.
pub fn shutdown_signal() -> (Shutdown, ShutdownListener) {
    let (tx, rx) = watch::channel(false);
    (Shutdown(tx), ShutdownListener(rx))
}

impl Shutdown {
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

impl ShutdownListener {
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when shutdown is triggered.
    pub async fn triggered(&mut self) {
        // An error means the switch was dropped: nothing can trigger any more, wait forever.
        if self.0.wait_for(|v| *v).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// One worker: a loop over the store's queue.
#[derive(Debug, Clone)]
pub struct Worker {
    store: Arc<dyn Store>,
    registry: Registry,
    config: WorkerConfig,
}

impl Worker {
    pub fn new(store: Arc<dyn Store>, registry: Registry, config: WorkerConfig) -> Worker {
        Worker {
            store,
            registry,
            config,
        }
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Requeues or fails the jobs whose lease expired; returns them.
    pub async fn reclaim(&self) -> Result<Vec<Job>, StoreError> {
        self.store
            .reclaim_expired_jobs(Utc::now(), &self.config.policy, &self.config.actor)
            .await
    }

    /// Claims one runnable job and runs it; `None` when there was nothing to run.
    pub async fn run_one(&self) -> Result<Option<Ran>, StoreError> {
        let Some(job) = self
            .store
            .claim_job(&self.config.name, Utc::now(), self.config.lease)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(self.execute(job).await?))
    }

    /// Runs until `shutdown` triggers, then returns after the running jobs finished and their
    /// outcomes were written.
    pub async fn run(&self, mut shutdown: ShutdownListener) -> WorkerStats {
        let mut stats = WorkerStats::default();
        let mut last_reclaim: Option<tokio::time::Instant> = None;
        let capacity = self.config.capacity.max(1);
        let claim_at = (capacity / 4).max(1);
        // Dropped with the worker (it was cancelled): the jobs stop as if its process died.
        let mut running: tokio::task::JoinSet<(Job, Option<Result<Value, JobError>>)> =
            tokio::task::JoinSet::new();
        let mut finished: Vec<(Job, Result<Value, JobError>)> = Vec::new();
        let mut flush_at: Option<tokio::time::Instant> = None;
        // The last claim found nothing: wait for a wake-up (or the poll) before claiming again.
        let mut idle = false;
        loop {
            let stopping = shutdown.is_triggered();
            if stopping && running.is_empty() {
                self.flush(&mut finished, &mut stats).await;
                break;
            }
            if !stopping && last_reclaim.is_none_or(|t| t.elapsed() >= self.config.reclaim_every) {
                last_reclaim = Some(tokio::time::Instant::now());
                match self.reclaim().await {
                    Ok(jobs) => stats.reclaimed += jobs.len() as u64,
                    Err(e) => {
                        tracing::warn!(worker = %self.config.name, "reclaiming expired jobs failed: {e}");
                    }
                }
            }
            let due = !finished.is_empty()
                && (finished.len() >= self.config.max_batch.max(1)
                    || flush_at.is_none_or(|t| t <= tokio::time::Instant::now()));
            if due {
                self.flush(&mut finished, &mut stats).await;
                flush_at = None;
                // A completion may have freed a concurrency group: look again.
                idle = false;
                continue;
            }
            let free = capacity.saturating_sub(running.len());
            // Claim when a quarter of the slots are free (or all are): one round trip per
            // several jobs instead of one per job finished.
            if !stopping && !idle && free > 0 && (free >= claim_at || running.is_empty()) {
                match self
                    .store
                    .claim_jobs(&self.config.name, Utc::now(), self.config.lease, free)
                    .await
                {
                    Ok(jobs) if jobs.is_empty() => idle = true,
                    Ok(jobs) => {
                        for job in jobs {
                            running.spawn(self.job_future(job));
                        }
                        continue;
                    }
                    Err(e) => {
                        // The database is away or busy: the queue keeps going once it is back.
                        tracing::warn!(worker = %self.config.name, "claiming jobs failed: {e}");
                        idle = true;
                    }
                }
            }
            let wait = self.config.poll.min(self.config.reclaim_every);
            let may_claim = idle && !stopping && capacity > running.len();
            tokio::select! {
                Some(joined) = running.join_next(), if !running.is_empty() => {
                    // Take every job that has finished by now, not just the first.
                    let mut next = Some(joined);
                    while let Some(joined) = next {
                        match joined {
                            Ok((job, Some(outcome))) => {
                                if finished.is_empty() {
                                    flush_at = Some(tokio::time::Instant::now() + self.config.flush);
                                }
                                finished.push((job, outcome));
                            }
                            Ok((_, None)) => stats.lost += 1,
                            Err(e) => {
                                // The job's task itself ended abnormally (handler panics are
                                // caught inside it): its lease runs out and it is retried.
                                tracing::warn!(worker = %self.config.name, "a job task ended abnormally: {e}");
                            }
                        }
                        next = running.try_join_next();
                    }
                }
                () = sleep_until_opt(flush_at), if flush_at.is_some() => {}
                r = self.store.wait_for_work(wait), if may_claim => {
                    idle = false;
                    if let Err(e) = r {
                        tracing::warn!(worker = %self.config.name, "waiting for work failed: {e}");
                        tokio::time::sleep(wait).await;
                    }
                }
                () = shutdown.triggered(), if !stopping => {}
            }
        }
        stats
    }

    /// Runs `job` to its outcome as a `'static` future (for the worker's task set); `None` when
    /// its lease was lost.
    fn job_future(
        &self,
        job: Job,
    ) -> impl Future<Output = (Job, Option<Result<Value, JobError>>)> + Send + 'static {
        let handler = self.registry.get(&job.kind).cloned();
        let missing = handler.is_none().then(|| {
            format!(
                "no handler for job kind `{}` in worker {} (it knows: {}); another worker may",
                job.kind,
                self.config.name,
                self.registry.kinds().join(", ")
            )
        });
        let beat = self.heartbeat();
        async move {
            let outcome = match handler {
                Some(handler) => run_with_heartbeat(&beat, &job, handler).await,
                None => Some(Err(JobError::transient(missing.unwrap_or_default()))),
            };
            (job, outcome)
        }
    }

    fn heartbeat(&self) -> Heartbeat {
        Heartbeat {
            store: Arc::clone(&self.store),
            name: self.config.name.clone(),
            lease: self.config.lease,
            every: self.config.heartbeat,
        }
    }

    /// Writes the outcomes of finished jobs: the successes in one batch, the failures one by one.
    async fn flush(
        &self,
        finished: &mut Vec<(Job, Result<Value, JobError>)>,
        stats: &mut WorkerStats,
    ) {
        let (name, actor) = (&self.config.name, &self.config.actor);
        let mut succeeded = Vec::new();
        for (job, outcome) in finished.drain(..) {
            match outcome {
                Ok(result) => succeeded.push((job.id, result)),
                Err(e) => {
                    let failed = self
                        .store
                        .fail_job(
                            job.id,
                            name,
                            &e.message,
                            e.result.as_ref(),
                            !e.permanent,
                            &self.config.policy,
                            actor,
                        )
                        .await;
                    match failed {
                        Ok(_) => stats.failed += 1,
                        Err(StoreError::Conflict { what }) => {
                            tracing::warn!(worker = %name, job = job.id, "the job's lease was lost: {what}");
                            stats.lost += 1;
                        }
                        Err(e) => {
                            tracing::warn!(worker = %name, job = job.id, "recording a failure failed (the job is retried after its lease): {e}");
                        }
                    }
                }
            }
        }
        if succeeded.is_empty() {
            return;
        }
        match self.store.complete_jobs(name, &succeeded, actor).await {
            Ok(done) => {
                stats.completed += done.len() as u64;
                let lost = succeeded.len().saturating_sub(done.len());
                if lost > 0 {
                    tracing::warn!(worker = %name, lost, "finished jobs whose lease was lost before their completion was written");
                    stats.lost += lost as u64;
                }
            }
            Err(e) => {
                tracing::warn!(
                    worker = %name,
                    jobs = succeeded.len(),
                    "recording completions failed (the jobs are retried after their lease): {e}"
                );
            }
        }
    }

    async fn execute(&self, job: Job) -> Result<Ran, StoreError> {
        let outcome = match self.registry.get(&job.kind) {
            None => Err(JobError::transient(format!(
                "no handler for job kind `{}` in worker {} (it knows: {}); another worker may",
                job.kind,
                self.config.name,
                self.registry.kinds().join(", ")
            ))),
            Some(handler) => {
                match run_with_heartbeat(&self.heartbeat(), &job, Arc::clone(handler)).await {
                    Some(outcome) => outcome,
                    None => return Ok(Ran::Lost),
                }
            }
        };
        let (name, actor) = (&self.config.name, &self.config.actor);
        let done = match outcome {
            Ok(result) => self
                .store
                .complete_job(job.id, name, &result, actor)
                .await
                .map(Ran::Completed),
            Err(e) => self
                .store
                .fail_job(
                    job.id,
                    name,
                    &e.message,
                    e.result.as_ref(),
                    !e.permanent,
                    &self.config.policy,
                    actor,
                )
                .await
                .map(Ran::Failed),
        };
        match done {
            Err(StoreError::Conflict { what }) => {
                tracing::warn!(worker = %name, job = job.id, "the job's lease was lost: {what}");
                Ok(Ran::Lost)
            }
            other => other,
        }
    }
}

/// What a running job needs to keep its lease alive.
struct Heartbeat {
    store: Arc<dyn Store>,
    name: String,
    lease: Duration,
    every: Duration,
}

/// Sleeps until `at` (never resolves for `None`; the caller guards the branch).
async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Runs the handler while extending the lease; `None` when the lease was lost.
async fn run_with_heartbeat(
    beat: &Heartbeat,
    job: &Job,
    handler: Arc<dyn JobHandler>,
) -> Option<Result<Value, JobError>> {
    let job_for_task = job.clone();
    // The handler runs as its own task so that a panic in it fails the job, not the worker.
    // Aborted when this future is dropped (the worker was cancelled), so the job's work
    // stops with the worker, as it would if its process died.
    let mut task = AbortOnDrop(tokio::spawn(
        async move { handler.run(&job_for_task).await },
    ));
    let mut tick = tokio::time::interval(beat.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            joined = &mut task.0 => {
                return Some(match joined {
                    Ok(outcome) => outcome,
                    Err(e) if e.is_panic() => Err(JobError::permanent(
                        format!("the handler of job kind `{}` panicked", job.kind),
                        None,
                    )),
                    Err(e) => Err(JobError::transient(format!("the job's task ended: {e}"))),
                });
            }
            _ = tick.tick() => {
                let until = Utc::now()
                    + chrono::Duration::from_std(beat.lease).unwrap_or(chrono::Duration::MAX);
                match beat.store.heartbeat_job(job.id, &beat.name, until).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(worker = %beat.name, job = job.id, "lost the job's lease; stopping it");
                        return None;
                    }
                    Err(e) => tracing::warn!(worker = %beat.name, job = job.id, "heartbeat failed: {e}"),
                }
            }
        }
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `count` workers (named `{base}:{i}`) until `shutdown` triggers; returns their stats.
pub async fn run_workers(
    store: Arc<dyn Store>,
    registry: Registry,
    config: WorkerConfig,
    count: usize,
    shutdown: ShutdownListener,
) -> Vec<WorkerStats> {
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count.max(1) {
        let mut c = config.clone();
        c.name = format!("{}:{i}", config.name);
        let worker = Worker::new(Arc::clone(&store), registry.clone(), c);
        let listener = shutdown.clone();
        tasks.push(tokio::spawn(async move { worker.run(listener).await }));
    }
    let mut stats = Vec::with_capacity(tasks.len());
    for t in tasks {
        match t.await {
            Ok(s) => stats.push(s),
            Err(e) => {
                tracing::warn!("a worker task ended abnormally: {e}");
                stats.push(WorkerStats::default());
            }
        }
    }
    stats
}
