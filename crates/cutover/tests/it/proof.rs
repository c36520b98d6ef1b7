//! `cutover proof ENV [--verify]`: proofs of delivery recorded through the store API (a release,
//! a live deployment, a proof signed with the key `cutover init` made), then shown and checked
//! through the real command line, and refused once tampered with.

use crate::support::{Project, hermetic_env};
use cutover_store::{Audit, Change, NewDeployment, NewProof, Release, Store};
use serde_json::{Value, json};
use std::sync::Arc;

const DIGEST: &str = "3f2a9c1e5b7d4f6081a2c3d4e5f60718293a4b5c6d7e8f9012a3b4c5d6e7f809";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn at(text: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn block<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn store(p: &Project) -> Arc<dyn Store> {
    block(cutover_store::open_sqlite(
        &p.path().join(".cutover/state.db"),
    ))
    .unwrap()
}

fn state_dir(p: &Project) -> std::path::PathBuf {
    p.path().join(".cutover")
}

/// What the deploy engine signs for a host (see cutover-deploy's `proof::predicate`).
fn predicate(host: &str, deployment: i64) -> Value {
    json!({
        "environment": "staging",
        "host": host,
        "deployment": deployment,
        "release": { "version": "1.2.0", "commit": COMMIT, "artifact_sha256": format!("sha256:{DIGEST}") },
        "slot": "green",
        "pid": 4242,
        "started_at": "2026-01-02T03:04:05Z",
        "port": 18082,
        "reported_version": "1.2.0",
        "checks": [
            { "at": "2026-01-02T03:04:06Z", "kind": "health", "ok": false, "latency_ms": 1.5, "detail": "connection refused" },
            { "at": "2026-01-02T03:04:07Z", "kind": "health", "ok": true, "latency_ms": 2.0, "detail": "200" },
            { "at": "2026-01-02T03:04:07Z", "kind": "health", "ok": true, "latency_ms": 1.0, "detail": "200" },
            { "at": "2026-01-02T03:04:08Z", "kind": "version", "ok": true, "latency_ms": 1.0, "detail": "1.2.0" }
        ],
        "smoke": [ { "argv": ["curl", "-f", "{url}/health"], "ok": true, "exit": 0 } ],
        "observation": { "from": "2026-01-02T03:04:08Z", "to": "2026-01-02T03:04:38Z", "requests": 120, "errors_5xx": 0 },
        "delivered_at": "2026-01-02T03:04:38Z",
    })
}

/// A signed proof of `host`'s delivery in `deployment`, recorded as the engine records it.
fn record_proof(
    store: &dyn Store,
    key: &cutover_proof::SigningKey,
    deployment: i64,
    host: &str,
    digest: &str,
) -> i64 {
    let statement = cutover_proof::statement(
        "hello-1.2.0.tar.zst",
        &format!("sha256:{digest}"),
        predicate(host, deployment),
    );
    let envelope = cutover_proof::sign(key, &statement);
    let audit = Audit::new(
        "tester@example.com",
        "proof.record",
        format!("deployment:{deployment}"),
        json!({ "environment": "staging", "host": host, "version": "1.2.0",
                "artifact_sha256": digest, "keyid": key.keyid() }),
    );
    let applied = block(store.apply(
        &[Change::InsertProof(NewProof {
            deployment_id: deployment,
            host: host.to_owned(),
            statement,
            envelope,
            created_at: at("2026-01-02T03:04:38Z"),
        })],
        &audit,
    ))
    .unwrap();
    applied.id(0).unwrap()
}

/// An initialised project (with its proof key) where release 1.2.0 went live in staging with a
/// proof from host `local`. Returns the deployment id.
fn delivered() -> (Project, i64) {
    let p = Project::new();
    p.cutover(&["init"]).success();
    p.write(
        "cutover.toml",
        "[project]\nname = \"hello\"\n\n[service]\nstart = [\"true\"]\n\n\
         [environments.staging]\nhosts = [\"local\"]\nstrategy = \"blue-green\"\nlisten = \"127.0.0.1:18080\"\n",
    );
    let store = store(&p);
    // Built from JSON so that fields the store adds later (all optional) need no change here.
    let release: Release = serde_json::from_value(json!({
        "version": "1.2.0",
        "tag": "v1.2.0",
        "commit": COMMIT,
        "kind": "normal",
        "notes": "",
        "changes": [],
        "artifact_digest": format!("sha256:{DIGEST}"),
        "bom": null,
        "created_at": "2026-01-02T03:00:00Z",
    }))
    .unwrap();
    block(store.apply(
        &[Change::InsertRelease(release)],
        &Audit::new(
            "tester@example.com",
            "release.created",
            "release/1.2.0",
            json!({}),
        ),
    ))
    .unwrap();
    let created = block(store.apply(
        &[Change::InsertDeployment(NewDeployment {
            environment: "staging".to_owned(),
            release_version: "1.2.0".to_owned(),
            strategy: "blue-green".to_owned(),
            state: "queued".to_owned(),
            trigger: "cli".to_owned(),
            actor: "tester@example.com".to_owned(),
            reverts: None,
            created_at: at("2026-01-02T03:04:00Z"),
        })],
        &Audit::new(
            "tester@example.com",
            "deployment.create",
            "deployment:new",
            json!({ "environment": "staging", "version": "1.2.0" }),
        ),
    ))
    .unwrap();
    let id = created.id(0).unwrap();
    block(store.apply(
        &[Change::UpdateDeployment {
            id,
            expected_state: Some("queued".to_owned()),
            state: "live".to_owned(),
            at: at("2026-01-02T03:04:38Z"),
            finished_at: Some(at("2026-01-02T03:04:38Z")),
        }],
        &Audit::new(
            "tester@example.com",
            "deployment.transition",
            format!("deployment:{id}"),
            json!({ "environment": "staging", "version": "1.2.0", "from": "queued", "to": "live" }),
        ),
    ))
    .unwrap();
    let key = cutover_proof::load_or_create(&state_dir(&p)).unwrap();
    record_proof(store.as_ref(), &key, id, "local", DIGEST);
    block(store.close());
    (p, id)
}

#[test]
fn a_live_deployments_proof_is_shown_and_verifies() {
    let (p, id) = delivered();
    let run = p.cutover(&["proof", "staging", "--verify"]);
    run.success();
    insta::assert_snapshot!(run.stdout, @r"
    proof of delivery: staging, deployment 1 of 1.2.0 (live since 2026-01-02T03:04:38Z)

    host local
      release     1.2.0  commit 0123456789ab
      artifact    hello-1.2.0.tar.zst  sha256:[HASH]
      slot        green  pid 4242  port 18082  started 2026-01-02T03:04:05Z
      app version 1.2.0 (as the app reported it)
      checks      3 of 4 ok (health 3, version 1)
                  2026-01-02T03:04:06Z health failed: connection refused
      smoke       1 of 1 ok
      observed    120 requests, 0 5xx, 2026-01-02T03:04:08Z to 2026-01-02T03:04:38Z
      delivered   2026-01-02T03:04:38Z
      signed by   key [HASH]
      verified    ok: signed with this project's key; the subject is the release's artifact

    1 of 1 proofs verified
    ");

    // The JSON document carries the statement and the envelope, and says they verified.
    let run = p.cutover(&["--json", "proof", "staging", "--verify"]);
    run.success();
    let doc = run.json();
    assert_eq!(doc["deployment"]["id"], id);
    assert_eq!(doc["verified"], true);
    assert_eq!(doc["proofs"][0]["host"], "local");
    assert_eq!(doc["proofs"][0]["verified"], true);
    assert_eq!(
        doc["proofs"][0]["statement"]["predicateType"],
        cutover_proof::PREDICATE_TYPE
    );
    assert_eq!(
        doc["proofs"][0]["envelope"]["payloadType"],
        cutover_proof::PAYLOAD_TYPE
    );
    // The envelope printed can be checked by anyone with the public key.
    let key = cutover_proof::load_verifying(&state_dir(&p)).unwrap();
    let doc = raw_json(&p, &["--json", "proof", "staging"]);
    let statement = cutover_proof::verify(&key, &doc["proofs"][0]["envelope"]).unwrap();
    assert_eq!(cutover_proof::subject_sha256(&statement), Some(DIGEST));

    // Without --verify nothing is checked, and the key is not needed.
    let run = p.cutover(&["--json", "proof", "staging"]);
    run.success();
    assert_eq!(run.json()["verified"], Value::Null);

    // --version and --host select the same proof.
    p.cutover(&[
        "proof",
        "staging",
        "--version",
        "1.2.0",
        "--host",
        "local",
        "--verify",
    ])
    .success();
}

#[test]
fn an_envelope_altered_in_the_store_fails_verification() {
    let (p, _) = delivered();
    let store = store(&p);
    let proof = block(store.list_proofs(1)).unwrap().remove(0);
    block(store.close());
    // Claim the app reported another version, keeping the original signature.
    let mut statement = proof.statement.clone();
    statement["predicate"]["reported_version"] = json!("9.9.9");
    let mut envelope = proof.envelope.clone();
    envelope["payload"] = json!(cutover_proof::dsse::encode_base64(
        &cutover_proof::canonical_json(&statement)
    ));
    tamper(&p, proof.id, &envelope);

    let run = p.cutover(&["proof", "staging", "--verify"]);
    run.code(1);
    insta::assert_snapshot!(run.stderr, @r"
    error: the proof of delivery from host `local` does not verify: the signature by key [HASH] does not verify: the payload or its type was altered, or another key signed it
    hint: a proof that does not verify was altered after it was signed, was signed with another key, or is about another artifact; do not trust this deployment's record until you know which
    ");
    assert!(
        run.stdout
            .contains("verified    FAILED: the signature by key"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("0 of 1 proofs verified"),
        "{}",
        run.stdout
    );

    let run = p.cutover(&["--json", "proof", "staging", "--verify"]);
    run.code(1);
    let doc = run.json();
    assert_eq!(doc["verified"], false);
    assert_eq!(doc["proofs"][0]["verified"], false);
    assert!(
        doc["proofs"][0]["error"]
            .as_str()
            .unwrap()
            .contains("does not verify")
    );
}

#[test]
fn a_stored_statement_that_differs_from_the_signed_one_fails_verification() {
    let (p, _) = delivered();
    let store = store(&p);
    let proof = block(store.list_proofs(1)).unwrap().remove(0);
    block(store.close());
    let mut statement = proof.statement.clone();
    statement["predicate"]["slot"] = json!("blue");
    tamper_column(&p, proof.id, "statement", &statement);
    // Shown as stored (blue), refused as signed (green).
    let run = p.cutover(&["proof", "staging", "--verify"]);
    run.code(1);
    assert!(run.stdout.contains("slot        blue"), "{}", run.stdout);
    assert!(
        run.stderr.starts_with(
            "error: the proof of delivery from host `local` does not verify: \
             the stored statement differs from the signed one\n"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn a_proof_signed_with_another_key_fails_verification_naming_its_host() {
    let (p, id) = delivered();
    let store = store(&p);
    let stranger = cutover_proof::SigningKey::from_seed(&[9; 32]);
    record_proof(store.as_ref(), &stranger, id, "h2", DIGEST);
    block(store.close());

    let run = p.cutover(&["proof", "staging", "--verify"]);
    run.code(1);
    assert!(
        run.stderr.starts_with(
            "error: the proof of delivery from host `h2` does not verify: \
             no signature by key [HASH] in the envelope (keyids present: [HASH])\n"
        ),
        "{}",
        run.stderr
    );
    // The keyids named are this project's and the stranger's.
    let doc = raw_json(&p, &["--json", "proof", "staging", "--verify"]);
    assert_eq!(
        doc["proofs"][1]["error"],
        format!(
            "no signature by key {} in the envelope (keyids present: {})",
            cutover_proof::load_verifying(&state_dir(&p))
                .unwrap()
                .keyid(),
            stranger.keyid()
        )
    );
    // The genuine proof still verifies on its own.
    assert!(
        run.stdout.contains("1 of 2 proofs verified"),
        "{}",
        run.stdout
    );
    p.cutover(&["proof", "staging", "--verify", "--host", "local"])
        .success();
    p.cutover(&["proof", "staging", "--verify", "--host", "h2"])
        .code(1);
}

#[test]
fn a_signed_proof_of_another_artifact_or_host_fails_verification() {
    let (p, id) = delivered();
    let store = store(&p);
    let key = cutover_proof::load_or_create(&state_dir(&p)).unwrap();
    let other_digest = "ab".repeat(32);
    record_proof(store.as_ref(), &key, id, "h2", &other_digest);
    // A genuine proof of `local` filed under host `h3`.
    let proof = block(store.list_proofs(id)).unwrap().remove(0);
    block(store.apply(
        &[Change::InsertProof(NewProof {
            deployment_id: id,
            host: "h3".to_owned(),
            statement: proof.statement,
            envelope: proof.envelope,
            created_at: at("2026-01-02T03:04:39Z"),
        })],
        &Audit::new(
            "tester@example.com",
            "proof.record",
            format!("deployment:{id}"),
            json!({}),
        ),
    ))
    .unwrap();
    block(store.close());

    let run = p.cutover(&["proof", "staging", "--verify"]);
    run.code(1);
    insta::assert_snapshot!(run.stderr, @r#"
    error: the proof of delivery from host `h2` does not verify: its subject sha256:[HASH] is not the artifact of release 1.2.0 (sha256:[HASH])
    caused by: host `h3`: it was signed for host "local", but is filed under host "h3"
    hint: a proof that does not verify was altered after it was signed, was signed with another key, or is about another artifact; do not trust this deployment's record until you know which
    "#);
}

#[test]
fn missing_deployments_proofs_and_keys_are_clear_errors() {
    let (p, _) = delivered();
    let run = p.cutover(&["proof", "production"]);
    run.code(2);
    assert_eq!(
        run.stderr,
        "error: unknown environment `production`\nhint: environments: staging\n"
    );
    let run = p.cutover(&["proof", "staging", "--version", "2.0.0"]);
    run.code(1);
    assert!(
        run.stderr
            .starts_with("error: release 2.0.0 was never deployed to staging\n"),
        "{}",
        run.stderr
    );
    let run = p.cutover(&["proof", "staging", "--host", "nowhere"]);
    run.code(1);
    assert_eq!(
        run.stderr,
        "error: deployment 1 of 1.2.0 to staging (live) has no proof of delivery from host `nowhere`\n\
         hint: hosts with a proof: local\n"
    );

    std::fs::remove_file(p.path().join(".cutover/keys/proof.ed25519.pub")).unwrap();
    let run = p.cutover(&["proof", "staging", "--verify"]);
    run.code(2);
    assert!(
        run.stderr.contains("proof.ed25519.pub` does not exist")
            && run.stderr.contains("hint: run `cutover init`"),
        "{}",
        run.stderr
    );
    // init writes the public key again from the private one, and keeps the key.
    let before = std::fs::read(p.path().join(".cutover/keys/proof.ed25519")).unwrap();
    let init = p.cutover(&["init", "--force"]);
    init.success();
    assert!(
        init.stderr
            .contains("Kept proof key .cutover/keys/proof.ed25519 (keyid [HASH])"),
        "{}",
        init.stderr
    );
    assert_eq!(
        std::fs::read(p.path().join(".cutover/keys/proof.ed25519")).unwrap(),
        before
    );
    // (init --force replaced the configuration; the deployment records are still there.)
    p.cutover(&["proof", "staging", "--verify"]).success();
}

#[test]
fn init_creates_the_proof_key_once() {
    let p = Project::new();
    let doc = raw_json(&p, &["--json", "init"]);
    let keyid = doc["proof_key"]["keyid"].as_str().unwrap().to_owned();
    assert_eq!(doc["proof_key"]["created"], true);
    let key = cutover_proof::load_verifying(&state_dir(&p)).unwrap();
    assert_eq!(key.keyid(), keyid);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(p.path().join(".cutover/keys/proof.ed25519"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let again = raw_json(&p, &["--json", "init", "--force"]);
    assert_eq!(again["proof_key"]["created"], false);
    assert_eq!(again["proof_key"]["keyid"], keyid.as_str());
    // The audit log records which key the project signs with.
    let audit = raw_json(&p, &["--json", "audit"]);
    let events = audit["events"].as_array().unwrap().clone();
    assert_eq!(events[0]["payload"]["proof_keyid"], keyid.as_str());
}

/// The JSON document of a successful run, not normalised (keyids stay as they are).
fn raw_json(p: &Project, args: &[&str]) -> Value {
    let out = hermetic_env(&mut std::process::Command::new(env!(
        "CARGO_BIN_EXE_cutover"
    )))
    .current_dir(p.path())
    .args(args)
    .output()
    .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}\n{}", String::from_utf8_lossy(&out.stderr)))
}

/// Rewrites a stored envelope behind cutover's back.
fn tamper(p: &Project, proof_id: i64, envelope: &Value) {
    tamper_column(p, proof_id, "envelope", envelope);
}

fn tamper_column(p: &Project, proof_id: i64, column: &str, value: &Value) {
    let url = format!("sqlite:{}", p.path().join(".cutover/state.db").display());
    let text = value.to_string();
    let sql = format!("UPDATE proofs SET {column} = ? WHERE id = ?");
    block(async move {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let done = sqlx::query(&sql)
            .bind(text)
            .bind(proof_id)
            .execute(&mut conn)
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 1);
    });
}
