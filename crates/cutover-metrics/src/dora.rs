//! The DORA arithmetic over plain records (no IO): which commits each deployment brought, which
//! deployments failed and how service was restored, and the four metrics with their bands.
//!
//! Every link is an explicit record (SERVER-SPEC "DORA metrics"), never guessed from timestamps:
//! - a deployment's commits are the commits of its release and of every earlier release (by
//!   `created_at`, then version) not yet deployed successfully to that environment;
//! - a change deployment failed when it (a) ended `rolled_back`, (b) was reverted by a later
//!   rollback deployment (`reverts`), (c) is an incident's `caused_by`, or (d) is named by a
//!   hotfix release's `release.link` and a deployment of that hotfix followed it;
//! - recovery runs from the failure (the first linked incident's `opened_at`, else the moment a
//!   rolled-back deployment failed, else the deployment's `finished_at`) to the first restoration
//!   at or after it (the rollback, the incident's `restored_by` deployment or its resolution, the
//!   hotfix deployment).
//!
//! A deployment counts in the period `[since, until)` by its `finished_at`; so do its failure and
//! its recovery. Rollback deployments (`reverts` set) restore service but ship no change: they are
//! counted apart, never as deployments of the frequency or the failure rate.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Datelike as _, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::bands::{self, Band};
use crate::{MetricsQuery, Timestamp};

/// Everything the metrics are computed from: plain records, so that tests can build histories by
/// hand. Order does not matter; records of other environments are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub releases: Vec<ReleaseRecord>,
    pub deployments: Vec<DeploymentRecord>,
    pub incidents: Vec<IncidentRecord>,
    pub links: Vec<ReleaseLink>,
}

/// A release and the commits it lists (`Release.changes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    pub version: String,
    pub created_at: Timestamp,
    pub commits: Vec<CommitRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRecord {
    /// The full commit id.
    pub id: String,
    /// The commit's (author) time.
    pub time: Timestamp,
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    pub id: i64,
    pub environment: String,
    pub version: String,
    /// The deploy state name (`live`, `rolled_back`, `failed`, …).
    pub state: String,
    /// The deployment this rollback deployment reverts.
    pub reverts: Option<i64>,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// When it moved to `failed` (its `deployment.transition` event), for rolled-back ones.
    pub failed_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentRecord {
    pub id: i64,
    pub environment: String,
    pub caused_by: Option<i64>,
    pub restored_by: Option<i64>,
    pub opened_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
}

/// An explicit link from a hotfix release to the deployment it fixes (audit `release.link`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseLink {
    pub version: String,
    pub fixes_deployment: i64,
}

