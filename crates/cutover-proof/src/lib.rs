//! Proof of delivery: the project's ed25519 key, in-toto Statements v1 and their DSSE envelopes.
//!
//! A deployment ends, per host, with a statement that a release's artifact (the statement's
//! subject, by sha256) was delivered and checked, signed with the project's key:
//!
//! ```text
//! envelope  = { "payloadType": "application/vnd.in-toto+json",
//!               "payload": base64(canonical_json(statement)),
//!               "signatures": [ { "keyid": hex(sha256(public key)), "sig": base64(ed25519(PAE)) } ] }
//! PAE       = "DSSEv1" SP len(payloadType) SP payloadType SP len(payload) SP payload
//! statement = { "_type": "https://in-toto.io/Statement/v1",
//!               "subject": [ { "name", "digest": { "sha256": hex } } ],
//!               "predicateType": "https://cutover.dev/proof-of-delivery/v1", "predicate": {…} }
//! ```
//!
//! Keys live in `<project>/.cutover/keys/` (see [`key_paths`]): the private key as PKCS#8 PEM
//! (mode 0600), the public key as SubjectPublicKeyInfo PEM; `openssl pkey` reads both.

pub mod dsse;
mod error;
mod keys;
mod statement;

pub use dsse::{PAYLOAD_TYPE, decode_base64, pae};
pub use error::ProofError;
pub use keys::{
    KeyOrigin, SigningKey, VerifyingKey, key_paths, load_or_create, load_verifying, open_or_create,
};
pub use statement::{PREDICATE_TYPE, STATEMENT_TYPE, canonical_json, statement, subject_sha256};

use serde_json::Value;

/// Signs `statement` (an in-toto Statement, see [`statement`]) with `key`: the DSSE envelope over
/// its canonical JSON bytes.
pub fn sign(key: &SigningKey, statement: &Value) -> Value {
    dsse::seal(key, PAYLOAD_TYPE, &canonical_json(statement))
}

/// Checks `envelope` against `key` and returns the statement it carries.
///
/// Refused, each with its own [`ProofError`]: an envelope that is not a DSSE JSON envelope, a
/// payload type other than [`PAYLOAD_TYPE`], a payload or signature that is not base64, no
/// signature under `key`'s keyid, a signature that does not verify (strict ed25519), a payload
/// that is not an in-toto Statement v1 of [`PREDICATE_TYPE`] with a sha256 subject. The payload is
/// parsed only after its signature verified.
pub fn verify(key: &VerifyingKey, envelope: &Value) -> Result<Value, ProofError> {
    let body = dsse::open(key, PAYLOAD_TYPE, envelope)?;
    statement::parse(&body)
}
