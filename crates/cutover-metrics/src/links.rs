//! Explicit links between a hotfix release and the production deployment it fixes.
//!
//! `cutover hotfix start` records `hotfix.start` (subject `hotfix/<version>`) naming the deployment
//! that was live in production when the branch was cut; `cutover hotfix finish` then records
//! `release.link` (subject `release/<version>`, payload `{version, fixes_deployment}`), which the
//! change failure rate reads. Nothing is inferred from timestamps.

use cutover_store::{Audit, AuditEvent, AuditFilter, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::MetricsError;

/// The audit action of a hotfix release's link to the deployment it fixes.
pub const RELEASE_LINK: &str = "release.link";
/// The audit action `cutover hotfix start` records.
pub const HOTFIX_START: &str = "hotfix.start";

/// What a hotfix branch was cut from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HotfixStart {
    /// The patch version the branch will release.
    pub version: String,
    pub branch: String,
    /// The tag the branch starts at.
    pub from: String,
    /// The production environment and its deployment live at that moment.
    pub environment: String,
    pub live_deployment: i64,
}

/// A recorded `release.link`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseLinked {
    pub version: String,
    pub fixes_deployment: i64,
    pub environment: String,
    /// The audit event's seq.
    pub seq: i64,
}

/// Records `hotfix.start` for `start`.
pub async fn record_hotfix_start(
    store: &dyn Store,
    start: &HotfixStart,
    actor: &str,
) -> Result<AuditEvent, MetricsError> {
    let payload = serde_json::to_value(start).unwrap_or_else(|_| json!({}));
    Ok(store
        .append_audit(&Audit::new(
            actor,
            HOTFIX_START,
            format!("hotfix/{}", start.version),
            payload,
        ))
        .await?)
}

/// The newest `hotfix.start` recorded for `version`, if any.
pub async fn hotfix_start(
    store: &dyn Store,
    version: &str,
) -> Result<Option<HotfixStart>, MetricsError> {
    let events = store
        .list_audit(&AuditFilter {
            action: Some(HOTFIX_START.to_owned()),
            subject: Some(format!("hotfix/{version}")),
            descending: true,
            limit: Some(1),
            ..AuditFilter::default()
        })
        .await?;
    Ok(events
        .into_iter()
        .find_map(|e| HotfixStart::deserialize(&e.payload).ok()))
}

/// Links hotfix release `version` to the deployment that was live when its branch was cut
/// (`release.link`), once: an existing link is returned as it is. `None` when the branch was not
/// started from a known live deployment (e.g. `hotfix start --from TAG`).
pub async fn link_hotfix_release(
    store: &dyn Store,
    version: &str,
    actor: &str,
) -> Result<Option<ReleaseLinked>, MetricsError> {
    let Some(start) = hotfix_start(store, version).await? else {
        return Ok(None);
    };
    let existing = store
        .list_audit(&AuditFilter {
            action: Some(RELEASE_LINK.to_owned()),
            subject: Some(format!("release/{version}")),
            ..AuditFilter::default()
        })
        .await?;
    if let Some(e) = existing.iter().find(|e| {
        e.payload
            .get("fixes_deployment")
            .and_then(serde_json::Value::as_i64)
            == Some(start.live_deployment)
    }) {
        return Ok(Some(ReleaseLinked {
            version: version.to_owned(),
            fixes_deployment: start.live_deployment,
            environment: start.environment,
            seq: e.seq,
        }));
    }
    let event = store
        .append_audit(&Audit::new(
            actor,
            RELEASE_LINK,
            format!("release/{version}"),
            json!({
                "version": version,
                "fixes_deployment": start.live_deployment,
                "environment": start.environment,
            }),
        ))
        .await?;
    Ok(Some(ReleaseLinked {
        version: version.to_owned(),
        fixes_deployment: start.live_deployment,
        environment: start.environment,
        seq: event.seq,
    }))
}
