//! `cutover changelog`: one section per release tag (newest first) with the notes template, for
//! every release (`--all`, the default) or one range; bootstraps `CHANGELOG.md` when there is none.

use super::plan::{Selection, optional_config, release_error, release_options};
use crate::cli::ChangelogArgs;
use crate::context::Ctx;
use crate::error::{CliError, Result};
use cutover_release::ChangelogRange;
use std::path::{Path, PathBuf};

pub fn run(ctx: &Ctx<'_>, args: &ChangelogArgs) -> Result<()> {
    let root = ctx.project_root()?;
    let config = optional_config(ctx)?;
    let options = release_options(
        &root,
        config.as_ref(),
        &Selection {
            package: args.package.as_deref(),
            template: args.template.as_deref(),
            ..Selection::default()
        },
    )?;
    let range = match &args.range {
        Some(spec) => ChangelogRange::Range(spec.clone()),
        None => ChangelogRange::All,
    };
    let changelog =
        cutover_release::changelog(&root, &options, &range).map_err(|e| release_error(&e))?;
    for warning in &changelog.warnings {
        ctx.ui.warn(warning);
    }

    let default_file = root.join(config.as_ref().map_or_else(
        || PathBuf::from("CHANGELOG.md"),
        |c| c.versioning.changelog.file.clone(),
    ));
    // `--output FILE` writes there; a full changelog of a project that has none bootstraps it;
    // anything else goes to stdout.
    let target = match &args.output {
        Some(path) => Some(path.clone()),
        None if range == ChangelogRange::All && !default_file.exists() => Some(default_file),
        None => None,
    };
    if let Some(path) = &target {
        write_atomically(path, &changelog.text)?;
    }
    if ctx.global.json {
        ctx.ui.print_json(&serde_json::json!({
            "sections": changelog.sections,
            "commits": changelog.commits,
            "written": target,
            "text": changelog.text,
        }));
    } else if let Some(path) = &target {
        ctx.ui.status(
            "Wrote",
            format!(
                "{} ({} sections, {} commits)",
                path.display(),
                changelog.sections,
                changelog.commits
            ),
        );
    } else {
        ctx.ui.print(&changelog.text);
    }
    Ok(())
}

/// Writes through a temporary file and a rename, so an interrupted run leaves the old file intact.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("md.tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| CliError::usage(format!("cannot write `{}`", path.display())).with_cause(e))
}
