//! `cutover ship` and `cutover promote` through the real command line: a project with staging
//! (blue-green) promoting to production (blue-green), both on the local agent behind their own
//! routers, held by gates (approvals, freeze) and continued with `--resume`.

use std::net::SocketAddr;

use serde_json::Value;

use crate::deploy::{Deployable, free_ports, served_version};

/// A project with staging and a production promoted from it; `production` is appended to
/// `[environments.production]` (gates). Returns it with production's router address.
fn staged(production: &str) -> (Deployable, SocketAddr) {
    let ports = free_ports(3);
    let prod: SocketAddr = format!("127.0.0.1:{}", ports[0]).parse().unwrap();
    let d = Deployable::new(
        "",
        &format!(
            r#"
[environments.production]
hosts = [{{ name = "local", listen = "{prod}", ports = {{ blue = {blue}, green = {green} }} }}]
strategy = "blue-green"
promote_from = "staging"
observe = "300ms"
{production}
"#,
            blue = ports[1],
            green = ports[2],
        ),
    );
    (d, prod)
}

/// The audit events with `action`, oldest first.
fn events(d: &Deployable, action: &str) -> Vec<Value> {
    let run = d.cutover(&["--json", "audit", "--action", action]);
    run.success();
    let mut list = run.json()["events"].as_array().cloned().unwrap_or_default();
    list.sort_by_key(|e| e["seq"].as_i64());
    list
}

