//! The checks gate: every required `[[checks]]` entry has a passing run attached to the release
//! (the newest run of each check counts).

use cutover_config::Config;
use cutover_queue::{CHECK_KIND, CheckRun};
use cutover_store::{JobFilter, Store};

use crate::{CHECKS, GateError, GateResult, and_list};

pub(crate) async fn gate(
    store: &dyn Store,
    config: &Config,
    version: &str,
) -> Result<GateResult, GateError> {
    let required: Vec<&str> = config
        .checks
        .iter()
        .filter(|c| c.required)
        .map(|c| c.name.as_str())
        .collect();
    if required.is_empty() {
        return Ok(GateResult::open(CHECKS, "no required checks"));
    }
    let jobs = store
        .list_jobs(&JobFilter {
            kind: Some(CHECK_KIND.to_string()),
            release_version: Some(version.to_string()),
            ..JobFilter::default()
        })
        .await?;
    let mut passed = Vec::new();
    let mut pending = Vec::new();
    let mut failed = Vec::new();
    let mut missing = Vec::new();
    for name in &required {
        let newest = jobs
            .iter()
            .filter(|j| j.payload.pointer("/check/name").and_then(|v| v.as_str()) == Some(name))
            .max_by_key(|j| j.id);
        let Some(job) = newest else {
            missing.push(format!("`{name}`"));
            continue;
        };
        let run = CheckRun::of(job.clone());
        if run.passed() {
            passed.push(format!("`{name}`"));
            continue;
        }
        match job.state.as_str() {
            "queued" | "running" => {
                pending.push(format!("`{name}` ({}, job {})", job.state, job.id));
            }
            _ => {
                let why = run
                    .result
                    .as_ref()
                    .and_then(|r| r.reason.clone())
                    .or_else(|| job.last_error.clone())
                    .unwrap_or_else(|| job.state.clone());
                failed.push(format!("`{name}` ({why}; `cutover check log {}`)", job.id));
            }
        }
    }
    if missing.is_empty() && pending.is_empty() && failed.is_empty() {
        return Ok(GateResult::open(
            CHECKS,
            format!("required checks passed: {}", and_list(&passed)),
        ));
    }
    let mut parts = Vec::new();
    if !failed.is_empty() {
        parts.push(format!("failed: {}", and_list(&failed)));
    }
    if !pending.is_empty() {
        parts.push(format!("not finished: {}", and_list(&pending)));
    }
    if !missing.is_empty() {
        parts.push(format!(
            "never run: {} (`cutover check --release {version}`)",
            and_list(&missing)
        ));
    }
    Ok(GateResult::hold(
        CHECKS,
        format!("required checks of {version} {}", parts.join("; ")),
        None,
    ))
}
