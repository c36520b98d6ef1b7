//! Helpers shared by the Python, Go, Ruby, Gradle, Maven and NuGet lockfile parsers: input sanity
//! checks (size, byte order mark, UTF-16), error construction, hash decoding and name normalisation.

use crate::model::{Component, Ecosystem, Hash, ParseError, Resolution, Scope, Source};
use base64::Engine as _;
use std::collections::BTreeMap;

/// Lockfiles larger than this are refused: real ones are a few MiB at most, and a bigger file is far
/// more likely a mistake (a generated artifact, a binary) than a dependency list.
pub(crate) const MAX_LOCKFILE_BYTES: usize = 64 * 1024 * 1024;

/// A fatal error at `line` (1-based) of `file`.
pub(crate) fn error(
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

/// Refuses input no lockfile parser should try to read: too large, a byte order mark, UTF-16.
/// `expected` names the format (e.g. "a poetry.lock TOML document") for the message.
pub(crate) fn check_text(text: &str, file: &str, expected: &str) -> Result<(), ParseError> {
    if text.len() > MAX_LOCKFILE_BYTES {
        return Err(error(
            file,
            None,
            format!(
                "file is {} bytes, more than the {} MiB limit for a lockfile; expected {expected}",
                text.len(),
                MAX_LOCKFILE_BYTES / (1024 * 1024)
            ),
            Some("check that this is really a lockfile and not a generated or binary file"),
        ));
    }
    let head = &text.as_bytes()[..text.len().min(512)];
    // UTF-16 read as UTF-8 shows up either as U+FFFE/U+FEFF-ish replacement characters (lossy
    // decoding of FF FE / FE FF) or as NUL bytes between ASCII characters.
    if text.starts_with('\u{FFFE}') || text.starts_with("\u{FFFD}\u{FFFD}") || head.contains(&0) {
        return Err(error(
            file,
            Some(1),
            format!(
                "file looks like UTF-16 (NUL bytes or a UTF-16 byte order mark); expected UTF-8 text, {expected}"
            ),
            Some("convert it to UTF-8, e.g. `iconv -f UTF-16 -t UTF-8`"),
        ));
    }
    if text.starts_with('\u{FEFF}') {
        return Err(error(
            file,
            Some(1),
            format!(
                "file starts with a byte order mark (U+FEFF); expected plain UTF-8, {expected}"
            ),
            Some("save the file as UTF-8 without BOM"),
        ));
    }
    Ok(())
}

// Line lookups are shared with the JS/Cargo parsers.
pub(crate) use super::common::{line_at as line_of, line_of_needle};

/// Lower-case hex of standard (padded) base64, `None` when it is not valid base64.
pub(crate) fn base64_to_hex(b64: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    if bytes.is_empty() {
        return None;
    }
    Some(hex::encode(bytes))
}

/// CycloneDX name and hex length of a hash algorithm as lockfiles spell it (`sha256`, `SHA-512`, ...).
fn algorithm(name: &str) -> Option<(&'static str, usize)> {
    let lower = name.to_ascii_lowercase();
    Some(match lower.replace('-', "").as_str() {
        "md5" => ("MD5", 32),
        "sha1" => ("SHA-1", 40),
        "sha256" => ("SHA-256", 64),
        "sha384" => ("SHA-384", 96),
        "sha512" => ("SHA-512", 128),
        _ => return None,
    })
}

/// A hash from `alg` and a hex digest, `None` unless the algorithm is known and the digest is hex of
/// the right length.
pub(crate) fn hex_hash(alg: &str, hex_digest: &str) -> Option<Hash> {
    let (name, len) = algorithm(alg)?;
    if hex_digest.len() != len || !hex_digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(Hash {
        alg: name.to_owned(),
        hex: hex_digest.to_ascii_lowercase(),
    })
}

/// A hash written `alg:hexdigest` (pip, Poetry, uv, Pipenv), `None` if it is not one.
pub(crate) fn prefixed_hash(s: &str) -> Option<Hash> {
    let (alg, digest) = s.trim().split_once(':')?;
    hex_hash(alg, digest)
}

/// Adds `hash` unless an equal one is already there (lockfiles list the same digest more than once).
pub(crate) fn push_hash(hashes: &mut Vec<Hash>, hash: Hash) {
    if !hashes.contains(&hash) {
        hashes.push(hash);
    }
}

/// PEP 503 normalised name: lower case, runs of `-`, `_` and `.` become one `-`.
pub(crate) fn pep503(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_sep = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_sep {
                out.push('-');
            }
            in_sep = true;
        } else {
            out.push(c.to_ascii_lowercase());
            in_sep = false;
        }
    }
    out
}

