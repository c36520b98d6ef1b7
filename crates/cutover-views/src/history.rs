//! `cutover history`: deployments newest first, with why the failed and rolled-back ones ended so
//! (from their `deployment.transition` audit events).

use cutover_store::{
    AuditFilter, Deployment, DeploymentFilter, DeploymentSearch, Store, Timestamp,
};
use serde::Serialize;

use crate::ViewsError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    pub id: i64,
    pub environment: String,
    pub version: String,
    pub strategy: String,
    pub state: String,
    pub trigger: String,
    pub actor: String,
    /// The deployment a rollback reverts.
    pub reverts: Option<i64>,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// From creation to finish; `None` while unfinished.
    pub duration_ms: Option<i64>,
    /// For `failed` and `rolled_back` deployments: the reason of the transition that failed it
    /// (else of the rollback's transitions).
    pub reason: Option<String>,
}

/// Deployments of `environment` (all when `None`), newest first, at most `limit`.
pub async fn history(
    store: &dyn Store,
    environment: Option<&str>,
    limit: Option<usize>,
) -> Result<Vec<HistoryEntry>, ViewsError> {
    let deployments = store
        .list_deployments(&DeploymentFilter {
            environment: environment.map(str::to_owned),
            unfinished_only: false,
            limit: limit.map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
        })
        .await?;
    entries(store, deployments).await
}

/// The deployments of release `version` in every environment, newest first: [`history`] of all
/// environments restricted to the version, read with one indexed query instead of all of them.
pub async fn release_history(
    store: &dyn Store,
    version: &str,
) -> Result<Vec<HistoryEntry>, ViewsError> {
    let deployments = store
        .search_deployments(&DeploymentSearch {
            versions: vec![version.to_owned()],
            ..DeploymentSearch::default()
        })
        .await?;
    entries(store, deployments).await
}

async fn entries(
    store: &dyn Store,
    deployments: Vec<Deployment>,
) -> Result<Vec<HistoryEntry>, ViewsError> {
    let mut out = Vec::with_capacity(deployments.len());
    for d in deployments {
        let reason = if matches!(d.state.as_str(), "failed" | "rolled_back" | "rolling_back") {
            failure_reason(store, d.id).await?
        } else {
            None
        };
        out.push(entry(d, reason));
    }
    Ok(out)
}

fn entry(d: Deployment, reason: Option<String>) -> HistoryEntry {
    HistoryEntry {
        duration_ms: d
            .finished_at
            .map(|f| (f - d.created_at).num_milliseconds().max(0)),
        id: d.id,
        environment: d.environment,
        version: d.release_version,
        strategy: d.strategy,
        state: d.state,
        trigger: d.trigger,
        actor: d.actor,
        reverts: d.reverts,
        created_at: d.created_at,
        finished_at: d.finished_at,
        reason,
    }
}

/// The reason given with the transition to `failed`; else to `rolling_back`, else `rolled_back`
/// (the last one of each kind wins, as a resumed deployment may repeat one).
async fn failure_reason(store: &dyn Store, id: i64) -> Result<Option<String>, ViewsError> {
    let events = store
        .list_audit(&AuditFilter {
            action: Some("deployment.transition".to_owned()),
            subject: Some(format!("deployment:{id}")),
            ..AuditFilter::default()
        })
        .await?;
    let reason_to = |to: &str| {
        events
            .iter()
            .rev()
            .filter(|e| e.payload.get("to").and_then(|v| v.as_str()) == Some(to))
            .find_map(|e| {
                e.payload
                    .get("reason")
                    .and_then(|v| v.as_str())
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(str::to_owned)
            })
    };
    Ok(reason_to("failed")
        .or_else(|| reason_to("rolling_back"))
        .or_else(|| reason_to("rolled_back")))
}
