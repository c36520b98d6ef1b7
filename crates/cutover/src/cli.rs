//! The command-line model (clap). Only definitions live here; `commands/` holds what they do.

use crate::ui::ColorMode;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// cutover: plan, qualify, release and deliver software, with proof.
#[derive(Debug, Parser)]
#[command(name = "cutover", version, about, long_about = None, propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 ok, 1 the operation ran and failed, 2 bad input or configuration."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Print one JSON document on stdout instead of human output.
    #[arg(long, global = true)]
    pub json: bool,

    /// The project directory (default: the git work tree containing the current directory).
    #[arg(long, global = true, value_name = "DIR")]
    pub project: Option<PathBuf>,

    /// cutover's own store: a PostgreSQL URL or a SQLite path (default: `.cutover/state.db`).
    #[arg(
        long,
        global = true,
        env = "CUTOVER_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database: Option<String>,

    /// More detail (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// When to use colour (`NO_COLOR` is respected under `auto`).
    #[arg(long, global = true, value_enum, default_value_t = ColorMode::Auto, value_name = "WHEN")]
    pub color: ColorMode,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented cutover.toml for this project.
    Init(InitArgs),

    /// Show the effective configuration or its JSON Schema.
    #[command(subcommand)]
    Config(ConfigCommand),

    /// The tamper-evident audit log: list events, or verify the chain.
    Audit(AuditArgs),

    /// A self-contained tour on this machine: a sample project, released and checked.
    Demo(DemoArgs),

    /// The bill of materials from every lockfile: a summary on a terminal, else CycloneDX 1.6
    /// or SPDX 2.3 JSON; `--check` applies the license policy; `bom diff A B` compares two BOMs.
    Bom(BomArgs),

    /// Known vulnerabilities in the bill of materials, offline, gated by `[vulns]`;
    /// `vulns import PATH` fills the local database, `vulns db status` describes it.
    Vulns(VulnsArgs),

    /// The next release from git history: version, why, grouped changes, draft notes. Changes nothing.
    #[command(disable_version_flag = true)]
    Plan(PlanArgs),

    /// The changelog: one section per release tag, newest first (bootstraps CHANGELOG.md when
    /// there is none and no --output is given).
    Changelog(ChangelogArgs),

    /// The advance shipping notice of the coming release, recorded; `--send` delivers it.
    #[command(disable_version_flag = true)]
    Notice(NoticeArgs),

    /// Tag, changelog, build artifact and release record (refuses a dirty work tree).
    #[command(disable_version_flag = true)]
    Release(ReleaseArgs),

    /// Hotfix branches: `start` at the release live in production, `finish` releases the patch.
    Hotfix(HotfixArgs),

    /// The job queue: list jobs (`ls`, the default), `cancel ID`, `bump ID --priority P`.
    Queue(QueueArgs),

    /// Run the configured QA checks through the queue; exit 1 when a required one fails.
    /// `check log ID` shows a check's output.
    Check(CheckArgs),

    /// Run queue workers in this process until interrupted (Ctrl-C).
    Worker(WorkerArgs),

    /// Run the host agent: register with the control plane, follow its assignments, report.
    Agent(AgentArgs),

    /// The hosts agents run on: `host ls`, `host add NAME --token-file F`.
    Host(HostArgs),

    /// Deliver a release to an environment through its strategy and wait for proof of delivery
    /// (exit 1 when it was rolled back). Unfinished deployments are resumed first.
    #[command(disable_version_flag = true)]
    Deploy(DeployArgs),

    /// Back to the previous live release of an environment (or `--to V`): a router switch when it
    /// is still warm in a slot, else a redeployment.
    Rollback(RollbackArgs),

    /// The application's database (`[database]`): `status`, `plan`, `migrate`, `rollback`,
    /// `snapshot ENV`, `restore ENV --yes`, `drill ENV`.
    Db(DbArgs),

    /// What runs where: per environment its release and newest deployment; per host whether
    /// its agent is connected, its slots (version, health, pid, port, since) and router split.
    Status(StatusArgs),

    /// Deployments, newest first: version, strategy, state, trigger, actor, duration, and why
    /// the failed and rolled-back ones ended so.
    History(HistoryArgs),

    /// DORA metrics of an environment: deployment frequency, lead time for changes, change
    /// failure rate and failed deployment recovery time, each with its performance band.
    Metrics(MetricsArgs),

    /// Incidents: `open` against the deployment that caused them, `resolve` with the one that
    /// restored service, `ls`.
    Incident(IncidentArgs),

    /// The signed proof of delivery of an environment's live release (or `--version V`), per
    /// host; `--verify` checks every signature and that it names the release's artifact.
    #[command(disable_version_flag = true)]
    Proof(ProofArgs),

    /// Serve the JSON API (OpenAPI at /api/openapi.json), /metrics and the agent protocol on one
    /// listener, and run queue workers, until interrupted (Ctrl-C or SIGTERM: graceful).
    Serve(ServeArgs),

    /// API tokens of `cutover serve`: `token create --name N --scope viewer|deployer|admin
    /// [--env E]...` (prints the secret once), `token ls`, `token revoke ID`.
    Token(TokenArgs),

    /// The output of an environment's service: its slots' rotating log files, read on this machine
    /// for `local` and through the control plane (`--control`) for other hosts.
    Logs(LogsArgs),

    /// Approve a release for an environment whose `approvals` gate needs it (recorded in the audit log).
    #[command(disable_version_flag = true)]
    Approve(ApproveArgs),

    /// The gates of an environment for a release: soak, approvals, freeze, required checks,
    /// vulnerability and license policies; each open or holding, why, and when it opens.
    #[command(disable_version_flag = true)]
    Gates(GatesArgs),

    /// The whole pipeline: plan → notice → checks → release → deploy to the first environment →
    /// gates → promote along the `promote_from` chain to the target. Resumable (`--resume`).
    Ship(ShipArgs),

    /// Deploy what runs in FROM to TO, if TO's gates are open.
    Promote(PromoteArgs),

    /// Print a shell completion script.
    Completions(CompletionsArgs),

    /// The small HTTP service used by the demo and the tests.
    #[command(hide = true, disable_version_flag = true)]
    Testapp(cutover_testapp::Args),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Overwrite an existing cutover.toml.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// The effective configuration (after `CUTOVER_*__*` overrides), secrets redacted.
    Show,
    /// The JSON Schema of cutover.toml.
    Schema,
}

