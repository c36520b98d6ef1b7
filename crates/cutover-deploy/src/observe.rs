//! Reading what the agents reported: a host's observed service, and waiting until the hosts show a
//! condition (woken by each stored report, re-reading the store every 200 ms as a fallback).

use std::collections::BTreeMap;
use std::time::Duration;

use cutover_agent::Slot;
use cutover_agent::health::{Evidence, Health};
use cutover_agent::protocol::ObservedService;
use cutover_agent::router::SlotCounters;
use cutover_agent::runtime::ProcessState;
use cutover_core::deploy::{Window, buckets_delta, counter_delta};
use cutover_store::{Observation, Store, StoreError, Timestamp};
use tokio::sync::watch;

/// How often the store is re-read when no report wakes the waiter (reports stored by another
/// process do not ring this process's bell).
pub const RECHECK: Duration = Duration::from_millis(200);

/// One host's latest report about the service.
#[derive(Debug, Clone)]
pub struct HostView {
    pub generation: i64,
    pub at: Timestamp,
    /// `None` when the host does not run the service (yet).
    pub service: Option<ObservedService>,
}

impl HostView {
    /// From a stored observation (`observed = {at, services: {name: ObservedService}}`).
    #[must_use]
    pub fn of(o: &Observation, service: &str) -> HostView {
        let service = o
            .observed
            .get("services")
            .and_then(|s| s.get(service))
            .and_then(|v| serde_json::from_value::<ObservedService>(v.clone()).ok());
        HostView {
            generation: o.generation,
            at: o.at,
            service,
        }
    }
}

