//! Recording a deployment: its resolved target, per-host plan, and the store writes that move it
//! (transitions, switches, proofs), each one transaction with its audit event.

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;
use cutover_agent::Slot;
use cutover_agent::protocol::{Assignment, DesiredRelease, DesiredService};
use cutover_config::{Environment, Service, Strategy};
use cutover_core::deploy::State;
use cutover_store::{Audit, Change, Deployment, NewDeploymentStep, Release, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::desired::{Addresses, HostSpec, addresses, desired_service, env_hosts};
use crate::lock::EnvLock;
use crate::{DeployError, Engine, Progress};

/// An environment's configuration, resolved and checked for deploying.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub environment: String,
    pub env: Environment,
    pub service: Service,
    pub service_name: String,
    pub hosts: Vec<(HostSpec, Addresses)>,
}

impl Target {
    pub fn resolve(engine: &Engine, environment: &str) -> Result<Target, DeployError> {
        let cfg = &engine.config;
        let env = cfg
            .environment(environment)
            .ok_or_else(|| DeployError::UnknownEnvironment {
                name: environment.to_owned(),
                known: if cfg.environments.is_empty() {
                    "none".to_owned()
                } else {
                    cfg.environments
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            })?;
        let service = cfg.service.clone().ok_or(DeployError::NoService)?;
        let service_name = cfg.service_key(environment).ok_or(DeployError::NoService)?;
        let specs = env_hosts(env);
        if specs.is_empty() {
            return Err(DeployError::NoHosts(environment.to_owned()));
        }
        let hosts = specs
            .into_iter()
            .map(|h| addresses(environment, env, &service, &h).map(|a| (h, a)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Target {
            environment: environment.to_owned(),
            env: env.clone(),
            service,
            service_name,
            hosts,
        })
    }

    pub fn names(&self) -> Vec<String> {
        self.hosts.iter().map(|(h, _)| h.name.clone()).collect()
    }

    pub fn addresses(&self, host: &str) -> Option<&Addresses> {
        self.hosts
            .iter()
            .find(|(h, _)| h.name == host)
            .map(|(_, a)| a)
    }
}

/// What a deployment does on one host; recorded in the `prepare` step's intent so that a resumed
/// or rolled back deployment knows where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HostPlan {
    pub host: String,
    /// The slot the new release goes to.
    pub new_slot: Slot,
    /// The slot that served before, and its release (what a rollback returns to).
    pub old_slot: Option<Slot>,
    pub old: Option<DesiredRelease>,
    /// The generation of the assignment that prepared the new slot.
    #[serde(default)]
    pub prepared_generation: Option<i64>,
}

impl HostPlan {
    /// Where the new release goes given the host's current desired service.
    pub fn new(host: &str, current: Option<&DesiredService>, new: &DesiredRelease) -> HostPlan {
        let mut plan = HostPlan {
            host: host.to_owned(),
            new_slot: Slot::Blue,
            old_slot: None,
            old: None,
            prepared_generation: None,
        };
        let Some(svc) = current else {
            return plan;
        };
        let active = svc.routing.active.filter(|s| svc.slots.contains_key(s));
        plan.old_slot = active;
        plan.old = active.and_then(|a| svc.slots.get(&a).cloned());
        if let Some((slot, _)) = svc.slots.iter().find(|(_, r)| *r == new) {
            plan.new_slot = *slot;
            if active == Some(*slot) {
                // Already serving: nothing to go back to from here.
                plan.old_slot = None;
                plan.old = None;
            }
            return plan;
        }
        plan.new_slot = match (active, svc.slots.keys().next()) {
            (Some(a), _) => a.other(),
            (None, Some(s)) if svc.slots.len() == 1 => s.other(),
            _ => Slot::Blue,
        };
        plan
    }
}

/// A change to one host's desired service.
pub(crate) type Edit<'a> = &'a (dyn Fn(&HostPlan, &mut DesiredService) + Sync);

/// A deployment being driven.
pub(crate) struct Run<'a> {
    pub eng: &'a Engine,
    pub progress: &'a dyn Fn(Progress),
    pub dep: Deployment,
    pub state: State,
    pub target: Target,
    pub release: Release,
    pub digest: String,
    pub plans: Vec<HostPlan>,
    /// Steps whose result is not written yet.
    pub open_steps: Vec<(i64, String)>,
    pub reports: tokio::sync::watch::Receiver<u64>,
    pub lock: EnvLock,
    pub smoke: BTreeMap<String, Vec<Value>>,
    pub observation: BTreeMap<String, Value>,
    pub commits: HashMap<String, String>,
}

