//! Who is asking: the API token of a request (`Authorization: Bearer`, else `?token=` which is
//! then kept in an HttpOnly SameSite=Strict cookie `cutover_token`, else that cookie), looked up
//! by its sha256 and compared in constant time, and what its scope allows.
//!
//! Reads (GET, HEAD) need a viewer token unless the server runs with `--public-read`; writes need
//! a deployer token (its environments are checked by the handler, which knows the environment);
//! `/api/v1/tokens` needs admin. No token, an unknown or a revoked one: 401. Not enough scope or
//! not this environment: 403. The agent protocol (host tokens), the webhooks (signatures) and the
//! OpenAPI document are outside this layer.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use cutover_store::{ApiToken, DataVersion, TokenScope};
use subtle::ConstantTimeEq as _;

use crate::ServerState;
use crate::cache::RequestVersion;
use crate::error::ApiError;
use crate::tokens::{hash_secret, looks_like_token};

/// The browser cookie that carries a token given once as `?token=`.
pub const COOKIE: &str = "cutover_token";

/// `last_used_at` is written at most this often per token (it is a hint, not a log; the audit
/// log records what tokens did).
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// Who made a request, as the handlers see it (a request extension).
#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    /// A valid token.
    Token(ApiToken),
    /// No token, on a read the server lets anyone make (`--public-read`).
    Anonymous,
}

impl Principal {
    /// The actor recorded in the audit events this request writes: the token's name.
    #[must_use]
    pub fn actor(&self) -> String {
        match self {
            Principal::Token(t) => t.name.clone(),
            Principal::Anonymous => "anonymous".to_owned(),
        }
    }

    /// Allows the request when the token has `scope` (or more) and, for an environment, lists it.
    pub fn require(&self, scope: TokenScope, environment: Option<&str>) -> Result<(), ApiError> {
        let Principal::Token(token) = self else {
            return Err(ApiError::unauthorized("this request needs an API token")
                .with_hint("send `Authorization: Bearer cutover_…` (`cutover token create`)"));
        };
        if token.scope < scope {
            return Err(ApiError::forbidden(format!(
                "token `{}` has scope {}; this needs {}",
                token.name,
                token.scope.as_str(),
                scope.as_str()
            ))
            .with_hint(format!(
                "create one with `cutover token create --name N --scope {}`",
                scope.as_str()
            )));
        }
        if let Some(env) = environment
            && token.scope < TokenScope::Admin
            && !token.allows_environment(env)
        {
            return Err(ApiError::forbidden(format!(
                "token `{}` may not act on environment `{env}` (it may on {})",
                token.name,
                token.environments.join(", ")
            ))
            .with_field("environment"));
        }
        Ok(())
    }
}

/// Where the request's token came from.
enum Presented {
    Header(String),
    Query(String),
    Cookie(String),
}

impl Presented {
    fn secret(&self) -> &str {
        match self {
            Presented::Header(s) | Presented::Query(s) | Presented::Cookie(s) => s,
        }
    }
}

fn presented(req: &Request) -> Result<Option<Presented>, ApiError> {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| ApiError::unauthorized("the Authorization header is not ASCII"))?;
        let Some(secret) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
        else {
            return Err(
                ApiError::unauthorized("the Authorization header is not a bearer token")
                    .with_hint("send `Authorization: Bearer cutover_…`"),
            );
        };
        return Ok(Some(Presented::Header(secret.trim().to_owned())));
    }
    if let Some(query) = req.uri().query()
        && let Some(secret) = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("token="))
    {
        return Ok(Some(Presented::Query(secret.to_owned())));
    }
    Ok(cookie(req.headers(), COOKIE).map(Presented::Cookie))
}

/// The value of cookie `name` in the request's `Cookie` headers.
#[must_use]
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
}

/// The scope a request needs before its handler runs (environment checks come in the handler).
fn needed_scope(method: &Method, path: &str) -> Option<TokenScope> {
    if path.starts_with("/api/v1/tokens") {
        return Some(TokenScope::Admin);
    }
    if method == Method::GET || method == Method::HEAD {
        Some(TokenScope::Viewer)
    } else {
        Some(TokenScope::Deployer)
    }
}

/// Paths that carry their own authentication or need none.
fn exempt(path: &str) -> bool {
    path == "/api/openapi.json" || path.starts_with("/webhooks/") || path.starts_with("/agent/")
}

