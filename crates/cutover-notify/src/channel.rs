//! The channels notifications go to, built from `[notify]` with their secrets resolved, and
//! delivery to one of them with bounded retries and exponential backoff.

use std::time::Duration;

use cutover_config::{Event, Notify, Secret, SecretError, SecretValue, SmtpTls};
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncTransport as _, Message, Tokio1Executor};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::http;
use crate::sign::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use crate::{Notification, NotifyError};

/// Reads a secret's value (in production: the process environment and the project directory,
/// see [`crate::env_resolver`]).
pub type Resolve<'a> = &'a (dyn Fn(&Secret) -> Result<SecretValue, SecretError> + Sync);

/// A channel ready to deliver to: its secrets are resolved.
#[derive(Debug, Clone)]
pub struct Channel {
    /// Its stable name: the key of its cursor and the subject of its audit events. Never holds a
    /// secret: `webhook:<scheme://host:port/path>`, `slack:<secret reference>`, `email`.
    pub name: String,
    /// The events it gets.
    pub events: Vec<Event>,
    /// Where it goes.
    pub kind: ChannelKind,
}

/// Where a channel goes.
#[derive(Debug, Clone)]
pub enum ChannelKind {
    /// A JSON POST, signed when there is a secret.
    Webhook {
        /// The URL.
        url: String,
        /// The HMAC key.
        secret: Option<SecretValue>,
    },
    /// A Slack-compatible incoming webhook (the URL is the credential).
    Slack {
        /// The URL.
        url: SecretValue,
    },
    /// Email over SMTP.
    Email(EmailTarget),
}

/// An SMTP server and the addresses of the mail.
#[derive(Debug, Clone)]
pub struct EmailTarget {
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Transport security.
    pub tls: SmtpTls,
    /// The PEM certificates of `smtp.ca_file`: the only trust roots for this server when set (a
    /// private or self-signed relay); else the system's.
    pub ca_pem: Option<String>,
    /// User name and password, when the server wants them.
    pub credentials: Option<(String, SecretValue)>,
    /// The sender.
    pub from: String,
    /// Recipients of every event.
    pub to: Vec<String>,
    /// Extra recipients of the advance shipping notice (`notify.recipients`).
    pub notice_to: Vec<String>,
}

impl Channel {
    /// Whether this channel gets `event`.
    pub fn wants(&self, event: Event) -> bool {
        self.events.contains(&event)
    }
}

/// A channel that cannot be used (its secret is missing, its URL is not one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("notification channel {channel}: {message}")]
pub struct ChannelError {
    /// The channel's name.
    pub channel: String,
    /// What is wrong (never the secret).
    pub message: String,
}

