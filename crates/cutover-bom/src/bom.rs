//! The bill of materials: every lockfile found under a project, parsed, with purls, stable
//! bom-refs, resolved dependency edges and licenses; per-file failures kept inside.

use crate::license::{LicenseInfo, LocalCaches};
use crate::lockfile::{self, LockfileKind};
use crate::model::{Component, ParseError, ParseWarning, Parsed};
use crate::purl::Purl;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One component of the BOM: the parsed component plus what the BOM derives for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BomComponent {
    pub component: Component,
    /// Unique and stable within the BOM: `<manifest>#<purl>` (suffixed `#2`, ... on a clash).
    pub bom_ref: String,
    pub purl: String,
    pub license: Option<LicenseInfo>,
    /// bom-refs of the components this one depends on (same manifest).
    pub dependencies: Vec<String>,
}

/// What happened to one lockfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockfileReport {
    /// Project-relative, `/`-separated.
    pub path: String,
    pub kind: LockfileKind,
    pub components: usize,
    pub warnings: Vec<ParseWarning>,
    /// Set when the file could not be used at all; the other files still count.
    pub error: Option<ParseError>,
}

/// A bill of materials for a project.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bom {
    /// The project's name (the root directory's name unless set).
    pub name: String,
    /// The release version the BOM belongs to, when known.
    pub version: Option<String>,
    /// Sorted by bom-ref.
    pub components: Vec<BomComponent>,
    pub files: Vec<LockfileReport>,
    /// Creation time, seconds since the epoch. `SOURCE_DATE_EPOCH` overrides it when writing;
    /// with neither, writers use the current time.
    pub created: Option<i64>,
}

/// How discovery behaves.
#[derive(Debug, Clone)]
pub struct DiscoverOptions {
    /// Look licenses up in local caches (Cargo registry, vendor/, node_modules, virtualenvs).
    pub license_caches: bool,
    /// Skip test-data folders (`testdata`, `test-data`, `fixtures`, `__fixtures__`): lockfiles
    /// there describe test inputs, not what the project ships.
    pub skip_test_data: bool,
}

impl Default for DiscoverOptions {
    fn default() -> Self {
        Self {
            license_caches: true,
            skip_test_data: true,
        }
    }
}

const TEST_DATA_DIRS: [&str; 4] = ["testdata", "test-data", "fixtures", "__fixtures__"];

/// Directories never descended into: installed packages and build output, not the project's.
const SKIP_DIRS: [&str; 4] = ["node_modules", "vendor", "target", ".git"];

/// Every lockfile under `root`, respecting `.gitignore`, sorted by path.
pub fn find_lockfiles(root: &Path) -> Vec<(PathBuf, LockfileKind)> {
    find_lockfiles_with(root, &DiscoverOptions::default())
}

/// [`find_lockfiles`] with options.
pub fn find_lockfiles_with(root: &Path, opts: &DiscoverOptions) -> Vec<(PathBuf, LockfileKind)> {
    let skip_test_data = opts.skip_test_data;
    let mut out = Vec::new();
    let walker = ignore::WalkBuilder::new(root)
        .require_git(false)
        .sort_by_file_name(std::ffi::OsStr::cmp)
        .filter_entry(move |e| {
            !(e.file_type().is_some_and(|t| t.is_dir())
                && e.depth() > 0
                && e.file_name().to_str().is_some_and(|n| {
                    SKIP_DIRS.contains(&n) || (skip_test_data && TEST_DATA_DIRS.contains(&n))
                }))
        })
        .build();
    for entry in walker.flatten() {
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let rel = relative(root, entry.path());
        if let Some(kind) = LockfileKind::detect_path(&rel) {
            out.push((entry.into_path(), kind));
        }
    }
    out
}

/// Walks `project_root`, parses every lockfile and builds one BOM. Never fails as a whole: a
/// file that cannot be read or parsed is reported in [`Bom::files`].
pub fn discover_and_parse(project_root: &Path) -> Bom {
    discover_and_parse_with(project_root, &DiscoverOptions::default())
}

/// [`discover_and_parse`] with options.
pub fn discover_and_parse_with(project_root: &Path, opts: &DiscoverOptions) -> Bom {
    let mut results = Vec::new();
    for (path, kind) in find_lockfiles_with(project_root, opts) {
        let rel = relative(project_root, &path);
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| project_root.to_path_buf());
        let result = read_and_parse(&path, &rel, kind, &dir);
        results.push((rel, kind, dir, result));
    }
    let mut caches = if opts.license_caches {
        LocalCaches::from_env()
    } else {
        LocalCaches::none()
    };
    let name = project_root
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "project".to_owned());
    let mut bom = Bom::from_results(name, results, &mut |c, dir| {
        caches.lookup(c, project_root, dir)
    });
    bom.created = None;
    bom
}

fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Reads (with the size limit checked before reading) and parses one lockfile.
pub fn read_and_parse(
    path: &Path,
    rel: &str,
    kind: LockfileKind,
    dir: &Path,
) -> Result<Parsed, ParseError> {
    let io_err = |e: std::io::Error| ParseError {
        file: rel.to_owned(),
        line: None,
        message: format!("cannot read the file: {e}"),
        hint: None,
    };
    let len = std::fs::metadata(path).map_err(io_err)?.len();
    if len > lockfile::MAX_LOCKFILE_BYTES {
        return Err(ParseError {
            file: rel.to_owned(),
            line: None,
            message: format!(
                "the file is {len} bytes, more than the {} MiB limit for a lockfile",
                lockfile::MAX_LOCKFILE_BYTES / (1024 * 1024)
            ),
            hint: Some(
                "check that this is really a lockfile and not a generated artifact".to_owned(),
            ),
        });
    }
    let bytes = std::fs::read(path).map_err(io_err)?;
    let text = lockfile::decode(rel, &bytes)?;
    lockfile::parse(kind, rel, text, Some(dir))
}

impl Bom {
    /// Builds a BOM from per-file results. `license_lookup(component, lock_dir)` is asked for
    /// components whose lockfile carries no license.
    pub fn from_results(
        name: String,
        results: Vec<(String, LockfileKind, PathBuf, Result<Parsed, ParseError>)>,
        license_lookup: &mut dyn FnMut(&Component, &Path) -> Option<LicenseInfo>,
    ) -> Bom {
        let mut components = Vec::new();
        let mut files = Vec::new();
        let mut used_refs: BTreeSet<String> = BTreeSet::new();
        for (rel, kind, dir, result) in results {
            match result {
                Ok(parsed) => {
                    files.push(LockfileReport {
                        path: rel.clone(),
                        kind,
                        components: parsed.components.len(),
                        warnings: parsed.warnings,
                        error: None,
                    });
                    // key / source key -> bom-ref, within this lockfile.
                    let mut refs: BTreeMap<String, String> = BTreeMap::new();
                    let mut staged = Vec::with_capacity(parsed.components.len());
                    for c in parsed.components {
                        let purl = Purl::of(&c).to_string();
                        let base = format!("{}#{}", c.manifest, purl);
                        let mut bom_ref = base.clone();
                        let mut n = 2;
                        while used_refs.contains(&bom_ref) {
                            bom_ref = format!("{base}#{n}");
                            n += 1;
                        }
                        used_refs.insert(bom_ref.clone());
                        refs.entry(c.key()).or_insert_with(|| bom_ref.clone());
                        refs.insert(c.source_key(), bom_ref.clone());
                        let license = match &c.license {
                            Some(raw) => Some(crate::license::info(raw, "lockfile")),
                            None => license_lookup(&c, &dir),
                        };
                        staged.push(BomComponent {
                            component: c,
                            bom_ref,
                            purl,
                            license,
                            dependencies: Vec::new(),
                        });
                    }
                    for bc in &mut staged {
                        let mut deps: Vec<String> = bc
                            .component
                            .depends_on
                            .iter()
                            .filter_map(|d| refs.get(d).cloned())
                            .filter(|r| *r != bc.bom_ref)
                            .collect();
                        deps.sort();
                        deps.dedup();
                        bc.dependencies = deps;
                    }
                    components.extend(staged);
                }
                Err(error) => files.push(LockfileReport {
                    path: rel,
                    kind,
                    components: 0,
                    warnings: Vec::new(),
                    error: Some(error),
                }),
            }
        }
        components.sort_by(|a, b| a.bom_ref.cmp(&b.bom_ref));
        Bom {
            name,
            version: None,
            components,
            files,
            created: None,
        }
    }

    /// The files that failed, with their errors.
    pub fn failures(&self) -> impl Iterator<Item = &ParseError> {
        self.files.iter().filter_map(|f| f.error.as_ref())
    }

    /// The creation time the writers use: `SOURCE_DATE_EPOCH`, else [`Bom::created`], else now.
    pub fn effective_created(&self) -> i64 {
        if let Some(e) = std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
        {
            return e;
        }
        self.created
            .unwrap_or_else(|| chrono::Utc::now().timestamp())
    }
}
