//! `cutover bom` (the bill of materials of the project: a summary on a terminal, CycloneDX 1.6 or
//! SPDX 2.3 JSON otherwise), `cutover bom --check` (license policy) and `cutover bom diff A B`.

use crate::cli::{BomArgs, BomCommand, BomFormat};
use crate::context::Ctx;
use crate::error::{CliError, Result};
use crate::ui::{BOLD, DIM, Ui};
use cutover_bom::Bom;
use cutover_bom::policy::{LicensePolicy, PackageException, Severity, UnknownLicense};
use std::path::Path;

pub fn run(ctx: &Ctx<'_>, args: &BomArgs) -> Result<()> {
    if let Some(BomCommand::Diff { a, b }) = &args.command {
        return diff(ctx, a, b);
    }
    let root = ctx.project_root()?;
    let bom = match &args.release {
        Some(v) => {
            let mut b = cutover_bom::gitrev::discover_at_revision(&root, v, &cutover_bom::DiscoverOptions::default())
                .map_err(|e| {
                    CliError::usage(e.to_string())
                        .with_hint("give a release version whose tag exists (`1.2.0` finds `v1.2.0`), or any git revision")
                })?;
            b.version = Some(v.clone());
            b
        }
        None => {
            let mut b = cutover_bom::discover_and_parse(&root);
            b.created = head_commit_time(&root);
            b
        }
    };
    for f in &bom.files {
        for w in &f.warnings {
            let at = w.line.map(|l| format!(":{l}")).unwrap_or_default();
            ctx.ui.detail(format!("{}{at}: {}", f.path, w.message));
        }
    }
    let format = match (args.format, &args.output) {
        (Some(f), _) => Some(f),
        (None, Some(_)) => Some(BomFormat::CyclonedxJson),
        (None, None) if ctx.ui.stdout_is_terminal() || ctx.global.json || args.check => None,
        (None, None) => Some(BomFormat::CyclonedxJson),
    };
    if let Some(format) = format {
        let doc = match format {
            BomFormat::CyclonedxJson => bom.to_cyclonedx_json(),
            BomFormat::SpdxJson => bom.to_spdx_json(),
        };
        match &args.output {
            Some(path) => {
                std::fs::write(path, doc).map_err(|e| {
                    CliError::failed(format!("cannot write {}", path.display())).with_cause(e)
                })?;
                ctx.ui.status(
                    "Wrote",
                    format!("{} ({} components)", path.display(), bom.components.len()),
                );
            }
            None => ctx.ui.print(doc),
        }
    } else if !args.check {
        summary(ctx, &bom);
    }
    let violations = if args.check {
        check(ctx, &bom)?
    } else {
        Vec::new()
    };
    let failures: Vec<String> = bom.failures().map(ToString::to_string).collect();
    if !failures.is_empty() {
        return Err(CliError::failed(format!(
            "{} of {} lockfiles could not be read; the bill of materials lacks their components",
            failures.len(),
            bom.files.len()
        ))
        .with_cause(failures.join("\n"))
        .with_hint("fix or regenerate the lockfiles named above (the other lockfiles were used)"));
    }
    let errors = violations
        .iter()
        .filter(|v| v.severity == Severity::Error)
        .count();
    if errors > 0 {
        return Err(CliError::failed(format!("{errors} components violate the license policy"))
            .with_hint("allow the license in [licenses] of cutover.toml, or add a [[licenses.exceptions]] entry for the package"));
    }
    Ok(())
}

