//! License policy: an `allow` list of SPDX licenses, per-package exceptions and what to do with
//! unknown licenses; SPDX expressions are evaluated (`OR`: any alternative allowed suffices,
//! `AND`: all must be, `WITH`: the exception must be allowed with the license).

use crate::bom::Bom;
use serde::{Deserialize, Serialize};

/// What to do with a component whose license is unknown or not an SPDX expression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownLicense {
    /// Accept silently.
    Allow,
    /// Report as a warning (not a failure).
    #[default]
    Warn,
    /// Report as a violation.
    Deny,
}

/// A package allowed more than the global list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageException {
    /// Package name as in the BOM (`@scope/name`, `group/artifact`, `vendor/name` or `name`).
    #[serde(alias = "package")]
    pub name: String,
    /// Only this version, when set.
    #[serde(default)]
    pub version: Option<String>,
    /// Licenses (SPDX ids, `X WITH Y` allowed) additionally allowed for it.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Why the exception exists (kept for reviewers; not evaluated).
    #[serde(default)]
    pub reason: Option<String>,
}

/// The `[licenses]` configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicensePolicy {
    /// SPDX license ids allowed everywhere; `X WITH Y` allows that license only with that exception.
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub exceptions: Vec<PackageException>,
    #[serde(default)]
    pub unknown: UnknownLicense,
    /// Also check dev/test (excluded-scope) components. Off by default: they do not ship.
    #[serde(default)]
    pub include_dev: bool,
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// One package that the policy does not accept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub package: String,
    pub version: String,
    /// The expression evaluated (or the raw text when it is not SPDX); `None` when unknown.
    pub expression: Option<String>,
    pub why: String,
    pub severity: Severity,
    pub manifest: String,
}

/// An allow-list entry: license id and optional exception.
struct Allowed {
    license: String,
    exception: Option<String>,
}

fn parse_allowed(entries: &[String]) -> Vec<Allowed> {
    entries
        .iter()
        .map(|e| match e.split_once(" WITH ") {
            Some((l, x)) => Allowed {
                license: l.trim().to_owned(),
                exception: Some(x.trim().to_owned()),
            },
            None => Allowed {
                license: e.trim().to_owned(),
                exception: None,
            },
        })
        .collect()
}

fn req_allowed(req: &spdx::LicenseReq, allowed: &[Allowed]) -> bool {
    let (name, or_later) = match &req.license {
        spdx::LicenseItem::Spdx { id, or_later } => (id.name.to_owned(), *or_later),
        spdx::LicenseItem::Other(r) => (format!("LicenseRef-{}", r.lic_ref), false),
    };
    let addition = req.addition.as_ref().map(|a| a.to_string());
    allowed.iter().any(|a| {
        let name_ok = a.license == name || (or_later && a.license == format!("{name}+"));
        let exception_ok = match (&addition, &a.exception) {
            (None, _) => true,
            (Some(x), Some(y)) => x == y,
            // `MIT WITH X` needs `X` allowed explicitly: an exception changes the terms.
            (Some(_), None) => false,
        };
        name_ok && exception_ok
    })
}

/// Checks every component of `bom` against `policy`.
pub fn check(bom: &Bom, policy: &LicensePolicy) -> Vec<Violation> {
    let global = parse_allowed(&policy.allow);
    let mut out = Vec::new();
    for bc in &bom.components {
        let c = &bc.component;
        if c.scope == crate::model::Scope::Excluded && !policy.include_dev {
            continue;
        }
        let package = match &c.namespace {
            Some(ns) => format!("{ns}/{}", c.name),
            None => c.name.clone(),
        };
        let extra: Vec<String> = policy
            .exceptions
            .iter()
            .filter(|e| e.name == package && e.version.as_ref().is_none_or(|v| *v == c.version))
            .flat_map(|e| e.allow.iter().cloned())
            .collect();
        let mut allowed = parse_allowed(&extra);
        allowed.extend(parse_allowed(&policy.allow));
        // An empty allow list means "no policy": only unknown licenses are reported.
        let no_policy = global.is_empty() && extra.is_empty();
        let violation = |expression: Option<String>, why: String, severity: Severity| Violation {
            package: package.clone(),
            version: c.version.clone(),
            expression,
            why,
            severity,
            manifest: c.manifest.clone(),
        };
        let unknown = |expr: Option<String>, why: &str| -> Option<Violation> {
            match policy.unknown {
                UnknownLicense::Allow => None,
                UnknownLicense::Warn => Some(violation(expr, why.to_owned(), Severity::Warning)),
                UnknownLicense::Deny => Some(violation(expr, why.to_owned(), Severity::Error)),
            }
        };
        let found = match &bc.license {
            None => unknown(
                None,
                "no license found in the lockfile or a local package cache",
            ),
            Some(l) => match &l.expression {
                None => unknown(Some(l.raw.clone()), "the license is not an SPDX expression"),
                Some(_) if no_policy => None,
                Some(e) => match spdx::Expression::parse_mode(e, spdx::ParseMode::LAX) {
                    Err(err) => unknown(
                        Some(e.clone()),
                        &format!("the SPDX expression does not parse: {err}"),
                    ),
                    Ok(expr) => match expr.evaluate_with_failures(|req| req_allowed(req, &allowed))
                    {
                        Ok(()) => None,
                        Err(failed) => {
                            let names: Vec<String> =
                                failed.iter().map(|r| r.req.to_string()).collect();
                            let why = if e.contains(" OR ") {
                                format!(
                                    "no allowed alternative: {} not in the allow list",
                                    names.join(", ")
                                )
                            } else {
                                format!("not allowed: {}", names.join(", "))
                            };
                            Some(violation(Some(e.clone()), why, Severity::Error))
                        }
                    },
                },
            },
        };
        out.extend(found);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(list: &[&str], expr: &str) -> bool {
        let a = parse_allowed(&list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        spdx::Expression::parse(expr)
            .expect("valid")
            .evaluate(|r| req_allowed(r, &a))
    }

    #[test]
    fn evaluates_or_and_with() {
        assert!(allowed(&["MIT"], "MIT OR GPL-3.0-only"));
        assert!(!allowed(&["MIT"], "MIT AND GPL-3.0-only"));
        assert!(allowed(
            &["MIT", "Apache-2.0"],
            "(MIT OR GPL-3.0-only) AND Apache-2.0"
        ));
        assert!(!allowed(
            &["GPL-2.0-only"],
            "GPL-2.0-only WITH Classpath-exception-2.0"
        ));
        assert!(allowed(
            &["GPL-2.0-only WITH Classpath-exception-2.0"],
            "GPL-2.0-only WITH Classpath-exception-2.0"
        ));
        assert!(allowed(&["Apache-2.0"], "Apache-2.0"));
    }
}
