//! The page handlers: each reads the store (through `cutover_views` where a view exists) and
//! renders one template. Query parameters come from plain GET forms, so every page works without
//! JavaScript and every view has a URL that can be shared.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::Html;
use chrono::Utc;
use cutover_store::{AuditEvent, AuditFilter, DeploymentFilter, JobClass, JobFilter, JobState};
use cutover_views::ViewOptions;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::render::{path_segment, render};
use crate::{WebError, WebState, model};

type Page = Result<Html<String>, WebError>;

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

fn limit_of(limit: Option<i64>) -> i64 {
    limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

/// Empty form fields arrive as `""`: treat them as absent.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn bad(field: &str, message: impl Into<String>) -> WebError {
    WebError::BadRequest {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// The newest audit seq (0 for an empty log): where a page's live updates start.
async fn last_seq(state: &WebState) -> Result<i64, WebError> {
    Ok(state
        .store
        .list_audit(&AuditFilter {
            descending: true,
            limit: Some(1),
            ..AuditFilter::default()
        })
        .await?
        .first()
        .map_or(0, |e| e.seq))
}

/// An audit event as the tables show it.
#[derive(Debug, Serialize)]
struct EventRow {
    seq: i64,
    at: String,
    actor: String,
    action: String,
    subject: String,
    /// `/deployments/7` or `/releases/1.2.0` when the subject names one.
    href: Option<String>,
    summary: String,
    payload: String,
}

fn event_row(e: &AuditEvent) -> EventRow {
    let href = if let Some(id) = e
        .subject
        .strip_prefix("deployment:")
        .or_else(|| e.subject.strip_prefix("deployment/"))
        .filter(|id| id.parse::<i64>().is_ok())
    {
        Some(format!("/deployments/{id}"))
    } else {
        e.subject
            .strip_prefix("release/")
            .or_else(|| e.subject.strip_prefix("release:"))
            .map(|v| format!("/releases/{}", path_segment(v)))
    };
    EventRow {
        seq: e.seq,
        at: e.at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        actor: e.actor.clone(),
        action: e.action.clone(),
        subject: e.subject.clone(),
        href,
        summary: model::summarize(&e.payload),
        payload: serde_json::to_string_pretty(&e.payload).unwrap_or_default(),
    }
}

// --- the environments board ---

pub(crate) async fn board(State(state): State<WebState>) -> Page {
    let now = Utc::now();
    let options = ViewOptions::at(now);
    let status = cutover_views::status(&*state.store, &state.config, None, &options).await?;
    let mut envs = Vec::new();
    for env in &status.environments {
        let current = cutover_views::current_release(&*state.store, &env.name).await?;
        let hosts: Vec<Value> = env
            .hosts
            .iter()
            .map(|h| {
                let slots: Vec<Value> = h
                    .slots
                    .iter()
                    .map(|s| {
                        json!({
                            "slot": s.slot,
                            "version": s.version,
                            "state": s.state,
                            "healthy": s.healthy,
                            "health": s.health,
                            "port": s.port,
                            "since": s.since,
                            "active": h.router.active == Some(s.slot),
                            "weight": h.router.weights.get(&s.slot),
                        })
                    })
                    .collect();
                json!({
                    "name": h.name,
                    "connected": h.connected,
                    "last_seen": h.last_seen,
                    "slots": slots,
                })
            })
            .collect();
        envs.push(json!({
            "name": env.name,
            "release": env.release,
            "live": current.as_ref().map(|d| json!({"id": d.id, "since": d.finished_at, "strategy": d.strategy})),
            "deployment": env.deployment,
            "hosts": hosts,
        }));
    }
    let (agents, host_warnings) = cutover_views::hosts(&*state.store, &options).await?;
    let warnings: Vec<&String> = status.warnings.iter().chain(&host_warnings).collect();
    let after = last_seq(&state).await?;
    render(
        "board.html",
        json!({ "base": state.base_path, "nav": "board", "project": state.config.project.name, "envs": envs, "agents": agents, "warnings": warnings, "after": after }),
    )
    .map(Html)
}

// --- releases ---

pub(crate) async fn releases(State(state): State<WebState>) -> Page {
    let mut live: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in state.config.environments.keys() {
        if let Some(d) = cutover_views::current_release(&*state.store, name).await? {
            live.entry(d.release_version)
                .or_default()
                .push(name.clone());
        }
    }
    let mut rows = Vec::new();
    for r in state.store.list_releases().await?.into_iter().rev() {
        let findings = r.vulns.as_ref().map(|v| model::scan(v).findings.len());
        rows.push(json!({
            "version": r.version,
            "href": format!("/releases/{}", path_segment(&r.version)),
            "kind": r.kind.as_str(),
            "commit": r.commit,
            "created_at": r.created_at,
            "changes": model::changes(&r.changes).len(),
            "components": r.bom.as_ref().map(|b| model::components(b).len()),
            "findings": findings,
            "live_in": live.get(&r.version),
        }));
    }
    render(
        "releases.html",
        json!({ "base": state.base_path, "nav": "releases", "releases": rows }),
    )
    .map(Html)
}

pub(crate) async fn release(State(state): State<WebState>, Path(version): Path<String>) -> Page {
    let release = state
        .store
        .get_release(&version)
        .await?
        .ok_or_else(|| WebError::NotFound {
            what: format!("the release {version}"),
        })?;
    let components = release
        .bom
        .as_ref()
        .map(model::components)
        .unwrap_or_default();
    let licenses = model::license_counts(&components);
    let scan = release.vulns.as_ref().map(model::scan);
    let changes = model::changes(&release.changes);
    let checks = state
        .store
        .list_jobs(&JobFilter {
            release_version: Some(version.clone()),
            ..JobFilter::default()
        })
        .await?;
    let mut deployments = Vec::new();
    for d in state
        .store
        .list_deployments(&DeploymentFilter::default())
        .await?
        .into_iter()
        .filter(|d| d.release_version == version)
    {
        let proofs: Vec<model::ProofRow> = state
            .store
            .list_proofs(d.id)
            .await?
            .iter()
            .map(model::proof_row)
            .collect();
        deployments.push(json!({ "deployment": d, "proofs": proofs }));
    }
    let notices = state.store.list_notices(Some(&version)).await?;
    render(
        "release.html",
        json!({ "base": state.base_path, "nav": "releases", "release": release, "changes": changes, "components": components, "licenses": licenses, "scan": scan, "checks": checks, "deployments": deployments, "notices": notices }),
    )
    .map(Html)
}

// --- deployments ---

#[derive(Debug, Default, Deserialize)]
pub(crate) struct DeploymentsQuery {
    env: Option<String>,
    limit: Option<i64>,
}

pub(crate) async fn deployments(
    State(state): State<WebState>,
    Query(q): Query<DeploymentsQuery>,
) -> Page {
    let env = given(&q.env).map(str::to_owned);
    let limit = limit_of(q.limit);
    let list = state
        .store
        .list_deployments(&DeploymentFilter {
            environment: env.clone(),
            unfinished_only: false,
            limit: Some(limit),
        })
        .await?;
    let after = last_seq(&state).await?;
    let environments: Vec<&String> = state.config.environments.keys().collect();
    render(
        "deployments.html",
        json!({ "base": state.base_path, "nav": "deployments", "deployments": list, "env": env, "environments": environments, "limit": limit, "after": after }),
    )
    .map(Html)
}

pub(crate) async fn deployment(State(state): State<WebState>, Path(id): Path<String>) -> Page {
    let id: i64 = id.parse().map_err(|_| WebError::NotFound {
        what: format!("the deployment {id}"),
    })?;
    let deployment = state
        .store
        .get_deployment(id)
        .await?
        .ok_or_else(|| WebError::NotFound {
            what: format!("the deployment {id}"),
        })?;
    let steps: Vec<Value> = state
        .store
        .list_deployment_steps(id)
        .await?
        .into_iter()
        .map(|s| {
            json!({
                "id": s.id,
                "step": s.step,
                "intent": serde_json::to_string_pretty(&s.intent).unwrap_or_default(),
                "result": s.result.as_ref().map(|r| serde_json::to_string_pretty(r).unwrap_or_default()),
                "at": s.at,
                "finished_at": s.finished_at,
            })
        })
        .collect();
    let proofs: Vec<model::ProofRow> = state
        .store
        .list_proofs(id)
        .await?
        .iter()
        .map(model::proof_row)
        .collect();
    let subject = format!("deployment:{id}");
    let events: Vec<EventRow> = state
        .store
        .list_audit(&AuditFilter {
            subject: Some(subject.clone()),
            ..AuditFilter::default()
        })
        .await?
        .iter()
        .map(event_row)
        .collect();
    let after = last_seq(&state).await?;
    let release_href = format!("/releases/{}", path_segment(&deployment.release_version));
    render(
        "deployment.html",
        json!({ "base": state.base_path, "nav": "deployments", "deployment": deployment, "release_href": release_href, "steps": steps, "proofs": proofs, "events": events, "subject": subject, "after": after }),
    )
    .map(Html)
}

// --- the audit explorer ---

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AuditQuery {
    action: Option<String>,
    subject: Option<String>,
    since: Option<String>,
    until: Option<String>,
    /// Paging: only events with a seq below this (with `before_at`, the time of that event).
    before: Option<i64>,
    before_at: Option<String>,
    limit: Option<i64>,
    /// "What ran at time T": the environment and the instant.
    env: Option<String>,
    at: Option<String>,
}

pub(crate) async fn audit(State(state): State<WebState>, Query(q): Query<AuditQuery>) -> Page {
    let now = Utc::now();
    let parse = |field: &str, v: &Option<String>| {
        given(v)
            .map(|text| {
                cutover_views::parse_time(text, now)
                    .map_err(|e| bad(field, format!("{e}; {}", e.hint())))
            })
            .transpose()
    };
    let since = parse("since", &q.since)?;
    let mut until = parse("until", &q.until)?;
    let before_at = parse("before_at", &q.before_at)?;
    let limit = limit_of(q.limit);
    if let Some(at) = before_at {
        // Paging goes back by time (the store's filter) and then by seq, so that events that
        // share the boundary's microsecond are neither lost nor repeated.
        let bound = at + chrono::Duration::microseconds(1);
        until = Some(until.map_or(bound, |u| u.min(bound)));
    }
    let filter = AuditFilter {
        since,
        until,
        action: given(&q.action).map(str::to_owned),
        subject: given(&q.subject).map(str::to_owned),
        after_seq: None,
        descending: true,
        // A few extra for the events at the boundary's microsecond that are filtered below.
        limit: Some(limit + 64),
    };
    let mut events = state.store.list_audit(&filter).await?;
    if let Some(before) = q.before {
        events.retain(|e| e.seq < before);
    }
    let has_more = events.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    events.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let older = if has_more {
        events.last().map(|e| {
            json!({"before": e.seq, "before_at": e.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)})
        })
    } else {
        None
    };
    let rows: Vec<EventRow> = events.iter().map(event_row).collect();

    let served = match (given(&q.env), given(&q.at)) {
        (Some(env_name), Some(at_text)) => {
            let env = state.config.environments.get(env_name).ok_or_else(|| {
                bad(
                    "env",
                    format!(
                        "there is no environment {env_name}; the configuration has {}",
                        state
                            .config
                            .environments
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
            let at = cutover_views::parse_time(at_text, now)
                .map_err(|e| bad("at", format!("{e}; {}", e.hint())))?;
            let hosts = cutover_views::host_names(env);
            Some(cutover_views::served_at(&*state.store, env_name, &hosts, at).await?)
        }
        (Some(_), None) => return Err(bad("at", "give the instant to ask about")),
        _ => None,
    };
    let newest = last_seq(&state).await?;
    // Live rows only make sense on the first page of an unfiltered explorer.
    let live = q.before.is_none()
        && given(&q.until).is_none()
        && given(&q.action).is_none()
        && given(&q.subject).is_none();
    let environments: Vec<&String> = state.config.environments.keys().collect();
    render(
        "audit.html",
        json!({ "base": state.base_path, "nav": "audit", "events": rows, "older": older, "limit": limit, "action": given(&q.action), "subject": given(&q.subject), "since": given(&q.since), "until": given(&q.until), "env": given(&q.env), "at": given(&q.at), "served": served, "environments": environments, "after": newest, "live": live }),
    )
    .map(Html)
}

// --- the queue ---

#[derive(Debug, Default, Deserialize)]
pub(crate) struct QueueQuery {
    state: Option<String>,
    class: Option<String>,
    kind: Option<String>,
    limit: Option<i64>,
}

pub(crate) async fn queue(State(state): State<WebState>, Query(q): Query<QueueQuery>) -> Page {
    let job_state = given(&q.state)
        .map(|s| {
            JobState::parse(s).ok_or_else(|| {
                bad(
                    "state",
                    format!(
                        "`{s}` is not a job state (queued, running, succeeded, failed, cancelled)"
                    ),
                )
            })
        })
        .transpose()?;
    let class = given(&q.class)
        .map(|s| {
            JobClass::parse(s).ok_or_else(|| {
                bad(
                    "class",
                    format!("`{s}` is not a job class (hotfix, release, normal, background)"),
                )
            })
        })
        .transpose()?;
    let limit = limit_of(q.limit);
    let jobs: Vec<_> = state
        .store
        .list_jobs(&JobFilter {
            state: job_state,
            kind: given(&q.kind).map(str::to_owned),
            limit: Some(limit),
            ..JobFilter::default()
        })
        .await?
        .into_iter()
        .filter(|j| class.is_none_or(|c| j.class == c.as_str()))
        .collect();
    // The live part of the queue, counted exactly: what waits and what runs, per class.
    let mut counts = Vec::new();
    let mut waiting = Vec::new();
    for s in [JobState::Queued, JobState::Running] {
        let all = state
            .store
            .list_jobs(&JobFilter {
                state: Some(s),
                ..JobFilter::default()
            })
            .await?;
        waiting.push(all);
    }
    for c in JobClass::ALL {
        let queued = waiting[0].iter().filter(|j| j.class == c.as_str()).count();
        let running = waiting[1].iter().filter(|j| j.class == c.as_str()).count();
        counts.push(json!({"class": c.as_str(), "queued": queued, "running": running}));
    }
    let states: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
    let classes: Vec<&str> = JobClass::ALL.iter().map(|c| c.as_str()).collect();
    render(
        "queue.html",
        json!({ "base": state.base_path, "nav": "queue", "jobs": jobs, "counts": counts, "states": states, "classes": classes, "state": given(&q.state), "class": given(&q.class), "kind": given(&q.kind), "limit": limit }),
    )
    .map(Html)
}

// --- DORA ---

#[derive(Debug, Default, Deserialize)]
pub(crate) struct DoraQuery {
    env: Option<String>,
    since: Option<String>,
    granularity: Option<String>,
}

fn hours(seconds: Option<f64>) -> String {
    match seconds {
        None => "—".to_owned(),
        Some(s) if s < 3600.0 => format!("{:.0} minutes", s / 60.0),
        Some(s) if s < 3.0 * 86400.0 => format!("{:.1} hours", s / 3600.0),
        Some(s) => format!("{:.1} days", s / 86400.0),
    }
}

pub(crate) async fn dora(State(state): State<WebState>, Query(q): Query<DoraQuery>) -> Page {
    use cutover_metrics::{ChartOptions, Granularity, Metric, MetricsQuery};
    let now = Utc::now();
    let production = cutover_views::production_environment(&state.config);
    let env = match given(&q.env) {
        Some(name) if state.config.environments.contains_key(name) => name.to_owned(),
        Some(name) => return Err(bad("env", format!("there is no environment {name}"))),
        None => production.clone().ok_or_else(|| {
            bad(
                "env",
                "the configuration names no production environment: choose one",
            )
        })?,
    };
    let since_text = given(&q.since).unwrap_or("90d").to_owned();
    let since = cutover_metrics::parse_instant(&since_text, now)
        .map_err(|e| bad("since", format!("{e}; {}", e.hint())))?;
    let granularity = match given(&q.granularity) {
        None | Some("weekly") => Granularity::Weekly,
        Some("daily") => Granularity::Daily,
        Some(other) => {
            return Err(bad(
                "granularity",
                format!("`{other}` is neither daily nor weekly"),
            ));
        }
    };
    let report = cutover_metrics::compute(
        &*state.store,
        &MetricsQuery {
            since,
            until: now,
            environment: env.clone(),
        },
    )
    .await?;
    let df = &report.deployment_frequency;
    let lt = &report.lead_time;
    let cfr = &report.change_failure_rate;
    let rt = &report.recovery_time;
    let headline = |metric: Metric| match metric {
        Metric::DeploymentFrequency => format!(
            "{} deployment{}{}{}",
            df.deployments,
            if df.deployments == 1 { "" } else { "s" },
            df.per_week
                .map(|w| format!(", {w:.1} per week"))
                .unwrap_or_default(),
            if df.rollbacks > 0 {
                format!(" (and {} rollbacks)", df.rollbacks)
            } else {
                String::new()
            }
        ),
        Metric::LeadTime => format!(
            "median {}, p90 {} over {} commits",
            hours(lt.median_seconds),
            hours(lt.p90_seconds),
            lt.commits.len()
        ),
        Metric::ChangeFailureRate => match cfr.rate {
            Some(r) => format!(
                "{:.1}% ({} of {} deployments)",
                r * 100.0,
                cfr.failures,
                cfr.deployments
            ),
            None => "no deployments".to_owned(),
        },
        Metric::RecoveryTime => format!(
            "median {} ({} restored, {} not yet)",
            hours(rt.median_seconds),
            rt.restored,
            rt.unrestored
        ),
    };
    let charts: Vec<Value> = Metric::ALL
        .iter()
        .map(|&metric| {
            json!({
                "id": metric.as_str(),
                "title": metric.title(),
                "headline": headline(metric),
                "band": metric.band(&report).map(|b| b.as_str()),
                "svg": cutover_metrics::render_svg_chart(&report, metric, granularity, &ChartOptions {
                    id: format!("dora-{}", metric.as_str()),
                    ..ChartOptions::default()
                }),
            })
        })
        .collect();
    let environments: Vec<&String> = state.config.environments.keys().collect();
    let granularity = match granularity {
        Granularity::Daily => "daily",
        Granularity::Weekly => "weekly",
    };
    render(
        "dora.html",
        json!({ "base": state.base_path, "nav": "dora", "charts": charts, "env": env,
                "environments": environments, "production": production, "since": since_text,
                "granularity": granularity, "report": report }),
    )
    .map(Html)
}
