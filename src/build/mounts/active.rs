//! A step's mounts made real for the sandbox, and undone when dropped.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::agent::{self, Served};
use super::secrets::SecretDir;
use super::{Host, MountError, Perms, Planned, StepMounts};
use crate::build::context::Context;
use crate::build::copy::{self, CopyOptions};
use crate::build::error::StepFailure;
use crate::sandbox::spec::{Bind, Mount, Tmpfs};
use crate::store::{CacheMount, Staging};

/// A root file system mounted for a bind or a cache seed.
pub trait MountedImage {
    fn path(&self) -> &Path;
}

/// The mounts of a running step. Dropped after it: the secrets tmpfs
/// goes, caches are unlocked, copies and mounted stages are removed
/// (fields drop in this order).
pub struct Active<'h> {
    /// For the sandbox, parents before what is mounted below them.
    pub mounts: Vec<Mount>,
    /// `NAME=value` for `env=` secrets and `SSH_AUTH_SOCK`.
    pub env: Vec<String>,
    /// Stopped before their sockets' tmpfs goes.
    agents: Vec<Served>,
    secrets: Option<SecretDir>,
    caches: Vec<CacheMount>,
    copies: Vec<Staging>,
    roots: Vec<Box<dyn MountedImage + 'h>>,
}

impl StepMounts {
    /// Makes every mount of the step; see the module doc for each kind.
    pub fn activate<'h>(&self, host: &'h dyn Host) -> Result<Active<'h>, StepFailure> {
        let mut a = Active {
            mounts: Vec::new(),
            env: Vec::new(),
            agents: Vec::new(),
            secrets: None,
            caches: Vec::new(),
            copies: Vec::new(),
            roots: Vec::new(),
        };
        for (n, planned) in self.planned.iter().enumerate() {
            let mount = match planned {
                Planned::ContextBind {
                    target,
                    selected,
                    readwrite,
                } => {
                    let (within, source) = a.copy_context(host, host.context()?, selected)?;
                    bind(within, source, target, !readwrite)
                }
                Planned::ImageBind {
                    target,
                    image,
                    source,
                    readwrite,
                } => {
                    let root = host.mount_image(image)?;
                    let within = root.path().to_path_buf();
                    a.roots.push(root);
                    bind(within, source.clone(), target, !readwrite)
                }
                Planned::Cache { .. } => a.cache(host, planned)?,
                Planned::Tmpfs {
                    target,
                    size,
                    readonly,
                } => Mount::Tmpfs(Tmpfs {
                    target: target.clone(),
                    size: *size,
                    readonly: *readonly,
                }),
                Planned::Secret { .. } => match a.secret(host, planned, n)? {
                    Some(m) => m,
                    None => continue,
                },
                Planned::Ssh { .. } => a.ssh(host, planned, n)?,
            };
            a.mounts.push(mount);
        }
        // A mount inside another's target must come after it.
        a.mounts
            .sort_by_key(|m| m.target().split('/').filter(|p| !p.is_empty()).count());
        Ok(a)
    }
}

fn bind(within: PathBuf, source: String, target: &str, readonly: bool) -> Mount {
    Mount::Bind(Bind {
        source: PathBuf::from(source),
        within: Some(within),
        target: target.to_string(),
        readonly,
        optional: false,
    })
}

impl Active<'_> {
    /// The selected context files, copied (ignore rules applied) into a
    /// staging directory: `(root of the copy, the source in it)`.
    fn copy_context(
        &mut self,
        host: &dyn Host,
        ctx: &Context,
        selected: &[crate::build::context::Source],
    ) -> Result<(PathBuf, String), StepFailure> {
        let staging = host.store().staging()?;
        let root = staging.path().join("root");
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&root)
            .map_err(|e| MountError::io("create", &root, e))?;
        copy::copy_sources(ctx, selected, &root, "/", &CopyOptions::default())?;
        let source = match selected {
            [one] if !one.is_dir => format!(
                "/{}",
                one.path.file_name().unwrap_or_default().to_string_lossy()
            ),
            _ => "/".to_string(),
        };
        self.copies.push(staging);
        Ok((root, source))
    }

    fn cache(&mut self, host: &dyn Host, planned: &Planned) -> Result<Mount, StepFailure> {
        let Planned::Cache {
            target,
            key,
            sharing,
            readonly,
            seed,
            source,
            perms,
        } = planned
        else {
            return Err(StepFailure::NotHere("a cache mount"));
        };
        // A new cache from `from=` is seeded with that path of the image.
        let seed_root = match seed {
            Some((image, _)) => Some(host.mount_image(image)?),
            None => None,
        };
        let init = |dir: &Path| -> std::io::Result<()> {
            match (&seed_root, seed) {
                (Some(root), Some((_, path))) => seed_cache(root.path(), path, dir),
                _ => set_owner_mode(dir, (perms.uid, perms.gid), perms.mode),
            }
        };
        let waiting = || {
            host.waiting(&format!(
                "waiting for cache mount {target}: another build holds it (sharing=locked)"
            ))
        };
        let cache = host.store().cache_mount(key, *sharing, &waiting, &init)?;
        let within = cache.data().to_path_buf();
        if source != "/" && !is_inside(&within, source) {
            return Err(MountError::CacheSource {
                target: target.clone(),
                source_path: source.clone(),
            }
            .into());
        }
        self.caches.push(cache);
        Ok(bind(within, source.clone(), target, *readonly))
    }
}

