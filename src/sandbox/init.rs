//! `container-init`: the process strata re-executes to become a container.
//!
//! Re-executing gives a single-threaded process, which unshare and fork
//! need. It unshares mount, pid, ipc, uts (and for `--network none` net)
//! namespaces and forks the container's pid 1, then only waits: it passes
//! the exit code on, and on SIGINT/SIGTERM/SIGHUP kills pid 1, which takes
//! the whole pid namespace with it. Both die with their parent
//! (PDEATHSIG), so no process outlives strata.
//!
//! Pid 1 sets up the root file system (`rootfs`), drops to Docker's
//! capability set, becomes USER, enters WORKDIR and execs the command.
//!
//! On rung 4 (`chroot`) nothing can be unshared: the process is forked
//! as it is, chrooted instead of pivoted, and traced (`sandbox::chroot`);
//! container-init follows it and everything it starts, and kills them all
//! when it ends.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::SignalFd;
use nix::unistd::{self, ForkResult, Gid, Pid, Uid};

use super::children::{Children, Pid1, Subtree};
use super::chroot::{self, ChrootError};
use super::ladder::Isolation;
use super::spec::{InitMessage, Network, ProcessSpec, DEFAULT_PATH};
use super::{caps, net, rootfs, tty, user};

/// The environment variable naming the fd the spec is read from.
pub const SPEC_FD_ENV: &str = "_STRATA_INIT_SPEC_FD";

/// Docker's exit codes: strata's own failure, a command that cannot be
/// executed, a command that does not exist.
pub const EXIT_SETUP: i32 = 125;
pub const EXIT_CANNOT_EXEC: i32 = 126;
pub const EXIT_NOT_FOUND: i32 = 127;

