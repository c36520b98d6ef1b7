//! The test world: a project directory with a real store, the control plane on its unix socket,
//! real agents, release artifacts that run the test app, and the engine.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cutover_agent::client::{Client, ControlUrl};
use cutover_agent::daemon::{self, AgentConfig, AgentHandle, Backoff};
use cutover_config::Config;
use cutover_control::ControlState;
use cutover_deploy::{DeployError, DeployOutcome, DeployRequest, Engine};
use cutover_store::{Audit, AuditFilter, Change, DeploymentFilter, Release, ReleaseKind, Store};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const TOKEN_PREFIX: &str = "token-for-tests-0123456789-";

pub struct WorldSpec {
    pub hosts: Vec<String>,
    /// The TOML value of `strategy`.
    pub strategy: String,
    pub pg_admin: Option<String>,
    /// Whether the service has a version probe (a canary answering 5xx would fail it, and the
    /// canary tests want the router's counters to judge).
    pub version_probe: bool,
    /// The observation window.
    pub observe: String,
    /// How long the previous slot stays warm.
    pub keep_warm: String,
    /// How long a host may take to start its slot (and to switch its router) before the
    /// deployment counts it as unavailable: short for the tests that wait for it to pass, long
    /// for those that want every host (a loaded machine must not make a host "unavailable").
    pub start_timeout: String,
}

impl Default for WorldSpec {
    fn default() -> Self {
        Self {
            hosts: vec!["local".into()],
            strategy: "\"blue-green\"".into(),
            pg_admin: None,
            version_probe: true,
            observe: "300ms".into(),
            keep_warm: "30m".into(),
            start_timeout: "20s".into(),
        }
    }
}

pub struct World {
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn Store>,
    pub engine: Engine,
    state: ControlState,
    config: Config,
    listens: Vec<SocketAddr>,
    agents: Vec<Option<AgentHandle>>,
    stop: Option<oneshot::Sender<()>>,
    serve: tokio::task::JoinHandle<()>,
    releases: Mutex<HashMap<String, (String, String)>>,
    /// When the world started: progress lines carry the time since, so that a failure under
    /// load shows which step took how long.
    born: std::time::Instant,
}

fn exe() -> String {
    std::env::current_exe()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

pub use cutover_testkit::free_port;

/// `it deploy-child DIR VERSION`: deploys with an engine of its own (its control state serves
/// nothing: the agents learn of its assignments when the test's control plane re-reads the store).
pub fn deploy_child_main(args: &[String]) -> ExitCode {
    let (dir, version) = (PathBuf::from(&args[0]), args[1].clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = cutover_store::open_sqlite(&dir.join(".cutover/state.db"))
            .await
            .unwrap();
        let config = cutover_config::load(&dir.join("cutover.toml")).unwrap();
        let control = ControlState::new(store.clone(), dir.join(".cutover/artifacts/sha256"));
        let key = cutover_proof::load_or_create(&key_dir(&dir)).unwrap();
        let engine = Engine::new(store, control, config, dir, "child".into(), key);
        let out = engine
            .deploy(
                DeployRequest {
                    environment: "staging".into(),
                    version,
                    trigger: "cli".into(),
                    reverts: None,
                    wait_for_lock: false,
                    message: None,
                },
                &|_| {},
            )
            .await;
        println!("{out:?}");
    });
    ExitCode::SUCCESS
}

/// `it smoke URL`: GET URL/health must answer 200.
pub fn smoke_main(args: &[String]) -> ExitCode {
    let Some(url) = args.first() else {
        return ExitCode::from(2);
    };
    let addr: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match rt.block_on(cutover_agent::health::http_get(
        addr,
        "/health",
        Duration::from_secs(5),
    )) {
        Ok((200, _)) => ExitCode::SUCCESS,
        other => {
            eprintln!("smoke: {other:?}");
            ExitCode::FAILURE
        }
    }
}

pub async fn get_version(addr: SocketAddr) -> String {
    let (status, body) = cutover_agent::health::http_get(addr, "/version", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body:?}");
    String::from_utf8(body.to_vec()).unwrap()
}

