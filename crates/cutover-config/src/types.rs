//! Value types of the configuration: durations, argv arrays, secret references, dates and templates.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Separates an error message from its hint inside a serde custom error, so that the hint survives
/// the trip through the TOML deserializer and can be shown on its own `hint:` line.
pub(crate) const HINT_MARKER: &str = "\u{1f}hint:";

pub(crate) fn with_hint(message: impl fmt::Display, hint: impl fmt::Display) -> String {
    format!("{message}{HINT_MARKER}{hint}")
}

// ---------------------------------------------------------------------------------------------
// Duration
// ---------------------------------------------------------------------------------------------

/// A length of time written the human way: `"500ms"`, `"30s"`, `"2m"`, `"1h30m"`.
///
/// The text the user wrote is kept, so that a configuration serialises back to what was written.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Duration {
    value: std::time::Duration,
    text: String,
}

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{text}`: {reason}")]
pub struct DurationError {
    /// The text that was given.
    pub text: String,
    /// What was wrong with it.
    pub reason: String,
}

impl DurationError {
    /// The hint shown with this error.
    pub fn hint() -> &'static str {
        "write a number with a unit, e.g. \"500ms\", \"30s\", \"2m\", \"1h30m\""
    }
}

impl Duration {
    /// Parses `"500ms"`, `"2m"`, `"1h30m"`, `"1h 30m"` (units: ns, us, ms, s, m, h, d, w).
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        let trimmed = text.trim();
        let fail = |reason: &str| DurationError {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        if trimmed.is_empty() {
            return Err(fail("it is empty"));
        }
        if trimmed.starts_with('-') {
            return Err(fail("a duration cannot be negative"));
        }
        if trimmed.chars().all(|c| c.is_ascii_digit()) {
            return Err(fail("a unit is needed"));
        }
        match humantime::parse_duration(trimmed) {
            Ok(value) => Ok(Self {
                value,
                text: text.to_string(),
            }),
            Err(humantime::DurationError::UnknownUnit { unit, .. }) => Err(fail(&format!(
                "unknown unit `{unit}` (units: ns, us, ms, s, m, h, d, w)"
            ))),
            Err(humantime::DurationError::NumberOverflow) => Err(fail("it is too long")),
            Err(_) => Err(fail("expected numbers, each followed by a unit")),
        }
    }

    /// A duration from a `std::time::Duration`, written in humantime's canonical form.
    pub fn from_std(value: std::time::Duration) -> Self {
        Self {
            value,
            text: humantime::format_duration(value)
                .to_string()
                .replace(' ', ""),
        }
    }

    /// The length of time.
    pub fn get(&self) -> std::time::Duration {
        self.value
    }

    /// The text as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this is zero.
    pub fn is_zero(&self) -> bool {
        self.value.is_zero()
    }

    pub(crate) fn lit(text: &str) -> Self {
        Self::parse(text).expect("built-in default durations are valid")
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Duration({:?})", self.text)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Duration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"30s\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                Duration::parse(v).map_err(|e| E::custom(with_hint(&e, DurationError::hint())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                Err(E::custom(with_hint(
                    format_args!("a duration needs a unit, found the bare number {v}"),
                    format_args!("write it as a string with a unit, e.g. \"{v}s\" or \"{v}ms\""),
                )))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A length of time with a unit: \"500ms\", \"30s\", \"2m\", \"1h30m\".",
            "pattern": "^\\s*([0-9]+\\s*[a-zA-Z]+\\s*)+$",
            "examples": ["500ms", "30s", "2m", "1h30m"]
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Argv
// ---------------------------------------------------------------------------------------------

/// A command as an argv array: the program, then its arguments. cutover never runs shell strings;
/// templates like `{port}` are substituted inside single arguments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Argv(Vec<String>);

impl Argv {
    /// An argv from its parts; `None` when it is empty or the program is empty.
    pub fn new(parts: Vec<String>) -> Option<Self> {
        match parts.first() {
            Some(p) if !p.is_empty() => Some(Self(parts)),
            _ => None,
        }
    }

    /// The program (first element).
    pub fn program(&self) -> &str {
        &self.0[0]
    }

    /// The arguments after the program.
    pub fn args(&self) -> &[String] {
        &self.0[1..]
    }

    /// All elements, program first.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// Substitutes `{name}` placeholders inside each argument (`{{` and `}}` are literal braces).
    /// Placeholders `values` does not know are left as written.
    pub fn render(&self, values: &[(&str, &str)]) -> Vec<String> {
        self.0.iter().map(|a| render_template(a, values)).collect()
    }
}

fn argv_hint_for(s: &str) -> String {
    let shelly = ['|', '&', ';', '>', '<', '$', '`', '*', '(', ')'];
    if s.contains(shelly) {
        let quoted = s.replace('\\', "\\\\").replace('"', "\\\"");
        format!(
            "cutover never runs shell strings; split it into an argv array, or run a shell on purpose: [\"sh\", \"-c\", \"{quoted}\"]"
        )
    } else {
        let parts: Vec<String> = s.split_whitespace().map(|p| format!("{p:?}")).collect();
        let example = if parts.is_empty() {
            "[\"cargo\", \"test\"]".to_string()
        } else {
            format!("[{}]", parts.join(", "))
        };
        format!("use an argv array, e.g. {example}")
    }
}

