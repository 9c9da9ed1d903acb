//! The storage drivers a container's root file system can be made with.

use serde::{Deserialize, Serialize};

/// Overlay drivers in the order strata tries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriverKind {
    /// Kernel overlayfs inside the user namespace (`userxattr`, Linux 5.11+)
    Overlay,
    /// The fuse-overlayfs program
    FuseOverlayfs,
    /// A copy of the lower layers: slow, works everywhere
    Vfs,
}

impl DriverKind {
    /// The driver tried first when none is forced: overlay, or vfs where
    /// strata runs without namespaces (isolation chroot), which can mount
    /// nothing at all.
    pub fn first() -> DriverKind {
        match super::userns::current() {
            Some(choice) if choice.isolation == super::ladder::Isolation::Chroot => DriverKind::Vfs,
            _ => DriverKind::Overlay,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DriverKind::Overlay => "overlay",
            DriverKind::FuseOverlayfs => "fuse-overlayfs",
            DriverKind::Vfs => "vfs",
        }
    }
}

impl std::fmt::Display for DriverKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The page-size limit the kernel puts on legacy mount(2) option strings.
const MOUNT_DATA_MAX: usize = 4096 - 1;
/// How many 10 ms polls fuse-overlayfs gets to exit after its unmount.
const FUSE_EXIT_POLLS: u32 = 100;
/// How long fuse-overlayfs may take to come up.
const FUSE_START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mounting overlay on {target}: {source}")]
    Overlay {
        target: PathBuf,
        source: nix::errno::Errno,
    },
    #[error("opening lower layer {path}: {source}")]
    Lower {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("fuse-overlayfs on {target}: {reason}")]
    Fuse { target: PathBuf, reason: String },
    #[error("the vfs driver is not available yet; use overlay or fuse-overlayfs")]
    VfsUnsupported,
    #[error("no storage driver works here: {0} (see strata info)")]
    NoDriver(String),
    #[error("mounting a tmpfs on {target}: {source}")]
    Tmpfs {
        target: PathBuf,
        source: nix::errno::Errno,
    },
}

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Child;

/// The directories a container's root file system is made of.
#[derive(Debug, Clone)]
pub struct Layout<'a> {
    /// Image layers, top-most first. May be empty (FROM scratch).
    pub lowers: &'a [PathBuf],
    pub upper: &'a Path,
    pub work: &'a Path,
    /// An empty directory, used as the lower of an image with no layers.
    pub empty: &'a Path,
    pub target: &'a Path,
    /// Mount without overlayfs's fsync of every copy-up (and with every
    /// fsync inside a no-op): for a container this process owns and
    /// removes (a build step, whose layer the store syncfs's before
    /// publishing it; `run --rm`), as podman does for its --rm containers.
    pub volatile: bool,
}

/// A mounted root file system; unmounted when dropped.
#[derive(Debug)]
pub struct Mounted {
    target: PathBuf,
    fuse: Option<Child>,
}