#[derive(Debug, Args)]
pub struct QueueArgs {
    #[command(subcommand)]
    pub command: Option<QueueCommand>,

    /// Only jobs in this state (queued, running, succeeded, failed, cancelled).
    #[arg(long, value_name = "STATE", global = true)]
    pub state: Option<String>,

    /// Only jobs of this kind (e.g. `check`).
    #[arg(long, value_name = "KIND", global = true)]
    pub kind: Option<String>,

    /// At most this many jobs (the newest).
    #[arg(long, value_name = "N", default_value_t = 50, global = true)]
    pub limit: u64,
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List jobs, newest first (the default).
    Ls,
    /// Cancel a queued job.
    Cancel {
        /// The job's id (from `cutover queue ls`).
        id: i64,
        /// Why (recorded with the job and in the audit log).
        #[arg(long, default_value = "cancelled by hand")]
        reason: String,
    },
    /// Change a queued job's priority within its class (higher runs first; -100..=100).
    Bump {
        /// The job's id (from `cutover queue ls`).
        id: i64,
        /// The new priority.
        #[arg(long, allow_hyphen_values = true)]
        priority: i64,
    },
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(subcommand)]
    pub command: Option<CheckCommand>,

    /// Attach the results to this release (its checks run in the release class, or hotfix for
    /// a hotfix release).
    #[arg(long, value_name = "VERSION")]
    pub release: Option<String>,

    /// Run only these checks (by name; repeatable).
    #[arg(long = "only", value_name = "NAME")]
    pub only: Vec<String>,

    /// How many checks run at once (in-process workers).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub workers: usize,
}

