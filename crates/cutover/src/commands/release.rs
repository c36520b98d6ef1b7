//! `cutover release`: refuse a dirty tree, build, pack the artifact, update and commit the
//! changelog, tag, record the release with its audit event; `--dry-run` says what would happen.
//! Also the release half of `cutover hotfix finish`.

use super::plan::{Selection, optional_config, release_options};
use crate::cli::ReleaseArgs;
use crate::context::{Ctx, STATE_DIR, store_error};
use crate::error::{CliError, Result};
use cutover_release::Options;
use cutover_release::ship::{self, Released, Settings, ShipError};
use std::path::Path;

pub fn run(ctx: &Ctx<'_>, args: &ReleaseArgs) -> Result<()> {
    let root = ctx.project_root()?;
    let config = optional_config(ctx)?;
    let options = release_options(
        &root,
        config.as_ref(),
        &Selection {
            pre: args.pre.as_deref(),
            version: args.version.as_deref(),
            ..Selection::default()
        },
    )?;
    let settings = settings(
        &root,
        config.as_ref(),
        options,
        args.dry_run,
        args.push.then(|| args.remote.clone()),
        false,
    );
    let released = ship::release(&root, &settings).map_err(|e| ship_error(&e))?;
    record_and_report(
        ctx,
        &released,
        args.dry_run,
        cutover_store::ReleaseKind::Normal,
    )
}

/// The release settings from `cutover.toml` (or the defaults: no build, changelog updated and committed).
pub(super) fn settings(
    root: &Path,
    config: Option<&cutover_config::Config>,
    options: Options,
    dry_run: bool,
    push: Option<String>,
    hotfix: bool,
) -> Settings {
    let default_changelog = cutover_config::Changelog::default();
    let changelog = config.map_or(&default_changelog, |c| &c.versioning.changelog);
    Settings {
        options,
        dry_run,
        build: config.and_then(|c| c.build.as_ref()).map(|b| ship::Build {
            run: b.run.as_slice().to_vec(),
            artifact: b.artifact.clone(),
            env: b.env.clone(),
            workdir: b.workdir.clone(),
        }),
        changelog: changelog.update.then(|| ship::ChangelogFile {
            file: changelog.file.clone(),
            commit: changelog.commit,
            commit_message: changelog.commit_message.clone(),
        }),
        state_dir: root.join(STATE_DIR),
        push,
        hotfix,
    }
}

