//! The dispatcher: for each channel, the audit events above its cursor, turned into notifications
//! and delivered; `notification.sent` / `notification.failed` recorded; the cursor moved on.
//!
//! Each notification is *claimed* before it is sent: the cursor is moved past it with a
//! compare-and-set, and only the replica whose move succeeded delivers it. So two server replicas
//! never send the same notification twice; the price is that a crash between the claim and the
//! delivery loses that one notification (at most once, never twice, never blocking).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use cutover_config::{Config, Notify, Secret, SecretError, SecretValue};
use cutover_store::{Audit, AuditEvent, AuditFilter, Store};
use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;

use crate::channel::{Channel, RetryPolicy, channels, deliver_with, event_name};
use crate::{Notification, Resolve, from_audit};

/// How long the CLI waits for notifications at the end of a command.
pub const DEFAULT_CLI_DEADLINE: Duration = Duration::from_secs(5);

/// How the dispatcher works.
#[derive(Debug, Clone)]
pub struct DispatchOptions {
    /// Retries per notification.
    pub retry: RetryPolicy,
    /// The actor of the `notification.*` audit events.
    pub actor: String,
    /// Audit events read per query.
    pub batch: i64,
    /// Events older than this are not sent (a channel added today does not get last year's
    /// history; a server that was down for a week does not flood anyone); `None`: no limit.
    pub max_age: Option<chrono::Duration>,
    /// The dashboard's address; notifications link to `<base_url>/audit?seq=<seq>` when set.
    pub base_url: Option<String>,
}

impl Default for DispatchOptions {
    fn default() -> Self {
        DispatchOptions {
            retry: RetryPolicy::default(),
            actor: "cutover-notify".to_owned(),
            batch: 200,
            max_age: Some(chrono::Duration::hours(24)),
            base_url: None,
        }
    }
}

/// What happened on one channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChannelReport {
    /// The channel's name.
    pub channel: String,
    /// The audit seqs delivered.
    pub sent: Vec<i64>,
    /// The audit seqs whose delivery failed for good, with why.
    pub failed: Vec<(i64, String)>,
    /// The cursor after this run.
    pub cursor: i64,
    /// Why the channel was not (fully) served: its configuration, or the store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What one dispatcher run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DispatchReport {
    /// One per channel.
    pub channels: Vec<ChannelReport>,
    /// The deadline stopped the run with events left (the next run sends them).
    pub deadline_reached: bool,
}

impl DispatchReport {
    /// Notifications delivered.
    pub fn sent(&self) -> usize {
        self.channels.iter().map(|c| c.sent.len()).sum()
    }

    /// Notifications that failed for good.
    pub fn failed(&self) -> usize {
        self.channels.iter().map(|c| c.failed.len()).sum()
    }

    /// One line per failed notification and per channel that could not be served (for warnings).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.channels {
            if let Some(e) = &c.error {
                out.push(format!("notification channel {}: {e}", c.channel));
            }
            for (seq, e) in &c.failed {
                out.push(format!("notification of audit event {seq} failed: {e}"));
            }
        }
        out
    }
}

/// Resolves secrets from the process environment and files relative to `project_dir`.
pub fn env_resolver(
    project_dir: &Path,
) -> impl Fn(&Secret) -> Result<SecretValue, SecretError> + Sync + '_ {
    move |secret: &Secret| secret.resolve(project_dir, &|k| std::env::var(k).ok())
}

/// Delivers what is pending for every channel of `notify`, until done or `deadline`. Never fails:
/// problems are in the report (a notification never blocks a deployment).
pub async fn dispatch_pending(
    store: &dyn Store,
    notify: &Notify,
    resolve: Resolve<'_>,
    deadline: Instant,
) -> DispatchReport {
    dispatch_pending_with(
        store,
        notify,
        resolve,
        &DispatchOptions::default(),
        deadline,
    )
    .await
}

