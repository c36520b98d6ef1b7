//! What every command needs: the project root, its configuration, cutover's store and the actor,
//! each found once and turned into a clear error when it cannot be.

use crate::cli::GlobalArgs;
use crate::error::{CliError, Result, ResultExt};
use crate::ui::Ui;
use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

/// The configuration file's name at the project root.
pub const CONFIG_FILE: &str = "cutover.toml";
/// cutover's private directory at the project root (state, artifacts, keys; git-ignored).
pub const STATE_DIR: &str = ".cutover";

pub struct Ctx<'a> {
    pub ui: &'a Ui,
    pub global: GlobalArgs,
    shared: Rc<Shared>,
}

/// What one command opens at most once, and shares with the steps it runs (`cutover ship` runs
/// `release`, `check`, …): opening the SQLite store and asking git for the actor cost
/// milliseconds each, which the rollback path cannot spare.
#[derive(Default)]
struct Shared {
    // Declared before the runtime so that the store's pool is dropped while the runtime exists.
    store: OnceCell<(String, Arc<dyn cutover_store::Store>)>,
    actor: OnceCell<String>,
    runtime: OnceCell<tokio::runtime::Runtime>,
}

impl<'a> Ctx<'a> {
    pub fn new(ui: &'a Ui, global: GlobalArgs) -> Self {
        Self {
            ui,
            global,
            shared: Rc::default(),
        }
    }

    /// A context for a step of this command with its own output settings, sharing this one's
    /// runtime, store and actor.
    pub fn step<'b>(&self, ui: &'b Ui, global: GlobalArgs) -> Ctx<'b> {
        Ctx {
            ui,
            global,
            shared: Rc::clone(&self.shared),
        }
    }

    /// The project's git work tree: `--project DIR` (which must be one) or the one containing the
    /// current directory.
    pub fn project_root(&self) -> Result<PathBuf> {
        let start = match &self.global.project {
            Some(dir) => {
                let meta = std::fs::metadata(dir).map_err(|e| {
                    CliError::usage(format!(
                        "project directory `{}` cannot be read",
                        dir.display()
                    ))
                    .with_cause(e)
                })?;
                if !meta.is_dir() {
                    return Err(CliError::usage(format!(
                        "project path `{}` is not a directory",
                        dir.display()
                    )));
                }
                dir.clone()
            }
            None => {
                std::env::current_dir().internal(|| "cannot read the current directory".into())?
            }
        };
        let start = std::fs::canonicalize(&start).unwrap_or(start);
        find_work_tree(&start).ok_or_else(|| {
            CliError::usage(format!("`{}` is not inside a git work tree", start.display()))
                .with_hint("cutover plans releases from git history: run it inside a git repository, pass `--project DIR`, or run `git init` first")
        })
    }

    pub fn config_path(&self) -> Result<PathBuf> {
        Ok(self.project_root()?.join(CONFIG_FILE))
    }

    /// Loads and validates `cutover.toml` (with `CUTOVER_*__*` overrides).
    pub fn config(&self) -> Result<cutover_config::Config> {
        let path = self.config_path()?;
        cutover_config::load(&path).map_err(config_error)
    }

    /// A tokio runtime for the async libraries (the store, the agent protocol).
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        let rt = self.shared.runtime.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("the tokio runtime starts (threads and an epoll instance)")
        });
        rt.block_on(fut)
    }

    /// The store URL: `--database`/`CUTOVER_DATABASE_URL`, else `.cutover/state.db` in the project.
    pub fn store_url(&self) -> Result<String> {
        match &self.global.database {
            Some(url) if !url.trim().is_empty() => Ok(url.clone()),
            _ => Ok(format!(
                "sqlite:{}",
                self.project_root()?
                    .join(STATE_DIR)
                    .join("state.db")
                    .display()
            )),
        }
    }

    /// Opens cutover's store (creating and migrating it when needed), once per command: later
    /// calls (with the same URL) return the same handle.
    pub fn store(&self) -> Result<Arc<dyn cutover_store::Store>> {
        let url = self.store_url()?;
        if let Some((opened, store)) = self.shared.store.get()
            && *opened == url
        {
            return Ok(Arc::clone(store));
        }
        let store = self
            .block_on(cutover_store::open(&url))
            .map_err(store_error)?;
        // A step with another `--database` keeps its own (not cached).
        let _ = self.shared.store.set((url, Arc::clone(&store)));
        Ok(store)
    }

    /// Who is acting: `CUTOVER_ACTOR`, else the git user's email, else the OS user (looked up
    /// once per command).
    pub fn actor(&self) -> String {
        self.shared
            .actor
            .get_or_init(|| resolve_actor(self.project_root().ok().as_deref()))
            .clone()
    }
}

/// Walks up from `start` to the directory holding `.git` (a directory, or a file for worktrees).
pub fn find_work_tree(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join(".git").exists())
        .map(Path::to_path_buf)
}

fn resolve_actor(project: Option<&Path>) -> String {
    if let Ok(actor) = std::env::var("CUTOVER_ACTOR")
        && !actor.trim().is_empty()
    {
        return actor.trim().to_owned();
    }
    if let Some(email) = git_user_email(project) {
        return email;
    }
    for var in ["USER", "LOGNAME", "USERNAME"] {
        if let Ok(user) = std::env::var(var)
            && !user.is_empty()
        {
            return user;
        }
    }
    "unknown".to_owned()
}

/// Reads `user.email` through the system git so that includes and conditional config apply exactly
/// as they do for the user's commits.
fn git_user_email(project: Option<&Path>) -> Option<String> {
    let mut cmd = std::process::Command::new("git");
    if let Some(dir) = project {
        cmd.arg("-C").arg(dir);
    }
    let out = cmd.args(["config", "--get", "user.email"]).output().ok()?;
    let email = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !email.is_empty()).then_some(email)
}

/// A configuration error is the user's to fix: exit 2, with the loader's location and hint.
pub fn config_error(err: cutover_config::ConfigError) -> CliError {
    let hint = err.hint();
    CliError::usage(err.to_string()).with_hint_opt(hint)
}

/// Store errors: a bad URL, an unreachable server or a newer schema are the user's to fix.
pub fn store_error(err: cutover_store::StoreError) -> CliError {
    let hint = err.hint();
    let e = if err.is_user_error() {
        CliError::usage(err.to_string())
    } else {
        CliError::internal(err.to_string())
    };
    e.with_hint_opt(hint)
}
