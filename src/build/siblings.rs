//! What the per-platform builds of one `build --platform A,B` share: a stop
//! flag (one platform's failure stops the others) and a memo of the steps
//! done in this invocation, so a step with the same key in two platforms
//! (a `FROM --platform=$BUILDPLATFORM` stage) runs once, even under
//! `--no-cache` and when the platforms build at once.
//!
//! A step's key is claimed by the thread that looks it up first; another
//! thread looking the same key up waits until the claimer records what the
//! step made (then takes it), gives the claim up (then claims it itself),
//! or the build stops. Claims are given up at the end of every step
//! ([`Siblings::release_mine`]), so a waiter waits for one step at most.
//!
//! A run of metadata steps records its key as seen (`Entry::Step`) and
//! makes its image only where the run ends, under the same key. So an
//! image lookup has its own slot: a sibling's `Step` does not answer it,
//! or both platforms would commit the same config at different times (two
//! image ids, and every later step of the stage run twice).
//!
//! `--cache-to` is written once, when every platform is built, with the
//! journals of them all (each build alone would replace the others').

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use super::cache::Entry;
use super::key::CacheKey;
use super::remote::journal::Journal;

/// A key's state in the memo.
#[derive(Debug, Clone)]
enum Slot {
    /// The step runs on this thread now.
    Running(ThreadId),
    /// It made this.
    Done(Entry),
}

/// Shared by every platform of one build.
#[derive(Debug, Default)]
pub struct Siblings {
    stop: AtomicBool,
    /// Whether the platforms build at once (their lines then say which
    /// platform they are of).
    pub parallel: bool,
    /// By key and whether the lookup wants an image.
    memo: Mutex<HashMap<(CacheKey, bool), Slot>>,
    changed: Condvar,
    /// What the platforms' builds looked up and made, with the stages of
    /// the final image: `--cache-to` writes one record of them all.
    journal: Mutex<Option<(Journal, BTreeSet<usize>)>>,
}

/// One platform's build among its siblings.
#[derive(Debug, Clone)]
pub struct Sibling {
    /// The platform's place in `--platform`, which tells its steps' events
    /// apart from the others'.
    pub index: usize,
    pub shared: Arc<Siblings>,
}

impl Siblings {
    pub fn new(parallel: bool) -> Siblings {
        Siblings {
            parallel,
            ..Siblings::default()
        }
    }

