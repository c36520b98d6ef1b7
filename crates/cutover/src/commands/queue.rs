//! `cutover queue [ls | cancel ID | bump ID --priority P]` and `cutover check [log ID]`: the job
//! queue and QA checks through it (`cutover worker`, extra workers, is in `worker.rs`).

use std::sync::Arc;

use cutover_core::queue::{JobClass, JobState, QueuePolicy};
use cutover_queue::check::CheckSpec;
use cutover_queue::{CHECK_KIND, CheckRun, WorkerConfig, run_checks};
use cutover_store::{Job, JobFilter, ReleaseKind};
use serde_json::json;

use crate::cli::{CheckArgs, CheckCommand, QueueArgs, QueueCommand};
use crate::context::{Ctx, store_error};
use crate::error::{CliError, Result};
use crate::ui::{BOLD, DIM, GREEN, RED, Ui, YELLOW};

pub fn queue(ctx: &Ctx<'_>, args: &QueueArgs) -> Result<()> {
    match &args.command {
        None | Some(QueueCommand::Ls) => list(ctx, args),
        Some(QueueCommand::Cancel { id, reason }) => {
            let store = ctx.store()?;
            let job = ctx
                .block_on(store.cancel_job(*id, &ctx.actor(), reason))
                .map_err(store_error)?;
            render_one(ctx, "cancelled", &job);
            Ok(())
        }
        Some(QueueCommand::Bump { id, priority }) => {
            let store = ctx.store()?;
            let job = ctx
                .block_on(store.bump_job(*id, *priority, &QueuePolicy::default(), &ctx.actor()))
                .map_err(store_error)?;
            render_one(ctx, "bumped", &job);
            Ok(())
        }
    }
}

fn render_one(ctx: &Ctx<'_>, verb: &str, job: &Job) {
    if ctx.global.json {
        ctx.ui.print_json(&json!({ "job": job }));
    } else {
        ctx.ui.println(format!(
            "{verb} job {} ({} {}, priority {}, {})",
            job.id, job.class, job.kind, job.priority, job.state
        ));
    }
}

/// A short name for a job: a check's name, else its kind.
fn label(job: &Job) -> String {
    match job.payload.pointer("/check/name").and_then(|v| v.as_str()) {
        Some(name) if job.kind == CHECK_KIND => format!("check {name}"),
        _ => job.kind.clone(),
    }
}

fn list(ctx: &Ctx<'_>, args: &QueueArgs) -> Result<()> {
    let state = match &args.state {
        Some(s) => Some(JobState::parse(s).ok_or_else(|| {
            CliError::usage(format!("unknown job state `{s}`"))
                .with_hint("states: queued, running, succeeded, failed, cancelled")
        })?),
        None => None,
    };
    let store = ctx.store()?;
    let filter = JobFilter {
        state,
        kind: args.kind.clone(),
        limit: Some(i64::try_from(args.limit).unwrap_or(i64::MAX)),
        ..JobFilter::default()
    };
    let jobs = ctx
        .block_on(store.list_jobs(&filter))
        .map_err(store_error)?;
    if ctx.global.json {
        ctx.ui.print_json(&json!({ "jobs": jobs }));
        return Ok(());
    }
    if jobs.is_empty() {
        ctx.ui.println("no jobs");
        return Ok(());
    }
    let mut out = format!(
        "{}\n",
        Ui::paint(
            BOLD,
            format!(
                "{:>6}  {:<10} {:<10} {:>4}  {:>3}  {:<28} {}",
                "ID", "STATE", "CLASS", "PRIO", "TRY", "JOB", "CREATED"
            )
        )
    );
    for j in &jobs {
        let state = match j.state.as_str() {
            "succeeded" => Ui::paint(GREEN, format!("{:<10}", j.state)),
            "failed" => Ui::paint(RED, format!("{:<10}", j.state)),
            "running" => Ui::paint(YELLOW, format!("{:<10}", j.state)),
            _ => format!("{:<10}", j.state),
        };
        out.push_str(&format!(
            "{:>6}  {} {:<10} {:>4}  {:>3}  {:<28} {}\n",
            j.id,
            state,
            j.class,
            j.priority,
            j.attempts,
            label(j),
            Ui::paint(DIM, j.created_at.format("%Y-%m-%dT%H:%M:%SZ")),
        ));
        if let Some(e) = &j.last_error
            && j.state != "succeeded"
        {
            out.push_str(&format!("        {}\n", Ui::paint(DIM, e)));
        }
    }
    ctx.ui.print(out);
    Ok(())
}

pub fn check(ctx: &Ctx<'_>, args: &CheckArgs) -> Result<()> {
    match &args.command {
        Some(CheckCommand::Log { id }) => log(ctx, *id),
        None => run(ctx, args),
    }
}

