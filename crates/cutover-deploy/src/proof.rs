//! Proof of delivery: the predicate built from a host's reported evidence, and the signing step
//! behind a small trait (the signing itself lives in `cutover-proof`).

use cutover_agent::Slot;
use cutover_agent::health::Evidence;
use cutover_agent::runtime::ProcessState;
use serde_json::{Value, json};

use crate::observe::HostView;

/// Makes and signs in-toto statements. Implemented by `cutover_proof::SigningKey`.
pub trait ProofSigner: Send + Sync + std::fmt::Debug {
    /// The key's id, as recorded in `proof.record` audit events.
    fn keyid(&self) -> String;
    /// The in-toto Statement v1 about the artifact with this predicate.
    fn statement(&self, artifact_name: &str, artifact_sha256: &str, predicate: Value) -> Value;
    /// The DSSE envelope of `statement`.
    fn sign(&self, statement: &Value) -> Value;
}

impl ProofSigner for cutover_proof::SigningKey {
    fn keyid(&self) -> String {
        cutover_proof::SigningKey::keyid(self)
    }
    fn statement(&self, artifact_name: &str, artifact_sha256: &str, predicate: Value) -> Value {
        cutover_proof::statement(artifact_name, artifact_sha256, predicate)
    }
    fn sign(&self, statement: &Value) -> Value {
        cutover_proof::sign(self, statement)
    }
}

/// What a host's proof says, gathered while deploying.
#[derive(Debug, Clone)]
pub struct HostEvidence<'a> {
    pub environment: &'a str,
    pub host: &'a str,
    pub deployment: i64,
    pub version: &'a str,
    pub commit: &'a str,
    pub artifact_sha256: &'a str,
    pub slot: Slot,
    pub view: &'a HostView,
    /// Every check of the slot reported during the deployment, oldest first.
    pub checks: &'a [Evidence],
    pub smoke: &'a [Value],
    pub observation: Value,
}

/// The predicate of cutover's proof-of-delivery statement.
#[must_use]
pub fn predicate(e: &HostEvidence<'_>, delivered_at: chrono::DateTime<chrono::Utc>) -> Value {
    let slot = e.view.service.as_ref().and_then(|s| s.slots.get(&e.slot));
    let (pid, started_at) = match slot.map(|s| &s.process) {
        Some(ProcessState::Running { pid, since }) => (json!(pid), json!(since)),
        _ => (Value::Null, Value::Null),
    };
    let checks: Vec<Value> = e
        .checks
        .iter()
        .map(|c| {
            json!({
                "at": c.at,
                "kind": c.check,
                "ok": c.ok,
                "latency_ms": c.latency_us as f64 / 1000.0,
                "detail": c.detail,
            })
        })
        .collect();
    json!({
        "environment": e.environment,
        "host": e.host,
        "deployment": e.deployment,
        "release": {
            "version": e.version,
            "commit": e.commit,
            "artifact_sha256": e.artifact_sha256,
        },
        "slot": e.slot.as_str(),
        "pid": pid,
        "started_at": started_at,
        "port": slot.map(|s| s.port),
        "reported_version": crate::observe::reported_version(e.checks),
        "checks": checks,
        "smoke": e.smoke,
        "observation": e.observation,
        "delivered_at": delivered_at,
    })
}
