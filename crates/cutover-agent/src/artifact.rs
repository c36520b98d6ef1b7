//! Release artifacts: a `tar.zst` whose sha256 is checked before a single byte of it is unpacked.
//!
//! Unpacking goes to a temporary sibling of the destination, renamed into place when complete, so a
//! release directory is either whole or absent. Entries that would land outside it (absolute paths,
//! `..`, links leading out) are refused.

use std::fs::{self, File};
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// Marks a release directory with the digest of the artifact it came from.
pub const DIGEST_MARKER: &str = ".cutover-sha256";

/// Why an artifact was refused.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("expected sha256 {0:?} is not 64 hexadecimal digits")]
    BadDigest(String),
    #[error("cannot read the artifact {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the artifact {} has sha256 {actual}, expected {expected}; nothing was unpacked", path.display())]
    DigestMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("the artifact {} is not a valid tar.zst ({what}); nothing was unpacked", path.display())]
    Corrupt { path: PathBuf, what: String },
    #[error("the artifact {} has an entry {entry:?} that would land outside the release directory; nothing was unpacked", path.display())]
    Escapes { path: PathBuf, entry: String },
    #[error("{} exists but holds the release of another artifact (sha256 {found}); hint: remove it to unpack again", dest.display())]
    Occupied { dest: PathBuf, found: String },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The sha256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, ArtifactError> {
    let mut file = File::open(path).map_err(|source| ArtifactError::Read {
        path: path.to_owned(),
        source,
    })?;
    sha256_reader(&mut file).map_err(|source| ArtifactError::Read {
        path: path.to_owned(),
        source,
    })
}

fn sha256_reader(r: &mut impl io::Read) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

