//! `cutover proof ENV`: the signed proofs of delivery of an environment's deployment, per host,
//! and with `--verify` their check against the project's public key and the release's artifact.

use crate::cli::ProofArgs;
use crate::context::{Ctx, STATE_DIR, store_error};
use crate::error::{CliError, Result};
use crate::ui::{BOLD, DIM, GREEN, RED, Ui};
use cutover_proof::{ProofError, VerifyingKey};
use cutover_store::{Deployment, DeploymentFilter, Proof, Release};
use serde_json::{Value, json};

pub fn run(ctx: &Ctx<'_>, args: &ProofArgs) -> Result<()> {
    let root = ctx.project_root()?;
    let store = ctx.store()?;
    let deployment = find_deployment(ctx, store.as_ref(), args)?;
    let release = ctx
        .block_on(store.get_release(&deployment.release_version))
        .map_err(store_error)?;
    let mut proofs = ctx
        .block_on(store.list_proofs(deployment.id))
        .map_err(store_error)?;
    let hosts_with_proofs: Vec<String> = proofs.iter().map(|p| p.host.clone()).collect();
    if let Some(host) = &args.host {
        proofs.retain(|p| &p.host == host);
    }
    if proofs.is_empty() {
        let what = match &args.host {
            Some(host) => format!("no proof of delivery from host `{host}`"),
            None => "no proof of delivery".to_owned(),
        };
        let err = CliError::failed(format!(
            "deployment {} of {} to {} ({}) has {what}",
            deployment.id, deployment.release_version, deployment.environment, deployment.state
        ));
        return Err(if hosts_with_proofs.is_empty() {
            err.with_hint(format!(
                "a proof is recorded per host once a deployment has verified it; `cutover history {}` shows how this one went",
                deployment.environment
            ))
        } else {
            err.with_hint(format!(
                "hosts with a proof: {}",
                hosts_with_proofs.join(", ")
            ))
        });
    }

    let results: Option<Vec<std::result::Result<(), String>>> = if args.verify {
        let key = cutover_proof::load_verifying(&root.join(STATE_DIR)).map_err(key_error)?;
        Some(
            proofs
                .iter()
                .map(|p| check(&key, p, &deployment, release.as_ref()))
                .collect(),
        )
    } else {
        None
    };

    let failures: Vec<(&str, &str)> = match &results {
        Some(results) => proofs
            .iter()
            .zip(results)
            .filter_map(|(p, r)| r.as_ref().err().map(|e| (p.host.as_str(), e.as_str())))
            .collect(),
        None => Vec::new(),
    };
    let doc = document(&deployment, release.as_ref(), &proofs, results.as_deref());
    if !ctx.global.json {
        ctx.ui
            .print(render(&deployment, &proofs, results.as_deref()));
    }
    if let Some((host, reason)) = failures.first() {
        let mut err = CliError::failed(format!(
            "the proof of delivery from host `{host}` does not verify: {reason}"
        ));
        for (host, reason) in &failures[1..] {
            err = err.with_cause(format!("host `{host}`: {reason}"));
        }
        return Err(err
            .with_hint(
                "a proof that does not verify was altered after it was signed, was signed with \
                 another key, or is about another artifact; do not trust this deployment's record \
                 until you know which",
            )
            .with_json(doc));
    }
    if ctx.global.json {
        ctx.ui.print_json(&doc);
    }
    Ok(())
}

/// The environment's live deployment, or the newest of `--version` (preferring a live one).
fn find_deployment(
    ctx: &Ctx<'_>,
    store: &dyn cutover_store::Store,
    args: &ProofArgs,
) -> Result<Deployment> {
    let deployments = ctx
        .block_on(store.list_deployments(&DeploymentFilter {
            environment: Some(args.env.clone()),
            unfinished_only: false,
            limit: None,
        }))
        .map_err(store_error)?;
    if deployments.is_empty()
        && let Ok(config) = ctx.config()
        && !config.environments.contains_key(&args.env)
    {
        let known: Vec<&str> = config.environments.keys().map(String::as_str).collect();
        return Err(
            CliError::usage(format!("unknown environment `{}`", args.env)).with_hint(
                if known.is_empty() {
                    "cutover.toml defines no `[environments.*]`".to_owned()
                } else {
                    format!("environments: {}", known.join(", "))
                },
            ),
        );
    }
    let live = |d: &&Deployment| d.state == "live" && d.finished_at.is_some();
    let found = match &args.version {
        None => deployments.iter().find(live),
        Some(v) => {
            let of_version = || deployments.iter().filter(|d| &d.release_version == v);
            of_version().find(live).or_else(|| of_version().next())
        }
    };
    found.cloned().ok_or_else(|| match &args.version {
        None => CliError::failed(format!("nothing is live in {}", args.env)).with_hint(format!(
            "`cutover history {0}` lists its deployments; `cutover proof {0} --version V` shows another's",
            args.env
        )),
        Some(v) => CliError::failed(format!("release {v} was never deployed to {}", args.env))
            .with_hint(format!("`cutover history {}` lists its deployments", args.env)),
    })
}

