//! The processes container-init waits for, and how it ends them: pid 1 of
//! a pid namespace (killing it ends the rest), or, where RUN shares the
//! container's pid namespace, the subtree container-init is subreaper of.

use nix::errno::Errno;
use nix::sys::signal::{self, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// What container-init waits for.
pub trait Children {
    /// Reaps what has ended; the exit code once the container is over.
    fn poll(&mut self) -> Result<Option<i32>, Errno>;
    /// Ends the container because of a forwarded signal.
    fn kill(&mut self, by: Signal);
}

/// Pid 1 of a pid namespace: killing it ends everything else.
pub struct Pid1 {
    pub pid: Pid,
    pub killed_by: Option<Signal>,
}

impl Children for Pid1 {
    fn poll(&mut self) -> Result<Option<i32>, Errno> {
        match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => Ok(Some(code)),
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                Ok(Some(128 + self.killed_by.unwrap_or(sig) as i32))
            }
            Ok(_) | Err(Errno::EINTR) => Ok(None),
            Err(errno) => Err(errno),
        }
    }

    fn kill(&mut self, by: Signal) {
        self.killed_by = Some(by);
        // Already gone is fine: waitpid reports it next.
        let _ = signal::kill(self.pid, Signal::SIGKILL);
    }
}

/// A RUN in the container's own pid namespace (rung 3 with the container's
/// /proc bound in: a new pid namespace would not match that /proc, and
/// `ps` fails). container-init is the subreaper of everything the RUN
/// starts, so whatever outlives its parent comes back to it; when the main
/// process ends, or a signal is forwarded, what is left is killed, as the
/// end of a pid namespace would.
pub struct Subtree {
    pub main: Pid,
    pub code: Option<i32>,
    pub killed_by: Option<Signal>,
}

impl Children for Subtree {
    fn poll(&mut self) -> Result<Option<i32>, Errno> {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(WaitStatus::Exited(pid, code)) if pid == self.main => self.code = Some(code),
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == self.main => {
                    self.code = Some(128 + self.killed_by.unwrap_or(sig) as i32)
                }
                Ok(_) | Err(Errno::EINTR) => {}
                // Nothing left: the main process was reaped before.
                Err(Errno::ECHILD) => return Ok(self.code.or(Some(128 + Signal::SIGKILL as i32))),
                Err(errno) => return Err(errno),
            }
        }
        if self.code.is_some() {
            kill_children();
        }
        Ok(None)
    }

    fn kill(&mut self, by: Signal) {
        self.killed_by.get_or_insert(by);
        let _ = signal::kill(self.main, Signal::SIGKILL);
        kill_children();
    }
}

/// SIGKILL to every child of this process. Their own children come back
/// to it when they die (it is their subreaper), to be killed on the next
/// poll.
fn kill_children() {
    let me = nix::unistd::getpid().as_raw();
    let Ok(entries) = fs_err::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if parent_of(pid) == Some(me) {
            // Already gone is fine.
            let _ = signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// The parent pid in /proc/PID/stat (after the parenthesised name, which
/// may itself hold spaces and parentheses).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = fs_err::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_ppid(&stat)
}

fn parse_ppid(stat: &str) -> Option<i32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_parent_pid_after_an_odd_name() {
        let stat = "42 (a) b (c) S 17 42 42 0 -1 4194560 0 0";
        assert_eq!(super::parse_ppid(stat), Some(17));
        assert_eq!(super::parse_ppid("garbage"), None);
    }
}