fn run(ctx: &Ctx<'_>, args: &CheckArgs) -> Result<()> {
    let config = ctx.config()?;
    let root = ctx.project_root()?;
    let specs: Vec<CheckSpec> = config
        .checks
        .iter()
        .filter(|c| args.only.is_empty() || args.only.contains(&c.name))
        .map(|c| CheckSpec::from_config(c, &root))
        .collect();
    if let Some(unknown) = args
        .only
        .iter()
        .find(|n| !config.checks.iter().any(|c| &c.name == *n))
    {
        let names: Vec<&str> = config.checks.iter().map(|c| c.name.as_str()).collect();
        return Err(
            CliError::usage(format!("no check named `{unknown}` in cutover.toml")).with_hint(
                format!(
                    "configured checks: {}",
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                ),
            ),
        );
    }
    if specs.is_empty() {
        if ctx.global.json {
            ctx.ui.print_json(&json!({ "ok": true, "checks": [] }));
        } else {
            ctx.ui
                .println("no checks configured (add [[checks]] to cutover.toml)");
        }
        return Ok(());
    }
    let store = ctx.store()?;
    // The checks of a hotfix release go first in the queue.
    let class = match &args.release {
        Some(v) => {
            match ctx.block_on(store.get_release(v)).map_err(store_error)? {
                Some(release) if release.kind == ReleaseKind::Hotfix => JobClass::Hotfix,
                Some(_) => JobClass::Release,
                // The checks of the release about to be made (`cutover ship` runs them before
                // `cutover release`, so that a failing check blocks the release).
                None if super::ship::planned_next(ctx).ok().as_deref() == Some(v.as_str()) => {
                    JobClass::Release
                }
                None => {
                    return Err(CliError::usage(format!(
                        "release {v} does not exist and is not the next planned release"
                    ))
                    .with_hint("list releases with `cutover history`, or omit --release"));
                }
            }
        }
        None => JobClass::Normal,
    };
    let workers = args.workers.max(1);
    ctx.ui.status(
        "Checking",
        format!("{} check(s) with {workers} worker(s)", specs.len()),
    );
    let worker = WorkerConfig::new(WorkerConfig::default_name(0), ctx.actor());
    let (runs, _) = ctx
        .block_on(run_checks(
            Arc::clone(&store),
            &specs,
            class,
            args.release.as_deref(),
            workers,
            worker,
        ))
        .map_err(store_error)?;
    let blocking: Vec<String> = runs.iter().filter(|r| r.blocks()).map(check_name).collect();
    let checks: Vec<_> = runs.iter().map(run_json).collect();
    let doc = json!({ "ok": blocking.is_empty(), "checks": checks });
    if !ctx.global.json {
        let mut out = String::new();
        for r in &runs {
            out.push_str(&run_line(r));
        }
        ctx.ui.print(out);
    }
    if blocking.is_empty() {
        if ctx.global.json {
            ctx.ui.print_json(&doc);
        }
        Ok(())
    } else {
        // Under --json the error carries the results: stdout stays one document.
        Err(
            CliError::failed(format!("required check(s) failed: {}", blocking.join(", ")))
                .with_hint("see the output with `cutover check log ID`")
                .with_json(doc),
        )
    }
}

fn check_name(r: &CheckRun) -> String {
    r.job
        .payload
        .pointer("/check/name")
        .and_then(|v| v.as_str())
        .unwrap_or("?")
        .to_owned()
}

fn run_json(r: &CheckRun) -> serde_json::Value {
    let res = r.result.as_ref();
    json!({
        "job": r.job.id,
        "name": check_name(r),
        "required": r.job.payload.pointer("/check/required").cloned().unwrap_or(json!(true)),
        "state": r.job.state,
        "status": res.map(|c| c.status.as_str()),
        "exit_code": res.and_then(|c| c.exit_code),
        "duration_ms": res.map(|c| c.duration_ms),
        "reason": res.and_then(|c| c.reason.clone()).or_else(|| r.job.last_error.clone()),
        "blocks": r.blocks(),
    })
}

fn run_line(r: &CheckRun) -> String {
    let name = check_name(r);
    let required = r
        .job
        .payload
        .pointer("/check/required")
        .and_then(|v| v.as_bool())
        .unwrap_or(true);
    let took = r
        .result
        .as_ref()
        .map(|c| format!(" ({:.1}s)", c.duration_ms as f64 / 1000.0))
        .unwrap_or_default();
    if r.passed() {
        return format!("{} {name}{}\n", Ui::paint(GREEN, "✓"), Ui::paint(DIM, took));
    }
    let reason = r
        .result
        .as_ref()
        .and_then(|c| c.reason.clone())
        .or_else(|| r.job.last_error.clone())
        .unwrap_or_else(|| r.job.state.clone());
    let mark = if required {
        Ui::paint(RED, "✗")
    } else {
        Ui::paint(YELLOW, "!")
    };
    let advisory = if required { "" } else { " (advisory)" };
    format!(
        "{mark} {name}{advisory}: {reason}{}  {}\n",
        Ui::paint(DIM, took),
        Ui::paint(DIM, format!("[cutover check log {}]", r.job.id))
    )
}

fn log(ctx: &Ctx<'_>, id: i64) -> Result<()> {
    let store = ctx.store()?;
    let job = ctx
        .block_on(store.get_job(id))
        .map_err(store_error)?
        .ok_or_else(|| {
            CliError::usage(format!("job {id} does not exist"))
                .with_hint("list jobs with `cutover queue ls`")
        })?;
    if job.kind != CHECK_KIND {
        return Err(CliError::usage(format!(
            "job {id} is a `{}` job, not a check",
            job.kind
        )));
    }
    let run = CheckRun::of(job);
    if ctx.global.json {
        ctx.ui.print_json(
            &json!({ "job": run.job.id, "state": run.job.state, "result": run.result }),
        );
        return Ok(());
    }
    match &run.result {
        Some(result) => {
            ctx.ui.status(
                "Log",
                format!(
                    "check {} (job {}): {}",
                    result.name,
                    run.job.id,
                    result.status.as_str()
                ),
            );
            ctx.ui.print(&result.output);
            Ok(())
        }
        None => {
            ctx.ui.println(format!(
                "check {} (job {id}) has no output yet: it is {}",
                check_name(&run),
                run.job.state
            ));
            Ok(())
        }
    }
}
