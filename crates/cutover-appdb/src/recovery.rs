//! Recovery points of the application database: taken (PostgreSQL `pg_dump -Fc`, SQLite online
//! backup API), kept under `.cutover/recovery-points/<env>/` with a JSON manifest holding the
//! file's digest (BLAKE3 for new points, checked by hand with `b3sum`; manifests written before
//! hold a sha256, checked with `sha256sum`, and still verify), recorded in the audit log,
//! verified during a restore (which commits only once the digest matched), and proven usable by
//! a drill (restore into a scratch database, run a query, drop the scratch).
//!
//! External programs run as argv arrays; the password travels in `PGPASSWORD`, never in an
//! argument or a message.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use sqlx::Connection as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::db::{Conn, close};
use crate::{AppDb, AppDbError, Engine};

/// The algorithm of a recovery point's digest, as its manifest names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestAlgorithm {
    /// Manifests written before BLAKE3 (they have a `sha256` field and no `algorithm`).
    Sha256,
    /// New points: the same 256-bit strength, about four times the speed here (SIMD), so the
    /// digest of an SQLite point is computed while the copy is flushed instead of after it.
    Blake3,
}

impl DigestAlgorithm {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Blake3 => "blake3",
        }
    }

    fn old_manifests() -> DigestAlgorithm {
        DigestAlgorithm::Sha256
    }
}

/// A running digest of either algorithm.
enum Hasher {
    Sha256(Sha256),
    Blake3(Box<blake3::Hasher>),
}

impl Hasher {
    fn new(algorithm: DigestAlgorithm) -> Hasher {
        match algorithm {
            DigestAlgorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            DigestAlgorithm::Blake3 => Hasher::Blake3(Box::new(blake3::Hasher::new())),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Blake3(h) => {
                h.update(data);
            }
        }
    }

    fn hex(self) -> String {
        match self {
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Blake3(h) => h.finalize().to_hex().to_string(),
        }
    }
}

/// The algorithm of new recovery points.
const NEW_POINTS: DigestAlgorithm = DigestAlgorithm::Blake3;

/// A recovery point as its manifest (`<id>.json`) describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryPoint {
    pub id: String,
    pub environment: String,
    /// `postgres` or `sqlite`.
    pub engine: String,
    /// `pg_dump-custom` or `sqlite-backup`.
    pub format: String,
    /// The file beside the manifest.
    pub file: String,
    /// The algorithm of `digest` (`sha256` where a manifest written before names none).
    #[serde(default = "DigestAlgorithm::old_manifests")]
    pub algorithm: DigestAlgorithm,
    /// Hex digest of the file (the key was `sha256` in manifests written before BLAKE3).
    #[serde(alias = "sha256")]
    pub digest: String,
    pub size: u64,
    pub created_at: DateTime<Utc>,
    /// The release whose deployment took it (none when taken by hand).
    pub release: Option<String>,
    /// The directory holding it (not stored in the manifest).
    #[serde(skip)]
    pub dir: PathBuf,
}

impl RecoveryPoint {
    #[must_use]
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.file)
    }

    #[must_use]
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(format!("{}.json", self.id))
    }

    /// `algorithm:hex`, as messages and audit events show the digest.
    #[must_use]
    pub fn digest_label(&self) -> String {
        format!("{}:{}", self.algorithm.as_str(), self.digest)
    }

    /// Checks the file against the manifest's digest.
    pub fn verify(&self) -> Result<(), AppDbError> {
        let actual = digest_file(&self.path(), self.algorithm)?;
        self.check(actual)
    }

    /// `Ok` when `actual` (a hex digest of the file) is the manifest's.
    fn check(&self, actual: String) -> Result<(), AppDbError> {
        if actual == self.digest {
            return Ok(());
        }
        Err(AppDbError::DigestMismatch {
            path: self.path(),
            expected: self.digest_label(),
            actual: format!("{}:{actual}", self.algorithm.as_str()),
        })
    }
}

/// What a restore drill found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DrillReport {
    pub recovery_point: String,
    pub query: String,
    pub rows: u64,
}

/// `.cutover/recovery-points/<env>/` of a project.
#[must_use]
pub fn dir_of(project_root: &Path, environment: &str) -> PathBuf {
    project_root
        .join(".cutover/recovery-points")
        .join(environment)
}

