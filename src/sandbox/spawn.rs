//! strata's side of running a container process: the mount points the
//! image lacks, the `container-init` child, and the wait.
//!
//! Mount points that had to be created (an image without /proc, or a `-v`
//! target that does not exist) are removed again afterwards, so they never
//! show up in the container's changes, as Docker's init layer hides them.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::sys::signal::{self, SigHandler, Signal};
use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::init::{EXIT_SETUP, SPEC_FD_ENV};
use super::spec::{Confinement, InitMessage, Mount, ProcessSpec};

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("preparing mount point {path} in the container: {source}")]
    MountPoint {
        path: String,
        source: std::io::Error,
    },
    #[error("starting the container process: {0}")]
    Start(std::io::Error),
    #[error("passing the spec to the container process: {0}")]
    Spec(String),
}

/// What a spawned container process gets as stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Inherit,
    Null,
}

/// Where a container process's stdout and stderr go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Inherit,
    /// `build -q`: the process's output is not shown.
    Null,
    /// stdout too goes to stderr (`build -o -`: stdout carries the tar).
    Stderr,
}

/// Runs the process `spec` describes in its rootfs (already mounted) and
/// returns its exit code, as Docker reports it (128+N for a signal).
pub fn run(spec: &ProcessSpec, input: Input, output: Output) -> Result<i32, SpawnError> {
    let mut created = Vec::new();
    let result = prepare(spec, &mut created).and_then(|spec| start_and_wait(&spec, input, output));
    // Deepest first; a mount point the process filled is left as it is.
    for (path, is_dir) in created.iter().rev() {
        remove_created(&spec.rootfs, path, *is_dir);
    }
    result
}

/// Creates what is missing; returns the spec with the optional mounts that
/// have no place in the image left out.
fn prepare(
    spec: &ProcessSpec,
    created: &mut Vec<(String, bool)>,
) -> Result<ProcessSpec, SpawnError> {
    for dir in ["/proc", "/dev"] {
        refuse_symlink(&spec.rootfs, dir)?;
        ensure(&spec.rootfs, dir, true, created)?;
    }
    let mut out = spec.clone();
    out.mounts.clear();
    for m in &spec.mounts {
        let optional = matches!(m, Mount::Bind(b) if b.optional);
        match ensure(&spec.rootfs, m.target(), m.is_dir(), created) {
            Ok(()) => out.mounts.push(m.clone()),
            Err(_) if optional => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

fn errno(e: rustix::io::Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.raw_os_error())
}

/// /proc and /dev get file systems mounted over them: a symlink there is
/// refused (the mount would land wherever it points).
fn refuse_symlink(rootfs: &Path, path: &str) -> Result<(), SpawnError> {
    let fail = |source: std::io::Error| SpawnError::MountPoint {
        path: path.to_string(),
        source,
    };
    let root = open_root(rootfs).map_err(fail)?;
    let rel = path.trim_start_matches('/');
    match rustix::fs::statat(&root, rel, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st)
            if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink =>
        {
            Err(fail(std::io::Error::other(
                "the image has a symlink there: refusing to mount over it",
            )))
        }
        _ => Ok(()),
    }
}

/// The rootfs as an O_PATH descriptor, the base of every lookup in it.
fn open_root(rootfs: &Path) -> Result<OwnedFd, std::io::Error> {
    rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)
}

/// Opens `path` inside the rootfs without leaving it; `Ok(None)` if missing.
fn open_in(root: &OwnedFd, path: &str) -> Result<Option<OwnedFd>, std::io::Error> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    match rustix::fs::openat2(
        root,
        rel,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(errno(e)),
    }
}

