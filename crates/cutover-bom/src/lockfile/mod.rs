//! Lockfile parsers: one module per format, each a pure function from the file's text to
//! components, and the registry that picks the parser by file name.

pub mod cargo;
pub(crate) mod common;
pub mod composer;
pub mod go;
pub mod gradle;
pub mod maven;
pub mod npm;
pub mod nuget;
pub(crate) mod other_support;
pub mod pnpm;
pub mod python;
pub mod ruby;
pub mod yarn;

pub use crate::model::ParseError;
use crate::model::Parsed;
use serde::Serialize;
use std::path::Path;

/// Files larger than this are refused before reading: real lockfiles are a few MiB at most.
pub const MAX_LOCKFILE_BYTES: u64 = 64 * 1024 * 1024;

/// Every lockfile format the BOM understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockfileKind {
    CargoLock,
    PackageLock,
    NpmShrinkwrap,
    YarnLock,
    PnpmLock,
    ComposerLock,
    RequirementsTxt,
    PoetryLock,
    PipfileLock,
    UvLock,
    GoMod,
    GemfileLock,
    GradleLockfile,
    MavenPom,
    NugetLock,
}

impl LockfileKind {
    /// The kind of lockfile a file name denotes, if any.
    pub fn detect(file_name: &str) -> Option<Self> {
        Some(match file_name {
            "Cargo.lock" => Self::CargoLock,
            "package-lock.json" => Self::PackageLock,
            "npm-shrinkwrap.json" => Self::NpmShrinkwrap,
            "yarn.lock" => Self::YarnLock,
            "pnpm-lock.yaml" => Self::PnpmLock,
            "composer.lock" => Self::ComposerLock,
            "poetry.lock" => Self::PoetryLock,
            "Pipfile.lock" => Self::PipfileLock,
            "uv.lock" => Self::UvLock,
            "go.mod" => Self::GoMod,
            "Gemfile.lock" | "gems.locked" => Self::GemfileLock,
            "gradle.lockfile" | "buildscript-gradle.lockfile" => Self::GradleLockfile,
            "pom.xml" => Self::MavenPom,
            "packages.lock.json" => Self::NugetLock,
            n if n.starts_with("requirements") && n.ends_with(".txt") => Self::RequirementsTxt,
            _ => return None,
        })
    }

    /// Like [`LockfileKind::detect`], but also knows kinds that depend on the folder
    /// (`gradle/dependency-locks/*.lockfile`). `rel` is `/`-separated.
    pub fn detect_path(rel: &str) -> Option<Self> {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        Self::detect(name).or_else(|| {
            (rel.contains("gradle/dependency-locks/") && name.ends_with(".lockfile"))
                .then_some(Self::GradleLockfile)
        })
    }
}

/// Checks raw bytes and turns them into text: refuses UTF-16, a byte order mark and invalid UTF-8
/// with the line where the problem is.
pub fn decode<'a>(file: &str, bytes: &'a [u8]) -> Result<&'a str, ParseError> {
    if bytes.starts_with(&[0xFF, 0xFE])
        || bytes.starts_with(&[0xFE, 0xFF])
        || bytes.iter().take(512).any(|&b| b == 0)
    {
        return Err(common::err(
            file,
            Some(1),
            "the file is UTF-16 (byte order mark or NUL bytes); expected UTF-8 text",
            Some("convert it, e.g. `iconv -f UTF-16 -t UTF-8 FILE > FILE.new`"),
        ));
    }
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Err(common::err(
            file,
            Some(1),
            "the file starts with a UTF-8 byte order mark (EF BB BF); expected plain UTF-8 as the package manager writes it",
            Some(
                "remove the BOM (your editor's \"UTF-8 without BOM\"), or regenerate the lockfile",
            ),
        ));
    }
    std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        common::err(
            file,
            Some(line),
            format!(
                "invalid UTF-8 at byte {}; expected UTF-8 text",
                e.valid_up_to()
            ),
            None,
        )
    })
}

