//! Request bodies and query strings: JSON read under the body limit, with errors that name the
//! field (`environment`, `hosts[2].name`) and the position, in the API's error shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

/// A JSON body of type `T`: 400 naming the field when it does not fit, 413 above the limit.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("the request body is larger than {} bytes", crate::MAX_BODY),
                )
                .with_hint("API bodies are small JSON documents")
            } else {
                ApiError::bad_request(format!("cannot read the request body: {rejection}"))
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses `bytes` as a `T`; the error names the field that failed (its JSON path) and where.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let value = result.map_err(|err| {
        let inner = err.inner();
        let mut path = err.path().to_string();
        if path == "." {
            path.clear();
        }
        let message = inner.to_string();
        // serde names a missing field only in its message (`missing field `x``), at its parent's path.
        if let Some(missing) = missing_field(&message) {
            path = if path.is_empty() {
                missing.to_owned()
            } else {
                format!("{path}.{missing}")
            };
        }
        let what = match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "the request body is not valid JSON"
            }
            serde_json::error::Category::Io => "the request body cannot be read",
            serde_json::error::Category::Data => "the request body does not fit",
        };
        let mut e = if path.is_empty() {
            ApiError::bad_request(format!("{what}: {message}"))
        } else {
            ApiError::bad_request(format!("{what}: field `{path}`: {message}")).with_field(path)
        };
        if inner.classify() == serde_json::error::Category::Eof
            && bytes.iter().all(u8::is_ascii_whitespace)
        {
            e = e.with_hint("send a JSON object with `Content-Type: application/json`");
        }
        e
    })?;
    // Trailing garbage after the document is an error too.
    de.end().map_err(|e| {
        ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
            .with_hint("send exactly one JSON document")
    })?;
    Ok(value)
}

fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

/// A query string of type `T`, with the API's error shape (400 naming the parameter).
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default()).map(ApiQuery)
    }
}

/// Parses a query string into `T`; the error names the parameter when serde says which.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded_deserializer(query);
    de.map_err(|(field, message)| {
        let e = ApiError::bad_request(format!("bad query string: {message}"));
        match field {
            Some(f) => e.with_field(f),
            None => e,
        }
    })
}

/// Query strings are flat `key=value` pairs: read them into a JSON object of strings and let the
/// target type parse numbers and times from strings (see [`crate::api::params`]).
fn serde_urlencoded_deserializer<T: DeserializeOwned>(
    query: &str,
) -> Result<T, (Option<String>, String)> {
    let mut map = serde_json::Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k).map_err(|m| (None, m))?;
        let v = percent_decode(v).map_err(|m| (Some(k.clone()), m))?;
        map.insert(k, serde_json::Value::String(v));
    }
    let value = serde_json::Value::Object(map);
    serde_path_to_error::deserialize(value).map_err(|err| {
        let mut path = err.path().to_string();
        if path == "." {
            path.clear();
        }
        let message = err.inner().to_string();
        let field = if path.is_empty() {
            missing_field(&message).map(str::to_owned)
        } else {
            Some(path)
        };
        (field, message)
    })
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad percent-escape in `{s}`"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("`{s}` is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        environment: String,
        version: String,
        #[serde(default)]
        tags: Vec<Tag>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Tag {
        name: String,
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_json::<Body>(br#"{"environment": 3, "version": "1"}"#).unwrap_err();
        assert_eq!(e.0.field.as_deref(), Some("environment"));
        let e = parse_json::<Body>(br#"{"environment": "s"}"#).unwrap_err();
        assert_eq!(e.0.field.as_deref(), Some("version"));
        let e = parse_json::<Body>(
            br#"{"environment": "s", "version": "1", "tags": [{"name": "a"}, {}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.0.field.as_deref(), Some("tags[1].name"));
        let e = parse_json::<Body>(br#"{"environment": "s", "version": "1"} x"#).unwrap_err();
        assert_eq!(e.0.code, ErrorCode::BadRequest);
        let ok = parse_json::<Body>(br#"{"environment": "s", "version": "1"}"#).unwrap();
        assert_eq!(ok.environment, "s");
    }

    #[test]
    fn query_strings_decode_and_name_parameters() {
        #[derive(Debug, Deserialize)]
        struct Q {
            env: String,
            #[serde(default)]
            limit: Option<String>,
        }
        let q: Q = parse_query("env=prod%20eu&limit=3").unwrap();
        assert_eq!((q.env.as_str(), q.limit.as_deref()), ("prod eu", Some("3")));
        let e = parse_query::<Q>("limit=3").unwrap_err();
        assert_eq!(e.0.field.as_deref(), Some("env"));
        assert!(parse_query::<Q>("env=%zz").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_errors_are_bad_requests(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            if let Err(e) = parse_json::<Body>(&bytes) {
                proptest::prop_assert_eq!(e.0.code, ErrorCode::BadRequest);
            }
        }

        #[test]
        fn a_wrong_type_in_any_field_is_named(env in proptest::bool::ANY, n in proptest::num::i64::ANY) {
            let (body, field) = if env {
                (format!(r#"{{"environment": {n}, "version": "1"}}"#), "environment")
            } else {
                (format!(r#"{{"environment": "e", "version": {n}}}"#), "version")
            };
            let e = parse_json::<Body>(body.as_bytes()).unwrap_err();
            proptest::prop_assert_eq!(e.0.field.as_deref(), Some(field));
        }

        #[test]
        fn query_parsing_never_panics(q in ".{0,80}") {
            let _ = parse_query::<std::collections::BTreeMap<String, String>>(&q);
        }
    }
}
