//! The tracer: container-init follows every process of a chrooted RUN
//! (fork, vfork and clone are traced too) and, at each seccomp stop, sends
//! a path that names a redirect out of the chroot. All other stops are
//! passed on unchanged; signals reach the processes they were meant for.

use std::collections::HashSet;
use std::io::IoSliceMut;

use nix::errno::Errno;
use nix::sys::ptrace::{self, Event, Options};
use nix::sys::signal::{self, Signal};
use nix::sys::uio::{process_vm_readv, RemoteIoVec};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::redirect::Redirects;
use super::seccomp::Protected;
use super::syscalls::{self, Action};

/// The longest path the kernel accepts.
const PATH_MAX: usize = 4096;
const PAGE: u64 = 4096;

pub struct Tracer {
    main: Pid,
    /// Traced and not yet gone.
    live: HashSet<Pid>,
    /// Seen stopped at least once (the first stop of a new process is the
    /// SIGSTOP ptrace gives it, never delivered).
    started: HashSet<Pid>,
    main_code: Option<i32>,
    killed_by: Option<Signal>,
    redirects: Redirects,
    protected: Protected,
}

impl Tracer {
    /// Takes over `main`, which has called PTRACE_TRACEME and stopped itself.
    pub fn attach(main: Pid, redirects: Redirects, protected: Protected) -> Result<Tracer, Errno> {
        let mut tracer = Tracer {
            main,
            live: HashSet::from([main]),
            started: HashSet::from([main]),
            main_code: None,
            killed_by: None,
            redirects,
            protected,
        };
        loop {
            match waitpid(main, Some(WaitPidFlag::__WALL)) {
                Ok(WaitStatus::Stopped(_, Signal::SIGSTOP)) => break,
                Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                    tracer.handle(status);
                    return Ok(tracer);
                }
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
        let options = Options::PTRACE_O_TRACESECCOMP
            | Options::PTRACE_O_TRACEFORK
            | Options::PTRACE_O_TRACEVFORK
            | Options::PTRACE_O_TRACECLONE
            // Without it every execve stops with a SIGTRAP that would
            // then be delivered and kill the process.
            | Options::PTRACE_O_TRACEEXEC
            | Options::PTRACE_O_EXITKILL;
        ptrace::setoptions(main, options)?;
        ptrace::cont(main, None)?;
        Ok(tracer)
    }

    /// Handles every stop that is waiting; the exit code once the main
    /// process has ended and every other one is gone.
    pub fn poll(&mut self) -> Result<Option<i32>, Errno> {
        loop {
            match waitpid(
                Pid::from_raw(-1),
                Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG),
            ) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(status) => self.handle(status),
                Err(Errno::EINTR) => continue,
                Err(Errno::ECHILD) => {
                    self.live.clear();
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(self.main_code.filter(|_| self.live.is_empty()))
    }

    /// Kills every traced process (a forwarded signal); the exit code is
    /// then 128 + `by`.
    pub fn kill(&mut self, by: Signal) {
        self.killed_by.get_or_insert(by);
        for pid in &self.live {
            // Already gone is fine: waitpid reports it.
            let _ = signal::kill(*pid, Signal::SIGKILL);
        }
    }

    fn handle(&mut self, status: WaitStatus) {
        match status {
            WaitStatus::Exited(pid, code) => self.gone(pid, code),
            WaitStatus::Signaled(pid, sig, _) => {
                let sig = self.killed_by.unwrap_or(sig);
                self.gone(pid, 128 + sig as i32)
            }
            WaitStatus::PtraceEvent(pid, _, event) => {
                if event == Event::PTRACE_EVENT_SECCOMP as i32 {
                    self.on_syscall(pid);
                } else if [
                    Event::PTRACE_EVENT_FORK,
                    Event::PTRACE_EVENT_VFORK,
                    Event::PTRACE_EVENT_CLONE,
                ]
                .iter()
                .any(|e| *e as i32 == event)
                {
                    if let Ok(new) = ptrace::getevent(pid) {
                        self.live.insert(Pid::from_raw(new as i32));
                    }
                }
                // A process killed meanwhile cannot be continued; its exit
                // is reported next.
                let _ = ptrace::cont(pid, None);
            }
            WaitStatus::Stopped(pid, sig) => {
                self.live.insert(pid);
                let first = self.started.insert(pid);
                let deliver = (!(first && sig == Signal::SIGSTOP)).then_some(sig);
                let _ = ptrace::cont(pid, deliver);
            }
            _ => {}
        }
    }

    fn gone(&mut self, pid: Pid, code: i32) {
        self.live.remove(&pid);
        self.started.remove(&pid);
        if pid == self.main {
            self.main_code = Some(code);
            // As when a container's pid 1 ends: everything else goes too.
            for other in &self.live {
                let _ = signal::kill(*other, Signal::SIGKILL);
            }
        }
    }

    fn on_syscall(&mut self, pid: Pid) {
        let Ok(mut regs) = ptrace::getregs(pid) else {
            return;
        };
        let call = syscalls::from_regs(&regs);
        let low = u64::from(self.protected.low);
        let high = u64::from(self.protected.high);
        let mut action = syscalls::close_range(&call, low, high);
        if action == Action::Pass {
            action = self.redirect(pid, &call);
        }
        if syscalls::to_regs(action, &mut regs) {
            let _ = ptrace::setregs(pid, regs);
        }
    }

    fn redirect(&self, pid: Pid, call: &syscalls::Call) -> Action {
        let Some(addr) = syscalls::path_arg(call) else {
            return Action::Pass;
        };
        let Some(path) = read_path(pid, addr) else {
            return Action::Pass;
        };
        let Some(hit) = self.redirects.lookup(&path) else {
            return Action::Pass;
        };
        syscalls::redirect(call, addr, hit, |how| {
            ptrace::read(pid, how as ptrace::AddressType)
                .ok()
                .map(|w| w as u64)
        })
    }
}

/// The NUL-terminated string at `addr` in `pid`.
fn read_path(pid: Pid, addr: u64) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() < PATH_MAX {
        // Up to the end of the page: the next one may not be mapped.
        let len = (PAGE - at % PAGE) as usize;
        let mut buf = vec![0u8; len];
        let read = read_memory(pid, at, &mut buf)?;
        if let Some(nul) = buf[..read].iter().position(|b| *b == 0) {
            out.extend_from_slice(&buf[..nul]);
            return Some(out);
        }
        out.extend_from_slice(&buf[..read]);
        at += read as u64;
    }
    None
}

/// Reads what it can at `addr`: process_vm_readv, or word by word through
/// ptrace when that is refused (a process that changed its uid).
fn read_memory(pid: Pid, addr: u64, buf: &mut [u8]) -> Option<usize> {
    let remote = [RemoteIoVec {
        base: addr as usize,
        len: buf.len(),
    }];
    if let Ok(n) = process_vm_readv(pid, &mut [IoSliceMut::new(buf)], &remote) {
        if n > 0 {
            return Some(n);
        }
    }
    let word = std::mem::size_of::<libc::c_long>();
    let mut done = 0;
    while done < buf.len() {
        let value = ptrace::read(pid, (addr + done as u64) as ptrace::AddressType).ok()?;
        let take = word.min(buf.len() - done);
        buf[done..done + take].copy_from_slice(&value.to_ne_bytes()[..take]);
        done += take;
        if buf[done - take..done].contains(&0) {
            break;
        }
    }
    Some(done)
}
