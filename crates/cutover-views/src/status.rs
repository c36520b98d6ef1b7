//! `cutover status`: per environment its current release and newest deployment, and per host of
//! the environment whether its agent is connected and what its slots and router do.

use cutover_config::Config;
use std::collections::BTreeMap;

use cutover_store::{DeploymentFilter, Host, Observation, Store, Timestamp};
use serde::Serialize;

use crate::observed::{self, RouterStatus, SlotStatus};
use crate::{ViewOptions, ViewsError, current_release, host_names, is_current, service_name};

/// The whole status document (its JSON is the `cutover status --json` contract).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub environments: Vec<EnvStatus>,
    /// Records that could not be read (shown on stderr; not part of the contract).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvStatus {
    pub name: String,
    /// The current release: the version of the newest `live` deployment; `None` when nothing
    /// was ever live here.
    pub release: Option<String>,
    /// The newest deployment in any state, so that one in flight shows.
    pub deployment: Option<DeploymentRef>,
    pub hosts: Vec<HostStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeploymentRef {
    pub id: i64,
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostStatus {
    pub name: String,
    /// Seen within 3× the poll timeout (see [`ViewOptions::is_connected`]).
    pub connected: bool,
    pub last_seen: Option<Timestamp>,
    /// From the host's latest observation; empty before its first report.
    pub slots: Vec<SlotStatus>,
    pub router: RouterStatus,
}

/// The status of every configured environment, or of `only`.
pub async fn status(
    store: &dyn Store,
    config: &Config,
    only: Option<&str>,
    options: &ViewOptions,
) -> Result<Status, ViewsError> {
    if let Some(name) = only
        && !config.environments.contains_key(name)
    {
        return Err(ViewsError::UnknownEnvironment {
            name: name.to_owned(),
            known: config.environments.keys().cloned().collect(),
        });
    }
    let mut out = Status {
        environments: Vec::new(),
        warnings: Vec::new(),
    };
    let selected: Vec<(&String, &cutover_config::Environment)> = config
        .environments
        .iter()
        .filter(|(name, _)| only.is_none_or(|o| o == name.as_str()))
        .collect();
    // Every host's record and newest observation in two queries, not two per host.
    let mut all_hosts: Vec<String> = selected.iter().flat_map(|(_, e)| host_names(e)).collect();
    all_hosts.sort();
    all_hosts.dedup();
    let records: BTreeMap<String, Host> = store
        .list_hosts()
        .await?
        .into_iter()
        .filter(|h| all_hosts.binary_search(&h.name).is_ok())
        .map(|h| (h.name.clone(), h))
        .collect();
    let observations: BTreeMap<String, Observation> = store
        .latest_observations(&all_hosts)
        .await?
        .into_iter()
        .map(|o| (o.host.clone(), o))
        .collect();
    for (name, env) in selected {
        let newest = store
            .list_deployments(&DeploymentFilter {
                environment: Some(name.clone()),
                unfinished_only: false,
                limit: Some(1),
            })
            .await?
            .into_iter()
            .next();
        // Usually the newest deployment is the live one; only when it is not (or in flight) is
        // the current release looked for further back.
        let release = match &newest {
            None => None,
            Some(d) if is_current(d) => Some(d.release_version.clone()),
            Some(_) => current_release(store, name)
                .await?
                .map(|d| d.release_version),
        };
        let deployment = newest.map(|d| DeploymentRef {
            id: d.id,
            state: d.state,
        });
        let service = config
            .service_key(name)
            .unwrap_or_else(|| format!("{}-{name}", service_name(config)));
        let hosts = host_names(env)
            .into_iter()
            .map(|host| {
                let last_seen = records.get(&host).and_then(|h| h.last_seen);
                let observation = observations.get(&host);
                host_status(
                    host,
                    last_seen,
                    observation,
                    &service,
                    options,
                    &mut out.warnings,
                )
            })
            .collect();
        out.environments.push(EnvStatus {
            name: name.clone(),
            release,
            deployment,
            hosts,
        });
    }
    Ok(out)
}

fn host_status(
    name: String,
    last_seen: Option<Timestamp>,
    observation: Option<&Observation>,
    service: &str,
    options: &ViewOptions,
    warnings: &mut Vec<String>,
) -> HostStatus {
    let mut status = HostStatus {
        connected: options.is_connected(last_seen),
        name,
        last_seen,
        slots: Vec::new(),
        router: RouterStatus::default(),
    };
    if let Some(obs) = observation {
        match observed::decode_observation(obs) {
            Ok(doc) => {
                if let Some((_, svc)) = doc.service(service) {
                    status.slots = observed::slots(svc);
                    status.router = observed::router(svc);
                }
            }
            Err(e) => warnings.push(e),
        }
    }
    status
}
