//! VCS webhooks in: GitHub (`X-Hub-Signature-256`, `pull_request` closed and merged, `push`) and
//! GitLab (`X-Gitlab-Token`, `Merge Request Hook` merged, `Push Hook`).
//!
//! [`receive`] is pure: it verifies the signature or token in constant time over the raw body,
//! then parses the payload into a [`MergeEvent`] (or says why the delivery is ignored). The
//! [`routes`] module puts it behind `POST /webhooks/github` and `POST /webhooks/gitlab`.

pub mod routes;

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

pub use routes::{WebhookState, WebhookStats, first_environment, routes};

/// Where a webhook comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// GitHub (github.com or GitHub Enterprise Server).
    GitHub,
    /// GitLab (gitlab.com or self-managed).
    GitLab,
}

impl Provider {
    /// `github` or `gitlab`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
        }
    }
}

/// A merge (or push) that landed on a branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MergeEvent {
    /// Who sent it.
    pub provider: Provider,
    /// The provider's id of this delivery (replays carry the same one).
    pub delivery_id: String,
    /// `pull_request`, `merge_request` or `push`.
    pub event: String,
    /// The branch the change landed on.
    pub branch: String,
    /// The commit now at the tip of that branch (the merge commit for a merge).
    pub commit: String,
    /// Who merged or pushed.
    pub actor: String,
    /// `owner/name` (GitHub) or `group/project` (GitLab).
    pub repository: Option<String>,
    /// The pull/merge request number, for merges.
    pub number: Option<u64>,
    /// The request's title, or the head commit's first line for pushes.
    pub title: Option<String>,
    /// A link to the request or the compare view.
    pub url: Option<String>,
}

/// What a verified delivery means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Received {
    /// Something landed on a branch.
    Merge(MergeEvent),
    /// Authentic, but nothing to do (a ping, a closed unmerged request, a tag push, ...).
    Ignored {
        /// The delivery id.
        delivery_id: String,
        /// The event name as the provider sent it.
        event: String,
        /// Why nothing is done.
        reason: String,
    },
}

/// Why a delivery is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// A header the provider always sends is missing (or is not text).
    #[error("the {header} header is missing")]
    MissingHeader {
        /// The header.
        header: &'static str,
    },
    /// The signature or token does not match the configured secret.
    #[error("the {header} header does not match the configured secret ({reason})")]
    BadSignature {
        /// The header checked.
        header: &'static str,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// The body is not JSON.
    #[error("the body is not JSON: {message} at line {line}, column {column}")]
    BadJson {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// A field the event needs is missing or of the wrong type.
    #[error("the payload's `{field}` is missing or not {expected}")]
    Field {
        /// The JSON path, e.g. `pull_request.base.ref`.
        field: String,
        /// What it should be.
        expected: &'static str,
    },
}

impl WebhookError {
    /// Whether this is an authentication failure (401) rather than a bad request (400).
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            WebhookError::BadSignature { .. }
                | WebhookError::MissingHeader {
                    header: GITHUB_SIGNATURE | GITLAB_TOKEN
                }
        )
    }

    /// The JSON path of the offending field, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            WebhookError::Field { field, .. } => Some(field),
            _ => None,
        }
    }

    /// A short machine-readable reason (for the `webhook.reject` audit event).
    pub fn reason(&self) -> String {
        match self {
            WebhookError::MissingHeader { header } => format!("missing {header}"),
            WebhookError::BadSignature { reason, .. } => format!("bad signature: {reason}"),
            WebhookError::BadJson { .. } => "malformed JSON".to_owned(),
            WebhookError::Field { field, .. } => format!("bad field {field}"),
        }
    }
}

/// GitHub's HMAC-SHA256 signature header.
pub const GITHUB_SIGNATURE: &str = "X-Hub-Signature-256";
/// GitHub's event name header.
pub const GITHUB_EVENT: &str = "X-GitHub-Event";
/// GitHub's delivery id header.
pub const GITHUB_DELIVERY: &str = "X-GitHub-Delivery";
/// GitLab's shared-secret header.
pub const GITLAB_TOKEN: &str = "X-Gitlab-Token";
/// GitLab's event name header.
pub const GITLAB_EVENT: &str = "X-Gitlab-Event";
/// GitLab's delivery id header.
pub const GITLAB_EVENT_UUID: &str = "X-Gitlab-Event-UUID";
/// GitLab's (newer) delivery id header, kept across its retries.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

fn header<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, WebhookError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(WebhookError::MissingHeader { header: name })
}

