//! DSSE v1 (Dead Simple Signing Envelope): the pre-authentication encoding and the JSON envelope.
//!
//! The signature covers `PAE(payloadType, payload)`, so neither the payload nor its type can be
//! changed without breaking it; the keyid is an unauthenticated hint that only selects the key.

use crate::{ProofError, SigningKey, VerifyingKey};
use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Value, json};

/// The DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Writers use standard base64 with padding; readers accept either alphabet, padded or not, as
/// the DSSE protocol requires.
const ANY_PADDING: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_READ: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, ANY_PADDING);
const URL_SAFE_READ: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, ANY_PADDING);

/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths in bytes, decimal.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let ty = payload_type.as_bytes();
    let mut out = Vec::with_capacity(ty.len() + body.len() + 32);
    out.extend_from_slice(format!("DSSEv1 {} ", ty.len()).as_bytes());
    out.extend_from_slice(ty);
    out.extend_from_slice(format!(" {} ", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// Standard or URL-safe base64, padded or not; `None` when `text` is neither.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    STANDARD_READ
        .decode(text)
        .or_else(|_| URL_SAFE_READ.decode(text))
        .ok()
}

/// Standard base64 with padding, as envelopes are written.
pub fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The envelope of `body` (of type `payload_type`) signed by `key`.
pub fn seal(key: &SigningKey, payload_type: &str, body: &[u8]) -> Value {
    let sig = key.sign_bytes(&pae(payload_type, body));
    json!({
        "payloadType": payload_type,
        "payload": encode_base64(body),
        "signatures": [ { "keyid": key.keyid(), "sig": encode_base64(&sig) } ],
    })
}

/// The payload of `envelope` once its type is `payload_type` and a signature under `key`'s keyid
/// verifies over the PAE. Signatures under other keyids (or none) are not tried.
pub fn open(
    key: &VerifyingKey,
    payload_type: &str,
    envelope: &Value,
) -> Result<Vec<u8>, ProofError> {
    let envelope_error = |reason: &str| ProofError::Envelope {
        reason: reason.to_owned(),
    };
    let fields = envelope
        .as_object()
        .ok_or_else(|| envelope_error("expected a JSON object"))?;
    let found_type = fields
        .get("payloadType")
        .and_then(Value::as_str)
        .ok_or_else(|| envelope_error("`payloadType` is missing or not a string"))?;
    if found_type != payload_type {
        return Err(ProofError::PayloadType {
            found: found_type.to_owned(),
            expected: payload_type.to_owned(),
        });
    }
    let payload = fields
        .get("payload")
        .and_then(Value::as_str)
        .ok_or_else(|| envelope_error("`payload` is missing or not a string"))?;
    let body = decode_base64(payload).ok_or_else(|| ProofError::PayloadEncoding {
        reason: format!(
            "{} characters that are neither standard nor URL-safe base64",
            payload.len()
        ),
    })?;
    let signatures = fields
        .get("signatures")
        .and_then(Value::as_array)
        .ok_or_else(|| envelope_error("`signatures` is missing or not an array"))?;

    let keyid = key.keyid();
    let mut found = Vec::new();
    let mut ours = Vec::new();
    for (i, entry) in signatures.iter().enumerate() {
        let sig = entry
            .get("sig")
            .and_then(Value::as_str)
            .ok_or_else(|| ProofError::Envelope {
                reason: format!("signature {i} has no `sig` string"),
            })?;
        match entry.get("keyid").and_then(Value::as_str) {
            // The keyid only selects the key to try; constant time is not needed for it (it is
            // public), only for the signature check itself, which dalek does.
            Some(id) if id == keyid => ours.push(sig),
            Some(id) => found.push(id.to_owned()),
            None => found.push("(none)".to_owned()),
        }
    }
    if ours.is_empty() {
        return Err(ProofError::UnknownKeyid {
            expected: keyid,
            found,
        });
    }
    let message = pae(found_type, &body);
    let mut encoding_error = None;
    for sig in ours {
        let bytes = match decode_base64(sig) {
            Some(bytes) => bytes,
            None => {
                encoding_error = Some("not base64".to_owned());
                continue;
            }
        };
        let Ok(bytes) = <[u8; 64]>::try_from(bytes.as_slice()) else {
            encoding_error = Some(format!("{} bytes; expected 64", bytes.len()));
            continue;
        };
        if key.verify_bytes(&message, &bytes) {
            return Ok(body);
        }
        encoding_error = None;
    }
    Err(match encoding_error {
        Some(reason) => ProofError::SignatureEncoding { keyid, reason },
        None => ProofError::BadSignature { keyid },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of the DSSE protocol (secure-systems-lab/dsse, protocol.md, "Test Vectors").
    #[test]
    fn pae_matches_the_protocol_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn pae_of_an_empty_body_keeps_the_trailing_space() {
        assert_eq!(pae("t", b""), b"DSSEv1 1 t 0 ");
    }

    #[test]
    fn base64_of_either_alphabet_and_padding_decodes() {
        assert_eq!(decode_base64("aGVsbG8gd29ybGQ=").unwrap(), b"hello world");
        assert_eq!(decode_base64("aGVsbG8gd29ybGQ").unwrap(), b"hello world");
        assert_eq!(
            decode_base64("-_-_Pj8=").unwrap(),
            [0xfb, 0xff, 0xbf, 0x3e, 0x3f]
        );
        assert_eq!(
            decode_base64("+/+/Pj8=").unwrap(),
            [0xfb, 0xff, 0xbf, 0x3e, 0x3f]
        );
        assert!(decode_base64("+_").is_none(), "mixed alphabets");
        assert!(decode_base64("a=b").is_none());
    }
}
