//! `cargo xtask bench server`: latency (p50, p99) and throughput of `cutover serve`'s status,
//! release and "what ran at T" endpoints on PostgreSQL holding 1,000,000 audit events.
//!
//! The history: a year of events (a valid hash chain, written with multi-row INSERTs, not
//! through `apply`): mostly queue and agent traffic, with a deployment of one of 50 releases
//! every few hours to staging or production (4 hosts), each with its traffic switch and one
//! proof per host; the deployments' rows, the 4 hosts with 100 observations each, and the
//! store's switch index (built by its backfill, timed).
//!
//! The server is the real thing: the release build of `cutover serve` (built before anything is
//! measured) in its own process, with its default queue workers, on a project directory holding the bench's
//! configuration. The load generator runs in this process: an open-loop hyper client (requests
//! scheduled at a fixed rate on 32 keep-alive connections, the latency counted from the
//! scheduled instant, so a stall is not hidden by waiting; requests more than 2 s overdue are
//! dropped and counted as errors) at 1,000 requests/s for 10 s per endpoint, then a closed loop
//! (32 connections, as fast as they go) for the most the server does. Meanwhile a writer opens
//! and resolves incidents through the API (`CUTOVER_BENCH_SERVER_WRITES` a second, default 4),
//! so that whatever the server keeps is invalidated at a realistic rate; the table shows how many
//! writes were made and how many answers came from the server's response cache.
//! Built in debug mode it re-runs itself in release mode.
//! Sizes: `CUTOVER_BENCH_SERVER_EVENTS` (default 1,000,000), `CUTOVER_BENCH_SERVER_RATE`
//! (default 1,000), `CUTOVER_BENCH_SERVER_SECS` (default 10).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use chrono::{TimeZone as _, Utc};
use cutover_core::audit::{AuditEvent, GENESIS_HASH, canonical_json};
use cutover_server::cache::CacheResult;
use cutover_store::{Audit, Change, PgStore, Release, ReleaseKind, Store, TokenScope};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use sqlx::Connection;

use crate::bench::{build_cutover, rerun_in_release, size};

/// Rows per INSERT while filling the chain.
const FILL_BATCH: usize = 2_000;
/// Keep-alive connections of the load generator.
const CONNECTIONS: usize = 32;
const RELEASES: usize = 50;
/// A request still unsent this long after its scheduled instant is dropped (and counted).
const GIVE_UP: Duration = Duration::from_secs(2);
const HOSTS: [&str; 4] = ["web-1", "web-2", "web-3", "web-4"];

const CONFIG: &str = r#"
[project]
name = "hello"

[service]
start = ["{release_dir}/hello", "--port", "{port}"]

[environments.staging]
hosts = ["web-1"]
listen = "127.0.0.1:18080"

[environments.production]
hosts = ["web-1", "web-2", "web-3", "web-4"]
listen = "127.0.0.1:18090"
promote_from = "staging"
"#;

pub fn run() -> Result<()> {
    if cfg!(debug_assertions) {
        return rerun_in_release();
    }
    let events = size("CUTOVER_BENCH_SERVER_EVENTS", 1_000_000);
    let rate = size("CUTOVER_BENCH_SERVER_RATE", 1_000);
    let secs = size("CUTOVER_BENCH_SERVER_SECS", 10);
    // Built before anything is measured, so the server is the current code and no compile runs
    // next to the measurement.
    let exe = build_cutover()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("starting a throwaway PostgreSQL cluster…");
    let cluster = crate::pg::start()?;
    let tmp = tempfile::tempdir()?;
    let result = runtime.block_on(bench(&exe, &cluster, tmp.path(), events, rate, secs));
    cluster.stop()?;
    result
}

fn version(i: usize) -> String {
    format!("1.{i}.0")
}

