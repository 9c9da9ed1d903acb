//! `RUN --mount=type=...,key=value,...`: typed mounts.
//!
//! The value is a comma-separated list (a field may be double-quoted to hold
//! a comma). `type` defaults to `bind`. Each type accepts its own keys;
//! anything else is an error naming the key and the type.

use super::values::{parse_mode, parse_number, Deferred, ValueError};
use super::InstructionError;

/// How a cache mount is shared between concurrent builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sharing {
    /// Concurrent writers share the cache (the default).
    #[default]
    Shared,
    /// A writer gets its own copy when the cache is in use.
    Private,
    /// Writers wait for each other.
    Locked,
}

/// Owner and permissions of a mount point (cache, secret, ssh).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ownership {
    /// `mode=0700`.
    pub mode: Option<Deferred<u32>>,
    /// `uid=1000`.
    pub uid: Option<Deferred<u32>>,
    /// `gid=1000`.
    pub gid: Option<Deferred<u32>>,
}

/// One `--mount` of a RUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// A read-only (unless `rw`) view of the context or another stage/image.
    Bind {
        /// Mount point.
        target: String,
        /// Path in the source (default: its root).
        source: Option<String>,
        /// Stage name/index or image to mount from (default: the context).
        from: Option<String>,
        /// `rw`: writes allowed (and discarded).
        readwrite: bool,
    },
    /// A persistent cache directory.
    Cache {
        /// Mount point.
        target: String,
        /// Cache id (default: the target).
        id: Option<String>,
        /// Sharing mode.
        sharing: Sharing,
        /// Stage or image whose directory seeds the cache.
        from: Option<String>,
        /// Path in `from`.
        source: Option<String>,
        /// `ro`.
        readonly: bool,
        /// Owner and mode of the cache directory.
        ownership: Ownership,
    },
    /// A fresh tmpfs.
    Tmpfs {
        /// Mount point.
        target: String,
        /// `size=` in bytes (`64m`, `1g`: binary units, as Docker's).
        size: Option<Deferred<u64>>,
        /// `ro`.
        readonly: bool,
    },
    /// A build secret as a file (and/or environment variable).
    Secret {
        /// Secret id (`id=`, or BuildKit's `source=`; default: the
        /// target's file name).
        id: Option<String>,
        /// File path (default `/run/secrets/<id>`).
        target: Option<String>,
        /// Environment variable to expose the secret in.
        env: Option<String>,
        /// Fail when the secret is not provided.
        required: bool,
        /// Owner and mode of the file.
        ownership: Ownership,
    },
    /// An SSH agent socket.
    Ssh {
        /// Agent id (default `default`).
        id: Option<String>,
        /// Socket path.
        target: Option<String>,
        /// Fail when no agent is provided.
        required: bool,
        /// Owner and mode of the socket.
        ownership: Ownership,
    },
}

