//! The DSSE protocol's test vectors (tests/fixtures/dsse-vectors.json, see PROVENANCE.md): our PAE
//! bytes, base64 decoding and strict ed25519 verification against each, with the vector's own
//! trusted keys, threshold and supported payload types.
#![allow(clippy::unwrap_used)]

use cutover_proof::dsse;
use cutover_proof::{SigningKey, VerifyingKey};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/dsse-vectors.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn hex32(text: &str) -> [u8; 32] {
    hex::decode(text).unwrap().try_into().unwrap()
}

/// The vector's named keys, checked to derive the public key the file states (RFC 8032).
fn keys(doc: &Value) -> BTreeMap<String, VerifyingKey> {
    doc["keys"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, k)| {
            assert_eq!(k["algorithm"], "ed25519");
            let signing = SigningKey::from_seed(&hex32(k["seed"].as_str().unwrap()));
            let public = signing.verifying();
            assert_eq!(
                hex::encode(public.to_bytes()),
                k["public"].as_str().unwrap(),
                "key {name}"
            );
            assert_eq!(
                VerifyingKey::from_bytes(&public.to_bytes()).unwrap(),
                public
            );
            (name.clone(), public)
        })
        .collect()
}

/// DSSE (t, n) verification built on `dsse::open`, which tries the signatures under one keyid:
/// each signature is offered to the trusted keys its (unauthenticated) keyid names, or to all of
/// them when it has none.
fn accepts(vector: &Value, keys: &BTreeMap<String, VerifyingKey>) -> bool {
    let envelope = &vector["envelope"];
    let ty = envelope["payloadType"].as_str().unwrap();
    let supported = vector["supportedPayloadTypes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == ty);
    if !supported {
        return false;
    }
    let trusted: Vec<&str> = vector["trustedKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    let mut accepted = BTreeSet::new();
    for sig in envelope["signatures"].as_array().unwrap() {
        for name in &trusted {
            if sig.get("keyid").is_some_and(|id| id != name) {
                continue;
            }
            let key = &keys[*name];
            let single = json!({
                "payloadType": ty,
                "payload": envelope["payload"],
                "signatures": [ { "keyid": key.keyid(), "sig": sig["sig"] } ],
            });
            if dsse::open(key, ty, &single).is_ok() {
                accepted.insert(*name);
            }
        }
    }
    accepted.len() as u64 >= vector["threshold"].as_u64().unwrap()
}

#[test]
fn pae_bytes_match_every_vector() {
    let doc = vectors();
    for v in doc["vectors"].as_array().unwrap() {
        let envelope = &v["envelope"];
        let body = dsse::decode_base64(envelope["payload"].as_str().unwrap()).unwrap();
        // The signed type is the supported one the signature was made over; the swapped-type
        // vector's PAE is that of the original type.
        let signed_type = if v["id"] == "payload-type-swapped" {
            cutover_proof::PAYLOAD_TYPE
        } else {
            envelope["payloadType"].as_str().unwrap()
        };
        assert_eq!(
            hex::encode(dsse::pae(signed_type, &body)),
            v["pae"].as_str().unwrap(),
            "vector {}",
            v["id"]
        );
    }
}

#[test]
fn every_vector_is_accepted_or_rejected_as_expected() {
    let doc = vectors();
    let keys = keys(&doc);
    let all = doc["vectors"].as_array().unwrap();
    assert_eq!(all.len(), 9);
    for v in all {
        let expected = v["expect"] == "accept";
        assert_eq!(accepts(v, &keys), expected, "vector {}", v["id"]);
    }
}

#[test]
fn the_swapped_type_vector_fails_on_its_signature_not_on_its_type() {
    let doc = vectors();
    let keys = keys(&doc);
    let v = doc["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == "payload-type-swapped")
        .unwrap();
    let key = &keys["A"];
    let ty = v["envelope"]["payloadType"].as_str().unwrap();
    let mut envelope = v["envelope"].clone();
    envelope["signatures"][0]["keyid"] = json!(key.keyid());
    let err = dsse::open(key, ty, &envelope).unwrap_err();
    assert!(
        matches!(err, cutover_proof::ProofError::BadSignature { .. }),
        "{err}"
    );
}
