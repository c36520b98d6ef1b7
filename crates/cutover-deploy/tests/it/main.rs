//! Integration tests of the deployment engine with a real store, a real control plane on a unix
//! socket, real agents and real test-app processes.
//!
//! The slots run the test app: this binary re-executes itself as `it testapp ARGS…` (and as
//! `it smoke URL` for smoke commands), as the agent's end-to-end tests do; hence a small runner
//! of its own (filters: substrings of test names).
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

mod appdb;
mod jobs;
mod world;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser as _;
use cutover_deploy::{DeployError, DeployOutcome};
use cutover_store::{AuditFilter, Change, DeploymentFilter};
use serde_json::json;

use world::{World, WorldSpec, get_version};

type TestFn = fn();

const TESTS: &[(&str, TestFn)] = &[
    (
        "a_job_run_again_adopts_the_deployment_of_its_earlier_attempt",
        jobs::a_job_run_again_adopts_the_deployment_of_its_earlier_attempt,
    ),
    (
        "blue_green_goes_live_with_proof_and_keeps_the_old_slot_warm",
        blue_green_goes_live_with_proof_and_keeps_the_old_slot_warm,
    ),
    (
        "a_wrong_version_is_rolled_back_and_the_old_release_keeps_serving",
        a_wrong_version_is_rolled_back_and_the_old_release_keeps_serving,
    ),
    (
        "a_release_crashing_while_observed_is_rolled_back",
        a_release_crashing_while_observed_is_rolled_back,
    ),
    (
        "recreate_stops_the_previous_release_and_takes_a_port_change",
        recreate_stops_the_previous_release_and_takes_a_port_change,
    ),
    (
        "a_failing_first_deployment_ends_failed",
        a_failing_first_deployment_ends_failed,
    ),
    (
        "a_canary_answering_5xx_is_rolled_back",
        a_canary_answering_5xx_is_rolled_back,
    ),
    (
        "a_healthy_canary_walks_its_steps_to_live",
        a_healthy_canary_walks_its_steps_to_live,
    ),
    ("rolling_over_three_agents", rolling_over_three_agents),
    (
        "a_dead_agent_counts_against_max_unavailable",
        a_dead_agent_counts_against_max_unavailable,
    ),
    (
        "warm_rollback_switches_only_the_routers",
        warm_rollback_switches_only_the_routers,
    ),
    (
        "the_previous_slot_stops_when_keep_warm_ends",
        the_previous_slot_stops_when_keep_warm_ends,
    ),
    (
        "a_held_lock_is_a_clear_error_and_changes_nothing",
        a_held_lock_is_a_clear_error_and_changes_nothing,
    ),
    (
        "an_abandoned_deployment_is_resumed_to_live",
        an_abandoned_deployment_is_resumed_to_live,
    ),
    (
        "an_abandoned_canary_is_rolled_back_on_resume",
        an_abandoned_canary_is_rolled_back_on_resume,
    ),
    (
        "a_killed_deployer_is_taken_over_and_resumed",
        a_killed_deployer_is_taken_over_and_resumed,
    ),
    (
        "bad_input_is_refused_and_changes_nothing",
        bad_input_is_refused_and_changes_nothing,
    ),
    ("postgres_smoke", postgres_smoke),
    (
        "app_database_expand_contract_rollback_restore_sqlite",
        app_database_sqlite,
    ),
    (
        "app_database_expand_contract_rollback_restore_postgres",
        app_database_postgres,
    ),
    (
        "a_failing_migration_stops_the_deployment",
        a_failing_migration_stops_the_deployment,
    ),
    (
        "the_release_drill_gates_the_deployment",
        the_release_drill_gates_the_deployment,
    ),
];

fn app_database_sqlite() {
    rt().block_on(appdb::expand_contract_rollback_and_restore(None));
}

fn app_database_postgres() {
    let admin = std::env::var("CUTOVER_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "CUTOVER_TEST_PG_URL is not set: run `cargo xtask pg -- cargo test -p cutover-deploy`"
        )
    });
    rt().block_on(appdb::expand_contract_rollback_and_restore(Some(&admin)));
}

fn a_failing_migration_stops_the_deployment() {
    rt().block_on(appdb::a_failing_migration_stops_the_deployment());
}

