//! The binary's one error type: it knows a user's mistake (exit 2) from a failed operation (exit 1)
//! and renders `error:`, `caused by:` and `hint:` lines.

use std::fmt;

/// What kind of failure this is; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bad input or configuration: exit 2, and nothing was changed.
    Usage,
    /// The operation ran and failed (a check failed, a deployment was rolled back, a chain is broken):
    /// exit 1.
    Failed,
    /// Something unexpected (I/O, a bug): exit 1.
    Internal,
}

/// An error on its way to the terminal.
#[derive(Debug)]
pub struct CliError {
    pub kind: Kind,
    pub message: String,
    pub causes: Vec<String>,
    pub hints: Vec<String>,
    /// A JSON document to print on stdout under `--json` instead of the generic error document
    /// (e.g. the report of a failed `audit verify`).
    pub json: Option<Box<serde_json::Value>>,
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;

impl CliError {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            causes: Vec::new(),
            hints: Vec::new(),
            json: None,
        }
    }

    /// Bad input or configuration (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }

    /// The operation ran and failed (exit 1).
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(Kind::Failed, message)
    }

    /// Unexpected failure (exit 1).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Kind::Internal, message)
    }

    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    #[must_use]
    pub fn with_hint_opt(mut self, hint: Option<String>) -> Self {
        self.hints.extend(hint);
        self
    }

    #[must_use]
    pub fn with_cause(mut self, cause: impl fmt::Display) -> Self {
        self.causes.push(cause.to_string());
        self
    }

    /// Adds the whole `source()` chain of `err` as causes.
    #[must_use]
    pub fn with_source_chain(mut self, err: &(dyn std::error::Error + 'static)) -> Self {
        let mut next = Some(err);
        while let Some(e) = next {
            self.causes.push(e.to_string());
            next = e.source();
        }
        self
    }

    #[must_use]
    pub fn with_json(mut self, json: serde_json::Value) -> Self {
        self.json = Some(Box::new(json));
        self
    }

    pub fn exit_code(&self) -> u8 {
        match self.kind {
            Kind::Usage => 2,
            Kind::Failed | Kind::Internal => 1,
        }
    }

    /// The machine-readable form printed on stdout under `--json`.
    pub fn to_json(&self) -> serde_json::Value {
        if let Some(json) = &self.json {
            return (**json).clone();
        }
        serde_json::json!({
            "error": {
                "kind": match self.kind {
                    Kind::Usage => "usage",
                    Kind::Failed => "failed",
                    Kind::Internal => "internal",
                },
                "message": self.message,
                "causes": self.causes,
                "hints": self.hints,
                "exit_code": self.exit_code(),
            }
        })
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<std::io::Error> for CliError {
    fn from(err: std::io::Error) -> Self {
        CliError::internal(err.to_string())
    }
}

/// `result.context(...)`-style helpers for turning library errors into `CliError`s.
pub trait ResultExt<T> {
    /// An internal failure with a message saying what we were doing.
    fn internal(self, doing: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: std::error::Error + 'static> ResultExt<T> for std::result::Result<T, E> {
    fn internal(self, doing: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| CliError::internal(doing()).with_source_chain(&e))
    }
}