/// The recovery points of an environment, oldest first.
pub fn list(project_root: &Path, environment: &str) -> Result<Vec<RecoveryPoint>, AppDbError> {
    let dir = dir_of(project_root, environment);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(AppDbError::Io { path: dir, source }),
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "json") {
            out.push(load_manifest(&p)?);
        }
    }
    out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// Reads one manifest.
pub fn load_manifest(path: &Path) -> Result<RecoveryPoint, AppDbError> {
    let text = std::fs::read_to_string(path).map_err(|source| AppDbError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut p: RecoveryPoint =
        serde_json::from_str(&text).map_err(|e| AppDbError::BadRecoveryPoint {
            path: path.to_path_buf(),
            message: format!("the manifest is not valid: {e}"),
        })?;
    p.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    if p.file.contains('/') || p.file.contains("..") {
        return Err(AppDbError::BadRecoveryPoint {
            path: path.to_path_buf(),
            message: format!(
                "the manifest names a file outside its directory: {}",
                p.file
            ),
        });
    }
    Ok(p)
}

/// Finds a recovery point by id, or the latest one.
pub fn find(
    project_root: &Path,
    environment: &str,
    id: Option<&str>,
) -> Result<RecoveryPoint, AppDbError> {
    let all = list(project_root, environment)?;
    match id {
        Some(id) => {
            all.into_iter()
                .find(|p| p.id == id)
                .ok_or_else(|| AppDbError::BadRecoveryPoint {
                    path: dir_of(project_root, environment).join(format!("{id}.json")),
                    message: "no such recovery point".into(),
                })
        }
        None => all
            .into_iter()
            .last()
            .ok_or_else(|| AppDbError::NoRecoveryPoint(environment.to_owned())),
    }
}

/// The audit event of a new recovery point (`db.recovery_point`, subject `env:<environment>`).
#[must_use]
pub fn audit_of(actor: &str, point: &RecoveryPoint) -> cutover_store::Audit {
    cutover_store::Audit::new(
        actor,
        "db.recovery_point",
        format!("env:{}", point.environment),
        json!({
            "environment": point.environment,
            "id": point.id,
            "engine": point.engine,
            "file": point.file,
            "digest": point.digest_label(),
            "size": point.size,
            "release": point.release,
        }),
    )
}

/// Appends the recovery point's audit event.
pub async fn record(
    store: &dyn cutover_store::Store,
    actor: &str,
    point: &RecoveryPoint,
) -> Result<cutover_store::AuditEvent, AppDbError> {
    Ok(store.append_audit(&audit_of(actor, point)).await?)
}

/// The hex digest of a file (`b3sum` / `sha256sum` print the same).
pub fn digest_file(path: &Path, algorithm: DigestAlgorithm) -> Result<String, AppDbError> {
    use std::io::Read as _;
    let io = |source| AppDbError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = Hasher::new(algorithm);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.hex())
}

/// Digest (of new points' algorithm) and size of `path` while the file is flushed to disk: the
/// digest costs CPU, the flush waits on the disk, so together they take about as long as the
/// flush alone (BLAKE3 hashes faster than this disk writes; sha256 did not).
fn digest_and_sync(path: &Path) -> Result<(String, u64), AppDbError> {
    let io = |source| AppDbError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let (digest, synced) = std::thread::scope(|s| {
        let sync = s.spawn(|| file.sync_all());
        let digest = digest_file(path, NEW_POINTS);
        (digest, sync.join())
    });
    synced
        .unwrap_or_else(|_| Err(std::io::Error::other("the fsync thread panicked")))
        .map_err(io)?;
    Ok((digest?, size))
}

/// Copies `from` to `to` (a new file) and returns the digest of what was read: one pass.
fn copy_hashing(from: &Path, to: &Path, algorithm: DigestAlgorithm) -> Result<String, AppDbError> {
    use std::io::{Read as _, Write as _};
    let mut src = std::fs::File::open(from).map_err(|source| AppDbError::Io {
        path: from.to_path_buf(),
        source,
    })?;
    let io = |source| AppDbError::Io {
        path: to.to_path_buf(),
        source,
    };
    let mut dst = std::fs::File::create(to).map_err(io)?;
    let mut h = Hasher::new(algorithm);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = src.read(&mut buf).map_err(|source| AppDbError::Io {
            path: from.to_path_buf(),
            source,
        })?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        dst.write_all(&buf[..n]).map_err(io)?;
    }
    Ok(h.hex())
}

