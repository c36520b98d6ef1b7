//! The durable priority queue in the store: records and the SQL both backends share.
//!
//! Order, aging, retries and superseding follow [`cutover_core::queue`] (read its docs for the
//! rank and the no-starvation bound): a job's `rank_us` is computed when it becomes runnable and
//! claims take the runnable job with the lowest rank (index `jobs_claim`), skipping jobs whose
//! concurrency group already has a running job. A partial unique index (`jobs_group_running`)
//! makes "one running job per group" a database invariant, so two workers racing for the same
//! group cannot both win: the loser's claim fails on the index and it claims again.
//!
//! A claim of up to `n` jobs is one statement, `WITH picked AS (…) UPDATE jobs … WHERE id IN
//! (SELECT id FROM picked) RETURNING *`: the candidates are the first `2n + 8` runnable jobs in
//! rank order (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so concurrent workers pass over each
//! other's candidates instead of waiting; SQLite runs the statement under its write lock), of
//! which the first of each concurrency group is kept (`row_number() OVER (PARTITION BY group)`)
//! and the first `n` taken. So a batch never holds two jobs of one group, and a batch of one is
//! exactly the single claim. PostgreSQL enqueues send `NOTIFY cutover_jobs` (one per enqueue
//! transaction, delivered at commit) and [`crate::Store::wait_for_work`] listens for it; workers
//! only wait for it after a claim found the queue empty. On SQLite other processes are noticed by
//! polling (the wait's timeout), this process's enqueues wake waiters at once.
//!
//! Batches: [`crate::Store::enqueue_jobs`] inserts many jobs with multi-row `INSERT`s in one
//! transaction; [`crate::Store::complete_jobs`] completes many in one `UPDATE` (the results bound
//! as one JSON array, so the statement text, and its prepared statement, is the same for every
//! batch size). Superseding inside an enqueue batch behaves as if its jobs were enqueued one after
//! the other: a job followed in the batch by one with the same key is inserted `cancelled`.
//!
//! Audit: enqueue (with the ids it superseded), cancel, bump, completion, final failure and the
//! reclaim of a job whose lease expired are each recorded in the same transaction as the change,
//! **one event per transaction**. An event about one job has subject `job/<id>` and the job's
//! fields; an event about a batch of several jobs has subject `jobs` and lists them: `job.enqueue`
//! `{count, ids, superseded, jobs: [{id, class, priority, kind, supersede_key?,
//! concurrency_group?, release?}]}`, `job.complete` `{worker, count, ids}`. To find every event
//! of job N, look for subject `job/N` and for `jobs` events whose `ids` hold N. The hash chain
//! costs one link per event, so batching is also what makes the audited queue fast.
//! Claims, heartbeats and the re-queueing of a failed attempt for a retry are not audited: they
//! are the queue's own bookkeeping, frequent, and the next audited event of the job tells the
//! outcome (its payload carries the attempt count and the last error).

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use cutover_core::queue::{JobClass, JobState, QueuePolicy};

use crate::Timestamp;

/// The most jobs one [`crate::Store::claim_jobs`] call takes.
pub const MAX_CLAIM: i64 = 1_000;

/// A job to enqueue with [`crate::Store::enqueue_job`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnqueueJob {
    pub class: JobClass,
    /// Within the class; higher runs first; clamped to ±[`cutover_core::queue::PRIORITY_MAX`].
    pub priority: i64,
    /// The handler that runs it (e.g. `check`).
    pub kind: String,
    pub payload: Value,
    /// Queued jobs with the same key are cancelled by this one.
    pub supersede_key: Option<String>,
    /// At most one job of the group runs at a time.
    pub concurrency_group: Option<String>,
    /// The release the result belongs to, when there is one.
    pub release_version: Option<String>,
    /// Attempts before it fails for good (at least 1).
    pub max_attempts: i64,
    /// Not claimed before this time.
    pub run_at: Timestamp,
}

impl EnqueueJob {
    /// A job of `class` and `kind`, priority 0, 3 attempts, runnable now.
    pub fn new(class: JobClass, kind: impl Into<String>, payload: Value) -> EnqueueJob {
        EnqueueJob {
            class,
            priority: 0,
            kind: kind.into(),
            payload,
            supersede_key: None,
            concurrency_group: None,
            release_version: None,
            max_attempts: 3,
            run_at: chrono::Utc::now(),
        }
    }
}

