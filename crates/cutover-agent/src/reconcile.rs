//! The reconciler: makes a host's slots and routers match an [`Assignment`] and reports what it sees.
//!
//! Applying an assignment never blocks on health: slots are started (after their artifact is
//! verified and unpacked), and routing is applied as far as health allows. [`Reconciler::route`]
//! retries the rest; the agent calls it whenever a health verdict changes. The last assignment is
//! kept under the root, and [`Reconciler::resume`] re-applies it after an agent restart, adopting
//! the slot processes the previous agent left running, so that a restart does not restart the
//! service.

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;

use chrono::Utc;

use crate::Slot;
use crate::artifact::unpack_verified;
use crate::health::{HealthMonitor, HealthSpec};
use crate::protocol::{
    Assignment, DesiredRelease, DesiredRouting, DesiredService, ObservedService, ObservedSlot,
    Report,
};
use crate::router::{Router, RouterConfig, RoutingState};
use crate::runtime::{Launch, Layout, ProcessSpec, SlotProcess, prune_releases};

struct SlotRun {
    release: DesiredRelease,
    port: u16,
    process: SlotProcess,
    health: HealthMonitor,
    follow: tokio::task::JoinHandle<()>,
    /// Evidence up to this number was reported already.
    reported_seq: u64,
}

struct Service {
    listen: SocketAddr,
    router: Router,
    slots: BTreeMap<Slot, SlotRun>,
    errors: Vec<String>,
}

/// Runs the services of one host.
pub struct Reconciler {
    name: String,
    layout: Layout,
    assignment: Option<Assignment>,
    services: BTreeMap<String, Service>,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("name", &self.name)
            .field("root", &self.layout.root)
            .field("services", &self.services.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Whether the slot already runs `want` (its warm deadline may change without a restart).
fn same_release(run: &SlotRun, want: &DesiredRelease, port: u16) -> bool {
    run.release.version == want.version
        && run.release.artifact_sha256 == want.artifact_sha256
        && run.port == port
}

/// Whether the desired routing sends traffic to `slot`.
fn routing_targets(routing: &DesiredRouting, slot: Slot) -> bool {
    routing.active == Some(slot)
        || routing.canary.is_some_and(|c| c.slot == slot)
        || routing.segments.iter().any(|s| s.slot == slot)
}

/// A warm slot whose deadline passed and that no routing targets: it is stopped, not run.
fn expired(want: &DesiredRelease, slot: Slot, routing: &DesiredRouting) -> bool {
    want.warm_until.is_some_and(|t| t <= Utc::now()) && !routing_targets(routing, slot)
}

impl Reconciler {
    /// An empty reconciler for the host `name` with its state under `layout.root`.
    #[must_use]
    pub fn new(name: impl Into<String>, layout: Layout) -> Self {
        Self {
            name: name.into(),
            layout,
            assignment: None,
            services: BTreeMap::new(),
        }
    }

    /// After an agent restart: re-applies the last assignment kept under the root (adopting the
    /// processes still running, and binding the listen addresses next to the previous agent's
    /// routers). Returns the errors of that application, as [`Reconciler::apply`] does.
    pub async fn resume(name: impl Into<String>, layout: Layout) -> (Self, Vec<String>) {
        let mut me = Self::new(name, layout);
        let path = me.layout.assignment();
        let errors = match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Assignment>(&bytes) {
                Ok(a) => me.apply(a).await,
                Err(e) => vec![format!(
                    "the kept assignment {} is corrupt ({e}); waiting for the control plane",
                    path.display()
                )],
            },
            Err(_) => Vec::new(),
        };
        (me, errors)
    }

    /// The generation of the assignment applied last (0 before any).
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.assignment.as_ref().map_or(0, |a| a.generation)
    }

    /// The router of a service, while it runs.
    #[must_use]
    pub fn router(&self, service: &str) -> Option<&Router> {
        self.services.get(service).map(|s| &s.router)
    }

