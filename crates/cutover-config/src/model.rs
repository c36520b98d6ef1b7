//! The typed `cutover.toml` model. Every field's doc comment is its description in the JSON Schema.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::freeze::FreezeWindow;
use crate::types::{Argv, Date, Duration, Secret, with_hint};

fn yes() -> bool {
    true
}

/// The whole `cutover.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "cutover.toml")]
pub struct Config {
    /// The project: its name, how release tags look, its main branch.
    pub project: Project,
    /// How the next version is computed from Conventional Commits, and how notes and the changelog are written.
    #[serde(default)]
    pub versioning: Versioning,
    /// Monorepo packages, each released on its own from the commits that touch its path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<Package>,
    /// QA checks run through the job queue before a release or deployment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    /// How the release artifact is built. Without it, releases have no artifact (and cannot be deployed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    /// How the service runs on a host: start command, health checks, supervision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Service>,
    /// Deployment environments by name (e.g. `staging`, `production`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environments: BTreeMap<String, Environment>,
    /// Where notifications (advance shipping notice, released, delivered, ...) are sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Notify>,
    /// GitHub and GitLab webhooks received by `cutover serve`: their secrets, and the branch whose
    /// merges start the pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<Webhooks>,
    /// License policy applied to the bill of materials.
    #[serde(default)]
    pub licenses: Licenses,
    /// Vulnerability policy applied to the bill of materials.
    #[serde(default)]
    pub vulns: Vulns,
    /// The application's own database: migrations bound to releases, recovery points, restore drills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<Database>,
}

/// An environment variable's value as it may be written: a string, or a number or boolean that
/// is passed on as its text (so that `WORKERS = 4` and `CUTOVER_SERVICE__ENV__WORKERS=4` work).
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum EnvScalar {
    String(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
}

fn env_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    struct Text(String);
    impl<'de> Deserialize<'de> for Text {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Text;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a string, number or boolean")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                    Ok(Text(v.to_string()))
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                    Ok(Text(v.to_string()))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                    Ok(Text(v.to_string()))
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                    Ok(Text(v.to_string()))
                }
                fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                    Ok(Text(v.to_string()))
                }
            }
            d.deserialize_any(V)
        }
    }
    let m = BTreeMap::<String, Text>::deserialize(d)?;
    Ok(m.into_iter().map(|(k, v)| (k, v.0)).collect())
}

// --------------------------------------------------------------------------------------------
// [project]
// --------------------------------------------------------------------------------------------

fn default_tag_format() -> String {
    "v{version}".into()
}
fn default_main_branch() -> String {
    "main".into()
}

/// `[project]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// The project's name (used in notices, artifacts and as the default service name).
    pub name: String,
    /// How release tags are written; must contain `{version}`. Tags not matching it are ignored.
    #[serde(default = "default_tag_format")]
    pub tag_format: String,
    /// The branch releases are cut from and merges land on.
    #[serde(default = "default_main_branch")]
    pub main_branch: String,
}

// --------------------------------------------------------------------------------------------
// [versioning]
// --------------------------------------------------------------------------------------------

fn default_initial() -> String {
    "0.1.0".into()
}

/// `[versioning]`: Conventional Commits → SemVer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Versioning {
    /// The version of the first release, when no release tag exists yet.
    #[serde(default = "default_initial")]
    pub initial: String,
    /// What a breaking change bumps while the major version is 0.
    #[serde(default)]
    pub zero_major_breaking: ZeroMajorBreaking,
    /// What to do with commits that are not Conventional Commits.
    #[serde(default)]
    pub unconventional: Unconventional,
    /// Whether merge commits are part of the history that is analysed.
    #[serde(default)]
    pub merges: Merges,
    /// Link template for issue references like `#123`; `{id}` is replaced by the number,
    /// e.g. `"https://github.com/acme/hello/issues/{id}"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_link: Option<String>,
    /// Changelog and release notes options.
    #[serde(default)]
    pub changelog: Changelog,
}

impl Default for Versioning {
    fn default() -> Self {
        Self {
            initial: default_initial(),
            zero_major_breaking: ZeroMajorBreaking::default(),
            unconventional: Unconventional::default(),
            merges: Merges::default(),
            issue_link: None,
            changelog: Changelog::default(),
        }
    }
}

/// What a breaking change bumps on 0.x.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ZeroMajorBreaking {
    /// 0.3.1 → 0.4.0 (the SemVer convention for unstable versions).
    #[default]
    Minor,
    /// 0.3.1 → 1.0.0.
    Major,
}