/// The four metrics for one environment and period, with the series behind the charts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoraReport {
    pub environment: String,
    pub since: Timestamp,
    pub until: Timestamp,
    /// The period's length in days.
    pub days: f64,
    pub deployment_frequency: DeploymentFrequency,
    pub lead_time: LeadTime,
    pub change_failure_rate: ChangeFailureRate,
    pub recovery_time: RecoveryTime,
    pub series: Series,
    /// Records that could not be used (e.g. a commit time that is not RFC 3339), and why.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentFrequency {
    /// Successful change deployments (`live`, not rollbacks) finished in the period.
    pub deployments: u64,
    /// Successful rollback deployments finished in the period (not counted above).
    pub rollbacks: u64,
    /// `None` for an empty period.
    pub per_day: Option<f64>,
    pub per_week: Option<f64>,
    /// `None` when there was no deployment to judge by.
    pub band: Option<Band>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadTime {
    /// Commits first deployed in the period, oldest deployment first.
    pub commits: Vec<CommitLeadTime>,
    pub median_seconds: Option<f64>,
    /// Nearest-rank 90th percentile.
    pub p90_seconds: Option<f64>,
    pub band: Option<Band>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitLeadTime {
    pub commit: String,
    pub summary: String,
    pub committed_at: Timestamp,
    /// The release whose changes list the commit.
    pub release: String,
    /// The first successful deployment to the environment that contained it.
    pub deployment: i64,
    pub deployed_at: Timestamp,
    /// `deployed_at - committed_at` in whole seconds (0 when the commit claims to be later).
    pub lead_time_seconds: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeFailureRate {
    /// Change deployments (not rollbacks) that finished in the period `live` or `rolled_back`.
    pub deployments: u64,
    /// Those of them that failed (see [`FailedDeployment::reasons`]).
    pub failures: u64,
    /// `failures / deployments`, in [0, 1]; `None` without deployments.
    pub rate: Option<f64>,
    pub band: Option<Band>,
    pub failed: Vec<FailedDeployment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedDeployment {
    pub deployment: i64,
    pub version: String,
    pub finished_at: Timestamp,
    pub reasons: Vec<FailureReason>,
    /// When the failure began (see the module documentation).
    pub failed_at: Timestamp,
    /// The deployment that restored service (`None` when it was an incident's resolution without
    /// one, or when service is not restored yet).
    pub restored_by: Option<i64>,
    pub restored_at: Option<Timestamp>,
    pub recovery_seconds: Option<i64>,
}

/// Why a deployment counts as a change failure: one entry per explicit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FailureReason {
    /// It ended `rolled_back` (an automatic or manual rollback inside the deployment).
    RolledBack,
    /// A later rollback deployment reverted it.
    Reverted { by: i64 },
    /// An incident names it as its cause.
    Incident { id: i64 },
    /// A hotfix release links to it (`release.link`) and was deployed after it.
    Hotfix { version: String, deployment: i64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryTime {
    /// Median over the failed deployments of the period whose service was restored.
    pub median_seconds: Option<f64>,
    pub restored: u64,
    /// Failed deployments without a restoration yet.
    pub unrestored: u64,
    pub band: Option<Band>,
}

/// Per-day and per-week (Monday, UTC) buckets over the period, for charts. Buckets are aligned to
/// UTC midnight; the first and last may be partly outside the period (only what happened inside
/// the period counts). At most [`MAX_DAILY_POINTS`] / [`MAX_WEEKLY_POINTS`] of the newest buckets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub daily: Vec<SeriesPoint>,
    pub weekly: Vec<SeriesPoint>,
}

pub const MAX_DAILY_POINTS: i64 = 731;
pub const MAX_WEEKLY_POINTS: i64 = 520;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    pub start: Timestamp,
    pub end: Timestamp,
    /// Successful change deployments finished in the bucket.
    pub deployments: u64,
    /// Change deployments finished in the bucket (the failure rate's denominator) and failures.
    pub changes: u64,
    pub failures: u64,
    pub change_failure_rate: Option<f64>,
    pub lead_time_median_seconds: Option<f64>,
    pub recovery_median_seconds: Option<f64>,
}

fn in_window(t: Timestamp, q: &MetricsQuery) -> bool {
    t >= q.since && t < q.until
}

fn seconds(from: Timestamp, to: Timestamp) -> i64 {
    (to - from).num_seconds()
}

const LIVE: &str = "live";
const ROLLED_BACK: &str = "rolled_back";

fn succeeded(d: &DeploymentRecord) -> Option<Timestamp> {
    (d.state == LIVE).then_some(d.finished_at).flatten()
}

/// Computes the report for `q` from `records` (pure; never fails: unusable records are skipped and
/// named in `warnings`).
#[must_use]
pub fn compute_from(records: &History, q: &MetricsQuery) -> DoraReport {
    let mut warnings = Vec::new();
    let env: Vec<&DeploymentRecord> = records
        .deployments
        .iter()
        .filter(|d| d.environment == q.environment)
        .collect();
    let by_id: HashMap<i64, &DeploymentRecord> = env.iter().map(|d| (d.id, *d)).collect();

    // --- deployment frequency ---
    let mut deployments = 0u64;
    let mut rollbacks = 0u64;
    let mut deploy_times = Vec::new();
    for d in &env {
        if let Some(at) = succeeded(d).filter(|at| in_window(*at, q)) {
            if d.reverts.is_some() {
                rollbacks += 1;
            } else {
                deployments += 1;
                deploy_times.push(at);
            }
        }
    }
    let days = (q.until - q.since).num_seconds() as f64 / bands::DAY;
    let per_day = (days > 0.0).then(|| deployments as f64 / days);
    let deployment_frequency = DeploymentFrequency {
        deployments,
        rollbacks,
        per_day,
        per_week: per_day.map(|r| r * 7.0),
        band: per_day
            .filter(|_| deployments > 0)
            .and_then(bands::frequency_band),
    };

    // --- lead time for changes ---
    let commits = lead_times(records, &env, q, &mut warnings);
    let lead_values: Vec<f64> = commits.iter().map(|c| c.lead_time_seconds as f64).collect();
    let lead_median = median(&lead_values);
    let lead_time = LeadTime {
        median_seconds: lead_median,
        p90_seconds: percentile(&lead_values, 0.9),
        band: lead_median.and_then(bands::lead_time_band),
        commits,
    };

    // --- change failure rate and recovery ---
    let mut changes = Vec::new();
    let mut failed = Vec::new();
    for d in &env {
        let Some(finished) = d.finished_at else {
            continue;
        };
        if d.reverts.is_some()
            || !(d.state == LIVE || d.state == ROLLED_BACK)
            || !in_window(finished, q)
        {
            continue;
        }
        changes.push((finished, *d));
        if let Some(f) = failure(records, &env, &by_id, d, finished) {
            failed.push(f);
        }
    }
    changes.sort_by_key(|(at, d)| (*at, d.id));
    failed.sort_by_key(|f| (f.finished_at, f.deployment));
    let change_count = changes.len() as u64;
    let failures = failed.len() as u64;
    let rate = (change_count > 0).then(|| failures as f64 / change_count as f64);
    let recoveries: Vec<f64> = failed
        .iter()
        .filter_map(|f| f.recovery_seconds)
        .map(|s| s as f64)
        .collect();
    let recovery_median = median(&recoveries);
    let recovery_time = RecoveryTime {
        median_seconds: recovery_median,
        restored: recoveries.len() as u64,
        unrestored: failed.iter().filter(|f| f.restored_at.is_none()).count() as u64,
        band: recovery_median.and_then(bands::recovery_band),
    };

    let series = series(q, &deploy_times, &changes, &failed, &lead_time.commits);
    let change_failure_rate = ChangeFailureRate {
        deployments: change_count,
        failures,
        rate,
        band: rate.and_then(bands::change_failure_band),
        failed,
    };
    DoraReport {
        environment: q.environment.clone(),
        since: q.since,
        until: q.until,
        days,
        deployment_frequency,
        lead_time,
        change_failure_rate,
        recovery_time,
        series,
        warnings,
    }
}

/// The commits first deployed to the environment in the period, walking every successful
/// deployment in order of `finished_at` and handing each the commits of its release and of the
/// earlier releases not yet deployed.
fn lead_times(
    records: &History,
    env: &[&DeploymentRecord],
    q: &MetricsQuery,
    warnings: &mut Vec<String>,
) -> Vec<CommitLeadTime> {
    let mut releases: Vec<&ReleaseRecord> = records.releases.iter().collect();
    releases.sort_by(|a, b| (a.created_at, &a.version).cmp(&(b.created_at, &b.version)));
    let position: HashMap<&str, usize> = releases
        .iter()
        .enumerate()
        .map(|(i, r)| (r.version.as_str(), i))
        .collect();
    let mut deployed = vec![false; releases.len()];
    let mut seen: HashSet<&str> = HashSet::new();
    let mut successes: Vec<(Timestamp, &DeploymentRecord)> = env
        .iter()
        .filter_map(|d| succeeded(d).map(|at| (at, *d)))
        .collect();
    successes.sort_by_key(|(at, d)| (*at, d.id));
    let mut out = Vec::new();
    for (at, d) in successes {
        let Some(&index) = position.get(d.version.as_str()) else {
            if in_window(at, q) {
                warnings.push(format!(
                    "deployment {} deployed release {} which is not recorded; its commits are unknown",
                    d.id, d.version
                ));
            }
            continue;
        };
        for (j, release) in releases.iter().enumerate().take(index + 1) {
            if std::mem::replace(&mut deployed[j], true) {
                continue;
            }
            for c in &release.commits {
                if !seen.insert(c.id.as_str()) || !in_window(at, q) {
                    continue;
                }
                out.push(CommitLeadTime {
                    commit: c.id.clone(),
                    summary: c.summary.clone(),
                    committed_at: c.time,
                    release: release.version.clone(),
                    deployment: d.id,
                    deployed_at: at,
                    lead_time_seconds: seconds(c.time, at).max(0),
                });
            }
        }
    }
    out
}

/// Whether change deployment `d` (finished at `finished`) failed, why, and how it recovered.
fn failure(
    records: &History,
    env: &[&DeploymentRecord],
    by_id: &HashMap<i64, &DeploymentRecord>,
    d: &DeploymentRecord,
    finished: Timestamp,
) -> Option<FailedDeployment> {
    let mut reasons = Vec::new();
    // (failure start, restoration time, restoring deployment)
    let mut restorations: Vec<(Timestamp, Option<i64>)> = Vec::new();
    let rolled_back = d.state == ROLLED_BACK;
    if rolled_back {
        reasons.push(FailureReason::RolledBack);
        restorations.push((finished, Some(d.id)));
    }
    let mut reverters: Vec<&&DeploymentRecord> =
        env.iter().filter(|r| r.reverts == Some(d.id)).collect();
    reverters.sort_by_key(|r| (r.created_at, r.id));
    for r in reverters {
        reasons.push(FailureReason::Reverted { by: r.id });
        if let Some(at) = succeeded(r) {
            restorations.push((at, Some(r.id)));
        }
    }
    let mut incidents: Vec<&IncidentRecord> = records
        .incidents
        .iter()
        .filter(|i| i.caused_by == Some(d.id))
        .collect();
    incidents.sort_by_key(|i| (i.opened_at, i.id));
    for i in &incidents {
        reasons.push(FailureReason::Incident { id: i.id });
        let by = i.restored_by.and_then(|id| by_id.get(&id));
        match by.and_then(|r| succeeded(r).map(|at| (at, r.id))) {
            Some((at, id)) => restorations.push((at, Some(id))),
            None => {
                if let Some(at) = i.resolved_at {
                    restorations.push((at, None));
                }
            }
        }
    }
    let mut links: Vec<&ReleaseLink> = records
        .links
        .iter()
        .filter(|l| l.fixes_deployment == d.id)
        .collect();
    links.sort_by(|a, b| a.version.cmp(&b.version));
    links.dedup_by(|a, b| a.version == b.version);
    for link in links {
        let mut hotfixes: Vec<&&DeploymentRecord> = env
            .iter()
            .filter(|h| h.id != d.id && h.version == link.version && h.created_at >= d.created_at)
            .collect();
        hotfixes.sort_by_key(|h| (h.created_at, h.id));
        let Some(first) = hotfixes.first() else {
            continue;
        };
        reasons.push(FailureReason::Hotfix {
            version: link.version.clone(),
            deployment: first.id,
        });
        if let Some((at, id)) = hotfixes
            .iter()
            .filter_map(|h| succeeded(h).map(|at| (at, h.id)))
            .filter(|(at, _)| *at >= finished)
            .min()
        {
            restorations.push((at, Some(id)));
        }
    }
    if reasons.is_empty() {
        return None;
    }
    let failed_at = match incidents.first() {
        Some(i) => i.opened_at,
        None if rolled_back => d.failed_at.unwrap_or(d.created_at),
        None => finished,
    };
    let restored = restorations
        .into_iter()
        .filter(|(at, _)| *at >= failed_at)
        .min_by_key(|(at, by)| (*at, *by));
    Some(FailedDeployment {
        deployment: d.id,
        version: d.version.clone(),
        finished_at: finished,
        reasons,
        failed_at,
        restored_by: restored.and_then(|(_, by)| by),
        restored_at: restored.map(|(at, _)| at),
        recovery_seconds: restored.map(|(at, _)| seconds(failed_at, at)),
    })
}

/// The median (mean of the two middle values for an even count); `None` when empty.
#[must_use]
pub fn median(values: &[f64]) -> Option<f64> {
    let sorted = sorted(values);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some(f64::midpoint(sorted[n / 2 - 1], sorted[n / 2])),
    }
}

/// The nearest-rank percentile `p` (in (0, 1]): the smallest value with at least `p` of the values
/// at or below it; `None` when empty.
#[must_use]
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let sorted = sorted(values);
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Bucket boundaries: `len` long, the first aligned at or before `since` (UTC midnight, and a
/// Monday for weeks), the newest `max` of them up to `until`.
fn buckets(q: &MetricsQuery, len: Duration, weekly: bool, max: i64) -> Vec<(Timestamp, Timestamp)> {
    let midnight = q
        .since
        .date_naive()
        .and_time(chrono::NaiveTime::MIN)
        .and_utc();
    let back = if weekly {
        i64::from(q.since.weekday().num_days_from_monday())
    } else {
        0
    };
    let Some(mut start) = midnight.checked_sub_signed(Duration::days(back)) else {
        return Vec::new();
    };
    if q.until <= q.since {
        return Vec::new();
    }
    let span = (q.until - start).num_seconds();
    let step = len.num_seconds();
    let count = span / step + i64::from(span % step != 0);
    if count > max {
        match start.checked_add_signed(len * i32::try_from(count - max).unwrap_or(i32::MAX)) {
            Some(s) => start = s,
            None => return Vec::new(),
        }
    }
    let mut out = Vec::new();
    while start < q.until {
        let Some(end) = start.checked_add_signed(len) else {
            break;
        };
        out.push((start, end));
        start = end;
    }
    out
}

/// What one series bucket accumulates.
#[derive(Default)]
struct Bucket {
    deployments: u64,
    changes: u64,
    failures: u64,
    leads: Vec<f64>,
    recoveries: Vec<f64>,
}

fn series(
    q: &MetricsQuery,
    deploy_times: &[Timestamp],
    changes: &[(Timestamp, &DeploymentRecord)],
    failed: &[FailedDeployment],
    commits: &[CommitLeadTime],
) -> Series {
    let failed_ids: HashSet<i64> = failed.iter().map(|f| f.deployment).collect();
    let make = |bounds: Vec<(Timestamp, Timestamp)>| -> Vec<SeriesPoint> {
        let index_of = |at: Timestamp| -> Option<usize> {
            let i = bounds.partition_point(|(start, _)| *start <= at);
            (i > 0 && at < bounds[i - 1].1).then(|| i - 1)
        };
        let mut acc: BTreeMap<usize, Bucket> = BTreeMap::new();
        for at in deploy_times {
            if let Some(i) = index_of(*at) {
                acc.entry(i).or_default().deployments += 1;
            }
        }
        for (at, d) in changes {
            if let Some(i) = index_of(*at) {
                let e = acc.entry(i).or_default();
                e.changes += 1;
                if failed_ids.contains(&d.id) {
                    e.failures += 1;
                }
            }
        }
        for c in commits {
            if let Some(i) = index_of(c.deployed_at) {
                acc.entry(i)
                    .or_default()
                    .leads
                    .push(c.lead_time_seconds as f64);
            }
        }
        for f in failed {
            if let (Some(i), Some(s)) = (index_of(f.finished_at), f.recovery_seconds) {
                acc.entry(i).or_default().recoveries.push(s as f64);
            }
        }
        bounds
            .iter()
            .enumerate()
            .map(|(i, (start, end))| {
                let b = acc.remove(&i).unwrap_or_default();
                SeriesPoint {
                    start: *start,
                    end: *end,
                    deployments: b.deployments,
                    changes: b.changes,
                    failures: b.failures,
                    change_failure_rate: (b.changes > 0)
                        .then(|| b.failures as f64 / b.changes as f64),
                    lead_time_median_seconds: median(&b.leads),
                    recovery_median_seconds: median(&b.recoveries),
                }
            })
            .collect()
    };
    Series {
        daily: make(buckets(q, Duration::days(1), false, MAX_DAILY_POINTS)),
        weekly: make(buckets(q, Duration::days(7), true, MAX_WEEKLY_POINTS)),
    }
}

/// The commits listed in a release's `changes` (the `cutover plan --json` shape: objects with
/// `id`, `time` (RFC 3339) and `summary`). Entries without a readable id or time are skipped and
/// described in `warnings`.
pub fn commits_of(
    version: &str,
    changes: &serde_json::Value,
    warnings: &mut Vec<String>,
) -> Vec<CommitRecord> {
    let Some(list) = changes.as_array() else {
        if !changes.is_null() {
            warnings.push(format!(
                "release {version}: its changes are not a list; its commits are unknown"
            ));
        }
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, change) in list.iter().enumerate() {
        let id = change.get("id").and_then(serde_json::Value::as_str);
        let time = change.get("time").and_then(serde_json::Value::as_str);
        match (id, time) {
            (Some(id), Some(time)) => match DateTime::parse_from_rfc3339(time) {
                Ok(t) => out.push(CommitRecord {
                    id: id.to_owned(),
                    time: t.with_timezone(&Utc),
                    summary: change
                        .get("summary")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                }),
                Err(e) => warnings.push(format!(
                    "release {version}, change {i} ({id}): time `{time}` is not RFC 3339 ({e}); left out"
                )),
            },
            _ => warnings.push(format!(
                "release {version}, change {i}: expected an object with `id` and `time`; left out"
            )),
        }
    }
    out
}
