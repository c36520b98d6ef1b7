//! Reproducible release artifacts: the `[build].artifact` paths packed into a `tar.zst` whose
//! bytes depend only on the files' contents, names and executable bits (entries sorted, mtime from
//! `SOURCE_DATE_EPOCH` or the commit time, owner 0:0, modes 0644/0755), stored content-addressed at
//! `.cutover/artifacts/sha256/<digest>`.

use sha2::{Digest as _, Sha256};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// A packing problem.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// An artifact path the build did not produce.
    #[error(
        "{path}: the build did not produce this artifact path; hint: check [build] artifact in cutover.toml"
    )]
    Missing {
        /// The configured path.
        path: PathBuf,
    },
    /// A path outside the project.
    #[error("{path}: artifact paths must be relative and stay inside the project")]
    Outside {
        /// The configured path.
        path: PathBuf,
    },
    /// File system or compression error.
    #[error("{path}: {detail}")]
    Io {
        /// Where.
        path: PathBuf,
        /// What happened.
        detail: String,
    },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ArtifactError + '_ {
    move |e| ArtifactError::Io {
        path: path.to_owned(),
        detail: e.to_string(),
    }
}

/// A packed artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// `sha256:<hex>`.
    pub digest: String,
    /// Where it is stored.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// How many files it holds.
    pub files: usize,
}

/// Every file under `paths` (relative to `root`), sorted by their path inside the archive.
fn collect(root: &Path, paths: &[PathBuf]) -> Result<Vec<(String, PathBuf)>, ArtifactError> {
    let mut out = Vec::new();
    for rel in paths {
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(ArtifactError::Outside { path: rel.clone() });
        }
        let full = root.join(rel);
        if !full.exists() {
            return Err(ArtifactError::Missing { path: rel.clone() });
        }
        let mut stack = vec![full];
        while let Some(path) = stack.pop() {
            let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
            if meta.is_dir() {
                for entry in std::fs::read_dir(&path).map_err(io(&path))? {
                    stack.push(entry.map_err(io(&path))?.path());
                }
            } else if meta.is_file() {
                let name = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push((name, path));
            }
            // Symlinks and special files are left out: an artifact holds regular files only.
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    Ok(out)
}

/// Packs `paths` into a reproducible `tar.zst` and stores it under `store_dir/sha256/<digest>`.
pub fn pack(
    root: &Path,
    paths: &[PathBuf],
    mtime: u64,
    store_dir: &Path,
) -> Result<Artifact, ArtifactError> {
    let files = collect(root, paths)?;
    let mut tar_bytes = Vec::new();
    {
        let mut builder = tar::Builder::new(&mut tar_bytes);
        builder.mode(tar::HeaderMode::Deterministic);
        for (name, path) in &files {
            let data = std::fs::read(path).map_err(io(path))?;
            let executable = is_executable(path);
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(if executable { 0o755 } else { 0o644 });
            header.set_mtime(mtime);
            header.set_uid(0);
            header.set_gid(0);
            header.set_entry_type(tar::EntryType::Regular);
            builder
                .append_data(&mut header, name, data.as_slice())
                .map_err(io(path))?;
        }
        builder.finish().map_err(io(root))?;
    }
    // Level 19 with one thread: the output must not depend on the machine.
    let compressed = zstd::stream::encode_all(tar_bytes.as_slice(), 19).map_err(io(root))?;
    let digest = hex::encode(Sha256::digest(&compressed));
    let dir = store_dir.join("sha256");
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let path = dir.join(&digest);
    let tmp = dir.join(format!(".{digest}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&compressed).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(Artifact {
        digest: format!("sha256:{digest}"),
        path,
        size: compressed.len() as u64,
        files: files.len(),
    })
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(_path: &Path) -> bool {
    false
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tree(dir: &Path) {
        std::fs::create_dir_all(dir.join("target/release")).unwrap();
        std::fs::create_dir_all(dir.join("static/css")).unwrap();
        std::fs::write(dir.join("target/release/hello"), b"\x7fELF binary").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(
                dir.join("target/release/hello"),
                std::fs::Permissions::from_mode(0o775),
            )
            .unwrap();
        }
        std::fs::write(dir.join("static/index.html"), b"<h1>hi</h1>").unwrap();
        std::fs::write(dir.join("static/css/site.css"), b"h1{}").unwrap();
    }

    #[test]
    fn same_content_same_digest_and_sorted_normalised_entries() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        tree(a.path());
        tree(b.path());
        let paths = vec![
            PathBuf::from("static"),
            PathBuf::from("target/release/hello"),
        ];
        let store = tempfile::tempdir().unwrap();
        let first = pack(a.path(), &paths, 1_700_000_000, store.path()).unwrap();
        let second = pack(b.path(), &paths, 1_700_000_000, store.path()).unwrap();
        assert_eq!(first.digest, second.digest);
        assert_eq!(first.files, 3);
        assert!(
            first
                .path
                .ends_with(first.digest.trim_start_matches("sha256:"))
        );
        // A different mtime is a different artifact.
        let other = pack(a.path(), &paths, 1, store.path()).unwrap();
        assert_ne!(other.digest, first.digest);

        let bytes = std::fs::read(&first.path).unwrap();
        let tar_bytes = zstd::stream::decode_all(bytes.as_slice()).unwrap();
        let mut archive = tar::Archive::new(tar_bytes.as_slice());
        let entries: Vec<(String, u32, u64, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            vec![
                ("static/css/site.css".to_owned(), 0o644, 0, 1_700_000_000),
                ("static/index.html".to_owned(), 0o644, 0, 1_700_000_000),
                ("target/release/hello".to_owned(), 0o755, 0, 1_700_000_000),
            ]
        );
    }

    #[test]
    fn missing_and_escaping_paths_are_refused() {
        let a = tempfile::tempdir().unwrap();
        let store = tempfile::tempdir().unwrap();
        let err = pack(a.path(), &[PathBuf::from("nope")], 0, store.path()).unwrap_err();
        assert!(err.to_string().contains("did not produce"), "{err}");
        let err = pack(a.path(), &[PathBuf::from("../x")], 0, store.path()).unwrap_err();
        assert!(matches!(err, ArtifactError::Outside { .. }));
        let err = pack(a.path(), &[PathBuf::from("/etc")], 0, store.path()).unwrap_err();
        assert!(matches!(err, ArtifactError::Outside { .. }));
    }
}