    fn keep_assignment(&self, a: &Assignment) -> Result<(), String> {
        let path = self.layout.assignment();
        let write = || -> std::io::Result<()> {
            fs::create_dir_all(&self.layout.root)?;
            let tmp = path.with_extension("json.tmp");
            fs::write(
                &tmp,
                serde_json::to_vec_pretty(a).map_err(std::io::Error::other)?,
            )?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|e| format!("cannot keep the assignment in {}: {e}", path.display()))
    }

    /// Makes the host match `assignment`. Returns every problem met (also kept for the report);
    /// what could be done is done regardless.
    pub async fn apply(&mut self, assignment: Assignment) -> Vec<String> {
        let mut host_errors = Vec::new();
        let gone: Vec<String> = self
            .services
            .keys()
            .filter(|k| !assignment.services.contains_key(*k))
            .cloned()
            .collect();
        for name in gone {
            if let Some(svc) = self.services.remove(&name) {
                svc.router.shutdown().await;
                for (_, run) in svc.slots {
                    run.follow.abort();
                    run.process.stop().await;
                }
            }
        }
        for (name, desired) in &assignment.services {
            let errors = self.apply_service(name, desired).await;
            host_errors.extend(errors.iter().map(|e| format!("{name}: {e}")));
        }
        self.assignment = Some(assignment);
        self.route();
        // Kept after routing, so that a switch does not wait for the disk; a crash in between
        // resumes the previous assignment, which the control plane's next poll corrects.
        if let Some(a) = &self.assignment
            && let Err(e) = self.keep_assignment(a)
        {
            host_errors.push(e);
        }
        for (name, svc) in &self.services {
            host_errors.extend(svc.errors.iter().map(|e| format!("{name}: {e}")));
        }
        host_errors.sort();
        host_errors.dedup();
        host_errors
    }

    async fn apply_service(&mut self, name: &str, desired: &DesiredService) -> Vec<String> {
        let mut errors = Vec::new();
        let needs_router = self
            .services
            .get(name)
            .is_none_or(|s| s.listen != desired.listen);
        if needs_router {
            let mut cfg = RouterConfig::new(desired.listen, self.layout.router_state(name));
            cfg.drain_timeout = desired.drain_timeout;
            match Router::start(cfg).await {
                Ok(router) => {
                    let old = self.services.insert(
                        name.to_owned(),
                        Service {
                            listen: desired.listen,
                            router,
                            slots: BTreeMap::new(),
                            errors: Vec::new(),
                        },
                    );
                    if let Some(old) = old {
                        old.router.shutdown().await;
                        // Same slots, new address: carry them over.
                        if let Some(svc) = self.services.get_mut(name) {
                            svc.slots = old.slots;
                        }
                    }
                }
                Err(e) => {
                    errors.push(e.to_string());
                    return errors;
                }
            }
        }
        let layout = self.layout.clone();
        let Some(svc) = self.services.get_mut(name) else {
            return errors;
        };
        let mut process = desired.process.clone();
        process.service = name.to_owned();
        for slot in Slot::ALL {
            let want = desired
                .slots
                .get(&slot)
                .filter(|w| !expired(w, slot, &desired.routing));
            let port = desired.ports.get(&slot).copied();
            let keep = match (svc.slots.get(&slot), want, port) {
                (Some(run), Some(want), Some(port)) => same_release(run, want, port),
                _ => false,
            };
            if keep {
                if let (Some(run), Some(want)) = (svc.slots.get_mut(&slot), want) {
                    run.release.warm_until = want.warm_until;
                }
                continue;
            }
            if svc.slots.contains_key(&slot) {
                if svc.router.state().targets(slot) {
                    errors.push(format!(
                        "slot {slot} still receives traffic; route away from it before replacing its release"
                    ));
                    continue;
                }
                if let Some(run) = svc.slots.remove(&slot) {
                    run.follow.abort();
                    run.process.stop().await;
                }
                let _ = svc.router.remove_upstream(slot);
            }
            let Some(want) = want else { continue };
            let Some(port) = port else {
                errors.push(format!(
                    "slot {slot} has a release but no port; expected ports.{slot}"
                ));
                continue;
            };
            match start_slot(&layout, &process, &desired.health, slot, want, port).await {
                Ok((process, health)) => {
                    if let Err(e) = svc.router.set_upstream(slot, port, &want.version) {
                        errors.push(e.to_string());
                    }
                    let follow = svc.router.follow_health(slot, health.watch());
                    svc.slots.insert(
                        slot,
                        SlotRun {
                            release: want.clone(),
                            port,
                            process,
                            health,
                            follow,
                            reported_seq: 0,
                        },
                    );
                }
                Err(e) => errors.push(e),
            }
        }
        let in_use: Vec<&str> = svc
            .slots
            .values()
            .map(|r| r.release.version.as_str())
            .collect();
        if desired.keep_releases > 0 {
            // A service without a releases directory yet has nothing to prune.
            let _ = prune_releases(&layout, name, desired.keep_releases, &in_use);
        }
        svc.errors.clone_from(&errors);
        errors
    }

