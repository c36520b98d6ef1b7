//! What runs where, computed from the store's records: status per environment and host, the
//! deployment history, what served at an instant (`audit --env --at`), and what each host runs.
//!
//! Everything here only reads. The records are those of the session's deploy conventions:
//! deployments (the environment's current release is its newest `live` deployment with
//! `finished_at` set), `deployment.transition`, `deployment.switch` and `proof.record` audit events,
//! and the agents' observations (`{at, services: {name: ObservedService}}`).

mod error;
mod history;
mod hosts;
mod observed;
mod served;
mod status;
mod time;

use std::time::Duration;

pub use error::ViewsError;
pub use history::{HistoryEntry, history, release_history};
pub use hosts::{HostRuns, ServiceRuns, hosts};
pub use observed::{ObservedDoc, RouterStatus, SlotStatus, decode_observation};
pub use served::{ProofRef, Served, ServedAt, ServedHost, served_at, served_at_replay};
pub use status::{DeploymentRef, EnvStatus, HostStatus, Status, status};
pub use time::{TimeError, parse_time};

use cutover_store::{Deployment, DeploymentSearch, Store, Timestamp};

/// The long-poll timeout of the control plane (`cutover_control::ControlState::new`): a connected
/// agent is seen at least this often, at the start of every poll.
pub const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(30);

/// How "now" and "connected" are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewOptions {
    pub now: Timestamp,
    /// The control plane's long-poll timeout; an agent counts as connected when it was last seen
    /// within three of them (one poll in progress, one late, one lost), so that one slow poll
    /// does not make a host look gone.
    pub poll_timeout: Duration,
}

impl ViewOptions {
    /// At `now`, with [`DEFAULT_POLL_TIMEOUT`].
    #[must_use]
    pub fn at(now: Timestamp) -> Self {
        Self {
            now,
            poll_timeout: DEFAULT_POLL_TIMEOUT,
        }
    }

    /// Whether an agent last seen at `last_seen` is connected now: seen within 3× the poll timeout.
    #[must_use]
    pub fn is_connected(&self, last_seen: Option<Timestamp>) -> bool {
        let Some(seen) = last_seen else {
            return false;
        };
        let window = chrono::Duration::from_std(self.poll_timeout.saturating_mul(3))
            .unwrap_or(chrono::Duration::MAX);
        // A clock a little ahead on the writer still counts as seen now.
        seen >= self.now - window
    }
}

/// The deployment that put the environment's current release live: its newest deployment in state
/// `live` whose `finished_at` is set (a newer live one supersedes older ones; rolled-back ones
/// never count). `None` when nothing was ever live there.
pub async fn current_release(
    store: &dyn Store,
    environment: &str,
) -> Result<Option<Deployment>, ViewsError> {
    let mut live = store
        .search_deployments(&DeploymentSearch {
            environment: Some(environment.to_owned()),
            live_only: true,
            limit: Some(1),
            ..DeploymentSearch::default()
        })
        .await?;
    Ok(live.pop())
}

/// Whether `deployment` can be its environment's current release: `live` with `finished_at` set.
pub(crate) fn is_current(deployment: &Deployment) -> bool {
    deployment.state == "live" && deployment.finished_at.is_some()
}

/// The environment the configuration calls production: the one named `production`, else the last
/// environment of the `promote_from` chain (the one that others are promoted into but that no
/// environment promotes from; the longest chain wins, then the name). `None` when there is
/// neither (an environment that is promoted from nowhere is not taken for production).
#[must_use]
pub fn production_environment(config: &cutover_config::Config) -> Option<String> {
    let envs = &config.environments;
    if envs.contains_key("production") {
        return Some("production".to_owned());
    }
    let depth = |name: &str| {
        let mut depth = 0usize;
        let mut at = name;
        // Bounded by the number of environments, so that a cycle cannot loop forever.
        while let Some(from) = envs.get(at).and_then(|e| e.promote_from.as_deref()) {
            depth += 1;
            at = from;
            if depth > envs.len() {
                break;
            }
        }
        depth
    };
    let is_source = |name: &str| {
        envs.values()
            .any(|e| e.promote_from.as_deref() == Some(name))
    };
    envs.iter()
        .filter(|(name, e)| e.promote_from.is_some() && !is_source(name))
        .map(|(name, _)| name)
        // BTreeMap keys come sorted, and `max_by_key` keeps the last of equals: prefer the first.
        .rev()
        .max_by_key(|name| depth(name))
        .cloned()
}

/// The names of an environment's hosts, in configuration order.
#[must_use]
pub fn host_names(env: &cutover_config::Environment) -> Vec<String> {
    env.hosts.iter().map(|h| h.name().to_string()).collect()
}

/// The name of the project's service on the agents: `[service] name`, else the project name.
#[must_use]
pub fn service_name(config: &cutover_config::Config) -> String {
    config
        .service
        .as_ref()
        .and_then(|s| s.name.clone())
        .unwrap_or_else(|| config.project.name.clone())
}
