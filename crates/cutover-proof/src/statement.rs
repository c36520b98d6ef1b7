//! in-toto Statement v1 of cutover's proof-of-delivery predicate, and the canonical JSON bytes
//! that are signed.

use crate::ProofError;
use serde_json::{Value, json};

/// The in-toto Statement v1 type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// cutover's predicate: a release delivered to a host, with its checks.
pub const PREDICATE_TYPE: &str = "https://cutover.dev/proof-of-delivery/v1";

/// The statement that the artifact `artifact_name` with sha256 `artifact_sha256` (bare hex, or
/// `sha256:<hex>` as releases record it) was delivered as `predicate` says.
pub fn statement(artifact_name: &str, artifact_sha256: &str, predicate: Value) -> Value {
    let hex = artifact_sha256
        .strip_prefix("sha256:")
        .unwrap_or(artifact_sha256)
        .to_ascii_lowercase();
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [ { "name": artifact_name, "digest": { "sha256": hex } } ],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    })
}

/// The sha256 (bare hex) of the statement's first subject.
pub fn subject_sha256(statement: &Value) -> Option<&str> {
    statement
        .get("subject")?
        .get(0)?
        .get("digest")?
        .get("sha256")?
        .as_str()
}

/// The signed form of a JSON value: no whitespace, object members sorted by their keys' UTF-16
/// code units, strings and integers as RFC 8785 (JCS) writes them. Floats are written as
/// serde_json does (shortest round trip), which differs from JCS only in exponent notation.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(members) => {
            let mut members: Vec<_> = members.iter().collect();
            members.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
            out.push(b'{');
            for (i, (key, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key).expect("writing to a Vec cannot fail");
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("writing to a Vec cannot fail"),
    }
}

/// The statement in a verified payload, once it is an in-toto Statement v1 of cutover's predicate
/// with at least one sha256 subject.
pub(crate) fn parse(body: &[u8]) -> Result<Value, ProofError> {
    let statement: Value = serde_json::from_slice(body).map_err(|e| ProofError::Statement {
        reason: format!("invalid JSON ({e})"),
    })?;
    let fields = statement.as_object().ok_or_else(|| ProofError::Statement {
        reason: "expected a JSON object".to_owned(),
    })?;
    let type_of = |name: &str| match fields.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "(missing)".to_owned(),
    };
    if fields.get("_type").and_then(Value::as_str) != Some(STATEMENT_TYPE) {
        return Err(ProofError::StatementType {
            found: type_of("_type"),
            expected: STATEMENT_TYPE,
        });
    }
    if fields.get("predicateType").and_then(Value::as_str) != Some(PREDICATE_TYPE) {
        return Err(ProofError::PredicateType {
            found: type_of("predicateType"),
            expected: PREDICATE_TYPE,
        });
    }
    let subjects = fields
        .get("subject")
        .and_then(Value::as_array)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ProofError::Subject {
            reason: "expected a non-empty array".to_owned(),
        })?;
    for (i, subject) in subjects.iter().enumerate() {
        let digest = subject
            .get("digest")
            .and_then(|d| d.get("sha256"))
            .and_then(Value::as_str)
            .ok_or_else(|| ProofError::Subject {
                reason: format!("subject {i} has no digest.sha256"),
            })?;
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ProofError::Subject {
                reason: format!("subject {i}'s sha256 `{digest}` is not 64 hex digits"),
            });
        }
    }
    Ok(statement)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_and_drops_whitespace() {
        let v: Value = serde_json::from_str(
            r#"{ "b": [1, {"z": null, "a": true}], "a": "x\n\u00e9", "\ud83d\ude00": 0, "\uffff": 1 }"#,
        )
        .unwrap();
        // U+1F600 is the surrogate pair D83D DE00, which sorts before U+FFFF in UTF-16.
        assert_eq!(
            String::from_utf8(canonical_json(&v)).unwrap(),
            "{\"a\":\"x\\né\",\"b\":[1,{\"a\":true,\"z\":null}],\"😀\":0,\"\u{ffff}\":1}"
        );
    }

    #[test]
    fn the_statement_names_the_artifact_by_bare_sha256() {
        let hex = "AB".repeat(32);
        let s = statement(
            "app.tar.zst",
            &format!("sha256:{hex}"),
            json!({"host": "h"}),
        );
        assert_eq!(subject_sha256(&s), Some("ab".repeat(32).as_str()));
        assert_eq!(s["_type"], STATEMENT_TYPE);
        assert_eq!(s["predicateType"], PREDICATE_TYPE);
        assert_eq!(s["subject"][0]["name"], "app.tar.zst");
        assert_eq!(s["predicate"]["host"], "h");
        assert!(parse(&canonical_json(&s)).is_ok());
    }
}
