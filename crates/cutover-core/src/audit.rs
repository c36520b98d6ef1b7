//! The tamper-evident audit chain: event type, canonical encoding, hashing and chain verification.
//!
//! Pure logic, no IO: the store computes hashes with [`AuditEvent::seal`] when it appends and checks
//! them with [`ChainVerifier`] (streaming) or [`verify_chain`] when it verifies.
//!
//! # Canonical encoding (version 1)
//!
//! The bytes hashed for an event are the UTF-8 encoding of a JSON object with exactly the keys
//! `action`, `actor`, `at`, `payload`, `seq`, `subject`, in that (byte-sorted) order, no whitespace:
//!
//! ```text
//! {"action":"release.create","actor":"ann@example.com","at":"2026-01-02T03:04:05.000006Z","payload":{"a":1},"seq":7,"subject":"release/1.2.0"}
//! ```
//!
//! - `seq` is a decimal integer; `at` is RFC 3339 in UTC with exactly six fraction digits and `Z`
//!   (events carry microsecond precision; finer parts are truncated when the event is created).
//! - strings are escaped as `serde_json` does: `"` and `\` and control characters are escaped, every
//!   other character is written as itself;
//! - `payload` is written recursively with object keys sorted by their UTF-8 bytes, arrays in order,
//!   numbers as `serde_json` prints them (integers in decimal, floats in shortest round-trip form).
//!
//! `hash = hex(sha256(prev_hash_bytes ‖ canonical))` where `prev_hash_bytes` are the 32 raw bytes of
//! the previous event's hash (the first event uses 32 zero bytes, [`GENESIS_HASH`]). Hashes are
//! stored as 64 lowercase hex digits. `seq` starts at 1 and grows by exactly 1.
//!
//! Because `seq` is inside the hash, renumbering rows is detected as well as altering, deleting,
//! inserting or reordering them. A chain cannot detect events cut off at its end, nor a forger who
//! appends correctly hashed events at the end: that would need an anchor kept elsewhere.

use std::fmt;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first event: 32 zero bytes, in hex.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit event, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// When the event was written (UTC, microsecond precision).
    pub at: DateTime<Utc>,
    /// Who did it (from `CUTOVER_ACTOR`, the git email or the OS user).
    pub actor: String,
    /// What was done, dotted lowercase such as `release.create`.
    pub action: String,
    /// What it was done to, such as `release/1.2.0` or `deployment/17`.
    pub subject: String,
    /// Details; never secrets.
    pub payload: Value,
    /// Hash of the previous event (hex), [`GENESIS_HASH`] for the first.
    pub prev_hash: String,
    /// `sha256(prev_hash_bytes ‖ canonical encoding)` in hex.
    pub hash: String,
}

/// Truncates a time to the microsecond precision the chain keeps.
pub fn truncate_to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// Formats a time as the canonical encoding does: RFC 3339, UTC, six fraction digits, `Z`.
pub fn format_at(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

impl AuditEvent {
    /// Builds the next event after `prev_hash` and computes its hash. `at` is truncated to microseconds.
    pub fn seal(
        seq: i64,
        at: DateTime<Utc>,
        actor: impl Into<String>,
        action: impl Into<String>,
        subject: impl Into<String>,
        payload: Value,
        prev_hash: impl Into<String>,
    ) -> AuditEvent {
        let mut event = AuditEvent {
            seq,
            at: truncate_to_micros(at),
            actor: actor.into(),
            action: action.into(),
            subject: subject.into(),
            payload,
            prev_hash: prev_hash.into(),
            hash: String::new(),
        };
        // A malformed prev_hash can only come from the caller; the hash is left empty so that
        // verification reports the link instead of hiding it.
        event.hash = event.compute_hash().unwrap_or_default();
        event
    }

    /// The canonical encoding of this event (everything but `prev_hash` and `hash`).
    pub fn canonical(&self) -> String {
        self.canonical_with_payload(&canonical_json(&self.payload))
    }

    /// The canonical encoding with `payload_json` (already canonical text, as the store keeps it)
    /// in place of `self.payload`.
    pub fn canonical_with_payload(&self, payload_json: &str) -> String {
        let mut out = String::with_capacity(128 + payload_json.len());
        out.push_str("{\"action\":");
        push_json_string(&mut out, &self.action);
        out.push_str(",\"actor\":");
        push_json_string(&mut out, &self.actor);
        out.push_str(",\"at\":\"");
        out.push_str(&format_at(&self.at));
        out.push_str("\",\"payload\":");
        out.push_str(payload_json);
        out.push_str(",\"seq\":");
        out.push_str(&self.seq.to_string());
        out.push_str(",\"subject\":");
        push_json_string(&mut out, &self.subject);
        out.push('}');
        out
    }

    /// `hex(sha256(prev_hash_bytes ‖ canonical))`; `None` when `prev_hash` is not 64 hex digits.
    pub fn compute_hash(&self) -> Option<String> {
        self.compute_hash_with_payload(&canonical_json(&self.payload))
    }

    /// Like [`AuditEvent::compute_hash`] over [`AuditEvent::canonical_with_payload`].
    pub fn compute_hash_with_payload(&self, payload_json: &str) -> Option<String> {
        let prev = decode_hash(&self.prev_hash)?;
        let mut hasher = Sha256::new();
        hasher.update(prev);
        hasher.update(self.canonical_with_payload(payload_json).as_bytes());
        Some(hex::encode(hasher.finalize()))
    }
}

/// Writes `value` in the canonical form: sorted object keys, no whitespace.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    push_canonical_value(&mut out, value);
    out
}

