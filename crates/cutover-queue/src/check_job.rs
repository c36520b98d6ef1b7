//! QA checks as queue jobs: the `check` job kind, enqueuing the configured checks, and running
//! them to completion with in-process workers (`cutover check`).
//!
//! Payload of a `check` job: `{"check": CheckSpec, "release": "1.2.0" | null}`. The job's result
//! is the [`CheckResult`] (with the captured output); a check that ran and did not pass fails
//! its job for good (retrying a failing test is not the queue's business) with the result kept,
//! so `cutover check log ID` shows the output either way. When the payload names a release the
//! job carries it as `release_version`, so the release's checks are listed with
//! `JobFilter { release_version, .. }`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cutover_core::queue::{JobClass, JobState};
use cutover_store::{EnqueueJob, Job, JobFilter, Store, StoreError};
use serde_json::{Value, json};

use crate::check::{CheckResult, CheckSpec, DEFAULT_MAX_OUTPUT, run_check};
use crate::worker::{
    JobError, JobHandler, Registry, WorkerConfig, WorkerStats, run_workers, shutdown_signal,
};

/// The job kind of QA checks.
pub const CHECK_KIND: &str = "check";

/// Runs `check` jobs.
#[derive(Debug, Clone)]
pub struct CheckHandler {
    /// Bytes of output kept per check.
    pub max_output: usize,
}

impl Default for CheckHandler {
    fn default() -> Self {
        CheckHandler {
            max_output: DEFAULT_MAX_OUTPUT,
        }
    }
}

#[async_trait]
impl JobHandler for CheckHandler {
    async fn run(&self, job: &Job) -> Result<Value, JobError> {
        let spec: CheckSpec = job
            .payload
            .get("check")
            .cloned()
            .ok_or_else(|| {
                JobError::permanent(format!("job {}: the payload has no `check`", job.id), None)
            })
            .and_then(|v| {
                serde_json::from_value(v).map_err(|e| {
                    JobError::permanent(
                        format!("job {}: the payload's `check` is invalid: {e}", job.id),
                        None,
                    )
                })
            })?;
        let result = run_check(&spec, self.max_output).await;
        let value = serde_json::to_value(&result).map_err(|e| {
            JobError::permanent(format!("cannot encode the check result: {e}"), None)
        })?;
        if result.passed() {
            Ok(value)
        } else {
            let reason = result
                .reason
                .clone()
                .unwrap_or_else(|| "did not pass".into());
            Err(JobError::permanent(
                format!("check `{}` {}", result.name, reason),
                Some(value),
            ))
        }
    }
}

/// The job that runs `spec` in `class`, for `release` when given. Its supersede key is
/// `check:{name}` plus `@{release}` when there is one, so re-running the checks replaces the
/// queued runs of the same check.
pub fn check_job(spec: &CheckSpec, class: JobClass, release: Option<&str>) -> EnqueueJob {
    let mut job = EnqueueJob::new(
        class,
        CHECK_KIND,
        json!({"check": spec, "release": release}),
    );
    job.release_version = release.map(str::to_owned);
    job.supersede_key = Some(match release {
        Some(r) => format!("check:{}@{r}", spec.name),
        None => format!("check:{}", spec.name),
    });
    // A failing check fails for good; only a lost worker makes it run again.
    job.max_attempts = 2;
    job
}

/// One check's job and its result (`None` when it has none: cancelled, superseded, or its
/// payload was unreadable).
#[derive(Debug, Clone)]
pub struct CheckRun {
    pub job: Job,
    pub result: Option<CheckResult>,
}

impl CheckRun {
    pub fn of(job: Job) -> CheckRun {
        let result = job
            .result
            .clone()
            .and_then(|v| serde_json::from_value::<CheckResult>(v).ok());
        CheckRun { job, result }
    }

    /// The check passed.
    pub fn passed(&self) -> bool {
        self.result.as_ref().is_some_and(CheckResult::passed)
    }

    /// The check is required and did not pass (blocks release and deploy).
    pub fn blocks(&self) -> bool {
        let required = self
            .job
            .payload
            .pointer("/check/required")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        required && !self.passed()
    }
}

/// Enqueues `specs` and runs them with `workers` in-process workers until each job is finished;
/// returns the runs in the order of `specs`. The workers also run other queued jobs they find
/// (they are ordinary workers of the shared queue).
pub async fn run_checks(
    store: Arc<dyn Store>,
    specs: &[CheckSpec],
    class: JobClass,
    release: Option<&str>,
    workers: usize,
    config: WorkerConfig,
) -> Result<(Vec<CheckRun>, Vec<WorkerStats>), StoreError> {
    let mut ids = Vec::with_capacity(specs.len());
    for spec in specs {
        let enqueued = store
            .enqueue_job(
                &check_job(spec, class, release),
                &config.policy,
                &config.actor,
            )
            .await?;
        ids.push(enqueued.id);
    }
    let (stop, listener) = shutdown_signal();
    let pool = tokio::spawn(run_workers(
        Arc::clone(&store),
        Registry::builtin(),
        config,
        workers,
        listener,
    ));
    let filter = JobFilter {
        ids: ids.clone(),
        ..JobFilter::default()
    };
    let jobs = loop {
        let jobs = store.list_jobs(&filter).await;
        match jobs {
            Ok(jobs)
                if jobs
                    .iter()
                    .all(|j| JobState::parse(&j.state).is_some_and(JobState::is_final)) =>
            {
                break Ok(jobs);
            }
            Ok(_) => {}
            Err(e) => break Err(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.trigger();
    let stats = pool.await.unwrap_or_default();
    let mut jobs = jobs?;
    jobs.sort_by_key(|j| ids.iter().position(|&id| id == j.id));
    Ok((jobs.into_iter().map(CheckRun::of).collect(), stats))
}
