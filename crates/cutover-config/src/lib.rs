//! cutover.toml: model, strict loading with precise errors, JSON schema.
//!
//! [`load`] reads `cutover.toml`, applies environment overrides, types it into [`Config`] and checks
//! the rules across values. Loading is strict: an unknown key is an error with a "did you mean"
//! suggestion, and every error names the file, line and column, shows the line with a caret
//! underline and says what was expected ([`ConfigError`]).
//!
//! # Environment overrides
//!
//! A variable named `CUTOVER_` + a path whose segments are separated by a **double underscore**
//! overrides that configuration key. Segments match keys ignoring case (new keys are lower-cased,
//! except the names of variables in `env` and `secrets` tables, which are kept as written), and a
//! number indexes an array:
//!
//! | variable | sets |
//! |---|---|
//! | `CUTOVER_PROJECT__TAG_FORMAT=release-{version}` | `project.tag_format` |
//! | `CUTOVER_ENVIRONMENTS__STAGING__LISTEN=127.0.0.1:9090` | `environments.staging.listen` |
//! | `CUTOVER_ENVIRONMENTS__PRODUCTION__HOSTS=["web-1","web-2"]` | `environments.production.hosts` |
//! | `CUTOVER_CHECKS__0__TIMEOUT=5m` | `checks[0].timeout` |
//! | `CUTOVER_SERVICE__ENV__RUST_LOG=debug` | `service.env.RUST_LOG` |
//!
//! The value is parsed as a TOML value when it parses (`5`, `true`, `["a","b"]`, `"quoted"`,
//! `{ env = "X" }`) and taken as a plain string otherwise (`5m`, `127.0.0.1:9090`). Overrides are
//! applied in the order of their names and then checked exactly like the file; an error in one
//! names the variable. Variables **without** a double underscore after the prefix, such as
//! `CUTOVER_DATABASE_URL` or `CUTOVER_ACTOR`, are not configuration overrides: they belong to the
//! `cutover` binary.
//!
//! # Secrets
//!
//! `cutover.toml` never holds a secret: it holds a [`Secret`] reference (`{ env = "VAR" }` or
//! `{ file = "path" }`) that is resolved where the value is needed ([`Secret::resolve`]) into a
//! [`SecretValue`] whose `Debug` is redacted. [`Config::redacted_json`] is what `cutover config
//! show` prints.

mod error;
mod freeze;
pub mod init;
mod model;
mod overrides;
mod types;
mod validate;

use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub use error::{ConfigError, Diagnostic, ErrorKind, Origin};
pub use freeze::{FreezeSpan, FreezeWindow, Frozen, WeekTime, Weekday, is_frozen};
pub use model::*;
pub use overrides::is_override;
pub use types::{
    Argv, Date, Duration, DurationError, Secret, SecretError, SecretValue, render_template,
};

use error::{SourceMap, explain, path_string, span_of, syntax};

/// The configuration file's name.
pub const FILE_NAME: &str = "cutover.toml";

/// Loads `path` with the overrides of this process's environment (see the crate docs).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::NotFound {
                path: path.to_path_buf(),
            });
        }
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let src = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let map = SourceMap {
                path: path.to_path_buf(),
                src: &lossy,
                overrides: Vec::new(),
            };
            return Err(map.diagnostic(
                ErrorKind::Syntax,
                "the file is not valid UTF-8",
                Some(valid..valid + 1),
                None,
                Some("invalid UTF-8 here".into()),
                Some("TOML files are UTF-8; re-save the file as UTF-8".into()),
            ));
        }
    };
    let mut vars: Vec<(String, String)> = Vec::new();
    for (k, v) in std::env::vars_os() {
        // Non-Unicode variables cannot be overrides unless their name says so; those are errors.
        let Some(k) = k.to_str() else { continue };
        if !is_override(k) {
            continue;
        }
        let Some(v) = v.to_str() else {
            let map = SourceMap {
                path: path.to_path_buf(),
                src: &src,
                overrides: vec![(
                    src.len() + 1..src.len() + 2,
                    k.to_string(),
                    "<not UTF-8>".into(),
                )],
            };
            return Err(map.diagnostic(
                ErrorKind::Override,
                "the value is not valid UTF-8",
                Some(src.len() + 1..src.len() + 2),
                None,
                None,
                None,
            ));
        };
        vars.push((k.to_string(), v.to_string()));
    }
    load_str(&src, path, &vars)
}

