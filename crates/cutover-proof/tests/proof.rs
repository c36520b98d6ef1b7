//! Signing and verifying proofs of delivery, tampering of every kind, and the key files.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use cutover_proof::{
    KeyOrigin, PAYLOAD_TYPE, PREDICATE_TYPE, ProofError, STATEMENT_TYPE, SigningKey, dsse,
    key_paths, load_or_create, load_verifying, open_or_create, sign, statement, subject_sha256,
    verify,
};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;

const DIGEST: &str = "3f2a9c1e5b7d4f6081a2c3d4e5f60718293a4b5c6d7e8f9012a3b4c5d6e7f809";

/// RFC 8032 section 7.1, TEST 1: a fixed key makes envelopes reproducible.
fn fixed_key() -> SigningKey {
    static KEY: std::sync::LazyLock<SigningKey> = std::sync::LazyLock::new(|| {
        SigningKey::from_seed(
            &hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap(),
        )
    });
    KEY.clone()
}

fn other_key() -> SigningKey {
    SigningKey::from_seed(&[7; 32])
}

fn predicate() -> Value {
    json!({
        "environment": "staging",
        "host": "local",
        "deployment": 3,
        "release": { "version": "1.2.0", "commit": "0123456789abcdef0123456789abcdef01234567",
                     "artifact_sha256": DIGEST },
        "slot": "green",
        "pid": 4242,
        "started_at": "2026-01-02T03:04:05Z",
        "port": 9182,
        "reported_version": "1.2.0",
        "checks": [
            { "at": "2026-01-02T03:04:06Z", "kind": "health", "ok": true, "latency_ms": 3, "detail": "200 OK" },
            { "at": "2026-01-02T03:04:06Z", "kind": "version", "ok": true, "latency_ms": 2, "detail": "1.2.0" }
        ],
        "smoke": [],
        "observation": { "from": "2026-01-02T03:04:07Z", "to": "2026-01-02T03:04:37Z", "requests": 120, "errors_5xx": 0 },
        "delivered_at": "2026-01-02T03:04:37Z",
    })
}

