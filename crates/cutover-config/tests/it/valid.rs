//! The full valid configuration loads, means what it says, and round-trips through TOML and JSON.

use cutover_config::{Batch, Config, FreezeSpan, Probe, Secret, Strategy};

use crate::{NO_VARS, fixtures};

fn full() -> Config {
    cutover_config::load(&fixtures().join("valid/full.toml")).unwrap()
}

#[test]
fn full_config_has_the_written_values() {
    let c = full();
    assert_eq!(c.project.name, "hello");
    assert_eq!(c.packages[1].tag_format, "web@{version}");
    assert_eq!(c.packages[0].tag_format, "{name}-v{version}");
    assert_eq!(c.checks[0].timeout.get().as_secs(), 20 * 60);
    assert!(c.checks[0].required);
    assert!(!c.checks[1].required);
    assert_eq!(
        c.build
            .as_ref()
            .unwrap()
            .timeout
            .as_ref()
            .unwrap()
            .get()
            .as_secs(),
        5400
    );
    let svc = c.service.as_ref().unwrap();
    let health = svc.health.as_ref().unwrap();
    assert_eq!(
        health.probe,
        Probe::Http {
            path: "/health".into(),
            expected_status: 204
        }
    );
    assert_eq!(health.interval.get().as_millis(), 500);
    assert_eq!(
        svc.secrets["API_KEY"],
        Secret::Env {
            env: "HELLO_API_KEY".into()
        }
    );
    assert_eq!(
        svc.start.render(&[
            ("release_dir", "/r/1.0.0"),
            ("port", "9101"),
            ("slot", "blue")
        ]),
        vec!["/r/1.0.0/hello", "--port", "9101", "--slot=blue"]
    );
    let prod = &c.environments["production"];
    match &prod.strategy {
        Strategy::Canary(k) => {
            assert_eq!(k.steps, vec![5, 25, 100]);
            assert_eq!(k.step.get().as_secs(), 120);
            assert_eq!(k.max_latency_ratio, Some(1.5));
        }
        other => panic!("expected canary, got {other:?}"),
    }
    match &c.environments["canary-lab"].strategy {
        Strategy::Rolling(r) => {
            assert_eq!(r.batch, Batch::Percent(25));
            assert_eq!(r.max_unavailable, 2);
        }
        other => panic!("expected rolling, got {other:?}"),
    }
    assert!(matches!(prod.freeze[1].span, FreezeSpan::Dates { .. }));
    assert_eq!(prod.freeze[0].tz, "Europe/Berlin");
    assert_eq!(
        c.promotion_chain("production").unwrap(),
        vec!["staging", "production"]
    );
    assert_eq!(c.promotion_chain("nope"), None);
    assert_eq!(c.service_name(), Some("hello"));
    assert_eq!(c.vulns.ignore[0].until.unwrap().to_string(), "2026-12-31");
    assert_eq!(c.vulns.ignore[1].until.unwrap().to_string(), "2027-01-15");
}

#[test]
fn full_config_round_trips_through_toml() {
    let c = full();
    let text = toml::to_string(&c).unwrap();
    let again = cutover_config::load_str(&text, std::path::Path::new("round-trip.toml"), NO_VARS)
        .unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
    assert_eq!(c, again);
    // Durations serialise back to the text that was written.
    assert!(text.contains("\"1h30m\""), "{text}");
    assert!(text.contains("\"500ms\""), "{text}");
}

#[test]
fn full_config_round_trips_through_json() {
    let c = full();
    let json = serde_json::to_string(&c).unwrap();
    let again: Config = serde_json::from_str(&json).unwrap();
    assert_eq!(c, again);
}

#[test]
fn minimal_config_gets_the_defaults() {
    let c = crate::load("[project]\nname = \"x\"\n").unwrap();
    assert_eq!(c.project.tag_format, "v{version}");
    assert_eq!(c.project.main_branch, "main");
    assert_eq!(c.versioning.initial, "0.1.0");
    assert_eq!(c.vulns.fail_on, cutover_config::Severity::High);
    assert!(c.environments.is_empty());
    insta::assert_json_snapshot!("minimal_redacted", c.redacted_json());
}

