//! Decoding an observation's `observed` JSON (what the control plane stored from an agent's report:
//! `{at, services: {name: ObservedService}}`) into per-slot and router views.

use std::collections::BTreeMap;

use cutover_agent::Slot;
use cutover_agent::health::Health;
use cutover_agent::protocol::ObservedService;
use cutover_agent::runtime::ProcessState;
use cutover_store::{Observation, Timestamp};
use serde::{Deserialize, Serialize};

/// The `observed` document of an observation.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ObservedDoc {
    /// When the agent made the report.
    pub at: Timestamp,
    pub services: BTreeMap<String, ObservedService>,
}

impl ObservedDoc {
    /// The service named `preferred` when the host runs it, else the first one (by name).
    #[must_use]
    pub fn service(&self, preferred: &str) -> Option<(&str, &ObservedService)> {
        self.services
            .get_key_value(preferred)
            .or_else(|| self.services.iter().next())
            .map(|(k, v)| (k.as_str(), v))
    }
}

/// Decodes `observation.observed`; an error names the host and the observation.
pub fn decode_observation(observation: &Observation) -> Result<ObservedDoc, String> {
    ObservedDoc::deserialize(&observation.observed).map_err(|e| {
        format!(
            "the observation {} of host {} cannot be read ({e}); its slots are not shown",
            observation.id, observation.host
        )
    })
}

/// One slot of a service on a host, as the status contract shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotStatus {
    pub slot: Slot,
    pub version: String,
    /// The process: `running`, `backoff`, `failed` or `stopped`.
    pub state: String,
    /// The health checks (and version probe) pass.
    pub healthy: bool,
    pub pid: Option<u32>,
    pub port: u16,
    /// When the running process started.
    pub since: Option<Timestamp>,
    /// The health judgement in words (`starting`, `healthy`, `unhealthy`, `wrong version 1.0.0`),
    /// for people; the JSON contract has `healthy`.
    #[serde(skip)]
    pub health: String,
}

/// Where a host's router sends traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RouterStatus {
    pub active: Option<Slot>,
    /// Percent of new clients per slot: the active slot's 100, or the canary split.
    pub weights: BTreeMap<Slot, u8>,
}

/// The slots of `svc`, blue then green.
#[must_use]
pub fn slots(svc: &ObservedService) -> Vec<SlotStatus> {
    svc.slots
        .iter()
        .map(|(slot, o)| {
            let (state, pid, since) = match &o.process {
                ProcessState::Running { pid, since } => ("running", Some(*pid), Some(*since)),
                ProcessState::Backoff { .. } => ("backoff", None, None),
                ProcessState::Failed { .. } => ("failed", None, None),
                ProcessState::Stopped { .. } => ("stopped", None, None),
            };
            let health = match &o.health {
                Health::Starting => "starting".to_owned(),
                Health::Healthy => "healthy".to_owned(),
                Health::Unhealthy => "unhealthy".to_owned(),
                Health::WrongVersion { reported } => format!("wrong version {reported}"),
            };
            SlotStatus {
                slot: *slot,
                version: o.version.clone(),
                state: state.to_owned(),
                healthy: matches!(o.health, Health::Healthy),
                pid,
                port: o.port,
                since,
                health,
            }
        })
        .collect()
}

/// The router of `svc`: with a canary on the other slot, the active slot gets the rest of the
/// traffic; a canary without an active slot gets everything (it is the only upstream).
#[must_use]
pub fn router(svc: &ObservedService) -> RouterStatus {
    let mut weights = BTreeMap::new();
    match (svc.active, svc.canary) {
        (Some(active), Some(canary)) if canary.slot != active => {
            let w = canary.weight_percent.min(100);
            weights.insert(active, 100 - w);
            weights.insert(canary.slot, w);
        }
        (Some(active), _) => {
            weights.insert(active, 100);
        }
        (None, Some(canary)) => {
            weights.insert(canary.slot, 100);
        }
        (None, None) => {}
    }
    RouterStatus {
        active: svc.active,
        weights,
    }
}
