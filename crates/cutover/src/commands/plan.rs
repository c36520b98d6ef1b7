//! `cutover plan`: the next version, why, the grouped changes and the draft notes; changes nothing.

use crate::cli::PlanArgs;
use crate::context::Ctx;
use crate::error::{CliError, Result};
use crate::ui::{BOLD, DIM, Ui};
use cutover_core::commit::UnconventionalPolicy;
use cutover_core::version::{Rules, ZeroMajorBreaking};
use cutover_release::{MergePolicy, Options, ReleaseError};
use std::path::{Path, PathBuf};

pub fn run(ctx: &Ctx<'_>, args: &PlanArgs) -> Result<()> {
    let root = ctx.project_root()?;
    let config = optional_config(ctx)?;
    let options = release_options(
        &root,
        config.as_ref(),
        &Selection {
            package: args.package.as_deref(),
            template: args.template.as_deref(),
            pre: args.pre.as_deref(),
            version: args.version.as_deref(),
        },
    )?;
    let planned = cutover_release::plan(&root, &options).map_err(|e| release_error(&e))?;
    for warning in &planned.warnings {
        ctx.ui.warn(warning);
    }
    if ctx.global.json {
        let value = serde_json::to_value(&planned.plan)
            .map_err(|e| CliError::internal("cannot serialise the plan").with_cause(e))?;
        ctx.ui.print_json(&value);
        return Ok(());
    }
    let plan = &planned.plan;
    let current = match &plan.current {
        Some(c) => format!(
            "{} ({}, {})",
            c.version,
            c.tag,
            &c.commit[..c.commit.len().min(7)]
        ),
        None => "none yet (first release)".to_owned(),
    };
    let bump = serde_json::to_value(plan.next.bump)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut out = format!(
        "{} {current}\n{} {} {}\n",
        Ui::paint(BOLD, "current"),
        Ui::paint(BOLD, "next   "),
        Ui::paint(BOLD, &plan.next.version),
        Ui::paint(DIM, format!("({bump}, tag {})", planned.next_tag)),
    );
    for reason in &plan.next.reasons {
        let id = &reason.commit[..reason.commit.len().min(7)];
        if id.is_empty() {
            out.push_str(&format!("        because {}\n", reason.why));
        } else {
            out.push_str(&format!("        because {id} {}\n", reason.why));
        }
    }
    out.push_str(&format!(
        "{} {} since the last release, {} not conventional\n\n",
        Ui::paint(BOLD, "changes"),
        plan.changes.len(),
        plan.unconventional.len()
    ));
    out.push_str(&plan.notes);
    ctx.ui.print(out);
    Ok(())
}

/// `cutover.toml` if there is one: `plan` and `changelog` work on any git repository with the
/// defaults, so a project can be tried before `cutover init`.
pub(super) fn optional_config(ctx: &Ctx<'_>) -> Result<Option<cutover_config::Config>> {
    if ctx.config_path()?.exists() {
        ctx.config().map(Some)
    } else {
        Ok(None)
    }
}

/// What the command line selects on top of the configuration.
#[derive(Debug, Default)]
pub(super) struct Selection<'a> {
    pub package: Option<&'a str>,
    pub template: Option<&'a Path>,
    pub pre: Option<&'a str>,
    pub version: Option<&'a str>,
}

/// The planning options from `cutover.toml` (or the defaults) and the command line.
pub(super) fn release_options(
    root: &Path,
    config: Option<&cutover_config::Config>,
    selection: &Selection<'_>,
) -> Result<Options> {
    let mut options = Options::default();
    if let Some(config) = config {
        let v = &config.versioning;
        options.tag_format = config.project.tag_format.clone();
        options.rules = Rules {
            initial: semver::Version::parse(&v.initial).map_err(|e| {
                CliError::usage(format!(
                    "[versioning] initial = `{}` is not a SemVer version",
                    v.initial
                ))
                .with_cause(e)
                .with_hint("write a full version such as \"0.1.0\"")
            })?,
            zero_major_breaking: match v.zero_major_breaking {
                cutover_config::ZeroMajorBreaking::Minor => ZeroMajorBreaking::Minor,
                cutover_config::ZeroMajorBreaking::Major => ZeroMajorBreaking::Major,
            },
            ..Rules::default()
        };
        options.policy = match v.unconventional {
            cutover_config::Unconventional::Ignore => UnconventionalPolicy::Ignore,
            cutover_config::Unconventional::Other => UnconventionalPolicy::Other,
            cutover_config::Unconventional::Error => UnconventionalPolicy::Error,
        };
        options.walk.merges = match v.merges {
            cutover_config::Merges::Skip => MergePolicy::Skip,
            cutover_config::Merges::Include => MergePolicy::Include,
        };
        options.issue_url = v.issue_link.clone();
        options.template = v.changelog.template.as_ref().map(|t| root.join(t));
    }
    if let Some(name) = selection.package {
        let packages = config.map(|c| c.packages.as_slice()).unwrap_or_default();
        let package = packages.iter().find(|p| p.name == name).ok_or_else(|| {
            let known: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
            CliError::usage(format!("no package `{name}` in cutover.toml")).with_hint(
                if known.is_empty() {
                    "declare it as a [[packages]] entry with a name and a path".to_owned()
                } else {
                    format!("known packages: {}", known.join(", "))
                },
            )
        })?;
        options.tag_format = package.tag_format.replace("{name}", &package.name);
        options.walk.path = Some(package.path.clone());
    }
    if let Some(template) = selection.template {
        options.template = Some(absolute(root, template));
    }
    options.pre = selection.pre.map(str::to_owned);
    if let Some(version) = selection.version {
        let version = version.trim().trim_start_matches('v');
        options.explicit = Some(semver::Version::parse(version).map_err(|e| {
            CliError::usage(format!("--version `{version}` is not a SemVer version"))
                .with_cause(e)
                .with_hint("write a full version such as 1.4.0 or 2.0.0-rc.1")
        })?);
    }
    options.source_date_epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    Ok(options)
}

fn absolute(root: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_owned();
    }
    // A relative --template is relative to where the user is, like any file argument.
    std::env::current_dir()
        .map(|d| d.join(path))
        .unwrap_or_else(|_| root.join(path))
}

/// Planning errors are the user's to fix (exit 2) except unreadable repositories (exit 1);
/// a `hint:` inside the library's message becomes the CLI's hint line.
pub(super) fn release_error(err: &ReleaseError) -> CliError {
    let internal = matches!(err, ReleaseError::Git(cutover_git::GitError::Gix { .. }));
    let text = err.to_string();
    let (message, hint) = match text
        .split_once("; hint: ")
        .or_else(|| text.split_once("\nhint: "))
    {
        Some((m, h)) => (m.to_owned(), Some(h.to_owned())),
        None => (text, None),
    };
    let e = if internal {
        CliError::internal(message)
    } else {
        CliError::usage(message)
    };
    e.with_hint_opt(hint)
}