/// Policy for commits that are not Conventional Commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Unconventional {
    /// Left out of notes and of the bump.
    Ignore,
    /// Listed under "Other"; they do not bump the version.
    #[default]
    Other,
    /// `cutover plan` and `cutover release` fail, listing them.
    Error,
}

/// Whether merge commits are analysed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Merges {
    /// Merge commits are skipped (the merged commits still count).
    #[default]
    Skip,
    /// Merge commits are analysed like any other commit.
    Include,
}

fn default_changelog_file() -> PathBuf {
    "CHANGELOG.md".into()
}
fn default_commit_message() -> String {
    "chore(release): {version}".into()
}

/// `[versioning.changelog]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Changelog {
    /// The changelog file, relative to the project directory.
    #[serde(default = "default_changelog_file")]
    pub file: PathBuf,
    /// Whether `cutover release` prepends the release's section to the changelog file.
    #[serde(default = "yes")]
    pub update: bool,
    /// Whether `cutover release` commits the updated changelog before tagging.
    #[serde(default = "yes")]
    pub commit: bool,
    /// The message of that commit; `{version}` is replaced.
    #[serde(default = "default_commit_message")]
    pub commit_message: String,
    /// A minijinja template for release notes and changelog sections (default: the built-in Markdown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PathBuf>,
}

impl Default for Changelog {
    fn default() -> Self {
        Self {
            file: default_changelog_file(),
            update: true,
            commit: true,
            commit_message: default_commit_message(),
            template: None,
        }
    }
}

// --------------------------------------------------------------------------------------------
// [[packages]]
// --------------------------------------------------------------------------------------------

fn default_package_tag_format() -> String {
    "{name}-v{version}".into()
}

/// `[[packages]]`: one package of a monorepo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Package {
    /// The package's name (unique).
    pub name: String,
    /// Its directory, relative to the project directory; only commits touching it count.
    pub path: PathBuf,
    /// Its release tags; must contain `{version}`, may contain `{name}`.
    #[serde(default = "default_package_tag_format")]
    pub tag_format: String,
}

// --------------------------------------------------------------------------------------------
// [[checks]] and [build]
// --------------------------------------------------------------------------------------------

fn default_check_timeout() -> Duration {
    Duration::lit("30m")
}

/// `[[checks]]`: one QA check (tests, lint, audit...), run as a queue job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// The check's name (unique), shown in results and `cutover check log`.
    pub name: String,
    /// The command, as an argv array.
    pub run: Argv,
    /// Killed (with its process group) after this long.
    #[serde(default = "default_check_timeout")]
    pub timeout: Duration,
    /// Extra environment variables.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "env_map"
    )]
    #[schemars(with = "BTreeMap<String, EnvScalar>")]
    pub env: BTreeMap<String, String>,
    /// Working directory, relative to the project directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<PathBuf>,
    /// A failing required check blocks release and deploy; an advisory one (`false`) is only reported.
    #[serde(default = "yes")]
    pub required: bool,
}

/// `[build]`: how the release artifact is produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// The build command, as an argv array.
    pub run: Argv,
    /// Files and directories (relative to the project directory) packed into the artifact.
    pub artifact: Vec<PathBuf>,
    /// Extra environment variables for the build.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "env_map"
    )]
    #[schemars(with = "BTreeMap<String, EnvScalar>")]
    pub env: BTreeMap<String, String>,
    /// Working directory of the build, relative to the project directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<PathBuf>,
    /// Killed after this long (default: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

// --------------------------------------------------------------------------------------------
// [service]
// --------------------------------------------------------------------------------------------

fn default_stop_timeout() -> Duration {
    Duration::lit("10s")
}
fn default_drain_timeout() -> Duration {
    Duration::lit("30s")
}
fn default_keep_releases() -> u32 {
    5
}