/// The online backup copies page 1 as the source has it, so a copy of a WAL database says
/// "WAL" in its header (file format version bytes 18 and 19 = 2,
/// <https://www.sqlite.org/fileformat2.html#file_format_version_numbers>) and could not be
/// opened read-only without a `-shm` file. A recovery point is one self-contained file: the
/// bytes are set to 1 (rollback journal), which is all `PRAGMA journal_mode=DELETE` changes in
/// a database without a WAL of its own.
fn mark_rollback_journal(path: &Path) -> Result<(), AppDbError> {
    use std::os::unix::fs::FileExt as _;
    let io = |source| AppDbError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    let mut v = [0u8; 2];
    match f.read_exact_at(&mut v, 18) {
        Ok(()) => {}
        // An empty database (no page yet) has no header to fix.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
        Err(e) => return Err(io(e)),
    }
    if v == [2, 2] {
        f.write_all_at(&[1, 1], 18).map_err(io)?;
    }
    Ok(())
}

/// The URL without its password (safe to show and to pass as an argument).
#[must_use]
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (auth, tail) = rest.split_at(auth_end);
    match auth.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or(user);
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// The password of a URL, percent-decoded.
fn password_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (user, _) = rest[..auth_end].rsplit_once('@')?;
    let (_, pw) = user.split_once(':')?;
    Some(percent_decode(pw))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len() + 1
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The URL naming another database on the same server.
fn with_database(url: &str, database: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (auth, tail) = rest.split_at(auth_end);
    let query = tail.find('?').map_or("", |i| &tail[i..]);
    format!("{scheme}://{auth}/{database}{query}")
}

