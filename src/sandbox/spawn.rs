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
#[derive(Clone)]
pub enum Output {
    Inherit,
    /// `build -q`: the process's output is not shown.
    Null,
    /// stdout too goes to stderr (`build -o -`: stdout carries the tar).
    Stderr,
    /// Each line of stdout and stderr (one pipe, so they stay in the order
    /// the process wrote them) to a function: a build whose steps run at
    /// once, or whose printer draws its own view, shows them as it likes.
    Lines(LineSink),
}

/// Takes a process's output, a line at a time (without its newline).
pub type LineSink = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Output::Inherit => "Inherit",
            Output::Null => "Null",
            Output::Stderr => "Stderr",
            Output::Lines(_) => "Lines",
        })
    }
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

/// Sends each line read from `fd` to `sink`, until the last writer closes.
fn relay(fd: OwnedFd, sink: &(dyn Fn(&str) + Send + Sync)) {
    use std::io::BufRead;
    let mut input = std::io::BufReader::new(File::from(fd));
    let mut line = Vec::new();
    // A read error ends the output as its end would.
    while input.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
        let text = String::from_utf8_lossy(&line);
        sink(text.trim_end_matches(['\n', '\r']));
        line.clear();
    }
}

/// ^C and ^\ reach the whole process group: container-init kills the
/// container for them, and strata must outlive it to clean up (a build
/// that catches them already does, and wants to hear of ^C). Containers
/// of stages building at once share one shield: the first raises it, the
/// last lowers it, so none restores a disposition another still needs.
struct Shield;

/// How many shields are up, and the dispositions before the first.
static SHIELDS: std::sync::Mutex<(usize, Vec<(Signal, SigHandler)>)> =
    std::sync::Mutex::new((0, Vec::new()));

impl Shield {
    fn raise() -> Shield {
        let mut shields = SHIELDS.lock().unwrap_or_else(|e| e.into_inner());
        if shields.0 == 0 {
            let shielded: &[Signal] = if super::interrupt::caught() {
                &[Signal::SIGQUIT]
            } else {
                &[Signal::SIGINT, Signal::SIGQUIT]
            };
            shields.1 = shielded
                .iter()
                // SAFETY: SIG_IGN installs no handler code.
                .filter_map(|&sig| {
                    Some((
                        sig,
                        unsafe { signal::signal(sig, SigHandler::SigIgn) }.ok()?,
                    ))
                })
                .collect();
        }
        shields.0 += 1;
        Shield
    }
}

impl Drop for Shield {
    fn drop(&mut self) {
        let mut shields = SHIELDS.lock().unwrap_or_else(|e| e.into_inner());
        shields.0 -= 1;
        if shields.0 == 0 {
            for (sig, handler) in shields.1.drain(..) {
                // SAFETY: restoring the disposition that was there before.
                let _ = unsafe { signal::signal(sig, handler) };
            }
        }
    }
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
    let mut reader = None;
    match output {
        Output::Inherit => {}
        Output::Stderr => {
            let err = std::io::stderr()
                .as_fd()
                .try_clone_to_owned()
                .map_err(SpawnError::Start)?;
            cmd.stdout(Stdio::from(err));
        }
        Output::Null => {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        Output::Lines(sink) => {
            let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| SpawnError::Start(e.into()))?;
            let write2 = write.try_clone().map_err(SpawnError::Start)?;
            cmd.stdout(Stdio::from(write)).stderr(Stdio::from(write2));
            reader = Some((read, sink));
        }
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
    let shield = Shield::raise();
    let outcome = (|| {
        let mut child = cmd.spawn().map_err(SpawnError::Start)?;
        // Our copies of the output pipe's write end go with the command,
        // so the reader sees the end of the output when the process ends.
        drop(cmd);
        drop(read);
        let lines = reader.map(|(fd, sink)| std::thread::spawn(move || relay(fd, &*sink)));
        let _running = super::interrupt::running(child.id());
        // A child that died early closes the pipe; its exit code says why.
        let _ = File::from(write).write_all(&json);
        let status = child.wait().map_err(SpawnError::Start);
        if let Some(lines) = lines {
            // A relay that panicked lost some output lines, nothing else.
            let _ = lines.join();
        }
        status
    })();
    drop(shield);
    let status = outcome?;
    use std::os::unix::process::ExitStatusExt;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        _ => EXIT_SETUP,
    })
}
