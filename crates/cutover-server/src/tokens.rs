//! API tokens: new secrets (`cutover_` + 43 characters of base64url: 32 random bytes), their
//! stored form (the sha256 hex of the whole secret; the secret itself is shown once and never
//! kept), and creating, listing and revoking them with their audit events (`token.create`,
//! `token.revoke`: name, scope and environments, never the secret or its hash).

use base64::Engine as _;
use chrono::Utc;
use cutover_store::{ApiToken, Audit, Change, NewApiToken, Store, StoreError, TokenScope};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Every API token starts with this, so that it is recognised (e.g. by secret scanners).
pub const TOKEN_PREFIX: &str = "cutover_";

/// The length of a token: the prefix and 43 characters of unpadded base64url (32 bytes).
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + 43;

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the operating system's random source failed: {0}")]
    Random(String),
    #[error("bad token name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new random secret.
pub fn new_secret() -> Result<String, TokenError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// How a secret is stored: lowercase hex sha256 of the whole secret. Secrets are 256 random bits,
/// so a plain hash is enough: there is no dictionary to guess from.
#[must_use]
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` hashes to `stored`, compared in constant time.
#[must_use]
pub fn verify_secret(secret: &str, stored: &str) -> bool {
    bool::from(hash_secret(secret).as_bytes().ct_eq(stored.as_bytes()))
}

/// Whether `s` has the shape of a token (checked before any lookup, so that junk costs nothing).
#[must_use]
pub fn looks_like_token(s: &str) -> bool {
    s.len() == TOKEN_LEN
        && s.starts_with(TOKEN_PREFIX)
        && s[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks a token name: 1–64 printable characters without spaces.
pub fn check_name(name: &str) -> Result<(), TokenError> {
    let bad = |reason| TokenError::BadName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() || name.chars().count() > 64 {
        return Err(bad("a name has 1 to 64 characters"));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("a name has no spaces or control characters"));
    }
    Ok(())
}

/// Creates a token named `name` with `scope` on `environments` (empty: all), by `actor`; returns
/// the record and the secret (the only time it is known).
pub async fn create_token(
    store: &dyn Store,
    name: &str,
    scope: TokenScope,
    environments: &[String],
    actor: &str,
) -> Result<(ApiToken, String), TokenError> {
    check_name(name)?;
    let secret = new_secret()?;
    let token_hash = hash_secret(&secret);
    let now = Utc::now();
    let mut environments = environments.to_vec();
    environments.sort();
    environments.dedup();
    let applied = store
        .apply(
            &[Change::InsertApiToken(NewApiToken {
                name: name.to_owned(),
                scope,
                environments: environments.clone(),
                token_hash: token_hash.clone(),
                created_by: actor.to_owned(),
                created_at: now,
            })],
            // The id is assigned in the same transaction, so the subject names the token by name.
            &Audit::new(
                actor,
                "token.create",
                format!("token:{name}"),
                json!({ "name": name, "scope": scope.as_str(), "environments": environments }),
            ),
        )
        .await?;
    let id = applied.id(0).ok_or_else(|| StoreError::Corrupt {
        what: "inserting an API token returned no id".to_owned(),
    })?;
    let token = store
        .find_api_token(&token_hash)
        .await?
        .filter(|t| t.id == id)
        .ok_or_else(|| StoreError::NotFound {
            what: format!("API token {id} just created"),
        })?;
    Ok((token, secret))
}

/// Revokes token `id` (audited as `token.revoke` by `actor`); returns it as revoked.
pub async fn revoke_token(store: &dyn Store, id: i64, actor: &str) -> Result<ApiToken, TokenError> {
    let token = store
        .list_api_tokens()
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| StoreError::NotFound {
            what: format!("API token {id}"),
        })?;
    let now = Utc::now();
    store
        .apply_one(
            Change::RevokeApiToken { id, at: now },
            &Audit::new(
                actor,
                "token.revoke",
                format!("token:{id}"),
                json!({
                    "name": token.name,
                    "scope": token.scope.as_str(),
                    "environments": token.environments,
                }),
            ),
        )
        .await?;
    Ok(ApiToken {
        revoked_at: Some(now),
        ..token
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_the_documented_shape() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert_ne!(a, b);
        assert!(looks_like_token(&a), "{a}");
        assert_eq!(a.len(), TOKEN_LEN);
        let h = hash_secret(&a);
        assert_eq!(h.len(), 64);
        assert!(!h.contains(&a[TOKEN_PREFIX.len()..]));
        assert!(verify_secret(&a, &h));
        assert!(!verify_secret(&b, &h));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("ci-deployer").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
    }

    proptest::proptest! {
        #[test]
        fn only_token_shaped_strings_look_like_tokens(s in ".{0,60}") {
            if looks_like_token(&s) {
                proptest::prop_assert!(s.starts_with(TOKEN_PREFIX) && s.len() == TOKEN_LEN);
            }
        }
    }
}