impl Serialize for Argv {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Argv {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Argv;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an argv array of strings, e.g. [\"cargo\", \"test\"]")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Argv, E> {
                Err(E::custom(with_hint(
                    "expected an argv array, found a string (cutover never runs shell strings)",
                    argv_hint_for(v),
                )))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Argv, A::Error> {
                let mut parts = Vec::new();
                while let Some(p) = seq.next_element::<String>()? {
                    parts.push(p);
                }
                if parts.is_empty() {
                    return Err(de::Error::custom(with_hint(
                        "an argv array needs at least the program",
                        "e.g. [\"cargo\", \"test\"]",
                    )));
                }
                if parts[0].is_empty() {
                    return Err(de::Error::custom(
                        "the program (first element of the argv array) is empty",
                    ));
                }
                Ok(Argv(parts))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Argv {
    fn schema_name() -> Cow<'static, str> {
        "Argv".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "array",
            "description": "A command as an argv array (program first). Never a shell string.",
            "items": { "type": "string" },
            "minItems": 1,
            "examples": [["cargo", "test"]]
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Templates
// ---------------------------------------------------------------------------------------------

/// A placeholder problem in a template string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TemplateError {
    Unknown(String),
    Unclosed,
    StrayClose,
}

/// The placeholders named in `s` (`{name}`; `{{`/`}}` are escapes).
pub(crate) fn placeholders(s: &str) -> Result<Vec<String>, TemplateError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => return Err(TemplateError::Unclosed),
                    }
                }
                out.push(name);
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
            }
            '}' => return Err(TemplateError::StrayClose),
            _ => {}
        }
    }
    Ok(out)
}

/// Checks that `s` only uses `allowed` placeholders.
pub(crate) fn check_template(s: &str, allowed: &[&str]) -> Result<Vec<String>, TemplateError> {
    let names = placeholders(s)?;
    for n in &names {
        if !allowed.contains(&n.as_str()) {
            return Err(TemplateError::Unknown(n.clone()));
        }
    }
    Ok(names)
}

/// Substitutes `{name}` placeholders; unknown ones stay as written.
pub fn render_template(s: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '{' => {
                let mut name = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                match values.iter().find(|(k, _)| *k == name) {
                    Some((_, v)) if closed => out.push_str(v),
                    _ => {
                        out.push('{');
                        out.push_str(&name);
                        if closed {
                            out.push('}');
                        }
                    }
                }
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

/// A reference to a secret: the name of an environment variable or a file that holds it.
/// The value itself is never written in `cutover.toml`, never stored and never printed.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum Secret {
    /// Read from an environment variable of the process that needs it.
    Env {
        /// Name of the environment variable holding the secret.
        env: String,
    },
    /// Read from a file (relative paths are relative to the project directory); a trailing newline is dropped.
    File {
        /// Path of the file holding the secret.
        file: PathBuf,
    },
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Env { env } => write!(f, "Secret(env:{env})"),
            Secret::File { file } => write!(f, "Secret(file:{})", file.display()),
        }
    }
}

/// Why a secret could not be resolved (never contains the value).
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set.
    #[error("secret environment variable {0} is not set")]
    EnvMissing(String),
    /// The file could not be read.
    #[error("cannot read secret file {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
}

