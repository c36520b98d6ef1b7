//! Verification and parsing over the documented payload shapes (fixtures in tests/fixtures).
#![allow(clippy::unwrap_used)] // Tests panic on purpose: a failure here is a failed test.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use cutover_webhooks::{
    GITHUB_DELIVERY, GITHUB_EVENT, GITHUB_SIGNATURE, GITLAB_EVENT, GITLAB_EVENT_UUID, GITLAB_TOKEN,
    IDEMPOTENCY_KEY, Provider, Received, WebhookError, receive,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET: &[u8] = b"It's a Secret to Everybody";

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn github_signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn github(event: &str, body: &[u8]) -> HeaderMap {
    let sig = github_signature(SECRET, body);
    headers(&[
        (GITHUB_EVENT, event),
        (GITHUB_DELIVERY, "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        (GITHUB_SIGNATURE, &sig),
        ("Content-Type", "application/json"),
    ])
}

fn gitlab(event: &str) -> HeaderMap {
    headers(&[
        (GITLAB_EVENT, event),
        (GITLAB_TOKEN, std::str::from_utf8(SECRET).unwrap()),
        (GITLAB_EVENT_UUID, "13792a34-cac6-4fda-95a8-c58e00a3954e"),
    ])
}

#[test]
fn the_documented_github_signature_example_verifies() {
    // GitHub Docs, "Validating webhook deliveries": secret "It's a Secret to Everybody",
    // payload "Hello, World!", expected signature below.
    let body = b"Hello, World!";
    let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_eq!(github_signature(SECRET, body), expected);
    let h = headers(&[
        (GITHUB_SIGNATURE, expected),
        (GITHUB_EVENT, "ping"),
        (GITHUB_DELIVERY, "d"),
    ]);
    assert!(cutover_webhooks::verify_github(SECRET, &h, body).is_ok());
}

/// Every fixture with its headers and what it must parse to, as a snapshot.
#[test]
fn fixtures_parse_to_the_expected_events() {
    let cases: [(&str, Provider, &str); 7] = [
        (
            "github/pull_request_merged.json",
            Provider::GitHub,
            "pull_request",
        ),
        ("github/push_main.json", Provider::GitHub, "push"),
        ("github/push_tag.json", Provider::GitHub, "push"),
        ("github/ping.json", Provider::GitHub, "ping"),
        (
            "gitlab/merge_request_merged.json",
            Provider::GitLab,
            "Merge Request Hook",
        ),
        (
            "gitlab/merge_request_opened.json",
            Provider::GitLab,
            "Merge Request Hook",
        ),
        ("gitlab/push_main.json", Provider::GitLab, "Push Hook"),
    ];
    let mut all = Vec::new();
    for (path, provider, event) in cases {
        let body = fixture(path);
        let h = match provider {
            Provider::GitHub => github(event, &body),
            Provider::GitLab => gitlab(event),
        };
        let received =
            receive(provider, SECRET, &h, &body).unwrap_or_else(|e| panic!("{path}: {e}"));
        all.push(serde_json::json!({ "fixture": path, "received": received }));
    }
    insta::assert_json_snapshot!("fixtures", all);
}

#[test]
fn a_merged_pull_request_names_branch_commit_and_merger() {
    let body = fixture("github/pull_request_merged.json");
    let Received::Merge(m) = receive(
        Provider::GitHub,
        SECRET,
        &github("pull_request", &body),
        &body,
    )
    .unwrap() else {
        panic!("not a merge");
    };
    assert_eq!(m.branch, "main");
    assert_eq!(m.commit, "9f2c8b1e4d7a3f60c5b2e8d1a4f7c0b3e6d9a2f5");
    assert_eq!(m.actor, "hubot");
    assert_eq!(m.number, Some(42));
    assert_eq!(m.delivery_id, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
}

#[test]
fn a_closed_unmerged_pull_request_is_ignored() {
    let mut v: serde_json::Value =
        serde_json::from_slice(&fixture("github/pull_request_merged.json")).unwrap();
    v["pull_request"]["merged"] = false.into();
    v["pull_request"]["merge_commit_sha"] = serde_json::Value::Null;
    let body = serde_json::to_vec(&v).unwrap();
    let r = receive(
        Provider::GitHub,
        SECRET,
        &github("pull_request", &body),
        &body,
    )
    .unwrap();
    assert!(
        matches!(&r, Received::Ignored { reason, .. } if reason.contains("without merging")),
        "{r:?}"
    );
}

#[test]
fn bad_and_missing_signatures_are_auth_errors() {
    let body = fixture("github/push_main.json");
    // Signed with another secret.
    let mut h = github("push", &body);
    h.insert(
        GITHUB_SIGNATURE,
        HeaderValue::from_str(&github_signature(b"other", &body)).unwrap(),
    );
    let e = receive(Provider::GitHub, SECRET, &h, &body).unwrap_err();
    assert!(e.is_auth(), "{e}");
    assert!(matches!(e, WebhookError::BadSignature { .. }));
    // The right signature over a body changed by one byte.
    let mut tampered = body.clone();
    let i = tampered.iter().position(|&b| b == b'm').unwrap();
    tampered[i] = b'M';
    let e = receive(Provider::GitHub, SECRET, &github("push", &body), &tampered).unwrap_err();
    assert!(e.is_auth());
    // Not hex, wrong prefix, missing.
    for bad in ["sha256=zz", "sha1=0123"] {
        let mut h = github("push", &body);
        h.insert(GITHUB_SIGNATURE, HeaderValue::from_static(bad));
        assert!(
            receive(Provider::GitHub, SECRET, &h, &body)
                .unwrap_err()
                .is_auth(),
            "{bad}"
        );
    }
    let mut h = github("push", &body);
    h.remove(GITHUB_SIGNATURE);
    let e = receive(Provider::GitHub, SECRET, &h, &body).unwrap_err();
    assert_eq!(
        e,
        WebhookError::MissingHeader {
            header: GITHUB_SIGNATURE
        }
    );
    assert!(e.is_auth());
    assert_eq!(e.to_string(), "the X-Hub-Signature-256 header is missing");

    let body = fixture("gitlab/push_main.json");
    let mut h = gitlab("Push Hook");
    h.insert(GITLAB_TOKEN, HeaderValue::from_static("wrong"));
    assert!(
        receive(Provider::GitLab, SECRET, &h, &body)
            .unwrap_err()
            .is_auth()
    );
    h.remove(GITLAB_TOKEN);
    assert_eq!(
        receive(Provider::GitLab, SECRET, &h, &body).unwrap_err(),
        WebhookError::MissingHeader {
            header: GITLAB_TOKEN
        }
    );
}

#[test]
fn missing_event_or_delivery_headers_are_bad_requests() {
    let body = fixture("github/push_main.json");
    let mut h = github("push", &body);
    h.remove(GITHUB_DELIVERY);
    let e = receive(Provider::GitHub, SECRET, &h, &body).unwrap_err();
    assert_eq!(
        e,
        WebhookError::MissingHeader {
            header: GITHUB_DELIVERY
        }
    );
    assert!(!e.is_auth());

    let body = fixture("gitlab/push_main.json");
    let mut h = gitlab("Push Hook");
    h.remove(GITLAB_EVENT_UUID);
    assert!(matches!(
        receive(Provider::GitLab, SECRET, &h, &body).unwrap_err(),
        WebhookError::MissingHeader {
            header: GITLAB_EVENT_UUID
        }
    ));
    // Newer GitLab versions send Idempotency-Key instead.
    h.insert(
        IDEMPOTENCY_KEY,
        HeaderValue::from_static("6b9f3c1e-2d4a-4e8f-9a1b-0c2d3e4f5a6b"),
    );
    let Received::Merge(m) = receive(Provider::GitLab, SECRET, &h, &body).unwrap() else {
        panic!("not a merge");
    };
    assert_eq!(m.delivery_id, "6b9f3c1e-2d4a-4e8f-9a1b-0c2d3e4f5a6b");
}

#[test]
fn malformed_json_and_missing_fields_are_named() {
    let body = b"{\"ref\": \"refs/heads/main\",\n \"after\": }".to_vec();
    let e = receive(Provider::GitHub, SECRET, &github("push", &body), &body).unwrap_err();
    assert!(matches!(e, WebhookError::BadJson { line: 2, .. }), "{e:?}");
    assert!(e.to_string().contains("line 2, column"), "{e}");

    let mut v: serde_json::Value =
        serde_json::from_slice(&fixture("github/pull_request_merged.json")).unwrap();
    v["pull_request"]["base"]
        .as_object_mut()
        .unwrap()
        .remove("ref");
    let body = serde_json::to_vec(&v).unwrap();
    let e = receive(
        Provider::GitHub,
        SECRET,
        &github("pull_request", &body),
        &body,
    )
    .unwrap_err();
    assert_eq!(e.field(), Some("pull_request.base.ref"));
    assert_eq!(
        e.to_string(),
        "the payload's `pull_request.base.ref` is missing or not a string"
    );

    let mut v: serde_json::Value =
        serde_json::from_slice(&fixture("gitlab/merge_request_merged.json")).unwrap();
    v["object_attributes"]["target_branch"] = 7.into();
    let body = serde_json::to_vec(&v).unwrap();
    let e = receive(
        Provider::GitLab,
        SECRET,
        &gitlab("Merge Request Hook"),
        &body,
    )
    .unwrap_err();
    assert_eq!(e.field(), Some("object_attributes.target_branch"));

    let mut v: serde_json::Value =
        serde_json::from_slice(&fixture("gitlab/push_main.json")).unwrap();
    v.as_object_mut().unwrap().remove("user_username");
    let body = serde_json::to_vec(&v).unwrap();
    let e = receive(Provider::GitLab, SECRET, &gitlab("Push Hook"), &body).unwrap_err();
    assert_eq!(e.field(), Some("user_username"));
}

#[test]
fn a_branch_deletion_is_ignored() {
    let mut v: serde_json::Value =
        serde_json::from_slice(&fixture("github/push_main.json")).unwrap();
    v["deleted"] = true.into();
    v["after"] = "0000000000000000000000000000000000000000".into();
    let body = serde_json::to_vec(&v).unwrap();
    let r = receive(Provider::GitHub, SECRET, &github("push", &body), &body).unwrap();
    assert!(
        matches!(&r, Received::Ignored { reason, .. } if reason.contains("deleted")),
        "{r:?}"
    );
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn any_headers() -> impl Strategy<Value = Vec<(String, String)>> {
        let names = prop::sample::select(vec![
            GITHUB_EVENT,
            GITHUB_DELIVERY,
            GITHUB_SIGNATURE,
            GITLAB_EVENT,
            GITLAB_TOKEN,
            GITLAB_EVENT_UUID,
            IDEMPOTENCY_KEY,
            "Content-Type",
        ]);
        prop::collection::vec((names.prop_map(str::to_owned), "[ -~]{0,40}"), 0..8)
    }

    fn to_map(pairs: &[(String, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), v);
            }
        }
        h
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Arbitrary bodies and headers never panic, and without the secret nothing is accepted.
        #[test]
        fn arbitrary_deliveries_never_panic(body in prop::collection::vec(any::<u8>(), 0..512), pairs in any_headers()) {
            let h = to_map(&pairs);
            for p in [Provider::GitHub, Provider::GitLab] {
                let r = receive(p, SECRET, &h, &body);
                // Random headers cannot carry the right signature or token (the token is not in
                // the header alphabet's reach in 40 random characters).
                prop_assert!(r.is_err());
            }
        }

        /// Correctly signed arbitrary JSON-ish bodies never panic, and a merge always names a
        /// non-empty branch and commit.
        #[test]
        fn signed_arbitrary_payloads_never_panic(
            event in prop::sample::select(vec!["push", "pull_request", "ping"]),
            r in "[a-z/]{0,20}", after in "[0-9a-f]{0,40}", action in "[a-z]{0,8}", merged in any::<bool>(),
            base in "[a-z]{0,8}",
        ) {
            let body = serde_json::to_vec(&serde_json::json!({
                "ref": r, "after": after, "action": action,
                "pull_request": {"merged": merged, "base": {"ref": base}, "merge_commit_sha": after},
                "pusher": {"name": "x"},
            })).unwrap();
            let h = github(event, &body);
            if let Ok(Received::Merge(m)) = receive(Provider::GitHub, SECRET, &h, &body) {
                prop_assert!(!m.commit.is_empty() || event == "pull_request");
            }
            let mut gl = gitlab(if event == "push" { "Push Hook" } else { "Merge Request Hook" });
            gl.insert(GITLAB_EVENT, HeaderValue::from_static("Push Hook"));
            let _ = receive(Provider::GitLab, SECRET, &gl, &body);
        }
    }
}