const FORWARDED: [Signal; 4] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("reading the container spec: {0}")]
    Spec(String),
    #[error("{what}: {errno}")]
    Sys { what: &'static str, errno: Errno },
    #[error(transparent)]
    Rootfs(#[from] rootfs::RootfsError),
    #[error(transparent)]
    User(#[from] user::UserError),
    #[error(transparent)]
    Caps(#[from] caps::CapsError),
    #[error(transparent)]
    Net(#[from] net::NetError),
    #[error("exec: \"{0}\": executable file not found in $PATH")]
    NotFound(String),
    #[error("working directory {0}: {1}")]
    Workdir(String, std::io::Error),
    #[error(transparent)]
    Chroot(#[from] ChrootError),
    #[error("--ulimit {0}: {1} (rootless, a limit cannot go above the caller's hard limit)")]
    Ulimit(String, Errno),
}

fn sys(what: &'static str) -> impl FnOnce(Errno) -> InitError {
    move |errno| InitError::Sys { what, errno }
}

/// Runs as the `container-init` process; returns its exit code.
pub fn main() -> i32 {
    match outer() {
        Ok(code) => code,
        Err(err) => {
            crate::progress::emit(crate::progress::Event::Error {
                message: format!("container setup: {err}"),
            });
            EXIT_SETUP
        }
    }
}

fn read_spec() -> Result<InitMessage, InitError> {
    let fd: RawFd = std::env::var(SPEC_FD_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| InitError::Spec(format!("{SPEC_FD_ENV} is not set")))?;
    // SAFETY: strata passed this fd for us alone, open and unused elsewhere.
    let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| InitError::Spec(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| InitError::Spec(e.to_string()))
}

fn outer() -> Result<i32, InitError> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(sys("prctl PDEATHSIG"))?;
    let InitMessage { spec, confinement } = read_spec()?;
    // Pid 1 sends the master end of its pty back over this.
    let pty_socket = if spec.tty {
        let (ours, theirs) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Stream,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )
        .map_err(sys("socketpair"))?;
        Some((ours, theirs))
    } else {
        None
    };
    let mut mask = SigSet::empty();
    for sig in FORWARDED
        .into_iter()
        .chain([Signal::SIGCHLD, Signal::SIGWINCH])
    {
        mask.add(sig);
    }
    mask.thread_block().map_err(sys("blocking signals"))?;
    let signals = SignalFd::new(&mask).map_err(sys("signalfd"))?;
    let (ours, theirs) = match pty_socket {
        Some((ours, theirs)) => (Some(ours), Some(theirs)),
        None => (None, None),
    };
    let mut children: Box<dyn Children> = if confinement.isolation == Some(Isolation::Chroot) {
        start_chrooted(&spec, theirs)?
    } else {
        start_namespaced(&spec, theirs, confinement.bind_proc)?
    };
    let master = match ours {
        Some(ours) => tty::receive_master(&ours).map_err(sys("receiving the terminal"))?,
        None => None,
    };
    wait_for(children.as_mut(), &signals, master)
}

/// How pid 1 gets its root file system.
#[derive(Clone, Copy)]
enum Root<'a> {
    /// pivot_root in its own mount namespace; /proc mounted anew, or bound
    /// from the container where that is refused.
    Namespaced { bind_proc: bool },
    /// chroot, with the redirects prepared (rung 4).
    Chroot(&'a chroot::Prepared),
}

/// The traced processes of a chrooted RUN, and what they were prepared with.
#[cfg(target_arch = "x86_64")]
struct Traced {
    tracer: chroot::Tracer,
    _prepared: chroot::Prepared,
}

#[cfg(target_arch = "x86_64")]
impl Children for Traced {
    fn poll(&mut self) -> Result<Option<i32>, Errno> {
        self.tracer.poll()
    }

    fn kill(&mut self, by: Signal) {
        self.tracer.kill(by);
    }
}

/// Forks `pid1` into `child`'s place; the parent gets its pid.
fn fork_pid1(spec: &ProcessSpec, pty: Option<OwnedFd>, root: Root) -> Result<Pid, InitError> {
    // SAFETY: this process was just exec'd and never started a thread.
    match unsafe { unistd::fork() }.map_err(sys("fork"))? {
        ForkResult::Child => {
            let code = match pid1(spec, pty, root) {
                Ok(never) => match never {},
                Err((code, err)) => {
                    crate::progress::emit(crate::progress::Event::Error {
                        message: err.to_string(),
                    });
                    code
                }
            };
            // SAFETY: ending the forked child without the parent's atexit handlers.
            unsafe { nix::libc::_exit(code) }
        }
        ForkResult::Parent { child } => Ok(child),
    }
}

fn start_namespaced(
    spec: &ProcessSpec,
    pty: Option<OwnedFd>,
    bind_proc: bool,
) -> Result<Box<dyn Children>, InitError> {
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS;
    if spec.network == Network::None {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    if bind_proc {
        // The container's /proc shows its own pid namespace: RUN stays in
        // it, with container-init as the subreaper of all it starts.
        flags.remove(CloneFlags::CLONE_NEWPID);
        nix::sys::prctl::set_child_subreaper(true).map_err(sys("PR_SET_CHILD_SUBREAPER"))?;
    }
    nix::sched::unshare(flags).map_err(sys("unshare"))?;
    if spec.network == Network::None {
        net::loopback_up()?;
    }
    let pid = fork_pid1(spec, pty, Root::Namespaced { bind_proc })?;
    if bind_proc {
        return Ok(Box::new(Subtree {
            main: pid,
            code: None,
            killed_by: None,
        }));
    }
    Ok(Box::new(Pid1 {
        pid,
        killed_by: None,
    }))
}

#[cfg(target_arch = "x86_64")]
fn start_chrooted(
    spec: &ProcessSpec,
    pty: Option<OwnedFd>,
) -> Result<Box<dyn Children>, InitError> {
    if spec.network == Network::None {
        return Err(ChrootError::Network.into());
    }
    let prepared = chroot::prepare(&spec.mounts)?;
    // Whatever a RUN leaves behind when its parent exits comes back to us,
    // to be followed and, at the end, killed.
    nix::sys::prctl::set_child_subreaper(true).map_err(sys("PR_SET_CHILD_SUBREAPER"))?;
    let pid = fork_pid1(spec, pty, Root::Chroot(&prepared))?;
    let tracer = prepared.tracer(pid)?;
    Ok(Box::new(Traced {
        tracer,
        _prepared: prepared,
    }))
}

#[cfg(not(target_arch = "x86_64"))]
fn start_chrooted(_: &ProcessSpec, _: Option<OwnedFd>) -> Result<Box<dyn Children>, InitError> {
    Err(ChrootError::Arch.into())
}

/// Waits for pid 1, relaying its terminal if it has one; a forwarded
/// signal kills it (and so its whole pid namespace).
fn wait_for(
    children: &mut dyn Children,
    signals: &SignalFd,
    master: Option<OwnedFd>,
) -> Result<i32, InitError> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let _raw = master.as_ref().map(|_| tty::RawMode::enter());
    let stdin = std::io::stdin();
    let mut stdin_open = master.is_some();
    let mut master_open = master.is_some();
    let mut to_pty = match &master {
        Some(m) => Some(File::from(
            m.try_clone().map_err(|e| InitError::Spec(e.to_string()))?,
        )),
        None => None,
    };
    let mut stdout = std::io::stdout();
    loop {
        let polled = children.poll().map_err(|errno| InitError::Sys {
            what: "waiting for the container's processes",
            errno,
        })?;
        if let Some(code) = polled {
            if let Some(m) = master.as_ref().filter(|_| master_open) {
                drain(m, &mut stdout);
            }
            return Ok(code);
        }
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        if let (Some(m), true) = (&master, master_open) {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
        }
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(errno) => {
                return Err(InitError::Sys {
                    what: "poll",
                    errno,
                })
            }
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        let (sig_ready, master_ready, stdin_ready) = (
            ready(0),
            master_open && ready(1),
            stdin_open && ready(if master_open { 2 } else { 1 }),
        );
        drop(fds);
        if master_ready {
            if let Some(m) = &master {
                master_open = tty::pump(m.as_fd(), &mut stdout);
            }
        }
        if stdin_ready {
            if let Some(w) = to_pty.as_mut() {
                stdin_open = tty::pump(stdin.as_fd(), w);
            }
        }
        if sig_ready {
            on_signal(children, signals, master.as_ref())?;
        }
    }
}

/// What the program wrote on its terminal just before exiting is still
/// queued: pass it on.
fn drain(master: &OwnedFd, stdout: &mut std::io::Stdout) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    loop {
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::ZERO).unwrap_or(0) == 0 || !tty::pump(master.as_fd(), stdout)
        {
            return;
        }
    }
}

/// Handles one pending signal: a window change goes to the terminal, a
/// forwarded signal kills pid 1 (and so its whole pid namespace).
fn on_signal(
    children: &mut dyn Children,
    signals: &SignalFd,
    master: Option<&OwnedFd>,
) -> Result<(), InitError> {
    let info = match signals.read_signal() {
        Ok(Some(info)) => info,
        Ok(None) | Err(Errno::EINTR) => return Ok(()),
        Err(errno) => {
            return Err(InitError::Sys {
                what: "reading signals",
                errno,
            })
        }
    };
    match Signal::try_from(info.ssi_signo as i32) {
        Ok(Signal::SIGWINCH) => {
            if let Some(m) = master {
                tty::copy_window_size(m);
            }
        }
        Ok(sig) if FORWARDED.contains(&sig) => children.kill(sig),
        _ => {}
    }
    Ok(())
}

/// Pid 1: becomes the container and execs its command; returns only on
/// failure, with the exit code to use.
fn pid1(
    spec: &ProcessSpec,
    pty_socket: Option<OwnedFd>,
    root: Root,
) -> Result<std::convert::Infallible, (i32, InitError)> {
    let setup = |e: InitError| (EXIT_SETUP, e);
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(sys("prctl PDEATHSIG"))
        .map_err(setup)?;
    reset_signals().map_err(setup)?;
    // The pty comes from the container's devpts: after pivot_root, but
    // before a chroot (which has no /dev of its own).
    let mut pty_socket = pty_socket;
    let chroot = match root {
        Root::Namespaced { bind_proc } => {
            rootfs::enter(spec, bind_proc).map_err(|e| setup(e.into()))?;
            terminal(pty_socket.take()).map_err(setup)?;
            unistd::sethostname(&spec.hostname)
                .map_err(sys("sethostname"))
                .map_err(setup)?;
            None
        }
        Root::Chroot(prepared) => {
            terminal(pty_socket.take()).map_err(setup)?;
            prepared.enter(&spec.rootfs).map_err(|e| setup(e.into()))?;
            Some(prepared)
        }
    };
    let passwd = user::read_account_file("/etc/passwd".as_ref());
    let groups = user::read_account_file("/etc/group".as_ref());
    let who = user::resolve(&spec.user, &passwd, &groups).map_err(|e| setup(e.into()))?;
    let owner = spec.workdir_for_user.then_some((who.uid, who.gid));
    enter_workdir(&spec.workdir, owner, chroot.map(|p| p.kept())).map_err(setup)?;
    let env = container_env(spec, &who.home);
    let program = find_program(&spec.args, &env).map_err(|e| (EXIT_NOT_FOUND, e))?;
    if chroot.is_some() {
        chroot::trace_me().map_err(|e| setup(e.into()))?;
    }
    nix::sys::prctl::set_no_new_privs()
        .map_err(sys("no_new_privs"))
        .map_err(setup)?;
    caps::restrict_to_default().map_err(|e| setup(e.into()))?;
    super::extras::apply_ulimits(&spec.extras.ulimits)
        .map_err(|(u, errno)| setup(InitError::Ulimit(u, errno)))?;
    become_user(&who).map_err(setup)?;
    if let Some(prepared) = chroot {
        filter(prepared).map_err(setup)?;
    }
    exec(&program, &spec.args, &env)
}

#[cfg(target_arch = "x86_64")]
fn filter(prepared: &chroot::Prepared) -> Result<(), InitError> {
    Ok(prepared.filter()?)
}

#[cfg(not(target_arch = "x86_64"))]
fn filter(_: &chroot::Prepared) -> Result<(), InitError> {
    Err(ChrootError::Arch.into())
}

/// `run -t`: a new pty, its master end sent to container-init, the slave
/// end made this process's stdio.
fn terminal(socket: Option<OwnedFd>) -> Result<(), InitError> {
    let Some(socket) = socket else {
        return Ok(());
    };
    let pty = tty::open().map_err(sys("opening a pseudo-terminal"))?;
    tty::send_master(&socket, &pty.master).map_err(sys("passing the terminal on"))?;
    drop(pty.master);
    tty::attach(&pty.slave).map_err(sys("attaching the terminal"))
}

fn exec(
    program: &CString,
    args: &[String],
    env: &[String],
) -> Result<std::convert::Infallible, (i32, InitError)> {
    let argv: Vec<CString> = args.iter().map(|a| cstring(a)).collect();
    let envp: Vec<CString> = env.iter().map(|e| cstring(e)).collect();
    let errno = match unistd::execve(program, &argv, &envp) {
        Ok(never) => match never {},
        Err(errno) => errno,
    };
    let code = if errno == Errno::ENOENT {
        EXIT_NOT_FOUND
    } else {
        EXIT_CANNOT_EXEC
    };
    Err((
        code,
        InitError::Sys {
            what: "exec",
            errno,
        },
    ))
}

/// Strings from JSON cannot hold NUL; cut at one if it does.
fn cstring(s: &str) -> CString {
    let bytes: Vec<u8> = s.bytes().take_while(|b| *b != 0).collect();
    CString::new(bytes).unwrap_or_default()
}

/// Signal state is inherited across exec: give the command a clean one
/// (Rust ignores SIGPIPE, strata blocked the forwarded signals).
fn reset_signals() -> Result<(), InitError> {
    signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(sys("unblocking signals"))?;
    for sig in FORWARDED
        .into_iter()
        .chain([Signal::SIGPIPE, Signal::SIGCHLD])
    {
        // SAFETY: SIG_DFL installs no handler code.
        unsafe { signal::signal(sig, SigHandler::SigDfl) }.map_err(sys("resetting signals"))?;
    }
    Ok(())
}

/// Closes every inherited descriptor above stderr but `kept`, and enters
/// (making it first if need be) the working directory.
fn enter_workdir(
    workdir: &str,
    owner: Option<(u32, u32)>,
    kept: Option<(u32, u32)>,
) -> Result<(), InitError> {
    // An fd inherited from strata would let `WORKDIR /proc/self/fd/N` reach
    // the host: none may survive into the container (CVE-2024-21626), but
    // for the ones a chroot's redirects are made of.
    let ranges = match kept {
        Some((low, high)) => vec![(3, low - 1), (high + 1, u32::MAX)],
        None => vec![(3, u32::MAX)],
    };
    for (first, last) in ranges {
        // SAFETY: close_range only closes descriptors; nothing in this
        // process uses one above stderr from here on.
        let closed = unsafe { nix::libc::syscall(nix::libc::SYS_close_range, first, last, 0u32) };
        if closed != 0 {
            return Err(sys("close_range")(Errno::last()));
        }
    }
    let dir = if workdir.is_empty() { "/" } else { workdir };
    make_workdir(Path::new(dir), owner).map_err(|e| InitError::Workdir(dir.into(), e))?;
    std::env::set_current_dir(dir).map_err(|e| InitError::Workdir(dir.into(), e))?;
    // getcwd fails (or says "(unreachable)") when the cwd is outside the root.
    match std::env::current_dir() {
        Ok(cwd) if cwd.is_absolute() => Ok(()),
        _ => Err(InitError::Workdir(
            dir.into(),
            std::io::Error::other("is outside the container"),
        )),
    }
}

/// `mkdir -p`, each directory it makes given to `owner` when there is one.
fn make_workdir(dir: &Path, owner: Option<(u32, u32)>) -> std::io::Result<()> {
    let Some((uid, gid)) = owner else {
        return fs_err::create_dir_all(dir);
    };
    let mut sofar = PathBuf::new();
    for comp in dir.components() {
        sofar.push(comp);
        if !matches!(comp, Component::Normal(_)) {
            continue;
        }
        match fs_err::create_dir(&sofar) {
            Ok(()) => fs_err::os::unix::fs::chown(&sofar, Some(uid), Some(gid))?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn container_env(spec: &ProcessSpec, home: &str) -> Vec<String> {
    let mut env = spec.env.clone();
    for (key, value) in [
        ("PATH", DEFAULT_PATH),
        ("HOSTNAME", &spec.hostname),
        ("HOME", home),
    ] {
        if spec.env_get(key).is_none() {
            env.push(format!("{key}={value}"));
        }
    }
    env
}

/// args[0] as a path, or looked up in the container's PATH.
fn find_program(args: &[String], env: &[String]) -> Result<CString, InitError> {
    let Some(name) = args.first() else {
        return Err(InitError::Spec("no command given".into()));
    };
    if name.contains('/') {
        return Ok(cstring(name));
    }
    let path = env
        .iter()
        .rev()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    path.split(':')
        .map(|dir| format!("{}/{name}", if dir.is_empty() { "." } else { dir }))
        .find(|candidate| fs_err::metadata(candidate).is_ok_and(|m| m.is_file()))
        .map(|p| cstring(&p))
        .ok_or_else(|| InitError::NotFound(name.clone()))
}

fn become_user(who: &user::ExecUser) -> Result<(), InitError> {
    let groups: Vec<Gid> = who.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    if let Err(errno) = unistd::setgroups(&groups) {
        // With a single-id map the kernel denies setgroups outright; the
        // process then keeps the one group it has, which is all there is.
        let denied =
            fs_err::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
        if !(errno == Errno::EPERM && denied) {
            return Err(InitError::Sys {
                what: "setgroups",
                errno,
            });
        }
    }
    let gid = Gid::from_raw(who.gid);
    unistd::setresgid(gid, gid, gid).map_err(sys("setgid (is the gid mapped? see strata info)"))?;
    let uid = Uid::from_raw(who.uid);
    unistd::setresuid(uid, uid, uid).map_err(sys("setuid (is the uid mapped? see strata info)"))?;
    Ok(())
}