impl Secret {
    /// Reads the secret's value. `base_dir` anchors relative file paths (the project directory);
    /// `env` looks up environment variables (pass `&|k| std::env::var(k).ok()` in production).
    pub fn resolve(
        &self,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SecretValue, SecretError> {
        match self {
            Secret::Env { env: name } => env(name)
                .map(SecretValue)
                .ok_or_else(|| SecretError::EnvMissing(name.clone())),
            Secret::File { file } => {
                let path = base_dir.join(file);
                let mut text = std::fs::read_to_string(&path)
                    .map_err(|source| SecretError::File { path, source })?;
                while text.ends_with('\n') || text.ends_with('\r') {
                    text.pop();
                }
                Ok(SecretValue(text))
            }
        }
    }

    /// A short description of where the secret comes from, safe to log (`env:NAME` or `file:PATH`).
    pub fn reference(&self) -> String {
        match self {
            Secret::Env { env } => format!("env:{env}"),
            Secret::File { file } => format!("file:{}", file.display()),
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            env: Option<String>,
            file: Option<PathBuf>,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret reference: { env = \"VAR\" } or { file = \"path\" }")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Secret, E> {
                Err(E::custom(with_hint(
                    "secrets are never written inline in cutover.toml",
                    "reference it instead: { env = \"VARIABLE\" } or { file = \"path/to/secret\" }",
                )))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Secret, A::Error> {
                let raw = Raw::deserialize(de::value::MapAccessDeserializer::new(map))?;
                match (raw.env, raw.file) {
                    (Some(env), None) if !env.is_empty() => Ok(Secret::Env { env }),
                    (None, Some(file)) if !file.as_os_str().is_empty() => Ok(Secret::File { file }),
                    (Some(_), Some(_)) => Err(de::Error::custom(
                        "a secret reference names either `env` or `file`, not both",
                    )),
                    _ => Err(de::Error::custom(with_hint(
                        "a secret reference needs a non-empty `env` or `file`",
                        "e.g. { env = \"SLACK_WEBHOOK_URL\" }",
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A resolved secret value. Its `Debug` is redacted and it has no `Display`; read it with
/// [`SecretValue::expose`] only where it is handed to the thing that needs it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// The secret itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(***)")
    }
}

// ---------------------------------------------------------------------------------------------
// Date
// ---------------------------------------------------------------------------------------------

/// A calendar date `YYYY-MM-DD` (a TOML date literal or a string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// Year.
    pub year: u16,
    /// Month, 1..=12.
    pub month: u8,
    /// Day of month, 1..=31.
    pub day: u8,
}

impl Date {
    /// Parses `YYYY-MM-DD`, checking the day exists.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid date `{s}`, expected YYYY-MM-DD");
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Result<u16, String> {
            let part = &s[r];
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            part.parse::<u16>().map_err(|_| bad())
        };
        let year = num(0..4)?;
        let month = u8::try_from(num(5..7)?).map_err(|_| bad())?;
        let day = u8::try_from(num(8..10)?).map_err(|_| bad())?;
        if !(1..=12).contains(&month) {
            return Err(format!("invalid date `{s}`: month {month} does not exist"));
        }
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days = match month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        if day == 0 || day > days {
            return Err(format!(
                "invalid date `{s}`: day {day} does not exist in that month"
            ));
        }
        Ok(Self { year, month, day })
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Date;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a date YYYY-MM-DD")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Date, E> {
                Date::parse(v).map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Date, A::Error> {
                // TOML date literals reach serde as toml's private datetime map.
                let dt =
                    toml::value::Datetime::deserialize(de::value::MapAccessDeserializer::new(map))?;
                if dt.time.is_some() || dt.offset.is_some() {
                    return Err(de::Error::custom(format!(
                        "expected a date YYYY-MM-DD, found the date-time {dt}"
                    )));
                }
                Date::parse(&dt.to_string()).map_err(de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Date {
    fn schema_name() -> Cow<'static, str> {
        "Date".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "date",
            "description": "A calendar date, YYYY-MM-DD."
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        assert_eq!(
            placeholders("{release_dir}/bin --port={port} {{x}}").unwrap(),
            vec!["release_dir", "port"]
        );
        assert_eq!(placeholders("{a"), Err(TemplateError::Unclosed));
        assert_eq!(placeholders("a}"), Err(TemplateError::StrayClose));
        assert_eq!(
            render_template("{port}-{{x}}-{other}", &[("port", "80")]),
            "80-{x}-{other}"
        );
    }

    #[test]
    fn dates() {
        assert!(Date::parse("2024-02-29").is_ok());
        assert!(Date::parse("2023-02-29").is_err());
        assert!(Date::parse("2023-13-01").is_err());
        assert!(Date::parse("2023-1-01").is_err());
    }
}