#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// Show a check's captured output (stdout and stderr).
    Log {
        /// The check's job id (printed by `cutover check`).
        id: i64,
    },
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// How many workers this process runs (each claims and leases its own jobs).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,
    /// How many jobs each worker runs at once (it claims its free slots in one statement).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// At most this many finished jobs are completed in one transaction.
    #[arg(long, value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub max_batch: u16,
    /// How long a finished job may wait to be completed together with others, in milliseconds
    /// (0: each at once). Must stay well below the 30 s lease.
    #[arg(long, value_name = "MS", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub flush_ms: u64,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub command: Option<AgentCommand>,
    /// This host's name, as the environments' `hosts` list it.
    #[arg(long, value_name = "NAME", required = true)]
    pub name: Option<String>,
    /// The control plane: `unix:PATH`, `https://HOST[:PORT]`, or `http://IP:PORT` (loopback
    /// unless --allow-remote-http).
    #[arg(long, value_name = "URL", required = true)]
    pub control: Option<String>,
    /// The file holding this agent's token (first line).
    #[arg(long, value_name = "FILE", required = true)]
    pub token_file: Option<PathBuf>,
    /// Where the agent keeps releases, logs and its state.
    #[arg(long, value_name = "DIR", required = true)]
    pub root: Option<PathBuf>,
    /// Allow plain http to a non-loopback address (the token travels in clear).
    #[arg(long)]
    pub allow_remote_http: bool,
    /// For https: trust only the CA certificates in this PEM file (instead of the system's roots).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Make sure this project's local agent daemon (host `local`) runs and is connected: starts
    /// it when it does not run (deploy commands do this by themselves).
    Start {
        /// The local agent (the one the CLI starts for this project).
        #[arg(long, required = true)]
        local: bool,
    },
    /// Stop this project's local agent daemon (host `local`). Its slot processes keep running
    /// unless `--all` is given; the routers are part of the agent and stop with it until the next
    /// command that needs the agent (or `agent start --local`) starts it again, adopting the slots.
    Stop {
        /// The local agent (the one the CLI started for this project).
        #[arg(long, required = true)]
        local: bool,
        /// Also stop the services it runs (routers and slots, gracefully).
        #[arg(long)]
        all: bool,
    },
}

/// `cutover deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The environment (not needed with `--resume`).
    #[arg(required_unless_present = "resume")]
    pub env: Option<String>,
    /// The release to deploy (default: the newest recorded release).
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,
    /// Only finish (or roll back) the deployments a crash or an interruption left unfinished.
    #[arg(long, conflicts_with = "version")]
    pub resume: bool,
    /// Wait for the environment's lock instead of failing when another deployment holds it.
    #[arg(long)]
    pub wait: bool,
    /// Why (recorded with the lock and shown to whoever waits for it).
    #[arg(long, short = 'm', value_name = "TEXT")]
    pub message: Option<String>,
    /// Deploy through a freeze window; the reason is recorded in the audit log.
    #[arg(long, value_name = "REASON")]
    pub override_freeze: Option<String>,
    /// The queue job this deployment is for (set by the queue's workers): an earlier attempt's
    /// deployment of the job is adopted (finished: its outcome; unfinished: resumed), never
    /// deployed twice.
    #[arg(long, value_name = "ID", conflicts_with = "resume")]
    pub job: Option<i64>,
}

/// `cutover ship`.
#[derive(Debug, Args)]
pub struct ShipArgs {
    /// The last environment to ship to (default: the end of the `promote_from` chain).
    #[arg(long, value_name = "ENV")]
    pub to: Option<String>,
    /// Continue the last `cutover ship` run (after a crash, or once a holding gate opens).
    #[arg(long, conflicts_with = "to")]
    pub resume: bool,
    /// Deploy through a freeze window; the reason is recorded in the audit log.
    #[arg(long, value_name = "REASON")]
    pub override_freeze: Option<String>,
}

/// `cutover promote`.
#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The environment whose live release is promoted.
    pub from: String,
    /// The environment it goes to.
    pub to: String,
    /// Wait for TO's lock instead of failing when another deployment holds it.
    #[arg(long)]
    pub wait: bool,
    /// Deploy through a freeze window; the reason is recorded in the audit log.
    #[arg(long, value_name = "REASON")]
    pub override_freeze: Option<String>,
    /// Promote although FROM is not TO's `promote_from`; the reason is recorded in the audit log.
    #[arg(long, value_name = "REASON")]
    pub force: Option<String>,
}

/// `cutover rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The environment.
    pub env: String,
    /// The release to go back to (default: the one live before the current one).
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    /// When an irreversible migration lies between: restore the application database's recovery
    /// point taken before the reverted release instead (data written since is lost; needs `--yes`).
    #[arg(long)]
    pub restore_recovery_point: bool,
    /// Confirms `--restore-recovery-point`.
    #[arg(long)]
    pub yes: bool,
}