/// Parses `text`, a lockfile of `kind` shown as `file` (project-relative). `dir` is its directory
/// on disk, for sidecar files (package.json, composer.json, Cargo.toml, go.sum, `-r` includes);
/// `None` parses the text alone.
pub fn parse(
    kind: LockfileKind,
    file: &str,
    text: &str,
    dir: Option<&Path>,
) -> Result<Parsed, ParseError> {
    if text.len() as u64 > MAX_LOCKFILE_BYTES {
        return Err(common::err(
            file,
            None,
            format!(
                "the file is {} bytes, more than the {} MiB limit for a lockfile",
                text.len(),
                MAX_LOCKFILE_BYTES / (1024 * 1024)
            ),
            Some("check that this is really a lockfile and not a generated artifact"),
        ));
    }
    let _ = decode(file, text.as_bytes())?;
    let mut parsed = parse_kind(kind, file, text, dir)?;
    if !text.is_empty()
        && !text.ends_with('\n')
        && !matches!(
            kind,
            LockfileKind::PackageLock
                | LockfileKind::NpmShrinkwrap
                | LockfileKind::ComposerLock
                | LockfileKind::PipfileLock
        )
    {
        // Package managers end their files with a newline; YAML and line formats can be cut
        // at a line end and still parse, so say so.
        parsed.warnings.push(crate::model::ParseWarning {
            line: Some(text.lines().count()),
            message: "the file does not end with a newline; it may be truncated".to_owned(),
        });
    }
    Ok(parsed)
}

fn parse_kind(
    kind: LockfileKind,
    file: &str,
    text: &str,
    dir: Option<&Path>,
) -> Result<Parsed, ParseError> {
    match kind {
        LockfileKind::CargoLock => cargo::parse(file, text, dir),
        LockfileKind::PackageLock | LockfileKind::NpmShrinkwrap => npm::parse(file, text, dir),
        LockfileKind::YarnLock => yarn::parse(file, text, dir),
        LockfileKind::PnpmLock => pnpm::parse(file, text),
        LockfileKind::ComposerLock => composer::parse(file, text, dir),
        LockfileKind::PoetryLock => python::parse_poetry_lock(text, file),
        LockfileKind::PipfileLock => python::parse_pipfile_lock(text, file),
        LockfileKind::UvLock => python::parse_uv_lock(text, file),
        LockfileKind::RequirementsTxt => {
            let resolve = project_resolver(file, dir);
            python::parse_requirements_txt_with(text, file, &resolve)
        }
        LockfileKind::GoMod => {
            let sum = dir.and_then(|d| std::fs::read_to_string(d.join("go.sum")).ok());
            go::parse_go_mod_with_sum(text, file, sum.as_deref())
        }
        LockfileKind::GemfileLock => ruby::parse_gemfile_lock(text, file),
        LockfileKind::GradleLockfile => gradle::parse_gradle_lockfile(text, file),
        LockfileKind::MavenPom => {
            let resolve = project_resolver(file, dir);
            maven::parse_pom_xml_with(text, file, &resolve)
        }
        LockfileKind::NugetLock => nuget::parse_packages_lock_json(text, file),
    }
}

/// Reads project-relative paths (for `-r` includes and parent poms): the project root is `dir`
/// minus the folders of `file`; paths leaving the root are refused.
fn project_resolver(file: &str, dir: Option<&Path>) -> impl Fn(&str) -> Option<String> {
    let depth = file.matches('/').count();
    let root = dir
        .and_then(|d| d.ancestors().nth(depth))
        .map(Path::to_path_buf);
    move |rel: &str| {
        let root = root.as_ref()?;
        let mut parts: Vec<&str> = Vec::new();
        for seg in rel.split('/') {
            match seg {
                "" | "." => {}
                ".." => {
                    parts.pop()?;
                }
                s => parts.push(s),
            }
        }
        std::fs::read_to_string(root.join(parts.join("/"))).ok()
    }
}
