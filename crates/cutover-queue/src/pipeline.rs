//! Pipeline jobs: `ship`, `deploy`, `promote` and `rollback` as queue jobs, run by any worker
//! that serves (a webhook's merge, an API call), each as a child `cutover` process.
//!
//! Why a child process instead of calling the pipeline in the worker: a pipeline builds, tags,
//! runs checks and deploys for minutes; in its own process its crash, its memory and its
//! working-directory changes cannot take the server down, its output is captured as the job's
//! result exactly as a person would see it with `--json`, and a job started by a webhook is
//! indistinguishable from one started by hand (DESIGN: "the same library functions").
//!
//! The argv is built from a typed payload (never a shell string); an unreadable payload fails
//! the job for good. Exit 0 completes the job with the command's JSON; exit 1 (ran and failed)
//! and 2 (bad input) fail it for good; anything else (killed, crashed) is retried. A retried
//! `deploy` job takes over the deployment its earlier attempt created (`--job`, see
//! [`job_argv`]) instead of deploying again.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use cutover_core::queue::JobClass;
use cutover_store::{EnqueueJob, Job};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::worker::{JobError, JobHandler};

/// `cutover ship --to ENV`: the whole pipeline up to `to`.
pub const SHIP_KIND: &str = "ship";
/// `cutover deploy ENV --version V`.
pub const DEPLOY_KIND: &str = "deploy";
/// `cutover promote FROM TO`.
pub const PROMOTE_KIND: &str = "promote";
/// `cutover rollback ENV [--to V]`.
pub const ROLLBACK_KIND: &str = "rollback";

/// Every pipeline kind, for registering the handler.
pub const PIPELINE_KINDS: [&str; 4] = [SHIP_KIND, DEPLOY_KIND, PROMOTE_KIND, ROLLBACK_KIND];

/// A pipeline job's payload (the job's kind says which variant is expected).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelinePayload {
    /// `ship`: the last environment; `deploy`/`rollback`: the environment; `promote`: TO.
    pub environment: String,
    /// `promote`: FROM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// `deploy`: the release (default: the newest); `rollback`: the target release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `ship`: the commit that must be the project's HEAD (a webhook's merge commit); the
    /// project is fast-forwarded to it first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Who asked (recorded by the child as its actor).
    pub actor: String,
    /// Why (shown in the queue; `-m` of a deploy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The job that ships `payload.commit` (or HEAD) up to `payload.environment`. A newer merge
/// supersedes a queued older one (it contains it); one pipeline runs at a time.
pub fn ship_job(class: JobClass, payload: &PipelinePayload) -> EnqueueJob {
    let mut job = EnqueueJob::new(class, SHIP_KIND, json!(payload));
    job.supersede_key = Some(format!("ship:{}", payload.environment));
    job.concurrency_group = Some("pipeline".into());
    job.max_attempts = 2;
    job
}

/// The job that deploys (or promotes to, or rolls back) `payload.environment`; one deployment
/// job per environment runs at a time (the environment lock would refuse a second anyway).
pub fn deploy_job(kind: &str, class: JobClass, payload: &PipelinePayload) -> EnqueueJob {
    let mut job = EnqueueJob::new(class, kind, json!(payload));
    job.concurrency_group = Some(format!("deploy:{}", payload.environment));
    job.release_version = payload.version.clone();
    job.max_attempts = 2;
    job
}

/// The `cutover` argv (after the program) that runs a pipeline job of `kind`.
pub fn argv(kind: &str, p: &PipelinePayload) -> Result<Vec<String>, String> {
    let mut args: Vec<String> = Vec::new();
    match kind {
        SHIP_KIND => {
            args.extend(["ship".into(), "--to".into(), p.environment.clone()]);
        }
        DEPLOY_KIND => {
            args.extend(["deploy".into(), p.environment.clone(), "--wait".into()]);
            if let Some(v) = &p.version {
                args.extend(["--version".into(), v.clone()]);
            }
            if let Some(m) = &p.message {
                args.extend(["-m".into(), m.clone()]);
            }
        }
        PROMOTE_KIND => {
            let from = p
                .from
                .clone()
                .ok_or("a promote job needs `from` (the environment promoted from)")?;
            args.extend([
                "promote".into(),
                from,
                p.environment.clone(),
                "--wait".into(),
            ]);
        }
        ROLLBACK_KIND => {
            args.extend(["rollback".into(), p.environment.clone()]);
            if let Some(v) = &p.version {
                args.extend(["--to".into(), v.clone()]);
            }
        }
        other => return Err(format!("{other:?} is not a pipeline job kind")),
    }
    for value in std::iter::once(&p.environment).chain(p.from.iter()) {
        // An environment name that looks like a flag would be read as one by the child.
        if value.starts_with('-') || value.is_empty() {
            return Err(format!("environment {value:?} is not a valid name"));
        }
    }
    Ok(args)
}