/// The history's events in seq order, `FILL_BATCH` at a time: (event, canonical payload).
fn history(
    n: usize,
    start: chrono::DateTime<Utc>,
    step_us: i64,
) -> impl Iterator<Item = Vec<(AuditEvent, String)>> {
    let mut prev = GENESIS_HASH.to_owned();
    let mut seq = 0i64;
    let mut deployment = 0i64;
    std::iter::from_fn(move || {
        if seq as usize >= n {
            return None;
        }
        let mut batch = Vec::with_capacity(FILL_BATCH);
        while batch.len() < FILL_BATCH && (seq as usize) < n {
            seq += 1;
            let at = start + chrono::Duration::microseconds(seq * step_us);
            // Every 500th event a deployment: its switch, then a proof per host.
            let phase = seq % 500;
            let (action, subject, payload) = if phase == 0 {
                deployment += 1;
                let env = if deployment % 2 == 0 {
                    "production"
                } else {
                    "staging"
                };
                let v = version(((deployment / 2) as usize) % RELEASES);
                let hosts: Vec<_> = HOSTS
                    .iter()
                    .take(if env == "production" { 4 } else { 1 })
                    .map(|h| json!({"host": h, "serving": [{"version": v, "slot": if deployment % 4 < 2 { "blue" } else { "green" }, "weight": 100}]}))
                    .collect();
                (
                    "deployment.switch".to_owned(),
                    format!("env:{env}"),
                    json!({"environment": env, "deployment": deployment, "hosts": hosts}),
                )
            } else if (1..=4).contains(&phase) && (deployment % 2 == 0 || phase == 1) {
                let env = if deployment % 2 == 0 {
                    "production"
                } else {
                    "staging"
                };
                let v = version(((deployment / 2) as usize) % RELEASES);
                (
                    "proof.record".to_owned(),
                    format!("deployment:{deployment}"),
                    json!({"environment": env, "host": HOSTS[(phase - 1) as usize], "version": v, "keyid": "SHA256:bench"}),
                )
            } else if phase % 3 == 0 {
                let job = seq / 3;
                (
                    "job.enqueue".to_owned(),
                    format!("job/{job}"),
                    json!({"class": "normal", "kind": "check", "priority": 0}),
                )
            } else if phase % 3 == 1 {
                (
                    "job.complete".to_owned(),
                    format!("job/{}", seq / 3),
                    json!({"worker": "w:1", "attempts": 1}),
                )
            } else {
                let host = HOSTS[(seq % 4) as usize];
                (
                    "agent.register".to_owned(),
                    format!("host:{host}"),
                    json!({"version": "0.1.0"}),
                )
            };
            let e = AuditEvent::seal(seq, at, "bench", action, subject, payload, prev.clone());
            prev = e.hash.clone();
            let p = canonical_json(&e.payload);
            batch.push((e, p));
        }
        Some(batch)
    })
}