/// A resolved, required, transitive registry component; parsers adjust the fields they know.
pub(crate) fn component(
    ecosystem: Ecosystem,
    namespace: Option<String>,
    name: String,
    version: String,
    manifest: &str,
) -> Component {
    Component {
        ecosystem,
        namespace,
        name,
        version,
        resolution: Resolution::Resolved,
        scope: Scope::Required,
        direct: false,
        source: Source::Registry,
        hashes: Vec::new(),
        license: None,
        manifest: manifest.to_owned(),
        depends_on: Vec::new(),
        properties: BTreeMap::new(),
    }
}

/// A PyPI component keyed by its PEP 503 name; the original spelling is kept when it differs.
pub(crate) fn pypi_component(raw_name: &str, version: &str, manifest: &str) -> Component {
    let name = pep503(raw_name);
    let mut c = component(Ecosystem::PyPI, None, name, version.to_owned(), manifest);
    if c.name != raw_name {
        c.properties
            .insert("cutover:python:name".to_owned(), raw_name.to_owned());
    }
    c
}

/// The more needed of two scopes (required beats optional beats excluded).
pub(crate) fn stronger(a: Scope, b: Scope) -> Scope {
    match (a, b) {
        (Scope::Required, _) | (_, Scope::Required) => Scope::Required,
        (Scope::Optional, _) | (_, Scope::Optional) => Scope::Optional,
        _ => Scope::Excluded,
    }
}

/// Joins `rel` onto the directory of `file` (both `/`-separated, relative to the project root),
/// folding `.` and `..` so that the result can be handed to a resolver closure.
pub(crate) fn join_relative(file: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    if !rel.starts_with('/') {
        let dir = file.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        parts.extend(dir.split('/').filter(|p| !p.is_empty() && *p != "."));
    }
    for p in rel.split(['/', '\\']) {
        match p {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    if rel.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pep503_folds_case_and_separator_runs() {
        assert_eq!(pep503("FrIeNdLy-_-bArD"), "friendly-bard");
        assert_eq!(pep503("dots-._allowed"), "dots-allowed");
        assert_eq!(pep503("zope.interface"), "zope-interface");
    }

    #[test]
    fn join_relative_folds_dots() {
        assert_eq!(join_relative("a/b/requirements.txt", "../c.txt"), "a/c.txt");
        assert_eq!(join_relative("requirements.txt", "./x/y.txt"), "x/y.txt");
        assert_eq!(
            join_relative("pom.xml", "../parent/pom.xml"),
            "../parent/pom.xml"
        );
    }

    #[test]
    fn hashes_are_validated() {
        assert!(prefixed_hash("sha256:123").is_none());
        assert_eq!(
            base64_to_hex("AAEC").as_deref(),
            Some("000102"),
            "base64 decodes to hex"
        );
        let h = prefixed_hash(
            "sha256:A9B3AAA1904EEB78E32394CD46C6F37AC0FB4AF6DC488DAA58971BDC7D7FCAF3",
        )
        .expect("valid sha256");
        assert_eq!(h.alg, "SHA-256");
        assert!(h.hex.chars().all(|c| !c.is_ascii_uppercase()));
    }
}