/// Verifies and parses a delivery from `provider`. `secret` is the GitHub webhook secret or the
/// GitLab token. Nothing of the body is looked at before the signature or token checked out.
pub fn receive(
    provider: Provider,
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Received, WebhookError> {
    match provider {
        Provider::GitHub => {
            verify_github(secret, headers, body)?;
            parse_github(headers, body)
        }
        Provider::GitLab => {
            verify_gitlab(secret, headers)?;
            parse_gitlab(headers, body)
        }
    }
}

/// Checks `X-Hub-Signature-256: sha256=<hex>`, the HMAC-SHA256 of the raw body keyed with the
/// webhook secret, in constant time.
pub fn verify_github(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<(), WebhookError> {
    let value = header(headers, GITHUB_SIGNATURE)?;
    let bad = |reason| WebhookError::BadSignature {
        header: GITHUB_SIGNATURE,
        reason,
    };
    let hex_sig = value
        .strip_prefix("sha256=")
        .ok_or_else(|| bad("it does not start with sha256="))?;
    let sig = hex::decode(hex_sig).map_err(|_| bad("it is not hex"))?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(body);
    mac.verify_slice(&sig).map_err(|_| bad("the HMAC differs"))
}

/// Checks `X-Gitlab-Token` against the configured token in constant time (both are hashed first,
/// so that not even the length leaks through timing).
pub fn verify_gitlab(token: &[u8], headers: &HeaderMap) -> Result<(), WebhookError> {
    let value = headers
        .get(GITLAB_TOKEN)
        .map(|v| v.as_bytes())
        .filter(|v| !v.is_empty())
        .ok_or(WebhookError::MissingHeader {
            header: GITLAB_TOKEN,
        })?;
    let (a, b) = (Sha256::digest(value), Sha256::digest(token));
    if bool::from(a.as_slice().ct_eq(b.as_slice())) {
        Ok(())
    } else {
        Err(WebhookError::BadSignature {
            header: GITLAB_TOKEN,
            reason: "the token differs",
        })
    }
}

fn json(body: &[u8]) -> Result<Value, WebhookError> {
    serde_json::from_slice(body).map_err(|e| WebhookError::BadJson {
        line: e.line(),
        column: e.column(),
        message: {
            // serde_json appends " at line L column C"; the variant says it already.
            let text = e.to_string();
            match text.rfind(" at line ") {
                Some(i) => text[..i].to_owned(),
                None => text,
            }
        },
    })
}

/// Reads a field by its dotted path.
struct Doc<'a>(&'a Value);

impl<'a> Doc<'a> {
    fn get(&self, path: &str) -> Option<&'a Value> {
        path.split('.').try_fold(self.0, |v, key| v.get(key))
    }
    fn str(&self, path: &str) -> Result<&'a str, WebhookError> {
        self.get(path)
            .and_then(Value::as_str)
            .ok_or_else(|| WebhookError::Field {
                field: path.to_owned(),
                expected: "a string",
            })
    }
    fn opt_str(&self, path: &str) -> Option<String> {
        self.get(path)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }
    fn bool(&self, path: &str) -> Result<bool, WebhookError> {
        self.get(path)
            .and_then(Value::as_bool)
            .ok_or_else(|| WebhookError::Field {
                field: path.to_owned(),
                expected: "a boolean",
            })
    }
}

fn first_line(s: Option<String>) -> Option<String> {
    s.and_then(|s| s.lines().next().map(str::to_owned))
}

fn is_zero_sha(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b == b'0')
}

/// Parses a verified GitHub delivery.
pub fn parse_github(headers: &HeaderMap, body: &[u8]) -> Result<Received, WebhookError> {
    let delivery_id = header(headers, GITHUB_DELIVERY)?.to_owned();
    let event = header(headers, GITHUB_EVENT)?.to_owned();
    let ignored = |reason: String| Received::Ignored {
        delivery_id: delivery_id.clone(),
        event: event.clone(),
        reason,
    };
    if event != "pull_request" && event != "push" {
        // Parse anyway: a malformed body is refused whatever the event.
        json(body)?;
        return Ok(ignored(format!("the {event} event starts nothing")));
    }
    let v = json(body)?;
    let d = Doc(&v);
    let repository = d.opt_str("repository.full_name");
    if event == "push" {
        let git_ref = d.str("ref")?;
        let after = d.str("after")?;
        let deleted = d.get("deleted").and_then(Value::as_bool).unwrap_or(false);
        let Some(branch) = git_ref.strip_prefix("refs/heads/") else {
            return Ok(ignored(format!("{git_ref} is not a branch")));
        };
        if deleted || is_zero_sha(after) {
            return Ok(ignored(format!("branch {branch} was deleted")));
        }
        let actor = d
            .opt_str("pusher.name")
            .or_else(|| d.opt_str("sender.login"))
            .ok_or_else(|| WebhookError::Field {
                field: "pusher.name".to_owned(),
                expected: "a string",
            })?;
        return Ok(Received::Merge(MergeEvent {
            provider: Provider::GitHub,
            delivery_id,
            event,
            branch: branch.to_owned(),
            commit: after.to_owned(),
            actor,
            repository,
            number: None,
            title: first_line(d.opt_str("head_commit.message")),
            url: d.opt_str("compare"),
        }));
    }
    let action = d.str("action")?;
    let number = d.get("pull_request.number").and_then(Value::as_u64);
    if action != "closed" {
        return Ok(ignored(format!("pull request action {action}")));
    }
    if !d.bool("pull_request.merged")? {
        return Ok(ignored(
            "the pull request was closed without merging".to_owned(),
        ));
    }
    let branch = d.str("pull_request.base.ref")?.to_owned();
    let commit = d.str("pull_request.merge_commit_sha")?.to_owned();
    let actor = d
        .opt_str("pull_request.merged_by.login")
        .or_else(|| d.opt_str("sender.login"))
        .ok_or_else(|| WebhookError::Field {
            field: "pull_request.merged_by.login".to_owned(),
            expected: "a string",
        })?;
    Ok(Received::Merge(MergeEvent {
        provider: Provider::GitHub,
        delivery_id,
        event,
        branch,
        commit,
        actor,
        repository,
        number,
        title: d.opt_str("pull_request.title"),
        url: d.opt_str("pull_request.html_url"),
    }))
}

