//! Reading one environment's [`History`] out of the store: releases with their commits,
//! deployments (with when the rolled-back ones failed), incidents and `release.link` events.

use std::collections::HashSet;

use cutover_store::{AuditFilter, DeploymentFilter, Store};
use serde::Deserialize;

use crate::dora::{
    DeploymentRecord, History, IncidentRecord, ReleaseLink, ReleaseRecord, commits_of,
};
use crate::{MetricsError, links};

/// The `release.link` payload, read leniently.
#[derive(Debug, Deserialize)]
struct LinkPayload {
    version: String,
    fixes_deployment: i64,
}

/// The records the metrics of `environment` need (every release: lead times look at the whole
/// history), and warnings about records that cannot be read.
pub async fn load_history(
    store: &dyn Store,
    environment: &str,
) -> Result<(History, Vec<String>), MetricsError> {
    let mut warnings = Vec::new();
    let releases = store
        .list_releases()
        .await?
        .into_iter()
        .map(|r| ReleaseRecord {
            commits: commits_of(&r.version, &r.changes, &mut warnings),
            version: r.version,
            created_at: r.created_at,
        })
        .collect();
    let stored = store
        .list_deployments(&DeploymentFilter {
            environment: Some(environment.to_owned()),
            unfinished_only: false,
            limit: None,
        })
        .await?;
    let mut deployments = Vec::with_capacity(stored.len());
    for d in stored {
        // Only the rolled-back ones need the moment they failed; one small query each.
        let failed_at = if d.state == "rolled_back" {
            // Never outside the deployment's own life, whatever clock wrote the event.
            failed_at(store, d.id).await?.map(|at| {
                let end = d.finished_at.unwrap_or(at).max(d.created_at);
                at.clamp(d.created_at, end)
            })
        } else {
            None
        };
        deployments.push(DeploymentRecord {
            id: d.id,
            environment: d.environment,
            version: d.release_version,
            state: d.state,
            reverts: d.reverts,
            created_at: d.created_at,
            finished_at: d.finished_at,
            failed_at,
        });
    }
    let ids: HashSet<i64> = deployments.iter().map(|d| d.id).collect();
    let incidents = store
        .list_incidents(Some(environment))
        .await?
        .into_iter()
        .map(|i| IncidentRecord {
            id: i.id,
            environment: i.environment,
            caused_by: i.caused_by,
            restored_by: i.restored_by,
            opened_at: i.opened_at,
            resolved_at: i.resolved_at,
        })
        .collect();
    let events = store
        .list_audit(&AuditFilter {
            action: Some(links::RELEASE_LINK.to_owned()),
            ..AuditFilter::default()
        })
        .await?;
    let mut release_links = Vec::new();
    for event in events {
        match LinkPayload::deserialize(&event.payload) {
            Ok(p) if ids.contains(&p.fixes_deployment) => release_links.push(ReleaseLink {
                version: p.version,
                fixes_deployment: p.fixes_deployment,
            }),
            Ok(_) => {}
            Err(e) => warnings.push(format!(
                "audit event {} ({}) cannot be read ({e}); it is left out",
                event.seq,
                links::RELEASE_LINK
            )),
        }
    }
    Ok((
        History {
            releases,
            deployments,
            incidents,
            links: release_links,
        },
        warnings,
    ))
}

/// When deployment `id` moved to `failed`, from its `deployment.transition` events: the payload's
/// `at` (RFC 3339) when it has one (events imported or written after the fact), else the event's
/// own time (the deploy engine writes each transition as it happens).
async fn failed_at(store: &dyn Store, id: i64) -> Result<Option<crate::Timestamp>, MetricsError> {
    let events = store
        .list_audit(&AuditFilter {
            action: Some("deployment.transition".to_owned()),
            subject: Some(format!("deployment:{id}")),
            ..AuditFilter::default()
        })
        .await?;
    Ok(events
        .iter()
        .find(|e| e.payload.get("to").and_then(serde_json::Value::as_str) == Some("failed"))
        .map(|e| {
            e.payload
                .get("at")
                .and_then(serde_json::Value::as_str)
                .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                .map_or(e.at, |at| at.with_timezone(&chrono::Utc))
        }))
}
