//! The local vulnerability database: an SQLite file (default `.cutover/vulns.db`) holding the
//! imported advisories, an index of affected packages on (ecosystem, normalised name), the
//! sources imported and what each skipped.

use crate::import::{Loaded, Skipped};
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
    #[error("{path}: cannot create the directory: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: stored advisory {id} is unreadable: {reason} (hint: re-import its source)")]
    Corrupt {
        path: PathBuf,
        id: String,
        reason: String,
    },
}

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
-- What matching reads: per (ecosystem, normalised name), every live advisory's entry for that
-- package in one JSON array, so a BOM costs one primary-key lookup per package. What a finding
-- shows (summary, aliases, severity) is read afterwards for the advisories that matched.
CREATE TABLE IF NOT EXISTS package_index (
    ecosystem TEXT NOT NULL,
    norm_name TEXT NOT NULL,
    entries TEXT NOT NULL,
    PRIMARY KEY (ecosystem, norm_name)
) WITHOUT ROWID;
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

/// Index rows found for a lookup, undecoded: per chunk of keys, one JSON array of
/// `[ecosystem, norm_name, entries]` triples, built by SQLite as one text value. One value per
/// chunk instead of one row per package: sqlx hands every row from SQLite's thread to ours,
/// which cost more than the lookups themselves.
#[derive(Debug, Clone, Default)]
pub struct IndexRows {
    chunks: Vec<String>,
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

/// FNV-1a, 64 bit: a stable digest to tell changed advisories from unchanged ones.
fn digest(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

impl VulnDb {
    /// Opens (creating if needed) the database file at `path`.
    pub async fn open(path: &Path) -> Result<VulnDb, DbError> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|source| DbError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
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
        sqlx::raw_sql(SCHEMA)
            .execute(&db.pool)
            .await
            .map_err(|e| db.err(e))?;
        Ok(db)
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
    pub async fn import(
        &self,
        source: &str,
        loaded: Loaded,
        now: DateTime<Utc>,
    ) -> Result<ImportReport, DbError> {
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
            sqlx::query("DELETE FROM affected WHERE advisory_id = ?1")
                .bind(&adv.id)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
            sqlx::query(
                "INSERT OR REPLACE INTO advisories (id, modified, published, withdrawn, summary, \
                 aliases, score, level, vector, informational, has_git, source, file, digest, body) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )
            .bind(&adv.id)
            .bind(&adv.modified)
            .bind(&adv.published)
            .bind(&adv.withdrawn)
            .bind(&adv.summary)
            .bind(serde_json::to_string(&adv.aliases).expect("strings serialise"))
            .bind(best.as_ref().map(|s| s.value))
            .bind(best.as_ref().map_or(Level::Unknown, |s| s.level).as_str())
            .bind(best.as_ref().map(|s| s.vector.clone()))
            .bind(adv.informational())
            .bind(adv.has_git_ranges())
            .bind(source)
            .bind(file)
            .bind(&d)
            .bind(&body)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
            for (idx, aff) in adv.affected.iter().enumerate() {
                let Some(pkg) = &aff.package else { continue };
                let eco = names::base_ecosystem(&pkg.ecosystem);
                sqlx::query(
                    "INSERT INTO affected (advisory_id, idx, ecosystem, name, norm_name, data) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .bind(&adv.id)
                .bind(i64::try_from(idx).unwrap_or(i64::MAX))
                .bind(eco)
                .bind(&pkg.name)
                .bind(names::normalize(eco, &pkg.name))
                .bind(serde_json::to_string(aff).expect("an affected entry serialises"))
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
            }
        }
        // Gone from the source: withdrawn now (kept, so history and `vulns affected` can say so).
        for (id, (_, withdrawn, old_source)) in &existing {
            if old_source == source && withdrawn.is_none() && !seen.contains(id) {
                sqlx::query("UPDATE advisories SET withdrawn = ?1 WHERE id = ?2")
                    .bind(&now_s)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e))?;
                report.withdrawn += 1;
            }
        }
        for stmt in [
            "DELETE FROM package_index",
            "INSERT INTO package_index (ecosystem, norm_name, entries) \
             SELECT a.ecosystem, a.norm_name, \
                    json_group_array(json_object('id', v.id, 'affected', json(a.data))) \
             FROM affected a JOIN advisories v ON v.id = a.advisory_id \
             WHERE v.withdrawn IS NULL GROUP BY a.ecosystem, a.norm_name",
        ] {
            sqlx::query(stmt)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
        }
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
        .bind(&loaded.kind)
        .bind(&now_s)
        .bind(i64::try_from(loaded.advisories.len()).unwrap_or(i64::MAX))
        .bind(i64::try_from(loaded.skipped.len()).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        // A large import leaves a large WAL that every later read would have to consult.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(report)
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
            SourceStatus {
                path: r.get(0),
                kind: r.get(1),
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
    /// in one indexed query, sorted by (ecosystem, name, advisory id).
    pub async fn candidates(&self, keys: &[(String, String)]) -> Result<Vec<Candidate>, DbError> {
        let keys: Vec<(&str, &str)> = keys.iter().map(|(e, n)| (e.as_str(), n.as_str())).collect();
        let rows = self.index_rows(&keys).await?;
        self.decode_index_rows(rows)
    }

    /// The index rows (undecoded) of the given (ecosystem, normalised name) keys.
    pub async fn index_rows(&self, keys: &[(&str, &str)]) -> Result<IndexRows, DbError> {
        // Large BOMs: two halves on the pool's two connections (SQLite runs each on its own
        // thread), so the lookups overlap.
        let mut rows = IndexRows::default();
        if keys.len() >= 1_000 {
            let (a, b) = keys.split_at(keys.len() / 2);
            let (a, b) = tokio::join!(self.index_rows_chunk(a), self.index_rows_chunk(b));
            rows.chunks.extend(a?);
            rows.chunks.extend(b?);
        } else {
            rows.chunks.extend(self.index_rows_chunk(keys).await?);
        }
        Ok(rows)
    }

    async fn index_rows_chunk(&self, keys: &[(&str, &str)]) -> Result<Option<String>, DbError> {
        if keys.is_empty() {
            return Ok(None);
        }
        let keys_json = serde_json::to_string(keys).expect("string pairs serialise");
        // `entries` is already JSON: concatenated as it is rather than re-parsed by `json()`.
        let row = sqlx::query(
            "SELECT '[' || group_concat('[' || json_quote(p.ecosystem) || ',' || \
                    json_quote(p.norm_name) || ',' || p.entries || ']', ',') || ']' \
             FROM json_each(?1) AS q \
             JOIN package_index p ON p.ecosystem = json_extract(q.value, '$[0]') \
                                 AND p.norm_name = json_extract(q.value, '$[1]')",
        )
        .bind(keys_json)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(row.get(0))
    }

    /// Decodes index rows into candidates, sorted by (ecosystem, name, advisory id).
    pub fn decode_index_rows(&self, rows: IndexRows) -> Result<Vec<Candidate>, DbError> {
        #[derive(serde::Deserialize)]
        struct Entry {
            id: String,
            affected: Affected,
        }
        let mut decoded: Vec<(String, String, Vec<Entry>)> = Vec::new();
        for chunk in &rows.chunks {
            let part: Vec<(String, String, Vec<Entry>)> =
                serde_json::from_str(chunk).map_err(|e| DbError::Corrupt {
                    path: self.path.clone(),
                    id: "package index".to_string(),
                    reason: e.to_string(),
                })?;
            decoded.extend(part);
        }
        decoded.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let mut out = Vec::with_capacity(decoded.iter().map(|r| r.2.len()).sum());
        for (ecosystem, norm_name, mut entries) in decoded {
            entries.sort_by(|a, b| a.id.cmp(&b.id));
            for e in entries {
                out.push(Candidate {
                    ecosystem: ecosystem.clone(),
                    norm_name: norm_name.clone(),
                    advisory_id: e.id,
                    affected: e.affected,
                    summary: None,
                    aliases: Vec::new(),
                    score: None,
                    level: Level::Unknown,
                    vector: None,
                    informational: None,
                });
            }
        }
        Ok(out)
    }

    /// What a finding shows (summary, aliases, score, level, vector, informational) of the given
    /// advisories, in one query.
    pub async fn details(&self, ids: &[&str]) -> Result<HashMap<String, AdvisoryDetails>, DbError> {
        let mut details = HashMap::new();
        if ids.is_empty() {
            return Ok(details);
        }
        let ids_json = serde_json::to_string(&ids).expect("strings serialise");
        // One JSON text for all the advisories rather than one row each (see [`IndexRows`]).
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