    /// Stops the warm slots whose deadline passed and that no routing targets (desired or
    /// actual). Returns whether it stopped any.
    pub async fn expire_warm(&mut self) -> bool {
        let Some(assignment) = &self.assignment else {
            return false;
        };
        let mut stopped = false;
        for (name, desired) in &assignment.services {
            let Some(svc) = self.services.get_mut(name) else {
                continue;
            };
            let due: Vec<Slot> = svc
                .slots
                .iter()
                .filter(|(slot, run)| {
                    expired(&run.release, **slot, &desired.routing)
                        && !svc.router.state().targets(**slot)
                })
                .map(|(slot, _)| *slot)
                .collect();
            for slot in due {
                if let Some(run) = svc.slots.remove(&slot) {
                    run.follow.abort();
                    run.process.stop().await;
                }
                let _ = svc.router.remove_upstream(slot);
                stopped = true;
            }
        }
        stopped
    }

    /// Applies as much of the desired routing as health allows; call again when health changes.
    /// Returns whether every service routes as desired.
    pub fn route(&mut self) -> bool {
        let Some(assignment) = &self.assignment else {
            return true;
        };
        let mut done = true;
        for (name, desired) in &assignment.services {
            let Some(svc) = self.services.get(name) else {
                done = false;
                continue;
            };
            let want = &desired.routing;
            let r = &svc.router;
            let now: RoutingState = r.state();
            if now.paused != want.paused {
                let _ = if want.paused { r.pause() } else { r.resume() };
            }
            if let Some(active) = want.active
                && now.active != Some(active)
                && r.switch_to(active).is_err()
            {
                done = false;
                continue;
            }
            let now = r.state();
            if now.canary != want.canary {
                let applied = match want.canary {
                    Some(c) => r.set_canary(c.slot, c.weight_percent),
                    None => r.set_canary(Slot::Blue, 0),
                };
                done &= applied.is_ok();
            }
            if now.segments != want.segments {
                done &= r.set_segments(want.segments.clone()).is_ok();
            }
        }
        done
    }

    /// Requests every router has served so far (all services and slots).
    #[must_use]
    pub fn total_requests(&self) -> u64 {
        self.services
            .values()
            .flat_map(|svc| svc.router.counters().into_values())
            .map(|c| c.requests)
            .sum()
    }

    /// What a report would say apart from evidence and counters, as a comparable key: when it
    /// changes (a slot became healthy, the router switched, a process restarted) the daemon
    /// reports at once instead of at its next interval.
    #[must_use]
    pub fn observed_key(&self) -> String {
        use std::fmt::Write as _;
        let mut key = self.generation().to_string();
        for (name, svc) in &self.services {
            let state = svc.router.state();
            let _ = write!(
                key,
                "|{name}:{:?}:{:?}:{}:{:?}",
                state.active, state.canary, state.paused, svc.errors
            );
            for (slot, run) in &svc.slots {
                let _ = write!(
                    key,
                    "|{slot}:{}:{}:{:?}:{:?}",
                    run.release.version,
                    run.port,
                    run.process.status().state,
                    run.health.status().health
                );
            }
        }
        key
    }