fn the_release_drill_gates_the_deployment() {
    rt().block_on(appdb::the_release_drill_gates_the_deployment());
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("testapp") => {
            let argv =
                std::iter::once("cutover-testapp".to_owned()).chain(args[2..].iter().cloned());
            return match cutover_testapp::run(cutover_testapp::Args::parse_from(argv)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            };
        }
        Some("smoke") => return world::smoke_main(&args[2..]),
        Some("deploy-child") => return world::deploy_child_main(&args[2..]),
        _ => {}
    }
    let flag = |f: &str| args.iter().any(|a| a == f);
    let filters: Vec<&String> = args[1..]
        .iter()
        .filter(|a| !a.starts_with('-') && !["terse", "pretty", "json"].contains(&a.as_str()))
        .collect();
    let selected = |name: &str| {
        filters.is_empty()
            || filters.iter().any(|f| {
                if flag("--exact") {
                    name == f.as_str()
                } else {
                    name.contains(f.as_str())
                }
            })
    };
    if flag("--list") {
        if !flag("--ignored") {
            for (name, _) in TESTS.iter().filter(|(n, _)| selected(n)) {
                println!("{name}: test");
            }
        }
        return ExitCode::SUCCESS;
    }
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in TESTS {
        if !selected(name) {
            continue;
        }
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(test);
        let took = started.elapsed();
        if outcome.is_ok() {
            passed += 1;
            println!("test {name} ... ok ({took:.1?})");
        } else {
            failed += 1;
            println!("test {name} ... FAILED ({took:.1?})");
        }
    }
    let verdict = if failed == 0 { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {verdict}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out\n"
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn live(o: &DeployOutcome) -> i64 {
    match o {
        DeployOutcome::Live { deployment } => *deployment,
        other => panic!("expected live, got {other:?}"),
    }
}

fn blue_green_goes_live_with_proof_and_keeps_the_old_slot_warm() {
    rt().block_on(async {
        let w = World::start(WorldSpec::default()).await;
        w.release("1.0.0", &[]).await;
        w.release("1.1.0", &[]).await;
        let first = live(&w.deploy("1.0.0").await.unwrap());
        assert_eq!(get_version(w.listen(0)).await, "1.0.0");
        let second = live(&w.deploy("1.1.0").await.unwrap());
        assert_eq!(get_version(w.listen(0)).await, "1.1.0");

        let d = w.store.get_deployment(second).await.unwrap().unwrap();
        assert_eq!(
            (d.state.as_str(), d.trigger.as_str(), d.strategy.as_str()),
            ("live", "cli", "blue-green")
        );
        assert!(d.finished_at.is_some());
        let steps = w.store.list_deployment_steps(second).await.unwrap();
        let names: Vec<&str> = steps.iter().map(|s| s.step.as_str()).collect();
        assert_eq!(
            names,
            ["prepare", "verify", "smoke", "switch", "observe", "proof"]
        );
        assert!(steps.iter().all(|s| s.result.is_some()), "{steps:?}");
        // The plan: the new release went to the idle slot, the old one is what a rollback returns to.
        let plan = &steps[0].intent["hosts"][0];
        assert_eq!(plan["old"]["version"], "1.0.0");
        assert_ne!(plan["new_slot"], plan["old_slot"]);

        // Proof of delivery: signed statement with the release, the slot, pid, checks, smoke.
        let proofs = w.store.list_proofs(second).await.unwrap();
        assert_eq!(proofs.len(), 1);
        let st = &proofs[0].statement;
        let p = &st["predicate"];
        assert_eq!(p["release"]["version"], "1.1.0");
        assert_eq!(p["reported_version"], "1.1.0");
        assert_eq!(p["host"], "local");
        assert!(p["pid"].as_u64().unwrap() > 0);
        assert!(
            p["checks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["kind"] == "version" && c["ok"] == true)
        );
        assert_eq!(p["smoke"][0]["ok"], true, "{p}");
        assert_eq!(st["subject"][0]["digest"]["sha256"], w.digest("1.1.0"));
        w.verify_proof(&proofs[0].envelope);

        // Audit: create, transitions, a switch event naming what serves.
        let switches = w
            .store
            .list_audit(&AuditFilter {
                action: Some("deployment.switch".into()),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(switches.len(), 2);
        let last = &switches[1].payload;
        assert_eq!(last["deployment"], second);
        assert_eq!(last["hosts"][0]["serving"][0]["version"], "1.1.0");
        assert_eq!(last["hosts"][0]["serving"][0]["weight"], 100);
        assert_eq!(last["hosts"][0]["serving"][0]["commit"], w.commit("1.1.0"));
        assert_eq!(w.store.verify_audit().await.unwrap().first_broken, None);
        // The previous slot stays warm.
        let view = w.latest("local").await;
        let slots = &view["services"]["web-staging"]["slots"];
        assert_eq!(slots.as_object().unwrap().len(), 2, "{slots}");
        assert!(
            w.store.get_lock("staging").await.unwrap().is_none(),
            "the lock is released"
        );
        let _ = first;
        w.stop().await;
    });
}

fn a_wrong_version_is_rolled_back_and_the_old_release_keeps_serving() {
    rt().block_on(async {
        let w = World::start(WorldSpec::default()).await;
        w.release("1.0.0", &[]).await;
        w.release("2.0.0", &["--wrong-version", "9.9.9"]).await;
        live(&w.deploy("1.0.0").await.unwrap());
        let out = w.deploy("2.0.0").await.unwrap();
        let DeployOutcome::RolledBack { deployment, reason } = out else {
            panic!("expected a rollback: {out:?}")
        };
        assert!(
            reason.contains("9.9.9") && reason.contains("local"),
            "{reason}"
        );
        assert_eq!(get_version(w.listen(0)).await, "1.0.0");
        let d = w.store.get_deployment(deployment).await.unwrap().unwrap();
        assert_eq!(d.state, "rolled_back");
        assert!(d.finished_at.is_some());
        let steps = w.store.list_deployment_steps(deployment).await.unwrap();
        assert_eq!(steps.last().unwrap().step, "rollback");
        let transitions: Vec<String> = w
            .store
            .list_audit(&AuditFilter {
                subject: Some(format!("deployment:{deployment}")),
                action: Some("deployment.transition".into()),
                ..AuditFilter::default()
            })
            .await
            .unwrap()
            .iter()
            .map(|e| e.payload["to"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            transitions,
            [
                "preparing",
                "verifying",
                "failed",
                "rolling_back",
                "rolled_back"
            ]
        );
        // The new slot is removed; the old one serves.
        w.eventually("the failed slot is removed", |v| {
            v["services"]["web-staging"]["slots"]
                .as_object()
                .is_some_and(|s| s.len() == 1)
        })
        .await;
        w.stop().await;
    });
}

fn a_release_crashing_while_observed_is_rolled_back() {
    rt().block_on(async {
        let w = World::start(WorldSpec {
            observe: "4s".into(),
            ..WorldSpec::default()
        })
        .await;
        w.release("1.0.0", &[]).await;
        w.release("1.1.0", &["--crash-after", "1.5"]).await;
        live(&w.deploy("1.0.0").await.unwrap());
        let out = w.deploy("1.1.0").await.unwrap();
        let DeployOutcome::RolledBack { deployment, reason } = out else {
            panic!("expected a rollback: {out:?}")
        };
        println!("  rolled back: {reason}");
        assert_eq!(get_version(w.listen(0)).await, "1.0.0");
        assert!(w.store.list_proofs(deployment).await.unwrap().is_empty());
        w.stop().await;
    });
}

fn recreate_stops_the_previous_release_and_takes_a_port_change() {
    rt().block_on(async {
        let w = World::start(WorldSpec {
            strategy: "\"recreate\"".into(),
            ..WorldSpec::default()
        })
        .await;
        w.release("1.0.0", &[]).await;
        w.release("1.1.0", &[]).await;
        w.release("1.2.0", &[]).await;
        live(&w.deploy("1.0.0").await.unwrap());
        live(&w.deploy("1.1.0").await.unwrap());
        assert_eq!(get_version(w.listen(0)).await, "1.1.0");
        w.eventually("the previous release is stopped", |v| {
            v["services"]["web-staging"]["slots"]
                .as_object()
                .is_some_and(|s| s.len() == 1)
        })
        .await;
        // Both slot ports move: the running slot keeps its port until it is replaced.
        let (blue, green) = (world::free_port(), world::free_port());
        let moved = w.with_config(|c| {
            c.service.as_mut().unwrap().ports = Some(cutover_config::SlotPorts { blue, green });
        });
        let out = moved
            .deploy(
                cutover_deploy::DeployRequest {
                    environment: "staging".into(),
                    version: "1.2.0".into(),
                    trigger: "cli".into(),
                    reverts: None,
                    wait_for_lock: false,
                    message: None,
                },
                &|_| {},
            )
            .await
            .unwrap();
        live(&out);
        assert_eq!(get_version(w.listen(0)).await, "1.2.0");
        w.eventually("1.2.0 runs alone on its new port", |v| {
            let slots = v["services"]["web-staging"]["slots"].as_object().unwrap();
            slots.len() == 1
                && slots
                    .values()
                    .all(|s| s["version"] == "1.2.0" && (s["port"] == blue || s["port"] == green))
        })
        .await;
        w.stop().await;
    });
}

fn a_failing_first_deployment_ends_failed() {
    rt().block_on(async {
        // The slot never turns healthy: the deployment fails when the start timeout ends.
        let w = World::start(WorldSpec {
            start_timeout: "5s".into(),
            ..WorldSpec::default()
        })
        .await;
        w.release("0.1.0", &["--unhealthy"]).await;
        let out = w.deploy("0.1.0").await.unwrap();
        let DeployOutcome::Failed { deployment, reason } = out else {
            panic!("expected failed: {out:?}")
        };
        assert!(
            reason.contains("did not get there in time") && reason.contains("unhealthy"),
            "{reason}"
        );
        let d = w.store.get_deployment(deployment).await.unwrap().unwrap();
        assert_eq!(d.state, "failed");
        assert!(d.finished_at.is_some());
        assert!(w.store.list_proofs(deployment).await.unwrap().is_empty());
        w.stop().await;
    });
}

fn canary_spec() -> WorldSpec {
    WorldSpec {
        strategy:
            r#"{ canary = [20, 100], step = "1500ms", max_error_rate = 0.05, min_requests = 20 }"#
                .into(),
        version_probe: false,
        ..WorldSpec::default()
    }
}

fn a_canary_answering_5xx_is_rolled_back() {
    rt().block_on(async {
        let w = World::start(canary_spec()).await;
        w.release("1.0.0", &[]).await;
        w.release("1.1.0", &["--error-rate", "0.5"]).await;
        live(&w.deploy("1.0.0").await.unwrap());
        let load = w.load(0);
        let out = w.deploy("1.1.0").await.unwrap();
        let seen = load.stop().await;
        let DeployOutcome::RolledBack { deployment, reason } = out else {
            panic!("expected a rollback: {out:?}")
        };
        assert!(reason.contains("5xx"), "{reason}");
        assert!(
            seen.get("1.1.0").copied().unwrap_or(0) > 0,
            "the canary got traffic: {seen:?}"
        );
        assert_eq!(get_version(w.listen(0)).await, "1.0.0");
        let steps = w.store.list_deployment_steps(deployment).await.unwrap();
        assert!(
            steps
                .iter()
                .any(|s| s.step == "canary_step" && s.intent["weight"] == 20)
        );
        assert!(
            !steps
                .iter()
                .any(|s| s.step == "canary_step" && s.intent["weight"] == 100)
        );
        // The switch events: to 80/20, then back to 100% 1.0.0.
        let switches = w
            .store
            .list_audit(&AuditFilter {
                action: Some("deployment.switch".into()),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        let canary = &switches[switches.len() - 2].payload["hosts"][0]["serving"];
        assert_eq!(canary.as_array().unwrap().len(), 2, "{canary}");
        assert_eq!(canary[1]["weight"], 20);
        let back = &switches[switches.len() - 1].payload["hosts"][0]["serving"];
        assert_eq!(
            (back[0]["version"].as_str(), back[0]["weight"].as_u64()),
            (Some("1.0.0"), Some(100))
        );
        w.stop().await;
    });
}

fn a_healthy_canary_walks_its_steps_to_live() {
    rt().block_on(async {
        let w = World::start(canary_spec()).await;
        w.release("1.0.0", &[]).await;
        w.release("1.1.0", &[]).await;
        live(&w.deploy("1.0.0").await.unwrap());
        let load = w.load(0);
        let id = live(&w.deploy("1.1.0").await.unwrap());
        let seen = load.stop().await;
        assert!(seen.get("1.1.0").copied().unwrap_or(0) > 0, "{seen:?}");
        assert_eq!(seen.get("error").copied().unwrap_or(0), 0, "{seen:?}");
        let weights: Vec<u64> = w
            .store
            .list_deployment_steps(id)
            .await
            .unwrap()
            .iter()
            .filter(|s| s.step == "canary_step")
            .map(|s| s.intent["weight"].as_u64().unwrap())
            .collect();
        assert_eq!(weights, [20, 100]);
        assert_eq!(get_version(w.listen(0)).await, "1.1.0");
        w.stop().await;
    });
}

fn rolling_over_three_agents() {
    rt().block_on(async {
        let spec = WorldSpec {
            hosts: vec!["web-1".into(), "web-2".into(), "web-3".into()],
            strategy: r#"{ rolling = { batch = 1, max_unavailable = 1 } }"#.into(),
            ..WorldSpec::default()
        };
        let w = World::start_multi(spec).await;
        w.release("1.0.0", &[]).await;
        w.release("1.1.0", &[]).await;
        live(&w.deploy("1.0.0").await.unwrap());
        let id = live(&w.deploy("1.1.0").await.unwrap());
        for i in 0..3 {
            assert_eq!(get_version(w.listen(i)).await, "1.1.0");
        }
        let batches = w
            .store
            .list_deployment_steps(id)
            .await
            .unwrap()
            .iter()
            .filter(|s| s.step == "batch")
            .count();
        assert_eq!(batches, 3);
        assert_eq!(w.store.list_proofs(id).await.unwrap().len(), 3);
        w.stop().await;
    });
}

fn rolling_spec(max_unavailable: u32) -> WorldSpec {
    WorldSpec {
        hosts: vec!["web-1".into(), "web-2".into(), "web-3".into()],
        strategy: format!("{{ rolling = {{ batch = 1, max_unavailable = {max_unavailable} }} }}"),
        // A dead agent is found unavailable when the start timeout ends.
        start_timeout: "5s".into(),
        ..WorldSpec::default()
    }
}

fn a_dead_agent_counts_against_max_unavailable() {
    rt().block_on(async {
        // max_unavailable = 1: the deployment goes on without the dead host.
        let mut w = World::start_multi(rolling_spec(1)).await;
        w.release("1.0.0", &[]).await;
        w.release("1.1.0", &[]).await;
        live(&w.deploy("1.0.0").await.unwrap());
        w.kill_agent(1).await;
        let id = live(&w.deploy("1.1.0").await.unwrap());
        assert_eq!(get_version(w.listen(0)).await, "1.1.0");
        assert_eq!(get_version(w.listen(2)).await, "1.1.0");
        let proven: Vec<String> = w
            .store
            .list_proofs(id)
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.host)
            .collect();
        assert_eq!(proven, ["web-1", "web-3"]);
        w.stop().await;

        // Two dead hosts of three are more than max_unavailable = 1: the switched host goes back.
        let mut w = World::start_multi(rolling_spec(1)).await;
        w.release("1.0.0", &[]).await;
        w.release("1.1.0", &[]).await;
        live(&w.deploy("1.0.0").await.unwrap());
        w.kill_agent(1).await;
        w.kill_agent(2).await;
        let out = w.deploy("1.1.0").await.unwrap();
        let DeployOutcome::RolledBack { deployment, reason } = out else {
            panic!("expected a rollback: {out:?}")
        };
        assert!(
            reason.contains("web-2, web-3") && reason.contains("max_unavailable = 1"),
            "{reason}"
        );
        assert_eq!(get_version(w.listen(0)).await, "1.0.0");
        let d = w.store.get_deployment(deployment).await.unwrap().unwrap();
        assert_eq!(d.state, "rolled_back");
        w.stop().await;
    });
}

fn warm_rollback_switches_only_the_routers() {
    rt().block_on(async {
        let w = World::start(WorldSpec::default()).await;
        w.release("1.0.0", &[]).await;
        w.release("1.1.0", &[]).await;
        live(&w.deploy("1.0.0").await.unwrap());
        let current = live(&w.deploy("1.1.0").await.unwrap());
        let started = Instant::now();
        let out = w
            .engine
            .rollback("staging", None, &|p| println!("    {:>8.2?} [{}] {}", started.elapsed(), p.state, p.message))
            .await
            .unwrap();
        let took = started.elapsed();
        let first = get_version(w.listen(0)).await;
        let served = started.elapsed();
        println!("  warm rollback: rollback() returned after {took:.2?}, first request served by 1.0.0 after {served:.2?}");
        let id = live(&out);
        assert_eq!(first, "1.0.0");
        let d = w.store.get_deployment(id).await.unwrap().unwrap();
        assert_eq!((d.trigger.as_str(), d.reverts, d.release_version.as_str()), ("rollback", Some(current), "1.0.0"));
        let steps: Vec<String> = w.store.list_deployment_steps(id).await.unwrap().into_iter().map(|s| s.step).collect();
        assert_eq!(steps, ["prepare", "switch", "proof"], "no slot was prepared: only the routers switched");
        assert_eq!(w.store.list_proofs(id).await.unwrap().len(), 1);
        // And forward again, to a named version.
        let again = w.engine.rollback("staging", Some("1.1.0"), &|_| {}).await.unwrap();
        live(&again);
        assert_eq!(get_version(w.listen(0)).await, "1.1.0");
        w.stop().await;
    });
}

fn a_held_lock_is_a_clear_error_and_changes_nothing() {
    rt().block_on(async {
        let w = World::start(WorldSpec::default()).await;
        w.release("1.0.0", &[]).await;
        let now = chrono::Utc::now();
        w.store
            .apply_one(
                Change::AcquireLock {
                    environment: "staging".into(),
                    holder: "build-7:4242:deploy staging".into(),
                    message: "deploying 0.9.0 by ana".into(),
                    at: now,
                    lease_until: now + chrono::Duration::seconds(60),
                },
                &cutover_store::Audit::new("ana", "lock.acquire", "env:staging", json!({})),
            )
            .await
            .unwrap();
        let before = w.audit_count().await;
        let err = w.deploy("1.0.0").await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DeployError::Lock(_)), "{err:?}");
        assert!(
            msg.contains("build-7:4242")
                && msg.contains("deploying 0.9.0 by ana")
                && msg.contains("since"),
            "{msg}"
        );
        assert!(err.hint().unwrap().contains("--wait"));
        assert_eq!(w.audit_count().await, before);
        assert!(
            w.store
                .list_deployments(&DeploymentFilter::default())
                .await
                .unwrap()
                .is_empty()
        );

        // `--wait`: the deployment waits until the holder's lease runs out, then takes over.
        let now = chrono::Utc::now();
        w.store
            .apply_one(
                Change::ReleaseLock {
                    environment: "staging".into(),
                    holder: "build-7:4242:deploy staging".into(),
                },
                &cutover_store::Audit::new("ana", "lock.release", "env:staging", json!({})),
            )
            .await
            .unwrap();
        w.store
            .apply_one(
                Change::AcquireLock {
                    environment: "staging".into(),
                    holder: "build-7:4242:deploy staging".into(),
                    message: "a short one".into(),
                    at: now,
                    lease_until: now + chrono::Duration::milliseconds(800),
                },
                &cutover_store::Audit::new("ana", "lock.acquire", "env:staging", json!({})),
            )
            .await
            .unwrap();
        let out = w
            .engine
            .deploy(
                cutover_deploy::DeployRequest {
                    environment: "staging".into(),
                    version: "1.0.0".into(),
                    trigger: "cli".into(),
                    reverts: None,
                    wait_for_lock: true,
                    message: Some("waited".into()),
                },
                &|_| {},
            )
            .await
            .unwrap();
        live(&out);
        let takeover = w
            .store
            .list_audit(&AuditFilter {
                action: Some("lock.takeover".into()),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(takeover.len(), 1);
        assert_eq!(
            takeover[0].payload["previous"],
            "build-7:4242:deploy staging"
        );
        assert_eq!(takeover[0].payload["message"], "waited");
        w.stop().await;
    });
}

fn an_abandoned_deployment_is_resumed_to_live() {
    rt().block_on(async {
        let w = World::start(WorldSpec::default()).await;
        w.release("1.0.0", &[]).await;
        w.release("1.1.0", &[]).await;
        live(&w.deploy("1.0.0").await.unwrap());
        // Abandon the deployment once it verifies: its future is dropped mid-way.
        let abandoned = w.deploy_and_abandon_at("1.1.0", "verifying").await;
        let unfinished = w
            .store
            .list_deployments(&DeploymentFilter {
                unfinished_only: true,
                ..DeploymentFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(unfinished.len(), 1);
        let outcomes = w.engine.resume_all(&|_| {}).await.unwrap();
        assert_eq!(
            outcomes,
            [DeployOutcome::Live {
                deployment: abandoned
            }]
        );
        assert_eq!(get_version(w.listen(0)).await, "1.1.0");
        assert!(w.engine.resume_all(&|_| {}).await.unwrap().is_empty());
        assert_eq!(w.store.list_proofs(abandoned).await.unwrap().len(), 1);
        assert_eq!(w.store.verify_audit().await.unwrap().first_broken, None);
        w.stop().await;
    });
}

fn an_abandoned_canary_is_rolled_back_on_resume() {
    rt().block_on(async {
        let w = World::start(canary_spec()).await;
        w.release("1.0.0", &[]).await;
        w.release("1.1.0", &[]).await;
        live(&w.deploy("1.0.0").await.unwrap());
        let abandoned = w.deploy_and_abandon_at("1.1.0", "observing").await;
        // Abandoned at the 20% step: a canary step cannot be picked up again, so it goes back.
        let outcomes = w.engine.resume_all(&|_| {}).await.unwrap();
        let [DeployOutcome::RolledBack { deployment, reason }] = outcomes.as_slice() else {
            panic!("expected one rollback: {outcomes:?}")
        };
        assert_eq!(*deployment, abandoned);
        assert!(reason.contains("interrupted"), "{reason}");
        assert_eq!(get_version(w.listen(0)).await, "1.0.0");
        w.eventually("the canary slot is removed and no weight is left", |v| {
            let web = &v["services"]["web-staging"];
            web["slots"].as_object().is_some_and(|s| s.len() == 1) && web["canary"].is_null()
        })
        .await;
        w.stop().await;
    });
}

fn a_killed_deployer_is_taken_over_and_resumed() {
    rt().block_on(async {
        let w = World::start(WorldSpec::default()).await;
        w.release("1.0.0", &[]).await;
        w.release("1.1.0", &[]).await;
        live(&w.deploy("1.0.0").await.unwrap());
        let mut child = w.spawn_deploy_child("1.1.0");
        let pid = child.id();
        let (id, state) = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let d = w
                    .store
                    .list_deployments(&DeploymentFilter::default())
                    .await
                    .unwrap();
                if let Some(d) = d.first().filter(|d| d.release_version == "1.1.0")
                    && ["verifying", "switching", "observing"].contains(&d.state.as_str())
                {
                    return (d.id, d.state.clone());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        println!("  killed the deploying process in state `{state}`");
        let lock = w.store.get_lock("staging").await.unwrap().unwrap();
        assert!(lock.holder.contains(&format!(":{pid}:")), "{lock:?}");
        let outcomes = w.engine.resume_all(&|_| {}).await.unwrap();
        assert_eq!(outcomes, [DeployOutcome::Live { deployment: id }]);
        assert_eq!(get_version(w.listen(0)).await, "1.1.0");
        let takeovers = w
            .store
            .list_audit(&AuditFilter {
                action: Some("lock.takeover".into()),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(takeovers.len(), 1);
        assert!(w.store.get_lock("staging").await.unwrap().is_none());
        assert_eq!(w.store.verify_audit().await.unwrap().first_broken, None);
        w.stop().await;
    });
}

fn bad_input_is_refused_and_changes_nothing() {
    rt().block_on(async {
        let w = World::start(WorldSpec {
            hosts: vec!["local".into()],
            ..WorldSpec::default()
        })
        .await;
        w.release("1.0.0", &[]).await;
        w.release_without_artifact("1.0.1").await;
        w.release("1.0.2", &[]).await;
        std::fs::remove_file(w.engine.artifact_path(&w.digest("1.0.2"))).unwrap();
        let before = w.audit_count().await;
        let cases: Vec<(&str, Result<DeployOutcome, DeployError>, &str)> = vec![
            (
                "unknown environment",
                w.deploy_to("prod", "1.0.0").await,
                "unknown environment `prod`; configured: staging",
            ),
            ("no release", w.deploy("7.7.7").await, "no release `7.7.7`"),
            ("no artifact", w.deploy("1.0.1").await, "has no artifact"),
            ("artifact file gone", w.deploy("1.0.2").await, "is missing"),
            (
                "nothing live",
                w.engine.rollback("staging", None, &|_| {}).await,
                "nothing is live",
            ),
        ];
        for (what, result, needle) in cases {
            let err = result.expect_err(what);
            assert!(err.to_string().contains(needle), "{what}: {err}");
            assert!(err.is_user_error(), "{what}");
            assert!(err.hint().is_some(), "{what}");
        }
        assert_eq!(w.audit_count().await, before);

        // Hosts without an agent, or one that never connected.
        let w2 = World::start(WorldSpec {
            hosts: vec!["local".into(), "ghost".into()],
            ..WorldSpec::default()
        })
        .await;
        w2.release("1.0.0", &[]).await;
        let err = w2.deploy("1.0.0").await.unwrap_err();
        assert!(
            err.to_string()
                .contains("host `ghost` of environment `staging` has no registered agent"),
            "{err}"
        );
        cutover_control::add_host(&*w2.store, "ghost", "t0ken-ghost-0123456789", "test")
            .await
            .unwrap();
        let err = w2.deploy("1.0.0").await.unwrap_err();
        assert!(err.to_string().contains("never connected"), "{err}");
        // An environment whose only agent was last seen long ago.
        let long_ago = chrono::Utc::now() - chrono::Duration::minutes(10);
        w2.store.touch_host("ghost", long_ago, None).await.unwrap();
        let ghost_only = w2.with_config(|c| {
            c.environments.get_mut("staging").unwrap().hosts =
                vec![cutover_config::EnvHost::new("ghost")];
        });
        let err = ghost_only
            .deploy(
                cutover_deploy::DeployRequest {
                    environment: "staging".into(),
                    version: "1.0.0".into(),
                    trigger: "cli".into(),
                    reverts: None,
                    wait_for_lock: false,
                    message: None,
                },
                &|_| {},
            )
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("no agent of environment `staging` is connected: ghost (last seen"),
            "{err}"
        );
        assert!(err.hint().unwrap().contains("start the agents"));
        assert!(
            w2.store
                .list_deployments(&DeploymentFilter::default())
                .await
                .unwrap()
                .is_empty()
        );
        w2.stop().await;

        // A slot port changed between the live deployment and the configuration.
        live(&w.deploy("1.0.0").await.unwrap());
        let moved = w.with_config(|c| {
            let svc = c.service.as_mut().unwrap();
            let ports = svc.ports.as_mut().unwrap();
            ports.green = ports.green.wrapping_add(100);
        });
        let before = w.audit_count().await;
        let err = moved
            .deploy(
                cutover_deploy::DeployRequest {
                    environment: "staging".into(),
                    version: "1.0.0".into(),
                    trigger: "cli".into(),
                    reverts: None,
                    wait_for_lock: false,
                    message: None,
                },
                &|_| {},
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("green slot port changed"), "{err}");
        assert!(err.hint().unwrap().contains("recreate"), "{err:?}");
        // A rollback target that was never live.
        let err = w
            .engine
            .rollback("staging", Some("1.0.1"), &|_| {})
            .await
            .unwrap_err();
        assert!(err.to_string().contains("was never live"), "{err}");
        let err = w
            .engine
            .rollback("staging", None, &|_| {})
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no earlier release"), "{err}");
        assert_eq!(w.audit_count().await, before);
        w.stop().await;
    });
}

fn postgres_smoke() {
    // Like the store's conformance suite: no PostgreSQL is a failure, never a silent skip.
    let admin = std::env::var("CUTOVER_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "CUTOVER_TEST_PG_URL is not set: run `cargo xtask test` (or `cargo xtask pg -- cargo test -p cutover-deploy`), which starts a throwaway PostgreSQL"
        )
    });
    rt().block_on(async {
        let w = World::start(WorldSpec {
            pg_admin: Some(admin),
            ..WorldSpec::default()
        })
        .await;
        w.release("1.0.0", &[]).await;
        w.release("1.1.0", &["--wrong-version", "0"]).await;
        live(&w.deploy("1.0.0").await.unwrap());
        assert!(matches!(
            w.deploy("1.1.0").await.unwrap(),
            DeployOutcome::RolledBack { .. }
        ));
        assert_eq!(get_version(w.listen(0)).await, "1.0.0");
        w.release("1.2.0", &[]).await;
        live(&w.deploy("1.2.0").await.unwrap());
        let back = w.engine.rollback("staging", None, &|_| {}).await.unwrap();
        live(&back);
        assert_eq!(get_version(w.listen(0)).await, "1.0.0");
        assert_eq!(w.store.verify_audit().await.unwrap().first_broken, None);
        w.stop().await;
    });
}

/// `keep_warm` ends: the agent stops the previous slot on its own, the serving one keeps serving,
/// and a rollback then redeploys instead of switching.
fn the_previous_slot_stops_when_keep_warm_ends() {
    rt().block_on(async {
        let w = World::start(WorldSpec {
            keep_warm: "1s".into(),
            ..WorldSpec::default()
        })
        .await;
        w.release("1.0.0", &[]).await;
        w.release("1.1.0", &[]).await;
        live(&w.deploy("1.0.0").await.unwrap());
        live(&w.deploy("1.1.0").await.unwrap());
        // Right after the switch both slots run: the old one is warm.
        let slots = w.latest("local").await["services"]["web-staging"]["slots"].clone();
        assert_eq!(slots.as_object().unwrap().len(), 2, "{slots}");
        w.eventually("the warm slot is stopped after keep_warm", |v| {
            v["services"]["web-staging"]["slots"]
                .as_object()
                .is_some_and(|s| s.len() == 1)
        })
        .await;
        assert_eq!(get_version(w.listen(0)).await, "1.1.0");
        // Nothing is warm any more: the rollback goes through the strategy.
        let back = w
            .engine
            .rollback("staging", None, &|p| {
                println!("    [{} {}] {}", p.deployment, p.state, p.message);
            })
            .await
            .unwrap();
        let id = live(&back);
        let steps = w.store.list_deployment_steps(id).await.unwrap();
        assert!(steps.iter().any(|s| s.step == "prepare"), "{steps:?}");
        assert_eq!(get_version(w.listen(0)).await, "1.0.0");
        w.stop().await;
    });
}