/// [`dispatch_pending`] with options.
pub async fn dispatch_pending_with(
    store: &dyn Store,
    notify: &Notify,
    resolve: Resolve<'_>,
    options: &DispatchOptions,
    deadline: Instant,
) -> DispatchReport {
    let (chans, errors) = channels(notify, resolve);
    let mut report = dispatch_channels(store, &chans, options, deadline).await;
    for e in errors {
        let cursor = store.notification_cursor(&e.channel).await.unwrap_or(0);
        report.channels.push(ChannelReport {
            channel: e.channel,
            cursor,
            error: Some(e.message),
            ..ChannelReport::default()
        });
    }
    report
}

/// The one call for the end of a CLI command (deploy, rollback, release, notice --send,
/// incident): the project's channels, secrets from the environment and `project_dir`, a
/// [`DEFAULT_CLI_DEADLINE`]. An empty report when there is no `[notify]`.
pub async fn dispatch_for_cli(
    store: &dyn Store,
    config: &Config,
    project_dir: &Path,
) -> DispatchReport {
    let Some(notify) = &config.notify else {
        return DispatchReport::default();
    };
    let resolve = env_resolver(project_dir);
    dispatch_pending(
        store,
        notify,
        &resolve,
        Instant::now() + DEFAULT_CLI_DEADLINE,
    )
    .await
}

/// Delivers what is pending for `chans` (already resolved) until done or `deadline`. Channels
/// are served concurrently, so that a slow or dead one does not use up the others' time.
pub async fn dispatch_channels(
    store: &dyn Store,
    chans: &[Channel],
    options: &DispatchOptions,
    deadline: Instant,
) -> DispatchReport {
    let runs = chans.iter().map(|ch| async move {
        let mut r = ChannelReport {
            channel: ch.name.clone(),
            ..ChannelReport::default()
        };
        // Each channel builds its own notifications: the store reads are cheap next to delivery.
        let mut cache = BTreeMap::new();
        let done = match serve_channel(store, ch, options, deadline, &mut r, &mut cache).await {
            Ok(done) => done,
            Err(e) => {
                r.error = Some(e);
                true
            }
        };
        (r, done)
    });
    let mut report = DispatchReport::default();
    for (r, done) in futures_util::future::join_all(runs).await {
        report.deadline_reached |= !done;
        report.channels.push(r);
    }
    report
}

/// How long a round in flight at shutdown may take to finish (well inside the server's grace).
const FINISH_ON_SHUTDOWN: Duration = Duration::from_secs(5);