/// `cutover db`.
#[derive(Debug, Args)]
pub struct DbArgs {
    #[command(subcommand)]
    pub command: DbCommand,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Applied, pending and drifted migrations.
    Status,
    /// The pending migrations: expand (before the switch) and contract (after the window).
    Plan,
    /// Apply the pending migrations (of one phase with `--phase`), each in a transaction.
    Migrate {
        /// `expand` or `contract`.
        #[arg(long, value_name = "PHASE")]
        phase: Option<String>,
    },
    /// Run down migrations: those applied after `--to VERSION` (default: the newest one),
    /// contract first; refused across an irreversible one.
    Rollback {
        #[arg(long, value_name = "VERSION")]
        to: Option<i64>,
    },
    /// Take a recovery point (pg_dump custom format / SQLite online backup) for ENV.
    Snapshot { env: String },
    /// Restore ENV's latest (or `--id`) recovery point after checking its digest.
    Restore {
        env: String,
        #[arg(long)]
        id: Option<String>,
        /// Confirms that data written since the point is lost.
        #[arg(long)]
        yes: bool,
    },
    /// Restore the latest (or `--id`) recovery point into a scratch database and run the
    /// `[database.drill]` query (or `--query`): it must return a row.
    Drill {
        env: String,
        #[arg(long)]
        id: Option<String>,
        #[arg(long, value_name = "SQL")]
        query: Option<String>,
    },
}

/// `cutover serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where remote agents connect (`IP:PORT`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7447")]
    pub listen: String,
    /// Serve https with this certificate chain (PEM); agents then use `https://…`.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `--tls-cert`.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Let anyone read (GET) the API and dashboard without a token; writes still need one.
    #[arg(long)]
    pub public_read: bool,
    /// Queue workers run in this process (deploy jobs, checks); 0 runs none.
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(0..=64))]
    pub workers: u16,
    /// How long a queue job's claim holds without its worker's heartbeat, in seconds: the jobs
    /// of a server that died run again once it has passed.
    #[arg(long, value_name = "SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub job_lease: u64,
}

/// `cutover token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once (only its sha256 is stored).
    Create {
        /// A unique name; it is the actor of what the token does (e.g. an approver's email).
        #[arg(long, value_name = "NAME")]
        name: String,
        /// viewer (read), deployer (read, deploy, approve), admin (everything, tokens).
        #[arg(long, value_name = "SCOPE", value_parser = ["viewer", "deployer", "admin"])]
        scope: String,
        /// Limit a deployer to these environments (repeat; default: all).
        #[arg(long = "env", value_name = "ENV")]
        envs: Vec<String>,
    },
    /// List the tokens (never their secrets).
    Ls,
    /// Revoke a token: requests with it get 401 from then on.
    Revoke {
        /// The token's id (`cutover token ls`).
        id: i64,
    },
}

/// `cutover logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The environment.
    pub env: String,
    /// Only this host (default: every host of the environment whose agent runs here).
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Only this slot (`blue` or `green`).
    #[arg(long, value_name = "SLOT")]
    pub slot: Option<String>,
    /// How many lines per log to show first.
    #[arg(long, short = 'n', value_name = "N", default_value_t = 50)]
    pub lines: usize,
    /// Keep printing new lines (across rotation) until interrupted.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// The control plane the host's agent follows, for hosts other than `local` (default:
    /// `$CUTOVER_CONTROL`, else `http://127.0.0.1:7447`, where `cutover serve` listens).
    #[arg(long, value_name = "URL")]
    pub control: Option<String>,
    /// Trust only the CA certificates in this PEM file for an `https://` control plane.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct HostArgs {
    #[command(subcommand)]
    pub command: Option<HostCommand>,
}

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// List the hosts, their agent versions and when they were last seen (the default).
    Ls,
    /// Register a host with a new random token, written to FILE (only its hash is stored).
    Add {
        name: String,
        /// Where to write the token (created with mode 0600; must not exist).
        #[arg(long, value_name = "FILE")]
        token_file: PathBuf,
    },
}

/// `cutover status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this environment (default: every configured one).
    pub env: Option<String>,
}

/// `cutover proof`.
#[derive(Debug, Args)]
pub struct ProofArgs {
    /// The environment.
    pub env: String,
    /// The newest deployment of this release (default: the environment's live release).
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,
    /// Check each proof's signature with the project's public key (`.cutover/keys/`) and that
    /// its subject is the release's artifact digest; exit 1 naming the host when one fails.
    #[arg(long)]
    pub verify: bool,
    /// Only this host's proof.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
}

/// `cutover approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The environment (e.g. `production`).
    pub env: String,
    /// The release's version.
    pub version: String,
    /// Why, or what was checked (kept in the audit log).
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
}