impl Active<'_> {
    /// A secret as a file on the step's private tmpfs (bound read-only at
    /// its target) and/or a variable; `None` when it is a variable only.
    fn secret(
        &mut self,
        host: &dyn Host,
        planned: &Planned,
        n: usize,
    ) -> Result<Option<Mount>, StepFailure> {
        let Planned::Secret { id, file, env } = planned else {
            return Err(StepFailure::NotHere("a secret mount"));
        };
        let Some(source) = host.secrets().iter().find(|s| &s.id == id) else {
            return Ok(None);
        };
        let value = source.value()?;
        if let Some(name) = env {
            let text = std::str::from_utf8(&value).map_err(|_| MountError::SecretNotText {
                id: id.clone(),
                env: name.clone(),
            })?;
            self.env.push(format!("{name}={text}"));
        }
        let Some((target, Perms { uid, gid, mode })) = file else {
            return Ok(None);
        };
        let dir = self.secret_dir(host)?;
        let name = format!("secret-{n}");
        dir.write(&name, &value, (*uid, *gid), *mode)?;
        Ok(Some(bind(dir.path().to_path_buf(), name, target, true)))
    }

    /// An agent socket strata serves on the step's private tmpfs, bound
    /// read-only (connecting needs no write to the mount).
    fn ssh(&mut self, host: &dyn Host, planned: &Planned, n: usize) -> Result<Mount, StepFailure> {
        let Planned::Ssh {
            id,
            target,
            perms,
            first,
        } = planned
        else {
            return Err(StepFailure::NotHere("an ssh mount"));
        };
        let Some(agent) = host.agents().iter().find(|a| &a.id == id) else {
            return Err(MountError::SshMissing { id: id.clone() }.into());
        };
        let name = format!("ssh-{n}");
        let within = self.secret_dir(host)?.path().to_path_buf();
        let socket = within.join(&name);
        let served = agent::serve(&socket, agent.upstream.clone())
            .map_err(|e| MountError::io("serve an ssh agent on", &socket, e))?;
        self.agents.push(served);
        set_owner_mode(&socket, (perms.uid, perms.gid), perms.mode)
            .map_err(|e| MountError::io("set the owner of", &socket, e))?;
        if *first {
            self.env.push(format!("SSH_AUTH_SOCK={target}"));
        }
        Ok(bind(within, name, target, true))
    }

    fn secret_dir(&mut self, host: &dyn Host) -> Result<&SecretDir, MountError> {
        let dir = match self.secrets.take() {
            Some(dir) => dir,
            None => SecretDir::new(host.store())?,
        };
        Ok(self.secrets.insert(dir))
    }
}

/// Gives a new cache directory or a secret file its owner and mode.
pub(super) fn set_owner_mode(path: &Path, owner: (u32, u32), mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs_err::os::unix::fs::chown(path, Some(owner.0), Some(owner.1))?;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Whether `path` exists inside `root`, resolved there (never outside).
fn is_inside(root: &Path, path: &str) -> bool {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let Ok(dir) = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    let rel = path.trim_start_matches('/');
    let flags = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    rustix::fs::openat2(
        &dir,
        rel,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        flags,
    )
    .is_ok()
}

/// Copies `path` of a mounted image (owners kept) into a new cache's `dir`.
fn seed_cache(root: &Path, path: &str, dir: &Path) -> std::io::Result<()> {
    let ctx = Context::rootfs(root).map_err(std::io::Error::other)?;
    let selected = ctx
        .select(&[path.to_string()], &[])
        .map_err(std::io::Error::other)?;
    copy::copy_sources(&ctx, &selected, dir, "/", &CopyOptions::default())
        .map_err(std::io::Error::other)?;
    Ok(())
}