/// How often and how long delivery is tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// The wait after the first failed attempt; doubled after each further one.
    pub first_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
    /// The longest one attempt may take.
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            attempt_timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.first_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// The channels of `[notify]`, with their secrets resolved by `resolve`; the ones that cannot be
/// used are returned as errors (and get nothing until that is fixed: their cursor stays).
pub fn channels(notify: &Notify, resolve: Resolve<'_>) -> (Vec<Channel>, Vec<ChannelError>) {
    let mut out: Vec<Channel> = Vec::new();
    let mut errors = Vec::new();
    let unique = |name: String, out: &[Channel], errors: &[ChannelError]| {
        let taken =
            |n: &str| out.iter().any(|c| c.name == n) || errors.iter().any(|e| e.channel == n);
        if !taken(&name) {
            return name;
        }
        (2..)
            .map(|i| format!("{name}#{i}"))
            .find(|n| !taken(n))
            .unwrap_or(name)
    };
    let secret_err = |channel: &str, what: &str, e: SecretError| ChannelError {
        channel: channel.to_owned(),
        message: format!("cannot read its {what}: {e}"),
    };
    for w in &notify.webhook {
        let events = w.events.clone().unwrap_or_else(|| notify.events.clone());
        let name = match http::shown_target(&w.url) {
            Some(shown) => {
                let path = w
                    .url
                    .split_once("://")
                    .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
                    .map_or("", |p| p.split(['?', '#']).next().unwrap_or(""));
                format!("webhook:{shown}{path}")
            }
            None => {
                let name = unique("webhook:invalid".to_owned(), &out, &errors);
                errors.push(ChannelError {
                    channel: name,
                    message: "its url is not an absolute http:// or https:// URL".to_owned(),
                });
                continue;
            }
        };
        let name = unique(name, &out, &errors);
        let secret = match w.secret.as_ref().map(resolve).transpose() {
            Ok(s) => s,
            Err(e) => {
                errors.push(secret_err(&name, "secret", e));
                continue;
            }
        };
        out.push(Channel {
            name,
            events,
            kind: ChannelKind::Webhook {
                url: w.url.clone(),
                secret,
            },
        });
    }
    for s in &notify.slack {
        let events = s.events.clone().unwrap_or_else(|| notify.events.clone());
        let name = unique(format!("slack:{}", s.url.reference()), &out, &errors);
        match resolve(&s.url) {
            Ok(url) if http::shown_target(url.expose()).is_some() => out.push(Channel {
                name,
                events,
                kind: ChannelKind::Slack { url },
            }),
            Ok(_) => errors.push(ChannelError {
                channel: name,
                message: "its url secret is not an absolute http:// or https:// URL".to_owned(),
            }),
            Err(e) => errors.push(secret_err(&name, "url", e)),
        }
    }
    if let Some(e) = &notify.email {
        let events = e.events.clone().unwrap_or_else(|| notify.events.clone());
        let name = unique("email".to_owned(), &out, &errors);
        let credentials = match (&e.smtp.username, &e.smtp.password) {
            (Some(user), Some(password)) => match resolve(password) {
                Ok(p) => Some((user.clone(), p)),
                Err(err) => {
                    errors.push(secret_err(&name, "smtp.password", err));
                    return (out, errors);
                }
            },
            _ => None,
        };
        // Read (through the resolver, so relative to the project directory) and checked here, so
        // that a wrong path shows when the channel is set up, not at the first send.
        let ca_pem = match &e.smtp.ca_file {
            Some(file) => match resolve(&Secret::File { file: file.clone() }) {
                Ok(pem) if pem_certificates(pem.expose()) > 0 => Some(pem.expose().to_owned()),
                Ok(_) => {
                    errors.push(ChannelError {
                        channel: name,
                        message: format!(
                            "its smtp.ca_file {} holds no PEM certificate (expected `-----BEGIN CERTIFICATE-----` blocks)",
                            file.display()
                        ),
                    });
                    return (out, errors);
                }
                Err(err) => {
                    errors.push(ChannelError {
                        channel: name,
                        message: format!("cannot read its smtp.ca_file: {err}"),
                    });
                    return (out, errors);
                }
            },
            None => None,
        };
        out.push(Channel {
            name,
            events,
            kind: ChannelKind::Email(EmailTarget {
                host: e.smtp.host.clone(),
                port: e.smtp.port,
                tls: e.smtp.tls,
                ca_pem,
                credentials,
                from: e.from.clone(),
                to: e.to.clone(),
                notice_to: notify.recipients.clone(),
            }),
        });
    }
    (out, errors)
}

/// Why one attempt failed.
enum AttemptError {
    /// Trying again may help (connection refused, timeout, 5xx, 429, SMTP 4xx).
    Transient(String),
    /// It will not (4xx, SMTP 5xx, a bad address).
    Permanent(String),
}

/// Delivers `n` to `channel` with the default [`RetryPolicy`] and no deadline.
pub async fn deliver(channel: &Channel, n: &Notification) -> Result<(), NotifyError> {
    deliver_with(channel, n, &RetryPolicy::default(), None)
        .await
        .map(|_| ())
}

/// Delivers `n` to `channel`: up to `policy.attempts` attempts with exponential backoff, none
/// started after `deadline`. Returns the attempts it took.
pub async fn deliver_with(
    channel: &Channel,
    n: &Notification,
    policy: &RetryPolicy,
    deadline: Option<Instant>,
) -> Result<u32, NotifyError> {
    let failed = |attempts: u32, message: String| NotifyError::Failed {
        channel: channel.name.clone(),
        attempts,
        message,
    };
    let attempts = policy.attempts.max(1);
    let mut last = String::new();
    for attempt in 1..=attempts {
        let timeout = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(failed(
                        attempt - 1,
                        if last.is_empty() {
                            "the deadline passed before the first attempt".to_owned()
                        } else {
                            format!("{last}; the deadline passed before the next attempt")
                        },
                    ));
                }
                left.min(policy.attempt_timeout)
            }
            None => policy.attempt_timeout,
        };
        match attempt_once(channel, n, timeout).await {
            Ok(()) => return Ok(attempt),
            Err(AttemptError::Permanent(m)) => return Err(failed(attempt, m)),
            Err(AttemptError::Transient(m)) => last = m,
        }
        if attempt < attempts {
            let wait = policy.backoff(attempt);
            if let Some(d) = deadline
                && Instant::now() + wait >= d
            {
                return Err(failed(
                    attempt,
                    format!("{last}; the deadline leaves no time for another attempt"),
                ));
            }
            tokio::time::sleep(wait).await;
        }
    }
    Err(failed(attempts, last))
}

