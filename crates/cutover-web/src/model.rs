//! What the pages show of the records' JSON documents (CycloneDX BOMs, vulnerability reports,
//! the plan's changes, proof envelopes, audit payloads), read leniently: a field that is missing
//! or of another shape shows as absent, never as an error page.

use serde::Serialize;
use serde_json::Value;

/// Longest audit payload summary shown in a table cell.
const SUMMARY_CHARS: usize = 160;

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// One component of a CycloneDX BOM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Component {
    pub name: String,
    pub version: String,
    pub kind: String,
    pub purl: Option<String>,
    /// SPDX ids, names or expressions, joined with ` AND ` when there are several entries.
    pub license: Option<String>,
    pub scope: Option<String>,
}

/// The components of a CycloneDX JSON BOM, in document order (with nested components after
/// their parent).
pub(crate) fn components(bom: &Value) -> Vec<Component> {
    let mut out = Vec::new();
    if let Some(list) = bom.get("components").and_then(Value::as_array) {
        collect(list, &mut out);
    }
    out
}

fn collect(list: &[Value], out: &mut Vec<Component>) {
    for c in list {
        let name = match (text(c, "group"), text(c, "name")) {
            (Some(g), Some(n)) if !g.is_empty() => format!("{g}/{n}"),
            (_, Some(n)) => n,
            _ => continue,
        };
        out.push(Component {
            name,
            version: text(c, "version").unwrap_or_default(),
            kind: text(c, "type").unwrap_or_default(),
            purl: text(c, "purl"),
            license: licenses(c.get("licenses")),
            scope: text(c, "scope"),
        });
        if let Some(nested) = c.get("components").and_then(Value::as_array) {
            collect(nested, out);
        }
    }
}

/// CycloneDX `licenses`: `[{license: {id | name}} | {expression}]`.
fn licenses(v: Option<&Value>) -> Option<String> {
    let list = v?.as_array()?;
    let parts: Vec<String> = list
        .iter()
        .filter_map(|entry| {
            text(entry, "expression").or_else(|| {
                let l = entry.get("license")?;
                text(l, "id").or_else(|| text(l, "name"))
            })
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" AND "))
}

/// Components per license (sorted by count, then name), for the release page's summary.
pub(crate) fn license_counts(components: &[Component]) -> Vec<(String, usize)> {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for c in components {
        let key = c
            .license
            .clone()
            .unwrap_or_else(|| "(no license declared)".to_owned());
        *counts.entry(key).or_default() += 1;
    }
    let mut out: Vec<_> = counts.into_iter().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

/// One vulnerability finding of a release's scan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Finding {
    pub id: String,
    pub aliases: Vec<String>,
    pub summary: Option<String>,
    pub score: Option<f64>,
    pub level: Option<String>,
    pub package: String,
    pub fixed: Option<String>,
    pub informational: Option<String>,
}

/// The scan of a release (`Release.vulns`): `{scanned_at, database, checked, findings, not_evaluated}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Scan {
    pub scanned_at: Option<String>,
    pub database: Option<String>,
    pub checked: Option<u64>,
    pub findings: Vec<Finding>,
    pub not_evaluated: usize,
}