/// Parses a verified GitLab delivery.
pub fn parse_gitlab(headers: &HeaderMap, body: &[u8]) -> Result<Received, WebhookError> {
    let delivery_id = header(headers, GITLAB_EVENT_UUID)
        .or_else(|_| header(headers, IDEMPOTENCY_KEY))
        .map_err(|_| WebhookError::MissingHeader {
            header: GITLAB_EVENT_UUID,
        })?
        .to_owned();
    let event_header = header(headers, GITLAB_EVENT)?.to_owned();
    let ignored = |event: &str, reason: String| Received::Ignored {
        delivery_id: delivery_id.clone(),
        event: event.to_owned(),
        reason,
    };
    let v = json(body)?;
    let d = Doc(&v);
    let repository = d.opt_str("project.path_with_namespace");
    match event_header.as_str() {
        "Push Hook" => {
            let git_ref = d.str("ref")?;
            let after = d.str("after")?;
            let Some(branch) = git_ref.strip_prefix("refs/heads/") else {
                return Ok(ignored("push", format!("{git_ref} is not a branch")));
            };
            if is_zero_sha(after) {
                return Ok(ignored("push", format!("branch {branch} was deleted")));
            }
            let commit = d
                .opt_str("checkout_sha")
                .unwrap_or_else(|| after.to_owned());
            let actor = d.str("user_username")?.to_owned();
            let title = d
                .get("commits")
                .and_then(Value::as_array)
                .and_then(|c| c.last())
                .and_then(|c| c.get("title").or_else(|| c.get("message")))
                .and_then(Value::as_str)
                .map(str::to_owned);
            Ok(Received::Merge(MergeEvent {
                provider: Provider::GitLab,
                delivery_id,
                event: "push".to_owned(),
                branch: branch.to_owned(),
                commit,
                actor,
                repository,
                number: None,
                title: first_line(title),
                url: d.opt_str("project.web_url"),
            }))
        }
        "Merge Request Hook" => {
            let state = d.str("object_attributes.state")?;
            match d.opt_str("object_attributes.action") {
                Some(action) if action != "merge" => {
                    return Ok(ignored(
                        "merge_request",
                        format!("merge request action {action}"),
                    ));
                }
                None if state != "merged" => {
                    return Ok(ignored("merge_request", format!("merge request {state}")));
                }
                _ => {}
            }
            let branch = d.str("object_attributes.target_branch")?.to_owned();
            // Merge commits, squash merges and fast-forward merges name the landed commit in
            // different fields.
            let commit = d
                .opt_str("object_attributes.merge_commit_sha")
                .or_else(|| d.opt_str("object_attributes.squash_commit_sha"))
                .or_else(|| d.opt_str("object_attributes.last_commit.id"))
                .ok_or_else(|| WebhookError::Field {
                    field: "object_attributes.merge_commit_sha".to_owned(),
                    expected: "a string",
                })?;
            let actor = d.str("user.username")?.to_owned();
            Ok(Received::Merge(MergeEvent {
                provider: Provider::GitLab,
                delivery_id,
                event: "merge_request".to_owned(),
                branch,
                commit,
                actor,
                repository,
                number: d.get("object_attributes.iid").and_then(Value::as_u64),
                title: d.opt_str("object_attributes.title"),
                url: d.opt_str("object_attributes.url"),
            }))
        }
        other => Ok(ignored(other, format!("the {other} event starts nothing"))),
    }
}