fn config_text(
    spec: &WorldSpec,
    hosts: &str,
    listen: Option<SocketAddr>,
    ports: Option<(u16, u16)>,
) -> String {
    let listen = listen.map_or(String::new(), |l| format!("listen = \"{l}\""));
    let ports = ports.map_or(String::new(), |(b, g)| {
        format!("ports = {{ blue = {b}, green = {g} }}")
    });
    format!(
        r#"
[project]
name = "web"

[service]
start = ["{{release_dir}}/bin/app", "--port", "{{port}}", "--version", "{{version}}"]
health = {{ path = "/health", interval = "50ms", timeout = "1s", healthy_after = 2, unhealthy_after = 2, start_timeout = "{start_timeout}" }}
{probe}
stop_timeout = "2s"
drain_timeout = "1s"
smoke = [["{exe}", "smoke", "{{url}}"]]
{ports}

[environments.staging]
hosts = {hosts}
strategy = {strategy}
{listen}
observe = "{observe}"
keep_warm = "{keep_warm}"
"#,
        exe = exe(),
        strategy = spec.strategy,
        observe = spec.observe,
        keep_warm = spec.keep_warm,
        start_timeout = spec.start_timeout,
        probe = if spec.version_probe {
            "version_probe = { path = \"/version\" }"
        } else {
            ""
        },
    )
}

async fn open_store(dir: &Path, pg_admin: Option<&str>) -> Arc<dyn Store> {
    match pg_admin {
        None => cutover_store::open_sqlite(&dir.join(".cutover/state.db"))
            .await
            .unwrap(),
        Some(admin) => {
            use sqlx::Connection as _;
            let name = format!(
                "cutover_deploy_test_{}_{}",
                std::process::id(),
                chrono::Utc::now().timestamp_micros()
            );
            let mut c = sqlx::PgConnection::connect(admin).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                .execute(&mut c)
                .await
                .unwrap();
            c.close().await.unwrap();
            let url = match admin.rfind('/') {
                Some(i)
                    if admin[..i].contains("://")
                        && admin[..i].len() > admin.find("://").unwrap() + 2 =>
                {
                    let (base, rest) = admin.split_at(i);
                    let query = rest.find('?').map_or("", |q| &rest[q..]);
                    format!("{base}/{name}{query}")
                }
                _ => panic!("CUTOVER_TEST_PG_URL {admin} has no database path"),
            };
            cutover_store::open(&url).await.unwrap()
        }
    }
}

impl World {
    /// One listen address for the environment: enough for one agent (`local`); other hosts are
    /// registered only by the tests that want them.
    pub async fn start(spec: WorldSpec) -> World {
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let hosts = format!("{:?}", spec.hosts);
        let text = config_text(
            &spec,
            &hosts,
            Some(listen),
            Some((free_port(), free_port())),
        );
        let agents: Vec<String> = spec
            .hosts
            .iter()
            .filter(|h| *h == "local")
            .cloned()
            .collect();
        Self::with(spec, &text, vec![listen], &agents).await
    }

    /// Several agents, each with its own listen address and slot ports (per-host tables in
    /// `hosts`).
    pub async fn start_multi(spec: WorldSpec) -> World {
        let mut listens = Vec::new();
        let tables: Vec<String> = spec
            .hosts
            .iter()
            .map(|h| {
                let l = SocketAddr::from(([127, 0, 0, 1], free_port()));
                listens.push(l);
                format!(
                    "{{ name = \"{h}\", listen = \"{l}\", ports = {{ blue = {}, green = {} }} }}",
                    free_port(),
                    free_port()
                )
            })
            .collect();
        let text = config_text(&spec, &format!("[{}]", tables.join(", ")), None, None);
        let hosts = spec.hosts.clone();
        Self::with(spec, &text, listens, &hosts).await
    }

