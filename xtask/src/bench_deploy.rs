//! `cargo xtask bench deploy`: blue-green deployment time of the test app on 1 and 4 local hosts
//! (the project's local agent; four agents on loopback, each with its own root and ports), warm rollback latency (from
//! starting `cutover rollback` to the first request answered by the old version through the
//! router), and the requests that failed under a constant load through the router during
//! deploy-and-rollback cycles (target: 0).
//!
//! Everything goes through the real `cutover` binary (built in release mode first) in a throwaway
//! git project. Sizes: `CUTOVER_BENCH_DEPLOY_CYCLES` (default 20), `CUTOVER_BENCH_DEPLOY_ROLLBACKS`
//! (default 10), `CUTOVER_BENCH_DEPLOY_REPEAT` (deployments timed per host count, default 3).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use cutover_agent::loadgen::{LoadSpec, run as load};

use crate::bench::{build_cutover, rerun_in_release, size};

pub fn run() -> Result<()> {
    if cfg!(debug_assertions) {
        return rerun_in_release();
    }
    let cycles = size("CUTOVER_BENCH_DEPLOY_CYCLES", 20);
    let rollbacks = size("CUTOVER_BENCH_DEPLOY_ROLLBACKS", 10);
    let repeat = size("CUTOVER_BENCH_DEPLOY_REPEAT", 3).max(1);
    let exe = build_cutover()?;
    let tmp = tempfile::Builder::new()
        .prefix("cutover-bench-deploy-")
        .tempdir()?;
    let bench = Bench::new(&exe, tmp.path())?;
    let result = bench.run_all(cycles, rollbacks, repeat);
    bench.stop();
    result
}

fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

struct Bench {
    exe: PathBuf,
    dir: PathBuf,
    /// The router of environment `one` (host `local`).
    one: SocketAddr,
    /// The routers of environment `four`.
    four: Vec<SocketAddr>,
    agents: std::cell::RefCell<Vec<Child>>,
}

impl Bench {
    fn new(exe: &Path, tmp: &Path) -> Result<Self> {
        let dir = tmp.join("hello");
        std::fs::create_dir_all(&dir)?;
        let ports = free_ports(3 + 4 * 3)?;
        let one: SocketAddr = format!("127.0.0.1:{}", ports[0]).parse()?;
        let mut four = Vec::new();
        let mut hosts = Vec::new();
        for h in 0..4 {
            let base = 3 + h * 3;
            let listen: SocketAddr = format!("127.0.0.1:{}", ports[base]).parse()?;
            four.push(listen);
            hosts.push(format!(
                "{{ name = \"h{}\", listen = \"{listen}\", ports = {{ blue = {}, green = {} }} }}",
                h + 1,
                ports[base + 1],
                ports[base + 2]
            ));
        }
        let config = format!(
            r#"[project]
name = "hello"

[build]
run = ["true"]
artifact = ["README.md"]

[service]
start = [{exe:?}, "testapp", "--port", "{{port}}", "--version", "{{version}}"]
health = {{ path = "/health", interval = "20ms", timeout = "1s", healthy_after = 2, start_timeout = "20s" }}
version_probe = {{ path = "/version" }}
stop_timeout = "2s"
drain_timeout = "2s"

[environments.one]
hosts = [{{ name = "local", listen = "{one}", ports = {{ blue = {b}, green = {g} }} }}]
strategy = "blue-green"
observe = "200ms"

[environments.four]
hosts = [{hosts}]
strategy = "blue-green"
observe = "200ms"
"#,
            exe = exe.display().to_string(),
            b = ports[1],
            g = ports[2],
            hosts = hosts.join(", "),
        );
        let me = Self {
            exe: exe.to_owned(),
            dir,
            one,
            four,
            agents: std::cell::RefCell::new(Vec::new()),
        };
        me.git(&["init", "-q", "-b", "main"])?;
        std::fs::write(me.dir.join("cutover.toml"), config)?;
        std::fs::write(me.dir.join(".gitignore"), "/.cutover/\n/agents/\n")?;
        for v in ["1.0.0", "2.0.0"] {
            std::fs::write(me.dir.join("README.md"), format!("# hello {v}\n"))?;
            me.git(&["add", "."])?;
            me.git(&["commit", "-q", "-m", &format!("feat: hello {v}")])?;
            me.cutover(&["release", "--version", v])?;
        }
        Ok(me)
    }