/// The strategy's name as stored.
pub(crate) fn strategy_name(s: &Strategy) -> &'static str {
    s.name()
}

impl Run<'_> {
    pub fn say(&self, message: impl Into<String>) {
        self.say_step(None, message);
    }

    /// As [`Run::say`], marking the start of a rollout step.
    pub fn say_step(&self, step: Option<crate::RolloutStep>, message: impl Into<String>) {
        (self.progress)(Progress {
            deployment: self.dep.id,
            state: self.state.as_str().to_owned(),
            message: message.into(),
            step,
        });
    }

    pub fn new_release(&self) -> DesiredRelease {
        crate::desired::desired_release(&self.release.version, &self.digest)
    }

    pub fn plan(&self, host: &str) -> Option<&HostPlan> {
        self.plans.iter().find(|p| p.host == host)
    }

    /// The host's current assignment in protocol form (generation 0 and nothing when none).
    pub async fn assignment(&self, host: &str) -> Result<(i64, Assignment), DeployError> {
        current_assignment(self.eng, host).await
    }

    /// The changes that put the edited desired service on `hosts` (generation + 1 each), with the
    /// generations written.
    async fn edits(
        &self,
        hosts: &[String],
        edit: Edit<'_>,
    ) -> Result<
        (
            Vec<Change>,
            Vec<(String, i64)>,
            BTreeMap<String, DesiredService>,
        ),
        DeployError,
    > {
        let mut changes = Vec::new();
        let mut gens = Vec::new();
        let mut services = BTreeMap::new();
        for host in hosts {
            let Some(plan) = self.plan(host) else {
                continue;
            };
            let (generation, mut a) = self.assignment(host).await?;
            let addr = self
                .target
                .addresses(host)
                .ok_or_else(|| DeployError::Config(format!("host {host} left the environment")))?;
            let base = desired_service(
                &self.target.service_name,
                &self.target.service,
                &self.target.env,
                addr,
            );
            let mut svc = match a.services.remove(&self.target.service_name) {
                Some(mut old) => {
                    // A slot that keeps running keeps its port (a port change reaches it when
                    // it is replaced).
                    let mut ports = base.ports.clone();
                    for (slot, _) in old.slots.iter().filter(|(s, _)| **s != plan.new_slot) {
                        if let Some(p) = old.ports.get(slot) {
                            ports.insert(*slot, *p);
                        }
                    }
                    old.listen = base.listen;
                    old.process = base.process;
                    old.health = base.health;
                    old.ports = ports;
                    old.drain_timeout = base.drain_timeout;
                    old.keep_releases = base.keep_releases;
                    old
                }
                None => base,
            };
            edit(plan, &mut svc);
            let next = generation + 1;
            a.generation = u64::try_from(next).unwrap_or(0);
            a.services
                .insert(self.target.service_name.clone(), svc.clone());
            services.insert(host.clone(), svc);
            changes.push(Change::PutAssignment(cutover_store::Assignment {
                host: host.clone(),
                generation: next,
                desired: serde_json::to_value(&a).expect("an Assignment always serializes"),
                created_at: Utc::now(),
            }));
            gens.push((host.clone(), next));
        }
        Ok((changes, gens, services))
    }

    /// Moves the deployment to `to` in one transaction: the state change, the results of the
    /// open steps, the intents of the new steps and the host assignments of `edit`.
    pub async fn transition(
        &mut self,
        to: State,
        reason: &str,
        steps: &[(&str, Value)],
        edit: Option<(&[String], Edit<'_>)>,
        finish: bool,
    ) -> Result<Vec<(String, i64)>, DeployError> {
        self.lock.check()?;
        let results: Vec<(i64, String)> = std::mem::take(&mut self.open_steps);
        let result_value = json!({ "ok": !matches!(to, State::Failed), "reason": reason });
        let mut attempt = 0;
        loop {
            let now = Utc::now();
            let mut changes = vec![Change::UpdateDeployment {
                id: self.dep.id,
                expected_state: Some(self.state.as_str().to_owned()),
                state: to.as_str().to_owned(),
                at: now,
                finished_at: finish.then_some(now),
            }];
            for (id, _) in &results {
                changes.push(Change::SetDeploymentStepResult {
                    id: *id,
                    result: result_value.clone(),
                    at: now,
                });
            }
            let first_step = changes.len();
            for (name, intent) in steps {
                changes.push(Change::InsertDeploymentStep(NewDeploymentStep {
                    deployment_id: self.dep.id,
                    step: (*name).to_owned(),
                    intent: intent.clone(),
                    at: now,
                }));
            }
            let (puts, gens) = match edit {
                Some((hosts, f)) => {
                    let (c, g, _) = self.edits(hosts, f).await?;
                    (c, g)
                }
                None => (Vec::new(), Vec::new()),
            };
            let wrote_assignments = !puts.is_empty();
            changes.extend(puts);
            let audit = Audit::new(
                &self.eng.actor,
                "deployment.transition",
                format!("deployment:{}", self.dep.id),
                json!({
                    "environment": self.dep.environment,
                    "version": self.dep.release_version,
                    "from": self.state.as_str(),
                    "to": to.as_str(),
                    "reason": reason,
                }),
            );
            match self.eng.store.apply(&changes, &audit).await {
                Ok(applied) => {
                    for (i, (name, _)) in steps.iter().enumerate() {
                        if let Some(id) = applied.id(first_step + i) {
                            self.open_steps.push((id, (*name).to_owned()));
                        }
                    }
                    self.state = to;
                    if finish {
                        self.dep.finished_at = Some(now);
                    }
                    if wrote_assignments {
                        self.eng.control.notify_assignments_changed();
                    }
                    return Ok(gens);
                }
                Err(StoreError::Conflict { what }) if attempt < 3 && wrote_assignments => {
                    // Another deployment wrote the host's assignment meanwhile: rebuild on it.
                    attempt += 1;
                    self.check_state(&what).await?;
                }
                Err(StoreError::Conflict { what }) => {
                    self.check_state(&what).await?;
                    return Err(DeployError::Interrupted {
                        id: self.dep.id,
                        reason: what,
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn check_state(&self, what: &str) -> Result<(), DeployError> {
        let now = self.eng.store.get_deployment(self.dep.id).await?;
        match now {
            Some(d) if d.state == self.state.as_str() => Ok(()),
            Some(d) => Err(DeployError::Interrupted {
                id: self.dep.id,
                reason: format!(
                    "another process moved it to `{}` (expected `{}`): {what}",
                    d.state, self.state
                ),
            }),
            None => Err(DeployError::Interrupted {
                id: self.dep.id,
                reason: "it disappeared from the store".into(),
            }),
        }
    }

    /// Changes the routing of `hosts` (one transaction, audited `deployment.switch` with what each
    /// host serves now). Returns the generations written.
    pub async fn switch(
        &mut self,
        hosts: &[String],
        edit: Edit<'_>,
    ) -> Result<Vec<(String, i64)>, DeployError> {
        self.lock.check()?;
        let mut attempt = 0;
        loop {
            let (mut changes, gens, services) = self.edits(hosts, edit).await?;
            if changes.is_empty() {
                return Ok(gens);
            }
            changes.insert(
                0,
                Change::UpdateDeployment {
                    id: self.dep.id,
                    expected_state: Some(self.state.as_str().to_owned()),
                    state: self.state.as_str().to_owned(),
                    at: Utc::now(),
                    finished_at: None,
                },
            );
            let mut serving = Vec::new();
            for (host, svc) in &services {
                serving.push(json!({ "host": host, "serving": self.serving(svc).await? }));
            }
            let audit = Audit::new(
                &self.eng.actor,
                "deployment.switch",
                format!("env:{}", self.dep.environment),
                json!({
                    "environment": self.dep.environment,
                    "deployment": self.dep.id,
                    "hosts": serving,
                }),
            );
            match self.eng.store.apply(&changes, &audit).await {
                Ok(_) => {
                    self.eng.control.notify_assignments_changed();
                    return Ok(gens);
                }
                Err(StoreError::Conflict { what }) if attempt < 3 => {
                    attempt += 1;
                    self.check_state(&what).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// What a desired service sends traffic to, as the `deployment.switch` payload lists it.
    async fn serving(&mut self, svc: &DesiredService) -> Result<Vec<Value>, DeployError> {
        let mut out = Vec::new();
        let Some(active) = svc.routing.active else {
            return Ok(out);
        };
        let mut split = vec![(active, 100u8)];
        if let Some(c) = svc.routing.canary
            && c.slot != active
            && c.weight_percent > 0
        {
            let w = c.weight_percent.min(100);
            split = vec![(active, 100 - w), (c.slot, w)];
        }
        for (slot, weight) in split {
            let Some(r) = svc.slots.get(&slot) else {
                continue;
            };
            let commit = self.commit_of(&r.version).await?;
            out.push(json!({
                "version": r.version,
                "commit": commit,
                "artifact_sha256": r.artifact_sha256,
                "slot": slot.as_str(),
                "weight": weight,
            }));
        }
        Ok(out)
    }

    async fn commit_of(&mut self, version: &str) -> Result<String, DeployError> {
        if let Some(c) = self.commits.get(version) {
            return Ok(c.clone());
        }
        let c = self
            .eng
            .store
            .get_release(version)
            .await?
            .map(|r| r.commit)
            .unwrap_or_default();
        self.commits.insert(version.to_owned(), c.clone());
        Ok(c)
    }
}

/// A host's current assignment in protocol form (generation 0 and nothing when none).
pub(crate) async fn current_assignment(
    eng: &Engine,
    host: &str,
) -> Result<(i64, Assignment), DeployError> {
    match eng.store.current_assignment(host).await? {
        None => Ok((
            0,
            Assignment {
                generation: 0,
                services: BTreeMap::new(),
            },
        )),
        Some(stored) => {
            let mut a: Assignment =
                serde_json::from_value(stored.desired).map_err(|e| DeployError::BadAssignment {
                    host: host.to_owned(),
                    reason: e.to_string(),
                })?;
            a.generation = u64::try_from(stored.generation).unwrap_or(0);
            Ok((stored.generation, a))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cutover_agent::health::HealthSpec;
    use cutover_agent::protocol::DesiredRouting;
    use cutover_agent::runtime::ProcessSpec;

    fn svc(slots: &[(Slot, &str)], active: Option<Slot>) -> DesiredService {
        DesiredService {
            listen: "127.0.0.1:1".parse().unwrap(),
            process: ProcessSpec::new("web", vec!["x".into()]),
            health: HealthSpec::http("/"),
            ports: BTreeMap::new(),
            slots: slots
                .iter()
                .map(|(s, v)| (*s, crate::desired::desired_release(v, "d")))
                .collect(),
            routing: DesiredRouting {
                active,
                ..DesiredRouting::default()
            },
            drain_timeout: std::time::Duration::from_secs(1),
            keep_releases: 1,
        }
    }

    proptest::proptest! {
        #[test]
        fn a_plan_never_replaces_the_serving_slot(
            blue in proptest::option::of(0u8..4),
            green in proptest::option::of(0u8..4),
            active in proptest::option::of(proptest::bool::ANY),
            new in 0u8..4,
        ) {
            let mut slots = Vec::new();
            let names = ["1", "2", "3", "4"];
            if let Some(b) = blue { slots.push((Slot::Blue, names[usize::from(b)])); }
            if let Some(g) = green { slots.push((Slot::Green, names[usize::from(g)])); }
            let active = active.map(|b| if b { Slot::Blue } else { Slot::Green });
            let current = svc(&slots, active);
            let want = crate::desired::desired_release(names[usize::from(new)], "d");
            let p = HostPlan::new("h", Some(&current), &want);
            let serving = active.filter(|a| current.slots.contains_key(a));
            // The new release goes to the serving slot only when that slot already runs it.
            if Some(p.new_slot) == serving {
                proptest::prop_assert_eq!(current.slots.get(&p.new_slot), Some(&want));
                proptest::prop_assert!(p.old.is_none());
            } else {
                proptest::prop_assert_eq!(p.old_slot, serving);
                proptest::prop_assert_eq!(p.old.as_ref(), serving.and_then(|s| current.slots.get(&s)));
            }
        }
    }

    #[test]
    fn plans_put_the_new_release_in_the_idle_slot() {
        let new = crate::desired::desired_release("2", "d");
        let p = HostPlan::new("h", None, &new);
        assert_eq!((p.new_slot, p.old_slot), (Slot::Blue, None));
        let p = HostPlan::new(
            "h",
            Some(&svc(&[(Slot::Blue, "1")], Some(Slot::Blue))),
            &new,
        );
        assert_eq!((p.new_slot, p.old_slot), (Slot::Green, Some(Slot::Blue)));
        assert_eq!(p.old.unwrap().version, "1");
        // Warm in green already: reused.
        let p = HostPlan::new(
            "h",
            Some(&svc(
                &[(Slot::Blue, "1"), (Slot::Green, "2")],
                Some(Slot::Blue),
            )),
            &new,
        );
        assert_eq!((p.new_slot, p.old_slot), (Slot::Green, Some(Slot::Blue)));
        // Already serving.
        let p = HostPlan::new(
            "h",
            Some(&svc(&[(Slot::Green, "2")], Some(Slot::Green))),
            &new,
        );
        assert_eq!((p.new_slot, p.old_slot), (Slot::Green, None));
        // Started but never routed.
        let p = HostPlan::new("h", Some(&svc(&[(Slot::Blue, "1")], None)), &new);
        assert_eq!((p.new_slot, p.old_slot), (Slot::Green, None));
    }
}