/// `[service]`: how the service runs on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// The service's name on the agents (default: the project name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The start command. Placeholders substituted inside arguments: `{release_dir}`, `{port}`,
    /// `{version}`, `{slot}`. The process also gets `PORT` and `CUTOVER_VERSION` in its environment.
    pub start: Argv,
    /// Extra environment variables (`PORT` and `CUTOVER_VERSION` are set by cutover).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "env_map"
    )]
    #[schemars(with = "BTreeMap<String, EnvScalar>")]
    pub env: BTreeMap<String, String>,
    /// Secret environment variables: name → reference (`{ env = "VAR" }` or `{ file = "path" }`),
    /// resolved on the host, never logged.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, Secret>,
    /// How a slot is judged healthy (default: the process stays up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// An HTTP path whose body must equal the release's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_probe: Option<VersionProbe>,
    /// Time between SIGTERM and SIGKILL when stopping.
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout: Duration,
    /// Restarts of a crashed process.
    #[serde(default)]
    pub restart: Restart,
    /// Releases kept unpacked on each host (older ones are pruned).
    #[serde(default = "default_keep_releases")]
    pub keep_releases: u32,
    /// How long in-flight requests may finish on a slot that lost traffic (then 504).
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout: Duration,
    /// Smoke commands run against a new slot before it gets traffic. Placeholders: `{url}`,
    /// `{port}`, `{version}`, `{slot}`, `{release_dir}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub smoke: Vec<Argv>,
    /// Fixed ports for the two slots (default: chosen by the agent and kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<SlotPorts>,
}

/// Placeholders allowed in `service.start` and `service.health.command`.
pub const START_PLACEHOLDERS: &[&str] = &["release_dir", "port", "version", "slot"];
/// Placeholders allowed in `service.smoke` commands.
pub const SMOKE_PLACEHOLDERS: &[&str] = &["url", "port", "version", "slot", "release_dir"];

/// `[service.ports]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlotPorts {
    /// Port of the `blue` slot.
    pub blue: u16,
    /// Port of the `green` slot.
    pub green: u16,
}

/// `version_probe`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionProbe {
    /// HTTP path (e.g. `/version`) whose body must equal the release's version.
    pub path: String,
}

fn default_restart_max() -> u32 {
    5
}
fn default_restart_backoff() -> Duration {
    Duration::lit("1s")
}

/// `restart`: supervision of a crashed process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Restart {
    /// Restarts before the slot is reported failed.
    #[serde(default = "default_restart_max")]
    pub max: u32,
    /// First backoff; it doubles after every restart.
    #[serde(default = "default_restart_backoff")]
    pub backoff: Duration,
}

impl Default for Restart {
    fn default() -> Self {
        Self {
            max: default_restart_max(),
            backoff: default_restart_backoff(),
        }
    }
}

/// What a health check probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// An HTTP GET on the slot's port.
    Http {
        /// The path, e.g. `/health`.
        path: String,
        /// The status that means healthy.
        expected_status: u16,
    },
    /// A TCP connect to the slot's port.
    Tcp,
    /// A command (exit 0 = healthy); placeholders as in `service.start`.
    Command(Argv),
}

/// `health`: how a slot is judged healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawHealth", into = "RawHealth")]
pub struct Health {
    /// What is probed.
    pub probe: Probe,
    /// Per-probe timeout.
    pub timeout: Duration,
    /// Time between probes.
    pub interval: Duration,
    /// Consecutive successes before a slot is healthy.
    pub healthy_after: u32,
    /// Consecutive failures before a healthy slot is unhealthy.
    pub unhealthy_after: u32,
    /// How long a new slot may take to become healthy before the deployment fails.
    pub start_timeout: Duration,
}

fn default_health_timeout() -> Duration {
    Duration::lit("2s")
}
fn default_health_interval() -> Duration {
    Duration::lit("1s")
}
fn default_healthy_after() -> u32 {
    2
}
fn default_unhealthy_after() -> u32 {
    3
}
fn default_start_timeout() -> Duration {
    Duration::lit("60s")
}

/// Health check: exactly one of `path` (HTTP), `tcp = true` or `command`, plus timing.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Health")]
pub(crate) struct RawHealth {
    /// HTTP path probed with GET on the slot's port, e.g. `/health`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    /// HTTP status that means healthy (only with `path`; default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expected_status: Option<u16>,
    /// `true`: a TCP connect to the slot's port is the probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tcp: Option<bool>,
    /// A command whose exit status 0 means healthy (argv; placeholders as in `service.start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command: Option<Argv>,
    /// Per-probe timeout.
    #[serde(default = "default_health_timeout")]
    timeout: Duration,
    /// Time between probes.
    #[serde(default = "default_health_interval")]
    interval: Duration,
    /// Consecutive successes before a slot is healthy.
    #[serde(default = "default_healthy_after")]
    healthy_after: u32,
    /// Consecutive failures before a healthy slot is unhealthy.
    #[serde(default = "default_unhealthy_after")]
    unhealthy_after: u32,
    /// How long a new slot may take to become healthy before the deployment fails.
    #[serde(default = "default_start_timeout")]
    start_timeout: Duration,
}

