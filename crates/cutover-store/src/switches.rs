//! The derived index of `deployment.switch` audit events behind "what ran at time T".
//!
//! A switch event (subject `env:<name>`) lists the hosts whose traffic split changed, with what
//! each serves from then on. Replaying every switch of an environment up to T answers "what ran
//! at T" but reads thousands of payloads once the log is long; the index (migration 000006) keeps,
//! per environment and host, the seq and time of every switch naming the host, written in the
//! transaction that appends the event, so the answer needs only the newest switch per host.
//!
//! The audit log stays the only source of truth: the index holds nothing that is not derived from
//! the events, by [`classify`], which reads the payload with the same type the views replay with
//! ([`SwitchPayload`]), so both agree on which events count and which cannot be read.

use serde::Deserialize;

use crate::records::AuditEvent;

/// The action of a traffic switch.
pub const SWITCH_ACTION: &str = "deployment.switch";

/// The `deployment.switch` payload, read leniently (only what "what ran at T" needs).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SwitchPayload {
    pub environment: String,
    #[serde(default)]
    pub deployment: Option<i64>,
    #[serde(default)]
    pub hosts: Vec<SwitchHost>,
}

/// One host of a switch and what it serves from then on.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SwitchHost {
    pub host: String,
    #[serde(default)]
    pub serving: Vec<SwitchServing>,
}

/// One release a host serves after a switch.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SwitchServing {
    pub version: String,
    #[serde(default)]
    pub commit: Option<String>,
    #[serde(default)]
    pub artifact_sha256: Option<String>,
    #[serde(default)]
    pub slot: Option<String>,
    /// Percent; an integer as the spec says, but a float is read too.
    #[serde(default)]
    pub weight: Option<f64>,
}

/// How a switch replay treats an audit event.
#[derive(Debug, Clone, PartialEq)]
pub enum SwitchClass {
    /// Not a switch of any environment (another action, or a subject not `env:<name>`).
    NotASwitch,
    /// A switch whose payload names another environment than its subject: the replay skips it.
    Foreign,
    /// A switch of `environment` whose payload cannot be read: the replay warns and skips it.
    Unreadable { environment: String },
    /// A switch of `environment` the replay applies; `hosts` are the hosts it names (each once).
    Applied {
        environment: String,
        hosts: Vec<String>,
    },
}

/// How the replay treats an event with this action, subject and payload.
#[must_use]
pub fn classify(action: &str, subject: &str, payload: &serde_json::Value) -> SwitchClass {
    if action != SWITCH_ACTION {
        return SwitchClass::NotASwitch;
    }
    let Some(environment) = subject.strip_prefix("env:") else {
        return SwitchClass::NotASwitch;
    };
    match SwitchPayload::deserialize(payload) {
        Err(_) => SwitchClass::Unreadable {
            environment: environment.to_owned(),
        },
        Ok(p) if p.environment != environment => SwitchClass::Foreign,
        Ok(p) => {
            let mut hosts: Vec<String> = p.hosts.into_iter().map(|h| h.host).collect();
            hosts.sort();
            hosts.dedup();
            SwitchClass::Applied {
                environment: environment.to_owned(),
                hosts,
            }
        }
    }
}

/// The switch events that decide what served on an environment before an instant (see
/// [`crate::Store::switches_before`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SwitchesBefore {
    /// Per host any applied switch of the environment named before the instant: the newest such
    /// switch event's seq. By host name.
    pub latest: Vec<(String, i64)>,
    /// The events `latest` refers to (each once), oldest first.
    pub events: Vec<AuditEvent>,
    /// Whether any applied switch happened before the instant (one may name no host).
    pub deployed: bool,
    /// The environment's switch events before the instant whose payload cannot be read, oldest
    /// first.
    pub unreadable: Vec<AuditEvent>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn classes() {
        let ok = json!({"environment": "prod", "deployment": 3,
            "hosts": [{"host": "b", "serving": []}, {"host": "a"}, {"host": "b"}]});
        assert_eq!(
            classify("deployment.switch", "env:prod", &ok),
            SwitchClass::Applied {
                environment: "prod".into(),
                hosts: vec!["a".into(), "b".into()]
            }
        );
        assert_eq!(
            classify("deployment.switch", "env:staging", &ok),
            SwitchClass::Foreign
        );
        assert_eq!(
            classify("deployment.create", "env:prod", &ok),
            SwitchClass::NotASwitch
        );
        assert_eq!(
            classify("deployment.switch", "deployment:3", &ok),
            SwitchClass::NotASwitch
        );
        let bad =
            json!({"environment": "prod", "hosts": [{"host": "a", "serving": [{"weight": 5}]}]});
        assert_eq!(
            classify("deployment.switch", "env:prod", &bad),
            SwitchClass::Unreadable {
                environment: "prod".into()
            }
        );
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[a-c]{0,3}".prop_map(serde_json::Value::from),
            Just(json!("prod")),
            Just(json!("1.0.0")),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("environment".to_owned()),
                        Just("hosts".to_owned()),
                        Just("host".to_owned()),
                        Just("serving".to_owned()),
                        Just("version".to_owned()),
                        Just("weight".to_owned()),
                        "[a-z]{1,3}".prop_map(String::from),
                    ],
                    inner,
                    0..5
                )
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Never panics, and an applied switch names exactly the hosts of its payload.
        #[test]
        fn classify_agrees_with_the_payload(payload in json_value()) {
            match classify("deployment.switch", "env:prod", &payload) {
                SwitchClass::Applied { environment, hosts } => {
                    prop_assert_eq!(environment, "prod");
                    let p = SwitchPayload::deserialize(&payload).unwrap();
                    for h in &p.hosts {
                        prop_assert!(hosts.contains(&h.host));
                    }
                    prop_assert!(hosts.len() <= p.hosts.len());
                }
                SwitchClass::Unreadable { .. } => {
                    prop_assert!(SwitchPayload::deserialize(&payload).is_err());
                }
                SwitchClass::Foreign => {
                    let p = SwitchPayload::deserialize(&payload).unwrap();
                    prop_assert_ne!(p.environment, "prod");
                }
                SwitchClass::NotASwitch => prop_assert!(false, "a switch action was not a switch"),
            }
        }
    }
}