    /// Stops every platform's build (between steps).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.changed.notify_all();
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || crate::sandbox::interrupt::requested()
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, HashMap<(CacheKey, bool), Slot>> {
        self.memo.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What another platform's step of `key` made (an image, when `image`
    /// asks for one); else `None`, and the key is this thread's to run
    /// (waiting first while another thread runs it).
    pub fn take_or_claim(&self, key: &CacheKey, image: bool) -> Option<Entry> {
        let me = std::thread::current().id();
        let slot = (key.clone(), image);
        let mut memo = self.memo();
        loop {
            match memo.get(&slot) {
                Some(Slot::Done(entry)) => return Some(entry.clone()),
                Some(Slot::Running(t)) if *t != me => {
                    if self.stopped() {
                        return None;
                    }
                    // A timeout too, so that a signal (which notifies
                    // nobody) is seen.
                    let tick = Duration::from_millis(200);
                    memo = match self.changed.wait_timeout(memo, tick) {
                        Ok((m, _)) => m,
                        Err(e) => e.into_inner().0,
                    };
                }
                Some(Slot::Running(_)) => return None,
                None => {
                    memo.insert(slot, Slot::Running(me));
                    return None;
                }
            }
        }
    }

    /// `key` made `entry`: the other platforms take it.
    pub fn publish(&self, key: &CacheKey, entry: &Entry) {
        let mut memo = self.memo();
        memo.insert((key.clone(), false), Slot::Done(entry.clone()));
        if matches!(entry, Entry::Image(_)) {
            memo.insert((key.clone(), true), Slot::Done(entry.clone()));
        }
        drop(memo);
        self.changed.notify_all();
    }

    /// Adds a platform's journal to the build's cache export.
    pub fn add_journal(&self, journal: Journal, final_stages: BTreeSet<usize>) {
        let mut all = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *all {
            Some((j, stages)) => {
                j.merge(journal);
                stages.extend(final_stages);
            }
            None => *all = Some((journal, final_stages)),
        }
    }

    /// Every platform's journal, merged (`None` when none was built).
    pub fn take_journal(&self) -> Option<(Journal, BTreeSet<usize>)> {
        self.journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Gives up the keys this thread claimed and did not record (a step
    /// that failed, or made nothing to record).
    pub fn release_mine(&self) {
        let me = std::thread::current().id();
        self.memo()
            .retain(|_, slot| !matches!(slot, Slot::Running(t) if *t == me));
        self.changed.notify_all();
    }
}

/// Gives up this thread's claims when dropped: at the end of a step, and
/// of a build.
pub struct Releasing<'a>(pub Option<&'a Siblings>);

impl Drop for Releasing<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.0 {
            s.release_mine();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> CacheKey {
        crate::build::key::key(
            crate::build::key::Parent::Scratch,
            &crate::build::key::Op::Labels(&[("k".to_string(), s.to_string())].into()),
        )
    }

    #[test]
    fn the_first_claims_a_waiter_takes_what_it_made() {
        let s = Arc::new(Siblings::new(true));
        let k = key("a");
        assert!(s.take_or_claim(&k, false).is_none(), "the first claims");
        let other = {
            let (s, k) = (s.clone(), k.clone());
            std::thread::spawn(move || s.take_or_claim(&k, false))
        };
        s.publish(&k, &Entry::Step);
        assert!(matches!(other.join().unwrap(), Some(Entry::Step)));
    }

    #[test]
    fn a_released_claim_passes_to_the_waiter() {
        let s = Arc::new(Siblings::new(true));
        let k = key("b");
        assert!(s.take_or_claim(&k, false).is_none());
        let other = {
            let (s, k) = (s.clone(), k.clone());
            std::thread::spawn(move || {
                let got = s.take_or_claim(&k, false);
                // Now the waiter's: a third look from it claims nothing new.
                (got.is_none(), s.take_or_claim(&k, false).is_none())
            })
        };
        drop(Releasing(Some(&s)));
        assert_eq!(other.join().unwrap(), (true, true));
    }

    #[test]
    fn a_step_seen_does_not_answer_an_image_lookup() {
        let s = Arc::new(Siblings::new(true));
        let k = key("d");
        assert!(s.take_or_claim(&k, false).is_none());
        s.publish(&k, &Entry::Step);
        assert!(matches!(s.take_or_claim(&k, false), Some(Entry::Step)));
        // The image of the metadata run: claimed by the first to ask, the
        // other waits for it rather than making its own.
        assert!(s.take_or_claim(&k, true).is_none(), "the first claims");
        let other = {
            let (s, k) = (s.clone(), k.clone());
            std::thread::spawn(move || s.take_or_claim(&k, true))
        };
        let id = crate::digest::ImageId(crate::digest::Digest::of(b"cfg"));
        s.publish(&k, &Entry::Image(id.clone()));
        assert!(matches!(other.join().unwrap(), Some(Entry::Image(got)) if got == id));
    }

    #[test]
    fn a_stop_ends_the_wait() {
        let s = Arc::new(Siblings::new(true));
        let k = key("c");
        assert!(s.take_or_claim(&k, false).is_none());
        let other = {
            let (s, k) = (s.clone(), k.clone());
            std::thread::spawn(move || s.take_or_claim(&k, false))
        };
        s.stop();
        assert!(other.join().unwrap().is_none());
        assert!(s.stopped());
    }
}