/// `cutover gates`.
#[derive(Debug, Args)]
pub struct GatesArgs {
    /// The environment.
    pub env: String,
    /// The release to evaluate (default: the newest release live in the `promote_from`
    /// environment, else the newest release).
    #[arg(long, value_name = "V")]
    pub version: Option<String>,
    /// Evaluate as of this time instead of now (RFC 3339, e.g. `2026-12-24T09:00:00Z`): when
    /// will the freeze be over, the soak done?
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
}

/// `cutover history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only this environment (default: all).
    pub env: Option<String>,
    /// At most this many deployments (the newest).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
}

/// `cutover metrics`.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Start of the period: a duration back from now (`90d`, `12w`, `24h`) or a time (RFC 3339,
    /// `YYYY-MM-DD`).
    #[arg(long, value_name = "WHEN", default_value = "90d")]
    pub since: String,
    /// End of the period (exclusive; default: now); same forms as --since.
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// The environment (default: production, as `hotfix start` finds it).
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
}

/// `cutover incident`.
#[derive(Debug, Args)]
pub struct IncidentArgs {
    #[command(subcommand)]
    pub command: IncidentCommand,
}

#[derive(Debug, Subcommand)]
pub enum IncidentCommand {
    /// Open an incident, linked to the deployment that caused it.
    Open {
        /// The environment the incident is in.
        #[arg(long, value_name = "ENV")]
        env: String,
        /// The deployment that caused it (default: the environment's live deployment).
        #[arg(long, value_name = "DEPLOYMENT")]
        caused_by: Option<i64>,
        /// What is wrong.
        #[arg(long, value_name = "TEXT", default_value = "")]
        summary: String,
    },
    /// Resolve an incident, linked to the deployment that restored service.
    Resolve {
        /// The incident's id.
        id: i64,
        /// The deployment that restored service (default: the environment's live deployment,
        /// when it is not the one that caused the incident).
        #[arg(long, value_name = "DEPLOYMENT")]
        restored_by: Option<i64>,
    },
    /// List incidents, oldest first.
    Ls {
        /// Only this environment.
        #[arg(long, value_name = "ENV")]
        env: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: Option<AuditCommand>,

    /// Only events at or after this time (RFC 3339, a date, or a duration ago such as `2h`).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,

    /// Only events with this action (e.g. `release.created`).
    #[arg(long, value_name = "ACTION")]
    pub action: Option<String>,

    /// Only events about this subject (e.g. `release/1.2.0`).
    #[arg(long, value_name = "SUBJECT")]
    pub subject: Option<String>,

    /// At most this many events (the newest).
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,

    /// With `--at`: which release (version, commit, artifact digest) served on each host of
    /// this environment at that instant, from the deployment switch and proof events.
    #[arg(long, value_name = "ENV", requires = "at", conflicts_with_all = ["since", "action", "subject", "limit"])]
    pub env: Option<String>,

    /// The instant for `--env`: RFC 3339, `YYYY-MM-DD HH:MM[:SS]` (UTC, or with an offset such
    /// as +02:00), a date, `now`, or a duration ago (`2h ago`).
    #[arg(long, value_name = "TIME", requires = "env")]
    pub at: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; exits 1 naming the first broken event.
    Verify,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Leave the sample project (and anything started) for a person to look at.
    #[arg(long)]
    pub keep: bool,

    /// Build the sample project in this (new or empty) directory instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Plan a pre-release with this identifier: `rc` gives `1.3.0-rc.1`, then `rc.2`, …
    #[arg(long, value_name = "ID")]
    pub pre: Option<String>,

    /// Plan this version instead of the computed one.
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,

    /// Render the notes with this minijinja template (it sees the `--json` document).
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,

    /// Plan one `[[packages]]` entry of a monorepo (its path and tag format).
    #[arg(long, value_name = "NAME")]
    pub package: Option<String>,
}

#[derive(Debug, Args)]
pub struct ChangelogArgs {
    /// Every release (the default).
    #[arg(long, conflicts_with = "range")]
    pub all: bool,

    /// Only the commits in A..B (tags, branches or commit ids), as one section.
    #[arg(long, value_name = "A..B")]
    pub range: Option<String>,

    /// Write the changelog to this file instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Render the sections with this minijinja template.
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,

