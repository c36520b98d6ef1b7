//! Queue jobs and the deployments they create: the explicit link between them and what a job run
//! again does with the deployment an earlier attempt of it left.
//!
//! The link is the `job` field of the deployment's `deployment.create` audit event, written in
//! the same transaction as the deployment itself: a job's attempt that died after creating its
//! deployment has linked it, one that died before has not (and creates it on the next attempt).
//! Nothing is guessed from timestamps or versions: the search only starts after the job's own
//! `job.enqueue` event (its sequence number), which every event of its deployment follows.
//!
//! A job run again ([`crate::Engine::deploy_for_job`]) adopts that deployment instead of starting
//! another: a finished one gives its outcome, an unfinished one is resumed under the
//! environment's lock (the same lock the resume at start takes, so only one of them drives it;
//! the other waits for it, then reads it finished).

use cutover_core::deploy::State;
use cutover_store::{AuditFilter, Deployment, Store, StoreError};

use crate::DeployOutcome;

/// The `deployment.create` payload field that names the queue job a deployment was created for.
pub const JOB_FIELD: &str = "job";

/// The deployment an attempt of queue job `job` created, if any.
///
/// # Errors
/// When the store cannot be read.
pub async fn job_deployment(store: &dyn Store, job: i64) -> Result<Option<Deployment>, StoreError> {
    // Every event of the job's deployment follows the job's enqueue event in the chain; a job
    // enqueued in a batch has a `jobs` event instead, and then the whole log is searched.
    let enqueued = store
        .list_audit(&AuditFilter {
            action: Some("job.enqueue".into()),
            subject: Some(format!("job/{job}")),
            limit: Some(1),
            ..AuditFilter::default()
        })
        .await?
        .first()
        .map(|e| e.seq);
    let created = store
        .list_audit(&AuditFilter {
            action: Some("deployment.create".into()),
            after_seq: enqueued,
            ..AuditFilter::default()
        })
        .await?;
    let Some(id) = created
        .iter()
        .find(|e| e.payload.get(JOB_FIELD).and_then(serde_json::Value::as_i64) == Some(job))
        .and_then(|e| e.subject.strip_prefix("deployment:"))
        .and_then(|id| id.parse::<i64>().ok())
    else {
        return Ok(None);
    };
    store.get_deployment(id).await
}

/// How a finished deployment ended, as the outcome its deploying command would have returned;
/// `None` while it is unfinished. The reason is read from its last transition.
///
/// # Errors
/// When the store cannot be read.
pub async fn finished_outcome(
    store: &dyn Store,
    dep: &Deployment,
) -> Result<Option<DeployOutcome>, StoreError> {
    if dep.finished_at.is_none() {
        return Ok(None);
    }
    let deployment = dep.id;
    if dep.state == State::Live.as_str() {
        return Ok(Some(DeployOutcome::Live { deployment }));
    }
    let last = store
        .list_audit(&AuditFilter {
            action: Some("deployment.transition".into()),
            subject: Some(format!("deployment:{deployment}")),
            descending: true,
            limit: Some(1),
            ..AuditFilter::default()
        })
        .await?;
    // The last transition's reason is the outcome's, after the words that say how it ended.
    let reason = last
        .first()
        .and_then(|e| e.payload.get("reason"))
        .and_then(serde_json::Value::as_str)
        .map_or_else(
            || format!("it ended `{}`", dep.state),
            |r| {
                r.strip_prefix(crate::flow::ROLLED_BACK)
                    .or_else(|| r.strip_prefix(crate::flow::NOTHING_TO_ROLL_BACK))
                    .unwrap_or(r)
                    .to_owned()
            },
        );
    Ok(Some(if dep.state == State::RolledBack.as_str() {
        DeployOutcome::RolledBack { deployment, reason }
    } else {
        // `failed`, or a state a finished deployment should not have: not live either way.
        DeployOutcome::Failed { deployment, reason }
    }))
}