async fn fill(
    store: &PgStore,
    events: usize,
    start: chrono::DateTime<Utc>,
    step_us: i64,
) -> Result<()> {
    let mut tx = store.pool().begin().await?;
    for batch in history(events, start, step_us) {
        let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new(
            "INSERT INTO audit (seq, at_us, actor, action, subject, payload, prev_hash, hash) ",
        );
        qb.push_values(batch, |mut b, (e, p)| {
            b.push_bind(e.seq)
                .push_bind(e.at.timestamp_micros())
                .push_bind(e.actor)
                .push_bind(e.action)
                .push_bind(e.subject)
                .push_bind(p)
                .push_bind(e.prev_hash)
                .push_bind(e.hash);
        });
        qb.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    sqlx::query("ANALYZE audit").execute(store.pool()).await?;
    Ok(())
}

/// The records the history's events speak of: its deployments (one per switch, live), the hosts
/// with a heartbeat, and 100 observations per host.
async fn records(
    store: &PgStore,
    events: usize,
    start: chrono::DateTime<Utc>,
    step_us: i64,
) -> Result<()> {
    let pool = store.pool();
    let deployments = i64::try_from(events / 500)?;
    let mut tx = pool.begin().await?;
    for chunk in (1..=deployments).collect::<Vec<_>>().chunks(FILL_BATCH) {
        let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new(
            "INSERT INTO deployments (id, environment, release_version, strategy, state, trigger_kind, \
             actor, created_us, updated_us, finished_us) ",
        );
        qb.push_values(chunk, |mut b, &d| {
            // The same arithmetic as `history`: deployment d switches at seq 500 d.
            let env = if d % 2 == 0 { "production" } else { "staging" };
            let switched = start.timestamp_micros() + 500 * d * step_us;
            b.push_bind(d)
                .push_bind(env)
                .push_bind(version(
                    usize::try_from(d / 2).unwrap_or_default() % RELEASES,
                ))
                .push_bind("blue-green")
                .push_bind("live")
                .push_bind("cli")
                .push_bind("bench")
                .push_bind(switched - 60_000_000)
                .push_bind(switched)
                .push_bind(switched);
        });
        qb.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    let now = Utc::now();
    for host in HOSTS {
        store
            .apply_one(
                Change::UpsertHost {
                    name: host.to_owned(),
                    token_hash: None,
                    agent_version: Some("0.1.0".to_owned()),
                    at: now,
                },
                &Audit::new("bench", "agent.register", format!("host:{host}"), json!({})),
            )
            .await?;
        store.touch_host(host, now, None).await?;
        let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new(
            "INSERT INTO observations (host, generation, observed, evidence, at_us) ",
        );
        qb.push_values(0..100i64, |mut b, i| {
            let at = now - chrono::Duration::seconds(100 - i);
            b.push_bind(host)
                .push_bind(1i64)
                .push_bind(json!({"at": at, "services": {}}).to_string())
                .push_bind("{}")
                .push_bind(at.timestamp_micros());
        });
        qb.build().execute(pool).await?;
    }
    Ok(())
}

async fn bench(
    exe: &std::path::Path,
    cluster: &crate::pg::PgCluster,
    tmp: &std::path::Path,
    events: usize,
    rate: usize,
    secs: usize,
) -> Result<()> {
    let mut c = sqlx::PgConnection::connect(&cluster.url).await?;
    sqlx::query("CREATE DATABASE bench_server")
        .execute(&mut c)
        .await?;
    c.close().await?;
    let url = cluster.url_for("bench_server");
    let pg = PgStore::open(&url).await?;
    let start = Utc
        .with_ymd_and_hms(2025, 11, 1, 0, 0, 0)
        .single()
        .context("a valid date")?;
    // A year of history.
    let step_us = 365 * 86_400 * 1_000_000 / i64::try_from(events.max(1))?;
    let t = Instant::now();
    fill(&pg, events, start, step_us).await?;
    println!(
        "filled {events} audit events in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let store = Arc::new(pg);
    for i in 0..RELEASES {
        let r = Release {
            version: version(i),
            tag: format!("v{}", version(i)),
            commit: format!("{:040x}", i + 1),
            kind: ReleaseKind::Normal,
            notes: format!("## {}\n\n- feat: change {i}\n", version(i)),
            changes: json!([{"type": "feat", "summary": format!("change {i}"), "time": "2026-01-01T00:00:00Z"}]),
            artifact_digest: Some(format!("sha256:{:064x}", i + 1)),
            bom: Some(
                json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": (0..200).map(|c| json!({"name": format!("dep-{c}"), "licenses": [{"license": {"id": if c % 3 == 0 { "MIT" } else { "Apache-2.0" }}}]})).collect::<Vec<_>>()}),
            ),
            vulns: None,
            created_at: start + chrono::Duration::days(i64::try_from(i)? * 7),
        };
        store
            .apply_one(
                Change::InsertRelease(r),
                &Audit::new(
                    "bench",
                    "release.created",
                    format!("release:{}", version(i)),
                    json!({}),
                ),
            )
            .await?;
    }
    let (_, secret) =
        cutover_server::tokens::create_token(&*store, "bench", TokenScope::Viewer, &[], "bench")
            .await?;
    let (_, writer) = cutover_server::tokens::create_token(
        &*store,
        "bench-writer",
        TokenScope::Deployer,
        &[],
        "bench",
    )
    .await?;
    records(&store, events, start, step_us).await?;
    store.close().await;
    // The chain was written straight into the table, past the store: have the store index its
    // switch events the way it does after migration 000006 (the next open runs the backfill).
    let mut c = sqlx::PgConnection::connect(&url).await?;
    sqlx::query("INSERT INTO audit_switch_backfill (pending) VALUES (1)")
        .execute(&mut c)
        .await?;
    let t = Instant::now();
    PgStore::open(&url).await?.close().await;
    println!(
        "indexed the switch events of {events} audit events in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // What autovacuum does in a while on a real server: statistics and the visibility map (for
    // index-only scans).
    sqlx::query("VACUUM ANALYZE").execute(&mut c).await?;
    c.close().await?;
    let project = tmp.join("project");
    std::fs::create_dir_all(&project)?;
    std::fs::write(project.join("cutover.toml"), CONFIG)?;
    // cutover finds its project as a git work tree.
    let git = std::process::Command::new("git")
        .args(["init", "--quiet"])
        .arg(&project)
        .status()
        .context("running git init")?;
    anyhow::ensure!(git.success(), "git init failed: {git}");
    let server = Server::start(exe, &project, &url, tmp)?;
    println!(
        "server: `cutover serve` (release build, pid {}) on {}",
        server.pid(),
        server.addr
    );
    let result = endpoints(&server, start, &secret, &writer, events, rate, secs).await;
    let log = server.stop()?;
    if result.is_err() {
        eprintln!("the server's output:\n{log}");
    }
    result
}

/// `cutover serve` as its own process (the release build next to this executable), on the
/// bench's database, with its default queue workers, as it runs in production.
struct Server {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    log: std::path::PathBuf,
}

impl Server {
    fn start(
        exe: &std::path::Path,
        project: &std::path::Path,
        url: &str,
        tmp: &std::path::Path,
    ) -> Result<Server> {
        let log = tmp.join("serve.log");
        let mut child = std::process::Command::new(exe)
            .arg("--json")
            .arg("--project")
            .arg(project)
            .arg("--database")
            .arg(url)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        // Its first document on stdout (pretty-printed JSON) says where it listens, once bound.
        let mut printed = String::new();
        let listen: serde_json::Value = loop {
            match lines.next() {
                Some(line) => printed.push_str(&line?),
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!(
                        "`cutover serve` ended before listening (it printed {printed:?}):\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
            if let Ok(doc) = serde_json::from_str(&printed) {
                break doc;
            }
        };
        let addr = listen["listen"]
            .as_str()
            .with_context(|| format!("the listen address in {listen}"))?
            .parse()?;
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Server { child, addr, log })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server (SIGTERM, its graceful shutdown) and returns what it logged.
    fn stop(mut self) -> Result<String> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                self.child.kill()?;
                self.child.wait()?;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(std::fs::read_to_string(&self.log).unwrap_or_default())
    }
}

/// Writes through the API while the load runs: an incident opened, then resolved, `rate` writes
/// a second, so that every answer the server keeps is invalidated that often. Returns (ok, failed).
async fn write_while(
    base: String,
    token: String,
    rate: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (usize, usize) {
    if rate == 0 {
        return (0, 0);
    }
    let client = client();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut ok, mut failed) = (0, 0);
    let mut open: Option<i64> = None;
    while !*stop.borrow() {
        tick.tick().await;
        let (path, body) = match open {
            None => (
                format!("{base}/api/v1/incidents"),
                json!({"environment": "production", "summary": "bench: background write"}),
            ),
            Some(id) => (format!("{base}/api/v1/incidents/{id}/resolve"), json!({})),
        };
        let Ok(req) = hyper::Request::post(path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
        else {
            failed += 1;
            continue;
        };
        let answer = match client.request(req).await {
            Ok(resp) if resp.status().is_success() => resp
                .into_body()
                .collect()
                .await
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b.to_bytes()).ok()),
            _ => None,
        };
        match answer {
            Some(doc) => {
                ok += 1;
                open = match open {
                    None => doc
                        .pointer("/incident/id")
                        .or_else(|| doc.get("id"))
                        .and_then(serde_json::Value::as_i64),
                    Some(_) => None,
                };
            }
            None => {
                failed += 1;
                open = None;
            }
        }
    }
    (ok, failed)
}

/// The server's response-cache counters from `/metrics`, in [`CacheResult::ALL`]'s order.
async fn cache_counters(base: &str, token: &str) -> [u64; CacheResult::ALL.len()] {
    let client = client();
    let Ok(req) = hyper::Request::get(format!("{base}/metrics"))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
    else {
        return [0; CacheResult::ALL.len()];
    };
    let Ok(resp) = client.request(req).await else {
        return [0; CacheResult::ALL.len()];
    };
    let Ok(body) = resp.into_body().collect().await else {
        return [0; CacheResult::ALL.len()];
    };
    let text = String::from_utf8_lossy(&body.to_bytes()).into_owned();
    let count = |result: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "cutover_response_cache_total{{result=\"{result}\"}} "
                ))
            })
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    CacheResult::ALL.map(|result| count(result.label()))
}