/// A size as Docker's `RAMInBytes` reads it (`^(\d+(\.\d+)*) ?([kmgtp])?i?b?$`,
/// any case): a number, then an optional binary unit (`64m`, `1.5GiB`,
/// `512 kb`, `4096`).
pub fn parse_size(text: &str) -> Result<u64, ValueError> {
    let bad = || ValueError::Size(text.to_string());
    let mut rest = text.to_ascii_lowercase();
    for suffix in ['b', 'i'] {
        if rest.ends_with(suffix) {
            rest.pop();
        }
    }
    let shift = match rest.pop() {
        Some(c) if "kmgtp".contains(c) => 10 * ("kmgtp".find(c).unwrap_or(0) + 1),
        Some(c) => {
            rest.push(c);
            0
        }
        None => return Err(bad()),
    };
    let number = rest.strip_suffix(' ').unwrap_or(&rest);
    let digits = number
        .split('.')
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !digits {
        return Err(bad());
    }
    let value: f64 = number.parse().map_err(|_| bad())?;
    let bytes = value * (1u64 << shift) as f64;
    if bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// Splits on commas outside double quotes, removing the quotes.
fn fields(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// What is wrong with a `--mount` value (BuildKit's option names).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    /// `type=` names no mount type.
    #[error("unsupported mount type {0:?} (expected bind, cache, secret, ssh or tmpfs)")]
    Type(String),
    /// A key given twice.
    #[error("key {0:?} given more than once")]
    Duplicate(String),
    /// A key the mount type does not take.
    #[error("unexpected key {key:?} for type={kind}")]
    UnexpectedKey {
        /// The key as written (lower case).
        key: String,
        /// The mount type.
        kind: String,
    },
    /// A key that needs `=value` given bare.
    #[error("{0} needs a value ({0}=...)")]
    NeedsValue(String),
    /// A boolean that is neither true nor false.
    #[error("invalid value {value:?} for {key}: expected true or false")]
    NotBool {
        /// The key.
        key: String,
        /// The value as written.
        value: String,
    },
    /// A mode, id or size that does not read as one.
    #[error("{key}: {source}")]
    Value {
        /// The key.
        key: String,
        /// Why its value does not read.
        source: ValueError,
    },
    /// A mount type that needs a target given none.
    #[error("type={0} needs a target")]
    NoTarget(String),
    /// `ro` and `rw` both.
    #[error("ro and rw given together")]
    ReadOnlyAndWrite,
    /// `sharing=` other than shared, private or locked.
    #[error("unsupported sharing value {0:?} (expected shared, private or locked)")]
    Sharing(String),
    /// A secret with both `id` and `source` (BuildKit's words).
    #[error("both source and id can't be set")]
    SecretSourceAndId,
    /// A secret with nothing to name it by.
    #[error("type=secret needs an id, a target or an env")]
    SecretUnnamed,
}

fn bad(error: MountError) -> InstructionError {
    InstructionError::BadMount(error)
}

/// Reads `key=value` (or a bare `key`) into a lookup of typed options.
struct Options {
    kind: String,
    pairs: Vec<(String, Option<String>)>,
}

impl Options {
    fn take(&mut self, keys: &[&str]) -> Option<Option<String>> {
        let at = self
            .pairs
            .iter()
            .position(|(k, _)| keys.contains(&k.as_str()))?;
        Some(self.pairs.remove(at).1)
    }

    fn string(&mut self, keys: &[&str]) -> Result<Option<String>, InstructionError> {
        match self.take(keys) {
            None => Ok(None),
            Some(Some(v)) => Ok(Some(v)),
            Some(None) => Err(bad(MountError::NeedsValue(keys[0].to_string()))),
        }
    }

    fn boolean(&mut self, keys: &[&str]) -> Result<bool, InstructionError> {
        match self.take(keys) {
            None => Ok(false),
            Some(None) => Ok(true),
            Some(Some(v)) => match v.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(bad(MountError::NotBool {
                    key: keys[0].to_string(),
                    value: v,
                })),
            },
        }
    }

    fn deferred<T>(
        &mut self,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, ValueError>,
    ) -> Result<Option<Deferred<T>>, InstructionError> {
        match self.string(&[key])? {
            None => Ok(None),
            Some(v) => Deferred::parse(&v, parse).map(Some).map_err(|source| {
                bad(MountError::Value {
                    key: key.to_string(),
                    source,
                })
            }),
        }
    }

    fn ownership(&mut self) -> Result<Ownership, InstructionError> {
        Ok(Ownership {
            mode: self.deferred("mode", parse_mode)?,
            uid: self.deferred("uid", parse_number)?,
            gid: self.deferred("gid", parse_number)?,
        })
    }

    fn target(&mut self) -> Result<Option<String>, InstructionError> {
        self.string(&["target", "dst", "destination"])
    }

    fn required_target(&mut self) -> Result<String, InstructionError> {
        self.target()?
            .ok_or_else(|| bad(MountError::NoTarget(self.kind.clone())))
    }

    /// Errors on the first key no rule took.
    fn finish(self) -> Result<(), InstructionError> {
        match self.pairs.first() {
            None => Ok(()),
            Some((key, _)) => Err(bad(MountError::UnexpectedKey {
                key: key.clone(),
                kind: self.kind,
            })),
        }
    }
}