impl TryFrom<RawHealth> for Health {
    type Error = String;
    fn try_from(r: RawHealth) -> Result<Self, String> {
        let tcp = r.tcp.unwrap_or(false);
        let probe = match (r.path, tcp, r.command) {
            (Some(path), false, None) => {
                if !path.starts_with('/') {
                    return Err(with_hint(
                        format!("health path `{path}` must start with `/`"),
                        format!("write `/{path}`"),
                    ));
                }
                Probe::Http {
                    path,
                    expected_status: r.expected_status.unwrap_or(200),
                }
            }
            (None, true, None) => Probe::Tcp,
            (None, false, Some(argv)) => Probe::Command(argv),
            (None, false, None) => {
                return Err(with_hint(
                    "a health check needs a probe: `path`, `tcp = true` or `command`",
                    "e.g. health = { path = \"/health\" }",
                ));
            }
            _ => {
                return Err(
                    "a health check has exactly one probe: `path`, `tcp = true` or `command`"
                        .into(),
                );
            }
        };
        if r.expected_status.is_some() && !matches!(probe, Probe::Http { .. }) {
            return Err("`expected_status` only applies to an HTTP probe (`path`)".into());
        }
        if r.expected_status.is_some_and(|s| !(100..=599).contains(&s)) {
            return Err("`expected_status` must be an HTTP status between 100 and 599".into());
        }
        Ok(Health {
            probe,
            timeout: r.timeout,
            interval: r.interval,
            healthy_after: r.healthy_after,
            unhealthy_after: r.unhealthy_after,
            start_timeout: r.start_timeout,
        })
    }
}

impl From<Health> for RawHealth {
    fn from(h: Health) -> Self {
        let (path, expected_status, tcp, command) = match h.probe {
            Probe::Http {
                path,
                expected_status,
            } => (Some(path), Some(expected_status), None, None),
            Probe::Tcp => (None, None, Some(true), None),
            Probe::Command(argv) => (None, None, None, Some(argv)),
        };
        RawHealth {
            path,
            expected_status,
            tcp,
            command,
            timeout: h.timeout,
            interval: h.interval,
            healthy_after: h.healthy_after,
            unhealthy_after: h.unhealthy_after,
            start_timeout: h.start_timeout,
        }
    }
}

impl JsonSchema for Health {
    fn schema_name() -> Cow<'static, str> {
        RawHealth::schema_name()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        RawHealth::json_schema(generator)
    }
}

// --------------------------------------------------------------------------------------------
// [environments.NAME]
// --------------------------------------------------------------------------------------------

fn default_observe() -> Duration {
    Duration::lit("1m")
}
fn default_keep_warm() -> Duration {
    Duration::lit("30m")
}

/// `[environments.NAME]`: one deployment target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// The hosts: names of agents (`local` is this machine), each either a name or a table
    /// `{ name = "h2", listen = "127.0.0.1:8182", ports = { blue = 9181, green = 9182 } }`.
    pub hosts: Vec<EnvHost>,
    /// How a release is rolled out: `"recreate"`, `"rolling"`, `"blue-green"`, `"canary"`, or a table
    /// `{ canary = [5, 25, 100], step = "2m", max_error_rate = 0.01 }` /
    /// `{ rolling = { batch = 2, max_unavailable = 1 } }`.
    #[serde(default)]
    pub strategy: Strategy,
    /// The public address the router listens on, `host:port` (e.g. `127.0.0.1:8080`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// The environment's public URL (shown in notices as the early-access link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The environment a release must have been live in before it can come here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote_from: Option<String>,
    /// Gate: how long the release must have been live in `promote_from` without a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak: Option<Duration>,
    /// Gate: distinct approvals (`cutover approve ENV VERSION`) needed before deploying.
    #[serde(default)]
    pub approvals: u32,
    /// Who may approve (actor names or emails); empty means anyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// Gate: the deployer's own approval does not count.
    #[serde(default)]
    pub separate_approver: bool,
    /// Gate: periods in which deployments are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub freeze: Vec<FreezeWindow>,
    /// Observation window after the switch; a failure in it rolls back.
    #[serde(default = "default_observe")]
    pub observe: Duration,
    /// How long the previous slot stays running after a switch (instant rollback while warm).
    #[serde(default = "default_keep_warm")]
    pub keep_warm: Duration,
    /// Extra environment variables for the service in this environment.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "env_map"
    )]
    #[schemars(with = "BTreeMap<String, EnvScalar>")]
    pub env: BTreeMap<String, String>,
}