async fn endpoints(
    server: &Server,
    start: chrono::DateTime<Utc>,
    secret: &str,
    writer: &str,
    events: usize,
    rate: usize,
    secs: usize,
) -> Result<()> {
    let addr = server.addr;
    let base = format!("http://{addr}");
    let write_rate = size("CUTOVER_BENCH_SERVER_WRITES", 4);
    // Half-way through the year: the replay covers half of the history.
    let mid =
        (start + chrono::Duration::days(182)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let endpoints = [
        ("status", "/api/v1/status".to_owned()),
        ("release", format!("/api/v1/releases/{}", version(7))),
        (
            "served-at",
            format!("/api/v1/environments/production/served?at={mid}"),
        ),
    ];
    println!(
        "{events} audit events on PostgreSQL; open loop at {rate} req/s for {secs} s per endpoint, {CONNECTIONS} connections; \
         {write_rate} writes/s through the API meanwhile (incident open/resolve)"
    );
    println!(
        "{:<10} {:>9} {:>9} {:>9} {:>11} {:>8} {:>7} {:>21} | {:>14}",
        "endpoint",
        "p50 ms",
        "p99 ms",
        "max ms",
        "achieved/s",
        "errors",
        "writes",
        "cache hit/shared/miss",
        "closed-loop/s"
    );
    for (name, path) in &endpoints {
        let uri = format!("{base}{path}");
        // Warm up (connections, caches, prepared statements: more than five executions each).
        let _ = open_loop(&uri, secret, 100, Duration::from_secs(1)).await?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let writes = tokio::spawn(write_while(
            base.clone(),
            writer.to_owned(),
            write_rate,
            stopped,
        ));
        let cache0 = cache_counters(&base, secret).await;
        let r = open_loop(
            &uri,
            secret,
            rate,
            Duration::from_secs(u64::try_from(secs)?),
        )
        .await?;
        let cache1 = cache_counters(&base, secret).await;
        let max = closed_loop(&uri, secret, Duration::from_secs(5)).await?;
        let _ = stop.send(true);
        let (written, write_failures) = writes.await?;
        println!(
            "{name:<10} {:>9.2} {:>9.2} {:>9.2} {:>11.0} {:>8} {:>7} {:>21} | {:>14.0}",
            r.p50_ms,
            r.p99_ms,
            r.max_ms,
            r.achieved,
            r.errors,
            if write_failures == 0 {
                written.to_string()
            } else {
                format!("{written}+{write_failures}!")
            },
            cache1
                .iter()
                .zip(cache0)
                .map(|(after, before)| after.saturating_sub(before).to_string())
                .collect::<Vec<_>>()
                .join("/"),
            max
        );
    }
    Ok(())
}

struct Run {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    achieved: f64,
    errors: usize,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(CONNECTIONS)
        .build(connector)
}

/// One request; true when it answered 200 with a whole body.
async fn request(client: &HttpClient, uri: &str, token: &str) -> bool {
    let Ok(req) = hyper::Request::get(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
    else {
        return false;
    };
    match client.request(req).await {
        Ok(resp) => {
            let ok = resp.status() == hyper::StatusCode::OK;
            ok && resp.into_body().collect().await.is_ok()
        }
        Err(_) => false,
    }
}

/// Requests scheduled every 1/rate s for `duration`, spread over [`CONNECTIONS`] tasks; each
/// latency runs from the request's scheduled instant to its last byte.
async fn open_loop(uri: &str, token: &str, rate: usize, duration: Duration) -> Result<Run> {
    let total = (rate as f64 * duration.as_secs_f64()) as usize;
    if total == 0 {
        bail!("nothing to send: rate {rate} for {duration:?}");
    }
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let begin = tokio::time::Instant::now() + Duration::from_millis(50);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let client = client();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        let (next, client, uri, token) = (
            next.clone(),
            client.clone(),
            uri.to_owned(),
            token.to_owned(),
        );
        tasks.spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let due = begin + interval.mul_f64(i as f64);
                tokio::time::sleep_until(due).await;
                // A server far behind its schedule: give up on what is overdue (counted as errors)
                // so that a slow configuration cannot make the run last for minutes.
                if due.elapsed() > GIVE_UP {
                    errors += 1;
                    continue;
                }
                if request(&client, &uri, &token).await {
                    lat.push(due.elapsed());
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        });
    }
    let mut all = Vec::with_capacity(total);
    let mut errors = 0;
    while let Some(joined) = tasks.join_next().await {
        let (lat, e) = joined?;
        all.extend(lat);
        errors += e;
    }
    let elapsed = begin.elapsed();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    Ok(Run {
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: all.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1e3),
        achieved: all.len() as f64 / elapsed.as_secs_f64(),
        errors,
    })
}

/// Requests per second with [`CONNECTIONS`] connections sending back to back for `duration`.
async fn closed_loop(uri: &str, token: &str, duration: Duration) -> Result<f64> {
    let client = client();
    let end = Instant::now() + duration;
    let begin = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        let (client, uri, token) = (client.clone(), uri.to_owned(), token.to_owned());
        tasks.spawn(async move {
            let mut n = 0usize;
            while Instant::now() < end {
                if request(&client, &uri, &token).await {
                    n += 1;
                }
            }
            n
        });
    }
    let mut n = 0;
    while let Some(joined) = tasks.join_next().await {
        n += joined?;
    }
    Ok(n as f64 / begin.elapsed().as_secs_f64())
}
