//! Pid 1's view of the world: /proc, a minimal /dev, the mounts (binds
//! and tmpfs), then pivot_root into the container's root file system.
//!
//! The image is untrusted: every mount point is opened inside the rootfs
//! with openat2 (RESOLVE_IN_ROOT, and RESOLVE_NO_SYMLINKS where a symlink
//! has no business being) and mounted onto through /proc/self/fd, so a
//! symlink the image placed at /proc, /dev or /etc/resolv.conf can never
//! make strata mount or write outside the rootfs. A bind's source given
//! `within` a directory (a stage's root, a cache mount) is opened the same
//! way inside that directory, and the mount is made from that descriptor,
//! so what is mounted is what was resolved, even if the tree changes.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::spec::{Bind, Mount, ProcessSpec, Tmpfs};

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
    open_resolved(root, path, OFlags::NOFOLLOW, resolve)
}

/// `path` inside `root` with every symlink, the last one too, followed
/// there: the descriptor is never a symlink, so mounting from it can never
/// follow one anew, outside (a stage's `/rootdir -> /` is its own root).
fn open_followed(root: &OwnedFd, path: &str) -> Result<OwnedFd, RootfsError> {
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    open_resolved(root, path, OFlags::empty(), resolve)
}

fn open_resolved(
    root: &OwnedFd,
    path: &str,
    flags: OFlags,
    resolve: ResolveFlags,
) -> Result<OwnedFd, RootfsError> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    rustix::fs::openat2(
        root,
        rel,
        OFlags::PATH | OFlags::CLOEXEC | flags,
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
/// mount namespace. With `bind_proc`, /proc is the container's own, bound
/// with everything mounted under it (the kernel refuses a new proc where
/// the container's has masked paths; a recursive bind keeps them masked).
pub fn enter(spec: &ProcessSpec, bind_proc: bool) -> Result<(), RootfsError> {
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
    if bind_proc {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
        mount(
            Some(Path::new("/proc")),
            &fd_path(&proc_dir),
            None,
            flags,
            None,
            "/proc",
        )?;
    } else {
        let noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(
            Some(Path::new("proc")),
            &fd_path(&proc_dir),
            Some("proc"),
            noexec,
            None,
            "/proc",
        )?;
    }
    setup_dev(&root, spec.extras.shm_size)?;
    for m in &spec.mounts {
        match m {
            Mount::Bind(bind) => bind_mount(&root, bind)?,
            Mount::Tmpfs(tmpfs) => tmpfs_mount(&root, tmpfs)?,
        }
    }

    rustix::process::fchdir(&root).map_err(|e| io("chdir", label.clone())(errno(e)))?;
    rustix::process::pivot_root(".", ".").map_err(|e| io("pivot_root", label.clone())(errno(e)))?;
    // The old root is stacked under the new one at "."; detach it so
    // nothing of the host stays reachable.
    nix::mount::umount2(".", MntFlags::MNT_DETACH)
        .map_err(|e| io("detaching the host root", "/")(nix_errno(e)))?;
    std::env::set_current_dir("/").map_err(io("chdir", "/"))
}

fn setup_dev(root: &OwnedFd, shm_size: Option<u64>) -> Result<(), RootfsError> {
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
        Some(&format!(
            "mode=1777,size={}",
            shm_size.unwrap_or(super::extras::DEFAULT_SHM_SIZE)
        )),
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
    let map = fs_err::read_to_string("/proc/self/gid_map").unwrap_or_default();
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

/// The source of `bind`, as an O_PATH descriptor: a path strata chose on
/// the host, or one resolved inside `bind.within` (never leaving it).
pub fn open_source(bind: &Bind) -> Result<OwnedFd, RootfsError> {
    let label = bind.source.display().to_string();
    let Some(within) = &bind.within else {
        return rustix::fs::open(&bind.source, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| io("opening", label)(errno(e)));
    };
    let root = rustix::fs::open(
        within,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io("opening", within.display().to_string())(errno(e)))?;
    open_followed(&root, &bind.source.to_string_lossy())
}

fn is_dir(fd: &OwnedFd, label: &str) -> Result<bool, RootfsError> {
    let stat = rustix::fs::fstat(fd).map_err(|e| io("stat", label)(errno(e)))?;
    Ok(rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::Directory)
}

impl Mount {
    /// Whether the mount point must be a directory (else a file). A bind
    /// whose source cannot be opened counts as a file: the mount fails.
    pub fn is_dir(&self) -> bool {
        match self {
            Mount::Bind(bind) => open_source(bind)
                .and_then(|fd| is_dir(&fd, ""))
                .unwrap_or(false),
            Mount::Tmpfs(_) => true,
        }
    }
}

fn bind_mount(root: &OwnedFd, bind: &Bind) -> Result<(), RootfsError> {
    // Symlinks inside the image may be followed, but only within it.
    let target = open_in(root, &bind.target, false)?;
    let source = open_source(bind)?;
    let source_dir = is_dir(&source, &bind.source.display().to_string())?;
    let target_dir = is_dir(&target, &bind.target)?;
    if source_dir != target_dir {
        return Err(RootfsError::BindType {
            target: bind.target.clone(),
            host: bind.source.clone(),
            expected: kind(source_dir),
            found: kind(target_dir),
        });
    }
    mount(
        Some(&fd_path(&source)),
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

/// Mode of a tmpfs mount's root: anyone may write, as /tmp (BuildKit's).
const TMPFS_MODE: &str = "mode=1777";

fn tmpfs_mount(root: &OwnedFd, tmpfs: &Tmpfs) -> Result<(), RootfsError> {
    let target = open_in(root, &tmpfs.target, false)?;
    if !is_dir(&target, &tmpfs.target)? {
        return Err(RootfsError::NotADirectory(tmpfs.target.clone()));
    }
    let data = match tmpfs.size {
        Some(size) => format!("{TMPFS_MODE},size={size}"),
        None => TMPFS_MODE.to_string(),
    };
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    if tmpfs.readonly {
        flags |= MsFlags::MS_RDONLY;
    }
    mount(
        Some(Path::new("tmpfs")),
        &fd_path(&target),
        Some("tmpfs"),
        flags,
        Some(&data),
        &tmpfs.target,
    )
}