fn sample() -> Value {
    statement(
        "hello-1.2.0.tar.zst",
        &format!("sha256:{DIGEST}"),
        predicate(),
    )
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn a_signed_statement_verifies_and_comes_back_unchanged() {
    let key = fixed_key();
    let envelope = sign(&key, &sample());
    assert_eq!(envelope["payloadType"], PAYLOAD_TYPE);
    assert_eq!(envelope["signatures"][0]["keyid"], key.keyid());
    let back = verify(&key.verifying(), &envelope).unwrap();
    assert_eq!(back, sample());
    assert_eq!(subject_sha256(&back), Some(DIGEST));
    assert_eq!(back["_type"], STATEMENT_TYPE);
    assert_eq!(back["predicateType"], PREDICATE_TYPE);
}

/// ed25519 is deterministic and the payload canonical, so the envelope of a fixed statement under
/// a fixed key is a known answer: any change to the signed format shows here.
#[test]
fn the_envelope_of_a_fixed_statement_is_stable() {
    let key = fixed_key();
    assert_eq!(
        key.keyid(),
        hex::encode(sha2_digest(&key.verifying().to_bytes()))
    );
    let statement = statement("a.tar.zst", DIGEST, json!({ "host": "local", "b": [1, 2] }));
    let envelope = sign(&key, &statement);
    let payload = dsse::decode_base64(envelope["payload"].as_str().unwrap()).unwrap();
    insta::assert_snapshot!(String::from_utf8(payload).unwrap(), @r#"{"_type":"https://in-toto.io/Statement/v1","predicate":{"b":[1,2],"host":"local"},"predicateType":"https://cutover.dev/proof-of-delivery/v1","subject":[{"digest":{"sha256":"3f2a9c1e5b7d4f6081a2c3d4e5f60718293a4b5c6d7e8f9012a3b4c5d6e7f809"},"name":"a.tar.zst"}]}"#);
    insta::assert_json_snapshot!("fixed_envelope", envelope);
}

fn sha2_digest(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).to_vec()
}

#[test]
fn an_altered_payload_is_refused() {
    let key = fixed_key();
    let mut envelope = sign(&key, &sample());
    let mut altered = sample();
    altered["predicate"]["reported_version"] = json!("6.6.6");
    envelope["payload"] = json!(b64(&cutover_proof::canonical_json(&altered)));
    let err = verify(&key.verifying(), &envelope).unwrap_err();
    assert!(matches!(err, ProofError::BadSignature { .. }), "{err}");
    assert!(err.to_string().contains("does not verify"), "{err}");
}

#[test]
fn an_altered_signature_is_refused() {
    let key = fixed_key();
    let mut envelope = sign(&key, &sample());
    let mut sig = dsse::decode_base64(envelope["signatures"][0]["sig"].as_str().unwrap()).unwrap();
    sig[10] ^= 0x01;
    envelope["signatures"][0]["sig"] = json!(b64(&sig));
    let err = verify(&key.verifying(), &envelope).unwrap_err();
    assert!(matches!(err, ProofError::BadSignature { .. }), "{err}");

    envelope["signatures"][0]["sig"] = json!(b64(&sig[..63]));
    let err = verify(&key.verifying(), &envelope).unwrap_err();
    assert!(matches!(err, ProofError::SignatureEncoding { .. }), "{err}");
    assert!(err.to_string().contains("63 bytes; expected 64"), "{err}");

    envelope["signatures"][0]["sig"] = json!("not base64!");
    let err = verify(&key.verifying(), &envelope).unwrap_err();
    assert!(matches!(err, ProofError::SignatureEncoding { .. }), "{err}");
}

#[test]
fn an_altered_keyid_or_another_key_is_refused() {
    let key = fixed_key();
    let mut envelope = sign(&key, &sample());
    envelope["signatures"][0]["keyid"] = json!("0".repeat(64));
    let err = verify(&key.verifying(), &envelope).unwrap_err();
    assert!(matches!(err, ProofError::UnknownKeyid { .. }), "{err}");
    assert!(
        err.to_string().contains(&key.keyid()),
        "names the key: {err}"
    );
    assert!(err.hint().is_some());

    // Signed by another key: refused under this project's key.
    let foreign = sign(&other_key(), &sample());
    let err = verify(&key.verifying(), &foreign).unwrap_err();
    assert!(matches!(err, ProofError::UnknownKeyid { .. }), "{err}");
    assert!(err.to_string().contains(&other_key().keyid()), "{err}");

    // Another key's signature presented under this key's keyid: the signature decides.
    let mut forged = foreign;
    forged["signatures"][0]["keyid"] = json!(key.keyid());
    let err = verify(&key.verifying(), &forged).unwrap_err();
    assert!(matches!(err, ProofError::BadSignature { .. }), "{err}");
}

#[test]
fn an_altered_payload_type_is_refused() {
    let key = fixed_key();
    let mut envelope = sign(&key, &sample());
    envelope["payloadType"] = json!("application/json");
    let err = verify(&key.verifying(), &envelope).unwrap_err();
    assert!(matches!(err, ProofError::PayloadType { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "the envelope's payloadType is `application/json`; expected `application/vnd.in-toto+json`"
    );
}

#[test]
fn a_signed_payload_that_is_not_our_statement_is_refused() {
    let key = fixed_key();
    let vk = key.verifying();

    let mut s = sample();
    s["_type"] = json!("https://in-toto.io/Statement/v0.1");
    let err = verify(&vk, &sign(&key, &s)).unwrap_err();
    assert!(matches!(err, ProofError::StatementType { .. }), "{err}");

    let mut s = sample();
    s["predicateType"] = json!("https://slsa.dev/provenance/v1");
    let err = verify(&vk, &sign(&key, &s)).unwrap_err();
    assert!(matches!(err, ProofError::PredicateType { .. }), "{err}");
    assert!(err.to_string().contains("https://slsa.dev/provenance/v1"));

    let mut s = sample();
    s["subject"] = json!([]);
    let err = verify(&vk, &sign(&key, &s)).unwrap_err();
    assert!(matches!(err, ProofError::Subject { .. }), "{err}");

    let mut s = sample();
    s["subject"][0]["digest"]["sha256"] = json!("abc");
    let err = verify(&vk, &sign(&key, &s)).unwrap_err();
    assert!(matches!(err, ProofError::Subject { .. }), "{err}");

    let not_json = dsse::seal(&key, PAYLOAD_TYPE, b"\xff not json");
    let err = verify(&vk, &not_json).unwrap_err();
    assert!(matches!(err, ProofError::Statement { .. }), "{err}");
}

#[test]
fn malformed_envelopes_are_refused_with_what_is_missing() {
    let vk = fixed_key().verifying();
    for (envelope, needle) in [
        (json!([]), "expected a JSON object"),
        (json!({}), "`payloadType` is missing"),
        (json!({"payloadType": PAYLOAD_TYPE}), "`payload` is missing"),
        (
            json!({"payloadType": PAYLOAD_TYPE, "payload": ""}),
            "`signatures` is missing",
        ),
        (
            json!({"payloadType": PAYLOAD_TYPE, "payload": "", "signatures": [{}]}),
            "signature 0 has no `sig`",
        ),
    ] {
        let err = verify(&vk, &envelope).unwrap_err();
        assert!(matches!(err, ProofError::Envelope { .. }), "{err}");
        assert!(err.to_string().contains(needle), "{err} / {needle}");
    }
    let err = verify(
        &vk,
        &json!({"payloadType": PAYLOAD_TYPE, "payload": "%%%", "signatures": []}),
    )
    .unwrap_err();
    assert!(matches!(err, ProofError::PayloadEncoding { .. }), "{err}");
    let err = verify(
        &vk,
        &json!({"payloadType": PAYLOAD_TYPE, "payload": "", "signatures": []}),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "no signature by key {} in the envelope (keyids present: none)",
            vk.keyid()
        )
    );
}

// --- key files ---

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_key_is_created_once_0600_and_reloaded_identical() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join(".cutover");
    let (private, public) = key_paths(&state);
    assert_eq!(private, state.join("keys/proof.ed25519"));
    assert_eq!(public, state.join("keys/proof.ed25519.pub"));

    let (key, origin) = open_or_create(&state).unwrap();
    assert_eq!(origin, KeyOrigin::Created);
    assert_eq!(mode(&private), 0o600);
    assert_eq!(mode(&state.join("keys")), 0o700);
    let private_text = std::fs::read_to_string(&private).unwrap();
    assert!(
        private_text.starts_with("-----BEGIN PRIVATE KEY-----\n"),
        "{private_text}"
    );
    let public_text = std::fs::read_to_string(&public).unwrap();
    assert!(
        public_text.starts_with("-----BEGIN PUBLIC KEY-----\n"),
        "{public_text}"
    );
    assert_eq!(public_text, key.verifying().to_pem());
    assert!(!format!("{key:?}").contains(private_text.lines().nth(1).unwrap()));

    let (again, origin) = open_or_create(&state).unwrap();
    assert_eq!(origin, KeyOrigin::Loaded);
    assert_eq!(again.keyid(), key.keyid());
    assert_eq!(load_or_create(&state).unwrap().keyid(), key.keyid());
    assert_eq!(
        std::fs::read_to_string(&private).unwrap(),
        private_text,
        "not rewritten"
    );
    let vk = load_verifying(&state).unwrap();
    assert_eq!(vk, key.verifying());
    // A proof signed with the loaded key verifies with the loaded public key.
    verify(&vk, &sign(&again, &sample())).unwrap();
    // No temporary files are left behind.
    let names: Vec<_> = std::fs::read_dir(state.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn a_missing_public_key_is_written_again_and_a_foreign_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = load_or_create(dir.path()).unwrap();
    let (private, public) = key_paths(dir.path());
    std::fs::remove_file(&public).unwrap();
    assert_eq!(load_or_create(dir.path()).unwrap().keyid(), key.keyid());
    assert_eq!(load_verifying(dir.path()).unwrap(), key.verifying());

    std::fs::write(&public, other_key().verifying().to_pem()).unwrap();
    let err = load_or_create(dir.path()).unwrap_err();
    assert!(matches!(err, ProofError::KeyMismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&public.display().to_string()), "{text}");
    assert!(text.contains(&private.display().to_string()), "{text}");
}

#[test]
fn a_corrupt_key_file_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    load_or_create(dir.path()).unwrap();
    let (private, public) = key_paths(dir.path());

    std::fs::write(
        &private,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = load_or_create(dir.path()).unwrap_err();
    assert!(matches!(err, ProofError::KeyFile { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "`{}` is not a valid PKCS#8 PEM ed25519 private key: ",
            private.display()
        )),
        "{text}"
    );
    assert!(err.hint().unwrap().contains("backup"));

    std::fs::write(&private, [0xff, 0xfe, 0x00]).unwrap();
    let err = load_or_create(dir.path()).unwrap_err();
    assert!(err.to_string().contains("not UTF-8"), "{err}");
    assert!(
        err.to_string().contains(&private.display().to_string()),
        "{err}"
    );

    std::fs::write(&public, "garbage\n").unwrap();
    let err = load_verifying(dir.path()).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "`{}` is not a valid SubjectPublicKeyInfo PEM ed25519 public key",
            public.display()
        )),
        "{err}"
    );
}

