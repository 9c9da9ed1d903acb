//! Build secrets: `strata build --secret id=ID[,src=FILE|,env=VAR]`
//! (Docker's syntax), and the per-step tmpfs their files are written to.
//!
//! A secret's value is read when a step mounts it, straight onto a tmpfs
//! that only strata's mount namespace sees (and the step's container, which
//! gets each file bound read-only); it never touches the store's disk, and
//! is gone with the step. Nothing of the value goes into a key, a log or an
//! error message.

use fs_err::os::unix::fs::OpenOptionsExt;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::active::set_owner_mode;
use super::MountError;
use crate::sandbox::driver::{self, Mounted};
use crate::store::{Staging, Store};

/// Docker's cap on a secret (BuildKit's `MaxSecretSize`, 500 KB).
pub const MAX_SECRET_SIZE: u64 = 500 * 1024;
/// The size of a step's secrets tmpfs: its files and sockets are small.
const SECRETS_TMPFS_SIZE: u64 = 64 << 20;

/// Why a `--secret` flag cannot be used (Docker's words).
#[derive(Debug, thiserror::Error)]
pub enum SecretFlagError {
    #[error("invalid field '{0}' must be a key=value pair")]
    NotKeyValue(String),
    #[error("unsupported secret type {0:?}")]
    Type(String),
    #[error("unexpected key '{key}' in '{field}'")]
    UnexpectedKey { key: String, field: String },
    #[error("secret missing ID")]
    NoId,
    #[error("failed to stat {}", path.display())]
    Stat {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("secret {0} too big. max size 500KB")]
    TooBig(String),
}

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretFrom {
    File(PathBuf),
    /// An environment variable of strata's.
    Env(String),
}

/// One `--secret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSource {
    pub id: String,
    pub from: SecretFrom,
}

impl SecretSource {
    /// Parses one `--secret` value, as `docker buildx build` does:
    /// `id=ID`, `src=`/`source=FILE`, `env=VAR`, `type=file|env`. With
    /// neither a file nor a variable, the variable named ID is used if set,
    /// else the file named ID.
    pub fn parse(text: &str) -> Result<SecretSource, SecretFlagError> {
        let (mut id, mut src, mut env, mut kind) = (None, None, None, None);
        for field in text.split(',') {
            let Some((key, value)) = field.split_once('=') else {
                return Err(SecretFlagError::NotKeyValue(field.to_string()));
            };
            match key.to_ascii_lowercase().as_str() {
                "type" if value == "file" || value == "env" => kind = Some(value.to_string()),
                "type" => return Err(SecretFlagError::Type(value.to_string())),
                "id" => id = Some(value.to_string()),
                "source" | "src" => src = Some(value.to_string()),
                "env" => env = Some(value.to_string()),
                other => {
                    return Err(SecretFlagError::UnexpectedKey {
                        key: other.to_string(),
                        field: field.to_string(),
                    })
                }
            }
        }
        let id = id.filter(|i| !i.is_empty()).ok_or(SecretFlagError::NoId)?;
        if kind.as_deref() == Some("env") && env.is_none() {
            env = src.take();
        }
        let from = match (src, env) {
            (Some(f), _) => SecretFrom::File(PathBuf::from(f)),
            (None, Some(v)) => SecretFrom::Env(v),
            (None, None) if kind.as_deref() == Some("env") => SecretFrom::Env(id.clone()),
            (None, None) if std::env::var_os(&id).is_some() => SecretFrom::Env(id.clone()),
            (None, None) => SecretFrom::File(PathBuf::from(&id)),
        };
        Ok(SecretSource { id, from })
    }

    /// Checks it can be read at all (a file exists and is small enough),
    /// as Docker does before the build starts.
    pub fn check(&self) -> Result<(), SecretFlagError> {
        match &self.from {
            SecretFrom::File(path) => {
                let meta = fs_err::metadata(path).map_err(|source| SecretFlagError::Stat {
                    path: path.clone(),
                    source,
                })?;
                if meta.len() > MAX_SECRET_SIZE {
                    return Err(SecretFlagError::TooBig(self.id.clone()));
                }
                Ok(())
            }
            SecretFrom::Env(_) => Ok(()),
        }
    }

