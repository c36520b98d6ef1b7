//! `cutover host ls`: every registered host, whether its agent is connected, and what it runs
//! (from its latest observation: per service, the slots' versions and the router's split).

use cutover_store::{Store, Timestamp};
use serde::Serialize;

use crate::observed::{self, RouterStatus, SlotStatus};
use crate::{ViewOptions, ViewsError};

/// One host; never its token hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostRuns {
    pub name: String,
    pub agent_version: Option<String>,
    pub last_seen: Option<Timestamp>,
    pub created_at: Timestamp,
    /// Seen within 3× the poll timeout (see [`ViewOptions::is_connected`]).
    pub connected: bool,
    /// When the agent made the report `services` comes from.
    pub observed_at: Option<Timestamp>,
    pub services: Vec<ServiceRuns>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceRuns {
    pub name: String,
    pub slots: Vec<SlotStatus>,
    pub router: RouterStatus,
    /// What the agent could not resolve, as it reported it.
    pub errors: Vec<String>,
}

/// Every registered host, by name, and the observations that could not be read.
pub async fn hosts(
    store: &dyn Store,
    options: &ViewOptions,
) -> Result<(Vec<HostRuns>, Vec<String>), ViewsError> {
    let mut warnings = Vec::new();
    let mut out = Vec::new();
    for h in store.list_hosts().await? {
        let mut runs = HostRuns {
            connected: options.is_connected(h.last_seen),
            name: h.name,
            agent_version: h.agent_version,
            last_seen: h.last_seen,
            created_at: h.created_at,
            observed_at: None,
            services: Vec::new(),
        };
        if let Some(obs) = store.latest_observation(&runs.name).await? {
            match observed::decode_observation(&obs) {
                Ok(doc) => {
                    runs.observed_at = Some(doc.at);
                    runs.services = doc
                        .services
                        .iter()
                        .map(|(name, svc)| ServiceRuns {
                            name: name.clone(),
                            slots: observed::slots(svc),
                            router: observed::router(svc),
                            errors: svc.errors.clone(),
                        })
                        .collect();
                }
                Err(e) => warnings.push(e),
            }
        }
        out.push(runs);
    }
    Ok((out, warnings))
}