/// One host of an environment: an agent's name, with optionally its own router address and slot
/// ports (otherwise the environment's `listen` and the service's `ports` apply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvHost {
    /// The agent's name (`local` is this machine).
    pub name: String,
    /// The address this host's router listens on, `host:port` (default: the environment's `listen`).
    pub listen: Option<String>,
    /// This host's blue and green slot ports (default: the service's `ports`).
    pub ports: Option<SlotPorts>,
}

impl EnvHost {
    /// A host given by name only (what a plain string in `hosts` means).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            listen: None,
            ports: None,
        }
    }

    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl From<&str> for EnvHost {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

impl PartialEq<&str> for EnvHost {
    fn eq(&self, other: &&str) -> bool {
        self.name == *other && self.listen.is_none() && self.ports.is_none()
    }
}

/// The table form of a host in `hosts`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "EnvHostTable")]
struct EnvHostTable {
    /// The agent's name (`local` is this machine).
    name: String,
    /// The address this host's router listens on, `host:port` (default: the environment's `listen`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    listen: Option<String>,
    /// This host's slot ports, `{ blue = 9181, green = 9182 }` (default: the service's `ports`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ports: Option<SlotPorts>,
}

impl<'de> Deserialize<'de> for EnvHost {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EnvHost;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a host name or a table { name, listen, ports }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EnvHost, E> {
                Ok(EnvHost::new(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EnvHost, A::Error> {
                let t = EnvHostTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(EnvHost {
                    name: t.name,
                    listen: t.listen,
                    ports: t.ports,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for EnvHost {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.listen.is_none() && self.ports.is_none() {
            return s.serialize_str(&self.name);
        }
        EnvHostTable {
            name: self.name.clone(),
            listen: self.listen.clone(),
            ports: self.ports.clone(),
        }
        .serialize(s)
    }
}

impl JsonSchema for EnvHost {
    fn schema_name() -> Cow<'static, str> {
        "EnvHost".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let table = generator.subschema_for::<EnvHostTable>();
        json_schema!({
            "description": "A host: an agent's name, or a table with its own router address and slot ports.",
            "oneOf": [
                { "type": "string" },
                table
            ]
        })
    }
}

/// How a release is rolled out to an environment.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Strategy {
    /// Stop the old release, then start the new one (downtime).
    Recreate,
    /// Host batches, each verified before the next.
    Rolling(Rolling),
    /// The idle slot is prepared and verified on every host, then all routers switch.
    #[default]
    BlueGreen,
    /// Traffic weight steps with analysis between them.
    Canary(Canary),
}

impl Strategy {
    /// The strategy's name: `recreate`, `rolling`, `blue-green`, `canary`.
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Recreate => "recreate",
            Strategy::Rolling(_) => "rolling",
            Strategy::BlueGreen => "blue-green",
            Strategy::Canary(_) => "canary",
        }
    }
}

/// Rolling strategy options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rolling {
    /// Hosts per batch: a number (`2`) or a percentage of the hosts (`"25%"`).
    #[serde(default)]
    pub batch: Batch,
    /// Hosts that may be unavailable at once.
    #[serde(default = "one")]
    pub max_unavailable: u32,
}

fn one() -> u32 {
    1
}

impl Default for Rolling {
    fn default() -> Self {
        Self {
            batch: Batch::default(),
            max_unavailable: 1,
        }
    }
}

/// A batch size: a host count or a percentage of the hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// This many hosts.
    Hosts(u32),
    /// This percentage of the hosts (rounded up, at least one).
    Percent(u8),
}

impl Default for Batch {
    fn default() -> Self {
        Batch::Hosts(1)
    }
}

impl Serialize for Batch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Batch::Hosts(n) => s.serialize_u32(*n),
            Batch::Percent(p) => s.collect_str(&format_args!("{p}%")),
        }
    }
}