impl Options {
    /// The `key[=value]` fields of a `--mount` value, each key once.
    fn of(value: &str) -> Result<Options, InstructionError> {
        let mut pairs = Vec::new();
        // A set, so a hostile value with many distinct keys stays linear.
        let mut seen = std::collections::HashSet::new();
        for field in fields(value) {
            let field = field.trim();
            if field.is_empty() {
                continue;
            }
            let (key, val) = match field.split_once('=') {
                Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_string())),
                None => (field.to_ascii_lowercase(), None),
            };
            if !seen.insert(key.clone()) {
                return Err(bad(MountError::Duplicate(key)));
            }
            pairs.push((key, val));
        }
        let mut opts = Options {
            kind: String::new(),
            pairs,
        };
        opts.kind = opts
            .string(&["type"])?
            .unwrap_or_else(|| "bind".to_string());
        Ok(opts)
    }

    /// `ro`/`rw`, with `default_ro` saying which is the default (spelling
    /// the default out is accepted, as Docker does; both is an error).
    fn readonly(&mut self, default_ro: bool) -> Result<bool, InstructionError> {
        let readonly = self.boolean(&["readonly", "ro"])?;
        let readwrite = self.boolean(&["readwrite", "rw"])?;
        if readonly && readwrite {
            return Err(bad(MountError::ReadOnlyAndWrite));
        }
        Ok(match default_ro {
            true => !readwrite,
            false => readonly,
        })
    }

    fn sharing(&mut self) -> Result<Sharing, InstructionError> {
        match self.string(&["sharing"])?.as_deref() {
            None | Some("shared") => Ok(Sharing::Shared),
            Some("private") => Ok(Sharing::Private),
            Some("locked") => Ok(Sharing::Locked),
            Some(other) => Err(bad(MountError::Sharing(other.to_string()))),
        }
    }

    fn bind(&mut self) -> Result<Mount, InstructionError> {
        let readwrite = !self.readonly(true)?;
        Ok(Mount::Bind {
            target: self.required_target()?,
            source: self.string(&["source", "src"])?,
            from: self.string(&["from"])?,
            readwrite,
        })
    }

    fn cache(&mut self) -> Result<Mount, InstructionError> {
        Ok(Mount::Cache {
            target: self.required_target()?,
            id: self.string(&["id"])?,
            sharing: self.sharing()?,
            from: self.string(&["from"])?,
            source: self.string(&["source", "src"])?,
            readonly: self.readonly(false)?,
            ownership: self.ownership()?,
        })
    }

    fn secret(&mut self) -> Result<Mount, InstructionError> {
        // A secret is always mounted read-only: `ro`/`rw` are accepted, as
        // BuildKit does, and change nothing.
        self.readonly(true)?;
        let id = self.string(&["id"])?;
        let source = self.string(&["source", "src"])?;
        if id.is_some() && source.is_some() {
            return Err(bad(MountError::SecretSourceAndId));
        }
        let mount = Mount::Secret {
            id: id.or(source),
            target: self.target()?,
            env: self.string(&["env"])?,
            required: self.boolean(&["required"])?,
            ownership: self.ownership()?,
        };
        match mount {
            Mount::Secret {
                id: None,
                target: None,
                env: None,
                ..
            } => Err(bad(MountError::SecretUnnamed)),
            mount => Ok(mount),
        }
    }
}

impl Mount {
    /// Parses one `--mount` value.
    pub(crate) fn parse(value: &str) -> Result<Self, InstructionError> {
        let mut opts = Options::of(value)?;
        let mount = match opts.kind.as_str() {
            "bind" => opts.bind()?,
            "cache" => opts.cache()?,
            "tmpfs" => Mount::Tmpfs {
                target: opts.required_target()?,
                size: opts.deferred("size", parse_size)?,
                readonly: opts.readonly(false)?,
            },
            "secret" => opts.secret()?,
            "ssh" => {
                // Read-only like a secret: `ro`/`rw` change nothing.
                opts.readonly(true)?;
                Mount::Ssh {
                    id: opts.string(&["id"])?,
                    target: opts.target()?,
                    required: opts.boolean(&["required"])?,
                    ownership: opts.ownership()?,
                }
            }
            other => return Err(bad(MountError::Type(other.to_string()))),
        };
        opts.finish()?;
        Ok(mount)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker_reads_them() {
        let cases: &[(&str, Option<u64>)] = &[
            ("4096", Some(4096)),
            ("64m", Some(64 << 20)),
            ("64M", Some(64 << 20)),
            ("1g", Some(1 << 30)),
            ("1.5k", Some(1536)),
            ("2kb", Some(2048)),
            ("2KiB", Some(2048)),
            ("10b", Some(10)),
            ("", None),
            ("m", None),
            ("1x", None),
            ("-1", None),
            ("1ib", Some(1)),
            ("3 m", Some(3 << 20)),
            ("1.2.3", None),
            (" 1", None),
            ("99999999p", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text).ok(), *want, "{text}");
        }
    }