    async fn with(
        spec: WorldSpec,
        text: &str,
        listens: Vec<SocketAddr>,
        agents: &[String],
    ) -> World {
        let config =
            cutover_config::load_str(text, Path::new("cutover.toml"), &[] as &[(&str, &str)])
                .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cutover.toml"), text).unwrap();
        let store = open_store(dir.path(), spec.pg_admin.as_deref()).await;
        let state = ControlState::with_timing(
            store.clone(),
            dir.path().join(".cutover/artifacts/sha256"),
            Duration::from_secs(10),
            Duration::from_millis(500),
        );
        let socket = dir.path().join(".cutover/control.sock");
        let (tx, rx) = oneshot::channel();
        let serve = {
            let (state, socket) = (state.clone(), socket.clone());
            tokio::spawn(async move {
                cutover_control::serve_unix_until(&socket, state, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
            })
        };
        while tokio::net::UnixStream::connect(&socket).await.is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut handles = Vec::new();
        for name in agents {
            let token = format!("{TOKEN_PREFIX}{name}");
            cutover_control::add_host(&*store, name, &token, "test")
                .await
                .unwrap();
            let client = Client::new(
                ControlUrl::parse(&format!("unix:{}", socket.display()), false).unwrap(),
                name.as_str(),
                token,
            );
            let mut cfg =
                AgentConfig::new(name.as_str(), client, dir.path().join("agents").join(name));
            cfg.report_interval = Duration::from_millis(100);
            cfg.route_tick = Duration::from_millis(20);
            cfg.backoff = Backoff {
                base: Duration::from_millis(20),
                max: Duration::from_millis(200),
            };
            let mut h = daemon::spawn(cfg).await;
            tokio::time::timeout(
                Duration::from_secs(20),
                h.status.wait_for(|s| s.connected && s.reports > 0),
            )
            .await
            .unwrap()
            .unwrap();
            handles.push(Some(h));
        }
        let engine = Engine::with_signer(
            store.clone(),
            state.clone(),
            config.clone(),
            dir.path().to_path_buf(),
            "tester".into(),
            signer(dir.path()),
        );
        World {
            dir,
            store,
            engine,
            state,
            config,
            listens,
            agents: handles,
            stop: Some(tx),
            serve,
            releases: Mutex::new(HashMap::new()),
            born: std::time::Instant::now(),
        }
    }

    /// An engine over the same world with a changed configuration.
    pub fn with_config(&self, f: impl FnOnce(&mut Config)) -> Engine {
        let mut c = self.config.clone();
        f(&mut c);
        Engine::with_signer(
            self.store.clone(),
            self.state.clone(),
            c,
            self.dir.path().to_path_buf(),
            "tester".into(),
            signer(self.dir.path()),
        )
    }

    pub fn listen(&self, i: usize) -> SocketAddr {
        self.listens[i]
    }

    pub fn digest(&self, version: &str) -> String {
        self.releases.lock().unwrap()[version].0.clone()
    }

    pub fn commit(&self, version: &str) -> String {
        self.releases.lock().unwrap()[version].1.clone()
    }

    /// Records release `version` whose artifact runs the test app with `flags` (faults).
    pub async fn release(&self, version: &str, flags: &[&str]) {
        let mut script = format!(
            "#!/bin/sh\n# release {version}\nexec '{}' testapp \"$@\"",
            exe()
        );
        for f in flags {
            script.push_str(&format!(" '{f}'"));
        }
        script.push('\n');
        let mut builder = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(script.len() as u64);
        h.set_mode(0o755);
        h.set_mtime(1_700_000_000);
        builder
            .append_data(&mut h, "bin/app", script.as_bytes())
            .unwrap();
        let bytes = zstd::encode_all(&builder.into_inner().unwrap()[..], 3).unwrap();
        let tmp = self.dir.path().join("tmp.tar.zst");
        std::fs::write(&tmp, &bytes).unwrap();
        let digest = cutover_agent::artifact::sha256_file(&tmp).unwrap();
        let path = self.engine.artifact_path(&digest);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        self.insert_release(version, Some(&digest)).await;
    }

    pub async fn release_without_artifact(&self, version: &str) {
        self.insert_release(version, None).await;
    }

    async fn insert_release(&self, version: &str, digest: Option<&str>) {
        let commit = format!("{:0>40}", version.replace('.', ""));
        self.store
            .apply_one(
                Change::InsertRelease(Release {
                    version: version.into(),
                    tag: format!("v{version}"),
                    commit: commit.clone(),
                    kind: ReleaseKind::Normal,
                    notes: String::new(),
                    changes: json!([]),
                    artifact_digest: digest.map(|d| format!("sha256:{d}")),
                    bom: None,
                    vulns: None,
                    created_at: chrono::Utc::now(),
                }),
                &Audit::new(
                    "tester",
                    "release.create",
                    format!("release:{version}"),
                    json!({}),
                ),
            )
            .await
            .unwrap();
        self.releases.lock().unwrap().insert(
            version.into(),
            (digest.unwrap_or_default().to_owned(), commit),
        );
    }

    pub async fn deploy_to(&self, env: &str, version: &str) -> Result<DeployOutcome, DeployError> {
        self.engine
            .deploy(
                DeployRequest {
                    environment: env.into(),
                    version: version.into(),
                    trigger: "cli".into(),
                    reverts: None,
                    wait_for_lock: false,
                    message: None,
                },
                &|p| {
                    println!(
                        "    {:>7.2?} [{} {}] {}",
                        self.born.elapsed(),
                        p.deployment,
                        p.state,
                        p.message
                    );
                },
            )
            .await
    }

    pub async fn deploy(&self, version: &str) -> Result<DeployOutcome, DeployError> {
        self.deploy_to("staging", version).await
    }

    /// Deploys `version` and drops the deployment's future as soon as the record reaches
    /// `state` (an orchestrator that died there); returns the abandoned deployment's id.
    pub async fn deploy_and_abandon_at(&self, version: &str, state: &str) -> i64 {
        tokio::time::timeout(Duration::from_secs(30), async {
            let deploy = self.deploy(version);
            tokio::pin!(deploy);
            loop {
                tokio::select! {
                    out = &mut deploy => panic!("finished before it could be abandoned: {out:?}"),
                    () = tokio::time::sleep(Duration::from_millis(5)) => {
                        let d = self.store.list_deployments(&DeploymentFilter::default()).await.unwrap();
                        if let Some(d) = d.first().filter(|d| d.release_version == version && d.state == state) {
                            return d.id;
                        }
                    }
                }
            }
        })
        .await
        .expect("the deployment reaches the state within 30 s")
    }

    /// The latest observed state of the first agent.
    pub async fn latest(&self, host: &str) -> Value {
        self.store
            .latest_observation(host)
            .await
            .unwrap()
            .unwrap()
            .observed
    }

    pub async fn eventually(&self, what: &str, pred: impl Fn(&Value) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let host = self.config.environments["staging"].hosts[0].name.clone();
            if let Some(o) = self.store.latest_observation(&host).await.unwrap()
                && pred(&o.observed)
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never happened: {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Audit events not written by the agents (their reports keep coming).
    pub async fn audit_count(&self) -> usize {
        self.store
            .list_audit(&AuditFilter::default())
            .await
            .unwrap()
            .iter()
            .filter(|e| !e.actor.starts_with("agent:"))
            .count()
    }

    /// Steady GET / load through the router of host `i`, counting answers by version.
    pub fn load(&self, i: usize) -> Load {
        let addr = self.listen(i);
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut seen: BTreeMap<String, u64> = BTreeMap::new();
                while !stop.load(Ordering::Relaxed) {
                    let key =
                        match cutover_agent::health::http_get(addr, "/", Duration::from_secs(5))
                            .await
                        {
                            Ok((200, body)) => String::from_utf8_lossy(&body)
                                .trim()
                                .rsplit(' ')
                                .next()
                                .unwrap_or_default()
                                .to_owned(),
                            Ok((s, _)) if s >= 500 => "5xx".to_owned(),
                            Ok((s, _)) => s.to_string(),
                            Err(_) => "error".to_owned(),
                        };
                    *seen.entry(key).or_default() += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                seen
            }
        });
        Load { stop, task }
    }

    /// The agent of host `i` dies: it reports no more; its slots keep running.
    pub async fn kill_agent(&mut self, i: usize) {
        let a = self.agents[i].take().unwrap();
        a.stop().await.unwrap().detach().await;
    }

    /// Another process deploys `version` to staging with its own engine (killed by the test).
    pub fn spawn_deploy_child(&self, version: &str) -> std::process::Child {
        std::process::Command::new(exe())
            .arg("deploy-child")
            .arg(self.dir.path())
            .arg(version)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    pub fn verify_proof(&self, envelope: &Value) {
        verify(self.dir.path(), envelope);
    }

    pub async fn stop(mut self) {
        for a in self.agents.drain(..).flatten() {
            a.stop().await.unwrap().stop_all().await;
        }
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.serve).await;
        self.store.close().await;
    }
}

impl Drop for World {
    /// The slots of a killed agent (`kill_agent`) keep running by design, and a failed test
    /// never reaches `stop`: whatever still runs in this world's directory is killed.
    fn drop(&mut self) {
        let dir =
            std::fs::canonicalize(self.dir.path()).unwrap_or_else(|_| self.dir.path().to_owned());
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in procs.flatten() {
            if let Ok(cwd) = std::fs::read_link(entry.path().join("cwd"))
                && cwd.starts_with(&dir)
                && let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>()
                && pid != std::process::id()
            {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

pub struct Load {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<BTreeMap<String, u64>>,
}

impl Load {
    pub async fn stop(self) -> BTreeMap<String, u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

fn key_dir(project: &Path) -> PathBuf {
    project.join(".cutover")
}

fn signer(project: &Path) -> Arc<dyn cutover_deploy::ProofSigner> {
    Arc::new(cutover_proof::load_or_create(&key_dir(project)).unwrap())
}

fn verify(project: &Path, envelope: &Value) {
    let key = cutover_proof::load_verifying(&key_dir(project)).unwrap();
    let statement = cutover_proof::verify(&key, envelope).unwrap();
    assert_eq!(statement["predicateType"], cutover_proof::PREDICATE_TYPE);
}
