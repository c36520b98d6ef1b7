//! Python lockfiles: requirements.txt, poetry.lock, Pipfile.lock and uv.lock.
//!
//! Entry points: [`parse_requirements_txt`], [`parse_requirements_txt_with`] (follows `-r`/`-c`
//! through a resolver closure), [`parse_poetry_lock`], [`parse_poetry_lock_with`] (with the
//! pyproject.toml beside it), [`parse_pipfile_lock`], [`parse_pipfile_lock_with`] (with the
//! Pipfile), [`parse_uv_lock`].
//! Component names are PEP 503-normalised; the spelling found is kept as `cutover:python:name`.

mod pipenv;
mod poetry;
mod requirements;
mod uv;

pub use pipenv::{parse_pipfile_lock, parse_pipfile_lock_with};
pub use poetry::{parse_poetry_lock, parse_poetry_lock_with};
pub use requirements::{parse_requirements_txt, parse_requirements_txt_with};
pub use uv::parse_uv_lock;

use crate::lockfile::other_support::{error, line_of, prefixed_hash, push_hash};
use crate::model::{Hash, ParseError};

/// Parses TOML into `T`, turning a syntax or shape error into a `ParseError` with its line.
pub(crate) fn from_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &str,
    expected: &str,
) -> Result<T, ParseError> {
    toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        error(
            file,
            line,
            format!("{}; expected {expected}", e.message().trim_end()),
            Some("the file may be truncated or hand-edited; regenerate it with its tool"),
        )
    })
}

/// The hashes worth recording from a list of distribution files: the sdist's if there is one (it
/// is the package's source), otherwise every wheel's. Returns how many digests were unusable.
pub(crate) fn distribution_hashes<'a>(
    files: impl Iterator<Item = (&'a str, &'a str)>,
    out: &mut Vec<Hash>,
) -> usize {
    let mut sdist = Vec::new();
    let mut wheels = Vec::new();
    let mut bad = 0;
    for (file_name, hash) in files {
        let Some(h) = prefixed_hash(hash) else {
            bad += 1;
            continue;
        };
        let base = file_name.rsplit('/').next().unwrap_or(file_name);
        if base.ends_with(".whl") {
            wheels.push(h);
        } else {
            sdist.push(h);
        }
    }
    for h in if sdist.is_empty() { wheels } else { sdist } {
        push_hash(out, h);
    }
    bad
}

/// The path of `name` in the same directory as `path`.
pub(crate) fn sibling(path: &str, name: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{name}"),
        None => name.to_owned(),
    }
}