/// Creates the missing components of `path` inside `rootfs`, recording each.
fn ensure(
    rootfs: &Path,
    path: &str,
    is_dir: bool,
    created: &mut Vec<(String, bool)>,
) -> Result<(), SpawnError> {
    let fail = |source: std::io::Error| SpawnError::MountPoint {
        path: path.to_string(),
        source,
    };
    let root = open_root(rootfs).map_err(fail)?;
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let mut prefix = String::new();
    for (i, part) in parts.iter().enumerate() {
        if *part == ".." {
            return Err(fail(std::io::Error::other(
                "'..' is not allowed in a mount target",
            )));
        }
        let parent = prefix.clone();
        prefix.push('/');
        prefix.push_str(part);
        if open_in(&root, &prefix).map_err(fail)?.is_some() {
            continue;
        }
        let parent_fd = open_in(&root, &parent)
            .map_err(fail)?
            .ok_or_else(|| fail(std::io::Error::other("parent vanished")))?;
        // O_PATH fds cannot be used as *at() bases for creation; reopen it.
        let dir = rustix::fs::openat(
            &parent_fd,
            ".",
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| fail(errno(e)))?;
        let last = i + 1 == parts.len();
        if last && !is_dir {
            rustix::fs::openat(
                &dir,
                *part,
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                Mode::from_raw_mode(0o644),
            )
            .map_err(|e| fail(errno(e)))?;
        } else {
            rustix::fs::mkdirat(&dir, *part, Mode::from_raw_mode(0o755))
                .map_err(|e| fail(errno(e)))?;
        }
        created.push((prefix.clone(), !last || is_dir));
    }
    Ok(())
}

fn remove_created(rootfs: &Path, path: &str, is_dir: bool) {
    let Ok(root) = open_root(rootfs) else {
        return;
    };
    let (parent, name) = match path.rsplit_once('/') {
        Some((p, n)) => (p, n),
        None => return,
    };
    let Ok(Some(parent_fd)) = open_in(&root, parent) else {
        return;
    };
    let Ok(dir) = rustix::fs::openat(
        &parent_fd,
        ".",
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    let flags = if is_dir {
        rustix::fs::AtFlags::REMOVEDIR
    } else {
        rustix::fs::AtFlags::empty()
    };
    // rmdir fails on a directory the process filled, which is kept; an
    // empty file we created holds nothing of the process's.
    let _ = rustix::fs::unlinkat(&dir, name, flags);
}

fn start_and_wait(spec: &ProcessSpec, input: Input, output: Output) -> Result<i32, SpawnError> {
    let message = InitMessage {
        spec: spec.clone(),
        confinement: Confinement::current(),
    };
    let json = serde_json::to_vec(&message).map_err(|e| SpawnError::Spec(e.to_string()))?;
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| SpawnError::Start(e.into()))?;
    let read_fd = read.as_raw_fd();
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg("container-init")
        .env(SPEC_FD_ENV, read_fd.to_string())
        .stdin(match input {
            Input::Inherit => Stdio::inherit(),
            Input::Null => Stdio::null(),
        });
    if output == Output::Stderr {
        let err = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map_err(SpawnError::Start)?;
        cmd.stdout(Stdio::from(err));
    }
    if output == Output::Null {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
    }
    // SAFETY: fcntl is async-signal-safe; it lets the read end (and only
    // it) survive the exec.
    unsafe {
        cmd.pre_exec(move || {
            if nix::libc::fcntl(read_fd, nix::libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // ^C and ^\ reach the whole process group: container-init kills the
    // container for them, and strata must outlive it to clean up (a build
    // that catches them already does, and wants to hear of ^C).
    let shielded: &[Signal] = if super::interrupt::caught() {
        &[Signal::SIGQUIT]
    } else {
        &[Signal::SIGINT, Signal::SIGQUIT]
    };
    let previous: Vec<_> = shielded
        .iter()
        // SAFETY: SIG_IGN installs no handler code.
        .map(|&sig| (sig, unsafe { signal::signal(sig, SigHandler::SigIgn) }))
        .collect();
    let outcome = (|| {
        let mut child = cmd.spawn().map_err(SpawnError::Start)?;
        drop(read);
        super::interrupt::running(Some(child.id()));
        // A child that died early closes the pipe; its exit code says why.
        let _ = File::from(write).write_all(&json);
        let status = child.wait().map_err(SpawnError::Start);
        super::interrupt::running(None);
        status
    })();
    for (sig, old) in previous {
        if let Ok(handler) = old {
            // SAFETY: restoring the disposition that was there before.
            let _ = unsafe { signal::signal(sig, handler) };
        }
    }
    let status = outcome?;
    use std::os::unix::process::ExitStatusExt;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        _ => EXIT_SETUP,
    })
}
