//! The soak gate: the release has been live in the `promote_from` environment for `soak`, and
//! nothing failed there since.

use chrono::{DateTime, Utc};
use cutover_config::Environment;
use cutover_store::{Deployment, DeploymentFilter, Store};

use crate::{GateError, GateResult, SOAK, fmt_duration, fmt_time};

/// The latest time `version` became live in `environment` (the newest `live` deployment of it
/// with `finished_at` set), and the failure after it, if any.
pub(crate) struct LiveRecord {
    pub live: Deployment,
    pub live_at: DateTime<Utc>,
    pub failure: Option<(Deployment, String)>,
}

pub(crate) async fn live_record(
    store: &dyn Store,
    environment: &str,
    version: &str,
) -> Result<Option<LiveRecord>, GateError> {
    let deployments = store
        .list_deployments(&DeploymentFilter {
            environment: Some(environment.to_string()),
            ..DeploymentFilter::default()
        })
        .await?;
    let Some((live, live_at)) = deployments
        .iter()
        .filter(|d| d.release_version == version && d.state == "live")
        .filter_map(|d| d.finished_at.map(|f| (d, f)))
        .max_by_key(|(d, f)| (*f, d.id))
    else {
        return Ok(None);
    };
    // A failure of this version after it went live, or a rollback away from that deployment.
    let failure = deployments
        .iter()
        .filter(|d| d.id != live.id)
        .filter_map(|d| {
            let at = d.finished_at.unwrap_or(d.updated_at);
            if at < live_at {
                return None;
            }
            if d.reverts == Some(live.id) {
                Some((d.clone(), format!("deployment {} rolled it back", d.id)))
            } else if d.release_version == version
                && matches!(d.state.as_str(), "rolled_back" | "failed")
            {
                Some((
                    d.clone(),
                    format!("deployment {} of it ended {}", d.id, d.state),
                ))
            } else {
                None
            }
        })
        .min_by_key(|(d, _)| (d.finished_at.unwrap_or(d.updated_at), d.id));
    Ok(Some(LiveRecord {
        live: live.clone(),
        live_at,
        failure,
    }))
}

pub(crate) async fn gate(
    store: &dyn Store,
    env: &Environment,
    version: &str,
    now: DateTime<Utc>,
) -> Result<GateResult, GateError> {
    let Some(from) = &env.promote_from else {
        return Ok(GateResult::open(
            SOAK,
            "no soak: the environment promotes from nothing",
        ));
    };
    let soak = env
        .soak
        .as_ref()
        .map(|d| chrono::Duration::from_std(d.get()).unwrap_or(chrono::Duration::MAX))
        .unwrap_or_else(chrono::Duration::zero);
    let Some(rec) = live_record(store, from, version).await? else {
        return Ok(GateResult::hold(
            SOAK,
            format!("{version} has not been live in `{from}`: deploy it there first"),
            None,
        ));
    };
    if let Some((failed, why)) = &rec.failure {
        let at = failed.finished_at.unwrap_or(failed.updated_at);
        return Ok(GateResult::hold(
            SOAK,
            format!(
                "{version} failed in `{from}` after it went live (deployment {}): {why} at {}; a new deployment to `{from}` starts the soak again",
                rec.live.id,
                fmt_time(at)
            ),
            None,
        ));
    }
    let opens_at = rec.live_at.checked_add_signed(soak);
    let soaked = now - rec.live_at;
    match opens_at {
        Some(t) if t <= now => Ok(GateResult::open(
            SOAK,
            if soak.is_zero() {
                format!("live in `{from}` since {}", fmt_time(rec.live_at))
            } else {
                format!(
                    "live in `{from}` since {} without a failure ({} of {} soak)",
                    fmt_time(rec.live_at),
                    fmt_duration(soaked),
                    fmt_duration(soak)
                )
            },
        )),
        _ => Ok(GateResult::hold(
            SOAK,
            format!(
                "live in `{from}` since {}: soaked {} of {}",
                fmt_time(rec.live_at),
                fmt_duration(soaked.max(chrono::Duration::zero())),
                fmt_duration(soak)
            ),
            opens_at,
        )),
    }
}
