//! Progress of the bytes one build step reads or writes (a COPY reading its
//! sources from the context to key them, then writing them into the image):
//! [`Event::StepBytes`] as the bytes go by, few enough that a large copy
//! is a moving bar and a small one says nothing.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::events::{Event, StepId, StepWork};

/// Below this many bytes a step shows no progress: it is over before a
/// bar would be worth drawing.
pub const METER_MIN_BYTES: u64 = 8 << 20;

/// At most about this many events for one meter (plus the first and last).
const METER_EVENTS: u64 = 100;

/// Counts a step's bytes and emits [`Event::StepBytes`] each time another
/// hundredth (at least 1 MiB) has gone by; the last event (`done ==
/// total`) comes from [`ByteMeter::finish`] or, if the step failed first,
/// from the drop.
#[derive(Debug)]
pub struct ByteMeter {
    step: StepId,
    work: StepWork,
    total: u64,
    every: u64,
    done: AtomicU64,
    finished: AtomicBool,
}

impl ByteMeter {
    /// A meter for `total` bytes of `work`, or `None` when that is too
    /// little to show.
    pub fn start(step: StepId, work: StepWork, total: u64) -> Option<Arc<ByteMeter>> {
        if total < METER_MIN_BYTES {
            return None;
        }
        let meter = ByteMeter {
            step,
            work,
            total,
            every: (total / METER_EVENTS).max(1 << 20),
            done: AtomicU64::new(0),
            finished: AtomicBool::new(false),
        };
        meter.emit(0);
        Some(Arc::new(meter))
    }

    /// `n` more bytes went by.
    pub fn add(&self, n: u64) {
        let before = self.done.fetch_add(n, Ordering::Relaxed);
        let after = before.saturating_add(n);
        // The whole is shown once, by `finish`.
        if before / self.every != after / self.every && after < self.total {
            self.emit(after);
        }
    }

    /// The work is over: the bar shows it whole (a file that shrank while
    /// read never leaves it short).
    pub fn finish(&self) {
        if !self.finished.swap(true, Ordering::Relaxed) {
            self.emit(self.total);
        }
    }

    fn emit(&self, done: u64) {
        super::emit(Event::StepBytes {
            step: self.step,
            work: self.work,
            done,
            total: self.total,
        });
    }
}

impl Drop for ByteMeter {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A meter, or none, carried with a copy's options: a display, never part
/// of what is copied, so any two are equal.
#[derive(Debug, Clone, Default)]
pub struct Meter(pub Option<Arc<ByteMeter>>);

impl PartialEq for Meter {
    fn eq(&self, _: &Meter) -> bool {
        true
    }
}

impl Eq for Meter {}

impl Meter {
    /// `reader`, its bytes counted on this meter.
    pub fn reader<R: Read>(&self, reader: R) -> Metered<'_, R> {
        Metered {
            inner: reader,
            meter: self.0.as_deref(),
        }
    }
}

/// A reader whose bytes go on a [`ByteMeter`].
pub struct Metered<'m, R> {
    inner: R,
    meter: Option<&'m ByteMeter>,
}

impl<R: Read> Read for Metered<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(m) = self.meter {
            m.add(n as u64);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::{install, Sink};
    use std::sync::Mutex;

    #[derive(Default)]
    struct Seen(Mutex<Vec<(u64, u64)>>);

    impl Sink for Seen {
        fn emit(&self, event: &Event) {
            if let Event::StepBytes { done, total, .. } = event {
                self.0.lock().unwrap().push((*done, *total));
            }
        }
    }

    #[test]
    fn a_large_copy_moves_in_hundredths_and_a_small_one_is_silent() {
        let seen = Arc::new(Seen::default());
        install(seen.clone());
        let step = StepId::default();
        assert!(ByteMeter::start(step, StepWork::Copy, METER_MIN_BYTES - 1).is_none());
        let total = 200 << 20;
        let meter = Meter(ByteMeter::start(step, StepWork::Copy, total));
        let data = vec![7u8; 5 << 20];
        for _ in 0..39 {
            io::copy(&mut meter.reader(&data[..]), &mut io::sink()).unwrap();
        }
        drop(meter); // 195 MiB read; the drop shows the whole.
        let got = seen.0.lock().unwrap().clone();
        assert_eq!(got.first(), Some(&(0, total)));
        assert_eq!(got.last(), Some(&(total, total)));
        // One event per 2 MiB step crossed (every 2 MiB of 200), not per read.
        assert!((90..=102).contains(&got.len()), "{}", got.len());
        assert!(got.windows(2).all(|w| w[0].0 <= w[1].0), "{got:?}");
    }
}