/// Why the proof does not hold, if it does not: its signature under the project's key, the stored
/// statement against the signed one, the subject against the release's artifact, and the signed
/// host, environment and deployment against the record it is filed under.
fn check(
    key: &VerifyingKey,
    proof: &Proof,
    deployment: &Deployment,
    release: Option<&Release>,
) -> std::result::Result<(), String> {
    let signed = cutover_proof::verify(key, &proof.envelope).map_err(|e| e.to_string())?;
    if signed != proof.statement {
        return Err("the stored statement differs from the signed one".to_owned());
    }
    let Some(release) = release else {
        return Err(format!(
            "release {} is not recorded, so its artifact is unknown",
            deployment.release_version
        ));
    };
    let Some(artifact) = &release.artifact_digest else {
        return Err(format!(
            "release {} has no artifact digest to compare with",
            release.version
        ));
    };
    let artifact = bare_sha256(artifact);
    let subject = cutover_proof::subject_sha256(&signed).unwrap_or_default();
    if !subject.eq_ignore_ascii_case(artifact) {
        return Err(format!(
            "its subject sha256:{subject} is not the artifact of release {} (sha256:{artifact})",
            release.version
        ));
    }
    let predicate = &signed["predicate"];
    let mismatch = |field: &str, expected: Value| {
        let found = &predicate[field];
        (!found.is_null() && *found != expected).then(|| {
            format!("it was signed for {field} {found}, but is filed under {field} {expected}")
        })
    };
    if let Some(e) = mismatch("host", json!(proof.host))
        .or_else(|| mismatch("environment", json!(deployment.environment)))
        .or_else(|| mismatch("deployment", json!(deployment.id)))
    {
        return Err(e);
    }
    Ok(())
}

