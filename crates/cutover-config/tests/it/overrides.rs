//! `CUTOVER_*__*` environment overrides.

use std::path::Path;

use cutover_config::{ConfigError, Origin, Strategy, load_str};

const BASE: &str = r#"
[project]
name = "hello"

[[checks]]
name = "test"
run = ["cargo", "test"]

[service]
start = ["./hello", "--port", "{port}"]

[environments.staging]
hosts = ["local"]
listen = "127.0.0.1:8080"
"#;

fn with(vars: &[(&str, &str)]) -> Result<cutover_config::Config, ConfigError> {
    load_str(BASE, Path::new("cutover.toml"), vars)
}

#[test]
fn strings_numbers_arrays_and_tables() {
    let c = with(&[
        ("CUTOVER_PROJECT__TAG_FORMAT", "release-{version}"),
        ("CUTOVER_ENVIRONMENTS__STAGING__LISTEN", "127.0.0.1:9090"),
        ("CUTOVER_ENVIRONMENTS__STAGING__APPROVALS", "1"),
        ("CUTOVER_ENVIRONMENTS__STAGING__HOSTS", r#"["a", "b"]"#),
        (
            "CUTOVER_ENVIRONMENTS__STAGING__STRATEGY",
            "{ canary = [50, 100] }",
        ),
        ("CUTOVER_CHECKS__0__TIMEOUT", "5m"),
        ("CUTOVER_CHECKS__0__REQUIRED", "false"),
    ])
    .unwrap();
    assert_eq!(c.project.tag_format, "release-{version}");
    let st = &c.environments["staging"];
    assert_eq!(st.listen.as_deref(), Some("127.0.0.1:9090"));
    assert_eq!(st.approvals, 1);
    assert_eq!(st.hosts, vec!["a", "b"]);
    assert!(matches!(&st.strategy, Strategy::Canary(k) if k.steps == vec![50, 100]));
    assert_eq!(c.checks[0].timeout.as_str(), "5m");
    assert!(!c.checks[0].required);
}

#[test]
fn overrides_create_missing_tables() {
    let c = with(&[
        ("CUTOVER_ENVIRONMENTS__PRODUCTION__HOSTS", r#"["web-1"]"#),
        ("CUTOVER_ENVIRONMENTS__PRODUCTION__PROMOTE_FROM", "staging"),
        ("CUTOVER_VULNS__FAIL_ON", "critical"),
    ])
    .unwrap();
    assert_eq!(
        c.promotion_chain("production").unwrap(),
        vec!["staging", "production"]
    );
    assert_eq!(c.vulns.fail_on, cutover_config::Severity::Critical);
}

#[test]
fn variables_without_double_underscore_are_not_overrides() {
    let c = with(&[
        ("CUTOVER_DATABASE_URL", "postgres://x"),
        ("CUTOVER_ACTOR", "alice"),
        ("HOME", "/root"),
        ("OTHER__THING", "x"),
    ])
    .unwrap();
    assert!(c.database.is_none());
    assert!(!cutover_config::is_override("CUTOVER_DATABASE_URL"));
    assert!(cutover_config::is_override("CUTOVER_PROJECT__NAME"));
}

fn override_error(vars: &[(&str, &str)]) -> (ConfigError, String) {
    let err = with(vars).unwrap_err();
    let text = crate::render(&err);
    (err, text)
}

#[test]
fn an_unknown_key_in_an_override_names_the_variable() {
    let (err, text) = override_error(&[("CUTOVER_PROJECT__TAG_FORMT", "x{version}")]);
    assert_eq!(err.hint().as_deref(), Some("did you mean `tag_format`?"));
    let d = err.diagnostic().unwrap();
    assert!(
        matches!(&d.origin, Origin::Override { var, .. } if var == "CUTOVER_PROJECT__TAG_FORMT")
    );
    assert_eq!(err.location(), None);
    insta::assert_snapshot!("override_unknown_key", text);
}

#[test]
fn a_bad_value_in_an_override_names_the_variable() {
    let (_, text) = override_error(&[("CUTOVER_CHECKS__0__TIMEOUT", "soon")]);
    insta::assert_snapshot!("override_bad_duration", text);
    let (_, text) = override_error(&[("CUTOVER_ENVIRONMENTS__STAGING__PROMOTE_FROM", "prod")]);
    insta::assert_snapshot!("override_semantic", text);
}

#[test]
fn structural_override_errors() {
    for (var, value, needle) in [
        ("CUTOVER_PROJECT__NAME__X", "1", "not a table"),
        ("CUTOVER_CHECKS__5__TIMEOUT", "1m", "no index 5"),
        ("CUTOVER_PROJECT____NAME", "x", "empty segment"),
        ("CUTOVER_0__NAME", "x", "section name"),
    ] {
        let (err, text) = override_error(&[(var, value)]);
        assert!(text.contains(var), "{text}");
        assert!(text.contains(needle), "{text}");
        assert_eq!(err.location(), None);
    }
}

#[test]
fn file_errors_still_point_into_the_file_when_overrides_are_set() {
    let src = format!("{BASE}\n[vulns]\nfail_on = \"severe\"\n");
    let err = load_str(
        &src,
        Path::new("cutover.toml"),
        &[("CUTOVER_PROJECT__NAME", "other")],
    )
    .unwrap_err();
    let (_, line, _) = err.location().unwrap();
    let expected = src.lines().position(|l| l.starts_with("fail_on")).unwrap() + 1;
    assert_eq!(line, expected);
}

#[test]
fn load_reads_the_process_environment() {
    // A variable name no other test uses, so that parallel tests are unaffected.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cutover.toml");
    std::fs::write(
        &path,
        "[project]\nname = \"x\"\n[versioning]\ninitial = \"0.1.0\"\n",
    )
    .unwrap();
    // `set_var` would race with the other tests, so this compares `load` with `load_str` over the
    // same process environment instead.
    let from_file = cutover_config::load(&path).unwrap();
    let from_str = load_str(
        &std::fs::read_to_string(&path).unwrap(),
        &path,
        &std::env::vars().collect::<Vec<_>>(),
    )
    .unwrap();
    assert_eq!(from_file, from_str);
}

#[test]
fn env_map_keys_keep_their_case() {
    let src =
        "[project]\nname = \"x\"\n[service]\nstart = [\"a\"]\nenv = { RUST_LOG = \"info\" }\n";
    let c = load_str(
        src,
        Path::new("cutover.toml"),
        &[
            ("CUTOVER_SERVICE__ENV__RUST_LOG", "debug"),
            ("CUTOVER_SERVICE__ENV__NEW_VAR", "1"),
            (
                "CUTOVER_SERVICE__SECRETS__API_KEY",
                "{ env = \"HELLO_KEY\" }",
            ),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let svc = c.service.unwrap();
    assert_eq!(svc.env["RUST_LOG"], "debug");
    assert_eq!(svc.env["NEW_VAR"], "1");
    assert_eq!(svc.env.len(), 2);
    assert_eq!(
        svc.secrets["API_KEY"],
        cutover_config::Secret::Env {
            env: "HELLO_KEY".into()
        }
    );
}
