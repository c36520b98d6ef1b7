//! `cutover audit --env ENV --at TIME`: which release served on each host of an environment at an
//! instant, from the `deployment.switch` audit events (each lists the hosts whose traffic split
//! changed, with what they serve from then on), with the `proof.record` events that proved those
//! releases on those hosts by then. The store's switch index points at the newest switch of each
//! host, so only those are read; [`served_at_replay`] replays them all and is the reference.

use std::collections::BTreeMap;

use cutover_store::{
    AuditEvent, AuditFilter, DeploymentSearch, Store, SwitchPayload, SwitchServing, Timestamp,
};
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
///
/// Reads the store's switch index: per host only the newest switch naming it, so the cost does
/// not grow with the history. The answer is the one [`served_at_replay`] computes.
pub async fn served_at(
    store: &dyn Store,
    environment: &str,
    config_hosts: &[String],
    at: Timestamp,
) -> Result<ServedAt, ViewsError> {
    let until = until(at);
    let switches = store.switches_before(environment, until).await?;
    let mut warnings: Vec<String> = switches
        .unreadable
        .iter()
        .filter_map(|e| {
            SwitchPayload::deserialize(&e.payload)
                .err()
                .map(|err| unreadable(e, &err))
        })
        .collect();
    let latest: BTreeMap<&str, i64> = switches
        .latest
        .iter()
        .map(|(host, seq)| (host.as_str(), *seq))
        .collect();
    let mut state = State::new();
    // Each event read once (a switch usually names every host); in it, as in the replay, a later
    // entry for a host overwrites an earlier one.
    for event in &switches.events {
        match SwitchPayload::deserialize(&event.payload) {
            Ok(p) => {
                for h in p.hosts {
                    if latest.get(h.host.as_str()) == Some(&event.seq) {
                        state.insert(h.host, (p.deployment, event.at, h.serving));
                    }
                }
            }
            Err(err) => warnings.push(unreadable(event, &err)),
        }
    }
    answer(
        store,
        environment,
        config_hosts,
        at,
        state,
        switches.deployed,
        warnings,
    )
    .await
}

/// [`served_at`] computed the slow way, by replaying every `deployment.switch` event of the
/// environment up to `at`: the definition the index-based answer is tested against.
pub async fn served_at_replay(
    store: &dyn Store,
    environment: &str,
    config_hosts: &[String],
    at: Timestamp,
) -> Result<ServedAt, ViewsError> {
    let until = until(at);
    let switches = store
        .list_audit(&AuditFilter {
            until: Some(until),
            action: Some(cutover_store::SWITCH_ACTION.to_owned()),
            subject: Some(format!("env:{environment}")),
            ..AuditFilter::default()
        })
        .await?;
    let mut state = State::new();
    let mut deployed = false;
    let mut warnings = Vec::new();
    for event in switches {
        let payload = match SwitchPayload::deserialize(&event.payload) {
            Ok(p) => p,
            Err(e) => {
                warnings.push(unreadable(&event, &e));
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
    answer(
        store,
        environment,
        config_hosts,
        at,
        state,
        deployed,
        warnings,
    )
    .await
}

/// Per host: the deployment whose switch set what it serves, when, and what.
type State = BTreeMap<String, (Option<i64>, Timestamp, Vec<SwitchServing>)>;

/// The exclusive end of the events that count at `at` (the store keeps microseconds).
fn until(at: Timestamp) -> Timestamp {
    at + chrono::Duration::microseconds(1)
}

fn unreadable(event: &AuditEvent, e: &serde_json::Error) -> String {
    format!(
        "audit event {} (deployment.switch) cannot be read ({e}); it is left out",
        event.seq
    )
}

/// The document for the switch state at `at`: hosts in order, with the releases' commits and
/// artifacts and the proofs recorded by then.
async fn answer(
    store: &dyn Store,
    environment: &str,
    config_hosts: &[String],
    at: Timestamp,
    mut state: State,
    deployed: bool,
    warnings: Vec<String>,
) -> Result<ServedAt, ViewsError> {
    let until = until(at);
    let wanted: std::collections::BTreeSet<(String, String)> = state
        .iter()
        .flat_map(|(host, (_, _, serving))| {
            serving.iter().map(|s| (host.clone(), s.version.clone()))
        })
        .collect();
    let proofs = proofs_until(store, environment, &wanted, until).await?;
    // Only the releases served (the version is the key), not every release with its BOM.
    let mut releases = BTreeMap::new();
    for (_, version) in &wanted {
        if !releases.contains_key(version) {
            releases.insert(version.clone(), store.get_release(version).await?);
        }
    }
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
                    let release = releases.get(&s.version).and_then(Option::as_ref);
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
    // The environment's deployments of the wanted versions created by then, newest first, a page
    // at a time: the newest usually proves everything.
    let mut search = DeploymentSearch {
        environment: Some(environment.to_owned()),
        versions: versions.iter().map(|v| (*v).to_owned()).collect(),
        created_before: Some(until),
        limit: Some(PROOF_PAGE),
        ..DeploymentSearch::default()
    };
    'pages: loop {
        let page = store.search_deployments(&search).await?;
        let Some(last) = page.last() else {
            break;
        };
        search.before_id = Some(last.id);
        let full = i64::try_from(page.len()).unwrap_or(i64::MAX) >= PROOF_PAGE;
        for deployment in &page {
            if out.len() == wanted.len() {
                break 'pages;
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
        if !full {
            break;
        }
    }
    Ok(out)
}

/// Deployments read per query while looking for proofs.
const PROOF_PAGE: i64 = 16;