/// The server's dispatcher: runs [`dispatch_channels`] every `interval` (each run bounded by
/// `max(interval, 30 s)`) until `shutdown` completes, handing each report to `on_report` (for
/// metrics and logs); a round in flight then gets [`FINISH_ON_SHUTDOWN`] to save its cursors.
/// Secrets are resolved once, by the caller, into `chans`.
pub async fn dispatch_loop<F, R>(
    store: std::sync::Arc<dyn Store>,
    chans: Vec<Channel>,
    options: DispatchOptions,
    interval: Duration,
    shutdown: F,
    mut on_report: R,
) where
    F: Future<Output = ()>,
    R: FnMut(&DispatchReport),
{
    tokio::pin!(shutdown);
    let budget = interval.max(Duration::from_secs(30));
    loop {
        let run = dispatch_channels(&*store, &chans, &options, Instant::now() + budget);
        tokio::pin!(run);
        tokio::select! {
            () = &mut shutdown => {
                // A round cut off after a delivery but before its cursor is saved sends that
                // notification again after the restart: let it finish, briefly.
                if let Ok(report) = tokio::time::timeout(FINISH_ON_SHUTDOWN, &mut run).await {
                    on_report(&report);
                }
                return;
            }
            report = &mut run => on_report(&report),
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Serves one channel; Ok(true) when it caught up, Ok(false) when the deadline stopped it.
async fn serve_channel(
    store: &dyn Store,
    ch: &Channel,
    options: &DispatchOptions,
    deadline: Instant,
    r: &mut ChannelReport,
    cache: &mut BTreeMap<i64, Option<Notification>>,
) -> Result<bool, String> {
    let store_err = |e: cutover_store::StoreError| format!("the store: {e}");
    let mut cursor = store
        .notification_cursor(&ch.name)
        .await
        .map_err(store_err)?;
    r.cursor = cursor;
    'batches: loop {
        if Instant::now() >= deadline {
            return Ok(false);
        }
        let since = options.max_age.map(|age| chrono::Utc::now() - age);
        let events = store
            .list_audit(&AuditFilter {
                since,
                after_seq: Some(cursor),
                limit: Some(options.batch.max(1)),
                ..AuditFilter::default()
            })
            .await
            .map_err(store_err)?;
        let Some(last) = events.last().map(|e| e.seq) else {
            return Ok(true);
        };
        for ev in &events {
            let Some(n) = notification_for(store, ev, options, cache).await else {
                continue;
            };
            if !ch.wants(n.event) {
                continue;
            }
            if Instant::now() >= deadline {
                // Unclaimed: the next run sends it. The skipped events before it may go.
                advance(store, &ch.name, &mut cursor, ev.seq - 1).await?;
                r.cursor = cursor;
                return Ok(false);
            }
            // Claim it (and the skipped events before it) before sending.
            if !store
                .advance_notification_cursor(&ch.name, cursor, ev.seq)
                .await
                .map_err(store_err)?
            {
                // Another replica moved the cursor: continue from where it is now.
                cursor = store
                    .notification_cursor(&ch.name)
                    .await
                    .map_err(store_err)?;
                r.cursor = cursor;
                continue 'batches;
            }
            cursor = ev.seq;
            r.cursor = cursor;
            let outcome = deliver_with(ch, &n, &options.retry, Some(deadline)).await;
            let (action, attempts, error) = match &outcome {
                Ok(attempts) => ("notification.sent", *attempts, None),
                Err(e) => ("notification.failed", e.attempts(), Some(e.to_string())),
            };
            let audit = Audit::new(
                &options.actor,
                action,
                format!("notification:{}", ch.name),
                json!({
                    "channel": ch.name,
                    "event": event_name(n.event),
                    "seq": n.seq,
                    "attempts": attempts,
                    "error": error,
                }),
            );
            // The delivery happened (or not) either way; a store that refuses the record must not
            // make it happen again, so the error is reported, and the run goes on.
            if let Err(e) = store.append_audit(&audit).await {
                r.error = Some(format!("cannot record {action} for seq {}: {e}", n.seq));
            }
            match error {
                None => r.sent.push(n.seq),
                Some(e) => r.failed.push((n.seq, e)),
            }
        }
        // Everything left in the batch was skipped: move past it.
        advance(store, &ch.name, &mut cursor, last).await?;
        r.cursor = cursor;
    }
}

/// Moves the cursor over skipped events up to `to` (when another replica moved it meanwhile,
/// takes its position).
async fn advance(
    store: &dyn Store,
    channel: &str,
    cursor: &mut i64,
    to: i64,
) -> Result<(), String> {
    if to <= *cursor {
        return Ok(());
    }
    let moved = store
        .advance_notification_cursor(channel, *cursor, to)
        .await
        .map_err(|e| format!("the store: {e}"))?;
    *cursor = if moved {
        to
    } else {
        store
            .notification_cursor(channel)
            .await
            .map_err(|e| format!("the store: {e}"))?
    };
    Ok(())
}

async fn notification_for(
    store: &dyn Store,
    ev: &AuditEvent,
    options: &DispatchOptions,
    cache: &mut BTreeMap<i64, Option<Notification>>,
) -> Option<Notification> {
    // The dispatcher's own records never notify (that would loop).
    if ev.action.starts_with("notification.") {
        return None;
    }
    if let Some(n) = cache.get(&ev.seq) {
        return n.clone();
    }
    let mut n = from_audit(ev, store).await;
    if let (Some(n), Some(base)) = (n.as_mut(), &options.base_url) {
        n.url = Some(format!(
            "{}/audit?seq={}",
            base.trim_end_matches('/'),
            n.seq
        ));
    }
    cache.insert(ev.seq, n.clone());
    n
}
