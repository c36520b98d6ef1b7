//! The local vulnerability database: an SQLite file (default `.cutover/vulns.db`) holding the
//! imported advisories, an index of affected packages on (ecosystem, normalised name), the
//! sources imported and what each skipped; next to it the match index file that matching reads
//! (`vulns.db-index`, [`crate::index`]), rebuilt from the tables whenever it is not current.

use crate::import::{Loaded, Skipped};
use crate::index::{self, IndexFile};
use crate::names;
use crate::osv::{Advisory, Affected};
use crate::severity::Level;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The database file's default place, relative to the project root.
pub const DEFAULT_PATH: &str = ".cutover/vulns.db";

/// A database error, with the database file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{path}: {source}")]
    Sql {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "{path}: the database exists already (hint: import into it with `cutover vulns import`)"
    )]
    Exists { path: PathBuf },
    #[error("{path}: cannot create the directory: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: database format {found} is newer than this cutover reads (format {supported}) (hint: upgrade cutover, or delete the file and import the advisories again)"
    )]
    NewerFormat {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("{path}: cannot write the match index: {source}")]
    IndexIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason} (hint: delete the file; it is rebuilt from the database)")]
    IndexCorrupt { path: PathBuf, reason: String },
    #[error("{path}: stored advisory {id} is unreadable: {reason} (hint: re-import its source)")]
    Corrupt {
        path: PathBuf,
        id: String,
        reason: String,
    },
}

/// The database format this code reads and writes (`PRAGMA user_version`). Format 1 (user_version
/// 0, before the match index file) kept every package's entries as JSON in a `package_index`
/// table; it is upgraded in place on open (the table is dropped, the index file built on first
/// use). A newer format is refused.
pub const FORMAT_VERSION: i64 = 2;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS advisories (
    id TEXT PRIMARY KEY,
    modified TEXT NOT NULL,
    published TEXT,
    withdrawn TEXT,
    summary TEXT,
    aliases TEXT NOT NULL,
    score REAL,
    level TEXT NOT NULL,
    vector TEXT,
    informational TEXT,
    has_git INTEGER NOT NULL,
    source TEXT NOT NULL,
    file TEXT NOT NULL,
    digest TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS advisories_source ON advisories(source);
CREATE TABLE IF NOT EXISTS affected (
    advisory_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    ecosystem TEXT NOT NULL,
    name TEXT NOT NULL,
    norm_name TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (advisory_id, idx)
);
CREATE INDEX IF NOT EXISTS affected_package ON affected(ecosystem, norm_name);
-- `db_id` (chosen when the file is created) and `generation` (incremented by every import) say
-- which database state the match index file (`<file>-index`) was built from.
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sources (
    path TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    advisories INTEGER NOT NULL,
    skipped INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS skipped (
    source TEXT NOT NULL,
    file TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS skipped_source ON skipped(source);
"#;

/// An open vulnerability database.
#[derive(Debug, Clone)]
pub struct VulnDb {
    pool: SqlitePool,
    path: PathBuf,
}

/// What an import changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    pub source: String,
    pub kind: String,
    /// Advisories read from the source.
    pub read: usize,
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Advisories of this source that are withdrawn now: marked so in the source, or no longer in it.
    pub withdrawn: usize,
    pub skipped: Vec<Skipped>,
}

/// One imported source in `db status`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SourceStatus {
    pub path: String,
    pub kind: String,
    pub imported_at: String,
    pub advisories: i64,
    pub skipped: i64,
    /// Seconds since the import.
    pub age_seconds: i64,
    /// Only some packages' advisories were imported (a first scan's import): matching other
    /// packages or `vulns affected` imports the rest first.
    pub partial: bool,
}

/// `db status`: sources, counts per ecosystem, age.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DbStatus {
    pub path: String,
    pub sources: Vec<SourceStatus>,
    /// Live (not withdrawn) advisories per ecosystem.
    pub per_ecosystem: BTreeMap<String, i64>,
    pub advisories: i64,
    pub withdrawn: i64,
    pub skipped: i64,
    /// The newest `modified` among live advisories.
    pub newest_modified: Option<String>,
    /// Seconds since the most recent import, if any.
    pub age_seconds: Option<i64>,
    /// Some source is only partly imported (see [`SourceStatus::partial`]).
    pub partial: bool,
}