/// The time of the HEAD commit, so the same commit gives the same BOM bytes.
fn head_commit_time(root: &Path) -> Option<i64> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["log", "-1", "--format=%ct"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn summary(ctx: &Ctx<'_>, bom: &Bom) {
    let s = bom.summary();
    if ctx.global.json {
        ctx.ui
            .print_json(&serde_json::to_value(&s).unwrap_or_default());
        return;
    }
    let mut out = format!(
        "{}  {} components from {} lockfiles: {} direct, {} transitive\n",
        Ui::paint(BOLD, "Bill of materials"),
        s.components,
        s.lockfiles,
        s.direct,
        s.transitive
    );
    out.push_str(&format!("{}\n", Ui::paint(BOLD, "By ecosystem")));
    for (k, v) in &s.by_ecosystem {
        out.push_str(&format!("  {k:<12} {v:>6}\n"));
    }
    out.push_str(&format!("{}\n", Ui::paint(BOLD, "By scope")));
    for (k, v) in &s.by_scope {
        out.push_str(&format!("  {k:<12} {v:>6}\n"));
    }
    out.push_str(&format!("{}\n", Ui::paint(BOLD, "Licenses")));
    let mut lic: Vec<(&String, &usize)> = s.by_license.iter().collect();
    lic.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (k, v) in lic.iter().take(15) {
        out.push_str(&format!("  {v:>6}  {k}\n"));
    }
    if lic.len() > 15 {
        out.push_str(&format!(
            "  {}\n",
            Ui::paint(DIM, format!("… {} more", lic.len() - 15))
        ));
    }
    for f in &bom.files {
        let status = match &f.error {
            Some(e) => format!("error: {}", e.message),
            None => format!("{} components", f.components),
        };
        out.push_str(&format!("  {} {}\n", Ui::paint(DIM, &f.path), status));
    }
    ctx.ui.print(out);
}

fn policy_from_config(c: &cutover_config::Config) -> LicensePolicy {
    LicensePolicy {
        allow: c.licenses.allow.clone(),
        exceptions: c
            .licenses
            .exceptions
            .iter()
            .map(|e| PackageException {
                name: e.package.clone(),
                version: e.version.clone(),
                allow: e.allow.clone(),
                reason: e.reason.clone(),
            })
            .collect(),
        unknown: match c.licenses.unknown {
            cutover_config::UnknownLicense::Allow => UnknownLicense::Allow,
            cutover_config::UnknownLicense::Warn => UnknownLicense::Warn,
            cutover_config::UnknownLicense::Deny => UnknownLicense::Deny,
        },
        include_dev: false,
    }
}

fn check(ctx: &Ctx<'_>, bom: &Bom) -> Result<Vec<cutover_bom::Violation>> {
    let config = ctx.config()?;
    let violations = cutover_bom::policy::check(bom, &policy_from_config(&config));
    if ctx.global.json {
        ctx.ui
            .print_json(&serde_json::json!({ "violations": violations }));
        return Ok(violations);
    }
    if violations.is_empty() {
        ctx.ui.println(format!(
            "license check passed: {} components",
            bom.components.len()
        ));
        return Ok(violations);
    }
    let mut out = format!(
        "{:<8} {:<40} {:<16} {:<32} {}\n",
        "", "PACKAGE", "VERSION", "EXPRESSION", "WHY"
    );
    for v in &violations {
        let sev = match v.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        out.push_str(&format!(
            "{:<8} {:<40} {:<16} {:<32} {}\n",
            sev,
            v.package,
            v.version,
            v.expression.as_deref().unwrap_or("-"),
            v.why
        ));
    }
    ctx.ui.print(out);
    Ok(violations)
}

/// A BOM file (CycloneDX JSON), or else the BOM at a git revision / release version.
fn load_bom(ctx: &Ctx<'_>, what: &str) -> Result<Bom> {
    if Path::new(what).is_file() {
        let text = std::fs::read_to_string(what).map_err(|e| {
            CliError::usage(format!("cannot read the BOM file {what}")).with_cause(e)
        })?;
        return Bom::from_cyclonedx_json(&text).map_err(|e| {
            CliError::usage(format!("{what}: {e}")).with_hint("give CycloneDX JSON BOMs")
        });
    }
    let root = ctx.project_root()?;
    cutover_bom::gitrev::discover_at_revision(&root, what, &cutover_bom::DiscoverOptions::default()).map_err(|e| {
        CliError::usage(format!("`{what}` is neither a BOM file nor a release of this project"))
            .with_cause(e)
            .with_hint("give CycloneDX JSON files written by `cutover bom --output FILE`, or release versions / git revisions")
    })
}

fn diff(ctx: &Ctx<'_>, a: &str, b: &str) -> Result<()> {
    let (ba, bb) = (load_bom(ctx, a)?, load_bom(ctx, b)?);
    let d = cutover_bom::diff(&ba, &bb);
    if ctx.global.json {
        ctx.ui
            .print_json(&serde_json::to_value(&d).unwrap_or_default());
        return Ok(());
    }
    if d.is_empty() {
        ctx.ui.println("no changes in the bill of materials");
        return Ok(());
    }
    let mut out = String::new();
    for e in &d.added {
        out.push_str(&format!("+ {:<40} {}\n", e.name, e.version));
    }
    for e in &d.removed {
        out.push_str(&format!("- {:<40} {}\n", e.name, e.version));
    }
    for u in &d.upgraded {
        out.push_str(&format!("↑ {:<40} {} → {}\n", u.name, u.from, u.to));
    }
    for u in &d.downgraded {
        out.push_str(&format!("↓ {:<40} {} → {}\n", u.name, u.from, u.to));
    }
    for l in &d.license_changes {
        out.push_str(&format!(
            "§ {:<40} {} license {} → {}\n",
            l.name,
            l.version,
            l.from.as_deref().unwrap_or("unknown"),
            l.to.as_deref().unwrap_or("unknown")
        ));
    }
    out.push_str(&format!(
        "{} added, {} removed, {} upgraded, {} downgraded, {} license changes\n",
        d.added.len(),
        d.removed.len(),
        d.upgraded.len(),
        d.downgraded.len(),
        d.license_changes.len()
    ));
    ctx.ui.print(out);
    Ok(())
}
