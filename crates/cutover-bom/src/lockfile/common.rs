//! Helpers shared by the Cargo, npm, yarn, pnpm and Composer parsers: errors, integrity strings,
//! scope propagation over the dependency graph, and merging duplicate entries.

use crate::model::{Component, Hash, ParseError, Scope};
use base64::Engine as _;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A fatal error in `file` at `line`.
pub(crate) fn err(
    file: &str,
    line: Option<usize>,
    message: impl Into<String>,
    hint: Option<&str>,
) -> ParseError {
    ParseError {
        file: file.to_owned(),
        line,
        message: message.into(),
        hint: hint.map(str::to_owned),
    }
}

/// A `serde_json` error turned into a [`ParseError`] with its line.
pub(crate) fn json_err(file: &str, e: &serde_json::Error, expected: &str) -> ParseError {
    let what = match e.classify() {
        serde_json::error::Category::Eof => "the file ends early (truncated?)",
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Data => "unexpected JSON structure",
        serde_json::error::Category::Io => "read error",
    };
    err(
        file,
        Some(e.line()),
        format!("{what} at column {}: {e}; expected {expected}", e.column()),
        None,
    )
}

/// The 1-based line of byte `offset` in `text`.
pub(crate) fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The first line (1-based) whose text contains `needle`, for pointing at a bad entry.
pub(crate) fn line_of_needle(text: &str, needle: &str) -> Option<usize> {
    text.find(needle).map(|off| line_at(text, off))
}

/// Hashes from an SRI `integrity` value (`sha512-<base64> sha1-<base64>`), hex encoded. Unknown
/// algorithms and undecodable digests are skipped: an integrity string is advisory for a BOM.
pub(crate) fn sri_hashes(integrity: &str) -> Vec<Hash> {
    let mut out = Vec::new();
    for part in integrity.split_whitespace() {
        let Some((alg, digest)) = part.split_once('-') else {
            continue;
        };
        let alg = match alg {
            "sha1" => "SHA-1",
            "sha256" => "SHA-256",
            "sha384" => "SHA-384",
            "sha512" => "SHA-512",
            "md5" => "MD5",
            _ => continue,
        };
        // SRI allows `?options` after the digest.
        let digest = digest.split('?').next().unwrap_or(digest);
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(digest) {
            let expected_len = match alg {
                "SHA-1" => 20,
                "SHA-256" => 32,
                "SHA-384" => 48,
                "SHA-512" => 64,
                _ => 16,
            };
            if bytes.len() == expected_len {
                out.push(Hash {
                    alg: alg.to_owned(),
                    hex: hex::encode(bytes),
                });
            }
        }
    }
    out
}

/// A hex digest of the expected length for `alg`, lower-cased; `None` when it is not one.
pub(crate) fn hex_hash(alg: &str, value: &str) -> Option<Hash> {
    let len = match alg {
        "SHA-1" => 40,
        "SHA-256" => 64,
        "SHA-512" => 128,
        "MD5" => 32,
        _ => return None,
    };
    let v = value.trim();
    (v.len() == len && v.bytes().all(|b| b.is_ascii_hexdigit())).then(|| Hash {
        alg: alg.to_owned(),
        hex: v.to_ascii_lowercase(),
    })
}

/// Merges entries with the same `key()` (the same package installed at several places, e.g. npm
/// v1 nesting): the strongest scope wins, `direct` if any is, edges and hashes are united.
/// Keeps first-seen order.
pub(crate) fn merge_duplicates(components: Vec<Component>) -> Vec<Component> {
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut out: Vec<Component> = Vec::with_capacity(components.len());
    for c in components {
        let k = c.source_key();
        if let Some(&i) = index.get(&k) {
            let existing = &mut out[i];
            existing.scope = existing.scope.min(c.scope);
            existing.direct |= c.direct;
            for d in c.depends_on {
                if !existing.depends_on.contains(&d) {
                    existing.depends_on.push(d);
                }
            }
            for h in c.hashes {
                if !existing.hashes.contains(&h) {
                    existing.hashes.push(h);
                }
            }
            if existing.license.is_none() {
                existing.license = c.license;
            }
            for (pk, pv) in c.properties {
                existing.properties.entry(pk).or_insert(pv);
            }
        } else {
            index.insert(k, out.len());
            out.push(c);
        }
    }
    for c in &mut out {
        c.depends_on.sort();
        c.depends_on.dedup();
        c.hashes.sort();
    }
    out
}

/// Derives every component's scope from the roots: reachable from a required root → required;
/// else from an optional root → optional; else from a dev root → excluded. Components reachable
/// from no root keep the scope the parser gave them. `roots` are (key, scope) pairs; edges are
/// `depends_on` (matched by `key()` or `source_key()`); an edge from an optional dependency
/// list keeps its target at least optional (`optional_edges`: (from, to) pairs).
pub(crate) fn propagate_scopes(
    components: &mut [Component],
    roots: &[(String, Scope)],
    optional_edges: &BTreeSet<(String, String)>,
) {
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for (i, c) in components.iter().enumerate() {
        index.insert(c.key(), i);
        index.insert(c.source_key(), i);
    }
    let mut best: Vec<Option<Scope>> = vec![None; components.len()];
    let mut queue: VecDeque<(usize, Scope)> = VecDeque::new();
    for (k, s) in roots {
        if let Some(&i) = index.get(k) {
            queue.push_back((i, *s));
        }
    }
    while let Some((i, s)) = queue.pop_front() {
        if best[i].is_some_and(|b| b <= s) {
            continue;
        }
        best[i] = Some(s);
        let from = components[i].key();
        for d in &components[i].depends_on {
            if let Some(&j) = index.get(d) {
                let next = if s == Scope::Required
                    && optional_edges.contains(&(from.clone(), d.clone()))
                {
                    Scope::Optional
                } else {
                    s
                };
                queue.push_back((j, next));
            }
        }
    }
    for (c, b) in components.iter_mut().zip(best) {
        if let Some(s) = b {
            c.scope = s;
        }
    }
}

/// Marks as direct every component whose key is in `direct_keys` (keys or source keys).
pub(crate) fn mark_direct(components: &mut [Component], direct_keys: &BTreeSet<String>) {
    for c in components {
        if direct_keys.contains(&c.key()) || direct_keys.contains(&c.source_key()) {
            c.direct = true;
        }
    }
}

/// When a lockfile does not say which packages the project asks for, the ones nothing else
/// depends on are taken as direct: it is what the resolver must have started from.
pub(crate) fn infer_direct(components: &mut [Component]) {
    let mut depended: BTreeSet<String> = BTreeSet::new();
    for c in components.iter() {
        depended.extend(c.depends_on.iter().cloned());
    }
    for c in components {
        if !depended.contains(&c.key()) && !depended.contains(&c.source_key()) {
            c.direct = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sri_sha512_becomes_hex() {
        let h = sri_hashes(
            "sha512-OfC2uemaknXr87bdLUkWog7nYuliM9Ij5HUcajsVcMCpQrcLmtxRbVFTIqmcSkSeYRBFBRxs2FiUqFJDLdiebA==",
        );
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].alg, "SHA-512");
        assert_eq!(h[0].hex.len(), 128);
        assert!(h[0].hex.starts_with("39f0b6"));
    }

    #[test]
    fn sri_skips_garbage() {
        assert!(sri_hashes("sha512-!!! md4-abc nodash").is_empty());
        let h = sri_hashes("sha1-CCyyyJyf6GWaMRpTvWpNxTAdswQ=");
        assert_eq!(h[0].hex, "082cb2c89c9fe8659a311a53bd6a4dc5301db304");
    }
}
