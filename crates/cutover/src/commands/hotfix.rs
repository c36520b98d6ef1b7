//! `cutover hotfix start [--from TAG]`: a `hotfix/<next patch>` branch at the release that is live
//! in production (from the deployment records, or `--from`), checked out.
//! `cutover hotfix finish`: the patch release from that branch, refusing features and breaking
//! changes, recorded as `kind = hotfix` (its jobs go first), linked (`release.link`) to the production
//! deployment live when the branch was cut (`hotfix.start`); prints the commits to bring back.

use super::plan::{Selection, optional_config, release_options};
use super::release::{record_and_report, settings, ship_error};
use crate::cli::{HotfixArgs, HotfixCommand};
use crate::context::{Ctx, STATE_DIR};
use crate::error::{CliError, Result};
use cutover_core::tag::TagFormat;

pub fn run(ctx: &Ctx<'_>, args: &HotfixArgs) -> Result<()> {
    match &args.command {
        HotfixCommand::Start { from } => start(ctx, from.as_deref()),
        HotfixCommand::Finish {
            dry_run,
            push,
            remote,
        } => finish(ctx, *dry_run, push.then(|| remote.clone())),
    }
}

fn git_error(e: &cutover_git::write::WriteError) -> CliError {
    CliError::failed(e.to_string())
}

fn tag_format(ctx: &Ctx<'_>) -> Result<TagFormat> {
    let config = optional_config(ctx)?;
    let format = config.map_or_else(|| "v{version}".to_owned(), |c| c.project.tag_format);
    TagFormat::new(&format).map_err(|e| CliError::usage(e.to_string()))
}

fn start(ctx: &Ctx<'_>, from: Option<&str>) -> Result<()> {
    let root = ctx.project_root()?;
    let format = tag_format(ctx)?;
    let (from, live) = match from {
        Some(tag) => (tag.to_owned(), None),
        None => {
            let (tag, live) = live_in_production(ctx, &format)?;
            (tag, Some(live))
        }
    };
    let version = format
        .parse(&from)
        .map_err(|e| CliError::usage(e.to_string()))?
        .ok_or_else(|| {
            CliError::usage(format!(
                "`{from}` is not a release tag of format `{format}`"
            ))
            .with_hint("give the tag of the release to fix, e.g. --from v1.2.3")
        })?;
    let repo = cutover_git::Repo::open(&root).map_err(|e| CliError::usage(e.to_string()))?;
    let tag_commit = repo
        .resolve(&from)
        .map_err(|e| CliError::usage(e.to_string()))?;
    let dirty: Vec<String> = cutover_git::write::dirty_paths(&root)
        .map_err(|e| git_error(&e))?
        .into_iter()
        .filter(|p| !p.starts_with(&format!("{STATE_DIR}/")))
        .collect();
    if !dirty.is_empty() {
        return Err(CliError::usage(format!(
            "the work tree has uncommitted changes: {}",
            dirty.join(", ")
        ))
        .with_hint("commit or stash them before switching to a hotfix branch"));
    }
    let next = semver::Version::new(version.major, version.minor, version.patch + 1);
    let branch = format!("hotfix/{next}");
    cutover_git::write::create_branch(&root, &branch, &tag_commit.to_string())
        .map_err(|e| git_error(&e))?;
    if let Some(l) = &live {
        // The explicit record `hotfix finish` turns into `release.link` (the deployment this
        // hotfix fixes), read by the change failure rate of `cutover metrics`.
        let start = cutover_metrics::links::HotfixStart {
            version: next.to_string(),
            branch: branch.clone(),
            from: from.clone(),
            environment: l.environment.clone(),
            live_deployment: l.deployment,
        };
        let store = ctx.store()?;
        ctx.block_on(cutover_metrics::links::record_hotfix_start(
            &*store,
            &start,
            &ctx.actor(),
        ))
        .map_err(super::metrics::metrics_error)?;
    }
    if ctx.global.json {
        ctx.ui.print_json(&serde_json::json!({
            "branch": branch, "from": from, "version": next.to_string(),
            "live": live.as_ref().map(|l| serde_json::json!({
                "environment": l.environment, "deployment": l.deployment, "version": l.version,
            })),
        }));
    } else {
        if let Some(l) = &live {
            ctx.ui.status(
                "Found",
                format!(
                    "{} live in {} (deployment #{})",
                    l.version, l.environment, l.deployment
                ),
            );
        }
        ctx.ui.status("Switched", format!("to {branch} at {from}"));
        ctx.ui.println(format!(
            "commit the fix here, then run `cutover hotfix finish` to release {next}"
        ));
    }
    Ok(())
}

/// Where the live release was found.
struct LiveIn {
    environment: String,
    deployment: i64,
    version: String,
}

