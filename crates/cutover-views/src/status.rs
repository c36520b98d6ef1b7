//! `cutover status`: per environment its current release and newest deployment, and per host of
//! the environment whether its agent is connected and what its slots and router do.

use cutover_config::Config;
use cutover_store::{DeploymentFilter, Store, Timestamp};
use serde::Serialize;

use crate::observed::{self, RouterStatus, SlotStatus};
use crate::{ViewOptions, ViewsError, current_release, host_names, service_name};

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
    for (name, env) in &config.environments {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let release = current_release(store, name)
            .await?
            .map(|d| d.release_version);
        let deployment = store
            .list_deployments(&DeploymentFilter {
                environment: Some(name.clone()),
                unfinished_only: false,
                limit: Some(1),
            })
            .await?
            .into_iter()
            .next()
            .map(|d| DeploymentRef {
                id: d.id,
                state: d.state,
            });
        let service = config
            .service_key(name)
            .unwrap_or_else(|| format!("{}-{name}", service_name(config)));
        let mut hosts = Vec::new();
        for host in host_names(env) {
            hosts.push(host_status(store, &host, &service, options, &mut out.warnings).await?);
        }
        out.environments.push(EnvStatus {
            name: name.clone(),
            release,
            deployment,
            hosts,
        });
    }
    Ok(out)
}

async fn host_status(
    store: &dyn Store,
    name: &str,
    service: &str,
    options: &ViewOptions,
    warnings: &mut Vec<String>,
) -> Result<HostStatus, ViewsError> {
    let last_seen = store.get_host(name).await?.and_then(|h| h.last_seen);
    let mut status = HostStatus {
        name: name.to_owned(),
        connected: options.is_connected(last_seen),
        last_seen,
        slots: Vec::new(),
        router: RouterStatus::default(),
    };
    if let Some(obs) = store.latest_observation(name).await? {
        match observed::decode_observation(&obs) {
            Ok(doc) => {
                if let Some((_, svc)) = doc.service(service) {
                    status.slots = observed::slots(svc);
                    status.router = observed::router(svc);
                }
            }
            Err(e) => warnings.push(e),
        }
    }
    Ok(status)
}
