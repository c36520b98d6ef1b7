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
    /// Only some packages' advisories were read ([`load_for`]): the import must not take the
    /// advisories it did not read for withdrawn.
    pub partial: bool,
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

fn parse_bytes(kind: FileKind, bytes: &[u8]) -> Result<Advisory, String> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_text(kind, text),
        Err(e) => Err(format!("not UTF-8: {e}")),
    }
}

/// Files read but not parsed yet: parsed in parallel in batches, results kept in file order.
#[derive(Default)]
struct Pending {
    files: Vec<(String, FileKind, Vec<u8>)>,
}

impl Pending {
    const BATCH: usize = 8_192;

    fn add(&mut self, out: &mut Loaded, file: String, kind: FileKind, bytes: Vec<u8>) {
        self.files.push((file, kind, bytes));
        if self.files.len() >= Self::BATCH {
            self.flush(out);
        }
    }

    fn flush(&mut self, out: &mut Loaded) {
        let files = std::mem::take(&mut self.files);
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(8);
        // Parsing (TOML, YAML, JSON, version checks) is the cost of an import; spread it.
        let parsed: Vec<Result<Advisory, String>> = if threads < 2 || files.len() < 64 {
            files.iter().map(|(_, k, b)| parse_bytes(*k, b)).collect()
        } else {
            let chunk = files.len().div_ceil(threads);
            std::thread::scope(|scope| {
                let handles: Vec<_> = files
                    .chunks(chunk)
                    .map(|part| {
                        scope.spawn(move || {
                            part.iter()
                                .map(|(_, k, b)| parse_bytes(*k, b))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| match h.join() {
                        Ok(v) => v,
                        Err(panic) => std::panic::resume_unwind(panic),
                    })
                    .collect()
            })
        };
        for ((file, _, _), result) in files.into_iter().zip(parsed) {
            match result {
                Ok(adv) => out.advisories.push((file, adv)),
                Err(reason) => out.skipped.push(Skipped { file, reason }),
            }
        }
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
fn load_zip(
    path: &Path,
    display: &str,
    out: &mut Loaded,
    pending: &mut Pending,
) -> Result<(), ImportError> {
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
        pending.add(out, format!("{display}!{name}"), kind, bytes);
    }
    Ok(())
}

/// Loads the advisories under `path` that can concern `packages`, for a first scan that should not
/// wait for a whole database to be imported: RustSec advisories (`crates/<crate>/RUSTSEC-*.md`,
/// a layout RustSec's own linter enforces) are read only for the crates.io packages given
/// (case-insensitively); every other file is read as [`load`] reads it. The result is marked
/// [`Loaded::partial`] when files were left out.
pub fn load_for(
    path: &Path,
    packages: &[crate::matching::PackageRef],
) -> Result<Loaded, ImportError> {
    let wanted: std::collections::HashSet<String> = packages
        .iter()
        .filter(|p| crate::names::base_ecosystem(&p.ecosystem) == "crates.io")
        .map(|p| p.name.to_lowercase())
        .collect();
    let crates_dir = path.join("crates");
    if !crates_dir.is_dir() {
        return load_inner(path, Some(&wanted));
    }
    // An advisory-db checkout: only the wanted crates' directories are read, everything outside
    // `crates/` as usual.
    let mut out = Loaded::default();
    let mut pending = Pending::default();
    let mut files = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .map_err(io(path))?
        .collect::<Result<_, _>>()
        .map_err(io(path))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let p = e.path();
        if name == "crates" {
            let mut dirs: Vec<_> = std::fs::read_dir(&p)
                .map_err(io(&p))?
                .collect::<Result<_, _>>()
                .map_err(io(&p))?;
            dirs.sort_by_key(|d| d.file_name());
            for d in dirs {
                if wanted.contains(&d.file_name().to_string_lossy().to_lowercase()) {
                    if d.path().is_dir() {
                        walk(&d.path(), &mut files)?;
                    }
                } else {
                    out.partial = true;
                }
            }
        } else if p.is_dir() {
            walk(&p, &mut files)?;
        } else {
            files.push(p);
        }
    }
    let mut kinds = std::collections::BTreeSet::new();
    for f in files {
        let rel = f.strip_prefix(path).unwrap_or(&f);
        let Some(kind) = classify(rel) else { continue };
        let display = rel.to_string_lossy().into_owned();
        if kind == FileKind::Zip {
            load_zip(&f, &display, &mut out, &mut pending)?;
            kinds.insert("osv-zip");
            continue;
        }
        kinds.insert(match kind {
            FileKind::RustSec(_) => "rustsec",
            _ => "osv-dir",
        });
        let bytes = std::fs::read(&f).map_err(io(&f))?;
        pending.add(&mut out, display, kind, bytes);
    }
    pending.flush(&mut out);
    out.kind = kinds.into_iter().collect::<Vec<_>>().join("+");
    if out.kind.is_empty() {
        out.kind = "empty".into();
    }
    Ok(out)
}

/// Loads every advisory under `path` (a directory, a single OSV file, or an OSV `all.zip`).
pub fn load(path: &Path) -> Result<Loaded, ImportError> {
    load_inner(path, None)
}

/// The crate a RustSec advisory file is about: its directory's name.
fn rustsec_crate(rel: &Path) -> Option<String> {
    Some(rel.parent()?.file_name()?.to_str()?.to_lowercase())
}

fn load_inner(
    path: &Path,
    wanted: Option<&std::collections::HashSet<String>>,
) -> Result<Loaded, ImportError> {
    let meta = std::fs::metadata(path).map_err(io(path))?;
    let mut out = Loaded::default();
    let mut kinds = std::collections::BTreeSet::new();
    let mut pending = Pending::default();
    if meta.is_dir() {
        let mut files = Vec::new();
        walk(path, &mut files)?;
        for f in files {
            let rel = f.strip_prefix(path).unwrap_or(&f);
            let Some(kind) = classify(rel) else { continue };
            let display = rel.to_string_lossy().into_owned();
            if kind == FileKind::Zip {
                load_zip(&f, &display, &mut out, &mut pending)?;
                kinds.insert("osv-zip");
                continue;
            }
            kinds.insert(match kind {
                FileKind::RustSec(_) => "rustsec",
                _ => "osv-dir",
            });
            if let (FileKind::RustSec(rustsec::Collection::Crates), Some(wanted)) = (kind, wanted)
                && !rustsec_crate(rel).is_some_and(|c| wanted.contains(&c))
            {
                out.partial = true;
                continue;
            }
            let bytes = std::fs::read(&f).map_err(io(&f))?;
            pending.add(&mut out, display, kind, bytes);
        }
    } else {
        let display = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match classify(Path::new(&display)) {
            Some(FileKind::Zip) => {
                load_zip(path, &display, &mut out, &mut pending)?;
                kinds.insert("osv-zip");
            }
            Some(kind @ (FileKind::Json | FileKind::Yaml)) => {
                let bytes = std::fs::read(path).map_err(io(path))?;
                pending.add(&mut out, display, kind, bytes);
                kinds.insert("osv-file");
            }
            _ => {
                return Err(ImportError::Unsupported {
                    path: path.to_path_buf(),
                });
            }
        }
    }
    pending.flush(&mut out);
    out.kind = kinds.into_iter().collect::<Vec<_>>().join("+");
    if out.kind.is_empty() {
        out.kind = "empty".into();
    }
    Ok(out)
}