#[test]
fn a_private_key_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    load_or_create(dir.path()).unwrap();
    let (private, _) = key_paths(dir.path());
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = load_or_create(dir.path()).unwrap_err();
    assert!(
        matches!(err, ProofError::KeyPermissions { mode: 0o644, .. }),
        "{err}"
    );
    assert!(err.hint().unwrap().contains("chmod 600"), "{err:?}");
}

#[test]
fn no_key_yet_says_to_run_init() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_verifying(dir.path()).unwrap_err();
    assert!(matches!(err, ProofError::MissingKey { .. }), "{err}");
    assert!(err.to_string().contains("proof.ed25519.pub"), "{err}");
    assert!(err.hint().unwrap().contains("cutover init"));
}

#[test]
fn concurrent_creation_ends_with_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || load_or_create(&path).unwrap().keyid())
        })
        .collect();
    let ids: std::collections::BTreeSet<_> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(
        load_verifying(&path).unwrap().keyid(),
        *ids.first().unwrap()
    );
}

// --- properties ---

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1000i32..1000).prop_map(|n| Value::from(f64::from(n) / 4.0)),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::vec((".{0,8}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Envelope-shaped values with random parts, some of them under this key's keyid.
fn arb_envelope(keyid: String) -> impl Strategy<Value = Value> {
    let ty = prop_oneof![Just(Value::from(PAYLOAD_TYPE)), arb_json()];
    let payload = prop_oneof!["[A-Za-z0-9+/=_-]{0,40}".prop_map(Value::from), arb_json()];
    let sig = (
        prop_oneof![Just(Value::from(keyid)), arb_json()],
        prop_oneof!["[A-Za-z0-9+/=_-]{0,100}".prop_map(Value::from), arb_json()],
    )
        .prop_map(|(keyid, sig)| json!({ "keyid": keyid, "sig": sig }));
    (ty, payload, prop::collection::vec(sig, 0..3)).prop_map(
        |(ty, payload, sigs)| json!({ "payloadType": ty, "payload": payload, "signatures": sigs }),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn verify_never_panics_on_arbitrary_json(value in arb_json()) {
        prop_assert!(verify(&fixed_key().verifying(), &value).is_err());
    }

    #[test]
    fn verify_never_panics_on_arbitrary_envelopes(envelope in arb_envelope(fixed_key().keyid())) {
        // Nothing was signed, so nothing can be accepted.
        prop_assert!(verify(&fixed_key().verifying(), &envelope).is_err());
    }

}

// Signing and verifying are slow in unoptimised test builds: fewer cases for the properties that
// sign every case.
proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn verify_never_panics_on_arbitrary_signed_bytes(body in prop::collection::vec(any::<u8>(), 0..200)) {
        let key = fixed_key();
        let envelope = dsse::seal(&key, PAYLOAD_TYPE, &body);
        match verify(&key.verifying(), &envelope) {
            // Accepted only when the bytes really are a statement of ours.
            Ok(statement) => {
                prop_assert_eq!(&statement["_type"], STATEMENT_TYPE);
                prop_assert_eq!(&statement["predicateType"], PREDICATE_TYPE);
            }
            Err(e) => prop_assert!(matches!(
                e,
                ProofError::Statement { .. } | ProofError::StatementType { .. }
                    | ProofError::PredicateType { .. } | ProofError::Subject { .. }
            ), "{}", e),
        }
    }

    #[test]
    fn any_predicate_round_trips(predicate in arb_json()) {
        let key = fixed_key();
        let s = statement("x", DIGEST, predicate);
        prop_assert_eq!(verify(&key.verifying(), &sign(&key, &s)).unwrap(), s);
    }

    #[test]
    fn any_single_byte_change_of_the_payload_is_refused(index in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let key = fixed_key();
        let mut envelope = sign(&key, &sample());
        let mut body = dsse::decode_base64(envelope["payload"].as_str().unwrap()).unwrap();
        let i = index.index(body.len());
        body[i] ^= flip;
        envelope["payload"] = json!(b64(&body));
        let err = verify(&key.verifying(), &envelope).unwrap_err();
        prop_assert!(matches!(err, ProofError::BadSignature { .. }), "{}", err);
    }

    #[test]
    fn any_single_character_change_of_the_encoded_payload_is_refused_or_harmless(
        index in any::<prop::sample::Index>(),
        replacement in any::<u8>(),
    ) {
        let key = fixed_key();
        let mut envelope = sign(&key, &sample());
        let mut text = envelope["payload"].as_str().unwrap().as_bytes().to_vec();
        let i = index.index(text.len());
        prop_assume!(text[i] != replacement && replacement.is_ascii());
        text[i] = replacement;
        envelope["payload"] = json!(String::from_utf8(text).unwrap());
        // Either alphabet may encode the same bytes ('+' and '-' alike): what is accepted must
        // be exactly what was signed.
        if let Ok(statement) = verify(&key.verifying(), &envelope) {
            prop_assert_eq!(statement, sample());
        }
    }
}