    #[test]
    fn typed_mounts() {
        assert_eq!(
            Mount::parse("target=/src,from=build,rw").unwrap(),
            Mount::Bind {
                target: "/src".into(),
                source: None,
                from: Some("build".into()),
                readwrite: true
            }
        );
        assert_eq!(
            Mount::parse("type=cache,target=/root/.cache,sharing=locked,id=x,mode=0700,uid=$U")
                .unwrap(),
            Mount::Cache {
                target: "/root/.cache".into(),
                id: Some("x".into()),
                sharing: Sharing::Locked,
                from: None,
                source: None,
                readonly: false,
                ownership: Ownership {
                    mode: Some(Deferred::Value(0o700)),
                    uid: Some(Deferred::Unexpanded("$U".into())),
                    gid: None
                },
            }
        );
        assert_eq!(
            Mount::parse("type=tmpfs,dst=/t,size=1024").unwrap(),
            Mount::Tmpfs {
                target: "/t".into(),
                size: Some(Deferred::Value(1024)),
                readonly: false,
            }
        );
        assert!(matches!(
            Mount::parse("type=tmpfs,dst=/t,ro").unwrap(),
            Mount::Tmpfs { readonly: true, .. }
        ));
        assert!(matches!(
            Mount::parse("type=secret,src=tok,ro").unwrap(),
            Mount::Secret { id: Some(id), .. } if id == "tok"
        ));
        assert!(matches!(
            Mount::parse("type=ssh,rw=true").unwrap(),
            Mount::Ssh { .. }
        ));
        assert!(matches!(
            Mount::parse("type=secret,id=aws,required=true").unwrap(),
            Mount::Secret { required: true, .. }
        ));
        assert!(matches!(
            Mount::parse("type=ssh").unwrap(),
            Mount::Ssh { id: None, .. }
        ));
        assert!(matches!(
            Mount::parse("type=bind,target=/x,ro").unwrap(),
            Mount::Bind {
                readwrite: false,
                ..
            }
        ));
        assert!(matches!(
            Mount::parse("type=cache,target=/x,rw=true").unwrap(),
            Mount::Cache {
                readonly: false,
                ..
            }
        ));
        assert!(matches!(
            Mount::parse("type=bind,\"target=/a,b\"").unwrap(),
            Mount::Bind { target, .. } if target == "/a,b"
        ));
    }

    #[test]
    fn mount_errors() {
        let cases = [
            ("type=bind", "invalid --mount: type=bind needs a target"),
            ("type=nfs,target=/x", "invalid --mount: unsupported mount type \"nfs\" (expected bind, cache, secret, ssh or tmpfs)"),
            ("type=bind,target=/x,sharing=locked", "invalid --mount: unexpected key \"sharing\" for type=bind"),
            ("type=cache,target=/x,sharing=odd", "invalid --mount: unsupported sharing value \"odd\" (expected shared, private or locked)"),
            ("type=cache,target=/x,mode=999", "invalid --mount: mode: invalid mode \"999\" (expected octal like 0755)"),
            ("type=secret", "invalid --mount: type=secret needs an id, a target or an env"),
            ("target=/a,target=/b", "invalid --mount: key \"target\" given more than once"),
            ("type=ssh,required=maybe", "invalid --mount: invalid value \"maybe\" for required: expected true or false"),
            ("type=bind,target", "invalid --mount: target needs a value (target=...)"),
            ("type=bind,target=/x,ro,rw", "invalid --mount: ro and rw given together"),
            ("type=bind,target=/x,bind-propagation=shared", "invalid --mount: unexpected key \"bind-propagation\" for type=bind"),
            ("type=cache,target=/x,bind-propagation=rshared", "invalid --mount: unexpected key \"bind-propagation\" for type=cache"),
            ("type=tmpfs,target=/x,tmpfs-mode=1777", "invalid --mount: unexpected key \"tmpfs-mode\" for type=tmpfs"),
            ("type=bind,target=/x,mode=0700", "invalid --mount: unexpected key \"mode\" for type=bind"),
            ("type=tmpfs,target=/x,required", "invalid --mount: unexpected key \"required\" for type=tmpfs"),
            ("type=secret,id=a,source=b", "invalid --mount: both source and id can't be set"),
            ("type=tmpfs,target=/x,size=12q", "invalid --mount: size: invalid size \"12q\" (expected e.g. 64m or 1g)"),
        ];
        for (value, want) in cases {
            assert_eq!(
                Mount::parse(value).err().map(|e| e.to_string()).as_deref(),
                Some(want),
                "{value}"
            );
        }
    }
}