impl<'de> Deserialize<'de> for Batch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Batch;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a host count (e.g. 2) or a percentage (e.g. \"25%\")")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Batch, E> {
                match u32::try_from(v) {
                    Ok(n) if n > 0 => Ok(Batch::Hosts(n)),
                    _ => Err(E::custom(format!(
                        "invalid batch size {v}, expected at least 1 host"
                    ))),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Batch, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(-1))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Batch, E> {
                let p = v
                    .strip_suffix('%')
                    .and_then(|n| n.trim().parse::<u8>().ok())
                    .filter(|p| (1..=100).contains(p));
                p.map(Batch::Percent).ok_or_else(|| {
                    E::custom(format!(
                        "invalid batch `{v}`, expected a host count (e.g. 2) or a percentage from 1% to 100%"
                    ))
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Batch {
    fn schema_name() -> Cow<'static, str> {
        "Batch".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Hosts per batch: a count, or a percentage of the hosts such as \"25%\".",
            "oneOf": [
                { "type": "integer", "minimum": 1 },
                { "type": "string", "pattern": "^[0-9]{1,3}%$" }
            ]
        })
    }
}

fn default_canary_steps() -> Vec<u32> {
    vec![10, 50, 100]
}
fn default_canary_step() -> Duration {
    Duration::lit("1m")
}
fn default_max_error_rate() -> f64 {
    0.01
}
fn default_min_requests() -> u64 {
    50
}

/// Canary strategy options.
#[derive(Debug, Clone, PartialEq)]
pub struct Canary {
    /// Traffic percentages for the new release, strictly increasing and ending at 100.
    pub steps: Vec<u32>,
    /// Time at each step before the analysis decides.
    pub step: Duration,
    /// Highest acceptable 5xx rate of the canary (0..1).
    pub max_error_rate: f64,
    /// Highest acceptable ratio of the canary's p99 latency to the stable slot's (e.g. 1.5).
    pub max_latency_ratio: Option<f64>,
    /// Requests the canary must have served at a step before its rates are judged.
    pub min_requests: u64,
}

impl Default for Canary {
    fn default() -> Self {
        Self {
            steps: default_canary_steps(),
            step: default_canary_step(),
            max_error_rate: default_max_error_rate(),
            max_latency_ratio: None,
            min_requests: default_min_requests(),
        }
    }
}

/// The table form of a strategy: `{ canary = [..], step, .. }` or `{ rolling = { .. } }`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct StrategyTable {
    /// Canary traffic percentages, strictly increasing and ending at 100, e.g. `[5, 25, 100]`.
    canary: Option<Vec<u32>>,
    /// Canary: time at each step before the analysis decides (default 1m).
    step: Option<Duration>,
    /// Canary: highest acceptable 5xx rate, 0..1 (default 0.01).
    max_error_rate: Option<f64>,
    /// Canary: highest acceptable ratio of the canary's p99 latency to the stable slot's.
    max_latency_ratio: Option<f64>,
    /// Canary: requests needed at a step before rates are judged (default 50).
    min_requests: Option<u64>,
    /// Rolling options: `{ batch = 2 | "25%", max_unavailable = 1 }`.
    rolling: Option<Rolling>,
}

const STRATEGY_NAMES: &[&str] = &["recreate", "rolling", "blue-green", "canary"];

impl<'de> Deserialize<'de> for Strategy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Strategy;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a strategy name or table")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Strategy, E> {
                match v {
                    "recreate" => Ok(Strategy::Recreate),
                    "rolling" => Ok(Strategy::Rolling(Rolling::default())),
                    "blue-green" => Ok(Strategy::BlueGreen),
                    "canary" => Ok(Strategy::Canary(Canary::default())),
                    _ => Err(E::unknown_variant(v, STRATEGY_NAMES)),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Strategy, A::Error> {
                let t = StrategyTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let canary_only = t.step.is_some()
                    || t.max_error_rate.is_some()
                    || t.max_latency_ratio.is_some()
                    || t.min_requests.is_some();
                match (t.canary, t.rolling) {
                    (Some(steps), None) => Ok(Strategy::Canary(Canary {
                        steps,
                        step: t.step.unwrap_or_else(default_canary_step),
                        max_error_rate: t.max_error_rate.unwrap_or_else(default_max_error_rate),
                        max_latency_ratio: t.max_latency_ratio,
                        min_requests: t.min_requests.unwrap_or_else(default_min_requests),
                    })),
                    (None, Some(rolling)) if !canary_only => Ok(Strategy::Rolling(rolling)),
                    (None, Some(_)) => Err(de::Error::custom(
                        "`step`, `max_error_rate`, `max_latency_ratio` and `min_requests` belong to a canary strategy, not a rolling one",
                    )),
                    (Some(_), Some(_)) => Err(de::Error::custom(
                        "a strategy table is either `canary` or `rolling`, not both",
                    )),
                    (None, None) => Err(de::Error::custom(with_hint(
                        "a strategy table needs `canary` or `rolling`",
                        "e.g. { canary = [5, 25, 100], step = \"2m\" } or { rolling = { batch = 2 } }",
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Strategy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Strategy::Recreate | Strategy::BlueGreen => s.serialize_str(self.name()),
            Strategy::Rolling(r) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("rolling", r)?;
                m.end()
            }
            Strategy::Canary(c) => {
                let mut m = s.serialize_map(None)?;
                m.serialize_entry("canary", &c.steps)?;
                m.serialize_entry("step", &c.step)?;
                m.serialize_entry("max_error_rate", &c.max_error_rate)?;
                if let Some(r) = c.max_latency_ratio {
                    m.serialize_entry("max_latency_ratio", &r)?;
                }
                m.serialize_entry("min_requests", &c.min_requests)?;
                m.end()
            }
        }
    }
}

impl JsonSchema for Strategy {
    fn schema_name() -> Cow<'static, str> {
        "Strategy".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let table = generator.subschema_for::<StrategyTable>();
        json_schema!({
            "description": "A rollout strategy: a name, or a table for canary / rolling options.",
            "oneOf": [
                { "type": "string", "enum": STRATEGY_NAMES },
                table
            ]
        })
    }
}

// --------------------------------------------------------------------------------------------
// [notify]
// --------------------------------------------------------------------------------------------

/// An event notifications can be sent for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    /// The advance shipping notice of a coming release.
    Notice,
    /// A release was cut.
    Released,
    /// A release was delivered to an environment (with its proof of delivery).
    Delivered,
    /// A deployment or a required check failed.
    Failed,
    /// A deployment was rolled back.
    RolledBack,
    /// An incident was opened or resolved.
    Incident,
}