/// Loads a configuration from text. `path` is only used in messages; `vars` are the environment
/// variables to consider as overrides (only `CUTOVER_*__*` ones are used; see the crate docs).
pub fn load_str<K: AsRef<str>, V: AsRef<str>>(
    src: &str,
    path: &Path,
    vars: &[(K, V)],
) -> Result<Config, ConfigError> {
    let overrides = overrides::collect(vars);
    // Each override gets a one-byte synthetic span past the end of the file, so that any error
    // about a value it set can be traced back to the variable.
    let base = src.len() + 1;
    let spans: Vec<Range<usize>> = (0..overrides.len())
        .map(|i| base + i..base + i + 1)
        .collect();
    let map = SourceMap {
        path: path.to_path_buf(),
        src,
        overrides: overrides
            .iter()
            .zip(&spans)
            .map(|(o, s)| (s.clone(), o.var.clone(), o.value.clone()))
            .collect(),
    };

    let table = DeTable::parse(src).map_err(|e| syntax(&map, &e))?;
    let root_span = table.span();
    let mut root = DeValue::Table(table.into_inner());
    for (ov, span) in overrides.iter().zip(&spans) {
        overrides::apply(&mut root, ov, span, &map)?;
    }
    let DeValue::Table(table) = root else {
        unreachable!("the root stays a table: overrides only insert below it")
    };
    let root = Spanned::new(root_span, table);
    let config: Config =
        serde::Deserialize::deserialize(toml::de::Deserializer::from(root.clone()))
            .map_err(|e| explain(&map, &root, &e))?;

    if let Err(p) = validate::validate(&config) {
        let span = span_of(&root, &p.path);
        return Err(map.diagnostic(
            ErrorKind::Semantic,
            &p.message,
            span,
            Some(path_string(&p.path)),
            Some(p.label),
            p.hint,
        ));
    }
    Ok(config)
}

/// The JSON Schema (draft 2020-12) of `cutover.toml`.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<Config>();
    serde_json::to_value(schema).expect("a JSON Schema is plain JSON")
}

/// [`json_schema`] as the text of `docs/cutover.schema.json`: pretty-printed, ending in a newline.
pub fn json_schema_pretty() -> String {
    let mut s = serde_json::to_string_pretty(&json_schema()).expect("a JSON Schema is plain JSON");
    s.push('\n');
    s
}

impl Config {
    /// The configuration as JSON for display (`cutover config show`): secrets appear as their
    /// references (`{"env": "SLACK_URL"}`), never as values, and passwords in URLs as `***`.
    pub fn redacted_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("the configuration serialises to JSON");
        redact_urls(&mut v);
        v
    }

    /// The environment named `name`.
    pub fn environment(&self, name: &str) -> Option<&Environment> {
        self.environments.get(name)
    }

    /// The promotion chain that ends at `target`, first environment first
    /// (e.g. `["staging", "production"]`). `None` when `target` is not an environment.
    pub fn promotion_chain(&self, target: &str) -> Option<Vec<String>> {
        let mut chain = vec![target.to_string()];
        let mut cur = self.environments.get(target)?;
        // Validation guarantees there is no cycle, so this ends.
        while let Some(from) = &cur.promote_from {
            chain.push(from.clone());
            cur = self.environments.get(from)?;
        }
        chain.reverse();
        Some(chain)
    }

    /// The service's name on the agents: `service.name`, else the project name.
    pub fn service_name(&self) -> Option<&str> {
        self.service
            .as_ref()
            .map(|s| s.name.as_deref().unwrap_or(&self.project.name))
    }

    /// The service's name on the agents for `environment`: `<service>-<environment>`. Several
    /// environments may share a host (staging and production both on `local`), so each gets its
    /// own processes, release directories, logs and router there.
    pub fn service_key(&self, environment: &str) -> Option<String> {
        self.service_name()
            .map(|name| format!("{name}-{environment}"))
    }
}

fn redact_urls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => {
            if let Some(r) = redact_url(s) {
                *s = r;
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact_urls),
        serde_json::Value::Object(o) => o.values_mut().for_each(redact_urls),
        _ => {}
    }
}

/// `scheme://user:password@host` → `scheme://user:***@host`.
fn redact_url(s: &str) -> Option<String> {
    let (scheme, rest) = s.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let at = authority.rfind('@')?;
    let userinfo = &authority[..at];
    let (user, _) = userinfo.split_once(':')?;
    Some(format!("{scheme}://{user}:***{}", &rest[at..]))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn url_redaction() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db:5432/x").as_deref(),
            Some("postgres://app:***@db:5432/x")
        );
        assert_eq!(redact_url("https://example.com/a@b"), None);
        assert_eq!(redact_url("https://user@example.com"), None);
    }
}
