//! `cutover ship`: plan → notice → checks → release → deploy → gates → promote along the
//! `promote_from` chain (`cutover promote FROM TO`, in `promote.rs`, is its single step).
//!
//! Every stage is idempotent and derived from the records, which is what makes `--resume` safe after
//! a crash: a recorded release is not released again, an environment where the version is already
//! live is skipped, and an unfinished deployment is resumed by the engine before anything new starts.
//! The run itself is recorded (`ship.start`, `ship.stage`, `ship.finish` audit events) so `--resume`
//! knows which version and target it was shipping.

use std::time::{Duration, Instant};

use chrono::Utc;
use cutover_core::queue::JobState;
use cutover_deploy::{DeployOutcome, DeployRequest, Progress, RolloutStep};
use cutover_store::{Audit, AuditFilter, JobFilter, Store};
use serde_json::{Value, json};

use super::deploy::{Session, check_environment, deploy_error, render_progress};
use super::plan::{Selection, optional_config, release_options};
use crate::cli::{CheckArgs, NoticeArgs, NoticeFormatArg, ReleaseArgs, ShipArgs};
use crate::context::{Ctx, store_error};
use crate::error::{CliError, Result};
use crate::stages::{LiveStages, StageState};
use crate::ui::{GREEN, Ui};

pub fn ship(ctx: &Ctx<'_>, args: &ShipArgs) -> Result<()> {
    let config = ctx.config()?;
    let store = ctx.store()?;
    let planning = Instant::now();
    let (version, target) = if args.resume {
        last_run(ctx, &*store)?
    } else {
        let target = match &args.to {
            Some(t) => t.clone(),
            None => last_of_chain(&config)?,
        };
        (planned_version(ctx, &*store)?, target)
    };
    let chain = chain_to(&config, &target)?;
    let actor = ctx.actor();
    record(
        ctx,
        &*store,
        &actor,
        if args.resume {
            "ship.resume"
        } else {
            "ship.start"
        },
        json!({ "version": version, "to": target, "chain": chain }),
    )?;
    ctx.ui.status(
        "shipping",
        format!("{version} to {target} (through {})", chain.join(" → ")),
    );
    let released = ctx
        .block_on(store.get_release(&version))
        .map_err(store_error)?
        .is_some();

    // The steps print as they do alone; under `--json` on stderr, so that stdout stays ship's
    // one document; under the live stage list into a buffer it prints above itself.
    let step_ui = if ctx.ui.live() {
        ctx.ui.captured()
    } else {
        ctx.ui.nested()
    };
    let sub = if ctx.global.json || ctx.ui.live() {
        ctx.step(
            &step_ui,
            crate::cli::GlobalArgs {
                json: false,
                ..ctx.global.clone()
            },
        )
    } else {
        ctx.step(ctx.ui, ctx.global.clone())
    };
    let view = View::new(ctx.ui, &step_ui, stage_keys(&config, &chain, released));
    if let Some(live) = &view.live {
        live.start_at("plan", planning);
        live.finish(
            "plan",
            StageState::Done,
            if args.resume {
                format!("{version} (resumed)")
            } else {
                version.clone()
            },
        );
    }

    // Stage: the release (with its notice and checks), unless it is recorded already.
    if released {
        view.finish("release", StageState::Skipped, "already recorded");
        stage(
            ctx,
            &view,
            &*store,
            &actor,
            &version,
            "release",
            "already recorded",
        )?;
    } else {
        if config.notify.is_some() {
            view.run("notice", || {
                super::notice::run(
                    &sub,
                    &NoticeArgs {
                        eta: None,
                        format: NoticeFormatArg::Markdown,
                        send: true,
                        pre: None,
                        version: Some(version.clone()),
                    },
                )
            })?;
            stage(ctx, &view, &*store, &actor, &version, "notice", "sent")?;
        }
        if !config.checks.is_empty() {
            let watch = view.live.as_ref().and_then(|live| {
                live.steps("checks", 0, config.checks.len() as u64);
                live.bar("checks")
                    .map(|bar| watch_checks(ctx, store.clone(), &version, bar))
            });
            let checked = view.run("checks", || {
                super::queue::check(
                    &sub,
                    &CheckArgs {
                        command: None,
                        release: Some(version.clone()),
                        only: Vec::new(),
                        workers: 2,
                    },
                )
            });
            if let Some(w) = watch {
                w.abort();
            }
            checked?;
            stage(ctx, &view, &*store, &actor, &version, "checks", "passed")?;
        }
        view.run("release", || {
            super::release::run(
                &sub,
                &ReleaseArgs {
                    version: Some(version.clone()),
                    pre: None,
                    dry_run: false,
                    push: false,
                    remote: "origin".to_owned(),
                },
            )
        })?;
        stage(ctx, &view, &*store, &actor, &version, "release", "recorded")?;
    }

    // Stages: each environment of the chain, behind its gates.
    // The unfinished deployments `resume_all` finishes first may be anywhere.
    let unfinished = ctx
        .block_on(store.list_deployments(&cutover_store::DeploymentFilter {
            unfinished_only: true,
            ..cutover_store::DeploymentFilter::default()
        }))
        .map_err(store_error)?;
    let envs: Vec<&str> = chain
        .iter()
        .map(String::as_str)
        .chain(unfinished.iter().map(|d| d.environment.as_str()))
        .collect();
    let session = Session::open(ctx, store.clone(), config.clone(), &envs)?;
    let render = |p: Progress| view.progress(ctx, &p);
    let result = ctx.block_on(async {
        session
            .engine
            .resume_all(&render)
            .await
            .map_err(deploy_error)?;
        for env in &chain {
            let key = format!("deploy:{env}");
            if live_version(&*store, env).await?.as_deref() == Some(version.as_str()) {
                view.finish(&format!("gates:{env}"), StageState::Skipped, "not needed");
                view.finish(&key, StageState::Skipped, "already live");
                stage_async(&*store, &actor, &version, &key, "already live").await?;
                continue;
            }
            view.begin(&format!("gates:{env}"));
            let held = gates(&sub, &*store, &config, env, &version, &actor, args.override_freeze.as_deref()).await;
            view.flush();
            match &held {
                Ok(()) => view.finish(&format!("gates:{env}"), StageState::Done, "open"),
                Err(e) => view.finish(&format!("gates:{env}"), StageState::Failed, e.message.clone()),
            }
            held?;
            view.begin(&key);
            view.say("deploying", format!("{version} to {env}"));
            let outcome = session
                .engine
                .deploy(
                    DeployRequest {
                        environment: env.clone(),
                        version: version.clone(),
                        trigger: "ship".to_owned(),
                        reverts: None,
                        wait_for_lock: true,
                        message: Some(format!("cutover ship {version}")),
                    },
                    &render,
                )
                .await
                .map_err(|e| {
                    let e = deploy_error(e);
                    view.finish(&key, StageState::Failed, e.message.clone());
                    e
                })?;
            match outcome {
                DeployOutcome::Live { deployment } => {
                    stage_async(&*store, &actor, &version, &key, &format!("live (deployment {deployment})")).await?;
                    view.finish(&key, StageState::Done, format!("live (deployment {deployment})"));
                    view.say("live", format!("{version} in {env}"));
                }
                DeployOutcome::RolledBack { deployment, reason }
                | DeployOutcome::Failed { deployment, reason } => {
                    stage_async(&*store, &actor, &version, &key, &format!("failed (deployment {deployment}): {reason}")).await?;
                    view.finish(&key, StageState::Failed, format!("rolled back (deployment {deployment}): {reason}"));
                    return Err(CliError::failed(format!(
                        "shipping {version} stopped in {env}: deployment {deployment} was rolled back: {reason}"
                    ))
                    .with_json(json!({ "version": version, "environment": env, "deployment": deployment, "state": "rolled_back", "reason": reason })));
                }
            }
        }
        Ok::<(), CliError>(())
    });
    session.close(ctx);
    drop(view);
    result?;
    record(
        ctx,
        &*store,
        &actor,
        "ship.finish",
        json!({ "version": version, "to": target }),
    )?;
    if ctx.global.json {
        ctx.ui.print_json(
            &json!({ "version": version, "to": target, "chain": chain, "state": "live" }),
        );
    } else {
        ctx.ui
            .println(format!("shipped {version}: live in {}", chain.join(", ")));
    }
    Ok(())
}

