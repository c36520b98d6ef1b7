//! `CUTOVER_SECTION__KEY=value` environment overrides, applied to the parsed document before it is
//! typed, so that overridden values go through exactly the same checks as written ones.

use std::borrow::Cow;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use crate::error::{ConfigError, ErrorKind, Seg, SourceMap, path_string};

/// The prefix of every override variable.
pub const PREFIX: &str = "CUTOVER_";

/// One override variable.
#[derive(Debug, Clone)]
pub(crate) struct Override {
    pub var: String,
    pub value: String,
    /// The path, keys lower-cased (as shown in messages).
    pub path: Vec<Seg>,
    /// The segments as written in the variable's name.
    pub raw: Vec<String>,
}

/// The key a segment names in `table`: an existing key that matches ignoring case; else, inside
/// an `env` or `secrets` table (whose keys are environment variable names), the segment as
/// written; else the segment lower-cased.
fn resolve_key(table: &DeTable<'_>, raw: &str, in_env_map: bool) -> String {
    if let Some((k, _)) = table
        .iter()
        .find(|(k, _)| k.get_ref().eq_ignore_ascii_case(raw))
    {
        return k.get_ref().to_string();
    }
    if in_env_map {
        raw.to_string()
    } else {
        raw.to_ascii_lowercase()
    }
}

/// Whether a variable is a configuration override: `CUTOVER_` followed by a name containing `__`.
pub fn is_override(name: &str) -> bool {
    name.strip_prefix(PREFIX)
        .is_some_and(|rest| rest.contains("__"))
}

/// The override variables among `vars`, sorted by name so that the result does not depend on the
/// order of the process environment.
pub(crate) fn collect<K: AsRef<str>, V: AsRef<str>>(vars: &[(K, V)]) -> Vec<Override> {
    let mut out: Vec<Override> = vars
        .iter()
        .filter(|(k, _)| is_override(k.as_ref()))
        .map(|(k, v)| {
            let k = k.as_ref();
            let rest = &k[PREFIX.len()..];
            let path = rest
                .split("__")
                .map(|seg| match seg.parse::<usize>() {
                    Ok(i) => Seg::Index(i),
                    Err(_) => Seg::Key(seg.to_ascii_lowercase()),
                })
                .collect();
            Override {
                var: k.to_string(),
                value: v.as_ref().to_string(),
                path,
                raw: rest.split("__").map(str::to_string).collect(),
            }
        })
        .collect();
    out.sort_by(|a, b| a.var.cmp(&b.var));
    out
}

/// Gives every node of an override's value the override's synthetic span.
fn respan<'a>(v: DeValue<'a>, span: &Range<usize>) -> Spanned<DeValue<'a>> {
    let v = match v {
        DeValue::Array(a) => {
            let mut out = DeArray::new();
            for item in a {
                out.push(respan(item.into_inner(), span));
            }
            DeValue::Array(out)
        }
        DeValue::Table(t) => {
            let mut out = DeTable::new();
            for (k, item) in t {
                out.insert(
                    Spanned::new(span.clone(), k.into_inner()),
                    respan(item.into_inner(), span),
                );
            }
            DeValue::Table(out)
        }
        other => other,
    };
    Spanned::new(span.clone(), v)
}

/// Applies `ov` to `root`. `span` is the synthetic span that identifies this override in errors.
pub(crate) fn apply<'a>(
    root: &mut DeValue<'a>,
    ov: &'a Override,
    span: &Range<usize>,
    map: &SourceMap<'_>,
) -> Result<(), ConfigError> {
    let fail = |msg: String, hint: Option<String>| {
        map.diagnostic(
            ErrorKind::Override,
            &msg,
            Some(span.clone()),
            Some(path_string(&ov.path)),
            Some("set here".to_string()),
            hint,
        )
    };
    if ov
        .path
        .iter()
        .any(|s| matches!(s, Seg::Key(k) if k.is_empty()))
    {
        return Err(fail(
            "the variable name has an empty segment".into(),
            Some("segments are separated by exactly two underscores, e.g. CUTOVER_PROJECT__TAG_FORMAT".into()),
        ));
    }
    if let Some(Seg::Index(_)) = ov.path.first() {
        return Err(fail(
            "an override must start with a section name".into(),
            None,
        ));
    }
    // A value that parses as TOML is taken as TOML; anything else is the literal string.
    let value = match DeValue::parse(&ov.value) {
        Ok(v) => respan(v.into_inner(), span),
        Err(_) => Spanned::new(span.clone(), DeValue::String(Cow::Borrowed(&ov.value))),
    };

    let (last, parents) = ov
        .path
        .split_last()
        .expect("an override path has two or more segments");
    let in_env_map = |depth: usize| {
        depth > 0 && matches!(&ov.path[depth - 1], Seg::Key(p) if p == "env" || p == "secrets")
    };
    let mut cur: &mut DeValue<'a> = root;
    for (depth, seg) in parents.iter().enumerate() {
        let here = path_string(&ov.path[..depth]);
        cur = match (seg, cur) {
            (Seg::Key(_), DeValue::Table(t)) => {
                let k = resolve_key(t, &ov.raw[depth], in_env_map(depth));
                if t.get(k.as_str()).is_none() {
                    t.insert(
                        Spanned::new(span.clone(), Cow::Owned(k.clone())),
                        Spanned::new(span.clone(), DeValue::Table(DeTable::new())),
                    );
                }
                t.get_mut(k.as_str())
                    .expect("inserted just above when missing")
                    .get_mut()
            }
            (Seg::Index(i), DeValue::Array(a)) => {
                let len = a.len();
                match a.get_mut(*i) {
                    Some(v) => v.get_mut(),
                    None => {
                        return Err(fail(
                            format!("`{here}` has {len} entries, there is no index {i}"),
                            None,
                        ));
                    }
                }
            }
            (Seg::Index(i), other) => {
                return Err(fail(
                    format!(
                        "index {i} applies to an array, but `{here}` is a {}",
                        other.type_str()
                    ),
                    None,
                ));
            }
            (Seg::Key(k), other) => {
                return Err(fail(
                    format!(
                        "cannot set `{k}` inside `{here}`: it is a {}, not a table",
                        other.type_str()
                    ),
                    None,
                ));
            }
        };
    }
    let here = path_string(parents);
    match (last, cur) {
        (Seg::Key(_), DeValue::Table(t)) => {
            let depth = ov.path.len() - 1;
            let k = resolve_key(t, &ov.raw[depth], in_env_map(depth));
            t.insert(Spanned::new(span.clone(), Cow::Owned(k)), value);
        }
        (Seg::Index(i), DeValue::Array(a)) => {
            let len = a.len();
            match a.get_mut(*i) {
                Some(slot) => *slot = value,
                None if *i == len => a.push(value),
                None => {
                    return Err(fail(
                        format!("`{here}` has {len} entries, there is no index {i}"),
                        None,
                    ));
                }
            }
        }
        (_, other) => {
            return Err(fail(
                format!(
                    "cannot set `{}` inside `{here}`: it is a {}, not a table",
                    path_string(std::slice::from_ref(last)),
                    other.type_str()
                ),
                None,
            ));
        }
    }
    Ok(())
}
