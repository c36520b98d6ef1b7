//! `cutover init`: a commented cutover.toml for the project found, `.cutover/` and its ignore rule.

use crate::cli::InitArgs;
use crate::context::{CONFIG_FILE, Ctx, STATE_DIR};
use crate::error::{CliError, Result, ResultExt};
use crate::ui::{BOLD, Ui};
use std::path::Path;

pub fn run(ctx: &Ctx<'_>, args: &InitArgs) -> Result<()> {
    let root = ctx.project_root()?;
    let config_path = root.join(CONFIG_FILE);
    let existed = config_path.exists();
    if existed && !args.force {
        return Err(
            CliError::usage(format!("`{}` already exists", config_path.display()))
                .with_hint("keep it, or run `cutover init --force` to replace it"),
        );
    }

    let detected = cutover_config::init::detect(&root);
    let text = cutover_config::init::render(&detected);
    // The template must always load: if it does not, that is our bug, and nothing is written.
    cutover_config::load_str::<&str, &str>(&text, &config_path, &[]).map_err(|e| {
        CliError::internal("the generated cutover.toml does not load").with_cause(e)
    })?;

    let state_dir = root.join(STATE_DIR);
    std::fs::create_dir_all(&state_dir)
        .internal(|| format!("cannot create `{}`", state_dir.display()))?;
    // The proof-of-delivery signing key: made once, kept by every later init.
    let (key, key_origin) =
        cutover_proof::open_or_create(&state_dir).map_err(super::proof::key_error)?;
    let key_path = cutover_proof::key_paths(&state_dir).0;
    let key_created = key_origin == cutover_proof::KeyOrigin::Created;
    write_atomically(&config_path, &text)?;
    let ignored = ensure_ignored(&root)?;

    let store = ctx.store()?;
    let payload = serde_json::json!({
        "config": CONFIG_FILE,
        "replaced": existed,
        "detected": detected_json(&detected),
        "proof_keyid": key.keyid(),
    });
    let audit = cutover_store::Audit::new(
        ctx.actor(),
        "project.initialized",
        format!("project/{}", detected.name),
        payload,
    );
    ctx.block_on(store.append_audit(&audit))
        .map_err(crate::context::store_error)?;

    if ctx.global.json {
        ctx.ui.print_json(&serde_json::json!({
            "config": config_path,
            "replaced": existed,
            "state_dir": state_dir,
            "gitignore_updated": ignored,
            "detected": detected_json(&detected),
            "proof_key": { "path": key_path, "keyid": key.keyid(), "created": key_created },
        }));
    } else {
        ctx.ui.status(
            if existed { "Replaced" } else { "Created" },
            config_path.display(),
        );
        if ignored {
            ctx.ui
                .status("Ignored", format!("{STATE_DIR}/ in .gitignore"));
        }
        ctx.ui.status(
            if key_created { "Created" } else { "Kept" },
            format!(
                "proof key {} (keyid {})",
                key_path.strip_prefix(&root).unwrap_or(&key_path).display(),
                key.keyid()
            ),
        );
        let lockfiles = detected
            .lockfiles
            .iter()
            .map(|l| l.file_name())
            .collect::<Vec<_>>()
            .join(", ");
        ctx.ui.println(format!(
            "{} {}\n  lockfiles: {}\n  next: edit {CONFIG_FILE}, then run `cutover plan`",
            Ui::paint(BOLD, "project"),
            detected.name,
            if lockfiles.is_empty() {
                "none found".to_owned()
            } else {
                lockfiles
            },
        ));
    }
    Ok(())
}

fn detected_json(d: &cutover_config::init::Detected) -> serde_json::Value {
    serde_json::json!({
        "name": d.name,
        "lockfiles": d.lockfiles.iter().map(|l| l.file_name()).collect::<Vec<_>>(),
        "build": d.build,
        "artifact": d.artifact,
        "tests": d.tests.iter().map(|(_, argv)| argv).collect::<Vec<_>>(),
    })
}

/// Writes through a temporary file and a rename so an interrupted init leaves no half file.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).internal(|| format!("cannot write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, path).internal(|| format!("cannot write `{}`", path.display()))
}

/// Adds `.cutover/` to the work tree's `.gitignore` unless a line already ignores it.
fn ensure_ignored(root: &Path) -> Result<bool> {
    let path = root.join(".gitignore");
    let current = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(
                CliError::internal(format!("cannot read `{}`", path.display())).with_cause(e),
            );
        }
    };
    let already = current
        .lines()
        .map(str::trim)
        .any(|l| matches!(l, ".cutover" | ".cutover/" | "/.cutover" | "/.cutover/"));
    if already {
        return Ok(false);
    }
    let mut next = current;
    if !next.is_empty() && !next.ends_with('\n') {
        next.push('\n');
    }
    next.push_str("# cutover's local state (store, artifacts, keys)\n/.cutover/\n");
    std::fs::write(&path, next).internal(|| format!("cannot write `{}`", path.display()))?;
    Ok(true)
}
