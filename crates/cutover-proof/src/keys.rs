//! The project's proof key pair: ed25519, kept under `.cutover/keys/` as PEM files that other
//! tools read (`openssl pkey -in proof.ed25519 -pubout` prints the `.pub` file).
//!
//! - `keys/proof.ed25519`: the private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), mode 0600.
//! - `keys/proof.ed25519.pub`: the public key, SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
//!
//! The keyid is the hex sha256 of the raw 32-byte public key.

use crate::ProofError;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

const PRIVATE_FILE: &str = "proof.ed25519";
const PUBLIC_FILE: &str = "proof.ed25519.pub";
const PRIVATE_EXPECTED: &str = "PKCS#8 PEM ed25519 private key";
const PUBLIC_EXPECTED: &str = "SubjectPublicKeyInfo PEM ed25519 public key";

/// The private half: signs proofs. Its `Debug` shows the keyid only.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

/// The public half: checks proofs.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey(ed25519_dalek::VerifyingKey);

/// Whether [`open_or_create`] made the key or found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    Created,
    Loaded,
}

impl SigningKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<SigningKey, ProofError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| ProofError::Random(e.to_string()))?;
        Ok(SigningKey::from_seed(&seed))
    }

    /// The key whose RFC 8032 secret (seed) is `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    pub fn keyid(&self) -> String {
        self.verifying().keyid()
    }

    pub fn verifying(&self) -> VerifyingKey {
        VerifyingKey(self.0.verifying_key())
    }

    pub(crate) fn sign_bytes(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.0.sign(message).to_bytes()
    }

    /// PKCS#8 v1 (the secret alone): OpenSSL 3.0 does not read the v2 form that adds the public key.
    fn to_pem(&self) -> String {
        ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.0.to_bytes(),
            public_key: None,
        }
        .to_pkcs8_pem(LineEnding::LF)
        .expect("an ed25519 key always encodes as PKCS#8")
        .to_string()
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("keyid", &self.keyid())
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// Hex sha256 of the raw 32-byte public key.
    pub fn keyid(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    /// The raw 32-byte public key.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// A public key from its raw 32 bytes; `None` when they are not a point on the curve.
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<VerifyingKey> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .ok()
            .map(VerifyingKey)
    }

    /// The SubjectPublicKeyInfo PEM text, as in the `.pub` file.
    pub fn to_pem(&self) -> String {
        self.0
            .to_public_key_pem(LineEnding::LF)
            .expect("an ed25519 public key always encodes as SPKI")
    }

    /// Strict verification (RFC 8032 with small-order and non-canonical points refused).
    pub(crate) fn verify_bytes(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let signature = ed25519_dalek::Signature::from_bytes(signature);
        self.0.verify_strict(message, &signature).is_ok()
    }
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("keyid", &self.keyid())
            .finish()
    }
}

/// The private and public key files under `project_cutover_dir` (the project's `.cutover/`).
pub fn key_paths(project_cutover_dir: &Path) -> (PathBuf, PathBuf) {
    let keys = project_cutover_dir.join("keys");
    (keys.join(PRIVATE_FILE), keys.join(PUBLIC_FILE))
}

/// The project's signing key, created (mode 0600, with its public key file) when there is none.
pub fn load_or_create(project_cutover_dir: &Path) -> Result<SigningKey, ProofError> {
    open_or_create(project_cutover_dir).map(|(key, _)| key)
}

/// As [`load_or_create`], also saying whether the key was made now. An existing key is never
/// replaced; when two processes create one at once, both end with the one that was linked first.
pub fn open_or_create(project_cutover_dir: &Path) -> Result<(SigningKey, KeyOrigin), ProofError> {
    let (private, public) = key_paths(project_cutover_dir);
    match read_private(&private) {
        Ok(key) => {
            ensure_public(&private, &public, &key)?;
            return Ok((key, KeyOrigin::Loaded));
        }
        Err(ProofError::MissingKey { .. }) => {}
        Err(e) => return Err(e),
    }
    let dir = private.parent().expect("key paths have a parent");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| ProofError::Io {
            action: "create the key directory",
            path: dir.to_path_buf(),
            source,
        })?;
    let key = SigningKey::generate()?;
    let origin = if link_new(&private, key.to_pem().as_bytes(), 0o600)? {
        KeyOrigin::Created
    } else {
        KeyOrigin::Loaded
    };
    // Another process may have won the race: whatever is on disk now is the key.
    let key = read_private(&private)?;
    ensure_public(&private, &public, &key)?;
    Ok((key, origin))
}

