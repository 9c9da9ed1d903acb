//! Entering strata's namespaces, along the isolation ladder (`ladder`).
//!
//! Real root with CAP_SYS_ADMIN only unshares a mount namespace. Otherwise
//! strata forks before any thread has started; the child unshares a new
//! user and mount namespace and waits on a pipe while the parent writes its
//! id mapping (the setuid helpers must run outside the new namespace, so the
//! child cannot map itself; root maps every id to itself). The child makes
//! its mounts private, says so, and goes on to run the command as root of
//! that namespace; the parent only waits and passes the exit code on. Every
//! mount the command makes lives in the child's mount namespace, so nothing
//! leaks when it dies. Where neither works, root runs without namespaces
//! (rung 4) and an unprivileged user gets the error naming the fixes.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::signal::{self, SigHandler, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{self, ForkResult, Pid, Uid};

use super::idmap::{Caller, IdMapError, IdMapPlan};
use super::ladder::{self, Choice, Fact, Facts, Isolation, Next, NoRung, Probe};

/// The exit code of a child that could not set itself up; Docker's code for
/// an error of the tool rather than of the command.
const EXIT_SETUP_FAILED: i32 = 125;

#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error("creating a pipe")]
    Pipe(#[source] Errno),
    #[error("forking")]
    Fork(#[source] Errno),
    #[error("creating a user namespace (unshare)")]
    Unshare(#[source] Errno),
    #[error("creating a mount namespace (unshare)")]
    UnshareMount(#[source] Errno),
    #[error("making mounts private in the new mount namespace")]
    MakePrivate(#[source] Errno),
    #[error("mapping ids into the user namespace")]
    Map(#[from] IdMapError),
    #[error("the namespace child exited before it was set up")]
    ChildVanished,
    #[error("setting up the new namespace: {what}")]
    ChildSetup {
        what: &'static str,
        #[source]
        source: Errno,
    },
    #[error(transparent)]
    NoRung(#[from] NoRung),
    #[error("waiting for the namespace child")]
    Wait(#[source] Errno),
}

/// Which side of the fork a caller of [`ensure`] is on.
pub enum Entered {
    /// This process is now root of strata's namespace: run the command.
    Inside,
    /// This process is the waiting parent; exit with this code.
    Waited(u8),
}

/// How ids are mapped in a namespace that was entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    /// Real root: no user namespace, only a private mount namespace.
    Host,
    /// The caller plus their subordinate ranges.
    Full,
    /// The caller's own uid and gid only.
    Single,
    /// Root in a container without CAP_SYS_ADMIN: every id as itself.
    Identity,
}

/// The rung this process entered (set once by [`ensure`]).
static CURRENT: OnceLock<Choice> = OnceLock::new();

/// The rung [`ensure`] chose, if it ran.
pub fn current() -> Option<&'static Choice> {
    CURRENT.get()
}

/// Puts the rest of this command inside strata's namespaces, on the best
/// rung of the ladder that works here (or the forced one).
///
/// Must be called while the process is single-threaded. `warn` gets the one
/// line printed when the full mapping is not available.
pub fn ensure(forced: Option<Isolation>, warn: &dyn Fn(&str)) -> Result<Entered, UsernsError> {
    let mut facts = Facts {
        root: Uid::effective().is_root(),
        env: super::environment::detect(),
        ..Facts::default()
    };
    loop {
        match ladder::next(&facts, forced) {
            Next::Use(choice) => {
                crate::log::info(&format!("isolation: {}", choice.isolation));
                // Only ever set here, once per process.
                let _ = CURRENT.set(choice);
                return Ok(Entered::Inside);
            }
            Next::None(err) => return Err(err.into()),
            Next::Probe(Fact::MountNs) => {
                // In this process: on success it is in the namespace it needs.
                facts.mount_ns = Probe::from_result(enter_mount_ns().map_err(|e| describe(&e)));
            }
            Next::Probe(Fact::UserNs) => match enter_user_ns(facts.root, warn) {
                Ok(None) => facts.user_ns = Probe::Ok,
                Ok(Some(child)) => return Ok(Entered::Waited(wait_passing_signals(child)?)),
                Err(err) => facts.user_ns = Probe::Failed(describe(&err)),
            },
            Next::Probe(Fact::FreshProc) => facts.fresh_proc = probe_fresh_proc(),
            Next::Probe(Fact::Ptrace) => facts.ptrace = super::chroot::probe(),
        }
    }
}

/// Forks into a new user namespace: `Ok(None)` in the child, now root of
/// it; the child's pid in the parent.
fn enter_user_ns(root: bool, warn: &dyn Fn(&str)) -> Result<Option<Pid>, UsernsError> {
    if root {
        return fork_into(
            &IdMapPlan::identity(Caller::current()),
            Mapping::Identity,
            warn,
        );
    }
    let plan = IdMapPlan::detect(Caller::current())?;
    if let Some(line) = plan.fallback_warning() {
        warn(&line);
    }
    let want = if plan.is_full() {
        Mapping::Full
    } else {
        Mapping::Single
    };
    crate::log::info(&format!(
        "entering a user namespace with the {} map (uid {} -> 0, subuid ranges {:?})",
        if want == Mapping::Full {
            "full"
        } else {
            "single-id"
        },
        plan.caller.uid,
        plan.uid_ranges
    ));
    fork_into(&plan, want, warn)
}

/// A failure as the ladder reports it: what was refused, in words.
pub(crate) fn describe(err: &UsernsError) -> String {
    let words = |errno: &Errno| errno.desc().to_lowercase();
    match err {
        UsernsError::Unshare(e) => format!("creating a user namespace was refused ({})", words(e)),
        UsernsError::UnshareMount(e) => {
            format!("creating a mount namespace was refused ({})", words(e))
        }
        UsernsError::MakePrivate(e) => format!("mounting was refused ({})", words(e)),
        UsernsError::ChildSetup { what, source } => {
            format!("{what} was refused ({})", words(source))
        }
        other => error_chain(other),
    }
}

/// Whether a new /proc can be mounted in a new pid namespace from here (a
/// container's masked /proc makes the kernel refuse one).
pub(super) fn probe_fresh_proc() -> Probe {
    let dir = match tempfile::Builder::new().prefix("strata-proc-").tempdir() {
        Ok(dir) => dir,
        Err(e) => return Probe::Failed(format!("making a scratch dir: {e}")),
    };
    // SAFETY: called while single-threaded (from ensure or a probe child).
    let child = match unsafe { unistd::fork() } {
        Ok(ForkResult::Child) => exit_child(fresh_proc_child(dir.path())),
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => return Probe::Failed(format!("forking: {e}")),
    };
    match wait(child) {
        Ok(WaitStatus::Exited(_, 0)) => Probe::Ok,
        Ok(WaitStatus::Exited(_, code)) => Probe::Failed(format!(
            "mounting a new /proc was refused ({}): the container's /proc is masked",
            Errno::from_raw(code).desc().to_lowercase()
        )),
        other => Probe::Failed(format!("the /proc probe ended as {other:?}")),
    }
}

/// In the probe child: new pid and mount namespaces, and a grandchild (the
/// pid namespace's first process) mounts proc. Returns 0 or the errno.
fn fresh_proc_child(dir: &std::path::Path) -> i32 {
    if let Err(e) = nix::sched::unshare(CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS) {
        return e as i32;
    }
    // SAFETY: the probe child is single-threaded.
    match unsafe { unistd::fork() } {
        Ok(ForkResult::Child) => {
            let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            let code = match nix::mount::mount(Some("proc"), dir, Some("proc"), flags, None::<&str>)
            {
                Ok(()) => 0,
                Err(e) => e as i32,
            };
            exit_child(code)
        }
        Ok(ForkResult::Parent { child }) => match wait(child) {
            Ok(WaitStatus::Exited(_, code)) => code,
            _ => Errno::ECHILD as i32,
        },
        Err(e) => e as i32,
    }
}

/// Runs `probe` in a forked child inside a fresh namespace set up as
/// `mapping` says, and returns what it returned. Used by `strata info`, so a
/// probe's mounts and failures can never touch the caller.
pub fn probe_in<E: std::error::Error>(
    plan: &IdMapPlan,
    mapping: Mapping,
    probe: impl FnOnce() -> Result<String, E>,
) -> Result<Result<String, ProbeFailure>, UsernsError> {
    let (result_r, result_w) = unistd::pipe2(OFlag::O_CLOEXEC).map_err(UsernsError::Pipe)?;
    let child = if mapping == Mapping::Host {
        // SAFETY: `strata info` runs its probes before starting any thread,
        // so the forked child is the only thread and may allocate freely.
        match unsafe { unistd::fork() }.map_err(UsernsError::Fork)? {
            ForkResult::Child => {
                drop(result_r);
                let outcome = match enter_mount_ns() {
                    Ok(()) => probe().map_err(|e| ProbeFailure(error_chain(&e))),
                    Err(e) => Err(ProbeFailure(describe(&e))),
                };
                report_and_exit(result_w, outcome)
            }
            ForkResult::Parent { child } => child,
        }
    } else {
        match fork_into(plan, mapping, &|_| {})? {
            None => {
                drop(result_r);
                report_and_exit(result_w, probe().map_err(|e| ProbeFailure(error_chain(&e))))
            }
            Some(child) => child,
        }
    };
    drop(result_w);
    let mut text = String::new();
    let read = File::from(result_r).read_to_string(&mut text);
    let status = wait(child)?;
    match (read, text.split_once('\n')) {
        (Ok(_), Some(("ok", detail))) => Ok(Ok(detail.to_string())),
        (Ok(_), Some(("err", detail))) => Ok(Err(ProbeFailure(detail.to_string()))),
        _ => Ok(Err(ProbeFailure(format!(
            "probe child ended without an answer ({status:?})"
        )))),
    }
}

/// Why a probe failed, as its child reported it over the pipe: the child's
/// error with its causes, as one line (the typed error stays in the child).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProbeFailure(pub String);

/// The error with its causes, as one line.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

fn report_and_exit(pipe: OwnedFd, outcome: Result<String, ProbeFailure>) -> ! {
    let (code, text) = match outcome {
        Ok(detail) => (0, format!("ok\n{detail}")),
        Err(ProbeFailure(detail)) => (1, format!("err\n{detail}")),
    };
    // Nothing useful can be done if the parent went away; the exit code
    // still tells it something went wrong.
    let _ = File::from(pipe).write_all(text.as_bytes());
    exit_child(code)
}

fn exit_child(code: i32) -> ! {
    // SAFETY: _exit ends the forked child without running the parent's
    // atexit handlers or flushing buffers it shares with the parent.
    unsafe { nix::libc::_exit(code) }
}

/// Forks; the child unshares and waits until the parent has mapped it.
/// Returns `None` in the child (now root of the new namespace) and the
/// child's pid in the parent.
fn fork_into(
    plan: &IdMapPlan,
    want: Mapping,
    warn: &dyn Fn(&str),
) -> Result<Option<Pid>, UsernsError> {
    let (ready_r, ready_w) = unistd::pipe2(OFlag::O_CLOEXEC).map_err(UsernsError::Pipe)?;
    let (go_r, go_w) = unistd::pipe2(OFlag::O_CLOEXEC).map_err(UsernsError::Pipe)?;
    let parent = unistd::getpid();
    // SAFETY: callers run this before any thread is started, so the child
    // is the only thread and may allocate and run arbitrary code.
    match unsafe { unistd::fork() }.map_err(UsernsError::Fork)? {
        ForkResult::Child => {
            drop((ready_r, go_w));
            child_side(parent, ready_w, go_r);
            Ok(None)
        }
        ForkResult::Parent { child } => {
            drop((ready_w, go_r));
            parent_side(plan, want, warn, child, ready_r, go_w).map(Some)
        }
    }
}

fn child_side(parent: Pid, ready: OwnedFd, go: OwnedFd) {
    // Die with the parent, so a killed strata leaves no namespace behind; the
    // parent may already be gone by the time the signal is armed.
    if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err() || unistd::getppid() != parent {
        exit_child(EXIT_SETUP_FAILED);
    }
    let mut ready = File::from(ready);
    let mut say = |outcome: Result<(), Errno>| {
        let line = match outcome {
            Ok(()) => "ok\n".to_string(),
            Err(errno) => format!("err {}\n", errno as i32),
        };
        if ready.write_all(line.as_bytes()).is_err() || outcome.is_err() {
            exit_child(EXIT_SETUP_FAILED);
        }
    };
    say(nix::sched::unshare(
        CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS,
    ));
    let mut byte = [0u8; 1];
    if File::from(go).read_exact(&mut byte).is_err() || byte[0] != b'1' {
        exit_child(EXIT_SETUP_FAILED);
    }
    // Supplementary groups from the host show up as nobody; drop them where
    // the mapping allows it (a single-id map has setgroups denied).
    let _ = unistd::setgroups(&[]);
    // A mount is the first thing an AppArmor profile or a namespace without
    // capabilities refuses: the parent hears of it before it commits.
    say(mount_private());
}

/// One line of the child's: `Ok` or the errno it reported.
fn read_answer(ready: &mut BufReader<File>) -> Option<Result<(), Errno>> {
    let mut line = String::new();
    // A read error is treated like an early exit.
    ready.read_line(&mut line).ok()?;
    match line.as_str() {
        "ok\n" => Some(Ok(())),
        _ => line
            .strip_prefix("err ")
            .and_then(|n| n.trim().parse().ok())
            .map(|n| Err(Errno::from_raw(n))),
    }
}

fn parent_side(
    plan: &IdMapPlan,
    want: Mapping,
    warn: &dyn Fn(&str),
    child: Pid,
    ready: OwnedFd,
    go: OwnedFd,
) -> Result<Pid, UsernsError> {
    let mut ready = BufReader::new(File::from(ready));
    let fail = |err: UsernsError| {
        // The child waits on `go` or exits; reap it so it does not linger
        // as a zombie.
        let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
        let _ = wait(child);
        Err(err)
    };
    match read_answer(&mut ready) {
        Some(Ok(())) => {}
        Some(Err(errno)) => return fail(UsernsError::Unshare(errno)),
        None => return fail(UsernsError::ChildVanished),
    }
    let mapped = match want {
        Mapping::Full => plan.apply_full(child).or_else(|err| {
            warn(&format!(
                "{}; falling back to a single-id user namespace",
                error_chain(&err)
            ));
            plan.apply_single(child)
        }),
        Mapping::Identity => plan.apply_identity(child),
        Mapping::Single | Mapping::Host => plan.apply_single(child),
    };
    if let Err(err) = mapped {
        return fail(err.into());
    }
    if File::from(go).write_all(b"1").is_err() {
        return fail(UsernsError::ChildVanished);
    }
    match read_answer(&mut ready) {
        Some(Ok(())) => Ok(child),
        Some(Err(source)) => fail(UsernsError::ChildSetup {
            what: "mounting in the new namespace",
            source,
        }),
        None => fail(UsernsError::ChildVanished),
    }
}

/// A private mount namespace for real root (no user namespace needed).
fn enter_mount_ns() -> Result<(), UsernsError> {
    nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(UsernsError::UnshareMount)?;
    mount_private().map_err(UsernsError::MakePrivate)
}

/// Stops mounts made here from propagating back to the host.
fn mount_private() -> Result<(), Errno> {
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
}

fn wait(child: Pid) -> Result<WaitStatus, UsernsError> {
    loop {
        match waitpid(child, None) {
            Err(Errno::EINTR) => continue,
            other => return other.map_err(UsernsError::Wait),
        }
    }
}

/// The child [`forward`] passes signals to.
static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: nix::libc::c_int) {
    let pid = FORWARD_TO.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe { nix::libc::kill(pid, sig) };
    }
}

/// Waits for the child running the command and turns its end into an exit
/// code the way a shell does (128 + signal).
fn wait_passing_signals(child: Pid) -> Result<u8, UsernsError> {
    // The terminal sends ^C and ^\ to the whole process group, so the child
    // gets them itself; the parent must outlive it to pass its code on.
    for sig in [Signal::SIGINT, Signal::SIGQUIT] {
        // SAFETY: SIG_IGN installs no handler code.
        let _ = unsafe { signal::signal(sig, SigHandler::SigIgn) };
    }
    // `kill PID` and a closing terminal reach only this process: pass them
    // on, so the child can stop cleanly rather than die with us.
    FORWARD_TO.store(child.as_raw(), Ordering::SeqCst);
    for sig in [Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only calls kill(2), which is
        // async-signal-safe, with an atomic it reads.
        let _ = unsafe { signal::signal(sig, SigHandler::Handler(forward)) };
    }
    Ok(match wait(child)? {
        WaitStatus::Exited(_, code) => u8::try_from(code).unwrap_or(u8::MAX),
        WaitStatus::Signaled(_, sig, _) => 128u8.saturating_add(sig as u8),
        _ => EXIT_SETUP_FAILED as u8,
    })
}