impl Event {
    /// Every event.
    pub const ALL: [Event; 6] = [
        Event::Notice,
        Event::Released,
        Event::Delivered,
        Event::Failed,
        Event::RolledBack,
        Event::Incident,
    ];
}

fn all_events() -> Vec<Event> {
    Event::ALL.to_vec()
}

/// `[notify]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// Events sent to every channel (a channel's own `events` narrows this further). Default: all.
    #[serde(default = "all_events")]
    pub events: Vec<Event>,
    /// Stakeholders the advance shipping notice is addressed to (email addresses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// Generic webhooks: a JSON POST signed with HMAC-SHA256.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhook: Vec<WebhookChannel>,
    /// Slack-compatible incoming webhooks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slack: Vec<SlackChannel>,
    /// Email over SMTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailChannel>,
    /// The Atom feed served by `cutover serve` at `/feed.xml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atom: Option<AtomFeed>,
}

/// `[[notify.webhook]]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookChannel {
    /// The URL the JSON body is POSTed to.
    pub url: String,
    /// The HMAC key; the signature goes in the `X-Cutover-Signature-256` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    /// Only these events (default: `notify.events`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<Event>>,
}

/// `[[notify.slack]]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackChannel {
    /// The incoming-webhook URL; it is a credential, so it is a secret reference.
    pub url: Secret,
    /// Only these events (default: `notify.events`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<Event>>,
}

/// `[notify.email]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailChannel {
    /// The SMTP server.
    pub smtp: Smtp,
    /// The sender address.
    pub from: String,
    /// Recipient addresses (the notice also goes to `notify.recipients`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// Only these events (default: `notify.events`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<Event>>,
}

fn default_smtp_port() -> u16 {
    587
}

/// SMTP server settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    /// Host name.
    pub host: String,
    /// Port.
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// Transport security.
    #[serde(default)]
    pub tls: SmtpTls,
    /// A PEM file with the certificate authority that signed the server's certificate (relative
    /// paths are relative to the project directory), for a relay with a private or self-signed
    /// certificate: it is then the only trust root for this server, as with `curl --cacert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// User name for authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password for authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
}

/// SMTP transport security.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SmtpTls {
    /// Upgrade a plain connection with STARTTLS (required).
    #[default]
    Starttls,
    /// TLS from the first byte (usually port 465).
    Tls,
    /// No encryption (local test servers only).
    None,
}

fn default_max_entries() -> u32 {
    50
}

/// `[notify.atom]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AtomFeed {
    /// The feed's title (default: the project name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Entries kept in the feed.
    #[serde(default = "default_max_entries")]
    pub max_entries: u32,
    /// Only these events (default: `notify.events`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<Event>>,
}