fn push_json_string(out: &mut String, s: &str) {
    // serde_json's string escaping is the documented one; serializing a &str cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

fn push_canonical_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => push_json_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_canonical_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(out, key);
                out.push(':');
                if let Some(v) = map.get(key) {
                    push_canonical_value(out, v);
                }
            }
            out.push('}');
        }
    }
}

fn decode_hash(h: &str) -> Option<[u8; 32]> {
    let mut bytes = [0u8; 32];
    if h.len() != 64 || h.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode_to_slice(h, &mut bytes).ok()?;
    Some(bytes)
}

/// Why a link of the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BrokenReason {
    /// The event with this seq is missing: the next one found has seq `found`.
    Missing { found: i64 },
    /// An event has a seq lower than or equal to its predecessor's (`after`).
    OutOfOrder { after: i64 },
    /// The event's `prev_hash` is not the previous event's hash.
    PrevHashMismatch { expected: String, found: String },
    /// The event's contents do not hash to its stored `hash` (it was altered).
    HashMismatch { computed: String, stored: String },
    /// `prev_hash` is not 64 lowercase hex digits.
    MalformedPrevHash,
    /// The stored row cannot be read as an event (for example its payload is not JSON).
    Unreadable { detail: String },
}

impl fmt::Display for BrokenReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BrokenReason::Missing { found } => {
                write!(
                    f,
                    "event is missing (deleted?): the next event found is seq {found}"
                )
            }
            BrokenReason::OutOfOrder { after } => {
                write!(f, "event is out of order: it comes after seq {after}")
            }
            BrokenReason::PrevHashMismatch { expected, found } => write!(
                f,
                "prev_hash {found} is not the previous event's hash {expected} (inserted or reordered?)"
            ),
            BrokenReason::HashMismatch { computed, stored } => write!(
                f,
                "contents hash to {computed} but the stored hash is {stored} (altered?)"
            ),
            BrokenReason::MalformedPrevHash => {
                f.write_str("prev_hash is not 64 lowercase hex digits")
            }
            BrokenReason::Unreadable { detail } => {
                write!(f, "the stored event is unreadable: {detail}")
            }
        }
    }
}

/// The first broken link of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Broken {
    /// The seq of the first event that does not hold (for a deleted event: its seq).
    pub seq: i64,
    /// What is wrong with it.
    pub reason: BrokenReason,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "audit chain broken at seq {}: {}", self.seq, self.reason)
    }
}

impl std::error::Error for Broken {}

/// Verifies a chain one event at a time, so that millions of events need constant memory.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    expected_seq: i64,
    expected_prev: String,
    checked: u64,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier::new()
    }
}

impl ChainVerifier {
    /// A verifier expecting the chain to start at seq 1 with [`GENESIS_HASH`].
    pub fn new() -> ChainVerifier {
        ChainVerifier {
            expected_seq: 1,
            expected_prev: GENESIS_HASH.to_owned(),
            checked: 0,
        }
    }

    /// How many events have been accepted.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// The hash the next event must carry as `prev_hash` (the head of the chain so far).
    pub fn head(&self) -> &str {
        &self.expected_prev
    }

    /// Checks the next event in seq order. After an `Err` the verifier should not be fed further.
    pub fn push(&mut self, event: &AuditEvent) -> Result<(), Broken> {
        self.push_stored(event, &canonical_json(&event.payload))
    }

