//! ^C (and SIGTERM, SIGHUP) during a build: the signal only raises a flag,
//! so strata outlives it, stops between steps, removes its working
//! containers and tags nothing. A running step's container-init is sent
//! SIGTERM, which ends its container: a terminal's ^C reaches it anyway,
//! but `kill` of strata does not.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};

static CAUGHT: AtomicBool = AtomicBool::new(false);
static REQUESTED: AtomicBool = AtomicBool::new(false);
/// The first stop signal caught, or 0.
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// The container-init running now, or 0.
static RUNNING: AtomicI32 = AtomicI32::new(0);

extern "C" fn raise(signal: nix::libc::c_int) {
    // Atomics and kill(2) are async-signal-safe. The first signal decides
    // the exit code (a second ^C changes nothing); it is stored before the
    // flag, so whoever sees the flag sees the signal.
    let _ = SIGNAL.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    REQUESTED.store(true, Ordering::SeqCst);
    let pid = RUNNING.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe { nix::libc::kill(pid, nix::libc::SIGTERM) };
    }
}

/// The container-init a stop must end (`None` once it has exited). A stop
/// asked for before it started ends it at once.
pub fn running(pid: Option<u32>) {
    let pid = pid.and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
    RUNNING.store(pid, Ordering::SeqCst);
    if pid > 0 && requested() {
        // SAFETY: plain kill(2) of our own child.
        unsafe { nix::libc::kill(pid, nix::libc::SIGTERM) };
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
}