/// `[webhooks]`: merges announced by GitHub (`POST /webhooks/github`) or GitLab
/// (`POST /webhooks/gitlab`) enqueue the pipeline to the first environment.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Webhooks {
    /// The GitHub webhook secret: deliveries must carry its HMAC in `X-Hub-Signature-256`.
    /// Without it GitHub deliveries are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github_secret: Option<Secret>,
    /// The GitLab webhook token, compared with `X-Gitlab-Token`. Without it GitLab deliveries are
    /// refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitlab_token: Option<Secret>,
    /// Merges into this branch start the pipeline (default: `project.main_branch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
}

// --------------------------------------------------------------------------------------------
// [licenses] and [vulns]
// --------------------------------------------------------------------------------------------

/// `[licenses]`: which licenses the bill of materials may contain.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Licenses {
    /// Allowed SPDX license identifiers (empty: no license policy). Expressions are evaluated
    /// properly: `MIT OR GPL-3.0` passes when MIT is allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Per-package exceptions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exceptions: Vec<LicenseException>,
    /// What to do with a component whose license is unknown.
    #[serde(default)]
    pub unknown: UnknownLicense,
}

/// `[[licenses.exceptions]]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LicenseException {
    /// The package name.
    pub package: String,
    /// Only this version (default: every version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Licenses additionally allowed for it.
    pub allow: Vec<String>,
    /// Why (kept for the audit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What to do with unknown licenses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownLicense {
    /// Accept silently.
    Allow,
    /// Report, but do not fail.
    #[default]
    Warn,
    /// Fail the license check.
    Deny,
}

/// `[vulns]`: which known vulnerabilities fail the gate.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Vulns {
    /// The lowest severity that fails the vulnerability check (`none`: never fails).
    #[serde(default)]
    pub fail_on: Severity,
    /// Advisories ignored on purpose, each with a reason and optionally an expiry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<VulnIgnore>,
    /// The local vulnerability database directory (default: `.cutover/vulns`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<PathBuf>,
}

/// Vulnerability severity levels.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Never fail.
    None,
    /// CVSS 0.1–3.9 and above.
    Low,
    /// CVSS 4.0–6.9 and above.
    Medium,
    /// CVSS 7.0–8.9 and above.
    #[default]
    High,
    /// CVSS 9.0–10.0.
    Critical,
}

/// `[[vulns.ignore]]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VulnIgnore {
    /// The advisory id or one of its aliases (e.g. `RUSTSEC-2023-0071`, `CVE-2023-1234`).
    pub id: String,
    /// After this date the ignore has expired and the advisory fails the check again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Date>,
    /// Why it is ignored.
    pub reason: String,
}

// --------------------------------------------------------------------------------------------
// [database]
// --------------------------------------------------------------------------------------------

/// `[database]`: the application's own database (not cutover's store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Database {
    /// The engine.
    pub engine: Engine,
    /// The connection URL (or SQLite path), referenced: `{ env = "DATABASE_URL" }` or `{ file = "..." }`.
    pub url: Secret,
    /// Directory of `NNNN_name.up.sql` / `NNNN_name.down.sql` migrations.
    #[serde(default = "default_migrations")]
    pub migrations: PathBuf,
    /// When contract-phase migrations run.
    #[serde(default)]
    pub contract: Contract,
    /// Recovery points kept (older ones are pruned).
    #[serde(default = "default_keep_recovery_points")]
    pub keep_recovery_points: u32,
    /// The restore drill: a query run against a scratch restore of the latest recovery point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<Drill>,
}

fn default_migrations() -> PathBuf {
    "migrations".into()
}
fn default_keep_recovery_points() -> u32 {
    10
}

/// Database engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

/// When contract migrations run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Contract {
    /// Once the previous release has drained and the observation window has passed.
    #[default]
    AfterObserve,
    /// At the next release's deployment.
    NextRelease,
}

/// `[database.drill]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Drill {
    /// A query that must succeed (and return at least one row) on the restored copy.
    pub query: String,
    /// Run the drill as a step of every release's deployment, right after its recovery point is
    /// taken (before any migration runs or traffic moves).
    #[serde(default)]
    pub on_release: bool,
    /// What a failed drill of a release's deployment does: `fail` it before any traffic moves, or
    /// `warn` (recorded and said) and go on.
    #[serde(default)]
    pub on_failure: DrillFailure,
}

/// What a failed release drill does to the deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DrillFailure {
    /// The deployment fails before any traffic moves.
    #[default]
    Fail,
    /// The failure is recorded and said; the deployment goes on.
    Warn,
}
