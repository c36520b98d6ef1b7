//! The worker loop: claim the next job, run it through the handler registered for its kind while
//! a heartbeat keeps its lease alive, then complete or fail it; reclaim the jobs of dead workers.
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
}

impl WorkerConfig {
    /// Defaults: 30 s lease, heartbeat every 10 s, poll 1 s, reclaim every 5 s.
    pub fn new(name: impl Into<String>, actor: impl Into<String>) -> WorkerConfig {
        WorkerConfig {
            name: name.into(),
            actor: actor.into(),
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            poll: Duration::from_secs(1),
            reclaim_every: Duration::from_secs(5),
            policy: QueuePolicy::default(),
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

    /// Runs until `shutdown` triggers, then returns after the running job (if any) finished.
    pub async fn run(&self, mut shutdown: ShutdownListener) -> WorkerStats {
        let mut stats = WorkerStats::default();
        let mut last_reclaim: Option<tokio::time::Instant> = None;
        while !shutdown.is_triggered() {
            if last_reclaim.is_none_or(|t| t.elapsed() >= self.config.reclaim_every) {
                last_reclaim = Some(tokio::time::Instant::now());
                match self.reclaim().await {
                    Ok(jobs) => stats.reclaimed += jobs.len() as u64,
                    Err(e) => {
                        tracing::warn!(worker = %self.config.name, "reclaiming expired jobs failed: {e}");
                    }
                }
            }
            match self.run_one().await {
                Ok(Some(Ran::Completed(_))) => stats.completed += 1,
                Ok(Some(Ran::Failed(_))) => stats.failed += 1,
                Ok(Some(Ran::Lost)) => stats.lost += 1,
                Ok(None) => {
                    let wait = self.config.poll.min(self.config.reclaim_every);
                    tokio::select! {
                        r = self.store.wait_for_work(wait) => {
                            if let Err(e) = r {
                                tracing::warn!(worker = %self.config.name, "waiting for work failed: {e}");
                                tokio::time::sleep(wait).await;
                            }
                        }
                        () = shutdown.triggered() => {}
                    }
                }
                Err(e) => {
                    // The database is away or busy: the queue keeps going once it is back.
                    tracing::warn!(worker = %self.config.name, "claiming a job failed: {e}");
                    tokio::select! {
                        () = tokio::time::sleep(self.config.poll) => {}
                        () = shutdown.triggered() => {}
                    }
                }
            }
        }
        stats
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
                let handler = Arc::clone(handler);
                match self.run_with_heartbeat(&job, handler).await {
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

    /// Runs the handler while extending the lease; `None` when the lease was lost.
    async fn run_with_heartbeat(
        &self,
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
        let mut tick = tokio::time::interval(self.config.heartbeat);
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
                        + chrono::Duration::from_std(self.config.lease).unwrap_or(chrono::Duration::MAX);
                    match self.store.heartbeat_job(job.id, &self.config.name, until).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(worker = %self.config.name, job = job.id, "lost the job's lease; stopping it");
                            return None;
                        }
                        Err(e) => tracing::warn!(worker = %self.config.name, job = job.id, "heartbeat failed: {e}"),
                    }
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
