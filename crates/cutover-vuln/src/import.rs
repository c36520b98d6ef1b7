//! Reading advisories from disk: a directory of OSV JSON/YAML files, OSV `all.zip` exports, or a
//! RustSec advisory-db checkout. Malformed advisories are skipped with a reason; the rest load.

use crate::osv::{self, Advisory};
use crate::rustsec;
use std::io::Read;
use std::path::{Path, PathBuf};

/// An advisory that was not loaded: which file (for zips `archive.zip!entry`) and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    pub file: String,
    pub reason: String,
}

/// What one source yielded.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Advisories with the file each came from, in a stable (sorted) order.
    pub advisories: Vec<(String, Advisory)>,
    pub skipped: Vec<Skipped>,
    /// What the source looked like: `osv-dir`, `osv-zip`, `rustsec`, `osv-file`, or a mix.
    pub kind: String,
}

/// A source that could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid zip archive: {reason} (hint: re-download the OSV all.zip export)")]
    CorruptZip { path: PathBuf, reason: String },
    #[error(
        "{path}: not an advisory source (expected a directory, an OSV .json/.yaml file or an OSV all.zip)"
    )]
    Unsupported { path: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ImportError + '_ {
    move |source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What kind of advisory file a path is, by name and place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Json,
    Yaml,
    RustSec(rustsec::Collection),
    Zip,
}

fn classify(rel: &Path) -> Option<FileKind> {
    let name = rel.file_name()?.to_str()?;
    let ext = Path::new(name).extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "json" => Some(FileKind::Json),
        "yaml" | "yml" => Some(FileKind::Yaml),
        "zip" => Some(FileKind::Zip),
        "md" => {
            // RustSec keeps advisories under crates/<name>/ and rust/<tool>/; other Markdown
            // (README.md, CONTRIBUTING.md) is not an advisory.
            let comps: Vec<&str> = rel
                .parent()?
                .components()
                .filter_map(|c| c.as_os_str().to_str())
                .collect();
            match comps.iter().rev().nth(1) {
                Some(&"crates") => Some(FileKind::RustSec(rustsec::Collection::Crates)),
                Some(&"rust") => Some(FileKind::RustSec(rustsec::Collection::Rust)),
                _ => None,
            }
        }
        _ => None,
    }
}

fn parse_text(kind: FileKind, text: &str) -> Result<Advisory, String> {
    let adv = match kind {
        FileKind::Json => osv::from_json(text)?,
        FileKind::Yaml => osv::from_yaml(text)?,
        FileKind::RustSec(c) => rustsec::to_osv(text, c)?,
        FileKind::Zip => return Err("nested archive".into()),
    };
    adv.validate()?;
    Ok(adv)
}

fn add(out: &mut Loaded, file: String, kind: FileKind, bytes: &[u8]) {
    let result = match std::str::from_utf8(bytes) {
        Ok(text) => parse_text(kind, text),
        Err(e) => Err(format!("not UTF-8: {e}")),
    };
    match result {
        Ok(adv) => out.advisories.push((file, adv)),
        Err(reason) => out.skipped.push(Skipped { file, reason }),
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ImportError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue; // .git, .github, editor files
        }
        let path = e.path();
        let ft = e.file_type().map_err(io(&path))?;
        if ft.is_dir() {
            walk(&path, out)?;
        } else if ft.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

/// Reads every OSV JSON entry of an `all.zip` export.
fn load_zip(path: &Path, display: &str, out: &mut Loaded) -> Result<(), ImportError> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let corrupt = |e: zip::result::ZipError| ImportError::CorruptZip {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(corrupt)?;
    let mut names: Vec<(String, usize)> = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let entry = archive.by_index(i).map_err(corrupt)?;
        names.push((entry.name().map_err(corrupt)?.into_owned(), i));
    }
    names.sort();
    for (name, i) in names {
        let Some(kind) = classify(Path::new(&name)) else {
            continue;
        };
        if kind == FileKind::Zip {
            continue;
        }
        let mut entry = archive.by_index(i).map_err(corrupt)?;
        let mut bytes = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| ImportError::CorruptZip {
                path: path.to_path_buf(),
                reason: format!("entry {name}: {e}"),
            })?;
        add(out, format!("{display}!{name}"), kind, &bytes);
    }
    Ok(())
}

/// Loads every advisory under `path` (a directory, a single OSV file, or an OSV `all.zip`).
pub fn load(path: &Path) -> Result<Loaded, ImportError> {
    let meta = std::fs::metadata(path).map_err(io(path))?;
    let mut out = Loaded::default();
    let mut kinds = std::collections::BTreeSet::new();
    if meta.is_dir() {
        let mut files = Vec::new();
        walk(path, &mut files)?;
        for f in files {
            let rel = f.strip_prefix(path).unwrap_or(&f);
            let Some(kind) = classify(rel) else { continue };
            let display = rel.to_string_lossy().into_owned();
            if kind == FileKind::Zip {
                load_zip(&f, &display, &mut out)?;
                kinds.insert("osv-zip");
                continue;
            }
            kinds.insert(match kind {
                FileKind::RustSec(_) => "rustsec",
                _ => "osv-dir",
            });
            let bytes = std::fs::read(&f).map_err(io(&f))?;
            add(&mut out, display, kind, &bytes);
        }
    } else {
        let display = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match classify(Path::new(&display)) {
            Some(FileKind::Zip) => {
                load_zip(path, &display, &mut out)?;
                kinds.insert("osv-zip");
            }
            Some(kind @ (FileKind::Json | FileKind::Yaml)) => {
                let bytes = std::fs::read(path).map_err(io(path))?;
                add(&mut out, display, kind, &bytes);
                kinds.insert("osv-file");
            }
            _ => {
                return Err(ImportError::Unsupported {
                    path: path.to_path_buf(),
                });
            }
        }
    }
    out.kind = kinds.into_iter().collect::<Vec<_>>().join("+");
    if out.kind.is_empty() {
        out.kind = "empty".into();
    }
    Ok(out)
}
