//! Why a deployment could not start or go on: bad input (nothing changed) versus operational errors.

use cutover_store::StoreError;

/// Everything the engine can refuse or fail with. A deployment that ran and was rolled back is
/// not an error: it is a [`crate::DeployOutcome`].
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("unknown environment `{name}`; configured: {known}")]
    UnknownEnvironment { name: String, known: String },
    #[error("cutover.toml has no [service] section: there is nothing to run on the hosts")]
    NoService,
    #[error("environment `{0}` lists no hosts")]
    NoHosts(String),
    #[error("environment `{environment}` has no listen address for host `{host}`")]
    NoListen { environment: String, host: String },
    #[error(
        "environment `{environment}`, host `{host}`: listen address `{value}` is not `ip:port`"
    )]
    BadListen {
        environment: String,
        host: String,
        value: String,
    },
    #[error(
        "environment `{environment}`, host `{host}`: listen port {port} leaves no room for the slot ports {port}+1 and {port}+2"
    )]
    NoSlotPorts {
        environment: String,
        host: String,
        port: u16,
    },
    #[error("no release `{0}` is recorded")]
    NoRelease(String),
    #[error("release `{0}` has no artifact (the project had no [build] when it was released)")]
    NoArtifact(String),
    #[error("the artifact of release `{version}` is missing: {path} does not exist")]
    ArtifactMissing { version: String, path: String },
    #[error("host `{host}` of environment `{environment}` has no registered agent")]
    UnknownHost { environment: String, host: String },
    #[error(
        "host `{host}` of environment `{environment}` has a registered agent that never connected"
    )]
    HostNeverSeen { environment: String, host: String },
    #[error("no agent of environment `{environment}` is connected: {hosts}")]
    NotConnected { environment: String, hosts: String },
    #[error(
        "environment `{environment}`, host `{host}`: the {what} changed from {from} (live) to {to} (configuration)"
    )]
    AddressChanged {
        environment: String,
        host: String,
        what: String,
        from: String,
        to: String,
    },
    #[error("nothing is live in environment `{0}`, so there is nothing to roll back")]
    NothingLive(String),
    #[error("there is no earlier release to roll back to in environment `{0}`")]
    NoEarlierRelease(String),
    #[error("release `{version}` was never live in environment `{environment}`")]
    NeverLive {
        environment: String,
        version: String,
    },
    #[error("{0}")]
    Lock(StoreError),
    #[error("the lock of environment `{0}` was lost while deploying (its lease was taken over)")]
    LockLost(String),
    #[error("the configuration is unusable for deploying: {0}")]
    Config(String),
    #[error("the assignment of host `{host}` in the store is unreadable: {reason}")]
    BadAssignment { host: String, reason: String },
    #[error("deployment {id}: {reason}")]
    Interrupted { id: i64, reason: String },
    #[error("store error: {0}")]
    Store(#[from] StoreError),
    #[error("application database: {0}")]
    AppDb(#[from] cutover_appdb::AppDbError),
}

impl DeployError {
    /// True for errors in the user's input or configuration (exit code 2; nothing was changed).
    #[must_use]
    pub fn is_user_error(&self) -> bool {
        match self {
            DeployError::Lock(_)
            | DeployError::LockLost(_)
            | DeployError::BadAssignment { .. }
            | DeployError::Interrupted { .. } => false,
            DeployError::Store(e) => e.is_user_error(),
            DeployError::AppDb(e) => e.is_user_error(),
            _ => true,
        }
    }

    /// A suggestion for the user, where one helps.
    #[must_use]
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            DeployError::UnknownEnvironment { .. } => {
                "add it under [environments.NAME] in cutover.toml, or pick one of those configured".into()
            }
            DeployError::NoService => {
                "add [service] with `start = [\"{release_dir}/app\", \"--port\", \"{port}\"]`".into()
            }
            DeployError::NoHosts(_) => "add `hosts = [\"local\"]` to the environment".into(),
            DeployError::NoListen { .. } => {
                "add `listen = \"127.0.0.1:8080\"` to the environment (or to the host's table)".into()
            }
            DeployError::BadListen { .. } => "write it as `127.0.0.1:8080`".into(),
            DeployError::NoSlotPorts { .. } => {
                "set the slot ports: `ports = { blue = 9181, green = 9182 }`".into()
            }
            DeployError::NoRelease(_) => {
                "record it first with `cutover release`, or pick a version from `cutover history`".into()
            }
            DeployError::NoArtifact(_) => {
                "add a [build] section and record a new release with `cutover release`".into()
            }
            DeployError::ArtifactMissing { .. } => {
                "the artifact store under .cutover/artifacts was cleaned; record the release again".into()
            }
            DeployError::UnknownHost { host, .. } => format!(
                "register and start its agent: `cutover host add {host}`, then `cutover agent --name {host} …` on that host"
            ),
            DeployError::HostNeverSeen { host, .. } => {
                format!("start the agent of `{host}` and let it connect to this control plane")
            }
            DeployError::NotConnected { .. } => {
                "start the agents (`cutover agent …` on each host; `local` is started by the CLI) and check `cutover host ls`".into()
            }
            DeployError::AddressChanged { .. } => {
                "restore the previous value, or roll the configuration change out with `strategy = \"recreate\"`".into()
            }
            DeployError::NothingLive(_) => "deploy a release first with `cutover deploy`".into(),
            DeployError::NoEarlierRelease(_) | DeployError::NeverLive { .. } => {
                "`cutover history ENV` lists the releases that were live there".into()
            }
            DeployError::Lock(e) => e
                .hint()
                .unwrap_or_else(|| "wait for the other deployment, or use `--wait`".into()),
            DeployError::Interrupted { .. } => {
                "`cutover deploy --resume` finishes or rolls back unfinished deployments".into()
            }
            DeployError::Store(e) => return e.hint(),
            DeployError::AppDb(e) => return e.hint(),
            _ => return None,
        })
    }
}