/// What [`crate::Store::enqueue_job`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enqueued {
    pub id: i64,
    /// The queued jobs with the same supersede key that it cancelled.
    pub superseded: Vec<i64>,
}

/// Which jobs to list (by id, newest first).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub kind: Option<String>,
    pub release_version: Option<String>,
    /// Only jobs with an id in this list (empty: all).
    pub ids: Vec<i64>,
    pub limit: Option<i64>,
}

/// The SQL of the queue, expanded inside `sql::impl_store!` (it uses that module's helpers:
/// `col`, `job_of`, `append_in_tx`, and the backend's `begin_write`, `lock_key`,
/// `CLAIM_FROM`, `CLAIM_LOCK`, `notify_jobs`).
macro_rules! queue_fns {
    ($store:ty) => {
        use cutover_core::queue::{AfterFailure, after_failure};
        use $crate::queue::*;

        fn job_state_err(id: i64, expected: &str, found: &str) -> StoreError {
            StoreError::Conflict {
                what: format!("job {id} is {found}, not {expected}"),
            }
        }

        async fn job_in_tx(tx: &mut Tx, id: i64) -> Result<Job, StoreError> {
            let row = sqlx::query("SELECT * FROM jobs WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut **tx)
                .await
                .map_err(read_err("reading a job"))?;
            match row {
                Some(r) => job_of(&r),
                None => Err(StoreError::NotFound { what: format!("job {id}") }),
            }
        }

        fn job_audit(actor: &str, action: &str, job: &Job, extra: serde_json::Value) -> Audit {
            let mut payload = serde_json::json!({
                "class": job.class,
                "priority": job.priority,
                "kind": job.kind,
                "state": job.state,
                "attempts": job.attempts,
            });
            if let (Some(map), serde_json::Value::Object(extra)) = (payload.as_object_mut(), extra) {
                map.extend(extra);
            }
            Audit::new(actor, action, format!("job/{}", job.id), payload)
        }

        /// The database type behind `Tx`, for the query builder.
        trait TxDb {
            type Db: sqlx::Database;
        }
        impl<D: sqlx::Database> TxDb for sqlx::Transaction<'static, D> {
            type Db = D;
        }
        type Db = <Tx as TxDb>::Db;

        /// Rows per multi-row `INSERT` (15 parameters each, well under both backends' limits).
        const INSERT_CHUNK: usize = 256;

        pub(crate) async fn q_enqueue(
            store: &$store,
            job: &EnqueueJob,
            policy: &QueuePolicy,
            actor: &str,
        ) -> Result<Enqueued, StoreError> {
            q_enqueue_batch(store, std::slice::from_ref(job), policy, actor)
                .await?
                .pop()
                .ok_or_else(|| StoreError::Corrupt { what: format!("enqueueing job {} returned no id", job.kind) })
        }

        pub(crate) async fn q_enqueue_batch(
            store: &$store,
            jobs: &[EnqueueJob],
            policy: &QueuePolicy,
            actor: &str,
        ) -> Result<Vec<Enqueued>, StoreError> {
            if jobs.is_empty() {
                return Ok(Vec::new());
            }
            for job in jobs {
                if job.max_attempts < 1 {
                    return Err(StoreError::Conflict {
                        what: format!("job {}: max_attempts must be at least 1, got {}", job.kind, job.max_attempts),
                    });
                }
            }
            // Superseding inside the batch, as if enqueued one after the other: a job followed by
            // one with the same key is inserted already cancelled, superseded by that one; the
            // queued jobs in the database are superseded by the batch's first job with the key.
            let mut successor: Vec<Option<usize>> = vec![None; jobs.len()];
            let mut first_with_key: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
            let mut last_with_key: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
            for (i, job) in jobs.iter().enumerate() {
                if let Some(key) = job.supersede_key.as_deref() {
                    if let Some(prev) = last_with_key.insert(key, i) {
                        successor[prev] = Some(i);
                    } else {
                        first_with_key.insert(key, i);
                    }
                }
            }
            let now = Utc::now();
            let now_us = us(&now);
            let mut tx = store.begin_write().await?;
            let mut superseded: Vec<Vec<i64>> = vec![Vec::new(); jobs.len()];
            // Keys in sorted order, so two batches locking the same keys cannot deadlock.
            for (key, &first) in &first_with_key {
                <$store>::lock_key(&mut tx, &format!("supersede:{key}")).await?;
                let rows = sqlx::query(
                    "UPDATE jobs SET state = 'cancelled', finished_us = $2, \
                     last_error = 'superseded by a newer job' \
                     WHERE supersede_key = $1 AND state = 'queued' RETURNING id",
                )
                .bind(*key)
                .bind(now_us)
                .fetch_all(&mut *tx)
                .await
                .map_err(write_err(format!("superseding jobs with key {key}")))?;
                for r in &rows {
                    superseded[first].push(col::<i64>(r, "id")?);
                }
                superseded[first].sort_unstable();
            }
            let mut ids: Vec<i64> = Vec::with_capacity(jobs.len());
            for (c, chunk) in jobs.chunks(INSERT_CHUNK).enumerate() {
                let mut qb = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO jobs (class, priority, kind, payload, state, supersede_key, concurrency_group, \
                     attempts, run_at_us, created_us, rank_us, max_attempts, release_version, finished_us, last_error) ",
                );
                qb.push_values(chunk.iter().enumerate(), |mut b, (k, job)| {
                    let cancelled = successor[c * INSERT_CHUNK + k].is_some();
                    b.push_bind(job.class.as_str())
                        .push_bind(cutover_core::queue::clamp_priority(job.priority))
                        .push_bind(job.kind.as_str())
                        .push_bind(js(&job.payload))
                        .push_bind(if cancelled { "cancelled" } else { "queued" })
                        .push_bind(job.supersede_key.as_deref())
                        .push_bind(job.concurrency_group.as_deref())
                        .push_bind(0_i64)
                        .push_bind(us(&job.run_at))
                        .push_bind(now_us)
                        .push_bind(policy.aging.rank_us(job.class, job.priority, us(&job.run_at)))
                        .push_bind(job.max_attempts)
                        .push_bind(job.release_version.as_deref())
                        .push_bind(cancelled.then_some(now_us))
                        .push_bind(cancelled.then_some("superseded by a newer job"));
                });
                qb.push(" RETURNING id");
                let rows = qb
                    .build()
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(write_err(format!("{} job(s) starting with {}", chunk.len(), chunk[0].kind)))?;
                // Ids are assigned in the order of the VALUES rows; RETURNING's order is not
                // promised, so sort.
                let mut chunk_ids = rows.iter().map(|r| col::<i64>(r, "id")).collect::<Result<Vec<_>, _>>()?;
                chunk_ids.sort_unstable();
                if chunk_ids.len() != chunk.len() {
                    return Err(StoreError::Corrupt {
                        what: format!("inserting {} jobs returned {} ids", chunk.len(), chunk_ids.len()),
                    });
                }
                ids.extend(chunk_ids);
            }
            for (i, next) in successor.iter().enumerate() {
                if let Some(next) = next {
                    superseded[*next].push(ids[i]);
                }
            }
            let audit = if let [job] = jobs {
                let mut payload = serde_json::json!({
                    "class": job.class.as_str(),
                    "priority": cutover_core::queue::clamp_priority(job.priority),
                    "kind": job.kind,
                    "state": "queued",
                    "attempts": 0,
                });
                if let Some(map) = payload.as_object_mut() {
                    map.insert("supersede_key".into(), serde_json::json!(job.supersede_key));
                    map.insert("concurrency_group".into(), serde_json::json!(job.concurrency_group));
                    map.insert("release".into(), serde_json::json!(job.release_version));
                    map.insert("superseded".into(), serde_json::json!(superseded[0]));
                }
                Audit::new(actor, "job.enqueue", format!("job/{}", ids[0]), payload)
            } else {
                let mut all_superseded: Vec<i64> = superseded.iter().flatten().copied().collect();
                all_superseded.sort_unstable();
                let listed: Vec<serde_json::Value> = jobs
                    .iter()
                    .zip(&ids)
                    .map(|(job, id)| {
                        let mut entry = serde_json::json!({
                            "id": id,
                            "class": job.class.as_str(),
                            "priority": cutover_core::queue::clamp_priority(job.priority),
                            "kind": job.kind,
                        });
                        if let Some(map) = entry.as_object_mut() {
                            for (name, value) in [
                                ("supersede_key", &job.supersede_key),
                                ("concurrency_group", &job.concurrency_group),
                                ("release", &job.release_version),
                            ] {
                                if let Some(v) = value {
                                    map.insert(name.into(), serde_json::json!(v));
                                }
                            }
                        }
                        entry
                    })
                    .collect();
                Audit::new(
                    actor,
                    "job.enqueue",
                    "jobs",
                    serde_json::json!({"count": jobs.len(), "ids": ids, "superseded": all_superseded, "jobs": listed}),
                )
            };
            append_in_tx(&mut tx, &audit).await?;
            <$store>::notify_jobs(&mut tx).await?;
            tx.commit().await.map_err(read_err("committing an enqueue"))?;
            store.wake_local();
            Ok(ids
                .into_iter()
                .zip(superseded)
                .map(|(id, mut superseded)| {
                    superseded.sort_unstable();
                    Enqueued { id, superseded }
                })
                .collect())
        }

        pub(crate) async fn q_claim(
            store: &$store,
            worker: &str,
            now: Timestamp,
            lease: std::time::Duration,
        ) -> Result<Option<Job>, StoreError> {
            Ok(q_claim_batch(store, worker, now, lease, 1).await?.pop())
        }

        pub(crate) async fn q_claim_batch(
            store: &$store,
            worker: &str,
            now: Timestamp,
            lease: std::time::Duration,
            limit: usize,
        ) -> Result<Vec<Job>, StoreError> {
            if limit == 0 {
                return Ok(Vec::new());
            }
            let limit = i64::try_from(limit).unwrap_or(i64::MAX).min(MAX_CLAIM);
            // Candidates beyond `limit` make up for the jobs of a group already taken by the batch;
            // a single claim needs none (a group with a running job is excluded by the filter).
            let candidates = if limit == 1 { 1 } else { limit.saturating_mul(2).saturating_add(8) };
            let lease_until = us(&now).saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX));
            // One statement (its own transaction): choose and take the next jobs in one round trip.
            // On SQLite it holds the write lock for the statement; on PostgreSQL the candidate rows
            // are locked with SKIP LOCKED, so concurrent claimers pass over them. Of the candidates
            // (rank order) only the first of each concurrency group is taken.
            let claim = format!(
                "WITH picked AS MATERIALIZED (SELECT id FROM (\
                 SELECT id, rank_us, concurrency_group, row_number() OVER \
                 (PARTITION BY concurrency_group ORDER BY rank_us, id) AS nth FROM (\
                 SELECT j.id, j.rank_us, j.concurrency_group FROM {} WHERE j.state = 'queued' AND j.run_at_us <= $1 \
                 AND (j.concurrency_group IS NULL OR NOT EXISTS (SELECT 1 FROM jobs r \
                 WHERE r.state = 'running' AND r.concurrency_group = j.concurrency_group)) \
                 ORDER BY j.rank_us, j.id LIMIT $5 {}) c) d \
                 WHERE concurrency_group IS NULL OR nth = 1 ORDER BY rank_us, id LIMIT $4) \
                 UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = $2, \
                 lease_until_us = $3, started_us = $1 WHERE state = 'queued' AND id IN (SELECT id FROM picked) \
                 RETURNING *",
                <$store>::CLAIM_FROM,
                <$store>::CLAIM_LOCK
            );
            // A lost race for a concurrency group fails on `jobs_group_running`; claim again
            // (the group's running job is then visible and its other jobs are passed over).
            for _ in 0..8 {
                let claimed = sqlx::query(&claim)
                    .bind(us(&now))
                    .bind(worker)
                    .bind(lease_until)
                    .bind(limit)
                    .bind(candidates)
                    .fetch_all(&store.pool)
                    .await;
                match claimed {
                    Ok(rows) => {
                        let mut jobs = rows.iter().map(job_of).collect::<Result<Vec<_>, _>>()?;
                        jobs.sort_by_key(|j| (j.rank_us, j.id));
                        return Ok(jobs);
                    }
                    Err(sqlx::Error::Database(db))
                        if db.kind() == sqlx::error::ErrorKind::UniqueViolation =>
                    {
                        continue;
                    }
                    Err(e) => return Err(read_err("claiming jobs")(e)),
                }
            }
            Ok(Vec::new())
        }

        pub(crate) async fn q_heartbeat(
            store: &$store,
            id: i64,
            worker: &str,
            lease_until: Timestamp,
        ) -> Result<bool, StoreError> {
            let done = sqlx::query(
                "UPDATE jobs SET lease_until_us = $3 WHERE id = $1 AND state = 'running' AND lease_owner = $2",
            )
            .bind(id)
            .bind(worker)
            .bind(us(&lease_until))
            .execute(&store.pool)
            .await
            .map_err(read_err("extending a job's lease"))?;
            Ok(done.rows_affected() > 0)
        }

        async fn running_job(tx: &mut Tx, id: i64, worker: &str) -> Result<Job, StoreError> {
            let job = job_in_tx(tx, id).await?;
            if job.state != "running" || job.lease_owner.as_deref() != Some(worker) {
                return Err(StoreError::Conflict {
                    what: format!(
                        "job {id} is not running under worker {worker} (state {}, lease owner {}); \
                         its lease may have expired and the job been reclaimed",
                        job.state,
                        job.lease_owner.as_deref().unwrap_or("none")
                    ),
                });
            }
            Ok(job)
        }

        pub(crate) async fn q_complete(
            store: &$store,
            id: i64,
            worker: &str,
            result: &serde_json::Value,
            actor: &str,
        ) -> Result<Job, StoreError> {
            let mut done = q_complete_batch(store, worker, &[(id, result.clone())], actor).await?;
            if let Some(job) = done.pop() {
                return Ok(job);
            }
            // Not completed: say why (a read; no write lock needed).
            let mut tx = store.pool.begin().await.map_err(read_err("reading a job"))?;
            let why = running_job(&mut tx, id, worker).await;
            let _ = tx.rollback().await;
            Err(why.err().unwrap_or_else(|| StoreError::Conflict {
                what: format!("job {id} could not be completed by worker {worker}; try again"),
            }))
        }

        pub(crate) async fn q_complete_batch(
            store: &$store,
            worker: &str,
            results: &[(i64, serde_json::Value)],
            actor: &str,
        ) -> Result<Vec<Job>, StoreError> {
            // One row per job (the first result given for it).
            let mut seen = std::collections::BTreeSet::new();
            let rows: Vec<serde_json::Value> = results
                .iter()
                .filter(|(id, _)| seen.insert(*id))
                .map(|(id, result)| serde_json::json!([id, js(result)]))
                .collect();
            if rows.is_empty() {
                return Ok(Vec::new());
            }
            let now = Utc::now();
            let sql = format!(
                "WITH done AS MATERIALIZED ({}) UPDATE jobs SET state = 'succeeded', \
                 result = (SELECT d.result FROM done d WHERE d.id = jobs.id), finished_us = $2, \
                 lease_owner = NULL, lease_until_us = NULL \
                 WHERE state = 'running' AND lease_owner = $3 AND id IN (SELECT id FROM done) RETURNING *",
                <$store>::DONE_ROWS
            );
            let mut tx = store.begin_write().await?;
            let updated = sqlx::query(&sql)
                .bind(serde_json::Value::Array(rows).to_string())
                .bind(us(&now))
                .bind(worker)
                .fetch_all(&mut *tx)
                .await
                .map_err(write_err(format!("completing {} job(s) of worker {worker}", seen.len())))?;
            let mut jobs = updated.iter().map(job_of).collect::<Result<Vec<_>, _>>()?;
            if jobs.is_empty() {
                // Nothing held any more (every lease was lost): nothing to record.
                let _ = tx.rollback().await;
                return Ok(jobs);
            }
            jobs.sort_by_key(|j| j.id);
            let audit = if let [job] = jobs.as_slice() {
                job_audit(actor, "job.complete", job, serde_json::json!({"worker": worker}))
            } else {
                let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
                Audit::new(
                    actor,
                    "job.complete",
                    "jobs",
                    serde_json::json!({"worker": worker, "count": ids.len(), "ids": ids}),
                )
            };
            append_in_tx(&mut tx, &audit).await?;
            tx.commit().await.map_err(read_err("committing a completion"))?;
            Ok(jobs)
        }

        /// Requeues (`Retry`) or fails `job` for good; the caller holds the transaction.
        #[allow(clippy::too_many_arguments)]
        async fn fail_in_tx(
            tx: &mut Tx,
            job: &Job,
            error: &str,
            result: Option<&serde_json::Value>,
            retry: bool,
            now: Timestamp,
            policy: &QueuePolicy,
            actor: &str,
            action_extra: serde_json::Value,
        ) -> Result<Job, StoreError> {
            let class = JobClass::parse(&job.class).unwrap_or(JobClass::Normal);
            let after = if retry {
                after_failure(&policy.backoff, job.id, job.attempts, job.max_attempts)
            } else {
                AfterFailure::GiveUp
            };
            let row = match after {
                AfterFailure::Retry(delay) => {
                    let run_at = us(&now).saturating_add(i64::try_from(delay.as_micros()).unwrap_or(i64::MAX));
                    sqlx::query(
                        "UPDATE jobs SET state = 'queued', run_at_us = $2, rank_us = $3, last_error = $4, \
                         result = $5, lease_owner = NULL, lease_until_us = NULL WHERE id = $1 RETURNING *",
                    )
                    .bind(job.id)
                    .bind(run_at)
                    .bind(policy.aging.rank_us(class, job.priority, run_at))
                    .bind(error)
                    .bind(result.map(js))
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(write_err(format!("job {}", job.id)))?
                }
                AfterFailure::GiveUp => {
                    let row = sqlx::query(
                        "UPDATE jobs SET state = 'failed', finished_us = $2, last_error = $3, result = $4, \
                         lease_owner = NULL, lease_until_us = NULL WHERE id = $1 RETURNING *",
                    )
                    .bind(job.id)
                    .bind(us(&now))
                    .bind(error)
                    .bind(result.map(js))
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(write_err(format!("job {}", job.id)))?;
                    let failed = job_of(&row)?;
                    let mut extra = serde_json::json!({"error": error});
                    if let (Some(m), serde_json::Value::Object(more)) = (extra.as_object_mut(), action_extra) {
                        m.extend(more);
                    }
                    append_in_tx(tx, &job_audit(actor, "job.fail", &failed, extra)).await?;
                    return Ok(failed);
                }
            };
            job_of(&row)
        }

        #[allow(clippy::too_many_arguments)]
        pub(crate) async fn q_fail(
            store: &$store,
            id: i64,
            worker: &str,
            error: &str,
            result: Option<&serde_json::Value>,
            retry: bool,
            policy: &QueuePolicy,
            actor: &str,
        ) -> Result<Job, StoreError> {
            let now = Utc::now();
            let mut tx = store.begin_write().await?;
            let job = running_job(&mut tx, id, worker).await?;
            let job = fail_in_tx(&mut tx, &job, error, result, retry, now, policy, actor, serde_json::json!({"worker": worker})).await?;
            tx.commit().await.map_err(read_err("committing a failure"))?;
            Ok(job)
        }

        pub(crate) async fn q_reclaim(
            store: &$store,
            now: Timestamp,
            policy: &QueuePolicy,
            actor: &str,
        ) -> Result<Vec<Job>, StoreError> {
            let mut tx = store.begin_write().await?;
            let select = format!(
                "SELECT id FROM jobs WHERE state = 'running' AND lease_until_us < $1 ORDER BY id {}",
                <$store>::CLAIM_LOCK
            );
            let ids: Vec<i64> = sqlx::query(&select)
                .bind(us(&now))
                .fetch_all(&mut *tx)
                .await
                .map_err(read_err("finding jobs whose lease expired"))?
                .iter()
                .map(|r| col::<i64>(r, "id"))
                .collect::<Result<_, _>>()?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let job = job_in_tx(&mut tx, id).await?;
                let owner = job.lease_owner.clone().unwrap_or_default();
                let until = job.lease_until.map(|t| cutover_core::audit::format_at(&t)).unwrap_or_default();
                let error = format!("lease of worker {owner} expired at {until} (the worker stopped or died)");
                let after = fail_in_tx(&mut tx, &job, &error, None, true, now, policy, actor, serde_json::json!({"worker": owner})).await?;
                if after.state == "queued" {
                    let audit = job_audit(
                        actor,
                        "job.reclaim",
                        &after,
                        serde_json::json!({"worker": owner, "error": error, "retry_at": cutover_core::audit::format_at(&after.run_at)}),
                    );
                    append_in_tx(&mut tx, &audit).await?;
                }
                out.push(after);
            }
            tx.commit().await.map_err(read_err("committing a reclaim"))?;
            if !out.is_empty() {
                store.wake_local();
            }
            Ok(out)
        }

        pub(crate) async fn q_cancel(store: &$store, id: i64, actor: &str, reason: &str) -> Result<Job, StoreError> {
            let now = Utc::now();
            let mut tx = store.begin_write().await?;
            let job = job_in_tx(&mut tx, id).await?;
            if job.state != "queued" {
                return Err(job_state_err(id, "queued (only queued jobs can be cancelled)", &job.state));
            }
            let row = sqlx::query(
                "UPDATE jobs SET state = 'cancelled', finished_us = $2, last_error = $3 WHERE id = $1 RETURNING *",
            )
            .bind(id)
            .bind(us(&now))
            .bind(reason)
            .fetch_one(&mut *tx)
            .await
            .map_err(write_err(format!("job {id}")))?;
            let job = job_of(&row)?;
            append_in_tx(&mut tx, &job_audit(actor, "job.cancel", &job, serde_json::json!({"reason": reason}))).await?;
            tx.commit().await.map_err(read_err("committing a cancel"))?;
            Ok(job)
        }

        pub(crate) async fn q_bump(
            store: &$store,
            id: i64,
            priority: i64,
            policy: &QueuePolicy,
            actor: &str,
        ) -> Result<Job, StoreError> {
            let mut tx = store.begin_write().await?;
            let job = job_in_tx(&mut tx, id).await?;
            if job.state != "queued" {
                return Err(job_state_err(id, "queued (only queued jobs can be re-prioritized)", &job.state));
            }
            let class = JobClass::parse(&job.class).ok_or_else(|| StoreError::Corrupt {
                what: format!("job {id}: class `{}`", job.class),
            })?;
            let priority = cutover_core::queue::clamp_priority(priority);
            let row = sqlx::query("UPDATE jobs SET priority = $2, rank_us = $3 WHERE id = $1 RETURNING *")
                .bind(id)
                .bind(priority)
                .bind(policy.aging.rank_us(class, priority, us(&job.run_at)))
                .fetch_one(&mut *tx)
                .await
                .map_err(write_err(format!("job {id}")))?;
            let bumped = job_of(&row)?;
            append_in_tx(&mut tx, &job_audit(actor, "job.bump", &bumped, serde_json::json!({"from": job.priority}))).await?;
            tx.commit().await.map_err(read_err("committing a bump"))?;
            Ok(bumped)
        }

        pub(crate) async fn q_list(store: &$store, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
            let ids = if filter.ids.is_empty() {
                None
            } else {
                Some(serde_json::to_string(&filter.ids).map_err(|e| StoreError::Corrupt { what: e.to_string() })?)
            };
            let sql = format!(
                "SELECT * FROM jobs WHERE ($1 IS NULL OR state = $1) AND ($2 IS NULL OR kind = $2) \
                 AND ($3 IS NULL OR release_version = $3) AND ($4 IS NULL OR id IN ({})) ORDER BY id DESC LIMIT $5",
                <$store>::JSON_IDS
            );
            sqlx::query(&sql)
                .bind(filter.state.map(|s| s.as_str()))
                .bind(filter.kind.as_deref())
                .bind(filter.release_version.as_deref())
                .bind(ids)
                .bind(filter.limit.unwrap_or(i64::MAX))
                .fetch_all(&store.pool)
                .await
                .map_err(read_err("listing jobs"))?
                .iter()
                .map(job_of)
                .collect()
        }
    };
}
pub(crate) use queue_fns;
