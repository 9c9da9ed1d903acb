//! ^C (and SIGTERM, SIGHUP) during a build: the signal only raises a flag,
//! so strata outlives it, stops between steps, removes its working
//! containers and tags nothing. A running step's container-init is sent
//! SIGTERM, which ends its container: a terminal's ^C reaches it anyway,
//! but `kill` of strata does not. Stages building at once each have one:
//! every running container-init has a slot, and a stop (or a failed
//! stage's [`cancel_running`]) ends them all.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};

static CAUGHT: AtomicBool = AtomicBool::new(false);
static REQUESTED: AtomicBool = AtomicBool::new(false);
/// The first stop signal caught, or 0.
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// How many container-inits can be running at once and still be stopped:
/// one per stage building in parallel, more than `--jobs` will sensibly be.
const SLOTS: usize = 64;
/// The container-inits running now (0: a free slot).
static RUNNING: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];

extern "C" fn raise(signal: nix::libc::c_int) {
    // Atomics and kill(2) are async-signal-safe. The first signal decides
    // the exit code (a second ^C changes nothing); it is stored before the
    // flag, so whoever sees the flag sees the signal.
    let _ = SIGNAL.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    REQUESTED.store(true, Ordering::SeqCst);
    stop_running();
}

/// Set while a failed stage stops the others: a container-init starting
/// now is ended at once, as after a signal.
static CANCELLED: AtomicBool = AtomicBool::new(false);

/// A failed stage stops the build's other running containers, and those
/// about to start, until [`resume`]: every running container-init is sent
/// SIGTERM (their containers end; the steps that ran them fail and clean
/// up as on any failure).
pub fn cancel_running() {
    CANCELLED.store(true, Ordering::SeqCst);
    stop_running();
}

/// The stages [`cancel_running`] stopped have all ended: containers may
/// start again.
pub fn resume() {
    CANCELLED.store(false, Ordering::SeqCst);
}

fn stop_running() {
    for slot in &RUNNING {
        let pid = slot.load(Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: kill(2) is async-signal-safe (this runs in the handler).
            unsafe { nix::libc::kill(pid, nix::libc::SIGTERM) };
        }
    }
}

/// A container-init a stop must end, for as long as this guard lives.
pub struct Running(Option<usize>);

/// Registers `pid` as running until the guard is dropped. A stop asked for
/// before it started ends it at once.
pub fn running(pid: u32) -> Running {
    let Ok(pid) = i32::try_from(pid) else {
        return Running(None);
    };
    let slot = RUNNING.iter().position(|s| {
        s.compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    });
    if requested() || CANCELLED.load(Ordering::SeqCst) {
        // SAFETY: plain kill(2) of our own child.
        unsafe { nix::libc::kill(pid, nix::libc::SIGTERM) };
    }
    Running(slot)
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(slot) = self.0 {
            RUNNING[slot].store(0, Ordering::SeqCst);
        }
    }
}

/// From now on, SIGINT, SIGTERM and SIGHUP raise the flag instead of
/// killing strata.
pub fn catch() -> nix::Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(raise),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { signal::sigaction(sig, &action) }?;
    }
    CAUGHT.store(true, Ordering::SeqCst);
    Ok(())
}

/// Whether [`catch`] is in force (then a child need not be shielded from ^C
/// by ignoring it: strata survives it anyway).
pub fn caught() -> bool {
    CAUGHT.load(Ordering::SeqCst)
}

/// Whether a stop was asked for since [`catch`].
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// The signal that asked for the stop (SIGINT, SIGTERM, SIGHUP), once one
/// did.
pub fn signal() -> Option<i32> {
    requested().then(|| SIGNAL.load(Ordering::SeqCst))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_raises_the_flag_and_strata_lives_on() {
        catch().expect("catch");
        assert!(caught());
        signal::raise(Signal::SIGTERM).expect("raise");
        assert!(requested());
        assert_eq!(signal(), Some(Signal::SIGTERM as i32));
    }

    #[test]
    fn running_guards_take_and_free_their_slots() {
        let taken = || {
            RUNNING
                .iter()
                .filter(|s| s.load(Ordering::SeqCst) != 0)
                .count()
        };
        let before = taken();
        // Pids that exist in no namespace: a stop sends them nothing.
        let a = running(i32::MAX as u32);
        let b = running(i32::MAX as u32 - 1);
        assert_eq!(taken(), before + 2);
        drop(a);
        drop(b);
        assert_eq!(taken(), before);
    }
}
