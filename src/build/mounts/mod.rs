//! `RUN --mount`: a step's mounts, settled before the step is keyed and
//! made real only on a miss.
//!
//! [`plan`] turns the parsed mounts into [`StepMounts`]: targets made
//! absolute (relative ones under the WORKDIR, as BuildKit), `from=` named
//! by image id, a bind of the build context digested like a COPY's sources
//! (the metadata cache makes a rebuild read nothing), and each mount as a
//! line of the step's key. Nothing is mounted or created there, so a hit
//! costs no container. What is not in a key: cache content, and a secret's
//! value (BuildKit's rule: a secret never decides a rebuild).
//!
//! On a miss, [`StepMounts::activate`] makes each mount real for the
//! sandbox, and the returned [`Active`] undoes it all when dropped:
//! - bind, from the context: a copy of the selected files (`.dockerignore`
//!   applied) in a staging directory; `rw` writes go there and are gone;
//! - bind, from a stage or image: its root file system mounted over a
//!   throwaway upper layer, so `rw` never writes a layer of the store;
//! - cache: a directory of the store's `cache-mounts/` (see that module for
//!   its locking), keyed by a digest of its id, never by the id as a path;
//! - tmpfs: made by the sandbox;
//! - secret: a file on a private tmpfs of strata's ([`secrets`]), bound in
//!   read-only, and/or a variable of the step's environment;
//! - ssh: a socket on that tmpfs where strata serves the `--ssh` agent for
//!   the step ([`agent`]: a relay to the host's agent, or keys of its own),
//!   bound at its target, `SSH_AUTH_SOCK` naming the first one.
//!
//! Every source is resolved inside its own root and every target inside the
//! container's (the sandbox's openat2 `RESOLVE_IN_ROOT` and /proc/self/fd
//! mounts), so no symlink in a stage, a cache or the image can lead out;
//! mount points the image lacks come from the container's init layer and
//! never reach the step's layer.

mod active;
pub mod agent;
pub mod secrets;

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use strata_parser::instructions::{Deferred, Mount, Ownership, Sharing};

