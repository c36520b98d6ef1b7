//! Secrets are references; their values never show in `Debug`, errors or `config show`.

use std::path::Path;

use cutover_config::{Secret, load_str};

const SRC: &str = r#"
[project]
name = "hello"

[service]
start = ["./hello"]
secrets = { API_KEY = { env = "HELLO_API_KEY" }, TLS = { file = "tls.key" } }

[[notify.slack]]
url = { env = "SLACK_URL" }

[notify.email]
smtp = { host = "smtp.example.com", password = { env = "SMTP_PASSWORD" } }
from = "cutover@example.com"
to = ["ops@example.com"]

[[notify.webhook]]
url = "https://user:hunter2@hooks.example.com/x"

[database]
engine = "postgres"
url = { env = "DATABASE_URL" }
"#;

const VALUES: &[(&str, &str)] = &[
    ("HELLO_API_KEY", "sk-live-123456"),
    ("SLACK_URL", "https://hooks.slack.com/services/T0/B0/sekrit"),
    ("SMTP_PASSWORD", "p4ssw0rd"),
    ("DATABASE_URL", "postgres://app:dbpass@db/app"),
];

fn lookup(k: &str) -> Option<String> {
    VALUES
        .iter()
        .find(|(n, _)| *n == k)
        .map(|(_, v)| v.to_string())
}

#[test]
fn debug_and_show_never_contain_secret_values() {
    let c = load_str(SRC, Path::new("cutover.toml"), VALUES).unwrap();
    let debug = format!("{c:?} {c:#?}");
    let shown = serde_json::to_string(&c.redacted_json()).unwrap();
    for (_, value) in VALUES {
        assert!(!debug.contains(value), "Debug leaks {value}");
        assert!(!shown.contains(value), "config show leaks {value}");
    }
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(
        shown.contains("https://user:***@hooks.example.com/x"),
        "{shown}"
    );
    assert!(shown.contains(r#"{"env":"SLACK_URL"}"#), "{shown}");
    insta::assert_json_snapshot!("redacted_show", c.redacted_json());
}

#[test]
fn resolved_values_are_redacted_in_debug() {
    let c = load_str(SRC, Path::new("cutover.toml"), VALUES).unwrap();
    let secret = &c.service.as_ref().unwrap().secrets["API_KEY"];
    let value = secret.resolve(Path::new("."), &lookup).unwrap();
    assert_eq!(value.expose(), "sk-live-123456");
    assert_eq!(format!("{value:?}"), "SecretValue(***)");
    assert_eq!(secret.reference(), "env:HELLO_API_KEY");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.key"), "-----KEY-----\n").unwrap();
    let file = &c.service.as_ref().unwrap().secrets["TLS"];
    assert_eq!(
        file.resolve(dir.path(), &lookup).unwrap().expose(),
        "-----KEY-----"
    );

    let missing = Secret::Env { env: "NOPE".into() }
        .resolve(Path::new("."), &lookup)
        .unwrap_err();
    assert_eq!(
        missing.to_string(),
        "secret environment variable NOPE is not set"
    );
    let err = Secret::File {
        file: "absent".into(),
    }
    .resolve(dir.path(), &lookup)
    .unwrap_err();
    assert!(err.to_string().contains("absent"));
}

#[test]
fn inline_secret_values_are_refused_without_echoing_them() {
    let src =
        "[project]\nname = \"x\"\n[[notify.slack]]\nurl = \"https://hooks.slack.com/T/B/sekrit\"\n";
    let err = crate::load(src).unwrap_err();
    assert!(err.to_string().contains("never written inline"), "{err}");
    assert!(err.hint().unwrap().contains("{ env = "));
}