/// The argv of [`argv`] for the run of job `job`: a `deploy` names its job (`--job ID`), so that
/// when the job runs again after its worker died, the deployment its earlier attempt created is
/// adopted instead of a second one started (`cutover_deploy::pipeline`).
pub fn job_argv(kind: &str, p: &PipelinePayload, job: i64) -> Result<Vec<String>, String> {
    let mut args = argv(kind, p)?;
    if kind == DEPLOY_KIND {
        args.extend(["--job".into(), job.to_string()]);
    }
    Ok(args)
}

/// Runs pipeline jobs as `exe --project P [--database URL] --json ARGS…`.
#[derive(Debug, Clone)]
pub struct PipelineHandler {
    /// The `cutover` executable (the serving process's own, normally).
    pub exe: PathBuf,
    pub project: PathBuf,
    /// cutover's store, passed on so the child writes where the server reads.
    pub database: Option<String>,
    /// Bytes of stdout and of stderr kept in the job's result.
    pub max_output: usize,
    /// A pipeline that runs longer is killed (and retried once).
    pub timeout: Duration,
}

impl PipelineHandler {
    pub fn new(exe: PathBuf, project: PathBuf, database: Option<String>) -> PipelineHandler {
        PipelineHandler {
            exe,
            project,
            database,
            max_output: 256 * 1024,
            timeout: Duration::from_secs(3600),
        }
    }

    /// Fast-forwards the project to `commit` when its HEAD is elsewhere (fetching first when
    /// the repository has a remote); refuses anything but a fast-forward.
    async fn ensure_head(&self, commit: &str) -> Result<(), JobError> {
        if !commit.chars().all(|c| c.is_ascii_hexdigit()) || commit.len() < 7 {
            return Err(JobError::permanent(
                format!("commit {commit:?} is not a commit id"),
                None,
            ));
        }
        let git = |args: &[&str]| {
            let mut cmd = tokio::process::Command::new("git");
            cmd.arg("-C").arg(&self.project).args(args);
            cmd.stdin(Stdio::null()).kill_on_drop(true);
            cmd
        };
        let head = git(&["rev-parse", "HEAD"])
            .output()
            .await
            .map_err(|e| JobError::transient(format!("cannot run git: {e}")))?;
        if String::from_utf8_lossy(&head.stdout)
            .trim()
            .starts_with(commit)
        {
            return Ok(());
        }
        let has_commit = |out: &std::process::Output| out.status.success();
        let probe = ["cat-file", "-e", &format!("{commit}^{{commit}}")];
        let mut present = has_commit(
            &git(&probe)
                .output()
                .await
                .map_err(|e| JobError::transient(format!("cannot run git: {e}")))?,
        );
        if !present {
            let remotes = git(&["remote"])
                .output()
                .await
                .map_err(|e| JobError::transient(format!("cannot run git: {e}")))?;
            if !remotes.stdout.is_empty() {
                let _ = git(&["fetch", "--quiet"]).output().await;
                present = has_commit(
                    &git(&probe)
                        .output()
                        .await
                        .map_err(|e| JobError::transient(format!("cannot run git: {e}")))?,
                );
            }
        }
        if !present {
            return Err(JobError::permanent(
                format!(
                    "commit {commit} is not in the project's repository at {}",
                    self.project.display()
                ),
                None,
            ));
        }
        let merged = git(&["merge", "--ff-only", "--quiet", commit])
            .output()
            .await
            .map_err(|e| JobError::transient(format!("cannot run git: {e}")))?;
        if !merged.status.success() {
            return Err(JobError::permanent(
                format!(
                    "cannot fast-forward the project to {commit}: {}",
                    String::from_utf8_lossy(&merged.stderr).trim()
                ),
                None,
            ));
        }
        Ok(())
    }
}

/// Reads at most `max` bytes of `reader`, then drains the rest (so the child never blocks on
/// a full pipe); says whether it cut.
async fn read_capped<R: tokio::io::AsyncRead + Unpin>(
    mut reader: R,
    max: usize,
) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    let mut cut = false;
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = max.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                cut |= n > room;
            }
        }
    }
    (kept, cut)
}