/// An index hit: one `affected` entry of a live advisory, with what a finding shows (filled by
/// [`VulnDb::fill_details`]).
#[derive(Debug, Clone)]
pub struct Candidate {
    pub advisory_id: String,
    pub ecosystem: String,
    pub norm_name: String,
    pub affected: Affected,
    pub summary: Option<String>,
    pub aliases: Vec<String>,
    pub score: Option<f64>,
    pub level: Level,
    pub vector: Option<String>,
    pub informational: Option<String>,
}

/// What a finding shows of an advisory.
#[derive(Debug, Clone, PartialEq)]
pub struct AdvisoryDetails {
    pub summary: Option<String>,
    pub aliases: Vec<String>,
    pub score: Option<f64>,
    pub level: Level,
    pub vector: Option<String>,
    pub informational: Option<String>,
}

impl AdvisoryDetails {
    /// Copies the details into a candidate of this advisory.
    pub fn apply(&self, c: &mut Candidate) {
        c.summary.clone_from(&self.summary);
        c.aliases.clone_from(&self.aliases);
        c.score = self.score;
        c.level = self.level;
        c.vector.clone_from(&self.vector);
        c.informational.clone_from(&self.informational);
    }
}

/// How the `sources` table marks a source imported only for some packages.
const PARTIAL: &str = " (partial)";

fn create_parent(path: &Path) -> Result<(), DbError> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|source| DbError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