async fn attempt_once(
    channel: &Channel,
    n: &Notification,
    timeout: Duration,
) -> Result<(), AttemptError> {
    match &channel.kind {
        ChannelKind::Webhook { url, secret } => {
            let body = webhook_body(n);
            let mut headers = vec![
                ("Content-Type", "application/json".to_owned()),
                ("X-Cutover-Event", event_name(n.event).to_owned()),
                ("X-Cutover-Delivery", n.seq.to_string()),
            ];
            if let Some(secret) = secret {
                let ts = chrono::Utc::now().timestamp();
                headers.push((TIMESTAMP_HEADER, ts.to_string()));
                headers.push((
                    SIGNATURE_HEADER,
                    sign(secret.expose().as_bytes(), ts, &body),
                ));
            }
            post(url, &headers, body, timeout).await
        }
        ChannelKind::Slack { url } => {
            let body = serde_json::to_vec(&slack_body(n)).unwrap_or_default();
            let headers = [("Content-Type", "application/json".to_owned())];
            post(url.expose(), &headers, body, timeout).await
        }
        ChannelKind::Email(target) => send_mail(target, n, timeout).await,
    }
}

async fn post(
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(), AttemptError> {
    match http::post(url, headers, body, timeout).await {
        Ok(r) if (200..300).contains(&r.status) => Ok(()),
        Ok(r) => {
            let message = format!(
                "the receiver answered {}{}",
                r.status,
                if r.body.trim().is_empty() {
                    String::new()
                } else {
                    format!(": {}", r.body.trim())
                }
            );
            if r.status >= 500 || r.status == 429 || r.status == 408 {
                Err(AttemptError::Transient(message))
            } else {
                Err(AttemptError::Permanent(message))
            }
        }
        Err(e @ http::HttpError::BadUrl { .. }) => Err(AttemptError::Permanent(e.to_string())),
        Err(e) => Err(AttemptError::Transient(e.to_string())),
    }
}

/// The kebab-case name of an event, as in `cutover.toml` (`rolled-back`).
pub(crate) fn event_name(e: Event) -> &'static str {
    match e {
        Event::Notice => "notice",
        Event::Released => "released",
        Event::Delivered => "delivered",
        Event::Failed => "failed",
        Event::RolledBack => "rolled-back",
        Event::Incident => "incident",
    }
}

/// The generic webhook's JSON body: the notification itself.
pub(crate) fn webhook_body(n: &Notification) -> Vec<u8> {
    serde_json::to_vec(n).unwrap_or_default()
}

/// A Slack incoming-webhook message: `text` (the fallback shown in notifications) and Block Kit
/// `blocks` (a header, the summary, a link when there is one).
pub(crate) fn slack_body(n: &Notification) -> Value {
    // Slack limits header text to 150 characters and section text to 3000.
    let header: String = n.title.chars().take(150).collect();
    let summary: String = n.summary.chars().take(3000).collect();
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": header, "emoji": false}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": slack_escape(&summary)}}),
    ];
    if let Some(url) = &n.url {
        blocks.push(json!({"type": "context", "elements": [
            {"type": "mrkdwn", "text": format!("<{}|Details>", slack_escape(url))}
        ]}));
    }
    json!({
        "text": format!("{}: {}", n.title, n.summary),
        "blocks": blocks,
    })
}

/// Slack's mrkdwn escapes: `&`, `<` and `>` only.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The mail's subject and plain text body.
pub(crate) fn mail_text(n: &Notification) -> (String, String, bool) {
    let subject = format!("[cutover] {}", n.title);
    let mut body = format!("{}\n\n{}\n", n.title, n.summary);
    match n.event {
        Event::Notice => {
            if let Some(content) = n.payload.get("content").and_then(Value::as_str) {
                if n.payload.get("format").and_then(Value::as_str) == Some("html") {
                    // The notice is a whole HTML document: send it as it is.
                    return (subject, content.to_owned(), true);
                }
                body = format!("{content}\n");
            }
        }
        Event::Released => {
            if let Some(notes) = n.payload.get("notes").and_then(Value::as_str) {
                body.push('\n');
                body.push_str(notes);
                body.push('\n');
            }
        }
        Event::Delivered => {
            if let Some(proofs) = n.payload.get("proofs").and_then(Value::as_array) {
                body.push_str(
                    "\nProof of delivery (signed in-toto statements, kept in the audit log):\n",
                );
                for p in proofs {
                    body.push_str(&format!(
                        "  - {} at {}\n",
                        p.get("host").and_then(Value::as_str).unwrap_or("?"),
                        p.get("created_at").and_then(Value::as_str).unwrap_or("?")
                    ));
                }
            }
        }
        _ => {}
    }
    if let Some(url) = &n.url {
        body.push_str(&format!("\n{url}\n"));
    }
    (subject, body, false)
}

