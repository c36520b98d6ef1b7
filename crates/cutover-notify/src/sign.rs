//! The signature of generic webhook notifications: `X-Cutover-Signature-256: sha256=<hex>` where
//! the HMAC-SHA256 (keyed with the channel's secret) covers `<timestamp>.<body>`, and
//! `X-Cutover-Timestamp: <unix seconds>`. Binding the timestamp into the MAC lets a receiver
//! refuse replays of an old delivery (compare it with its clock) without trusting the header alone.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Cutover-Signature-256";
/// The timestamp header (Unix seconds, decimal).
pub const TIMESTAMP_HEADER: &str = "X-Cutover-Timestamp";

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; `new_from_slice` only fails for fixed-size-key MACs.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-Cutover-Signature-256` value for `body` sent at `timestamp`: `sha256=<hex>`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Checks a signature header value in constant time (what a receiver does).
pub fn verify(secret: &[u8], timestamp: i64, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    mac(secret, timestamp, body).verify_slice(&sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_an_independent_hmac_computation() {
        // RFC 4231 test case 2 ("Jefe" / "what do ya want for nothing?") with the message split
        // as timestamp "what" is not possible, so check the construction against a direct HMAC.
        let mut direct = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
        direct.update(b"1700000000.{\"a\":1}");
        let expected = format!("sha256={}", hex::encode(direct.finalize().into_bytes()));
        assert_eq!(sign(b"Jefe", 1_700_000_000, b"{\"a\":1}"), expected);
    }

    #[test]
    fn rfc4231_case_2_through_the_same_mac() {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
        m.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(m.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verify_refuses_other_bodies_times_and_keys() {
        let sig = sign(b"k", 10, b"body");
        assert!(verify(b"k", 10, b"body", &sig));
        assert!(!verify(b"k", 11, b"body", &sig));
        assert!(!verify(b"k", 10, b"bodx", &sig));
        assert!(!verify(b"j", 10, b"body", &sig));
        assert!(!verify(b"k", 10, b"body", "sha1=00"));
        assert!(!verify(b"k", 10, b"body", "sha256=zz"));
    }
}