/// The stages of a run, in order (as `ship.stage` names them, plus `plan` and the gates).
fn stage_keys(config: &cutover_config::Config, chain: &[String], released: bool) -> Vec<String> {
    let mut keys = vec!["plan".to_owned()];
    if !released {
        if config.notify.is_some() {
            keys.push("notice".to_owned());
        }
        if !config.checks.is_empty() {
            keys.push("checks".to_owned());
        }
    }
    keys.push("release".to_owned());
    for env in chain {
        keys.push(format!("gates:{env}"));
        keys.push(format!("deploy:{env}"));
    }
    keys
}

/// How `ship` shows its progress: the live stage list on a terminal, else plain status lines
/// (the same lines every command prints).
struct View<'u> {
    ui: &'u Ui,
    /// Where the steps' output is kept while the live list is drawn.
    step_ui: &'u Ui,
    live: Option<LiveStages>,
}

impl<'u> View<'u> {
    fn new(ui: &'u Ui, step_ui: &'u Ui, keys: Vec<String>) -> Self {
        let live = ui
            .live()
            .then(|| LiveStages::stderr(keys, ui.color_on_stderr()));
        Self { ui, step_ui, live }
    }

    fn begin(&self, key: &str) {
        if let Some(live) = &self.live {
            live.start(key);
        }
    }

