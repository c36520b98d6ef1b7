//! `cutover db …` on a real SQLite application database: plan, migrate, status, a syntax error
//! located in its file, rollback refused across an irreversible migration, recovery points,
//! restore (which wants `--yes`) and the drill.

use crate::support::{Project, Run};

const CONFIG: &str = r#"[project]
name = "hello"

[service]
start = ["{release_dir}/app", "--port", "{port}"]

[environments.staging]
hosts = ["local"]
listen = "127.0.0.1:18080"

[database]
engine = "sqlite"
url = { env = "APP_DATABASE_URL" }

[database.drill]
query = "SELECT body FROM notes"
"#;

const ENV: &[(&str, &str)] = &[("APP_DATABASE_URL", "app.db")];

fn db(p: &Project, args: &[&str]) -> Run {
    let mut all = vec!["db"];
    all.extend_from_slice(args);
    p.cutover_with(&all, ENV)
}

#[test]
fn migrations_recovery_points_and_refusals() {
    let p = Project::new();
    p.write("cutover.toml", CONFIG);
    p.write(
        "migrations/0001_notes.up.sql",
        "-- cutover:phase expand\nCREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);\nINSERT INTO notes (body) VALUES ('first');\n",
    );
    p.write("migrations/0001_notes.down.sql", "DROP TABLE notes;\n");
    p.write(
        "migrations/0002_purge.up.sql",
        "-- cutover:phase contract\n-- cutover:irreversible\nDELETE FROM notes WHERE body = 'gone';\n",
    );

    let plan = db(&p, &["plan", "--json"]);
    plan.success();
    let plan = plan.json();
    assert_eq!(plan["expand"][0]["name"], "notes");
    assert_eq!(plan["contract"][0]["irreversible"], true);

    let m = db(&p, &["migrate", "--phase", "expand", "--json"]);
    m.success();
    assert_eq!(m.json()["applied"], serde_json::json!(["0001_notes"]));
    db(&p, &["migrate"]).success();
    let status = db(&p, &["status", "--json"]);
    status.success();
    let status = status.json();
    assert_eq!(status["applied"].as_array().unwrap().len(), 2);
    assert_eq!(status["pending"].as_array().unwrap().len(), 0);

    // A syntax error: the database's message, the file and the line; nothing applied.
    p.write(
        "migrations/0003_broken.up.sql",
        "-- cutover:phase expand\nCREATE TABLE half (x INTEGER);\nCREATE TABEL other (y INTEGER);\n",
    );
    let bad = db(&p, &["migrate"]);
    bad.code(1);
    insta::assert_snapshot!(bad.stderr, @r#"
    error: [PROJECT]/migrations/0003_broken.up.sql:3:8: migration 0003_broken failed: near "TABEL": syntax error (nothing of it was applied)
    hint: fix the migration and run it again; the database is as it was before it
    "#);
    std::fs::remove_file(p.path().join("migrations/0003_broken.up.sql")).unwrap();

    // Rolling back across the irreversible purge is refused; nothing changes.
    let refused = db(&p, &["rollback", "--to", "0"]);
    refused.code(2);
    assert!(
        refused
            .stderr
            .contains("irreversible migration(s) 0002_purge"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("--restore-recovery-point"));
    assert_eq!(
        db(&p, &["status", "--json"]).json()["applied"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Recovery point, drill, restore.
    let snap = db(&p, &["snapshot", "staging", "--json"]);
    snap.success();
    let id = snap.json()["id"].as_str().unwrap().to_owned();
    let drill = db(&p, &["drill", "staging", "--json"]);
    drill.success();
    assert_eq!(drill.json()["rows"], 1);
    let refuse = db(&p, &["restore", "staging"]);
    refuse.code(2);
    assert!(refuse.stderr.contains("add --yes"), "{}", refuse.stderr);
    let audit = p.cutover(&["audit", "--json"]);
    assert!(
        audit.stdout.contains("db.recovery_point"),
        "{}",
        audit.stdout
    );
    assert!(audit.stdout.contains("db.drill"));
    db(&p, &["restore", "staging", "--yes", "--id", &id]).success();

    // A tampered recovery point is refused before anything is restored.
    let file = p
        .path()
        .join(".cutover/recovery-points/staging")
        .join(format!("{id}.sqlite"));
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[100] ^= 0x55;
    std::fs::write(&file, bytes).unwrap();
    let tampered = db(&p, &["restore", "staging", "--yes"]);
    tampered.code(2);
    assert!(
        tampered.stderr.contains("its digest no longer matches"),
        "{}",
        tampered.stderr
    );
}

#[test]
fn without_a_database_section_db_says_what_to_add() {
    let p = Project::new();
    p.write("cutover.toml", "[project]\nname = \"hello\"\n");
    let run = db(&p, &["status"]);
    run.code(2);
    assert!(
        run.stderr
            .contains("cutover.toml has no [database] section"),
        "{}",
        run.stderr
    );
}