impl Mounted {
    pub fn path(&self) -> &Path {
        &self.target
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // A lazy unmount cannot fail for a mount that exists; if it is
        // already gone there is nothing to do.
        let _ = nix::mount::umount2(&self.target, nix::mount::MntFlags::MNT_DETACH);
        if let Some(child) = &mut self.fuse {
            // fuse-overlayfs exits once unmounted; reap it (kill first if not).
            for _ in 0..FUSE_EXIT_POLLS {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Mounts `layout` with `kind`. Runs inside strata's mount namespace.
pub fn mount(kind: DriverKind, layout: &Layout) -> Result<Mounted, MountError> {
    let lowers: Vec<PathBuf> = if layout.lowers.is_empty() {
        vec![layout.empty.to_path_buf()]
    } else {
        dedupe_lowers(layout.lowers)
    };
    match kind {
        DriverKind::Overlay => mount_overlay(&lowers, layout),
        DriverKind::FuseOverlayfs => mount_fuse(&lowers, layout),
        DriverKind::Vfs => Err(MountError::VfsUnsupported),
    }
}

/// A private tmpfs on `target` (a directory of strata's own) until dropped:
/// for files that must never reach a disk, such as a step's build secrets.
/// Only this mount namespace sees it; nothing in it can be executed.
pub fn mount_tmpfs(target: &Path, size: u64) -> Result<Mounted, MountError> {
    use nix::mount::MsFlags;
    nix::mount::mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(format!("mode=0700,size={size}").as_str()),
    )
    .map_err(|source| MountError::Tmpfs {
        target: target.to_path_buf(),
        source,
    })?;
    Ok(Mounted {
        target: target.to_path_buf(),
        fuse: None,
    })
}

/// The same layer twice in an image (two steps that changed nothing, say)
/// is refused by overlayfs as overlapping (ELOOP). Every path a lower copy
/// of a layer has, its upper copy has too, above it: dropping the lower one
/// changes nothing in the merged view.
fn dedupe_lowers(lowers: &[PathBuf]) -> Vec<PathBuf> {
    let mut seen = std::collections::HashSet::new();
    lowers
        .iter()
        .filter(|p| seen.insert(p.as_path()))
        .cloned()
        .collect()
}

fn options(lowers: &[String], layout: &Layout) -> String {
    format!(
        "lowerdir={},upperdir={},workdir={}",
        lowers.join(":"),
        layout.upper.display(),
        layout.work.display()
    )
}

fn mount_overlay(lowers: &[PathBuf], layout: &Layout) -> Result<Mounted, MountError> {
    let plain: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
    let extra = match layout.volatile {
        // A volatile mount leaves work/incompat/volatile behind, which
        // refuses the next mount of the same dirs: ours, cleanly unmounted.
        true => {
            let _ = fs_err::remove_dir(layout.work.join("work/incompat/volatile"));
            ",userxattr,volatile"
        }
        false => ",userxattr",
    };
    let mut data = options(&plain, layout) + extra;
    // Too long for one page (100+ layers): name each lower by an open fd,
    // which overlayfs resolves at mount time.
    let mut _held: Vec<OwnedFd> = Vec::new();
    if data.len() > MOUNT_DATA_MAX {
        use std::os::fd::AsRawFd;
        let mut names = Vec::new();
        for path in lowers {
            let fd = rustix::fs::open(
                path,
                rustix::fs::OFlags::PATH
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| MountError::Lower {
                path: path.clone(),
                source: std::io::Error::from_raw_os_error(e.raw_os_error()),
            })?;
            names.push(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            _held.push(fd);
        }
        data = options(&names, layout) + extra;
    }
    nix::mount::mount(
        Some("overlay"),
        layout.target,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(|source| MountError::Overlay {
        target: layout.target.to_path_buf(),
        source,
    })?;
    Ok(Mounted {
        target: layout.target.to_path_buf(),
        fuse: None,
    })
}

fn mount_fuse(lowers: &[PathBuf], layout: &Layout) -> Result<Mounted, MountError> {
    use std::os::unix::process::CommandExt;
    let fail = |reason: String| MountError::Fuse {
        target: layout.target.to_path_buf(),
        reason,
    };
    let program = super::idmap::find_program("fuse-overlayfs")
        .ok_or_else(|| fail("fuse-overlayfs not found (apt-get install fuse-overlayfs)".into()))?;
    let plain: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
    let before = dev_of(layout.target);
    // A file, not a pipe: a pipe nobody drains could block the daemon.
    let mut errors = tempfile::tempfile().map_err(|e| fail(e.to_string()))?;
    let mut cmd = std::process::Command::new(program);
    // Foreground, so it stays our child and dies with us.
    cmd.arg("-f")
        .arg("-o")
        .arg(options(&plain, layout))
        .arg(layout.target)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(errors.try_clone().map_err(|e| fail(e.to_string()))?);
    // SAFETY: prctl is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn().map_err(|e| fail(e.to_string()))?;
    let deadline = std::time::Instant::now() + FUSE_START_TIMEOUT;
    loop {
        if dev_of(layout.target) != before {
            return Ok(Mounted {
                target: layout.target.to_path_buf(),
                fuse: Some(child),
            });
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            use std::io::{Read, Seek};
            // Best effort: the status alone still says it failed.
            let _ = errors
                .rewind()
                .and_then(|()| errors.read_to_string(&mut err));
            return Err(fail(format!("exited with {status}: {}", err.trim())));
        }
        if std::time::Instant::now() > deadline {
            // It never came up: do not leave it running.
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail("did not mount within 10 seconds".into()));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn dev_of(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    fs_err::metadata(path).ok().map(|m| m.dev())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_layer_keeps_its_top_place() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            dedupe_lowers(&[p("/c"), p("/a"), p("/b"), p("/a")]),
            vec![p("/c"), p("/a"), p("/b")]
        );
    }
}