use super::config_steps::join_workdir;
use super::context::{Context, Source};
use super::copy::CopyOptions;
use super::error::StepFailure;
use crate::digest::ImageId;
use crate::store::{CacheSharing, Store, StoreError};
pub use active::{Active, MountedImage};
pub use agent::SshAgent;
pub use secrets::{SecretFrom, SecretSource};

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("invalid mount target {0:?}")]
    Target(String),
    #[error("{what} {text:?} still holds a variable after expansion")]
    Unexpanded { what: &'static str, text: String },
    #[error("secret {id} is required but was not given (strata build --secret id={id},src=FILE)")]
    SecretMissing { id: String },
    #[error("secret {id}: {reason}")]
    SecretUnreadable { id: String, reason: String },
    #[error("secret {id}: its value is not UTF-8, so it cannot be the variable {env}")]
    SecretNotText { id: String, env: String },
    #[error("ssh agent {id} is required but was not given (strata build --ssh {id}[=SOCKET|KEY])")]
    SshMissing { id: String },
    #[error("cache mount {target}: source {source_path} is not in the cache")]
    CacheSource { target: String, source_path: String },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Driver(#[from] crate::sandbox::driver::MountError),
}

impl MountError {
    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> MountError {
        MountError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What the engine gives the mounts of a step.
pub trait Host {
    fn store(&self) -> &Store;
    /// The image a `from=` names: an earlier stage's, or an image's.
    fn image(&self, from: &str) -> Result<ImageId, StepFailure>;
    /// The build context.
    fn context(&self) -> Result<&Context, StepFailure>;
    /// `image`'s root file system over a throwaway writable layer, mounted
    /// until the guard is dropped.
    fn mount_image(&self, image: &ImageId) -> Result<Box<dyn MountedImage + '_>, StepFailure>;
    /// The build's `--secret`s.
    fn secrets(&self) -> &[SecretSource];
    /// The build's `--ssh` agents.
    fn agents(&self) -> &[SshAgent];
    /// Tells the user the step waits for another build.
    fn waiting(&self, message: &str);
}

/// Owner and mode of a cache directory, a secret file or an agent socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Perms {
    uid: u32,
    gid: u32,
    mode: u32,
}

/// One mount, settled.
#[derive(Debug, Clone)]
enum Planned {
    ContextBind {
        target: String,
        /// What the source selected in the context.
        selected: Vec<Source>,
        readwrite: bool,
    },
    ImageBind {
        target: String,
        image: ImageId,
        source: String,
        readwrite: bool,
    },
    Cache {
        target: String,
        /// Hex digest naming its directory in the store.
        key: String,
        sharing: CacheSharing,
        readonly: bool,
        /// With `from=`: the image and path that seed a new cache.
        seed: Option<(ImageId, String)>,
        /// The path mounted, inside the cache.
        source: String,
        perms: Perms,
    },
    Tmpfs {
        target: String,
        size: Option<u64>,
        readonly: bool,
    },
    Secret {
        id: String,
        /// The file's target and owner, unless it is a variable only.
        file: Option<(String, Perms)>,
        /// `env=`: the variable it is also (or only) exposed as.
        env: Option<String>,
    },
    Ssh {
        id: String,
        target: String,
        perms: Perms,
        /// The first ssh mount of the step: `SSH_AUTH_SOCK` names it.
        first: bool,
    },
}

/// A RUN's mounts, ready to key and (on a miss) to make.
#[derive(Debug, Clone, Default)]
pub struct StepMounts {
    planned: Vec<Planned>,
    key: Vec<String>,
}

impl StepMounts {
    /// One canonical line per mount, for the step's key.
    pub fn key(&self) -> &[String] {
        &self.key
    }

    /// The store keys of its cache mounts (what `--cache-to
    /// …,mounts=true` exports).
    pub fn cache_keys(&self) -> impl Iterator<Item = &str> {
        self.planned.iter().filter_map(|p| match p {
            Planned::Cache { key, .. } => Some(key.as_str()),
            _ => None,
        })
    }
}

/// Settles the parsed mounts of a RUN whose WORKDIR is `workdir`.
pub fn plan(host: &dyn Host, mounts: &[Mount], workdir: &str) -> Result<StepMounts, StepFailure> {
    let mut out = StepMounts::default();
    let mut ssh_count = 0;
    for mount in mounts {
        let (planned, key) = match mount {
            Mount::Bind {
                target,
                source,
                from,
                readwrite,
            } => plan_bind(
                host,
                absolute(target, workdir)?,
                source.as_deref(),
                from.as_deref(),
                *readwrite,
            )?,
            Mount::Cache { .. } => plan_cache(host, mount, workdir)?,
            Mount::Tmpfs {
                target,
                size,
                readonly,
            } => {
                let target = absolute(target, workdir)?;
                let size = size.as_ref().map(|s| value(s, "size")).transpose()?;
                let key = serde_json::json!({"type": "tmpfs", "target": target, "size": size, "ro": readonly});
                (
                    Some(Planned::Tmpfs {
                        target,
                        size,
                        readonly: *readonly,
                    }),
                    key,
                )
            }
            Mount::Secret { .. } => plan_secret(host, mount, workdir)?,
            Mount::Ssh { .. } => {
                ssh_count += 1;
                plan_ssh(host, mount, workdir, ssh_count - 1)?
            }
        };
        out.planned.extend(planned);
        out.key.push(key.to_string());
    }
    Ok(out)
}

/// A target as an absolute, clean path (relative ones under `workdir`).
fn absolute(target: &str, workdir: &str) -> Result<String, MountError> {
    let path = join_workdir(if workdir.is_empty() { "/" } else { workdir }, target);
    match path.as_str() {
        "/" | "" => Err(MountError::Target(target.to_string())),
        _ => Ok(path),
    }
}

/// A source path inside its root: `..` stops at the root, as BuildKit's
/// `path.Join("/", source)`.
fn inside(source: Option<&str>) -> String {
    join_workdir("/", source.unwrap_or("/"))
}

fn value<T: Copy>(d: &Deferred<T>, what: &'static str) -> Result<T, MountError> {
    match d {
        Deferred::Value(v) => Ok(*v),
        Deferred::Unexpanded(text) => Err(MountError::Unexpanded {
            what,
            text: text.clone(),
        }),
    }
}

fn perms(o: &Ownership, mode: u32) -> Result<Perms, MountError> {
    Ok(Perms {
        uid: o
            .uid
            .as_ref()
            .map(|v| value(v, "uid"))
            .transpose()?
            .unwrap_or(0),
        gid: o
            .gid
            .as_ref()
            .map(|v| value(v, "gid"))
            .transpose()?
            .unwrap_or(0),
        mode: o
            .mode
            .as_ref()
            .map(|v| value(v, "mode"))
            .transpose()?
            .unwrap_or(mode),
    })
}

type PlannedKey = (Option<Planned>, serde_json::Value);

fn plan_bind(
    host: &dyn Host,
    target: String,
    source: Option<&str>,
    from: Option<&str>,
    readwrite: bool,
) -> Result<PlannedKey, StepFailure> {
    let source = inside(source);
    let Some(from) = from else {
        let ctx = host.context()?;
        let selected = ctx.select(std::slice::from_ref(&source), &[])?;
        let cache_dir = host.store().root().join("cache");
        let opts = CopyOptions::default();
        let digest =
            super::context::digest::digest_sources(ctx, &selected, &opts, Some(&cache_dir))?;
        let key = serde_json::json!({"type": "bind", "target": target, "source": source,
            "context": digest.to_string(), "rw": readwrite});
        return Ok((
            Some(Planned::ContextBind {
                target,
                selected,
                readwrite,
            }),
            key,
        ));
    };
    let image = host.image(from)?;
    let key = serde_json::json!({"type": "bind", "target": target, "source": source,
        "image": image.to_string(), "rw": readwrite});
    Ok((
        Some(Planned::ImageBind {
            target,
            image,
            source,
            readwrite,
        }),
        key,
    ))
}

fn plan_cache(host: &dyn Host, mount: &Mount, workdir: &str) -> Result<PlannedKey, StepFailure> {
    let Mount::Cache {
        target,
        id,
        sharing,
        from,
        source,
        readonly,
        ownership,
    } = mount
    else {
        return Ok((None, serde_json::Value::Null));
    };
    let target = absolute(target, workdir)?;
    let id = id
        .clone()
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| target.clone());
    let seed = match from {
        Some(f) => Some((host.image(f)?, inside(source.as_deref()))),
        None => None,
    };
    // With from=, the seed's path is part of what the cache is; without,
    // source= picks a directory inside it.
    let source = match seed {
        Some(_) => "/".to_string(),
        None => inside(source.as_deref()),
    };
    let mut h = Sha256::new();
    for field in [
        Some(id.as_str()),
        seed.as_ref().map(|(i, _)| i.digest().hex()),
        seed.as_ref().map(|(_, s)| s.as_str()),
    ] {
        let field = field.unwrap_or("");
        h.update((field.len() as u64).to_le_bytes());
        h.update(field.as_bytes());
    }
    let key = hex::encode(h.finalize());
    let sharing = match sharing {
        Sharing::Shared => CacheSharing::Shared,
        Sharing::Private => CacheSharing::Private,
        Sharing::Locked => CacheSharing::Locked,
    };
    let perms = perms(ownership, 0o755)?;
    let line = serde_json::json!({"type": "cache", "target": target, "id": id,
        "sharing": format!("{sharing:?}"), "ro": readonly, "source": source,
        "from": seed.as_ref().map(|(i, s)| format!("{i}:{s}")),
        "uid": perms.uid, "gid": perms.gid, "mode": perms.mode});
    let planned = Planned::Cache {
        target,
        key,
        sharing,
        readonly: *readonly,
        seed,
        source,
        perms,
    };
    Ok((Some(planned), line))
}

fn plan_secret(host: &dyn Host, mount: &Mount, workdir: &str) -> Result<PlannedKey, StepFailure> {
    let Mount::Secret {
        id,
        target,
        env,
        required,
        ownership,
    } = mount
    else {
        return Ok((None, serde_json::Value::Null));
    };
    // BuildKit: the id defaults to the target's file name (or the variable).
    let id = id
        .clone()
        .or_else(|| {
            target
                .as_deref()
                .and_then(|t| Path::new(t).file_name())
                .map(|n| n.to_string_lossy().into_owned())
        })
        .or_else(|| env.clone())
        .unwrap_or_default();
    let perms = perms(ownership, 0o400)?;
    let file = match (target, env) {
        (Some(t), _) => Some(absolute(t, workdir)?),
        (None, None) => Some(format!("/run/secrets/{id}")),
        (None, Some(_)) => None,
    };
    // The definition is keyed, never the value (BuildKit's rule).
    let key = serde_json::json!({"type": "secret", "id": id, "target": file, "env": env,
        "required": required, "uid": perms.uid, "gid": perms.gid, "mode": perms.mode});
    if !host.secrets().iter().any(|s| s.id == id) {
        return match required {
            true => Err(MountError::SecretMissing { id }.into()),
            false => Ok((None, key)),
        };
    }
    let file = file.map(|f| (f, perms));
    let planned = Planned::Secret {
        id,
        file,
        env: env.clone(),
    };
    Ok((Some(planned), key))
}

/// `type=ssh`: BuildKit's defaults (id `default`, target
/// `/run/buildkit/ssh_agent.N` for the Nth, mode 0600); a missing agent
/// that is not `required` leaves the mount out.
fn plan_ssh(
    host: &dyn Host,
    mount: &Mount,
    workdir: &str,
    n: usize,
) -> Result<PlannedKey, StepFailure> {
    let Mount::Ssh {
        id,
        target,
        required,
        ownership,
    } = mount
    else {
        return Ok((None, serde_json::Value::Null));
    };
    let id = id.clone().unwrap_or_else(|| "default".to_string());
    let target = match target {
        Some(t) => absolute(t, workdir)?,
        None => format!("/run/buildkit/ssh_agent.{n}"),
    };
    let perms = perms(ownership, 0o600)?;
    // Which agent, never what it holds: keys do not decide a rebuild.
    let key = serde_json::json!({"type": "ssh", "id": id, "target": target, "required": required,
        "uid": perms.uid, "gid": perms.gid, "mode": perms.mode});
    if !host.agents().iter().any(|a| a.id == id) {
        return match required {
            true => Err(MountError::SshMissing { id }.into()),
            false => Ok((None, key)),
        };
    }
    let planned = Planned::Ssh {
        id,
        target,
        perms,
        first: n == 0,
    };
    Ok((Some(planned), key))
}

#[cfg(test)]
mod tests;