    /// Checks the next event whose payload is given as the canonical text kept in storage
    /// (`event.payload` is ignored). Hashing the stored text avoids re-encoding the payload, whose
    /// floating-point numbers might not survive a parse and print unchanged.
    pub fn push_stored(&mut self, event: &AuditEvent, payload_json: &str) -> Result<(), Broken> {
        if event.seq > self.expected_seq {
            return Err(Broken {
                seq: self.expected_seq,
                reason: BrokenReason::Missing { found: event.seq },
            });
        }
        if event.seq < self.expected_seq {
            return Err(Broken {
                seq: event.seq,
                reason: BrokenReason::OutOfOrder {
                    after: self.expected_seq - 1,
                },
            });
        }
        if event.prev_hash != self.expected_prev {
            return Err(Broken {
                seq: event.seq,
                reason: BrokenReason::PrevHashMismatch {
                    expected: self.expected_prev.clone(),
                    found: event.prev_hash.clone(),
                },
            });
        }
        let Some(computed) = event.compute_hash_with_payload(payload_json) else {
            return Err(Broken {
                seq: event.seq,
                reason: BrokenReason::MalformedPrevHash,
            });
        };
        if computed != event.hash {
            return Err(Broken {
                seq: event.seq,
                reason: BrokenReason::HashMismatch {
                    computed,
                    stored: event.hash.clone(),
                },
            });
        }
        self.expected_seq += 1;
        self.expected_prev = computed;
        self.checked += 1;
        Ok(())
    }
}