    fn finish(&self, key: &str, state: StageState, detail: impl Into<String>) {
        if let Some(live) = &self.live {
            live.finish(key, state, detail);
        }
    }

    /// A status line in plain mode (the live list shows the same in its stage's line).
    fn say(&self, verb: &str, text: impl std::fmt::Display) {
        if self.live.is_none() {
            self.ui.status(verb, text);
        }
    }

    /// Prints what the steps wrote (live mode) above the list.
    fn flush(&self) {
        if let Some(live) = &self.live {
            let text = self.step_ui.take_captured();
            if !text.is_empty() {
                live.println(&text);
            }
        }
    }

    /// Runs a step as stage `key`; a failure marks the stage failed with its message.
    fn run<T>(&self, key: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.begin(key);
        // The release's build writes to stderr itself: the list steps aside meanwhile.
        let out = match &self.live {
            Some(live) if key == "release" => live.suspend(f),
            _ => f(),
        };
        self.flush();
        if let Err(e) = &out {
            self.finish(key, StageState::Failed, e.message.clone());
        }
        out
    }

    /// A deployment's progress: the deploy stage's detail and rollout steps, or a plain line.
    fn progress(&self, ctx: &Ctx<'_>, p: &Progress) {
        let Some(live) = &self.live else {
            render_progress(ctx, p);
            return;
        };
        match live.running().filter(|k| k.starts_with("deploy:")) {
            Some(key) => {
                match p.step {
                    Some(RolloutStep::Canary { index, of, .. })
                    | Some(RolloutStep::Batch { index, of }) => {
                        live.steps(&key, index as u64 + 1, of as u64);
                    }
                    None => {}
                }
                live.detail(&key, format!("{}: {}", p.state, p.message));
            }
            // Deployments resumed before the stages start.
            None => live.println(&format!(
                "{:>12} deployment {}: {}",
                Ui::paint(GREEN.bold(), &p.state),
                p.deployment,
                p.message
            )),
        }
    }
}