    /// The changelog of one `[[packages]]` entry of a monorepo.
    #[arg(long, value_name = "NAME")]
    pub package: Option<String>,
}

#[derive(Debug, Args)]
pub struct NoticeArgs {
    /// Expected deployment date (`YYYY-MM-DD` or RFC 3339).
    #[arg(long, value_name = "DATE")]
    pub eta: Option<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = NoticeFormatArg::Markdown)]
    pub format: NoticeFormatArg,

    /// Deliver it (for now: a file under `.cutover/notices/`).
    #[arg(long)]
    pub send: bool,

    /// Announce a pre-release with this identifier (as `plan --pre`).
    #[arg(long, value_name = "ID")]
    pub pre: Option<String>,

    /// Announce this version instead of the computed one.
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NoticeFormatArg {
    Markdown,
    Html,
    Json,
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// Release this version instead of the computed one.
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,

    /// A pre-release with this identifier (`rc` gives `1.3.0-rc.1`, then `rc.2`, …).
    #[arg(long, value_name = "ID")]
    pub pre: Option<String>,

    /// Check everything and print what would happen; change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Push the changelog commit and the tag with the system git (your credentials apply).
    #[arg(long)]
    pub push: bool,

    /// The remote to push to.
    #[arg(long, value_name = "NAME", default_value = "origin", requires = "push")]
    pub remote: String,
}

#[derive(Debug, Args)]
pub struct HotfixArgs {
    #[command(subcommand)]
    pub command: HotfixCommand,
}

#[derive(Debug, Subcommand)]
pub enum HotfixCommand {
    /// Create and check out `hotfix/<next patch>` at the release live in production.
    Start {
        /// The release tag to fix (default: what production runs, from the deployment records).
        #[arg(long, value_name = "TAG")]
        from: Option<String>,
    },
    /// Release the patch version from the hotfix branch (fixes only), at hotfix priority.
    Finish {
        /// Check everything and print what would happen; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Push the commit and the tag.
        #[arg(long)]
        push: bool,
        /// The remote to push to.
        #[arg(long, value_name = "NAME", default_value = "origin", requires = "push")]
        remote: String,
    },
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_model_is_consistent() {
        Cli::command().debug_assert();
    }
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BomArgs {
    #[command(subcommand)]
    pub command: Option<BomCommand>,

    /// Output format (default: a summary on a terminal, CycloneDX JSON otherwise).
    #[arg(long, value_enum)]
    pub format: Option<BomFormat>,

    /// Write the document to this file instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Check the licenses against `[licenses]` in cutover.toml; exits 1 on a violation.
    #[arg(long)]
    pub check: bool,

    /// The BOM of this release (its git tag, `v<VERSION>` or `<VERSION>`) instead of the working tree.
    #[arg(long, value_name = "VERSION")]
    pub release: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BomFormat {
    /// CycloneDX 1.6 JSON.
    CyclonedxJson,
    /// SPDX 2.3 JSON.
    SpdxJson,
}

#[derive(Debug, Subcommand)]
pub enum BomCommand {
    /// Components added, removed, upgraded, downgraded and license changes from A to B, each a
    /// CycloneDX JSON file or a release version / git revision of this project.
    Diff {
        /// The older BOM: a file, or a release version.
        a: String,
        /// The newer BOM: a file, or a release version.
        b: String,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct VulnsArgs {
    #[command(subcommand)]
    pub command: Option<VulnsCommand>,

    /// The vulnerability database file (default: `[vulns] db` in cutover.toml, else
    /// `.cutover/vulns.db`).
    #[arg(long, global = true, value_name = "FILE")]
    pub db: Option<PathBuf>,

    /// Report on the BOM attached to this release instead of the working tree.
    #[arg(long, value_name = "VERSION")]
    pub release: Option<String>,

    /// An advisory source (as for `vulns import`) to scan against: what the database does not
    /// hold of it yet is imported first, only the advisories of the scanned packages (the rest
    /// when a use needs it). Repeatable.
    #[arg(long, value_name = "PATH")]
    pub source: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum VulnsCommand {
    /// Import advisories: a directory of OSV JSON/YAML files, an OSV `all.zip` export, or a
    /// RustSec advisory-db checkout. Re-importing a source updates it and withdraws what left it.
    Import {
        /// One or more sources.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// The local vulnerability database.
    #[command(subcommand)]
    Db(VulnsDbCommand),
    /// Who runs it now: every recorded release whose bill of materials holds a version affected
    /// by this advisory (id or alias), and the environments and hosts where such a release is live.
    Affected {
        /// An advisory id or alias (e.g. `GHSA-…`, `CVE-…`, `RUSTSEC-…`).
        #[arg(value_name = "ID")]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum VulnsDbCommand {
    /// Sources imported, advisories per ecosystem, age, skipped files (with `-v`).
    Status,
}