    /// The observed state of every service, with the evidence gathered since the previous report.
    pub fn report(&mut self) -> Report {
        let generation = self.generation();
        let services = self
            .services
            .iter_mut()
            .map(|(name, svc)| {
                let state = svc.router.state();
                let slots = svc
                    .slots
                    .iter_mut()
                    .map(|(slot, run)| {
                        let process = run.process.status();
                        let health = run.health.status();
                        let evidence: Vec<_> = health
                            .evidence
                            .iter()
                            .filter(|e| e.seq > run.reported_seq)
                            .cloned()
                            .collect();
                        if let Some(last) = evidence.last() {
                            run.reported_seq = last.seq;
                        }
                        (
                            *slot,
                            ObservedSlot {
                                version: run.release.version.clone(),
                                port: run.port,
                                process: process.state,
                                restarts: process.restarts,
                                health: health.health,
                                evidence,
                            },
                        )
                    })
                    .collect();
                (
                    name.clone(),
                    ObservedService {
                        slots,
                        active: state.active,
                        canary: state.canary,
                        paused: state.paused,
                        counters: svc.router.counters(),
                        errors: svc.errors.clone(),
                    },
                )
            })
            .collect();
        Report {
            name: self.name.clone(),
            generation,
            at: Utc::now(),
            services,
        }
    }

    /// For an agent restart: leaves the slot processes running for the next agent and closes the
    /// routers gracefully (the next agent has bound their addresses already, with `SO_REUSEPORT`).
    pub async fn detach(self) {
        for (_, svc) in self.services {
            for (_, run) in svc.slots {
                run.follow.abort();
                run.process.detach().await;
            }
            svc.router.shutdown().await;
        }
    }

    /// Stops everything: routers and slot processes (graceful stop).
    pub async fn stop_all(self) {
        for (_, svc) in self.services {
            svc.router.shutdown().await;
            for (_, run) in svc.slots {
                run.follow.abort();
                run.process.stop().await;
            }
        }
    }
}

async fn start_slot(
    layout: &Layout,
    process: &ProcessSpec,
    health: &HealthSpec,
    slot: Slot,
    want: &DesiredRelease,
    port: u16,
) -> Result<(SlotProcess, HealthMonitor), String> {
    let service = process.service.as_str();
    let release_dir = layout.release_dir(service, &want.version);
    if release_dir.exists() {
        // Unpacked before: it must be from the same artifact.
        let marker = fs::read_to_string(release_dir.join(crate::artifact::DIGEST_MARKER))
            .unwrap_or_default();
        if !marker.trim().eq_ignore_ascii_case(&want.artifact_sha256) {
            return Err(format!(
                "slot {slot}, release {}: {} holds another artifact (sha256 {:?}, expected {}); hint: remove it to unpack again",
                want.version,
                release_dir.display(),
                marker.trim(),
                want.artifact_sha256
            ));
        }
    } else {
        let artifact = layout.artifact(&want.artifact_sha256);
        unpack_verified(&artifact, &want.artifact_sha256, &release_dir)
            .map_err(|e| format!("slot {slot}, release {}: {e}", want.version))?;
    }
    let launch = Launch {
        slot,
        version: want.version.clone(),
        release_dir,
        port,
    };
    let proc = match SlotProcess::adopt(layout, process, &launch).await {
        Some(p) => p,
        None => SlotProcess::start(layout, process, &launch)
            .map_err(|e| format!("slot {slot}, release {}: {e}", want.version))?,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let monitor = HealthMonitor::spawn(health.clone(), addr, want.version.clone());
    Ok((proc, monitor))
}