/// Verifies `artifact` against `expected_sha256`, then unpacks it (tar.zst) into `dest`.
///
/// `dest` must not exist, or must hold an earlier unpacking of the same artifact (then nothing is
/// done: unpacking is idempotent). On any error `dest` is left as it was.
pub fn unpack_verified(
    artifact: &Path,
    expected_sha256: &str,
    dest: &Path,
) -> Result<(), ArtifactError> {
    let expected = expected_sha256.to_ascii_lowercase();
    if expected.len() != 64 || !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ArtifactError::BadDigest(expected_sha256.to_owned()));
    }
    let read_err = |source| ArtifactError::Read {
        path: artifact.to_owned(),
        source,
    };
    // One open file for both hashing and unpacking: what was verified is what is unpacked.
    let mut file = File::open(artifact).map_err(read_err)?;
    let actual = sha256_reader(&mut file).map_err(read_err)?;
    if actual != expected {
        return Err(ArtifactError::DigestMismatch {
            path: artifact.to_owned(),
            expected,
            actual,
        });
    }
    if dest.exists() {
        let found = fs::read_to_string(dest.join(DIGEST_MARKER)).unwrap_or_default();
        return if found.trim() == expected {
            Ok(())
        } else {
            Err(ArtifactError::Occupied {
                dest: dest.to_owned(),
                found: found.trim().to_owned(),
            })
        };
    }
    file.seek(SeekFrom::Start(0)).map_err(read_err)?;
    let parent = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|source| ArtifactError::Write {
        path: parent.to_owned(),
        source,
    })?;
    let tmp = tempfile_dir(parent)?;
    let result = unpack_into(file, artifact, &tmp).and_then(|()| {
        fs::write(tmp.join(DIGEST_MARKER), &expected).map_err(|source| ArtifactError::Write {
            path: tmp.join(DIGEST_MARKER),
            source,
        })?;
        fs::rename(&tmp, dest).map_err(|source| ArtifactError::Write {
            path: dest.to_owned(),
            source,
        })
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

fn tempfile_dir(parent: &Path) -> Result<PathBuf, ArtifactError> {
    for n in 0..1000u32 {
        let candidate = parent.join(format!(".unpacking-{}-{n}", std::process::id()));
        match fs::create_dir(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(ArtifactError::Write {
                    path: candidate,
                    source,
                });
            }
        }
    }
    Err(ArtifactError::Write {
        path: parent.to_owned(),
        source: io::Error::other("no free temporary name"),
    })
}

fn unpack_into(file: File, artifact: &Path, tmp: &Path) -> Result<(), ArtifactError> {
    let corrupt = |e: io::Error| ArtifactError::Corrupt {
        path: artifact.to_owned(),
        what: e.to_string(),
    };
    let decoder = zstd::stream::read::Decoder::new(file).map_err(corrupt)?;
    let mut archive = tar::Archive::new(decoder);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(false);
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let name = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&name).into_owned();
        if entry.header().entry_type().is_hard_link() || entry.header().entry_type().is_symlink() {
            let target = entry
                .link_name()
                .map_err(corrupt)?
                .unwrap_or_default()
                .into_owned();
            if target.is_absolute()
                || target
                    .components()
                    .any(|c| c == std::path::Component::ParentDir)
            {
                return Err(ArtifactError::Escapes {
                    path: artifact.to_owned(),
                    entry: format!("{name} -> {}", target.display()),
                });
            }
        }
        // `unpack_in` refuses absolute paths and `..` by returning false.
        if !entry.unpack_in(tmp).map_err(corrupt)? {
            return Err(ArtifactError::Escapes {
                path: artifact.to_owned(),
                entry: name,
            });
        }
    }
    // Trailing garbage after the tar end marker is not a valid artifact either.
    let mut rest = archive.into_inner();
    let mut tail = [0u8; 1];
    let _ = rest.read(&mut tail).map_err(corrupt)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tar_zst(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o755);
            h.set_mtime(1_700_000_000);
            // set_path refuses `..`; write the raw name to build hostile archives too.
            let raw = &mut h.as_old_mut().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            builder.append(&h, *data).unwrap();
        }
        zstd::encode_all(&builder.into_inner().unwrap()[..], 3).unwrap()
    }

    fn write(dir: &Path, bytes: &[u8]) -> (PathBuf, String) {
        let p = dir.join("a.tar.zst");
        fs::write(&p, bytes).unwrap();
        let d = sha256_file(&p).unwrap();
        (p, d)
    }

    #[test]
    fn unpacks_a_verified_artifact_once() {
        let dir = tempfile::tempdir().unwrap();
        let (p, digest) = write(
            dir.path(),
            &tar_zst(&[("bin/app", b"#!/bin/sh\n"), ("static/a.txt", b"a")]),
        );
        let dest = dir.path().join("releases/1.0.0");
        unpack_verified(&p, &digest, &dest).unwrap();
        assert_eq!(fs::read(dest.join("static/a.txt")).unwrap(), b"a");
        assert_eq!(
            fs::read_to_string(dest.join(DIGEST_MARKER)).unwrap(),
            digest
        );
        // Again: nothing to do.
        unpack_verified(&p, &digest.to_uppercase(), &dest).unwrap();
    }

    #[test]
    fn wrong_digest_unpacks_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (p, digest) = write(dir.path(), &tar_zst(&[("app", b"x")]));
        let wrong = format!("{}0", &digest[..63]);
        let wrong = if wrong == digest {
            format!("{}1", &digest[..63])
        } else {
            wrong
        };
        let dest = dir.path().join("releases/1.0.0");
        let err = unpack_verified(&p, &wrong, &dest).unwrap_err();
        assert!(matches!(err, ArtifactError::DigestMismatch { .. }), "{err}");
        assert!(!dest.exists());
        assert!(matches!(
            unpack_verified(&p, "abc", &dest),
            Err(ArtifactError::BadDigest(_))
        ));
    }

    #[test]
    fn corrupt_and_escaping_artifacts_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("releases/1.0.0");
        let (p, digest) = write(dir.path(), b"not zstd at all");
        assert!(matches!(
            unpack_verified(&p, &digest, &dest),
            Err(ArtifactError::Corrupt { .. })
        ));
        let (p, digest) = write(dir.path(), &tar_zst(&[("ok", b"1"), ("../evil", b"2")]));
        let err = unpack_verified(&p, &digest, &dest).unwrap_err();
        assert!(matches!(err, ArtifactError::Escapes { .. }), "{err}");
        assert!(!dest.exists());
        assert!(!dir.path().join("releases/evil").exists());
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("releases")).unwrap().collect();
        assert!(leftovers.is_empty(), "temporary directory left behind");
    }

    #[test]
    fn a_different_artifact_does_not_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("r");
        let (p, d1) = write(dir.path(), &tar_zst(&[("a", b"1")]));
        unpack_verified(&p, &d1, &dest).unwrap();
        let (p, d2) = write(dir.path(), &tar_zst(&[("a", b"2")]));
        assert!(matches!(
            unpack_verified(&p, &d2, &dest),
            Err(ArtifactError::Occupied { .. })
        ));
        assert_eq!(fs::read(dest.join("a")).unwrap(), b"1");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn arbitrary_bytes_never_panic_and_never_escape(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            let dir = tempfile::tempdir().unwrap();
            let (p, digest) = write(dir.path(), &bytes);
            let dest = dir.path().join("rel").join("x");
            match unpack_verified(&p, &digest, &dest) {
                Ok(()) => proptest::prop_assert!(dest.join(DIGEST_MARKER).exists()),
                Err(_) => proptest::prop_assert!(!dest.exists()),
            }
        }
    }
}