/// The release `cutover --json status` says is live in `env`.
fn live_release(d: &Deployable, env: &str) -> Option<String> {
    let doc = d.cutover(&["--json", "status"]).success().json();
    doc["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == env)
        .unwrap_or_else(|| panic!("no environment {env} in {doc}"))["release"]
        .as_str()
        .map(str::to_owned)
}

/// The version the last `cutover ship` run planned.
fn shipped_version(d: &Deployable) -> String {
    let starts = events(d, "ship.start");
    starts.last().expect("a ship.start event")["payload"]["version"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn ship_releases_and_deploys_through_staging_to_production() {
    let (d, prod) = staged("");
    let run = d.cutover(&["--json", "ship", "--to", "production"]);
    run.success();
    let version = shipped_version(&d);
    // Under --json stdout is ship's one document; the release step's output went to stderr.
    let doc = run.json();
    assert_eq!(doc["version"], version.as_str(), "{doc}");
    assert_eq!(doc["state"], "live", "{doc}");
    assert_eq!(
        doc["chain"],
        serde_json::json!(["staging", "production"]),
        "{doc}"
    );
    assert_eq!(
        live_release(&d, "staging").as_deref(),
        Some(version.as_str())
    );
    assert_eq!(
        live_release(&d, "production").as_deref(),
        Some(version.as_str())
    );
    assert_eq!(served_version(d.listen).as_deref(), Some(version.as_str()));
    assert_eq!(served_version(prod).as_deref(), Some(version.as_str()));

    let start = &events(&d, "ship.start")[0]["payload"];
    assert_eq!(start["to"], "production");
    assert_eq!(start["chain"], serde_json::json!(["staging", "production"]));
    let stages: Vec<String> = events(&d, "ship.stage")
        .iter()
        .map(|e| e["payload"]["stage"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        stages,
        ["release", "deploy:staging", "deploy:production"],
        "{stages:?}"
    );
    let finish = events(&d, "ship.finish");
    assert_eq!(finish.len(), 1);
    assert_eq!(finish[0]["payload"]["version"], version.as_str());
    // Both deployments were made by the ship.
    let deployments = events(&d, "deployment.create");
    assert_eq!(deployments.len(), 2);
    assert!(
        deployments
            .iter()
            .all(|e| e["payload"]["trigger"] == "ship"
                && e["payload"]["version"] == version.as_str())
    );

    // Promoting against the chain (production → staging) is refused, naming the chain…
    let before = d.audit_count();
    let refused = d.cutover(&["promote", "production", "staging"]);
    refused.code(2);
    assert!(
        refused.stderr.contains("`staging` has no `promote_from`"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("--force REASON"),
        "{}",
        refused.stderr
    );
    assert_eq!(d.audit_count(), before);
    // …unless forced, with the reason recorded.
    let forced = d
        .cutover(&[
            "--json",
            "promote",
            "production",
            "staging",
            "--force",
            "staging lost its data",
        ])
        .success()
        .json();
    assert_eq!(forced["state"], "live", "{forced}");
    let force = events(&d, "promote.force");
    assert_eq!(force.len(), 1, "{force:?}");
    assert_eq!(force[0]["subject"], "env:staging");
    assert_eq!(
        force[0]["payload"],
        serde_json::json!({ "from": "production", "to": "staging", "version": version,
            "promote_from": null, "reason": "staging lost its data" })
    );
    d.cutover(&["audit", "verify"]).success();
    d.cutover(&["agent", "stop", "--local", "--all"]).success();
}

#[test]
fn promote_refuses_an_environment_that_is_not_the_targets_promote_from() {
    // qa is live but production is promoted from staging: exit 2, the chain named, nothing done.
    let ports = free_ports(3);
    let (d, _prod) = staged(&format!(
        r#"
[environments.qa]
hosts = [{{ name = "local", listen = "127.0.0.1:{}", ports = {{ blue = {}, green = {} }} }}]
strategy = "blue-green"
observe = "300ms"
"#,
        ports[0], ports[1], ports[2]
    ));
    let before = d.audit_count();
    let run = d.cutover(&["promote", "qa", "production"]);
    run.code(2);
    assert!(
        run.stderr.contains(
            "`production` is promoted from `staging` (its `promote_from`), not from `qa`"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("hint: `cutover promote staging production`, or `--force REASON`"),
        "{}",
        run.stderr
    );
    assert_eq!(d.audit_count(), before);
    assert!(!d.p.path().join(".cutover/agent.pid").exists());
}

#[test]
fn promote_waits_for_approvals_and_goes_through_a_freeze_only_when_overridden() {
    let (d, prod) = staged("approvals = 1\n");
    d.release("1.0.0");
    d.cutover(&["deploy", "staging", "--version", "1.0.0"])
        .success();

    // The approvals gate holds: exit 1, the gate named, nothing recorded.
    let before = d.audit_count();
    let held = d.cutover(&["promote", "staging", "production"]);
    held.code(1);
    assert!(
        held.stderr.contains("gates of production hold 1.0.0"),
        "{}",
        held.stderr
    );
    assert!(held.stderr.contains("approvals:"), "{}", held.stderr);
    // `cutover deploy` evaluates the same gates before anything starts.
    let direct = d.cutover(&["deploy", "production", "--version", "1.0.0"]);
    direct.code(1);
    assert!(direct.stderr.contains("approvals:"), "{}", direct.stderr);
    assert_eq!(d.audit_count(), before);
    assert_eq!(live_release(&d, "production"), None);

    d.cutover(&["approve", "production", "1.0.0"]).success();
    let doc = d
        .cutover(&["--json", "promote", "staging", "production"])
        .success()
        .json();
    assert_eq!(doc["state"], "live", "{doc}");
    assert_eq!(doc["version"], "1.0.0");
    assert_eq!(doc["environment"], "production");
    assert_eq!(served_version(prod).as_deref(), Some("1.0.0"));
    let created = events(&d, "deployment.create");
    assert_eq!(created.last().unwrap()["payload"]["trigger"], "promote");

    // A freeze window covering now holds (even though 2.0.0 is approved) until overridden.
    let text = d.p.read("cutover.toml").replace(
        "approvals = 1\n",
        "approvals = 1\nfreeze = [\"2020-01-01..2099-12-31\"]\n",
    );
    d.p.write("cutover.toml", &text);
    d.p.git(&["commit", "-q", "-am", "chore: freeze production"]);
    d.release("2.0.0");
    d.cutover(&["deploy", "staging", "--version", "2.0.0"])
        .success();
    // Overriding the freeze while another gate holds deploys nothing and records no override.
    let before = d.audit_count();
    let unapproved = d.cutover(&[
        "promote",
        "staging",
        "production",
        "--override-freeze",
        "too early",
    ]);
    unapproved.code(1);
    assert!(
        unapproved.stderr.contains("approvals:"),
        "{}",
        unapproved.stderr
    );
    assert_eq!(d.audit_count(), before);
    d.cutover(&["approve", "production", "2.0.0"]).success();
    let before = d.audit_count();
    let frozen = d.cutover(&["promote", "staging", "production"]);
    frozen.code(1);
    assert!(frozen.stderr.contains("freeze:"), "{}", frozen.stderr);
    assert!(!frozen.stderr.contains("approvals:"), "{}", frozen.stderr);
    assert_eq!(d.audit_count(), before);
    assert_eq!(served_version(prod).as_deref(), Some("1.0.0"));

    let run = d.cutover(&[
        "promote",
        "staging",
        "production",
        "--override-freeze",
        "security fix",
    ]);
    run.success();
    assert!(run.stderr.contains("freeze overridden"), "{}", run.stderr);
    assert_eq!(served_version(prod).as_deref(), Some("2.0.0"));
    assert_eq!(live_release(&d, "production").as_deref(), Some("2.0.0"));
    let overrides = events(&d, "freeze.override");
    assert_eq!(overrides.len(), 1, "{overrides:?}");
    assert_eq!(overrides[0]["subject"], "env:production");
    assert_eq!(
        overrides[0]["payload"],
        serde_json::json!({ "environment": "production", "version": "2.0.0", "reason": "security fix" })
    );
    d.cutover(&["audit", "verify"]).success();
    d.cutover(&["agent", "stop", "--local", "--all"]).success();
}

#[test]
fn ship_resume_continues_to_the_target_once_the_holding_gate_opens() {
    let (d, prod) = staged("approvals = 1\n");
    let held = d.cutover(&["ship", "--to", "production"]);
    held.code(1);
    assert!(held.stderr.contains("approvals:"), "{}", held.stderr);
    assert!(
        held.stderr.contains("cutover ship --resume"),
        "{}",
        held.stderr
    );
    let version = shipped_version(&d);
    // Staging got it; production did not.
    assert_eq!(
        live_release(&d, "staging").as_deref(),
        Some(version.as_str())
    );
    assert_eq!(live_release(&d, "production"), None);
    assert!(events(&d, "ship.finish").is_empty());

    d.cutover(&["approve", "production", &version]).success();
    let run = d.cutover(&["ship", "--resume"]);
    run.success();
    // Not a terminal: plain status lines, no live display (no carriage returns, no escapes).
    for line in [
        &format!("shipping {version} to production (through staging → production)"),
        "release already recorded",
        &format!("deploying {version} to production"),
        &format!("live {version} in production"),
    ] {
        let squeezed: String = run.stderr.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(squeezed.contains(line), "{line:?} in\n{}", run.stderr);
    }
    assert!(
        !run.stderr.contains('\r') && !run.stderr.contains('\u{1b}'),
        "{:?}",
        run.stderr
    );
    assert_eq!(
        run.stdout,
        format!("shipped {version}: live in staging, production\n")
    );
    assert_eq!(
        live_release(&d, "production").as_deref(),
        Some(version.as_str())
    );
    assert_eq!(served_version(prod).as_deref(), Some(version.as_str()));
    // Nothing was done twice: one release, one deployment per environment.
    assert_eq!(events(&d, "release.created").len(), 1);
    assert_eq!(events(&d, "deployment.create").len(), 2);
    let resumed = events(&d, "ship.resume");
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0]["payload"]["version"], version.as_str());
    let stages: Vec<(String, String)> = events(&d, "ship.stage")
        .iter()
        .map(|e| {
            (
                e["payload"]["stage"].as_str().unwrap().to_owned(),
                e["payload"]["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(stages[stages.len() - 3].0, "release");
    assert_eq!(stages[stages.len() - 3].1, "already recorded");
    assert_eq!(stages[stages.len() - 2].1, "already live");
    assert_eq!(stages[stages.len() - 1].0, "deploy:production");
    assert_eq!(events(&d, "ship.finish").len(), 1);
    d.cutover(&["audit", "verify"]).success();
    d.cutover(&["agent", "stop", "--local", "--all"]).success();
}

#[test]
fn bad_ship_and_promote_input_is_refused_with_exit_2_and_changes_nothing() {
    let (d, _) = staged("");
    d.release("1.0.0");
    let before = d.audit_count();
    for (args, needle) in [
        (vec!["ship", "--to", "nope"], "unknown environment `nope`"),
        (vec!["ship", "--resume"], "no `cutover ship` run to resume"),
        (
            vec!["promote", "staging", "production"],
            "nothing is live in `staging`",
        ),
        (
            vec!["promote", "nope", "production"],
            "unknown environment `nope`",
        ),
        // Off the `promote_from` chain: refused before anything else is looked at.
        (
            vec!["promote", "production", "staging"],
            "`staging` has no `promote_from`",
        ),
        (
            vec!["promote", "staging", "production", "--force", " "],
            "`--force` needs a reason",
        ),
    ] {
        let run = d.cutover(&args);
        run.code(2);
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("hint:"), "{args:?}: {}", run.stderr);
    }
    assert_eq!(d.audit_count(), before, "bad input changed the audit log");
    assert!(
        !d.p.path().join(".cutover/agent.pid").exists(),
        "bad input started the local agent"
    );
}

#[test]
fn a_resumed_ship_whose_release_was_deleted_is_a_clear_error() {
    let (d, _prod) = staged("approvals = 1\n");
    d.cutover(&["ship", "--to", "production"]).code(1);
    let version = shipped_version(&d);
    // Behind cutover's back: the release record goes (with the rows that point at it).
    let url = format!("sqlite:{}", d.p.path().join(".cutover/state.db").display());
    let v = version.clone();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            use sqlx::Connection as _;
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query("PRAGMA foreign_keys = OFF")
                .execute(&mut c)
                .await
                .unwrap();
            let done = sqlx::query("DELETE FROM releases WHERE version = ?")
                .bind(v)
                .execute(&mut c)
                .await
                .unwrap();
            assert_eq!(done.rows_affected(), 1);
        });
    let before = events(&d, "ship.resume").len();
    let run = d.cutover(&["ship", "--resume"]);
    run.code(2);
    assert!(
        run.stderr.contains(&format!(
            "shipped release {version}, which no longer exists"
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
    assert_eq!(events(&d, "ship.resume").len(), before);
    d.cutover(&["agent", "stop", "--local", "--all"]).success();
}
