//! Incidents: opened against the deployment that caused them (by default the environment's live
//! one) and resolved by the deployment that restored service (by default the one live now, when
//! it is another). Audited as `incident.open` / `incident.resolve` with the payload
//! `{environment, summary, caused_by, restored_by}`.

use cutover_store::{Audit, Change, Incident, NewIncident, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{MetricsError, Timestamp};

pub const INCIDENT_OPEN: &str = "incident.open";
pub const INCIDENT_RESOLVE: &str = "incident.resolve";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentOpened {
    pub incident: Incident,
    /// Whether `caused_by` was taken from the environment's live deployment (not given).
    pub caused_by_default: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentResolved {
    pub incident: Incident,
    /// Whether `restored_by` was taken from the environment's live deployment (not given).
    pub restored_by_default: bool,
}

/// Checks that deployment `id` exists and deployed to `environment`.
async fn check_deployment(
    store: &dyn Store,
    id: i64,
    environment: &str,
) -> Result<(), MetricsError> {
    match store.get_deployment(id).await? {
        None => Err(MetricsError::BadDeployment {
            id,
            problem: "does not exist".to_owned(),
        }),
        Some(d) if d.environment != environment => Err(MetricsError::BadDeployment {
            id,
            problem: format!("deployed to `{}`, not to `{environment}`", d.environment),
        }),
        Some(_) => Ok(()),
    }
}

/// Opens an incident in `environment` at `now`. Without `caused_by` the environment's live
/// deployment (`cutover_views::current_release`) is named, or none when nothing is live.
pub async fn open_incident(
    store: &dyn Store,
    environment: &str,
    summary: &str,
    caused_by: Option<i64>,
    actor: &str,
    now: Timestamp,
) -> Result<IncidentOpened, MetricsError> {
    let (caused_by, caused_by_default) = match caused_by {
        Some(id) => {
            check_deployment(store, id, environment).await?;
            (Some(id), false)
        }
        None => (
            cutover_views::current_release(store, environment)
                .await?
                .map(|d| d.id),
            true,
        ),
    };
    // The id is assigned inside the transaction; the store writes it into the subject there.
    let audit = Audit::new(
        actor,
        INCIDENT_OPEN,
        "incident:{id}",
        json!({
            "environment": environment,
            "summary": summary,
            "caused_by": caused_by,
            "restored_by": null,
        }),
    );
    let change = Change::OpenIncident(NewIncident {
        environment: environment.to_owned(),
        summary: summary.to_owned(),
        caused_by,
        opened_at: now,
    });
    let applied = store.apply(std::slice::from_ref(&change), &audit).await?;
    let id = applied.id(0).ok_or_else(|| {
        MetricsError::Store(cutover_store::StoreError::Corrupt {
            what: "opening an incident returned no id".to_owned(),
        })
    })?;
    let incident = store
        .get_incident(id)
        .await?
        .ok_or(MetricsError::NoIncident { id })?;
    Ok(IncidentOpened {
        incident,
        caused_by_default,
    })
}

/// Resolves incident `id` at `now`. Without `restored_by` the environment's live deployment is
/// named when it differs from the incident's `caused_by` (else none: service came back without a
/// deployment).
pub async fn resolve_incident(
    store: &dyn Store,
    id: i64,
    restored_by: Option<i64>,
    actor: &str,
    now: Timestamp,
) -> Result<IncidentResolved, MetricsError> {
    let incident = store
        .get_incident(id)
        .await?
        .ok_or(MetricsError::NoIncident { id })?;
    if let Some(at) = incident.resolved_at {
        return Err(MetricsError::AlreadyResolved { id, at });
    }
    let (restored_by, restored_by_default) = match restored_by {
        Some(by) => {
            check_deployment(store, by, &incident.environment).await?;
            (Some(by), false)
        }
        None => (
            cutover_views::current_release(store, &incident.environment)
                .await?
                .map(|d| d.id)
                .filter(|live| Some(*live) != incident.caused_by),
            true,
        ),
    };
    let audit = Audit::new(
        actor,
        INCIDENT_RESOLVE,
        format!("incident:{id}"),
        json!({
            "environment": incident.environment,
            "summary": incident.summary,
            "caused_by": incident.caused_by,
            "restored_by": restored_by,
        }),
    );
    store
        .apply_one(
            Change::ResolveIncident {
                id,
                restored_by,
                at: now,
            },
            &audit,
        )
        .await
        .map_err(|e| match e {
            // Another process resolved it between the read and the write.
            cutover_store::StoreError::Conflict { .. } => {
                MetricsError::AlreadyResolved { id, at: now }
            }
            other => MetricsError::Store(other),
        })?;
    let incident = store
        .get_incident(id)
        .await?
        .ok_or(MetricsError::NoIncident { id })?;
    Ok(IncidentResolved {
        incident,
        restored_by_default,
    })
}