#[async_trait]
impl JobHandler for PipelineHandler {
    async fn run(&self, job: &Job) -> Result<Value, JobError> {
        let payload: PipelinePayload =
            serde_json::from_value(job.payload.clone()).map_err(|e| {
                JobError::permanent(format!("unreadable {} job payload: {e}", job.kind), None)
            })?;
        let args =
            job_argv(&job.kind, &payload, job.id).map_err(|e| JobError::permanent(e, None))?;
        if job.kind == SHIP_KIND
            && let Some(commit) = &payload.commit
        {
            self.ensure_head(commit).await?;
        }
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.arg("--project").arg(&self.project);
        if let Some(db) = &self.database {
            cmd.arg("--database").arg(db);
        }
        cmd.arg("--json").args(&args);
        cmd.env("CUTOVER_ACTOR", &payload.actor)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            JobError::transient(format!("cannot start {}: {e}", self.exe.display()))
        })?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let out = tokio::spawn(read_capped(stdout, self.max_output));
        let err = tokio::spawn(read_capped(stderr, self.max_output));
        let status = match tokio::time::timeout(self.timeout, child.wait()).await {
            Ok(status) => status.map_err(|e| JobError::transient(format!("waiting: {e}")))?,
            Err(_) => {
                let _ = child.kill().await;
                return Err(JobError::transient(format!(
                    "`cutover {}` ran longer than {} s and was stopped",
                    args.join(" "),
                    self.timeout.as_secs()
                )));
            }
        };
        let (out, out_cut) = out.await.unwrap_or_default();
        let (err, err_cut) = err.await.unwrap_or_default();
        let stdout_text = String::from_utf8_lossy(&out).into_owned();
        let output =
            serde_json::from_str::<Value>(&stdout_text).unwrap_or(Value::String(stdout_text));
        let result = json!({
            "argv": args,
            "exit": status.code(),
            "output": output,
            "stderr": String::from_utf8_lossy(&err),
            "truncated": out_cut || err_cut,
        });
        match status.code() {
            Some(0) => Ok(result),
            Some(code @ (1 | 2)) => Err(JobError::permanent(
                format!("`cutover {}` exited with {code}", args.join(" ")),
                Some(result),
            )),
            _ => Err(JobError {
                message: format!("`cutover {}` ended abnormally ({status})", args.join(" ")),
                result: Some(result),
                permanent: false,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn payload(env: &str) -> PipelinePayload {
        PipelinePayload {
            environment: env.into(),
            from: None,
            version: Some("1.2.0".into()),
            commit: None,
            actor: "webhook:github:ann".into(),
            message: Some("merge #12".into()),
        }
    }

    #[test]
    fn argv_per_kind() {
        assert_eq!(
            argv(SHIP_KIND, &payload("staging")).unwrap(),
            ["ship", "--to", "staging"]
        );
        assert_eq!(
            argv(DEPLOY_KIND, &payload("staging")).unwrap(),
            [
                "deploy",
                "staging",
                "--wait",
                "--version",
                "1.2.0",
                "-m",
                "merge #12"
            ]
        );
        assert_eq!(
            argv(ROLLBACK_KIND, &payload("production")).unwrap(),
            ["rollback", "production", "--to", "1.2.0"]
        );
        let mut p = payload("production");
        assert!(argv(PROMOTE_KIND, &p).unwrap_err().contains("needs `from`"));
        p.from = Some("staging".into());
        assert_eq!(
            argv(PROMOTE_KIND, &p).unwrap(),
            ["promote", "staging", "production", "--wait"]
        );
        assert!(argv("check", &p).is_err());
        // Only a deploy names its job (the deployment's link to it).
        assert_eq!(
            job_argv(DEPLOY_KIND, &payload("staging"), 7).unwrap()[5..],
            ["-m", "merge #12", "--job", "7"]
        );
        assert_eq!(
            job_argv(PROMOTE_KIND, &p, 7).unwrap(),
            argv(PROMOTE_KIND, &p).unwrap()
        );
        assert!(argv(SHIP_KIND, &payload("--force")).is_err());
    }

    #[test]
    fn jobs_are_grouped_and_superseded() {
        let ship = ship_job(JobClass::Release, &payload("staging"));
        assert_eq!(ship.supersede_key.as_deref(), Some("ship:staging"));
        assert_eq!(ship.concurrency_group.as_deref(), Some("pipeline"));
        let deploy = deploy_job(DEPLOY_KIND, JobClass::Hotfix, &payload("production"));
        assert_eq!(
            deploy.concurrency_group.as_deref(),
            Some("deploy:production")
        );
        assert_eq!(deploy.release_version.as_deref(), Some("1.2.0"));
        let back: PipelinePayload = serde_json::from_value(deploy.payload).unwrap();
        assert_eq!(back, payload("production"));
    }

    proptest! {
        /// Whatever the payload, the argv never carries a flag-like environment and never panics.
        #[test]
        fn argv_never_takes_a_flag_as_environment(env in ".{0,12}", from in proptest::option::of(".{0,12}")) {
            for kind in PIPELINE_KINDS {
                let mut p = payload(&env);
                p.from = from.clone();
                if let Ok(args) = argv(kind, &p) {
                    prop_assert!(!env.starts_with('-') && !env.is_empty());
                    prop_assert!(args.contains(&env));
                }
            }
        }
    }
}