/// FNV-1a, 64 bit.
fn digest_u64(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A stable digest to tell changed advisories from unchanged ones.
fn digest(text: &str) -> String {
    format!("{:016x}", digest_u64(text))
}

impl VulnDb {
    /// Opens (creating if needed) the database file at `path`.
    pub async fn open(path: &Path) -> Result<VulnDb, DbError> {
        create_parent(path)?;
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            // Matching reads a few MB of index rows per BOM: map the file instead of copying
            // pages through read(2), and keep more of them cached.
            .pragma("mmap_size", "268435456")
            .pragma("cache_size", "-65536");
        let db = VulnDb {
            pool: SqlitePoolOptions::new()
                .max_connections(2)
                .connect_with(opts)
                .await
                .map_err(|source| DbError::Sql {
                    path: path.to_path_buf(),
                    source,
                })?,
            path: path.to_path_buf(),
        };
        db.prepare_schema().await?;
        Ok(db)
    }

    /// Creates the tables of a new file, upgrades a format-1 file, refuses a newer format.
    async fn prepare_schema(&self) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        let found: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        if found > FORMAT_VERSION {
            return Err(DbError::NewerFormat {
                path: self.path.clone(),
                found,
                supported: FORMAT_VERSION,
            });
        }
        if found < FORMAT_VERSION {
            // Format 1's per-package JSON is replaced by the match index file.
            sqlx::raw_sql(&format!(
                "DROP TABLE IF EXISTS package_index; {SCHEMA} PRAGMA user_version = {FORMAT_VERSION};"
            ))
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
            // Any value that differs between database files: an index file left next to a new
            // or replaced database is never taken for its own.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let seed = format!("{nanos} {} {}", std::process::id(), self.path.display());
            let id = i64::from_ne_bytes(digest_u64(&seed).to_ne_bytes());
            sqlx::query(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('db_id', ?1), ('generation', 0)",
            )
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Which database and state of it the match index must have been built from.
    async fn stamp<'c, E>(&self, ex: E) -> Result<index::Stamp, DbError>
    where
        E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
    {
        let (db_id, generation): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT value FROM meta WHERE key = 'db_id'), \
                    (SELECT value FROM meta WHERE key = 'generation')",
        )
        .fetch_one(ex)
        .await
        .map_err(|e| self.err(e))?;
        Ok(index::Stamp {
            db_id: u64::from_ne_bytes(db_id.to_ne_bytes()),
            generation: u64::from_ne_bytes(generation.to_ne_bytes()),
        })
    }

    /// Which database state a current match index must have been built from.
    pub(crate) async fn current_stamp(&self) -> Result<index::Stamp, DbError> {
        self.stamp(&self.pool).await
    }

    /// The match index of the current database state: the file if it is current, else rebuilt.
    /// `None` when it cannot be written (a read-only directory): matching then reads the tables.
    pub(crate) async fn match_index(&self) -> Result<Option<IndexFile>, DbError> {
        let stamp = self.stamp(&self.pool).await?;
        let path = index::path_for(&self.path);
        if let Ok(Some(f)) = IndexFile::open(&path)
            && f.stamp == stamp
        {
            return Ok(Some(f));
        }
        match self.build_index().await {
            Ok(f) => Ok(Some(f)),
            Err(DbError::IndexIo { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The match index rebuilt whatever the file holds (it was found torn). `None` when it cannot
    /// be written.
    pub(crate) async fn rebuilt_index(&self) -> Result<Option<IndexFile>, DbError> {
        match self.build_index().await {
            Ok(f) => Ok(Some(f)),
            Err(DbError::IndexIo { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes the match index file from the live advisories (one consistent read).
    async fn build_index(&self) -> Result<IndexFile, DbError> {
        let path = index::path_for(&self.path);
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        let stamp = self.stamp(&mut *tx).await?;
        // One JSON text rather than a row per entry (see `details`).
        let text: Option<String> = sqlx::query_scalar(
            "SELECT '[' || group_concat(json_array(a.ecosystem, a.norm_name, a.advisory_id, \
                    a.idx, json(a.data), v.summary, v.aliases, v.score, v.level, v.vector, \
                    v.informational), ',') || ']' \
             FROM affected a JOIN advisories v ON v.id = a.advisory_id WHERE v.withdrawn IS NULL",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.rollback().await.map_err(|e| self.err(e))?;
        type Row = (
            String,
            String,
            String,
            i64,
            Affected,
            Option<String>,
            String,
            Option<f64>,
            String,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Row> = match text {
            Some(t) => serde_json::from_str(&t).map_err(|e| DbError::Corrupt {
                path: self.path.clone(),
                id: "affected entries".to_string(),
                reason: e.to_string(),
            })?,
            None => Vec::new(),
        };
        let mut entries = Vec::with_capacity(rows.len());
        let mut last: Option<(String, std::sync::Arc<index::Details>)> = None;
        let mut rows = rows;
        // Each advisory's entries together (its details are shared), in their order.
        rows.sort_by(|a, b| (&a.2, a.3).cmp(&(&b.2, b.3)));
        for (eco, norm, id, idx, affected, summary, aliases, score, level, vector, informational) in
            rows
        {
            let details = match &last {
                Some((lid, d)) if *lid == id => d.clone(),
                _ => {
                    let corrupt = |reason: String| DbError::Corrupt {
                        path: self.path.clone(),
                        id: id.clone(),
                        reason,
                    };
                    let d = std::sync::Arc::new(index::Details {
                        summary,
                        aliases: serde_json::from_str(&aliases)
                            .map_err(|e| corrupt(e.to_string()))?,
                        score,
                        level: level.parse().map_err(corrupt)?,
                        vector,
                        informational,
                    });
                    last = Some((id.clone(), d.clone()));
                    d
                }
            };
            entries.push(index::IndexEntry {
                ecosystem: eco,
                norm_name: norm,
                advisory_id: id,
                position: idx,
                affected,
                details,
            });
        }
        let bytes = index::encode(stamp, entries);
        let io = |source| DbError::IndexIo {
            path: path.clone(),
            source,
        };
        index::write(&path, &bytes).map_err(io)?;
        IndexFile::open(&path)
            .map_err(io)?
            .ok_or_else(|| DbError::IndexCorrupt {
                path: path.clone(),
                reason: "the index file just written does not read back".into(),
            })
    }

    /// The error for a match index that could not be read.
    pub(crate) fn index_error(&self, e: crate::fastmatch::IndexReadError) -> DbError {
        let path = index::path_for(&self.path);
        match e {
            crate::fastmatch::IndexReadError::Io(source) => DbError::IndexIo { path, source },
            crate::fastmatch::IndexReadError::Malformed(m) => {
                DbError::IndexCorrupt { path, reason: m.0 }
            }
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: sqlx::Error) -> DbError {
        DbError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    /// Writes what `load` read from `source` (its path as the user named it, made absolute by the
    /// caller for stability): new and changed advisories are stored, advisories this source gave
    /// before but no longer gives are marked withdrawn, skipped files are recorded.
    ///
    /// A load that read only some packages' advisories ([`Loaded::partial`]) marks the source
    /// partial (see [`VulnDb::partial_sources`]) unless a whole import of it is already held.
    pub async fn import(
        &self,
        source: &str,
        loaded: Loaded,
        now: DateTime<Utc>,
    ) -> Result<ImportReport, DbError> {
        let (report, changed) = self.import_tx(source, loaded, now).await?;
        // A large import leaves a large WAL that every later read would have to consult; a small
        // one is left to SQLite's automatic checkpoints (the forced one waits for the disk).
        if changed > 10_000 {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await
                .map_err(|e| self.err(e))?;
        }
        if changed > 0 {
            match self.build_index().await {
                // Not writable here: matching reads the tables instead.
                Ok(_) | Err(DbError::IndexIo { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    /// Creates the database at `path` from one source, for a first run that should not wait for
    /// the disk: the file is built under a temporary name with no rollback journal and no syncs
    /// (`journal_mode=OFF`, `synchronous=OFF`, one transaction), then renamed into place and
    /// opened as [`VulnDb::open`] opens it. It is a cache of the sources: a crash while it is
    /// built leaves only the temporary file (removed by the next build), never a partial
    /// database at `path`; a crash of the machine soon after can leave `path` empty (an empty
    /// database, which says so) or with zeroed pages, which SQLite reports as malformed.
    ///
    /// Fails with [`DbError::Exists`] when `path` exists (use [`VulnDb::import`]).
    pub async fn create_from(
        path: &Path,
        source: &str,
        loaded: Loaded,
        now: DateTime<Utc>,
    ) -> Result<(VulnDb, ImportReport), DbError> {
        if path.exists() {
            return Err(DbError::Exists {
                path: path.to_path_buf(),
            });
        }
        create_parent(path)?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".new-{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let io = |source| DbError::Io {
            path: tmp.clone(),
            source,
        };
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
        let opts = SqliteConnectOptions::new()
            .filename(&tmp)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Off)
            .synchronous(SqliteSynchronous::Off)
            .pragma("cache_size", "-65536");
        let building = VulnDb {
            pool: SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(opts)
                .await
                .map_err(|source| DbError::Sql {
                    path: tmp.clone(),
                    source,
                })?,
            path: tmp.clone(),
        };
        let built = async {
            building.prepare_schema().await?;
            let (report, _) = building.import_tx(source, loaded, now).await?;
            // Later opens use WAL (readers alongside an import); recorded in the file's header.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&building.pool)
                .await
                .map_err(|e| building.err(e))?;
            Ok::<_, DbError>(report)
        }
        .await;
        building.pool.close().await;
        let report = match built {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if let Err(e) = std::fs::rename(&tmp, path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(e));
        }
        let db = VulnDb::open(path).await?;
        match db.build_index().await {
            Ok(_) | Err(DbError::IndexIo { .. }) => {}
            Err(e) => return Err(e),
        }
        Ok((db, report))
    }

    /// The paths of the sources of which only some packages' advisories were imported
    /// ([`crate::import::load_for`]): a use that needs every advisory (matching other packages,
    /// `vulns affected`) imports them whole first.
    pub async fn partial_sources(&self) -> Result<Vec<String>, DbError> {
        sqlx::query_scalar("SELECT path FROM sources WHERE kind LIKE '%' || ?1 ORDER BY path")
            .bind(PARTIAL)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))
    }

    /// One import in one transaction; returns the report and how many advisories were written or
    /// withdrawn (0: the database state, and so the match index, is unchanged).
    async fn import_tx(
        &self,
        source: &str,
        loaded: Loaded,
        now: DateTime<Utc>,
    ) -> Result<(ImportReport, usize), DbError> {
        let now_s = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut report = ImportReport {
            source: source.to_string(),
            kind: loaded.kind.clone(),
            read: loaded.advisories.len(),
            skipped: loaded.skipped.clone(),
            ..ImportReport::default()
        };
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        let existing: HashMap<String, (String, Option<String>, String)> =
            sqlx::query("SELECT id, digest, withdrawn, source FROM advisories")
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| self.err(e))?
                .into_iter()
                .map(|r| {
                    (
                        r.get::<String, _>(0),
                        (
                            r.get::<String, _>(1),
                            r.get::<Option<String>, _>(2),
                            r.get(3),
                        ),
                    )
                })
                .collect();
        let mut seen = HashSet::new();
        // Written in batches, each one statement over a JSON array: a statement per row costs a
        // round trip to SQLite's thread each, more than the insert itself.
        let mut changed_ids: Vec<&str> = Vec::new();
        let mut adv_rows: Vec<serde_json::Value> = Vec::new();
        let mut aff_rows: Vec<serde_json::Value> = Vec::new();
        for (file, adv) in &loaded.advisories {
            let body = serde_json::to_string(adv).expect("an advisory serialises to JSON");
            let d = digest(&body);
            seen.insert(adv.id.clone());
            match existing.get(&adv.id) {
                Some((old, old_withdrawn, old_source))
                    if *old == d && old_source == source && *old_withdrawn == adv.withdrawn =>
                {
                    report.unchanged += 1;
                    continue;
                }
                Some(_) => report.updated += 1,
                None => report.added += 1,
            }
            if adv.withdrawn.is_some() {
                report.withdrawn += 1;
            }
            let best = adv.best_score();
            changed_ids.push(&adv.id);
            adv_rows.push(serde_json::json!([
                adv.id,
                adv.modified,
                adv.published,
                adv.withdrawn,
                adv.summary,
                serde_json::to_string(&adv.aliases).expect("strings serialise"),
                best.as_ref().map(|s| s.value),
                best.as_ref().map_or(Level::Unknown, |s| s.level).as_str(),
                best.as_ref().map(|s| s.vector.clone()),
                adv.informational(),
                i64::from(adv.has_git_ranges()),
                file,
                d,
                body,
            ]));
            for (idx, aff) in adv.affected.iter().enumerate() {
                let Some(pkg) = &aff.package else { continue };
                let eco = names::base_ecosystem(&pkg.ecosystem);
                aff_rows.push(serde_json::json!([
                    adv.id,
                    idx,
                    eco,
                    pkg.name,
                    names::normalize(eco, &pkg.name),
                    serde_json::to_string(aff).expect("an affected entry serialises"),
                ]));
            }
        }
        const BATCH: usize = 4_000;
        let adv_count = adv_rows.len();
        for ids in changed_ids.chunks(BATCH) {
            sqlx::query(
                "DELETE FROM affected WHERE advisory_id IN (SELECT value FROM json_each(?1))",
            )
            .bind(serde_json::to_string(ids).expect("strings serialise"))
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        }
        for rows in adv_rows.chunks(BATCH) {
            sqlx::query(
                "INSERT OR REPLACE INTO advisories (id, modified, published, withdrawn, summary, \
                 aliases, score, level, vector, informational, has_git, source, file, digest, body) \
                 SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
                        value ->> 5, value ->> 6, value ->> 7, value ->> 8, value ->> 9, \
                        value ->> 10, ?2, value ->> 11, value ->> 12, value ->> 13 \
                 FROM json_each(?1)",
            )
            .bind(serde_json::to_string(rows).expect("JSON values serialise"))
            .bind(source)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        }
        for rows in aff_rows.chunks(BATCH) {
            sqlx::query(
                "INSERT INTO affected (advisory_id, idx, ecosystem, name, norm_name, data) \
                 SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
                        value ->> 5 FROM json_each(?1)",
            )
            .bind(serde_json::to_string(rows).expect("JSON values serialise"))
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        }
        // Gone from the source: withdrawn now (kept, so history and `vulns affected` can say so).
        // A partial read says nothing of the advisories it did not read.
        let gone: Vec<&str> = existing
            .iter()
            .filter(|(id, (_, withdrawn, old_source))| {
                !loaded.partial
                    && old_source == source
                    && withdrawn.is_none()
                    && !seen.contains(*id)
            })
            .map(|(id, _)| id.as_str())
            .collect();
        report.withdrawn += gone.len();
        for ids in gone.chunks(BATCH) {
            sqlx::query(
                "UPDATE advisories SET withdrawn = ?1 \
                 WHERE id IN (SELECT value FROM json_each(?2))",
            )
            .bind(&now_s)
            .bind(serde_json::to_string(ids).expect("strings serialise"))
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        }
        // A new state: the match index is rebuilt (by `import`, or on first use after a crash).
        // An import that changed nothing keeps the index current.
        let changed = adv_count + gone.len();
        if changed > 0 {
            sqlx::query("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
        }
        // Partial only while no whole import of this source is held. A partial source counts
        // every advisory held of it (read now or before), as a whole import counts what it read.
        let held: Option<String> = sqlx::query_scalar("SELECT kind FROM sources WHERE path = ?1")
            .bind(source)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        let partial = loaded.partial && held.as_deref().is_none_or(|k| k.ends_with(PARTIAL));
        let held_count: i64 = if loaded.partial {
            sqlx::query_scalar("SELECT COUNT(*) FROM advisories WHERE source = ?1")
                .bind(source)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| self.err(e))?
        } else {
            i64::try_from(loaded.advisories.len()).unwrap_or(i64::MAX)
        };
        sqlx::query("DELETE FROM skipped WHERE source = ?1")
            .bind(source)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        for s in &loaded.skipped {
            sqlx::query("INSERT INTO skipped (source, file, reason) VALUES (?1, ?2, ?3)")
                .bind(source)
                .bind(&s.file)
                .bind(&s.reason)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
        }
        sqlx::query(
            "INSERT OR REPLACE INTO sources (path, kind, imported_at, advisories, skipped) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(source)
        .bind(match (partial, held) {
            (true, _) => format!("{}{PARTIAL}", loaded.kind),
            // A partial refresh of a whole import: still whole.
            (false, Some(kind)) if loaded.partial => kind,
            (false, _) => loaded.kind.clone(),
        })
        .bind(&now_s)
        .bind(held_count)
        .bind(i64::try_from(loaded.skipped.len()).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok((report, changed))
    }

    /// Sources, counts per ecosystem and age.
    pub async fn status(&self, now: DateTime<Utc>) -> Result<DbStatus, DbError> {
        let age = |at: &str| {
            DateTime::parse_from_rfc3339(at)
                .ok()
                .map(|t| (now - t.with_timezone(&Utc)).num_seconds())
        };
        let sources: Vec<SourceStatus> = sqlx::query(
            "SELECT path, kind, imported_at, advisories, skipped FROM sources ORDER BY path",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?
        .into_iter()
        .map(|r| {
            let imported_at: String = r.get(2);
            let kind: String = r.get(1);
            SourceStatus {
                path: r.get(0),
                partial: kind.ends_with(PARTIAL),
                kind,
                age_seconds: age(&imported_at).unwrap_or(0),
                imported_at,
                advisories: r.get(3),
                skipped: r.get(4),
            }
        })
        .collect();
        let per_ecosystem = sqlx::query(
            "SELECT a.ecosystem, COUNT(DISTINCT a.advisory_id) FROM affected a \
             JOIN advisories v ON v.id = a.advisory_id WHERE v.withdrawn IS NULL \
             GROUP BY a.ecosystem ORDER BY a.ecosystem",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?
        .into_iter()
        .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
        .collect();
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM advisories WHERE withdrawn IS NULL), \
                    (SELECT COUNT(*) FROM advisories WHERE withdrawn IS NOT NULL), \
                    (SELECT COUNT(*) FROM skipped), \
                    (SELECT MAX(modified) FROM advisories WHERE withdrawn IS NULL)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        let age_seconds = sources.iter().map(|s| s.age_seconds).min();
        Ok(DbStatus {
            partial: sources.iter().any(|s| s.partial),
            path: self.path.display().to_string(),
            sources,
            per_ecosystem,
            advisories: row.get(0),
            withdrawn: row.get(1),
            skipped: row.get(2),
            newest_modified: row.get(3),
            age_seconds,
        })
    }

    /// The skipped files of every source (for `db status --verbose`).
    pub async fn skipped(&self) -> Result<Vec<(String, Skipped)>, DbError> {
        Ok(
            sqlx::query("SELECT source, file, reason FROM skipped ORDER BY source, file")
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err(e))?
                .into_iter()
                .map(|r| {
                    (
                        r.get(0),
                        Skipped {
                            file: r.get(1),
                            reason: r.get(2),
                        },
                    )
                })
                .collect(),
        )
    }

    /// Every live advisory's `affected` entry for the given (ecosystem, normalised name) keys,
    /// read from the tables in one query, sorted by (ecosystem, name, advisory id, position in the
    /// advisory). What [`crate::matching::match_packages_reference`] matches; details not filled.
    pub async fn candidates(&self, keys: &[(String, String)]) -> Result<Vec<Candidate>, DbError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys_json = serde_json::to_string(keys).expect("string pairs serialise");
        let row = sqlx::query(
            "SELECT '[' || group_concat(json_array(a.ecosystem, a.norm_name, a.advisory_id, \
                    a.idx, json(a.data)), ',') || ']' \
             FROM (SELECT DISTINCT value ->> 0 AS eco, value ->> 1 AS norm FROM json_each(?1)) q \
             JOIN affected a ON a.ecosystem = q.eco AND a.norm_name = q.norm \
             JOIN advisories v ON v.id = a.advisory_id \
             WHERE v.withdrawn IS NULL",
        )
        .bind(keys_json)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        let Some(text) = row.get::<Option<String>, _>(0) else {
            return Ok(Vec::new());
        };
        let rows: Vec<(String, String, String, i64, Affected)> = serde_json::from_str(&text)
            .map_err(|e| DbError::Corrupt {
                path: self.path.clone(),
                id: "affected entries".to_string(),
                reason: e.to_string(),
            })?;
        let mut rows = rows;
        rows.sort_by(|a, b| (&a.0, &a.1, &a.2, a.3).cmp(&(&b.0, &b.1, &b.2, b.3)));
        Ok(rows
            .into_iter()
            .map(
                |(ecosystem, norm_name, advisory_id, _, affected)| Candidate {
                    advisory_id,
                    ecosystem,
                    norm_name,
                    affected,
                    summary: None,
                    aliases: Vec::new(),
                    score: None,
                    level: Level::Unknown,
                    vector: None,
                    informational: None,
                },
            )
            .collect())
    }

    /// What a finding shows (summary, aliases, score, level, vector, informational) of the given
    /// advisories, in one query.
    pub async fn details(&self, ids: &[&str]) -> Result<HashMap<String, AdvisoryDetails>, DbError> {
        let mut details = HashMap::new();
        if ids.is_empty() {
            return Ok(details);
        }
        let ids_json = serde_json::to_string(&ids).expect("strings serialise");
        // One JSON text for all the advisories rather than one row each: sqlx hands every row
        // from SQLite's thread to ours, which costs more than the lookup.
        let row = sqlx::query(
            "SELECT '[' || group_concat(json_array(v.id, v.summary, v.aliases, v.score, \
                    v.level, v.vector, v.informational), ',') || ']' \
             FROM json_each(?1) AS q JOIN advisories v ON v.id = q.value",
        )
        .bind(ids_json)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        let Some(text) = row.get::<Option<String>, _>(0) else {
            return Ok(details);
        };
        type DetailRow = (
            String,
            Option<String>,
            String,
            Option<f64>,
            String,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<DetailRow> = serde_json::from_str(&text).map_err(|e| DbError::Corrupt {
            path: self.path.clone(),
            id: "advisory details".to_string(),
            reason: e.to_string(),
        })?;
        for (id, summary, aliases, score, level, vector, informational) in rows {
            let corrupt = |reason: String| DbError::Corrupt {
                path: self.path.clone(),
                id: id.clone(),
                reason,
            };
            let d = AdvisoryDetails {
                summary,
                aliases: serde_json::from_str(&aliases).map_err(|e| corrupt(e.to_string()))?,
                score,
                level: level.parse().map_err(corrupt)?,
                vector,
                informational,
            };
            details.insert(id, d);
        }
        Ok(details)
    }

    /// Fills in what a finding shows for the given candidates, in one query for their distinct
    /// advisories.
    pub async fn fill_details(&self, candidates: &mut [Candidate]) -> Result<(), DbError> {
        let mut ids: Vec<&str> = candidates.iter().map(|c| c.advisory_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let details = self.details(&ids).await?;
        for c in candidates.iter_mut() {
            if let Some(d) = details.get(&c.advisory_id) {
                d.apply(c);
            }
        }
        Ok(())
    }

    /// One stored advisory by id (withdrawn ones included).
    pub async fn advisory(&self, id: &str) -> Result<Option<Advisory>, DbError> {
        let row = sqlx::query("SELECT body FROM advisories WHERE id = ?1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        row.map(|r| {
            let body: String = r.get(0);
            serde_json::from_str(&body).map_err(|e| DbError::Corrupt {
                path: self.path.clone(),
                id: id.to_string(),
                reason: e.to_string(),
            })
        })
        .transpose()
    }

    /// Advisories whose id or one of whose aliases is `id` (a CVE can name several), withdrawn
    /// ones included, sorted by id. For `cutover vulns affected ID`.
    pub async fn find(&self, id: &str) -> Result<Vec<Advisory>, DbError> {
        let rows = sqlx::query(
            "SELECT id, body FROM advisories WHERE id = ?1 \
             OR EXISTS (SELECT 1 FROM json_each(advisories.aliases) WHERE value = ?1) ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        rows.into_iter()
            .map(|r| {
                let (id, body): (String, String) = (r.get(0), r.get(1));
                serde_json::from_str(&body).map_err(|e| DbError::Corrupt {
                    path: self.path.clone(),
                    id,
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    /// Closes the connections (flushes the WAL).
    pub async fn close(self) {
        self.pool.close().await;
    }
}