pub(crate) fn scan(v: &Value) -> Scan {
    let findings = v
        .get("findings")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|f| {
                    let package = f
                        .get("package")
                        .map(|p| {
                            format!(
                                "{}@{}",
                                text(p, "name").unwrap_or_default(),
                                text(p, "version").unwrap_or_default()
                            )
                        })
                        .unwrap_or_default();
                    Finding {
                        id: text(f, "id").unwrap_or_default(),
                        aliases: f
                            .get("aliases")
                            .and_then(Value::as_array)
                            .map(|a| {
                                a.iter()
                                    .filter_map(|x| x.as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default(),
                        summary: text(f, "summary"),
                        score: f.get("score").and_then(Value::as_f64),
                        level: text(f, "level"),
                        package,
                        fixed: text(f, "fixed"),
                        informational: text(f, "informational"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let database = match v.get("database") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => None,
        Some(other) => Some(summarize(other)),
    };
    Scan {
        scanned_at: text(v, "scanned_at"),
        database,
        checked: v.get("checked").and_then(Value::as_u64),
        findings,
        not_evaluated: v
            .get("not_evaluated")
            .and_then(Value::as_array)
            .map_or(0, Vec::len),
    }
}

/// One change of a release (`cutover plan --json`'s `changes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ChangeRow {
    pub id: String,
    pub kind: String,
    pub scope: Option<String>,
    pub breaking: bool,
    pub summary: String,
    pub author: Option<String>,
    pub time: Option<String>,
}

pub(crate) fn changes(v: &Value) -> Vec<ChangeRow> {
    v.as_array()
        .map(|list| {
            list.iter()
                .map(|c| ChangeRow {
                    id: text(c, "id").unwrap_or_default(),
                    kind: text(c, "type").unwrap_or_default(),
                    scope: text(c, "scope"),
                    breaking: c.get("breaking").and_then(Value::as_bool).unwrap_or(false),
                    summary: text(c, "summary").unwrap_or_default(),
                    author: c.get("author").and_then(|a| text(a, "name")),
                    time: text(c, "time"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What a proof of delivery says, for a table row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ProofRow {
    pub id: i64,
    pub host: String,
    pub created_at: String,
    pub predicate_type: Option<String>,
    /// `name@sha256:…` of the statement's subjects.
    pub subjects: Vec<String>,
    pub keyids: Vec<String>,
    pub envelope: String,
}

pub(crate) fn proof_row(p: &cutover_store::Proof) -> ProofRow {
    let subjects = p
        .statement
        .get("subject")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|s| {
                    let digest = s
                        .get("digest")
                        .and_then(Value::as_object)
                        .and_then(|d| d.iter().next())
                        .map(|(alg, hex)| format!("{alg}:{}", hex.as_str().unwrap_or_default()))
                        .unwrap_or_default();
                    format!("{} {digest}", text(s, "name").unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default();
    let keyids = p
        .envelope
        .get("signatures")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(|s| text(s, "keyid")).collect())
        .unwrap_or_default();
    ProofRow {
        id: p.id,
        host: p.host.clone(),
        created_at: p
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        predicate_type: text(&p.statement, "predicateType"),
        subjects,
        keyids,
        envelope: serde_json::to_string_pretty(&p.envelope).unwrap_or_default(),
    }
}

/// A one-line summary of a JSON payload for a table cell (`key=value …`, cut to a length).
pub(crate) fn summarize(v: &Value) -> String {
    let full = match v {
        Value::Object(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    if full.chars().count() > SUMMARY_CHARS {
        let mut cut: String = full.chars().take(SUMMARY_CHARS - 1).collect();
        cut.push('…');
        cut
    } else {
        full
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn licenses_of_every_cyclonedx_shape() {
        let bom = json!({"components": [
            {"type": "library", "name": "serde", "version": "1.0.0", "licenses": [{"expression": "MIT OR Apache-2.0"}]},
            {"type": "library", "group": "org.example", "name": "lib", "version": "2", "licenses": [{"license": {"id": "MIT"}}, {"license": {"name": "Custom"}}],
             "components": [{"type": "library", "name": "inner", "version": "0.1"}]},
        ]});
        let c = components(&bom);
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].license.as_deref(), Some("MIT OR Apache-2.0"));
        assert_eq!(c[1].name, "org.example/lib");
        assert_eq!(c[1].license.as_deref(), Some("MIT AND Custom"));
        assert_eq!(c[2].license, None);
        let counts = license_counts(&c);
        assert_eq!(counts.len(), 3);
        assert!(
            counts
                .iter()
                .any(|(l, n)| l == "(no license declared)" && *n == 1)
        );
    }

    #[test]
    fn summaries_are_cut() {
        let long = json!({"note": "x".repeat(500)});
        assert_eq!(summarize(&long).chars().count(), SUMMARY_CHARS);
        assert_eq!(summarize(&json!({"a": 1, "b": null, "c": "d"})), "a=1 c=d");
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("components".to_owned()),
                        Just("licenses".to_owned()),
                        Just("license".to_owned()),
                        Just("findings".to_owned()),
                        Just("package".to_owned()),
                        Just("name".to_owned()),
                        ".{0,6}".prop_map(String::from),
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Records come from other tools' JSON: any shape reads without a panic, and every
        /// component read has a name.
        #[test]
        fn any_json_reads(v in json_value()) {
            for c in components(&v) {
                prop_assert!(!c.name.is_empty() || v.get("components").is_some());
            }
            let s = scan(&v);
            prop_assert!(s.findings.len() <= v.get("findings").and_then(Value::as_array).map_or(0, Vec::len));
            let _ = changes(&v);
            prop_assert!(summarize(&v).chars().count() <= SUMMARY_CHARS);
        }
    }
}