    fn git(&self, args: &[&str]) -> Result<()> {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "Bench")
            .env("GIT_AUTHOR_EMAIL", "bench@example.com")
            .env("GIT_COMMITTER_NAME", "Bench")
            .env("GIT_COMMITTER_EMAIL", "bench@example.com")
            .output()?;
        ensure!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.current_dir(&self.dir)
            .args(args)
            .env("CUTOVER_ACTOR", "bench")
            .env("CUTOVER_LOG", "error")
            .env("NO_COLOR", "1");
        cmd
    }

    /// Runs `cutover ARGS`; its duration.
    fn cutover(&self, args: &[&str]) -> Result<Duration> {
        let start = Instant::now();
        let out = self.command(args).output()?;
        let took = start.elapsed();
        if !out.status.success() {
            bail!(
                "cutover {}: {}\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(took)
    }

    /// Four agents for environment `four` (`h1`…`h4`, each its own root and ports on this
    /// machine), connecting to the project's control socket.
    fn start_extra_agents(&self) -> Result<()> {
        let socket = self.dir.join(".cutover/control.sock");
        for h in 1..=4 {
            let name = format!("h{h}");
            let token = self.dir.join(format!("agents/{name}.token"));
            let root = self.dir.join(format!("agents/{name}"));
            std::fs::create_dir_all(&root)?;
            self.cutover(&[
                "host",
                "add",
                &name,
                "--token-file",
                &token.display().to_string(),
            ])?;
            let log = std::fs::File::create(self.dir.join(format!("agents/{name}.log")))?;
            let child = self
                .command(&[
                    "agent",
                    "--name",
                    &name,
                    "--control",
                    &format!("unix:{}", socket.display()),
                    "--token-file",
                    &token.display().to_string(),
                    "--root",
                    &root.display().to_string(),
                ])
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()?;
            self.agents.borrow_mut().push(child);
        }
        // Registered while a command serves the socket (the next one does).
        self.cutover(&["agent", "start", "--local"])?;
        Ok(())
    }

    fn stop(&self) {
        let _ = self.cutover(&["agent", "stop", "--local", "--all"]);
        for (i, child) in self.agents.borrow_mut().iter_mut().enumerate() {
            // `cutover agent` stops its services too when this file is there (as `agent stop
            // --local --all` asks the local one).
            let root = self.dir.join(format!("agents/h{}", i + 1));
            let _ = std::fs::write(root.join("stop-services"), "all\n");
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    fn run_all(&self, cycles: usize, rollbacks: usize, repeat: usize) -> Result<()> {
        println!("blue-green deployment of the test app (release build, real processes)");
        // 1 host: a cold first deployment, then timed switches between the two releases.
        let cold = self.cutover(&["deploy", "one", "--version", "1.0.0"])?;
        println!("  1 host, first deployment (cold): {}", ms(cold));
        let mut one = Vec::new();
        for i in 0..repeat {
            let v = if i % 2 == 0 { "2.0.0" } else { "1.0.0" };
            one.push(self.cutover(&["deploy", "one", "--version", v])?);
        }
        let one_med = median(&mut one);
        println!("  1 host, blue-green: median {} of {repeat}", ms(one_med));
        self.start_extra_agents()?;
        let cold4 = self.cutover(&["deploy", "four", "--version", "1.0.0"])?;
        println!("  4 hosts, first deployment (cold): {}", ms(cold4));
        let mut four = Vec::new();
        for i in 0..repeat {
            let v = if i % 2 == 0 { "2.0.0" } else { "1.0.0" };
            four.push(self.cutover(&["deploy", "four", "--version", v])?);
        }
        let four_med = median(&mut four);
        println!(
            "  4 hosts, blue-green: median {} of {repeat} ({:.2}x the 1-host time)",
            ms(four_med),
            four_med.as_secs_f64() / one_med.as_secs_f64().max(1e-9)
        );
        for addr in &self.four {
            ensure!(
                version_at(*addr).is_some(),
                "host router {addr} does not answer after the 4-host deployment"
            );
        }

        // Warm rollback: the previous release still runs in the other slot.
        let mut latencies = Vec::new();
        let mut current = self.ensure_live("2.0.0")?;
        for _ in 0..rollbacks {
            let target = if current == "2.0.0" { "1.0.0" } else { "2.0.0" };
            latencies.push(self.timed_rollback(target)?);
            current = target.to_owned();
        }
        let lat_med = median(&mut latencies);
        let lat_max = latencies.iter().max().copied().unwrap_or_default();
        println!(
            "warm rollback, `cutover rollback` start → first request answered by the old version: median {}, max {} over {rollbacks} (target < 50 ms)",
            ms(lat_med),
            ms(lat_max)
        );

        // Constant load through the router while deploying forward and rolling back.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut spec = LoadSpec::new(self.one, "/version");
        spec.connections = 4;
        spec.max_duration = Duration::from_secs(3600);
        spec.max_requests_per_connection = u64::MAX;
        let load_task = {
            let stop = stop.clone();
            runtime.spawn(async move { load(&spec, stop).await })
        };
        let started = Instant::now();
        self.ensure_live("1.0.0")?;
        for _ in 0..cycles {
            self.cutover(&["deploy", "one", "--version", "2.0.0"])?;
            self.cutover(&["rollback", "one"])?;
        }
        let took = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        let report = runtime.block_on(load_task)?;
        println!(
            "{cycles} deploy-and-rollback cycles in {:.1}s under constant load: {} requests ({:.0}/s), {} failed (target 0); outcomes {:?}",
            took.as_secs_f64(),
            report.sent,
            report.requests_per_second(),
            report.failures(),
            report.outcomes
        );
        if let (Some(p50), Some(p99)) = (report.percentile_us(0.5), report.percentile_us(0.99)) {
            println!("  latency through the router during the cycles: p50 {p50} µs, p99 {p99} µs");
        }
        Ok(())
    }

    /// Makes `version` live in `one` (a deployment when it is not).
    fn ensure_live(&self, version: &str) -> Result<String> {
        if version_at(self.one).as_deref() != Some(version) {
            self.cutover(&["deploy", "one", "--version", version])?;
        }
        Ok(version.to_owned())
    }

    /// `cutover rollback one --to TARGET` with a client asking the router for its version in a
    /// tight loop; the time from the command's start to the first answer from TARGET.
    fn timed_rollback(&self, target: &str) -> Result<Duration> {
        let addr = self.one;
        let done = Arc::new(AtomicBool::new(false));
        let watcher = {
            let done = done.clone();
            let target = target.to_owned();
            std::thread::spawn(move || -> Option<Instant> {
                while !done.load(Ordering::Relaxed) {
                    if version_at(addr).as_deref() == Some(target.as_str()) {
                        return Some(Instant::now());
                    }
                }
                None
            })
        };
        let start = Instant::now();
        let out = self
            .command(&["rollback", "one", "--to", target])
            .output()?;
        // The answer may come a moment after the command exits only if the switch were late;
        // give the watcher a bounded while.
        let settle = Instant::now();
        while !watcher.is_finished() && settle.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(1));
        }
        done.store(true, Ordering::Relaxed);
        let seen = watcher.join().ok().flatten();
        if !out.status.success() {
            bail!(
                "cutover rollback one --to {target}: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        seen.map(|t| t.duration_since(start))
            .context("the old version never answered after the rollback")
    }
}

/// `GET /version` through a router on a fresh connection.
fn version_at(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET /version HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    if !text.starts_with("HTTP/1.1 200") {
        return None;
    }
    text.split("\r\n\r\n").nth(1).map(|b| b.trim().to_owned())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
