//! The application's database: release-bound migrations with expand/contract phases, drift
//! detection, a migrator lock, down migrations, recovery points, restore and restore drills, on
//! PostgreSQL and SQLite.
//!
//! Modules: [`migrations`] (files, markers, checksums, statements; pure), `db` (connections, the
//! history table `cutover_migrations` in the application database, status/plan/migrate/rollback),
//! [`split`] (a script's statements, by each engine's lexical rules),
//! [`recovery`] (recovery points: `pg_dump -Fc` / the SQLite online backup API, manifests with
//! digests, restore, drill). Nothing here prints; every error says where and what to do.

mod db;
mod error;
pub mod migrations;
pub mod recovery;
pub mod split;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use cutover_config::Engine;
pub use db::{AppliedMigration, MigrationRef, Plan, Selection, Status, check_reversible};
pub use error::AppDbError;
pub use migrations::{Migration, Phase};
pub use recovery::{DrillReport, RecoveryPoint};

/// The application database of a project (or of a test): where it is, and where its migrations
/// and recovery points are kept.
#[derive(Clone)]
pub struct AppDb {
    engine: Engine,
    /// The connection URL or SQLite path; a secret (may hold a password): never shown.
    url: String,
    project_root: PathBuf,
    migrations_dir: PathBuf,
    keep_recovery_points: u32,
    drill_query: Option<String>,
    lock_timeout: Duration,
}

impl fmt::Debug for AppDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppDb")
            .field("engine", &self.engine)
            .field("target", &self.target())
            .field("migrations_dir", &self.migrations_dir)
            .finish_non_exhaustive()
    }
}

impl AppDb {
    /// From `[database]`: resolves the URL secret (`env` looks variables up) relative to the
    /// project.
    pub fn from_config(
        db: &cutover_config::Database,
        project_root: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<AppDb, AppDbError> {
        let url = db
            .url
            .resolve(project_root, env)
            .map_err(|e| AppDbError::Url {
                reference: db.url.reference(),
                message: e.to_string(),
            })?;
        let mut a = AppDb::new(db.engine, url.expose(), project_root);
        a.migrations_dir = project_root.join(&db.migrations);
        a.keep_recovery_points = db.keep_recovery_points;
        a.drill_query = db.drill.as_ref().map(|d| d.query.clone());
        Ok(a)
    }

    /// A database at `url` (PostgreSQL URL, or SQLite `sqlite:PATH` / a plain path, relative to
    /// `project_root`), migrations in `project_root/migrations`.
    pub fn new(engine: Engine, url: impl Into<String>, project_root: impl Into<PathBuf>) -> AppDb {
        let project_root = project_root.into();
        AppDb {
            engine,
            url: url.into(),
            migrations_dir: project_root.join("migrations"),
            project_root,
            keep_recovery_points: 10,
            drill_query: None,
            lock_timeout: Duration::from_secs(60),
        }
    }

    #[must_use]
    pub fn with_migrations_dir(mut self, dir: impl Into<PathBuf>) -> AppDb {
        self.migrations_dir = dir.into();
        self
    }

    /// How long a migrator waits for another one to finish.
    #[must_use]
    pub fn with_lock_timeout(mut self, timeout: Duration) -> AppDb {
        self.lock_timeout = timeout;
        self
    }

    #[must_use]
    pub fn with_drill_query(mut self, query: impl Into<String>) -> AppDb {
        self.drill_query = Some(query.into());
        self
    }

    #[must_use]
    pub fn engine(&self) -> Engine {
        self.engine
    }

    #[must_use]
    pub fn project_root(&self) -> &Path {
        &self.project_root
    }

    #[must_use]
    pub fn migrations_dir(&self) -> &Path {
        &self.migrations_dir
    }

    #[must_use]
    pub fn drill_query(&self) -> Option<&str> {
        self.drill_query.as_deref()
    }

    /// The migrations in the migrations directory, by version.
    pub fn load_migrations(&self) -> Result<Vec<Migration>, AppDbError> {
        migrations::load_dir(&self.migrations_dir)
    }

    /// The database, safe to show: the URL without its password, or the SQLite path.
    #[must_use]
    pub fn target(&self) -> String {
        match self.engine {
            Engine::Postgres => recovery::without_password(&self.url),
            Engine::Sqlite => self.sqlite_path().display().to_string(),
        }
    }

    /// The SQLite file (`sqlite:` / `sqlite://` prefixes and `?options` dropped; relative to the
    /// project).
    #[must_use]
    pub fn sqlite_path(&self) -> PathBuf {
        let u = self.url.as_str();
        let u = u
            .strip_prefix("sqlite://")
            .or_else(|| u.strip_prefix("sqlite:"))
            .unwrap_or(u);
        let u = u.split('?').next().unwrap_or(u);
        self.project_root.join(u)
    }
}
