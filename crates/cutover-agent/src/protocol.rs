//! The agent ↔ control plane protocol, version 1 (`/agent/v1/…`): its messages as serde types.
//!
//! The agent only connects out. The exchange:
//! 1. `POST /agent/v1/register` with [`Register`] → [`Registered`] (bearer token of the agent).
//! 2. `GET /agent/v1/poll?generation=G` → [`Assignment`]: returns at once when the desired state's
//!    generation differs from `G`, else after the long-poll timeout with the same generation.
//! 3. `POST /agent/v1/report` with [`Report`] (observed state and new evidence) → `204`.
//! 4. `GET /agent/v1/artifacts/sha256/{digest}` → the artifact bytes; the agent verifies the digest before
//!    anything is unpacked ([`crate::artifact::unpack_verified`]).
//! 5. Logs, since hosts open no inbound port: `GET /agent/v1/logs/requests` (a long poll of its own)
//!    → [`LogRequests`], the reads an operator asked for; the agent answers each with
//!    `POST /agent/v1/logs/{id}` carrying a [`LogChunk`] (the tail first, then, when following, new
//!    lines as they come and an empty chunk now and then). `204` asks for more; `410 Gone` means the
//!    reader left, and the agent stops.
//!
//! All bodies are JSON. Unknown fields are refused, so that a mismatch of versions is loud.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::health::{Evidence, Health, HealthSpec};
use crate::router::{Canary, Segment, SlotCounters};
use crate::runtime::{ProcessSpec, ProcessState, Slot};

/// The protocol version in the paths (`/agent/v1/…`).
pub const VERSION: u32 = 1;

/// First message of an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    /// The host's name, as the environments' `hosts` list it.
    pub name: String,
    /// The agent's version (the cutover version).
    pub agent_version: String,
    pub hostname: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registered {
    /// The generation of the desired state the control plane holds for this host now.
    pub generation: u64,
    /// How long a poll waits before it returns unchanged.
    pub poll_timeout: Duration,
}

/// The desired state of one host: what the control plane wants running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    /// Grows at every change; the agent reports which generation it reconciled.
    pub generation: u64,
    pub services: BTreeMap<String, DesiredService>,
}

/// One service on the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesiredService {
    /// The router's listen address.
    pub listen: std::net::SocketAddr,
    /// How to start and stop the processes (argv, env, stop timeout, restarts, logs).
    pub process: ProcessSpec,
    pub health: HealthSpec,
    /// Ports of the two slots.
    pub ports: BTreeMap<Slot, u16>,
    /// The release each slot should run; a slot absent here is stopped.
    pub slots: BTreeMap<Slot, DesiredRelease>,
    pub routing: DesiredRouting,
    pub drain_timeout: Duration,
    /// Releases kept on disk (the running ones are always kept).
    pub keep_releases: usize,
}

/// A release to run in a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesiredRelease {
    pub version: String,
    /// sha256 of the artifact (`tar.zst`), lowercase hex; fetched by this digest.
    pub artifact_sha256: String,
    /// A slot kept warm after traffic left it (for an instant rollback) stops at this time unless
    /// routing targets it again. The agent enforces it on its own, so it holds while the control
    /// plane is away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_until: Option<DateTime<Utc>>,
}

/// Where the router should send traffic. The agent applies it only to healthy slots and reports
/// what it did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesiredRouting {
    pub active: Option<Slot>,
    pub canary: Option<Canary>,
    pub segments: Vec<Segment>,
    pub paused: bool,
}

/// What the agent observed, sent after every reconciliation and at an interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub name: String,
    /// The generation this report reflects.
    pub generation: u64,
    pub at: DateTime<Utc>,
    pub services: BTreeMap<String, ObservedService>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedService {
    pub slots: BTreeMap<Slot, ObservedSlot>,
    /// The router's actual state.
    pub active: Option<Slot>,
    pub canary: Option<Canary>,
    pub paused: bool,
    pub counters: BTreeMap<Slot, SlotCounters>,
    /// Problems the agent could not resolve (a wrong digest, a start command that exits at once…).
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedSlot {
    pub version: String,
    pub port: u16,
    pub process: ProcessState,
    pub restarts: u32,
    pub health: Health,
    /// Check results since the previous report.
    pub evidence: Vec<Evidence>,
}

/// What the control plane wants read, from `GET /agent/v1/logs/requests`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogRequests {
    pub requests: Vec<LogRequest>,
}

/// One log read: the last `lines` lines of each selected log, then (`follow`) the new ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogRequest {
    /// Names this read in `POST /agent/v1/logs/{id}` (lowercase hex).
    pub id: String,
    /// The services whose logs are read; empty: every service of the host's assignment.
    pub services: Vec<String>,
    /// Only this slot; `None`: both.
    pub slot: Option<Slot>,
    pub lines: usize,
    pub follow: bool,
}

/// Lines the agent sends for a [`LogRequest`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogChunk {
    pub lines: Vec<LogLine>,
    /// The last chunk of this read (the tail was sent and nothing is followed, or it failed).
    #[serde(default)]
    pub done: bool,
    /// Why the read failed (an unknown service, an unreadable file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One line of a slot's output (`stream` is `out` or `err`), as the reader prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogLine {
    pub service: String,
    pub slot: Slot,
    pub stream: String,
    pub line: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::router::Match;

    #[test]
    fn assignment_round_trips_and_refuses_unknown_fields() {
        let mut process = ProcessSpec::new(
            "hello",
            vec![
                "{release_dir}/hello".into(),
                "--port".into(),
                "{port}".into(),
            ],
        );
        process.env.insert("RUST_LOG".into(), "info".into());
        let a = Assignment {
            generation: 7,
            services: BTreeMap::from([(
                "hello".to_owned(),
                DesiredService {
                    listen: "127.0.0.1:8080".parse().unwrap(),
                    process,
                    health: HealthSpec::http("/health"),
                    ports: BTreeMap::from([(Slot::Blue, 9001), (Slot::Green, 9002)]),
                    slots: BTreeMap::from([(
                        Slot::Green,
                        DesiredRelease {
                            version: "1.1.0".into(),
                            artifact_sha256: "ab".repeat(32),
                            warm_until: None,
                        },
                    )]),
                    routing: DesiredRouting {
                        active: Some(Slot::Blue),
                        canary: Some(Canary {
                            slot: Slot::Green,
                            weight_percent: 5,
                        }),
                        segments: vec![Segment {
                            when: Match::Cookie {
                                name: "beta".into(),
                                value: "yes".into(),
                            },
                            slot: Slot::Green,
                        }],
                        paused: false,
                    },
                    drain_timeout: Duration::from_secs(30),
                    keep_releases: 3,
                },
            )]),
        };
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Assignment>(&json).unwrap(), a);
        let bad = json.replacen("\"generation\":7", "\"generation\":7,\"extra\":1", 1);
        let err = serde_json::from_str::<Assignment>(&bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `extra`"), "{err}");
    }
}
