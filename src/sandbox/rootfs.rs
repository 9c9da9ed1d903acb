//! Pid 1's view of the world: /proc, a minimal /dev, the binds, then
//! pivot_root into the container's root file system.
//!
//! The image is untrusted: every mount point is opened inside the rootfs
//! with openat2 (RESOLVE_IN_ROOT, and RESOLVE_NO_SYMLINKS where a symlink
//! has no business being) and mounted onto through /proc/self/fd, so a
//! symlink the image placed at /proc, /dev or /etc/resolv.conf can never
//! make strata mount or write outside the rootfs.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::spec::{Bind, ProcessSpec};

/// Device nodes bound from the host, as Docker's default set.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];
/// Size of /dev and /dev/shm, as Docker (64 MiB).
const DEV_TMPFS: &str = "size=65536k";
/// The tty group Docker uses for devpts (gid 5 in Debian, Alpine, busybox).
const TTY_GID: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("the image's {0} is not a plain directory (a symlink?): refusing to mount over it")]
    NotADirectory(String),
    #[error("bind target {target} is a {found}, but {host} is a {expected}")]
    BindType {
        target: String,
        host: PathBuf,
        expected: &'static str,
        found: &'static str,
    },
}

fn io(what: &'static str, path: impl Into<String>) -> impl FnOnce(std::io::Error) -> RootfsError {
    let path = path.into();
    move |source| RootfsError::Io { what, path, source }
}

fn errno(e: rustix::io::Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.raw_os_error())
}

fn nix_errno(e: nix::errno::Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

/// The path through which the kernel reaches exactly the file `fd` is open on.
fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Opens `path` inside `root` as O_PATH, never leaving `root`.
fn open_in(root: &OwnedFd, path: &str, no_symlinks: bool) -> Result<OwnedFd, RootfsError> {
    let mut resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    if no_symlinks {
        resolve |= ResolveFlags::NO_SYMLINKS;
    }
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    rustix::fs::openat2(
        root,
        rel,
        OFlags::PATH | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
        resolve,
    )
    .map_err(|e| io("opening", path)(errno(e)))
}

/// A directory of the image to mount over: must be a real directory.
fn mount_dir(root: &OwnedFd, path: &str) -> Result<OwnedFd, RootfsError> {
    let fd = open_in(root, path, true).map_err(|e| match e {
        RootfsError::Io { source, .. } if source.raw_os_error() == Some(nix::libc::ELOOP) => {
            RootfsError::NotADirectory(path.into())
        }
        other => other,
    })?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| io("stat", path)(errno(e)))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::Directory {
        return Err(RootfsError::NotADirectory(path.into()));
    }
    Ok(fd)
}

fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
    label: &str,
) -> Result<(), RootfsError> {
    nix::mount::mount(source, target, fstype, flags, data)
        .map_err(|e| io("mounting", label)(nix_errno(e)))
}

/// Sets up the mounts and pivots into `spec.rootfs`. Runs in pid 1's own
/// mount namespace.
pub fn enter(spec: &ProcessSpec) -> Result<(), RootfsError> {
    let rootfs = spec.rootfs.as_path();
    let label = rootfs.display().to_string();
    // pivot_root needs a mount point; a vfs rootfs is a plain directory.
    mount(
        Some(rootfs),
        rootfs,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
        &label,
    )?;
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io("opening", label.clone())(errno(e)))?;

    let proc_dir = mount_dir(&root, "/proc")?;
    let noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some(Path::new("proc")),
        &fd_path(&proc_dir),
        Some("proc"),
        noexec,
        None,
        "/proc",
    )?;
    setup_dev(&root)?;
    for bind in &spec.binds {
        bind_mount(&root, bind)?;
    }

    rustix::process::fchdir(&root).map_err(|e| io("chdir", label.clone())(errno(e)))?;
    rustix::process::pivot_root(".", ".").map_err(|e| io("pivot_root", label.clone())(errno(e)))?;
    // The old root is stacked under the new one at "."; detach it so
    // nothing of the host stays reachable.
    nix::mount::umount2(".", MntFlags::MNT_DETACH)
        .map_err(|e| io("detaching the host root", "/")(nix_errno(e)))?;
    std::env::set_current_dir("/").map_err(io("chdir", "/"))
}

