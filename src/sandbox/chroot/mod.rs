//! Rung 4 of the isolation ladder: RUN where no namespace and no mount can
//! be made (root in a default Docker container or Kubernetes pod: no
//! CAP_SYS_ADMIN, and a seccomp profile that refuses unshare and mount).
//!
//! The step's root file system is a vfs copy (a plain directory), and its
//! process is chrooted into it (CAP_SYS_CHROOT is in Docker's default set):
//! the kernel confines every path to the copy. What a chroot cannot give
//! without mounts, the container's /proc, /dev and /sys and strata's copies
//! of /etc/hosts and /etc/resolv.conf, is reached through descriptors the
//! process holds (opened before the chroot, at fixed high numbers), and a
//! tracer (container-init, through ptrace) turns each absolute path under
//! those targets into a path relative to its descriptor. A seccomp filter
//! stops only the ~30 path system calls for the tracer, and keeps the
//! process from closing those descriptors.
//!
//! docs/isolation.md says what this isolates and what it costs, and why
//! neither kaniko's design (run in the container's own root) nor the
//! `proot` program (Debian's is built without its seccomp accelerator, so
//! every system call stops) was taken.

pub mod redirect;
#[cfg(target_arch = "x86_64")]
mod seccomp;
#[cfg(target_arch = "x86_64")]
mod syscalls;
#[cfg(target_arch = "x86_64")]
mod tracer;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::ladder::Probe;
use super::spec::Mount;
use redirect::{Entry, Redirects};
#[cfg(target_arch = "x86_64")]
pub use tracer::Tracer;

/// The highest descriptor a redirect gets (below the 1024 a default soft
/// RLIMIT_NOFILE allows, and far above what shells use for redirections).
const FD_TOP: u64 = 1023;
/// Container paths that are the container's own, through its root.
const PASSED_THROUGH: [&str; 3] = ["/proc", "/dev", "/sys"];
/// /dev entries that are symlinks into /proc/self: made relative, so they
/// resolve outside the chroot.
const DEV_LINKS: [(&str, &str); 4] = [
    ("fd", "proc/self/fd"),
    ("stdin", "proc/self/fd/0"),
    ("stdout", "proc/self/fd/1"),
    ("stderr", "proc/self/fd/2"),
];

#[derive(Debug, thiserror::Error)]
pub enum ChrootError {
    #[error("{what}: {source}")]
    Sys {
        what: &'static str,
        #[source]
        source: Errno,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "--network none needs a network namespace, which isolation chroot (rung 4) cannot make"
    )]
    Network,
    #[error("RUN --mount at {0} needs a mount, which isolation chroot (rung 4) cannot make yet")]
    Mount(String),
    #[error("isolation chroot (rung 4) is implemented for x86_64 only")]
    Arch,
}