/// Records the release (unless a dry run) and prints what happened.
pub(super) fn record_and_report(
    ctx: &Ctx<'_>,
    released: &Released,
    dry_run: bool,
    kind: cutover_store::ReleaseKind,
) -> Result<()> {
    for warning in &released.planned.warnings {
        ctx.ui.warn(warning);
    }
    let plan = &released.planned.plan;
    let kind_name = match kind {
        cutover_store::ReleaseKind::Hotfix => "hotfix",
        _ => "normal",
    };
    // Known vulnerabilities found at release time (stored with the release).
    let mut vulnerabilities = None;
    if !dry_run {
        let changes = serde_json::to_value(&plan.changes)
            .map_err(|e| CliError::internal("cannot serialise the changes").with_cause(e))?;
        let store = ctx.store()?;
        // The release carries its bill of materials: the work tree is the tagged commit here
        // (release refuses a dirty tree), so this is the BOM of exactly what was released.
        let bom = cutover_bom::discover_and_parse(&ctx.project_root()?);
        for failed in bom.files.iter().filter_map(|f| f.error.as_ref()) {
            ctx.ui.warn(format!("bill of materials: {failed}"));
        }
        let bom_json: serde_json::Value = serde_json::from_str(&bom.to_cyclonedx_json())
            .map_err(|e| CliError::internal("the bill of materials is not JSON").with_cause(e))?;
        // The known vulnerabilities of that BOM now, stored with the release so that
        // `cutover vulns --release V` can later tell which findings are new since.
        let config = optional_config(ctx)?;
        let vulns = super::vulns::scan_for_record(ctx, &ctx.project_root()?, config.as_ref(), &bom);
        vulnerabilities = vulns
            .as_ref()
            .and_then(|v| v["findings"].as_array().map(Vec::len));
        let record = cutover_store::Release {
            version: plan.next.version.clone(),
            tag: released.tag.clone(),
            commit: released.commit.clone(),
            kind,
            notes: plan.notes.clone(),
            changes,
            artifact_digest: released.artifact.as_ref().map(|a| a.digest.clone()),
            bom: Some(bom_json),
            vulns,
            created_at: chrono::Utc::now(),
        };
        let audit = cutover_store::Audit::new(
            ctx.actor(),
            "release.created",
            format!("release/{}", plan.next.version),
            serde_json::json!({
                "version": plan.next.version,
                "tag": released.tag,
                "commit": released.commit,
                "kind": kind_name,
                "artifact": released.artifact.as_ref().map(|a| &a.digest),
                "components": bom.components.len(),
            }),
        );
        ctx.block_on(store.apply_one(cutover_store::Change::InsertRelease(record), &audit))
            .map_err(store_error)?;
    }
    if ctx.global.json {
        ctx.ui.print_json(&serde_json::json!({
            "dry_run": dry_run,
            "version": plan.next.version,
            "tag": released.tag,
            "commit": released.commit,
            "kind": kind_name,
            "artifact": released.artifact.as_ref().map(|a| serde_json::json!({
                "digest": a.digest, "path": a.path, "size": a.size, "files": a.files,
            })),
            "changelog_commit": released.changelog_commit,
            "pushed": released.pushed,
            "steps": released.steps,
            "notes": plan.notes,
            "vulnerabilities": vulnerabilities,
        }));
        return Ok(());
    }
    if dry_run {
        ctx.ui.println(format!(
            "would release {} ({}), changing nothing now:",
            plan.next.version, released.tag
        ));
        for step in &released.steps {
            ctx.ui.println(format!("  - {step}"));
        }
        ctx.ui.println("");
        ctx.ui.print(&plan.notes);
        return Ok(());
    }
    if let Some(a) = &released.artifact {
        ctx.ui.status(
            "Packed",
            format!("{} ({} files, {} bytes)", a.digest, a.files, a.size),
        );
    }
    if let Some(c) = &released.changelog_commit {
        ctx.ui
            .status("Committed", format!("changelog {}", &c[..c.len().min(7)]));
    }
    ctx.ui.status(
        "Tagged",
        format!(
            "{} at {}",
            released.tag,
            &released.commit[..released.commit.len().min(7)]
        ),
    );
    if released.artifact.is_none() {
        ctx.ui
            .detail("no [build] section: this release has no artifact to deploy");
    }
    if released.pushed {
        ctx.ui.status("Pushed", &released.tag);
    }
    if let Some(n) = vulnerabilities {
        ctx.ui.status(
            "Scanned",
            format!("{n} known vulnerabilities in its bill of materials (stored with the release)"),
        );
    }
    ctx.ui
        .status("Released", format!("{} ({kind_name})", plan.next.version));
    Ok(())
}

/// Refusals are bad input (exit 2, nothing changed); a failed build or git write is a failed
/// operation (exit 1). A `hint:` inside the message becomes the hint line.
pub(super) fn ship_error(err: &ShipError) -> CliError {
    if let ShipError::Plan(e) = err {
        return super::plan::release_error(e);
    }
    let failed = matches!(
        err,
        ShipError::Build { .. } | ShipError::Git(_) | ShipError::Io { .. } | ShipError::Artifact(_)
    );
    let text = err.to_string();
    let (message, hint) = match text
        .split_once("; hint: ")
        .or_else(|| text.split_once("\nhint: "))
    {
        Some((m, h)) => (m.to_owned(), Some(h.to_owned())),
        None => (text, None),
    };
    let e = if failed {
        CliError::failed(message)
    } else {
        CliError::usage(message)
    };
    e.with_hint_opt(hint)
}