/// Moves the checks stage's bar as the release's check jobs (enqueued from now on) finish.
fn watch_checks(
    ctx: &Ctx<'_>,
    store: std::sync::Arc<dyn Store>,
    version: &str,
    bar: indicatif::ProgressBar,
) -> tokio::task::JoinHandle<()> {
    let handle = ctx.block_on(async { tokio::runtime::Handle::current() });
    let version = version.to_owned();
    handle.spawn(async move {
        let newest = |filter: JobFilter| {
            let store = store.clone();
            async move { store.list_jobs(&filter).await.unwrap_or_default() }
        };
        let before = newest(JobFilter {
            limit: Some(1),
            ..JobFilter::default()
        })
        .await
        .first()
        .map_or(0, |j| j.id);
        loop {
            let jobs = newest(JobFilter {
                kind: Some(cutover_queue::CHECK_KIND.to_owned()),
                release_version: Some(version.clone()),
                ..JobFilter::default()
            })
            .await;
            let mine: Vec<_> = jobs.iter().filter(|j| j.id > before).collect();
            let done = mine
                .iter()
                .filter(|j| JobState::parse(&j.state).is_some_and(JobState::is_final))
                .count();
            bar.set_position(done as u64);
            let running: Vec<&str> = mine
                .iter()
                .filter(|j| j.state == "running")
                .filter_map(|j| j.payload.pointer("/check/name").and_then(Value::as_str))
                .collect();
            if !running.is_empty() {
                bar.set_message(format!("running {}", running.join(", ")));
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    })
}

/// Evaluates `env`'s gates for `version`; a holding gate is an error that says why and when it opens.
pub(super) async fn gates(
    ctx: &Ctx<'_>,
    store: &dyn Store,
    config: &cutover_config::Config,
    env: &str,
    version: &str,
    actor: &str,
    override_freeze: Option<&str>,
) -> Result<()> {
    let overrides = cutover_gates::Overrides {
        freeze_reason: override_freeze.map(str::to_owned),
    };
    let report =
        cutover_gates::evaluate(store, config, env, version, actor, Utc::now(), &overrides)
            .await
            .map_err(super::approve::gate_error)?;
    // The override is recorded only when the deployment goes ahead (another gate may hold).
    if report.open() && report.freeze_overridden() {
        let reason = override_freeze.unwrap_or_default();
        store
            .append_audit(&cutover_gates::freeze_override_audit(
                actor, env, version, reason,
            ))
            .await
            .map_err(store_error)?;
        ctx.ui
            .warn(format!("freeze overridden for {env}: {reason}"));
        return Ok(());
    }
    if report.open() {
        return Ok(());
    }
    let when = report
        .opens_at()
        .map(|t| {
            format!(
                "; it opens at {}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        })
        .unwrap_or_default();
    Err(CliError::failed(format!(
        "the gates of {env} hold {version}{when}"
    ))
    .with_cause(report.summary())
    .with_hint("`cutover gates ENV --version V` shows them; `cutover ship --resume` continues once they open")
    .with_json(serde_json::to_value(&report).unwrap_or(Value::Null)))
}

/// The version `ship` releases: the planned next version, or the newest recorded release when
/// nothing new was committed since it.
fn planned_version(ctx: &Ctx<'_>, store: &dyn Store) -> Result<String> {
    let planned = plan(ctx)?;
    if planned.plan.changes.is_empty() && planned.plan.current.is_some() {
        let newest = ctx
            .block_on(store.list_releases())
            .map_err(store_error)?
            .pop()
            .map(|r| r.version);
        if let Some(v) = newest {
            return Ok(v);
        }
    }
    Ok(planned.plan.next.version)
}

/// The next version `cutover release` would make now.
pub(super) fn planned_next(ctx: &Ctx<'_>) -> Result<String> {
    Ok(plan(ctx)?.plan.next.version)
}

fn plan(ctx: &Ctx<'_>) -> Result<cutover_release::Planned> {
    let root = ctx.project_root()?;
    let config = optional_config(ctx)?;
    let options = release_options(&root, config.as_ref(), &Selection::default())?;
    cutover_release::plan(&root, &options).map_err(|e| super::plan::release_error(&e))
}

/// The version and target of the last `cutover ship` run.
fn last_run(ctx: &Ctx<'_>, store: &dyn Store) -> Result<(String, String)> {
    let events = ctx
        .block_on(store.list_audit(&AuditFilter {
            action: Some("ship.start".to_owned()),
            descending: true,
            limit: Some(1),
            ..AuditFilter::default()
        }))
        .map_err(store_error)?;
    let Some(e) = events.first() else {
        return Err(CliError::usage("no `cutover ship` run to resume")
            .with_hint("`cutover ship` starts one"));
    };
    let version = e.payload["version"].as_str().unwrap_or_default().to_owned();
    let to = e.payload["to"].as_str().unwrap_or_default().to_owned();
    // A run that got past its release stage needs that release; one stopped before it releases
    // it on resume.
    let recorded = ctx
        .block_on(store.list_audit(&AuditFilter {
            action: Some("ship.stage".to_owned()),
            subject: Some(format!("release:{version}")),
            after_seq: Some(e.seq),
            ..AuditFilter::default()
        }))
        .map_err(store_error)?
        .iter()
        .any(|s| s.payload["stage"] == "release");
    if recorded
        && ctx
            .block_on(store.get_release(&version))
            .map_err(store_error)?
            .is_none()
    {
        return Err(CliError::usage(format!(
            "the last `cutover ship` run shipped release {version}, which no longer exists in the store"
        ))
        .with_hint("start a new run with `cutover ship` (it plans and records the release again)"));
    }
    Ok((version, to))
}

/// The environment at the end of the `promote_from` chain (the one nothing promotes from).
fn last_of_chain(config: &cutover_config::Config) -> Result<String> {
    let mut ends: Vec<&String> = config
        .environments
        .keys()
        .filter(|name| {
            !config
                .environments
                .values()
                .any(|e| e.promote_from.as_deref() == Some(name.as_str()))
        })
        .collect();
    match ends.len() {
        0 => Err(CliError::usage("cutover.toml defines no environments")
            .with_hint("add `[environments.staging]` with `hosts = [\"local\"]`")),
        1 => Ok(ends.remove(0).clone()),
        _ => Err(CliError::usage(format!(
            "several environments end a promotion chain ({}); say which with `--to ENV`",
            ends.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// `target`'s chain, first environment first (its `promote_from` ancestors, then itself).
fn chain_to(config: &cutover_config::Config, target: &str) -> Result<Vec<String>> {
    let mut chain = vec![target.to_owned()];
    let mut at = target;
    loop {
        check_environment(config, at)?;
        match config
            .environments
            .get(at)
            .and_then(|e| e.promote_from.as_deref())
        {
            // The configuration loader refuses cycles, so this ends.
            Some(from) if !chain.iter().any(|c| c == from) => {
                chain.push(from.to_owned());
                at = from;
            }
            _ => break,
        }
    }
    chain.reverse();
    Ok(chain)
}

/// The release live in `env` now ([`cutover_views::current_release`]), if any.
pub(super) async fn live_version(store: &dyn Store, env: &str) -> Result<Option<String>> {
    Ok(cutover_views::current_release(store, env)
        .await
        .map_err(super::status::views_error)?
        .map(|d| d.release_version))
}

fn record(
    ctx: &Ctx<'_>,
    store: &dyn Store,
    actor: &str,
    action: &str,
    payload: Value,
) -> Result<()> {
    let subject = format!(
        "release:{}",
        payload["version"].as_str().unwrap_or_default()
    );
    ctx.block_on(store.append_audit(&Audit::new(actor, action, subject, payload)))
        .map_err(store_error)?;
    Ok(())
}

fn stage(
    ctx: &Ctx<'_>,
    view: &View<'_>,
    store: &dyn Store,
    actor: &str,
    version: &str,
    name: &str,
    result: &str,
) -> Result<()> {
    view.say(name, result);
    view.finish(name, StageState::Done, result);
    ctx.block_on(stage_async(store, actor, version, name, result))
}

async fn stage_async(
    store: &dyn Store,
    actor: &str,
    version: &str,
    name: &str,
    result: &str,
) -> Result<()> {
    store
        .append_audit(&Audit::new(
            actor,
            "ship.stage",
            format!("release:{version}"),
            json!({ "version": version, "stage": name, "result": result }),
        ))
        .await
        .map_err(store_error)?;
    Ok(())
}