impl AppDb {
    fn pg_command(&self, program: &str, url: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(program);
        if let Some(pw) = password_of(url) {
            cmd.env("PGPASSWORD", pw);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Takes a recovery point of the database for `environment` (and prunes the oldest beyond
    /// `keep_recovery_points`).
    pub async fn snapshot(
        &self,
        environment: &str,
        release: Option<&str>,
    ) -> Result<RecoveryPoint, AppDbError> {
        let dir = dir_of(&self.project_root, environment);
        std::fs::create_dir_all(&dir).map_err(|source| AppDbError::Io {
            path: dir.clone(),
            source,
        })?;
        let created_at = Utc::now();
        let mut id = created_at.format("%Y%m%dT%H%M%S%.3fZ").to_string();
        let ext = match self.engine {
            Engine::Postgres => "dump",
            Engine::Sqlite => "sqlite",
        };
        let mut n = 1;
        while dir.join(format!("{id}.json")).exists() || dir.join(format!("{id}.{ext}")).exists() {
            n += 1;
            id = format!("{}-{n}", created_at.format("%Y%m%dT%H%M%S%.3fZ"));
        }
        let file = format!("{id}.{ext}");
        let tmp = dir.join(format!(".{file}.partial"));
        let taken = match self.engine {
            Engine::Postgres => self.pg_dump(&tmp).await,
            Engine::Sqlite => self.sqlite_backup(&tmp).await,
        };
        let (digest, size) = match taken {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let point = RecoveryPoint {
            id,
            environment: environment.to_owned(),
            engine: match self.engine {
                Engine::Postgres => "postgres".into(),
                Engine::Sqlite => "sqlite".into(),
            },
            format: match self.engine {
                Engine::Postgres => "pg_dump-custom".into(),
                Engine::Sqlite => "sqlite-backup".into(),
            },
            file,
            algorithm: NEW_POINTS,
            digest,
            size,
            created_at,
            release: release.map(str::to_owned),
            dir: dir.clone(),
        };
        let io = |path: PathBuf| move |source| AppDbError::Io { path, source };
        std::fs::rename(&tmp, point.path()).map_err(io(point.path()))?;
        let manifest = serde_json::to_string_pretty(&point).expect("a manifest always serializes");
        let mtmp = dir.join(format!(".{}.json.partial", point.id));
        std::fs::write(&mtmp, manifest + "\n").map_err(io(mtmp.clone()))?;
        std::fs::rename(&mtmp, point.manifest_path()).map_err(io(point.manifest_path()))?;
        self.prune(environment)?;
        Ok(point)
    }

    fn prune(&self, environment: &str) -> Result<(), AppDbError> {
        let all = list(&self.project_root, environment)?;
        let keep = usize::try_from(self.keep_recovery_points.max(1)).unwrap_or(usize::MAX);
        if all.len() > keep {
            for p in &all[..all.len() - keep] {
                let _ = std::fs::remove_file(p.path());
                let _ = std::fs::remove_file(p.manifest_path());
            }
        }
        Ok(())
    }

    /// `pg_dump -Fc` to `out`, hashing the stream as it is written (new points' algorithm).
    async fn pg_dump(&self, out: &Path) -> Result<(String, u64), AppDbError> {
        let safe = without_password(&self.url);
        let mut cmd = self.pg_command("pg_dump", &self.url);
        cmd.args(["--format=custom", "--dbname"])
            .arg(&safe)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| AppDbError::Tool {
            program: "pg_dump".into(),
            status: "not started".into(),
            stderr: e.to_string(),
        })?;
        let mut stdout = child.stdout.take().expect("stdout was piped");
        let mut stderr = child.stderr.take().expect("stderr was piped");
        let err_task = tokio::spawn(async move {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s).await;
            s
        });
        let io = |source| AppDbError::Io {
            path: out.to_path_buf(),
            source,
        };
        let mut f = tokio::fs::File::create(out).await.map_err(io)?;
        let mut h = Hasher::new(NEW_POINTS);
        let mut size = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = stdout.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            f.write_all(&buf[..n]).await.map_err(io)?;
            size += n as u64;
        }
        f.sync_all().await.map_err(io)?;
        let status = child.wait().await.map_err(io)?;
        let stderr = err_task.await.unwrap_or_default();
        if !status.success() {
            return Err(AppDbError::Tool {
                program: "pg_dump".into(),
                status: status.to_string(),
                stderr: stderr.trim().to_owned(),
            });
        }
        Ok((h.hex(), size))
    }

    /// SQLite's online backup API into `out`.
    ///
    /// sqlx does not expose the backup API; rusqlite 0.32 does and links the very same
    /// libsqlite3-sys (0.30) as sqlx, so one SQLite library is built. The copy is one step (all
    /// pages under one read transaction): a consistent snapshot even while the app writes (WAL
    /// readers do not block writers).
    async fn sqlite_backup(&self, out: &Path) -> Result<(String, u64), AppDbError> {
        let src = self.sqlite_path();
        let out = out.to_path_buf();
        let target = self.target();
        tokio::task::spawn_blocking(move || {
            let fail = |e: rusqlite::Error| AppDbError::Sql {
                target: target.clone(),
                what: "taking a recovery point (online backup)".into(),
                message: e.to_string(),
            };
            // A database not created yet (the first release's migrations create it) is
            // recorded as the empty database it is.
            let flags = if src.is_file() {
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
            } else {
                rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                    | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
            };
            let source = rusqlite::Connection::open_with_flags(
                &src,
                flags | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| AppDbError::Connect {
                target: target.clone(),
                message: e.to_string(),
            })?;
            source.busy_timeout(Duration::from_secs(30)).map_err(fail)?;
            // The copy reads every page: through a read-only memory map (the first 2 GB, SQLite's
            // default ceiling; pread beyond) that saves a system call per page, 15% of a 1 GB
            // copy here. Only an I/O error could hurt (a signal instead of an error); the file
            // cannot shrink under the backup's read transaction.
            source
                .pragma_update(None, "mmap_size", SQLITE_MMAP_SIZE)
                .map_err(fail)?;
            let mut dest = rusqlite::Connection::open(&out).map_err(fail)?;
            // The file is a `.partial` of ours until it is renamed into place (and removed on
            // any error): SQLite needs neither a journal nor its own fsyncs for it. One fsync at
            // the end makes it durable, and the digest is computed while that flush runs.
            dest.pragma_update(None, "journal_mode", "OFF")
                .map_err(fail)?;
            dest.pragma_update(None, "synchronous", "OFF")
                .map_err(fail)?;
            {
                let backup = rusqlite::backup::Backup::new(&source, &mut dest).map_err(fail)?;
                copy_all(&backup).map_err(fail)?;
            }
            drop(dest);
            mark_rollback_journal(&out)?;
            digest_and_sync(&out)
        })
        .await
        .unwrap_or_else(|e| {
            Err(AppDbError::Sql {
                target: String::new(),
                what: "taking a recovery point".into(),
                message: e.to_string(),
            })
        })
    }

    /// Restores `point` into the database; a point whose digest does not match changes nothing.
    ///
    /// - PostgreSQL: the digest is checked before anything changes, while `pg_restore --list`
    ///   and the server tell which tables created after the point (an expand migration's) must
    ///   be dropped first; then `pg_restore --clean --single-transaction` reads the file.
    ///   (Streaming the file through `pg_restore`'s stdin, hashed on the way with the last chunk
    ///   held back until the digest matched, measured slower under load: the drill uses it,
    ///   where a scratch database makes it safe by construction.)
    /// - SQLite: the backup API copies the point's pages over the live database (the app's
    ///   open connections see the restored content, which a file rename would hide from them) in
    ///   one write transaction, all pages but the last while another thread hashes the file;
    ///   the last page (and the commit) only once the digest matched, else the transaction is
    ///   rolled back. Small files are checked first.
    pub async fn restore(&self, point: &RecoveryPoint) -> Result<(), AppDbError> {
        let path = point.path();
        match self.engine {
            Engine::Postgres => {
                // The digest is computed while `pg_restore --list` and the server say which
                // tables to drop; nothing is touched before it matched.
                let (verified, extra) =
                    tokio::join!(verify_blocking(point), self.tables_not_in(&path));
                verified?;
                let extra = extra?;
                if !extra.is_empty() {
                    self.drop_tables(&extra).await?;
                }
                self.pg_restore(&self.url, &path).await
            }
            Engine::Sqlite => {
                let dst = self.sqlite_path();
                let target = self.target();
                let point = point.clone();
                tokio::task::spawn_blocking(move || sqlite_restore(&point, &dst, &target))
                    .await
                    .unwrap_or_else(|e| {
                        Err(AppDbError::Sql {
                            target: String::new(),
                            what: "restoring a recovery point".into(),
                            message: e.to_string(),
                        })
                    })
            }
        }
    }

    /// `pg_restore --clean` drops and recreates what the dump holds, nothing else: a table
    /// created after the point (an expand migration's) would survive it, and the restored
    /// history would then try to create it again. Such tables are dropped first.
    async fn tables_not_in(&self, file: &Path) -> Result<Vec<String>, AppDbError> {
        let out = self
            .pg_command("pg_restore", &self.url)
            .arg("--list")
            .arg(file)
            .output()
            .await
            .map_err(|e| AppDbError::Tool {
                program: "pg_restore".into(),
                status: "not started".into(),
                stderr: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(AppDbError::Tool {
                program: "pg_restore --list".into(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        let listed = String::from_utf8_lossy(&out.stdout);
        let in_dump = dumped_tables(&listed);
        let Conn::Pg(mut c) = self.connect().await? else {
            return Ok(Vec::new());
        };
        let live: Vec<(String, String)> = sqlx::query_as(
            "SELECT schemaname::text, tablename::text FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') AND schemaname NOT LIKE 'pg\\_%'",
        )
        .fetch_all(&mut c)
        .await
        .map_err(|e| AppDbError::Sql {
            target: self.target(),
            what: "listing tables before a restore".into(),
            message: e.to_string(),
        })?;
        let extra: Vec<String> = live
            .into_iter()
            .filter(|t| !in_dump.contains(t))
            .map(|(s, t)| {
                format!(
                    "\"{}\".\"{}\"",
                    s.replace('"', "\"\""),
                    t.replace('"', "\"\"")
                )
            })
            .collect();
        close(Conn::Pg(c)).await;
        Ok(extra)
    }

    async fn drop_tables(&self, tables: &[String]) -> Result<(), AppDbError> {
        let Conn::Pg(mut c) = self.connect().await? else {
            return Ok(());
        };
        let r = sqlx::raw_sql(&format!(
            "DROP TABLE IF EXISTS {} CASCADE",
            tables.join(", ")
        ))
        .execute(&mut c)
        .await
        .map(drop)
        .map_err(|e| AppDbError::Sql {
            target: self.target(),
            what: "dropping tables created after the recovery point".into(),
            message: e.to_string(),
        });
        close(Conn::Pg(c)).await;
        r
    }

    /// `pg_restore` of `point` into `url`, fed through stdin and hashed on the way; the last
    /// chunk is held back until the digest matched (see [`AppDb::restore`]).
    async fn pg_restore_verified(
        &self,
        url: &str,
        point: &RecoveryPoint,
    ) -> Result<(), AppDbError> {
        let path = point.path();
        let io = |source| AppDbError::Io {
            path: path.clone(),
            source,
        };
        let mut file = tokio::fs::File::open(&path).await.map_err(io)?;
        let mut cmd = self.pg_command("pg_restore", url);
        cmd.args(PG_RESTORE_ARGS)
            .arg(without_password(url))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| AppDbError::Tool {
            program: "pg_restore".into(),
            status: "not started".into(),
            stderr: e.to_string(),
        })?;
        let mut stdin = child.stdin.take().expect("stdin was piped");
        let mut stderr = child.stderr.take().expect("stderr was piped");
        let err_task = tokio::spawn(async move {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s).await;
            s
        });
        let mut h = Hasher::new(point.algorithm);
        let mut held: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 1 << 20];
        // `Err` once pg_restore stopped reading (it failed: its status and stderr tell why).
        let mut pipe_ok = true;
        loop {
            let n = file.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            if pipe_ok && !held.is_empty() && stdin.write_all(&held).await.is_err() {
                pipe_ok = false;
            }
            held.clear();
            held.extend_from_slice(&buf[..n]);
        }
        if let Err(e) = point.check(h.hex()) {
            // Before its input ends pg_restore cannot commit: killing it rolls everything back.
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(e);
        }
        if pipe_ok && stdin.write_all(&held).await.is_err() {
            pipe_ok = false;
        }
        drop(stdin);
        let status = child.wait().await.map_err(io)?;
        let stderr = err_task.await.unwrap_or_default();
        if !status.success() || !pipe_ok {
            return Err(AppDbError::Tool {
                program: "pg_restore".into(),
                status: status.to_string(),
                stderr: stderr.trim().to_owned(),
            });
        }
        Ok(())
    }

    async fn pg_restore(&self, url: &str, file: &Path) -> Result<(), AppDbError> {
        let mut cmd = self.pg_command("pg_restore", url);
        cmd.args(PG_RESTORE_ARGS)
            .arg(without_password(url))
            .arg(file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let out = cmd.output().await.map_err(|e| AppDbError::Tool {
            program: "pg_restore".into(),
            status: "not started".into(),
            stderr: e.to_string(),
        })?;
        if !out.status.success() {
            return Err(AppDbError::Tool {
                program: "pg_restore".into(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(())
    }

    /// The restore drill: `point` restored into a scratch database (PostgreSQL: a new database
    /// on the same server; SQLite: a copy), `query` run on it (at least one row), the scratch
    /// dropped whatever happened.
    pub async fn drill(
        &self,
        point: &RecoveryPoint,
        query: &str,
    ) -> Result<DrillReport, AppDbError> {
        let rows = match self.engine {
            Engine::Postgres => self.pg_drill(point, query).await?,
            Engine::Sqlite => {
                let scratch =
                    point
                        .dir
                        .join(format!(".drill-{}-{}.sqlite", point.id, std::process::id()));
                let (from, to, algorithm) = (point.path(), scratch.clone(), point.algorithm);
                let copied =
                    tokio::task::spawn_blocking(move || copy_hashing(&from, &to, algorithm))
                        .await
                        .unwrap_or_else(|e| {
                            Err(AppDbError::BadRecoveryPoint {
                                path: point.path(),
                                message: e.to_string(),
                            })
                        });
                if let Err(e) = copied.and_then(|actual| point.check(actual)) {
                    let _ = std::fs::remove_file(&scratch);
                    return Err(e);
                }
                let rows = async {
                    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&scratch);
                    let mut c = sqlx::sqlite::SqliteConnection::connect_with(&opts)
                        .await
                        .map_err(|e| AppDbError::DrillFailed {
                            message: e.to_string(),
                        })?;
                    let r = sqlx::query(query).fetch_all(&mut c).await;
                    let _ = c.close().await;
                    r.map(|v| v.len() as u64)
                        .map_err(|e| AppDbError::DrillFailed {
                            message: e.to_string(),
                        })
                }
                .await;
                let _ = std::fs::remove_file(&scratch);
                rows?
            }
        };
        if rows == 0 {
            return Err(AppDbError::DrillEmpty {
                query: query.to_owned(),
            });
        }
        Ok(DrillReport {
            recovery_point: point.id.clone(),
            query: query.to_owned(),
            rows,
        })
    }

    async fn pg_drill(&self, point: &RecoveryPoint, query: &str) -> Result<u64, AppDbError> {
        let scratch = format!(
            "cutover_drill_{}_{}",
            std::process::id(),
            Utc::now().timestamp_millis()
        );
        let Conn::Pg(mut admin) = self.connect().await? else {
            return Err(AppDbError::DrillFailed {
                message: "not a PostgreSQL database".into(),
            });
        };
        let sql_fail = |what: &str, e: sqlx::Error| AppDbError::Sql {
            target: self.target(),
            what: what.to_owned(),
            message: e.to_string(),
        };
        sqlx::raw_sql(&format!("CREATE DATABASE \"{scratch}\""))
            .execute(&mut admin)
            .await
            .map_err(|e| sql_fail("creating the drill's scratch database", e))?;
        let url = with_database(&self.url, &scratch);
        let result = async {
            self.pg_restore_verified(&url, point).await?;
            let opts = url
                .parse::<sqlx::postgres::PgConnectOptions>()
                .map_err(|e| AppDbError::DrillFailed {
                    message: e.to_string(),
                })?;
            let mut c = sqlx::postgres::PgConnection::connect_with(&opts)
                .await
                .map_err(|e| AppDbError::DrillFailed {
                    message: e.to_string(),
                })?;
            let r = sqlx::query(query).fetch_all(&mut c).await;
            let _ = c.close().await;
            r.map(|v| v.len() as u64)
                .map_err(|e| AppDbError::DrillFailed {
                    message: e.to_string(),
                })
        }
        .await;
        let dropped = sqlx::raw_sql(&format!(
            "DROP DATABASE IF EXISTS \"{scratch}\" WITH (FORCE)"
        ))
        .execute(&mut admin)
        .await;
        close(Conn::Pg(admin)).await;
        let rows = result?;
        dropped.map_err(|e| sql_fail("dropping the drill's scratch database", e))?;
        Ok(rows)
    }
}

/// `pg_restore`'s options (followed by the URL): replace what the dump holds, in one
/// transaction, stopping at the first error.
const PG_RESTORE_ARGS: [&str; 6] = [
    "--clean",
    "--if-exists",
    "--no-owner",
    "--single-transaction",
    "--exit-on-error",
    "--dbname",
];

/// SQLite's default `SQLITE_MAX_MMAP_SIZE` (a larger `mmap_size` is cut down to it).
const SQLITE_MMAP_SIZE: i64 = 0x7fff_0000;

/// Below this size an SQLite point is checked before the copy (a file of a few pages could be
/// copied and committed in the first step); 3 pages of the largest page size.
const SQLITE_CHECK_FIRST_BELOW: u64 = 3 * 65_536;

async fn verify_blocking(point: &RecoveryPoint) -> Result<(), AppDbError> {
    let p = point.clone();
    tokio::task::spawn_blocking(move || p.verify())
        .await
        .unwrap_or_else(|e| {
            Err(AppDbError::BadRecoveryPoint {
                path: point.path(),
                message: e.to_string(),
            })
        })
}

/// The SQLite restore of [`AppDb::restore`]: the copy runs while another thread hashes the
/// point, and commits only after the digest matched.
fn sqlite_restore(point: &RecoveryPoint, dst: &Path, target: &str) -> Result<(), AppDbError> {
    use rusqlite::backup::StepResult;
    let path = point.path();
    let size = std::fs::metadata(&path)
        .map_err(|source| AppDbError::Io {
            path: path.clone(),
            source,
        })?
        .len();
    let check_first = size < SQLITE_CHECK_FIRST_BELOW;
    if check_first {
        point.verify()?;
    }
    let fail = |e: rusqlite::Error| AppDbError::Sql {
        target: target.to_owned(),
        what: "restoring a recovery point (online backup)".into(),
        message: e.to_string(),
    };
    let source =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(fail)?;
    let mut dest = rusqlite::Connection::open(dst).map_err(fail)?;
    dest.busy_timeout(Duration::from_secs(30)).map_err(fail)?;
    let backup = rusqlite::backup::Backup::new(&source, &mut dest).map_err(fail)?;
    if check_first {
        return copy_all(&backup).map_err(fail);
    }
    std::thread::scope(|s| {
        let hasher = s.spawn(|| digest_file(&path, point.algorithm));
        let checked = || -> Result<(), AppDbError> {
            let digest = hasher.join().unwrap_or_else(|_| {
                Err(AppDbError::BadRecoveryPoint {
                    path: path.clone(),
                    message: "the digest thread panicked".into(),
                })
            })?;
            point.check(digest)
        };
        // The first page tells the page count; then all but the last page, still uncommitted
        // (the destination's write transaction lasts until the step that copies the last page).
        let copied = step_pages(&backup, 1).and_then(|r| {
            let total = backup.progress().pagecount;
            if r == StepResult::Done || total < 3 {
                return Ok(r);
            }
            step_pages(&backup, total - 2)
        });
        match copied {
            // A damaged file can fail the copy itself: the digest says why.
            Err(e) => Err(checked().err().unwrap_or_else(|| fail(e))),
            Ok(StepResult::Done) => checked(),
            Ok(_) => {
                checked()?;
                copy_all(&backup).map_err(fail)
            }
        }
        // On any error `backup` is dropped unfinished, which rolls the destination back.
    })
}

/// One `sqlite3_backup_step(pages)`, waiting while the destination is busy or locked.
fn step_pages(
    backup: &rusqlite::backup::Backup<'_, '_>,
    pages: i32,
) -> rusqlite::Result<rusqlite::backup::StepResult> {
    use rusqlite::backup::StepResult;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match backup.step(pages)? {
            r @ (StepResult::Done | StepResult::More) => return Ok(r),
            _ if std::time::Instant::now() > deadline => {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                    Some("the database stayed locked for 60 s".into()),
                ));
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Copies every (remaining) page in one step (`sqlite3_backup_step(-1)`: one read transaction,
/// so a consistent copy; rusqlite's `run_to_completion` only takes positive page counts).
fn copy_all(backup: &rusqlite::backup::Backup<'_, '_>) -> rusqlite::Result<()> {
    while step_pages(backup, -1)? != rusqlite::backup::StepResult::Done {}
    Ok(())
}

/// `(schema, table)` of the TABLE entries of a `pg_restore --list` (lines such as
/// `215; 1259 16385 TABLE public notes postgres`).
fn dumped_tables(list: &str) -> Vec<(String, String)> {
    list.lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| {
            let rest = l.split_once(';')?.1;
            let mut w = rest.split_whitespace().skip(2);
            (w.next()? == "TABLE").then_some(())?;
            Some((w.next()?.to_owned(), w.next()?.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A manifest written before BLAKE3 (a `sha256` key, no `algorithm`) still loads and
    /// verifies, and a damaged file is caught with the algorithm named.
    #[test]
    fn old_sha256_manifests_still_verify() {
        let dir = tempfile::tempdir().unwrap();
        let data = b"SQLite format 3\0 and then some pages";
        std::fs::write(dir.path().join("p.sqlite"), data).unwrap();
        let sha = hex::encode(Sha256::digest(data));
        let manifest = format!(
            r#"{{"id":"p","environment":"production","engine":"sqlite","format":"sqlite-backup","file":"p.sqlite","sha256":"{sha}","size":{},"created_at":"2026-01-02T03:04:05Z","release":null}}"#,
            data.len()
        );
        std::fs::write(dir.path().join("p.json"), manifest).unwrap();
        let p = load_manifest(&dir.path().join("p.json")).unwrap();
        assert_eq!(p.algorithm, DigestAlgorithm::Sha256);
        assert_eq!(p.digest, sha);
        p.verify().unwrap();
        // Written again, it names its algorithm.
        let again = serde_json::to_value(&p).unwrap();
        assert_eq!(again["algorithm"], "sha256");
        assert_eq!(again["digest"], sha.as_str());

        std::fs::write(
            dir.path().join("p.sqlite"),
            b"SQLite format 3\0 and then damage",
        )
        .unwrap();
        let e = p.verify().unwrap_err().to_string();
        assert!(
            e.contains(&format!("the manifest says sha256:{sha}")),
            "{e}"
        );
        assert!(e.contains("nothing was restored"), "{e}");
        let hint = p.verify().unwrap_err().hint().unwrap();
        assert!(hint.contains("`sha256sum "), "{hint}");
    }

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            without_password("postgres://app:s%40cret@db:5432/app?sslmode=require"),
            "postgres://app@db:5432/app?sslmode=require"
        );
        assert_eq!(
            password_of("postgres://app:s%40cret@db:5432/app").as_deref(),
            Some("s@cret")
        );
        assert_eq!(without_password("postgres://db/app"), "postgres://db/app");
        assert_eq!(
            with_database("postgres://u:p@h:1/app?x=1", "scratch"),
            "postgres://u:p@h:1/scratch?x=1"
        );
        assert_eq!(with_database("postgres://h:1", "s"), "postgres://h:1/s");
        assert_eq!(
            dumped_tables(
                "; comment\n215; 1259 16385 TABLE public notes postgres\n216; 1259 16390 SEQUENCE public s postgres\n"
            ),
            vec![("public".to_owned(), "notes".to_owned())]
        );
    }
}