/// The authentication layer (see the module documentation).
pub async fn authenticate(
    State(state): State<ServerState>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_owned();
    if exempt(&path) {
        return next.run(req).await;
    }
    let is_read = req.method() == Method::GET || req.method() == Method::HEAD;
    let presented = match presented(&req) {
        Ok(p) => p,
        Err(e) => return fail(&state, "malformed", e),
    };
    let Some(presented) = presented else {
        if is_read && state.public_read && !path.starts_with("/api/v1/tokens") {
            req.extensions_mut().insert(Principal::Anonymous);
            return next.run(req).await;
        }
        return fail(
            &state,
            "missing",
            ApiError::unauthorized("this request needs an API token").with_hint(
                "send `Authorization: Bearer cutover_…`; `cutover token create` makes one",
            ),
        );
    };
    let (token, version) = match lookup(&state, presented.secret()).await {
        Ok(t) => t,
        Err((reason, e)) => return fail(&state, reason, e),
    };
    req.extensions_mut().insert(RequestVersion(version));
    let principal = Principal::Token(token.clone());
    if let Some(scope) = needed_scope(req.method(), &path)
        && let Err(e) = principal.require(scope, None)
    {
        state.metrics.auth_failure("scope");
        return e.into_response();
    }
    if token
        .last_used_at
        .is_none_or(|t| (Utc::now() - t).to_std().unwrap_or_default() >= TOUCH_EVERY)
    {
        let store = state.store.clone();
        let id = token.id;
        // A hint only: the request does not wait for it, and a failure loses nothing.
        tokio::spawn(async move {
            if let Err(e) = store.touch_api_token(id, Utc::now()).await {
                tracing::debug!(token = id, "recording the token's last use failed: {e}");
            }
        });
    }
    req.extensions_mut().insert(principal);
    let from_query = matches!(presented, Presented::Query(_));
    let mut response = next.run(req).await;
    if from_query
        && let Ok(value) = HeaderValue::from_str(&format!(
            "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
            presented.secret()
        ))
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

fn fail(state: &ServerState, reason: &str, e: ApiError) -> Response {
    state.metrics.auth_failure(reason);
    e.into_response()
}

/// The token whose secret is `secret`, and the data version read with it (one round trip).
async fn lookup(
    state: &ServerState,
    secret: &str,
) -> Result<(ApiToken, Option<DataVersion>), (&'static str, ApiError)> {
    let unknown = || {
        (
            "unknown",
            ApiError::unauthorized("the API token is not known")
                .with_hint("`cutover token ls` lists the tokens; `cutover token create` makes one"),
        )
    };
    if !looks_like_token(secret) {
        return Err(unknown());
    }
    let hash = hash_secret(secret);
    // Read on every request, never kept: a token revoked through any replica is refused by
    // every replica at once.
    let (token, version) = state
        .store
        .find_api_token_versioned(&hash)
        .await
        .map_err(|e| ("store", ApiError::from(e)))?;
    let token = token.ok_or_else(unknown)?;
    // The lookup is by hash; compare again in constant time so that no timing of the database's
    // index comparison is the only check.
    if !bool::from(token.token_hash.as_bytes().ct_eq(hash.as_bytes())) {
        return Err(unknown());
    }
    if token.revoked_at.is_some() {
        return Err((
            "revoked",
            ApiError::unauthorized(format!("the API token `{}` was revoked", token.name)),
        ));
    }
    Ok((token, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(scope: TokenScope, envs: &[&str]) -> Principal {
        Principal::Token(ApiToken {
            id: 1,
            name: "t".into(),
            scope,
            environments: envs.iter().map(|e| (*e).to_owned()).collect(),
            token_hash: String::new(),
            created_by: "x".into(),
            created_at: Utc::now(),
            revoked_at: None,
            last_used_at: None,
        })
    }

    #[test]
    fn scopes_and_environments() {
        use crate::error::ErrorCode;
        let viewer = token(TokenScope::Viewer, &[]);
        assert!(viewer.require(TokenScope::Viewer, None).is_ok());
        assert_eq!(
            viewer
                .require(TokenScope::Deployer, Some("staging"))
                .unwrap_err()
                .code(),
            ErrorCode::Forbidden
        );
        let staging = token(TokenScope::Deployer, &["staging"]);
        assert!(
            staging
                .require(TokenScope::Deployer, Some("staging"))
                .is_ok()
        );
        assert_eq!(
            staging
                .require(TokenScope::Deployer, Some("production"))
                .unwrap_err()
                .code(),
            ErrorCode::Forbidden
        );
        assert!(
            token(TokenScope::Deployer, &[])
                .require(TokenScope::Deployer, Some("production"))
                .is_ok()
        );
        assert!(
            token(TokenScope::Admin, &["staging"])
                .require(TokenScope::Deployer, Some("production"))
                .is_ok()
        );
        assert_eq!(
            Principal::Anonymous
                .require(TokenScope::Viewer, None)
                .unwrap_err()
                .code(),
            ErrorCode::Unauthorized
        );
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; cutover_token=cutover_x; b=2"),
        );
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("cutover_x"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
