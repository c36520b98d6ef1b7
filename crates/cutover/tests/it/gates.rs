//! `cutover approve` and `cutover gates` through the real command line: approvals recorded and
//! refused, and every gate shown open or holding, why, and when it opens (times pinned with `--at`).

use crate::support::Project;

const CONFIG: &str = r#"[project]
name = "shop"

[[checks]]
name = "unit"
run = ["true"]

[licenses]
allow = ["MIT"]

[service]
start = ["./shop", "--port", "{port}"]

[environments.staging]
hosts = ["local"]
listen = "127.0.0.1:18080"

[environments.production]
hosts = ["local"]
listen = "127.0.0.1:18090"
promote_from = "staging"
soak = "1h"
approvals = 2
approvers = ["tester@example.com", "bob@example.com", "carol@example.com"]
separate_approver = true
freeze = ["Fri 16:00-Mon 08:00 Europe/Berlin"]
"#;

const LOCK: &str = r#"{"name":"shop","version":"1.0.0","lockfileVersion":3,"requires":true,"packages":{
  "":{"name":"shop","version":"1.0.0","dependencies":{"lodash":"4.17.21"}},
  "node_modules/lodash":{"version":"4.17.21","license":"MIT"}}}"#;

fn released() -> Project {
    let p = Project::new();
    p.write("cutover.toml", CONFIG);
    p.write("package-lock.json", LOCK);
    p.git(&["add", "."]);
    p.git(&["commit", "-q", "-m", "feat: a shop"]);
    p.cutover(&["release"]).success();
    p
}

#[test]
fn gates_hold_and_say_why_until_approved_checked_and_unfrozen() {
    let p = released();

    // Friday 17:00 in Berlin: frozen until Monday 08:00 Berlin; nothing approved or checked yet.
    let run = p.cutover(&[
        "gates",
        "production",
        "--version",
        "0.1.0",
        "--at",
        "2026-11-27T16:00:00Z",
    ]);
    run.success();
    insta::assert_snapshot!("gates_holding", run.stdout);

    // Approvals: recorded once per person, only by listed approvers.
    let run = p.cutover(&[
        "approve",
        "production",
        "0.1.0",
        "--comment",
        "read the diff",
    ]);
    run.success();
    insta::assert_snapshot!("approve_first", format!("{}{}", run.stdout, run.stderr));
    let run = p.cutover(&["approve", "production", "0.1.0"]);
    run.code(2);
    assert!(
        run.stderr
            .contains("error: tester@example.com already approved 0.1.0 for `production`"),
        "{}",
        run.stderr
    );
    let run = p.cutover_with(
        &["approve", "production", "0.1.0"],
        &[("CUTOVER_ACTOR", "mallory@example.com")],
    );
    run.code(2);
    insta::assert_snapshot!("approve_not_an_approver", run.stderr);
    let run = p.cutover_with(
        &["--json", "approve", "production", "0.1.0"],
        &[("CUTOVER_ACTOR", "bob@example.com")],
    );
    run.success();
    let doc = run.json();
    assert_eq!(doc["approver"], "bob@example.com");
    assert_eq!(
        doc["approvers"],
        serde_json::json!(["tester@example.com", "bob@example.com"])
    );
    assert_eq!(doc["required"], 2);

    // Unknown environment or release: exit 2, nothing recorded.
    let run = p.cutover(&["approve", "prod", "0.1.0"]);
    run.code(2);
    insta::assert_snapshot!("approve_unknown_env", run.stderr);
    let run = p.cutover(&["approve", "production", "9.9.9"]);
    run.code(2);
    assert!(
        run.stderr.contains("there is no release 9.9.9"),
        "{}",
        run.stderr
    );
    p.cutover(&["gates", "production", "--version", "9.9.9"])
        .code(2);
    p.cutover(&["gates", "production", "--at", "friday"])
        .code(2);
    let audit = p.cutover(&["--json", "audit", "--action", "approval.grant"]);
    audit.success();
    assert_eq!(
        audit.stdout.matches("\"approval.grant\"").count(),
        2,
        "{}",
        audit.stdout
    );

    p.cutover(&["check", "--release", "0.1.0"]).success();

    // Wednesday: not frozen; checks passed; the deployer's own approval does not count for them.
    let run = p.cutover(&[
        "--json",
        "gates",
        "production",
        "--at",
        "2026-11-25T12:00:00Z",
    ]);
    run.success();
    let doc = run.json();
    assert_eq!(doc["version"], "0.1.0");
    assert_eq!(doc["deployer"], "tester@example.com");
    assert_eq!(doc["open"], false);
    insta::assert_json_snapshot!("gates_json", doc["gates"]);

    // Someone else deploying: both approvals count; only the soak holds (nothing live in staging).
    let run = p.cutover_with(
        &["gates", "production", "--at", "2026-11-25T12:00:00Z"],
        &[("CUTOVER_ACTOR", "dave@example.com")],
    );
    run.success();
    insta::assert_snapshot!("gates_only_soak", run.stdout);

    // Staging promotes from nothing: everything is open.
    let run = p.cutover(&["gates", "staging", "--at", "2026-11-25T12:00:00Z"]);
    run.success();
    insta::assert_snapshot!("gates_staging_open", run.stdout);
}