#[test]
fn strategy_names_and_defaults() {
    let base = "[project]\nname = \"x\"\n[service]\nstart = [\"a\"]\n[environments.e]\nhosts = [\"local\"]\n";
    for (strategy, name) in [
        ("\"recreate\"", "recreate"),
        ("\"rolling\"", "rolling"),
        ("\"blue-green\"", "blue-green"),
        ("\"canary\"", "canary"),
        ("{ rolling = { batch = 2 } }", "rolling"),
    ] {
        let c = crate::load(&format!("{base}strategy = {strategy}\n")).unwrap();
        assert_eq!(c.environments["e"].strategy.name(), name);
    }
    let c = crate::load(base).unwrap();
    assert_eq!(c.environments["e"].strategy, Strategy::BlueGreen);
}

#[test]
fn health_probes() {
    let base = "[project]\nname = \"x\"\n[service]\nstart = [\"a\"]\n";
    let c = crate::load(&format!("{base}health = {{ tcp = true }}\n")).unwrap();
    assert_eq!(c.service.unwrap().health.unwrap().probe, Probe::Tcp);
    let c = crate::load(&format!(
        "{base}health = {{ command = [\"./check\", \"{{port}}\"] }}\n"
    ))
    .unwrap();
    assert!(matches!(
        c.service.unwrap().health.unwrap().probe,
        Probe::Command(_)
    ));
    let err = crate::load(&format!(
        "{base}health = {{ command = [\"./check\", \"{{url}}\"] }}\n"
    ))
    .unwrap_err();
    assert!(
        err.to_string().contains("unknown placeholder `{url}`"),
        "{err}"
    );
}

#[test]
fn hosts_are_names_or_tables_with_their_own_addresses() {
    let src = r#"
[project]
name = "hello"

[service]
start = ["./hello", "--port", "{port}"]
ports = { blue = 9101, green = 9102 }

[environments.staging]
hosts = ["local", { name = "h2", listen = "127.0.0.1:8182", ports = { blue = 9181, green = 9182 } }, { name = "h3" }]
listen = "127.0.0.1:8080"
"#;
    let c = crate::load(src).unwrap();
    let hosts = &c.environments["staging"].hosts;
    assert_eq!(
        hosts.iter().map(|h| h.name()).collect::<Vec<_>>(),
        ["local", "h2", "h3"]
    );
    assert_eq!(hosts[0], cutover_config::EnvHost::new("local"));
    assert_eq!(hosts[1].listen.as_deref(), Some("127.0.0.1:8182"));
    let ports = hosts[1].ports.as_ref().unwrap();
    assert_eq!((ports.blue, ports.green), (9181, 9182));
    // A table with only a name means the same as the plain string.
    assert_eq!(hosts[2], cutover_config::EnvHost::new("h3"));

    // Round trip: names stay strings, tables stay tables.
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(
        json["environments"]["staging"]["hosts"],
        serde_json::json!(["local", {"name": "h2", "listen": "127.0.0.1:8182", "ports": {"blue": 9181, "green": 9182}}, "h3"])
    );
    let text = toml::to_string(&c).unwrap();
    let again = cutover_config::load_str(&text, std::path::Path::new("x.toml"), NO_VARS).unwrap();
    assert_eq!(again, c);
}

#[test]
fn two_environments_may_not_share_a_host_listen_address() {
    let src = r#"
[project]
name = "hello"

[service]
start = ["./hello", "--port", "{port}"]

[environments.staging]
hosts = [{ name = "h2", listen = "127.0.0.1:8182" }]

[environments.production]
hosts = ["h2"]
listen = "127.0.0.1:8182"
"#;
    let err = crate::load(src).unwrap_err();
    assert!(
        err.to_string()
            .contains("both listen on 127.0.0.1:8182 on host `h2`"),
        "{err}"
    );
}