/// How many PEM certificates `pem` holds.
fn pem_certificates(pem: &str) -> usize {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter(Result::is_ok)
        .count()
}

/// TLS to `target.host` (its certificate must name it), trusting the system's roots, or only
/// `target.ca_pem` when set.
fn tls_parameters(target: &EmailTarget) -> Result<TlsParameters, AttemptError> {
    let mut builder = TlsParameters::builder(target.host.clone());
    if let Some(pem) = &target.ca_pem {
        let ca = Certificate::from_pem(pem.as_bytes())
            .map_err(|e| AttemptError::Permanent(format!("smtp.ca_file is not usable: {e}")))?;
        builder = builder
            .certificate_store(CertificateStore::None)
            .add_root_certificate(ca);
    }
    builder.build_rustls().map_err(|e| {
        AttemptError::Permanent(format!("smtp {}: cannot set up TLS: {e}", target.host))
    })
}

async fn send_mail(
    target: &EmailTarget,
    n: &Notification,
    timeout: Duration,
) -> Result<(), AttemptError> {
    let permanent = |what: String| AttemptError::Permanent(what);
    let from: Mailbox = target.from.parse().map_err(|e| {
        permanent(format!(
            "the sender `{}` is not an address: {e}",
            target.from
        ))
    })?;
    let mut recipients: Vec<&String> = target.to.iter().collect();
    if n.event == Event::Notice {
        for r in &target.notice_to {
            if !recipients.contains(&r) {
                recipients.push(r);
            }
        }
    }
    if recipients.is_empty() {
        return Err(permanent(
            "no recipients (set notify.email.to, or notify.recipients for the notice)".to_owned(),
        ));
    }
    let (subject, body, html) = mail_text(n);
    let domain = target.from.rsplit('@').next().unwrap_or("cutover.invalid");
    let mut builder = Message::builder()
        .from(from)
        .subject(subject)
        .message_id(Some(format!(
            "<cutover.{}.{}@{domain}>",
            n.seq,
            event_name(n.event)
        )))
        .header(if html {
            ContentType::TEXT_HTML
        } else {
            ContentType::TEXT_PLAIN
        });
    for r in recipients {
        let to: Mailbox = r
            .parse()
            .map_err(|e| permanent(format!("the recipient `{r}` is not an address: {e}")))?;
        builder = builder.to(to);
    }
    let message = builder
        .body(body)
        .map_err(|e| permanent(format!("cannot build the mail: {e}")))?;
    let tls = match target.tls {
        SmtpTls::None => Tls::None,
        // Required, never opportunistic: a relay that offers no STARTTLS gets nothing in clear.
        SmtpTls::Starttls => Tls::Required(tls_parameters(target)?),
        SmtpTls::Tls => Tls::Wrapper(tls_parameters(target)?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&target.host)
        .tls(tls)
        .port(target.port)
        .timeout(Some(timeout));
    if let Some((user, password)) = &target.credentials {
        builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
    }
    let transport = builder.build();
    let sent = tokio::time::timeout(timeout, transport.send(message)).await;
    match sent {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            let message = format!("smtp {}:{}: {e}", target.host, target.port);
            if e.is_permanent() {
                Err(AttemptError::Permanent(message))
            } else {
                Err(AttemptError::Transient(message))
            }
        }
        Err(_) => Err(AttemptError::Transient(format!(
            "smtp {}:{}: no answer within {timeout:?}",
            target.host, target.port
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_bounded() {
        let p = RetryPolicy {
            attempts: 10,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(700),
            attempt_timeout: Duration::from_secs(1),
        };
        let waits: Vec<u128> = (1..=6).map(|a| p.backoff(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 700, 700, 700]);
        assert_eq!(p.backoff(u32::MAX), Duration::from_millis(700));
    }
}