/// The tag of production's current release: production is the environment named `production`,
/// else the last one of the `promote_from` chain (`cutover_views::production_environment`);
/// its current release is its newest `live` deployment (`cutover_views::current_release`).
fn live_in_production(ctx: &Ctx<'_>, format: &TagFormat) -> Result<(String, LiveIn)> {
    let config = optional_config(ctx)?;
    let environment = config
        .as_ref()
        .and_then(cutover_views::production_environment)
        .unwrap_or_else(|| "production".to_owned());
    // Without a live deployment there the release is unknown: as before, the user names it.
    let no_record = |why: &str| {
        CliError::usage(format!(
            "{why}, so the release live in production ({environment}) is unknown"
        ))
        .with_hint("name the release to fix: `cutover hotfix start --from v1.2.3`")
    };
    let store = ctx.store()?;
    let live = ctx
        .block_on(cutover_views::current_release(&*store, &environment))
        .map_err(super::status::views_error)?
        .ok_or_else(|| no_record(&format!("no live deployment to {environment} is recorded")))?;
    // The release record keeps the tag it was cut with (the tag format may have changed since).
    let release = ctx
        .block_on(store.get_release(&live.release_version))
        .map_err(crate::context::store_error)?;
    let tag = match release {
        Some(r) if !r.tag.is_empty() => r.tag,
        _ => {
            let version = semver::Version::parse(&live.release_version).map_err(|_| {
                no_record(&format!(
                    "the live release `{}` is not a semantic version",
                    live.release_version
                ))
            })?;
            format.format(&version)
        }
    };
    Ok((
        tag,
        LiveIn {
            environment,
            deployment: live.id,
            version: live.release_version,
        },
    ))
}

fn finish(ctx: &Ctx<'_>, dry_run: bool, push: Option<String>) -> Result<()> {
    let root = ctx.project_root()?;
    let config = optional_config(ctx)?;
    let repo = cutover_git::Repo::open(&root).map_err(|e| CliError::usage(e.to_string()))?;
    let head = repo.head().map_err(|e| CliError::usage(e.to_string()))?;
    let target = head
        .branch
        .as_deref()
        .and_then(|b| b.strip_prefix("hotfix/"))
        .and_then(|v| semver::Version::parse(v).ok())
        .ok_or_else(|| {
            CliError::usage(format!(
                "not on a hotfix branch (HEAD is {})",
                head.branch.as_deref().unwrap_or("detached")
            ))
            .with_hint("start one with `cutover hotfix start --from TAG`")
        })?;
    let format = tag_format(ctx)?;
    let releases = repo
        .releases(&format)
        .map_err(|e| CliError::usage(e.to_string()))?;
    let base = releases
        .iter()
        .rev()
        .find(|r| r.version.pre.is_empty() && r.version < target)
        .ok_or_else(|| {
            CliError::usage(format!(
                "no final release below {target} to base the hotfix on"
            ))
        })?;
    let target_text = target.to_string();
    let mut options = release_options(
        &root,
        config.as_ref(),
        &Selection {
            version: Some(&target_text),
            ..Selection::default()
        },
    )?;
    options.base = Some(base.tag.clone());
    let settings = settings(&root, config.as_ref(), options, dry_run, push, true);
    let released = cutover_release::ship::release(&root, &settings).map_err(|e| ship_error(&e))?;
    record_and_report(ctx, &released, dry_run, cutover_store::ReleaseKind::Hotfix)?;
    if !dry_run {
        // Links the release to the production deployment live when the branch was cut (recorded
        // by `hotfix start`); nothing is linked for a branch started with `--from`.
        // The release is made by now: a link that cannot be written is a warning, not a failure.
        let store = ctx.store()?;
        match ctx.block_on(cutover_metrics::links::link_hotfix_release(
            &*store,
            &released.planned.plan.next.version,
            &ctx.actor(),
        )) {
            Ok(Some(link)) if !ctx.global.json => ctx.ui.status(
                "Linked",
                format!(
                    "{} as the fix of deployment #{} in {}",
                    link.version, link.fixes_deployment, link.environment
                ),
            ),
            Ok(_) => {}
            Err(e) => ctx.ui.warn(format!(
                "the release is recorded, but not its link to the deployment it fixes: {e}"
            )),
        }
    }
    if !ctx.global.json {
        let mut ids: Vec<String> = released
            .planned
            .plan
            .changes
            .iter()
            .rev()
            .map(|c| c.id[..c.id.len().min(12)].to_owned())
            .collect();
        if let Some(c) = &released.changelog_commit {
            ids.push(c[..c.len().min(12)].to_owned());
        }
        ctx.ui.println(format!(
            "\nbring these commits back to the main branch:\n  git cherry-pick {}",
            ids.join(" ")
        ));
    }
    Ok(())
}