fn sys(what: &'static str) -> impl FnOnce(Errno) -> ChrootError {
    move |source| ChrootError::Sys { what, source }
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ChrootError + 'a {
    move |source| ChrootError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// What container-init opens before it forks the process: one descriptor
/// per redirect, and a scratch dir of relative symlinks.
pub struct Prepared {
    fds: Vec<OwnedFd>,
    entries: Vec<Entry>,
    low: u32,
    _helper: tempfile::TempDir,
}

/// Opens what the redirects for `mounts` need. In container-init.
pub fn prepare(mounts: &[Mount]) -> Result<Prepared, ChrootError> {
    if cfg!(not(target_arch = "x86_64")) {
        return Err(ChrootError::Arch);
    }
    let helper = tempfile::Builder::new()
        .prefix("strata-chroot-")
        .tempdir()
        .map_err(io("creating", Path::new("a scratch dir")))?;
    let mut targets: Vec<(String, PathBuf, bool)> = Vec::new();
    for target in PASSED_THROUGH {
        targets.push((target.into(), PathBuf::from("/"), false));
    }
    let dev = linked_dir(
        helper.path(),
        "dev",
        DEV_LINKS.iter().map(|(n, t)| (*n, PathBuf::from(t))),
    )?;
    for (name, _) in DEV_LINKS {
        targets.push((format!("/dev/{name}"), dev.clone(), false));
    }
    for (i, mount) in mounts.iter().enumerate() {
        let bind = match mount {
            Mount::Bind(bind) if bind.within.is_none() => bind,
            other => return Err(ChrootError::Mount(other.target().to_string())),
        };
        let target = normalise(&bind.target);
        let base = target.rsplit('/').next().unwrap_or_default().to_string();
        let dir = match (bind.source.file_name(), bind.source.parent()) {
            (Some(name), Some(parent)) if name.to_str() == Some(base.as_str()) => parent.into(),
            // Another name: a symlink by the target's name leads there.
            _ => {
                let source = bind
                    .source
                    .to_string_lossy()
                    .trim_start_matches('/')
                    .to_string();
                linked_dir(
                    helper.path(),
                    &format!("b{i}"),
                    [(base.as_str(), PathBuf::from(source))],
                )?
            }
        };
        targets.push((target, dir, bind.readonly));
    }
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_err(sys("getrlimit"))?
        .0;
    let top = FD_TOP.min(soft.saturating_sub(1));
    let low = top + 1 - targets.len() as u64;
    let mut fds = Vec::new();
    let mut entries = Vec::new();
    for (i, (target, dir, readonly)) in targets.into_iter().enumerate() {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::open(&dir, flags, Mode::empty()).map_err(|e| ChrootError::Io {
            what: "opening",
            path: dir.clone(),
            source: e.into(),
        })?;
        let keep = if dir == Path::new("/") {
            target.split('/').filter(|c| !c.is_empty()).count()
        } else {
            1
        };
        entries.push(Entry {
            target,
            fd: (low + i as u64) as i32,
            keep,
            readonly,
        });
        fds.push(fd);
    }
    Ok(Prepared {
        fds,
        entries,
        low: low as u32,
        _helper: helper,
    })
}

/// `/a/./b//c/` as `/a/b/c`.
fn normalise(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// `<helper>/<name>/` holding symlinks `link -> ../../…/<target>`, relative,
/// so that from a descriptor outside the chroot they climb to the
/// container's `/` and not to the chroot's.
fn linked_dir<'a>(
    helper: &Path,
    name: &str,
    links: impl IntoIterator<Item = (&'a str, PathBuf)>,
) -> Result<PathBuf, ChrootError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = helper.join(name);
    fs_err::create_dir(&dir).map_err(io("creating", &dir))?;
    let dir = fs_err::canonicalize(&dir).map_err(io("resolving", &dir))?;
    let depth = dir
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count();
    let up = "../".repeat(depth);
    for (link, target) in links {
        let at = dir.join(link);
        fs_err::os::unix::fs::symlink(format!("{up}{}", target.display()), &at)
            .map_err(io("creating", &at))?;
    }
    // A RUN as another USER must be able to go through them.
    for d in [helper, dir.as_path()] {
        fs_err::set_permissions(d, std::fs::Permissions::from_mode(0o755))
            .map_err(io("chmod", d))?;
    }
    Ok(dir)
}

impl Prepared {
    /// The descriptors the process keeps: `(low, high)`.
    pub fn kept(&self) -> (u32, u32) {
        (self.low, self.low + self.fds.len() as u32 - 1)
    }

    /// In the forked process: the descriptors to their numbers, then into
    /// the chroot.
    pub fn enter(&self, rootfs: &Path) -> Result<(), ChrootError> {
        for (fd, entry) in self.fds.iter().zip(&self.entries) {
            // SAFETY: dup2 onto a number nothing else in this fresh process
            // uses; the new descriptor has no close-on-exec flag, so the
            // command keeps it.
            if unsafe { libc::dup2(fd.as_raw_fd(), entry.fd) } < 0 {
                return Err(sys("placing a redirect descriptor")(Errno::last()));
            }
        }
        nix::unistd::chroot(rootfs).map_err(sys("chroot"))?;
        nix::unistd::chdir("/").map_err(sys("chdir /"))
    }

    /// The tracer for the forked process `main`, which has stopped itself.
    #[cfg(target_arch = "x86_64")]
    pub fn tracer(&self, main: nix::unistd::Pid) -> Result<Tracer, ChrootError> {
        let (low, high) = self.kept();
        Tracer::attach(
            main,
            Redirects::new(self.entries.clone()),
            seccomp::Protected { low, high },
        )
        .map_err(sys("tracing the RUN process"))
    }

    /// In the forked process, last before exec: the filter that stops path
    /// calls for the tracer. no_new_privs must be set.
    #[cfg(target_arch = "x86_64")]
    pub fn filter(&self) -> Result<(), ChrootError> {
        let (low, high) = self.kept();
        seccomp::install(seccomp::Protected { low, high })
            .map_err(sys("installing the seccomp filter"))
    }
}

/// In the forked process: become traced and wait for the tracer.
pub fn trace_me() -> Result<(), ChrootError> {
    nix::sys::ptrace::traceme().map_err(sys("PTRACE_TRACEME"))?;
    nix::sys::signal::raise(nix::sys::signal::Signal::SIGSTOP).map_err(sys("raise SIGSTOP"))
}

/// Whether rung 4 works here: a forked child is traced, stops at a path
/// call under the filter, and can chroot. Must run single-threaded.
#[cfg(target_arch = "x86_64")]
pub fn probe() -> Probe {
    use nix::unistd::ForkResult;
    // SAFETY: callers probe before starting any thread.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            let code = probe_child();
            // SAFETY: ends the forked child without the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => probe_parent(child),
        Err(e) => Probe::Failed(format!("forking: {}", e.desc())),
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub fn probe() -> Probe {
    Probe::Failed(ChrootError::Arch.to_string())
}

/// Exit codes of the probe child, one per step that can be refused.
#[cfg(target_arch = "x86_64")]
const PROBE_STEPS: [(i32, &str); 4] = [
    (10, "tracing a process (ptrace) was refused"),
    (11, "installing a seccomp filter was refused"),
    (12, "chroot was refused (no CAP_SYS_CHROOT)"),
    (13, "no_new_privs was refused"),
];

#[cfg(target_arch = "x86_64")]
fn probe_child() -> i32 {
    if nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).is_err()
        || trace_me().is_err()
    {
        return PROBE_STEPS[0].0;
    }
    if nix::sys::prctl::set_no_new_privs().is_err() {
        return PROBE_STEPS[3].0;
    }
    let top = FD_TOP as u32;
    if seccomp::install(seccomp::Protected {
        low: top,
        high: top,
    })
    .is_err()
    {
        return PROBE_STEPS[1].0;
    }
    if nix::unistd::chroot("/").is_err() {
        return PROBE_STEPS[2].0;
    }
    // A path call: the tracer must see it.
    match fs_err::metadata("/") {
        Ok(_) => 0,
        Err(_) => 14,
    }
}

#[cfg(target_arch = "x86_64")]
fn probe_parent(child: nix::unistd::Pid) -> Probe {
    use nix::sys::ptrace::{self, Event, Options};
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let wait = || loop {
        match waitpid(child, Some(WaitPidFlag::__WALL)) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    };
    let failed = |status: Result<WaitStatus, Errno>| {
        let code = match status {
            Ok(WaitStatus::Exited(_, code)) => code,
            _ => 0,
        };
        let why = PROBE_STEPS.iter().find(|(c, _)| *c == code).map_or_else(
            || format!("the trace probe ended as {status:?}"),
            |(_, w)| w.to_string(),
        );
        Probe::Failed(why)
    };
    match wait() {
        Ok(WaitStatus::Stopped(_, _)) => {}
        other => return failed(other),
    }
    let options = Options::PTRACE_O_TRACESECCOMP | Options::PTRACE_O_EXITKILL;
    if ptrace::setoptions(child, options)
        .and_then(|()| ptrace::cont(child, None))
        .is_err()
    {
        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
        return failed(wait());
    }
    let mut stopped = false;
    loop {
        match wait() {
            Ok(WaitStatus::PtraceEvent(_, _, e)) if e == Event::PTRACE_EVENT_SECCOMP as i32 => {
                stopped = true;
                let _ = ptrace::cont(child, None);
            }
            Ok(WaitStatus::Stopped(_, sig)) => {
                let _ = ptrace::cont(child, Some(sig));
            }
            Ok(WaitStatus::Exited(_, 0)) if stopped => return Probe::Ok,
            Ok(WaitStatus::Exited(_, 0)) => {
                return Probe::Failed("the seccomp filter did not stop for the tracer".into())
            }
            other => return failed(other),
        }
    }
}