fn bare_sha256(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// Exit 2 for what the user fixes (a missing, unreadable or mismatched key file), else internal.
pub(crate) fn key_error(e: ProofError) -> CliError {
    let hint = e.hint();
    let err = match &e {
        ProofError::MissingKey { .. }
        | ProofError::KeyFile { .. }
        | ProofError::KeyPermissions { .. }
        | ProofError::KeyMismatch { .. } => CliError::usage(e.to_string()),
        _ => CliError::internal(e.to_string()),
    };
    err.with_hint_opt(hint)
}

fn document(
    deployment: &Deployment,
    release: Option<&Release>,
    proofs: &[Proof],
    results: Option<&[std::result::Result<(), String>]>,
) -> Value {
    json!({
        "environment": deployment.environment,
        "deployment": {
            "id": deployment.id,
            "version": deployment.release_version,
            "state": deployment.state,
            "finished_at": deployment.finished_at,
        },
        "release": release.map(|r| json!({
            "version": r.version,
            "commit": r.commit,
            "artifact_digest": r.artifact_digest,
        })),
        "verified": results.map(|r| r.iter().all(std::result::Result::is_ok)),
        "proofs": proofs.iter().enumerate().map(|(i, p)| {
            let result = results.map(|r| &r[i]);
            json!({
                "id": p.id,
                "host": p.host,
                "created_at": p.created_at,
                "verified": result.map(std::result::Result::is_ok),
                "error": result.and_then(|r| r.as_ref().err()),
                "statement": p.statement,
                "envelope": p.envelope,
            })
        }).collect::<Vec<_>>(),
    })
}

fn render(
    deployment: &Deployment,
    proofs: &[Proof],
    results: Option<&[std::result::Result<(), String>]>,
) -> String {
    let mut out = format!(
        "{} {}, deployment {} of {} ({}{})\n",
        Ui::paint(BOLD, "proof of delivery:"),
        deployment.environment,
        deployment.id,
        deployment.release_version,
        deployment.state,
        deployment
            .finished_at
            .map(|t| format!(" since {}", t.format("%Y-%m-%dT%H:%M:%SZ")))
            .unwrap_or_default(),
    );
    for (i, proof) in proofs.iter().enumerate() {
        out.push('\n');
        out.push_str(&render_one(proof));
        if let Some(results) = results {
            let line = match &results[i] {
                Ok(()) => Ui::paint(
                    GREEN,
                    "ok: signed with this project's key; the subject is the release's artifact",
                ),
                Err(reason) => Ui::paint(RED, format!("FAILED: {reason}")),
            };
            out.push_str(&format!("  {:<12}{line}\n", "verified"));
        }
    }
    if let Some(results) = results {
        let ok = results.iter().filter(|r| r.is_ok()).count();
        out.push_str(&format!("\n{ok} of {} proofs verified\n", results.len()));
    }
    out
}

/// One host's proof, from its stored statement (what `--verify` checks against the signed one).
fn render_one(proof: &Proof) -> String {
    let s = &proof.statement;
    let p = &s["predicate"];
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "?".to_owned(),
        other => other.to_string(),
    };
    let mut lines = vec![format!("{} {}", Ui::paint(BOLD, "host"), proof.host)];
    let mut row = |label: &str, value: String| lines.push(format!("  {label:<12}{value}"));
    let commit = text(&p["release"]["commit"]);
    row(
        "release",
        format!(
            "{}  commit {}",
            text(&p["release"]["version"]),
            commit.get(..12).unwrap_or(&commit)
        ),
    );
    row(
        "artifact",
        format!(
            "{}  sha256:{}",
            text(&s["subject"][0]["name"]),
            text(&s["subject"][0]["digest"]["sha256"])
        ),
    );
    row(
        "slot",
        format!(
            "{}  pid {}  port {}  started {}",
            text(&p["slot"]),
            text(&p["pid"]),
            text(&p["port"]),
            text(&p["started_at"])
        ),
    );
    row(
        "app version",
        format!("{} (as the app reported it)", text(&p["reported_version"])),
    );
    row("checks", summarize_checks(&p["checks"]));
    if let Some(smoke) = p["smoke"].as_array().filter(|s| !s.is_empty()) {
        let ok = smoke.iter().filter(|c| c["ok"] == true).count();
        row("smoke", format!("{ok} of {} ok", smoke.len()));
    }
    let obs = &p["observation"];
    if obs.is_object() {
        row(
            "observed",
            format!(
                "{} requests, {} 5xx, {} to {}",
                text(&obs["requests"]),
                text(&obs["errors_5xx"]),
                text(&obs["from"]),
                text(&obs["to"])
            ),
        );
    }
    row("delivered", text(&p["delivered_at"]));
    let keyids: Vec<String> = proof.envelope["signatures"]
        .as_array()
        .map(|sigs| sigs.iter().map(|s| text(&s["keyid"])).collect())
        .unwrap_or_default();
    row(
        "signed by",
        if keyids.is_empty() {
            Ui::paint(DIM, "no signature")
        } else {
            format!("key {}", keyids.join(", "))
        },
    );
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// `3 of 3 ok (health 2, version 1)`, then each failed check's time, kind and detail.
fn summarize_checks(checks: &Value) -> String {
    let Some(checks) = checks.as_array().filter(|c| !c.is_empty()) else {
        return "none recorded".to_owned();
    };
    let ok = checks.iter().filter(|c| c["ok"] == true).count();
    let mut kinds: Vec<(String, usize)> = Vec::new();
    for c in checks {
        let kind = c["kind"].as_str().unwrap_or("?").to_owned();
        match kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => kinds.push((kind, 1)),
        }
    }
    let mut out = format!(
        "{ok} of {} ok ({})",
        checks.len(),
        kinds
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for c in checks.iter().filter(|c| c["ok"] != true) {
        out.push_str(&format!(
            "\n              {} {} failed: {}",
            c["at"].as_str().unwrap_or("?"),
            c["kind"].as_str().unwrap_or("?"),
            c["detail"].as_str().unwrap_or("")
        ));
    }
    out
}
