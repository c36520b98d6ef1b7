//! A throwaway PostgreSQL cluster for the tests and benchmarks: `initdb` + `pg_ctl` from the
//! system's server binaries, in a temp dir, on a free loopback port, removed again on drop.
//!
//! `initdb` refuses to run as root, so when we are root the cluster belongs to the `postgres`
//! user and every server command runs through `runuser -u postgres --` (argv arrays, no shell).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

/// Settings for a cluster whose data may be lost: speed over durability.
const SETTINGS: &str = "\n# cutover xtask: a throwaway cluster\n\
fsync = off\n\
synchronous_commit = off\n\
full_page_writes = off\n\
max_connections = 200\n\
shared_buffers = 64MB\n\
log_min_messages = warning\n";

/// A running throwaway cluster. Dropping it stops the server and deletes its directory.
#[derive(Debug)]
pub struct PgCluster {
    /// Superuser URL, e.g. `postgres://postgres@127.0.0.1:54321/postgres` (trust authentication).
    pub url: String,
    /// The port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: Option<Owner>,
    stopped: bool,
}

#[derive(Debug, Clone, Copy)]
struct Owner {
    uid: u32,
    gid: u32,
}

/// Starts a new cluster (the caller exports `url` as `CUTOVER_TEST_PG_URL`).
pub fn start() -> Result<PgCluster> {
    let bin = find_server_binaries()?;
    let as_postgres = if effective_uid()? == 0 {
        Some(postgres_user()?)
    } else {
        None
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("cutover-pg-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cluster = PgCluster {
        url: String::new(),
        port: 0,
        dir: dir.clone(),
        bin,
        as_postgres,
        stopped: false,
    };
    if let Some(owner) = as_postgres {
        std::os::unix::fs::chown(&dir, Some(owner.uid), Some(owner.gid))
            .with_context(|| format!("giving {} to the postgres user", dir.display()))?;
    }
    let data = dir.join("data");
    cluster.run(
        "initdb",
        &[
            "-D".into(),
            data.clone().into(),
            "-U".into(),
            "postgres".into(),
            "-A".into(),
            "trust".into(),
            "-E".into(),
            "UTF8".into(),
            "--no-locale".into(),
            "--no-sync".into(),
        ],
    )?;
    let conf = data.join("postgresql.conf");
    let mut settings = SETTINGS.to_owned();
    let _ = writeln!(settings, "listen_addresses = '127.0.0.1'");
    let _ = writeln!(settings, "unix_socket_directories = '{}'", dir.display());
    std::fs::OpenOptions::new()
        .append(true)
        .open(&conf)
        .and_then(|mut f| f.write_all(settings.as_bytes()))
        .with_context(|| format!("writing {}", conf.display()))?;

    // The port is free when we look; another process may take it before the server binds, so try
    // a few ports.
    let mut last_error = None;
    for _ in 0..5 {
        let port = free_port()?;
        let log = dir.join("server.log");
        let started = cluster.run(
            "pg_ctl",
            &[
                "-D".into(),
                data.clone().into(),
                "-l".into(),
                log.clone().into(),
                "-o".into(),
                format!("-p {port}").into(),
                "-w".into(),
                "-t".into(),
                "60".into(),
                "start".into(),
            ],
        );
        match started {
            Ok(_) => {
                cluster.port = port;
                cluster.url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
                return Ok(cluster);
            }
            Err(e) => {
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(10).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                last_error = Some(e.context(format!("server log:\n{}", tail.join("\n"))));
            }
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("PostgreSQL did not start")))
}

impl PgCluster {
    /// A URL for database `name` on this cluster.
    pub fn url_for(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Stops the server (immediate mode: nothing in it needs to be kept) and deletes the directory.
    pub fn stop(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let data = self.dir.join("data");
        let stopped = if self.port != 0 {
            self.run(
                "pg_ctl",
                &[
                    "-D".into(),
                    data.into(),
                    "-m".into(),
                    "immediate".into(),
                    "-w".into(),
                    "stop".into(),
                ],
            )
            .map(|_| ())
        } else {
            Ok(())
        };
        let removed = std::fs::remove_dir_all(&self.dir)
            .with_context(|| format!("removing {}", self.dir.display()));
        stopped.and(removed)
    }

    /// Runs a server program from the cluster's bin dir, as the postgres user when we are root.
    fn run(&self, program: &str, args: &[OsString]) -> Result<Output> {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_postgres.is_some() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        // The postgres user may not be allowed into the caller's working directory.
        cmd.args(args).current_dir(&self.dir).env("LC_ALL", "C");
        let out = cmd
            .output()
            .with_context(|| format!("running {}", exe.display()))?;
        if !out.status.success() {
            bail!(
                "{} {} failed ({}):\n{}{}",
                exe.display(),
                args.iter()
                    .map(|a| a.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Errors cannot be reported from drop; `stop()` reports them.
        let _ = self.shutdown();
    }
}

/// The bin dir of the highest PostgreSQL version under `/usr/lib/postgresql`, else the one on PATH.
fn find_server_binaries() -> Result<PathBuf> {
    let mut best: Option<(Vec<u32>, PathBuf)> = None;
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        for entry in entries.flatten() {
            let bin = entry.path().join("bin");
            if !bin.join("initdb").is_file() || !bin.join("pg_ctl").is_file() {
                continue;
            }
            let version: Vec<u32> = entry
                .file_name()
                .to_string_lossy()
                .split('.')
                .map(|p| p.parse().unwrap_or(0))
                .collect();
            if best.as_ref().is_none_or(|(v, _)| version > *v) {
                best = Some((version, bin));
            }
        }
    }
    if let Some((_, bin)) = best {
        return Ok(bin);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return Ok(dir);
            }
        }
    }
    bail!(
        "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or on PATH\n\
         hint: install the Debian package `postgresql` (apt-get install postgresql); the tests need a real server"
    )
}

fn effective_uid() -> Result<u32> {
    // /proc/self belongs to the process's effective user; no libc call needed.
    Ok(std::fs::metadata("/proc/self")
        .context("reading /proc/self")?
        .uid())
}

fn postgres_user() -> Result<Owner> {
    let passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() >= 4 && fields[0] == "postgres" {
            let uid = fields[2].parse().context("the postgres user's uid")?;
            let gid = fields[3].parse().context("the postgres user's gid")?;
            return Ok(Owner { uid, gid });
        }
    }
    bail!(
        "running as root, but there is no `postgres` user to run the throwaway cluster as (initdb refuses root)\n\
         hint: install the Debian package `postgresql`, which creates it, or run the tests as an unprivileged user"
    )
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}
