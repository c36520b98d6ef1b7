//! From audit events to notifications: which actions notify, as which [`Event`], with what title,
//! summary and details (a delivery carries its proofs of delivery).

use chrono::SecondsFormat;
use cutover_config::Event;
use cutover_store::{AuditEvent, Store, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One notification, whatever the channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The audit event it comes from (unique, increasing: receivers deduplicate by it).
    pub seq: i64,
    /// When that event happened.
    pub at: Timestamp,
    /// What kind of event it is.
    pub event: Event,
    /// One line.
    pub title: String,
    /// A few lines of plain text.
    pub summary: String,
    /// A link to more (set by whoever knows the dashboard's address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The details: the audit payload, enriched (the notice's text, the release notes, the
    /// proofs of delivery, ...).
    pub payload: Value,
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn id_of(subject: &str) -> Option<i64> {
    // Subjects are written `deployment:17` by the deploy engine and `job/17` by the queue.
    subject
        .rsplit([':', '/'])
        .next()
        .and_then(|id| id.parse().ok())
}

/// The notification for audit event `ev`, or `None` when that action notifies nobody. Reads the
/// store for details (notice text, release notes, proofs, the failed job); when a read fails the
/// notification goes out with the audit payload alone.
pub async fn from_audit(ev: &AuditEvent, store: &dyn Store) -> Option<Notification> {
    let p = &ev.payload;
    let mut payload = p.clone();
    let (event, title, summary) = match ev.action.as_str() {
        "notice.sent" => {
            let notice = match p.get("id").and_then(Value::as_i64) {
                Some(id) => store.get_notice(id).await.ok().flatten(),
                None => None,
            };
            let version = notice
                .as_ref()
                .map_or_else(|| text(p, "version"), |n| n.version.clone());
            let version = if version.is_empty() {
                ev.subject.trim_start_matches("release/").to_owned()
            } else {
                version
            };
            if let (Some(n), Some(map)) = (&notice, payload.as_object_mut()) {
                map.insert("version".into(), json!(n.version));
                map.insert("format".into(), json!(n.format));
                map.insert("content".into(), json!(n.content));
                map.insert("recipients".into(), json!(n.recipients));
            }
            (
                Event::Notice,
                format!("Advance shipping notice: {version}"),
                format!("Version {version} is coming; the notice lists its changes."),
            )
        }
        "release.created" => {
            let version = text(p, "version");
            let release = store.get_release(&version).await.ok().flatten();
            if let (Some(r), Some(map)) = (&release, payload.as_object_mut()) {
                map.insert("notes".into(), json!(r.notes));
            }
            let kind = text(p, "kind");
            (
                Event::Released,
                format!("Released {version}"),
                format!(
                    "{}{version} was released as tag {} at commit {}.",
                    if kind == "hotfix" { "Hotfix " } else { "" },
                    text(p, "tag"),
                    short(&text(p, "commit")),
                ),
            )
        }
        "deployment.transition" => {
            let to = text(p, "to");
            let env = text(p, "environment");
            let version = text(p, "version");
            let reason = text(p, "reason");
            let deployment = id_of(&ev.subject);
            if let (Some(id), Some(map)) = (deployment, payload.as_object_mut()) {
                map.insert("deployment".into(), json!(id));
            }
            match to.as_str() {
                "live" => {
                    let proofs = match deployment {
                        Some(id) => store.list_proofs(id).await.unwrap_or_default(),
                        None => Vec::new(),
                    };
                    let hosts: Vec<&str> = proofs.iter().map(|p| p.host.as_str()).collect();
                    let summary = format!(
                        "{version} runs healthy in {env}; proof of delivery from {} host{}{}.",
                        proofs.len(),
                        if proofs.len() == 1 { "" } else { "s" },
                        if hosts.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", hosts.join(", "))
                        }
                    );
                    if let Some(map) = payload.as_object_mut() {
                        map.insert(
                            "proofs".into(),
                            Value::Array(
                                proofs
                                    .iter()
                                    .map(|p| {
                                        json!({
                                            "host": p.host,
                                            "created_at": p.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
                                            "statement": p.statement,
                                            "envelope": p.envelope,
                                        })
                                    })
                                    .collect(),
                            ),
                        );
                    }
                    (
                        Event::Delivered,
                        format!("{version} delivered to {env}"),
                        summary,
                    )
                }
                "failed" => (
                    Event::Failed,
                    format!("Deployment of {version} to {env} failed"),
                    non_empty(reason, "The deployment failed."),
                ),
                "rolled_back" => (
                    Event::RolledBack,
                    format!("Deployment of {version} to {env} rolled back"),
                    non_empty(reason, "The deployment was rolled back."),
                ),
                _ => return None,
            }
        }
        "incident.open" | "incident.resolve" => {
            let env = text(p, "environment");
            let opened = ev.action == "incident.open";
            let id = id_of(&ev.subject);
            let id_text = id.map_or_else(String::new, |i| format!(" {i}"));
            (
                Event::Incident,
                if opened {
                    format!("Incident{id_text} opened in {env}")
                } else {
                    format!("Incident{id_text} resolved in {env}")
                },
                non_empty(
                    text(p, "summary"),
                    if opened {
                        "An incident was opened."
                    } else {
                        "The incident was resolved."
                    },
                ),
            )
        }
        "job.fail" => {
            if text(p, "kind") != "check" {
                return None;
            }
            let job = store.get_job(id_of(&ev.subject)?).await.ok().flatten()?;
            let check = job.payload.get("check")?;
            // A check says whether it is required; one that does not say is (the config default).
            if !check
                .get("required")
                .and_then(Value::as_bool)
                .unwrap_or(true)
            {
                return None;
            }
            let name = text(check, "name");
            let release = job.release_version.clone().unwrap_or_default();
            if let Some(map) = payload.as_object_mut() {
                map.insert("check".into(), json!(name));
                map.insert("release".into(), json!(job.release_version));
            }
            (
                Event::Failed,
                if release.is_empty() {
                    format!("Required check {name} failed")
                } else {
                    format!("Required check {name} failed for {release}")
                },
                non_empty(text(p, "error"), "The check failed."),
            )
        }
        _ => return None,
    };
    Some(Notification {
        seq: ev.seq,
        at: ev.at,
        event,
        title,
        summary,
        url: None,
        payload,
    })
}

fn non_empty(s: String, fallback: &str) -> String {
    if s.trim().is_empty() {
        fallback.to_owned()
    } else {
        s
    }
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}