/// Verifies a whole chain given in the order it is stored (by seq); returns how many events held.
pub fn verify_chain<'a>(events: impl IntoIterator<Item = &'a AuditEvent>) -> Result<u64, Broken> {
    let mut verifier = ChainVerifier::new();
    for event in events {
        verifier.push(event)?;
    }
    Ok(verifier.checked())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;
    use serde_json::json;

    fn at(micros: i64) -> DateTime<Utc> {
        Utc.timestamp_micros(1_700_000_000_000_000 + micros)
            .single()
            .expect("in range")
    }

    fn chain(payloads: &[Value]) -> Vec<AuditEvent> {
        let mut prev = GENESIS_HASH.to_owned();
        let mut out = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            let seq = i as i64 + 1;
            let e = AuditEvent::seal(
                seq,
                at(seq * 1000 + 7),
                "ann",
                "x.do",
                format!("s/{seq}"),
                p.clone(),
                prev,
            );
            prev = e.hash.clone();
            out.push(e);
        }
        out
    }

    #[test]
    fn canonical_encoding_is_documented_form() {
        let e = AuditEvent::seal(
            7,
            Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
                .single()
                .expect("valid")
                + chrono::Duration::microseconds(6),
            "ann@example.com",
            "release.create",
            "release/1.2.0",
            json!({"b": [1, {"z": null, "a": true}], "a": "\"é\n"}),
            GENESIS_HASH,
        );
        assert_eq!(
            e.canonical(),
            r#"{"action":"release.create","actor":"ann@example.com","at":"2026-01-02T03:04:05.000006Z","payload":{"a":"\"é\n","b":[1,{"a":true,"z":null}]},"seq":7,"subject":"release/1.2.0"}"#
        );
        // Pinned so that a change of the encoding is noticed: stored chains would stop verifying.
        assert_eq!(e.hash, e.compute_hash().expect("valid prev"));
        let mut h = Sha256::new();
        h.update([0u8; 32]);
        h.update(e.canonical().as_bytes());
        assert_eq!(e.hash, hex::encode(h.finalize()));
    }

    #[test]
    fn nanoseconds_are_truncated() {
        let t = Utc.timestamp_nanos(1_700_000_000_123_456_789);
        let e = AuditEvent::seal(1, t, "a", "b", "c", json!(null), GENESIS_HASH);
        assert_eq!(format_at(&e.at), "2023-11-14T22:13:20.123456Z");
    }

    #[test]
    fn empty_chain_holds() {
        assert_eq!(verify_chain(&[]), Ok(0));
    }

    #[test]
    fn malformed_prev_hash_is_named() {
        let mut c = chain(&[json!(1)]);
        c[0].prev_hash = "zz".into();
        let err = verify_chain(&c).expect_err("broken");
        assert_eq!(err.seq, 1);
        assert!(matches!(err.reason, BrokenReason::PrevHashMismatch { .. }));
    }

    fn has_float(v: &Value) -> bool {
        match v {
            Value::Number(n) => n.is_f64(),
            Value::Array(items) => items.iter().any(has_float),
            Value::Object(map) => map.values().any(has_float),
            _ => false,
        }
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            ".{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(".{0,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn sealed_chains_verify(payloads in prop::collection::vec(arb_json(), 0..12)) {
            let c = chain(&payloads);
            prop_assert_eq!(verify_chain(&c), Ok(c.len() as u64));
        }

        #[test]
        fn canonical_payload_is_json_of_the_same_value(v in arb_json()) {
            let text = canonical_json(&v);
            let back: Value = serde_json::from_str(&text).expect("canonical JSON parses");
            // Floats may not survive serde_json's fast parser bit for bit (which is why the store
            // hashes the stored text); everything else must.
            if !has_float(&v) {
                prop_assert_eq!(canonical_json(&back), text);
            }
        }

        #[test]
        fn hashing_stored_text_equals_hashing_the_value(payloads in prop::collection::vec(arb_json(), 1..6)) {
            let c = chain(&payloads);
            let mut v = ChainVerifier::new();
            for e in &c {
                let stored = AuditEvent { payload: Value::Null, ..e.clone() };
                prop_assert_eq!(v.push_stored(&stored, &canonical_json(&e.payload)), Ok(()));
            }
        }

        #[test]
        fn key_order_does_not_matter(m in prop::collection::btree_map(".{0,6}", any::<i32>(), 0..6)) {
            let forward: serde_json::Map<String, Value> = m.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            let backward: serde_json::Map<String, Value> = m.iter().rev().map(|(k, v)| (k.clone(), json!(v))).collect();
            prop_assert_eq!(canonical_json(&Value::Object(forward)), canonical_json(&Value::Object(backward)));
        }

        #[test]
        fn altering_any_field_is_detected(
            payloads in prop::collection::vec(arb_json(), 1..10),
            pick in any::<prop::sample::Index>(),
            field in 0..5usize,
        ) {
            let mut c = chain(&payloads);
            let i = pick.index(c.len());
            let e = &mut c[i];
            match field {
                0 => e.actor.push('x'),
                1 => e.action.push('x'),
                2 => e.subject.push('x'),
                3 => e.payload = json!({"altered": e.payload.clone()}),
                _ => e.at += chrono::Duration::microseconds(1),
            }
            let err = verify_chain(&c).expect_err("altered chain must break");
            prop_assert_eq!(err.seq, i as i64 + 1);
            let is_hash_mismatch = matches!(err.reason, BrokenReason::HashMismatch { .. });
            prop_assert!(is_hash_mismatch);
        }

        #[test]
        fn deleting_an_event_is_detected(n in 2..12usize, pick in any::<prop::sample::Index>()) {
            let mut c = chain(&vec![json!(null); n]);
            // Deleting the last event is undetectable without an anchor; delete any other one.
            let i = pick.index(n - 1);
            c.remove(i);
            let err = verify_chain(&c).expect_err("gap must break");
            prop_assert_eq!(err.seq, i as i64 + 1);
            prop_assert_eq!(err.reason, BrokenReason::Missing { found: i as i64 + 2 });
        }

        #[test]
        fn swapping_two_events_is_detected(n in 2..12usize, a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>()) {
            let mut c = chain(&(0..n).map(|i| json!(i)).collect::<Vec<_>>());
            let (a, b) = (a.index(n), b.index(n));
            prop_assume!(a != b);
            c.swap(a, b);
            let err = verify_chain(&c).expect_err("reordered chain must break");
            prop_assert_eq!(err.seq, a.min(b) as i64 + 1);
        }

        #[test]
        fn swapping_contents_but_keeping_seqs_is_detected(n in 2..12usize, a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>()) {
            let mut c = chain(&(0..n).map(|i| json!(i)).collect::<Vec<_>>());
            let (a, b) = (a.index(n), b.index(n));
            prop_assume!(a != b);
            let (sa, sb) = (c[a].seq, c[b].seq);
            c.swap(a, b);
            c[a].seq = sa;
            c[b].seq = sb;
            let err = verify_chain(&c).expect_err("renumbered chain must break");
            prop_assert_eq!(err.seq, a.min(b) as i64 + 1);
        }

        #[test]
        fn inserting_a_forged_event_is_detected(n in 1..10usize, pick in any::<prop::sample::Index>(), p in arb_json()) {
            let mut c = chain(&vec![json!(1); n]);
            let i = pick.index(n);
            // A forger who knows the algorithm seals a valid-looking event at position i and renumbers
            // the rest; the event after it then no longer links.
            let prev = if i == 0 { GENESIS_HASH.to_owned() } else { c[i - 1].hash.clone() };
            let forged = AuditEvent::seal(i as i64 + 1, at(1), "mallory", "x.do", "s", p, prev);
            c.insert(i, forged);
            for e in c.iter_mut().skip(i + 1) {
                e.seq += 1;
            }
            let err = verify_chain(&c).expect_err("insertion must break");
            prop_assert_eq!(err.seq, i as i64 + 2);
        }

        #[test]
        fn verifier_never_panics_on_arbitrary_rows(
            rows in prop::collection::vec((any::<i64>(), ".{0,70}", ".{0,70}"), 0..8)
        ) {
            let events: Vec<AuditEvent> = rows.into_iter().map(|(seq, prev_hash, hash)| AuditEvent {
                seq, at: at(0), actor: String::new(), action: String::new(), subject: String::new(),
                payload: Value::Null, prev_hash, hash,
            }).collect();
            let _ = verify_chain(&events);
        }
    }
}