/// The project's public key, for checking proofs (the private key is not needed).
pub fn load_verifying(project_cutover_dir: &Path) -> Result<VerifyingKey, ProofError> {
    let (_, public) = key_paths(project_cutover_dir);
    read_public(&public)
}

fn read_text(path: &Path) -> Result<String, ProofError> {
    std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ProofError::MissingKey {
                path: path.to_path_buf(),
            }
        } else if source.kind() == std::io::ErrorKind::InvalidData {
            ProofError::KeyFile {
                path: path.to_path_buf(),
                expected: if path.extension().is_some_and(|e| e == "pub") {
                    PUBLIC_EXPECTED
                } else {
                    PRIVATE_EXPECTED
                },
                reason: "the file is not UTF-8 text".to_owned(),
            }
        } else {
            ProofError::Io {
                action: "read",
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

fn read_private(path: &Path) -> Result<SigningKey, ProofError> {
    let text = read_text(path)?;
    let mode = std::fs::metadata(path)
        .map_err(|source| ProofError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(ProofError::KeyPermissions {
            path: path.to_path_buf(),
            mode: mode & 0o777,
        });
    }
    ed25519_dalek::SigningKey::from_pkcs8_pem(text.trim())
        .map(SigningKey)
        .map_err(|e| ProofError::KeyFile {
            path: path.to_path_buf(),
            expected: PRIVATE_EXPECTED,
            reason: e.to_string(),
        })
}

fn read_public(path: &Path) -> Result<VerifyingKey, ProofError> {
    let text = read_text(path)?;
    ed25519_dalek::VerifyingKey::from_public_key_pem(text.trim())
        .map(VerifyingKey)
        .map_err(|e| ProofError::KeyFile {
            path: path.to_path_buf(),
            expected: PUBLIC_EXPECTED,
            reason: e.to_string(),
        })
}

/// Writes the public key file when it is missing; refuses one that belongs to another key.
fn ensure_public(private: &Path, public: &Path, key: &SigningKey) -> Result<(), ProofError> {
    match read_public(public) {
        Ok(found) if found == key.verifying() => Ok(()),
        Ok(found) => Err(ProofError::KeyMismatch {
            private: private.to_path_buf(),
            public: public.to_path_buf(),
            private_keyid: key.keyid(),
            public_keyid: found.keyid(),
        }),
        Err(ProofError::MissingKey { .. }) => {
            link_new(public, key.verifying().to_pem().as_bytes(), 0o644).map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// Writes `bytes` to `path` only if `path` does not exist, never leaving a partial file there: a
/// complete temporary file is hard-linked into place (which fails when the name is taken).
/// Returns false when `path` already existed.
fn link_new(path: &Path, bytes: &[u8], mode: u32) -> Result<bool, ProofError> {
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| ProofError::Io {
            action,
            path,
            source,
        }
    };
    let name = path
        .file_name()
        .expect("key paths have a file name")
        .to_string_lossy();
    // Unique per process and per call: threads of one process may create keys at once.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_file_name(format!(".{name}.{}.{call}.tmp", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io("write", &tmp))?;
    // `mode` at creation is filtered by the umask; the key file's mode must not depend on it.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io("set the permissions of", &tmp))?;
    file.write_all(bytes).map_err(io("write", &tmp))?;
    file.sync_all().map_err(io("write", &tmp))?;
    drop(file);
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(ProofError::Io {
            action: "write",
            path: path.to_path_buf(),
            source: e,
        }),
    }
}