/// A host's evidence for the service in one observation, per slot.
#[must_use]
pub fn evidence_of(o: &Observation, service: &str) -> BTreeMap<Slot, Vec<Evidence>> {
    o.evidence
        .get(service)
        .and_then(|v| v.as_object())
        .map(|slots| {
            slots
                .iter()
                .filter_map(|(k, v)| {
                    Some((
                        Slot::parse(k)?,
                        serde_json::from_value::<Vec<Evidence>>(v.clone()).ok()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What a condition says about one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Ready,
    Pending(String),
    Failed(String),
}

/// The slot runs `version`, its process is up and it is healthy (version probe included).
#[must_use]
pub fn slot_healthy(view: &HostView, slot: Slot, version: &str) -> Check {
    let Some(svc) = &view.service else {
        return Check::Pending("the service is not running yet".into());
    };
    let failing_error = svc
        .errors
        .iter()
        .find(|e| e.contains(&format!("release {version}")) || e.contains("fetching the artifact"));
    if let Some(e) = failing_error {
        return Check::Failed(e.clone());
    }
    let Some(s) = svc.slots.get(&slot) else {
        return Check::Pending(format!("slot {slot} is not started yet"));
    };
    if s.version != version {
        return Check::Pending(format!("slot {slot} still runs {}", s.version));
    }
    match &s.process {
        ProcessState::Failed { reason } => {
            return Check::Failed(format!("slot {slot} ({version}) failed: {reason}"));
        }
        ProcessState::Running { .. } => {}
        other => return Check::Pending(format!("slot {slot} process: {other:?}")),
    }
    match &s.health {
        Health::Healthy => Check::Ready,
        Health::WrongVersion { reported } => Check::Failed(format!(
            "slot {slot} reports version {reported:?}, expected {version:?}"
        )),
        Health::Unhealthy => Check::Pending(format!("slot {slot} ({version}) is unhealthy")),
        Health::Starting => Check::Pending(format!("slot {slot} ({version}) is starting")),
    }
}

/// The slot holds `version` (started or starting): the agent took the assignment.
#[must_use]
pub fn slot_present(view: &HostView, slot: Slot, version: &str) -> Check {
    match slot_healthy(view, slot, version) {
        Check::Pending(reason) => {
            let present = view
                .service
                .as_ref()
                .and_then(|s| s.slots.get(&slot))
                .is_some_and(|s| s.version == version);
            if present {
                Check::Ready
            } else {
                Check::Pending(reason)
            }
        }
        other => other,
    }
}

/// The router applies the wanted routing.
#[must_use]
pub fn routed(
    view: &HostView,
    active: Option<Slot>,
    canary: Option<cutover_agent::router::Canary>,
) -> Check {
    let Some(svc) = &view.service else {
        return Check::Pending("the service is not running".into());
    };
    if svc.active == active && svc.canary == canary {
        Check::Ready
    } else {
        Check::Pending(format!(
            "the router sends traffic to {:?} (canary {:?}), waiting for {:?} (canary {:?})",
            svc.active, svc.canary, active, canary
        ))
    }
}

/// Why waiting ended without every host ready.
#[derive(Debug)]
pub enum WaitError {
    /// A host's condition failed.
    Failed {
        host: String,
        reason: String,
    },
    /// These hosts did not get there in time (with the last reason of each).
    Timeout {
        hosts: Vec<(String, String)>,
    },
    Store(StoreError),
}

/// Waits until every host in `hosts` reported a generation at or above its minimum and the
/// condition holds; stops at the first failure. Returns the views that satisfied it.
pub async fn wait_hosts(
    store: &dyn Store,
    reports: &mut watch::Receiver<u64>,
    service: &str,
    hosts: &[(String, i64)],
    timeout: Duration,
    cond: &(dyn Fn(&str, &HostView) -> Check + Sync),
) -> Result<BTreeMap<String, HostView>, WaitError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut done: BTreeMap<String, HostView> = BTreeMap::new();
    loop {
        // Marked seen before reading, so a report in between wakes the next wait.
        reports.borrow_and_update();
        let mut pending = Vec::new();
        for (host, min_gen) in hosts {
            if done.contains_key(host) {
                continue;
            }
            let latest = store
                .latest_observation(host)
                .await
                .map_err(WaitError::Store)?;
            let reason = match latest {
                Some(o) if o.generation >= *min_gen => {
                    let view = HostView::of(&o, service);
                    match cond(host, &view) {
                        Check::Ready => {
                            done.insert(host.clone(), view);
                            continue;
                        }
                        Check::Failed(reason) => {
                            return Err(WaitError::Failed {
                                host: host.clone(),
                                reason,
                            });
                        }
                        Check::Pending(reason) => reason,
                    }
                }
                Some(o) => format!(
                    "the agent has not applied generation {min_gen} yet (last report: generation {})",
                    o.generation
                ),
                None => "the agent has not reported yet".to_owned(),
            };
            pending.push((host.clone(), reason));
        }
        if pending.is_empty() {
            return Ok(done);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(WaitError::Timeout { hosts: pending });
        }
        let wait = RECHECK.min(deadline - now);
        let _ = tokio::time::timeout(wait, reports.changed()).await;
    }
}

/// The counters of `slot` in a host's view (zero when absent).
#[must_use]
pub fn counters(view: &HostView, slot: Slot) -> SlotCounters {
    view.service
        .as_ref()
        .and_then(|s| s.counters.get(&slot).cloned())
        .unwrap_or_default()
}

/// What the router counted for a slot between two snapshots.
#[must_use]
pub fn window(before: &SlotCounters, after: &SlotCounters) -> Window {
    let buckets = buckets_delta(&before.latency_us_buckets, &after.latency_us_buckets);
    let delta = SlotCounters {
        latency_us_buckets: buckets,
        ..SlotCounters::default()
    };
    Window {
        requests: counter_delta(before.requests, after.requests),
        errors_5xx: counter_delta(before.errors_5xx(), after.errors_5xx()),
        p99_us: delta.latency_quantile_us(0.99),
    }
}

/// The version the app reported through the version probe, from evidence details such as
/// `version "1.2.0"`.
#[must_use]
pub fn reported_version(evidence: &[Evidence]) -> Option<String> {
    evidence
        .iter()
        .rev()
        .filter(|e| e.check == cutover_agent::health::CheckKind::Version)
        .find_map(|e| {
            let rest = e.detail.strip_prefix("version ")?;
            let start = rest.find('"')? + 1;
            let end = start + rest[start..].find('"')?;
            Some(rest[start..end].to_owned())
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::Utc;
    use cutover_agent::health::CheckKind;
    use proptest::prelude::*;

    fn ev(check: CheckKind, detail: &str) -> Evidence {
        Evidence {
            seq: 1,
            at: Utc::now(),
            check,
            ok: true,
            detail: detail.into(),
            latency_us: 10,
        }
    }

    #[test]
    fn reported_version_comes_from_the_version_probe() {
        let e = [
            ev(CheckKind::Version, "version \"1.0.0\""),
            ev(CheckKind::Http, "200"),
            ev(CheckKind::Version, "version \"1.1.0\", expected \"1.2.0\""),
        ];
        assert_eq!(reported_version(&e).as_deref(), Some("1.1.0"));
        assert_eq!(reported_version(&e[1..2]), None);
    }

    #[test]
    fn windows_are_deltas() {
        let mut a = SlotCounters {
            requests: 10,
            ..SlotCounters::default()
        };
        a.status_classes[4] = 1;
        a.latency_us_buckets = vec![10, 0, 0];
        let mut b = a.clone();
        b.requests = 30;
        b.status_classes[4] = 5;
        b.latency_us_buckets = vec![10, 20, 0];
        let w = window(&a, &b);
        assert_eq!((w.requests, w.errors_5xx), (20, 4));
        assert_eq!(w.p99_us, Some(500));
    }

    proptest! {
        #[test]
        fn a_host_view_never_panics_on_any_json(s in ".{0,200}", generation in any::<i64>()) {
            let o = Observation {
                id: 1,
                host: "h".into(),
                generation,
                observed: serde_json::json!({ "services": { "web": s.as_str() } }),
                evidence: serde_json::json!({ "web": { "blue": s } }),
                at: Utc::now(),
            };
            let v = HostView::of(&o, "web");
            prop_assert!(v.service.is_none());
            prop_assert!(evidence_of(&o, "web").is_empty());
            prop_assert!(matches!(slot_healthy(&v, Slot::Blue, "1"), Check::Pending(_)));
        }
    }
}
