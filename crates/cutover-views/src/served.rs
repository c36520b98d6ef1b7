//! `cutover audit --env ENV --at TIME`: which release served on each host of an environment at an
//! instant, replayed from the `deployment.switch` audit events (each lists the hosts whose traffic
//! split changed, with what they serve from then on), with the `proof.record` events that proved
//! those releases on those hosts by then.

use std::collections::BTreeMap;

use cutover_store::{AuditFilter, DeploymentFilter, Store, Timestamp};
use serde::{Deserialize, Serialize};

use crate::ViewsError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServedAt {
    pub environment: String,
    pub at: Timestamp,
    /// Whether any traffic switch of the environment happened at or before `at`; when not,
    /// nothing was served by a cutover deployment yet.
    pub deployed: bool,
    pub hosts: Vec<ServedHost>,
    /// Events that could not be read (shown on stderr; not part of the document).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServedHost {
    pub host: String,
    /// The deployment whose switch set what this host served, and when.
    pub deployment: Option<i64>,
    pub since: Option<Timestamp>,
    /// Empty when the host served nothing.
    pub serving: Vec<Served>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Served {
    pub version: String,
    pub commit: Option<String>,
    pub artifact_sha256: Option<String>,
    pub slot: Option<String>,
    /// Percent of the host's traffic.
    pub weight: Option<u32>,
    /// The newest proof of delivery of this version on this host recorded by then.
    pub proof: Option<ProofRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProofRef {
    pub deployment: i64,
    pub keyid: Option<String>,
    pub at: Timestamp,
}

/// The `deployment.switch` payload, read leniently (only what is needed).
#[derive(Debug, Deserialize)]
struct SwitchPayload {
    environment: String,
    #[serde(default)]
    deployment: Option<i64>,
    #[serde(default)]
    hosts: Vec<SwitchHost>,
}

#[derive(Debug, Deserialize)]
struct SwitchHost {
    host: String,
    #[serde(default)]
    serving: Vec<SwitchServing>,
}

#[derive(Debug, Deserialize)]
struct SwitchServing {
    version: String,
    #[serde(default)]
    commit: Option<String>,
    #[serde(default)]
    artifact_sha256: Option<String>,
    #[serde(default)]
    slot: Option<String>,
    /// Percent; an integer as the spec says, but a float is read too (rounded).
    #[serde(default)]
    weight: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct ProofPayload {
    environment: String,
    host: String,
    version: String,
    #[serde(default)]
    keyid: Option<String>,
}

/// What served on each host of `environment` at `at` (events at exactly `at` count). Hosts are
/// `config_hosts` in that order, then any other host a switch named, by name.
pub async fn served_at(
    store: &dyn Store,
    environment: &str,
    config_hosts: &[String],
    at: Timestamp,
) -> Result<ServedAt, ViewsError> {
    // `until` is exclusive and the store keeps microseconds.
    let until = at + chrono::Duration::microseconds(1);
    let switches = store
        .list_audit(&AuditFilter {
            until: Some(until),
            action: Some("deployment.switch".to_owned()),
            subject: Some(format!("env:{environment}")),
            ..AuditFilter::default()
        })
        .await?;
    let mut state: BTreeMap<String, (Option<i64>, Timestamp, Vec<SwitchServing>)> = BTreeMap::new();
    let mut deployed = false;
    let mut warnings = Vec::new();
    for event in switches {
        let payload = match SwitchPayload::deserialize(&event.payload) {
            Ok(p) => p,
            Err(e) => {
                warnings.push(format!(
                    "audit event {} (deployment.switch) cannot be read ({e}); it is left out",
                    event.seq
                ));
                continue;
            }
        };
        if payload.environment != environment {
            continue;
        }
        deployed = true;
        for h in payload.hosts {
            state.insert(h.host, (payload.deployment, event.at, h.serving));
        }
    }
    let wanted: std::collections::BTreeSet<(String, String)> = state
        .iter()
        .flat_map(|(host, (_, _, serving))| {
            serving.iter().map(|s| (host.clone(), s.version.clone()))
        })
        .collect();
    let proofs = proofs_until(store, environment, &wanted, until).await?;
    let releases = store.list_releases().await?;
    let mut names: Vec<String> = config_hosts.to_vec();
    names.extend(state.keys().filter(|h| !config_hosts.contains(h)).cloned());
    let hosts = names
        .into_iter()
        .map(|host| {
            let Some((deployment, since, serving)) = state.remove(&host) else {
                return ServedHost {
                    host,
                    deployment: None,
                    since: None,
                    serving: Vec::new(),
                };
            };
            let serving = serving
                .into_iter()
                .map(|s| {
                    let release = releases.iter().find(|r| r.version == s.version);
                    let proof = proofs.get(&(host.clone(), s.version.clone())).cloned();
                    Served {
                        commit: s.commit.or_else(|| release.map(|r| r.commit.clone())),
                        artifact_sha256: s.artifact_sha256.or_else(|| {
                            release
                                .and_then(|r| r.artifact_digest.as_deref())
                                .map(|d| d.strip_prefix("sha256:").unwrap_or(d).to_owned())
                        }),
                        version: s.version,
                        slot: s.slot,
                        // Clamped to 0..=100 first, so the cast cannot truncate.
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        weight: s.weight.map(|w| w.clamp(0.0, 100.0).round() as u32),
                        proof,
                    }
                })
                .collect();
            ServedHost {
                host,
                deployment,
                since: Some(since),
                serving,
            }
        })
        .collect();
    Ok(ServedAt {
        environment: environment.to_owned(),
        at,
        deployed,
        hosts,
        warnings,
    })
}

/// The newest `proof.record` before `until` per wanted (host, version) of `environment`.
///
/// Reads only the proofs of the environment's deployments of the wanted versions, newest first
/// (one indexed query per deployment, stopping once every wanted pair is found), not every
/// proof ever recorded: with a long history that scan dominated "what ran at T".
async fn proofs_until(
    store: &dyn Store,
    environment: &str,
    wanted: &std::collections::BTreeSet<(String, String)>,
    until: Timestamp,
) -> Result<BTreeMap<(String, String), ProofRef>, ViewsError> {
    let mut out = BTreeMap::new();
    if wanted.is_empty() {
        return Ok(out);
    }
    let versions: std::collections::BTreeSet<&str> =
        wanted.iter().map(|(_, v)| v.as_str()).collect();
    let deployments = store
        .list_deployments(&DeploymentFilter {
            environment: Some(environment.to_owned()),
            ..DeploymentFilter::default()
        })
        .await?;
    // Newest first, so the first proof found for a pair is its newest.
    for deployment in deployments
        .iter()
        .filter(|d| versions.contains(d.release_version.as_str()) && d.created_at < until)
    {
        if out.len() == wanted.len() {
            break;
        }
        let events = store
            .list_audit(&AuditFilter {
                until: Some(until),
                action: Some("proof.record".to_owned()),
                subject: Some(format!("deployment:{}", deployment.id)),
                descending: true,
                ..AuditFilter::default()
            })
            .await?;
        for event in events {
            let Ok(p) = ProofPayload::deserialize(&event.payload) else {
                continue;
            };
            if p.environment != environment {
                continue;
            }
            let key = (p.host, p.version);
            if wanted.contains(&key) && !out.contains_key(&key) {
                out.insert(
                    key,
                    ProofRef {
                        deployment: deployment.id,
                        keyid: p.keyid,
                        at: event.at,
                    },
                );
            }
        }
    }
    Ok(out)
}