fn setup_dev(root: &OwnedFd) -> Result<(), RootfsError> {
    let dev = mount_dir(root, "/dev")?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME;
    mount(
        Some(Path::new("tmpfs")),
        &fd_path(&dev),
        Some("tmpfs"),
        flags,
        Some(&format!("mode=755,{DEV_TMPFS}")),
        "/dev",
    )?;
    // Reopen: the old fd still points below the new tmpfs.
    let dev = mount_dir(root, "/dev")?;
    for name in DEVICES {
        let node = rustix::fs::openat(
            &dev,
            name,
            OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_raw_mode(0o666),
        )
        .map_err(|e| io("creating", format!("/dev/{name}"))(errno(e)))?;
        let host = PathBuf::from(format!("/dev/{name}"));
        mount(
            Some(&host),
            &fd_path(&node),
            None,
            MsFlags::MS_BIND,
            None,
            &format!("/dev/{name}"),
        )?;
    }
    let mkdir = |name: &str, mode: u32| {
        rustix::fs::mkdirat(&dev, name, Mode::from_raw_mode(mode))
            .map_err(|e| io("creating", format!("/dev/{name}"))(errno(e)))
    };
    mkdir("pts", 0o755)?;
    let pts = open_in(&dev, "pts", true)?;
    let mut pts_opts = "newinstance,ptmxmode=0666,mode=0620".to_string();
    if gid_is_mapped(TTY_GID) {
        pts_opts.push_str(&format!(",gid={TTY_GID}"));
    }
    mount(
        Some(Path::new("devpts")),
        &fd_path(&pts),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(&pts_opts),
        "/dev/pts",
    )?;
    mkdir("shm", 0o1777)?;
    let shm = open_in(&dev, "shm", true)?;
    let shm_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some(Path::new("shm")),
        &fd_path(&shm),
        Some("tmpfs"),
        shm_flags,
        Some(&format!("mode=1777,{DEV_TMPFS}")),
        "/dev/shm",
    )?;
    for (target, name) in [
        ("pts/ptmx", "ptmx"),
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ] {
        rustix::fs::symlinkat(target, &dev, name)
            .map_err(|e| io("creating", format!("/dev/{name}"))(errno(e)))?;
    }
    Ok(())
}

fn gid_is_mapped(gid: u32) -> bool {
    let map = std::fs::read_to_string("/proc/self/gid_map").unwrap_or_default();
    map.lines().any(|l| {
        let f: Vec<u64> = l
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        f.len() == 3 && f[0] <= u64::from(gid) && u64::from(gid) < f[0] + f[2]
    })
}

fn kind(is_dir: bool) -> &'static str {
    if is_dir {
        "directory"
    } else {
        "file"
    }
}

fn bind_mount(root: &OwnedFd, bind: &Bind) -> Result<(), RootfsError> {
    // Symlinks inside the image may be followed, but only within it.
    let target = open_in(root, &bind.target, false)?;
    let source_dir = std::fs::metadata(&bind.source)
        .map_err(io("reading", bind.source.display().to_string()))?
        .is_dir();
    let stat = rustix::fs::fstat(&target).map_err(|e| io("stat", bind.target.clone())(errno(e)))?;
    let target_dir =
        rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::Directory;
    if source_dir != target_dir {
        return Err(RootfsError::BindType {
            target: bind.target.clone(),
            host: bind.source.clone(),
            expected: kind(source_dir),
            found: kind(target_dir),
        });
    }
    mount(
        Some(&bind.source),
        &fd_path(&target),
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
        &bind.target,
    )?;
    if bind.readonly {
        let mounted = open_in(root, &bind.target, false)?;
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        mount(None, &fd_path(&mounted), None, flags, None, &bind.target)?;
    }
    Ok(())
}