    /// The value, read now.
    pub(super) fn value(&self) -> Result<Vec<u8>, MountError> {
        let unreadable = |reason: String| MountError::SecretUnreadable {
            id: self.id.clone(),
            reason,
        };
        match &self.from {
            SecretFrom::File(path) => {
                let bytes = fs_err::read(path)
                    .map_err(|e| unreadable(format!("{}: {e}", path.display())))?;
                if bytes.len() as u64 > MAX_SECRET_SIZE {
                    return Err(unreadable("larger than 500KB".into()));
                }
                Ok(bytes)
            }
            SecretFrom::Env(var) => std::env::var_os(var)
                .map(std::os::unix::ffi::OsStringExt::into_vec)
                .ok_or_else(|| unreadable(format!("environment variable {var} is not set"))),
        }
    }
}

/// A step's private tmpfs for its secret files and agent sockets, mounted
/// over a staging directory until dropped (unmounted first, then removed).
pub(super) struct SecretDir {
    mounted: Mounted,
    _staging: Staging,
}

impl SecretDir {
    pub fn new(store: &Store) -> Result<SecretDir, MountError> {
        let staging = store.staging()?;
        let dir = staging.path().join("secrets");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| MountError::io("create", &dir, e))?;
        let mounted = driver::mount_tmpfs(&dir, SECRETS_TMPFS_SIZE)?;
        Ok(SecretDir {
            mounted,
            _staging: staging,
        })
    }

    pub fn path(&self) -> &Path {
        self.mounted.path()
    }

    /// Writes `value` as `name` with the owner and mode the mount asks for.
    pub fn write(
        &self,
        name: &str,
        value: &[u8],
        owner: (u32, u32),
        mode: u32,
    ) -> Result<PathBuf, MountError> {
        let path = self.path().join(name);
        let fail = |e| MountError::io("write secret file", &path, e);
        let mut file = fs_err::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(fail)?;
        file.write_all(value).map_err(fail)?;
        set_owner_mode(&path, owner, mode).map_err(fail)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_flags_as_docker() {
        let file = |id: &str, f: &str| SecretSource {
            id: id.into(),
            from: SecretFrom::File(f.into()),
        };
        let env = |id: &str, v: &str| SecretSource {
            id: id.into(),
            from: SecretFrom::Env(v.into()),
        };
        let cases: Vec<(&str, Result<SecretSource, &str>)> = vec![
            ("id=t,src=/f", Ok(file("t", "/f"))),
            ("id=t,source=/f,type=file", Ok(file("t", "/f"))),
            ("id=t,env=TOK", Ok(env("t", "TOK"))),
            ("type=env,id=t,src=TOK", Ok(env("t", "TOK"))),
            ("type=env,id=t", Ok(env("t", "t"))),
            (
                "id=strata_test_no_such_var",
                Ok(file("strata_test_no_such_var", "strata_test_no_such_var")),
            ),
            ("src=/f", Err("secret missing ID")),
            ("id=t,type=ssh", Err("unsupported secret type \"ssh\"")),
            (
                "id=t,mode=0400",
                Err("unexpected key 'mode' in 'mode=0400'"),
            ),
            (
                "id=t,src",
                Err("invalid field 'src' must be a key=value pair"),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                SecretSource::parse(text).map_err(|e| e.to_string()),
                want.map_err(String::from),
                "{text}"
            );
        }
    }

    #[test]
    fn values_are_read_when_mounted_and_capped() {
        let t = tempfile::tempdir().unwrap();
        let small = t.path().join("small");
        fs_err::write(&small, b"s3cr3t").unwrap();
        let big = t.path().join("big");
        fs_err::write(&big, vec![b'x'; MAX_SECRET_SIZE as usize + 1]).unwrap();
        let s = SecretSource {
            id: "a".into(),
            from: SecretFrom::File(small),
        };
        assert!(s.check().is_ok());
        assert_eq!(s.value().unwrap(), b"s3cr3t");
        let b = SecretSource {
            id: "b".into(),
            from: SecretFrom::File(big),
        };
        assert_eq!(
            b.check().unwrap_err().to_string(),
            "secret b too big. max size 500KB"
        );
        assert!(b.value().is_err());
        let missing = SecretSource {
            id: "m".into(),
            from: SecretFrom::Env("STRATA_TEST_UNSET_VAR".into()),
        };
        let e = missing.value().unwrap_err().to_string();
        assert!(e.contains("STRATA_TEST_UNSET_VAR is not set"), "{e}");
    }
}
