//! When to try a request again, and how long to wait first.
//!
//! Failures a server or the network may not repeat (5xx, 429, connection
//! resets, timeouts, truncated bodies) are retried with exponential backoff
//! and "equal jitter": half of each delay is fixed, half random, so many
//! clients that failed together do not come back together, yet no delay
//! collapses to zero. The schedule is pure (the random sample is passed
//! in, so it is testable); [`retry`] is the one loop that follows it, for
//! every request strata repeats: registry calls, blob transfers, pushes and
//! ADD's downloads.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// How many times a request is tried in all before giving up. Five tries
/// with [`BASE_DELAY`] doubling wait about 3 s in all: long enough to ride
/// out a registry restart, short enough that a dead one fails quickly.
pub const DEFAULT_TRIES: u32 = 5;
/// The first delay (before the second try).
const BASE_DELAY: Duration = Duration::from_millis(200);
/// No single wait is longer than this.
const MAX_DELAY: Duration = Duration::from_secs(5);

/// A bounded retry schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Tries in all, the first included (at least 1).
    pub tries: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            tries: DEFAULT_TRIES,
            base: BASE_DELAY,
            max: MAX_DELAY,
        }
    }
}

impl Backoff {
    /// The wait before try number `next_try` (2 for the first retry), given
    /// a random sample in `[0, 1)`; `None` when no try is left.
    pub fn delay(&self, next_try: u32, sample: f64) -> Option<Duration> {
        if next_try < 2 || next_try > self.tries {
            return None;
        }
        // 2^(n-2) * base, computed without overflow for any n.
        let doublings = (next_try - 2).min(31);
        let full = self
            .base
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max)
            .min(self.max);
        let sample = sample.clamp(0.0, 1.0);
        Some(full / 2 + full.mul_f64(sample / 2.0))
    }

    /// The longest time the whole schedule can wait, for bounding tests.
    pub fn worst_case(&self) -> Duration {
        (2..=self.tries)
            .filter_map(|n| self.delay(n, 1.0))
            .sum::<Duration>()
    }
}

/// How one try failed: worth another try or not.
#[derive(Debug)]
pub enum Failure<E> {
    Retry(E),
    Fatal(E),
}

impl<E> Failure<E> {
    pub fn into_error(self) -> E {
        match self {
            Failure::Retry(e) | Failure::Fatal(e) => e,
        }
    }
}

/// Run `op` (given the number of the try, from 1) until it succeeds, fails
/// for good, or `schedule` has no try left, sleeping between tries. When
/// the tries ran out, `give_up(tries, last error)` makes the error returned
/// (a single try's error is returned as it is).
pub fn retry<T, E>(
    schedule: &Backoff,
    mut op: impl FnMut(u32) -> Result<T, Failure<E>>,
    give_up: impl FnOnce(u32, E) -> E,
) -> Result<T, E> {
    let mut tries = 0;
    loop {
        tries += 1;
        match op(tries) {
            Ok(v) => return Ok(v),
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Retry(e)) => match schedule.delay(tries + 1, jitter_sample()) {
                Some(d) => std::thread::sleep(d),
                None if tries <= 1 => return Err(e),
                None => return Err(give_up(tries, e)),
            },
        }
    }
}

/// Whether an HTTP status is worth another try: server errors and
/// "too many requests". Other 4xx (401, 403, 404, ...) say the same thing
/// every time.
pub fn retryable_status(status: u16) -> bool {
    status >= 500 || status == 429
}

/// A random sample in `[0, 1)`, from the random keys std seeds every
/// `RandomState` with (no extra crate for a little jitter).
pub fn jitter_sample() -> f64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0);
    // The top 53 bits fill an f64 mantissa exactly.
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_table() {
        let b = Backoff::default();
        let ms = Duration::from_millis;
        // (next try, sample, expected wait)
        let cases = [
            (0, 0.5, None),
            (1, 0.5, None),
            (2, 0.0, Some(ms(100))),
            (2, 1.0, Some(ms(200))),
            (3, 0.0, Some(ms(200))),
            (4, 0.5, Some(ms(600))),
            (5, 1.0, Some(ms(1600))),
            (6, 0.5, None),
        ];
        for (n, sample, want) in cases {
            assert_eq!(b.delay(n, sample), want, "try {n} sample {sample}");
        }
    }

    #[test]
    fn delays_are_capped_and_never_overflow() {
        let b = Backoff {
            tries: 100,
            ..Backoff::default()
        };
        assert_eq!(b.delay(40, 1.0), Some(MAX_DELAY));
        assert_eq!(b.delay(100, 0.0), Some(MAX_DELAY / 2));
        assert!(b.worst_case() <= MAX_DELAY * 99);
    }

    #[test]
    fn default_schedule_is_short() {
        assert_eq!(Backoff::default().worst_case(), Duration::from_millis(3000));
    }

    #[test]
    fn retryable_table() {
        for (status, want) in [
            (500, true),
            (502, true),
            (503, true),
            (429, true),
            (400, false),
            (401, false),
            (403, false),
            (404, false),
            (416, false),
        ] {
            assert_eq!(retryable_status(status), want, "{status}");
        }
    }

    #[test]
    fn retry_follows_the_schedule_and_stops_on_fatal() {
        let quick = Backoff {
            tries: 3,
            base: Duration::from_millis(1),
            max: Duration::from_millis(1),
        };
        let give_up = |n: u32, e: TryError| TryError::GaveUp(n, Box::new(e));
        let e = TryError::Try;
        // (outcomes of the tries, result, tries made)
        type Case = (&'static [Result<u8, bool>], Result<u8, TryError>, u32);
        let cases: [Case; 5] = [
            (&[Ok(7)], Ok(7), 1),
            (&[Err(true), Ok(8)], Ok(8), 2),
            (&[Err(false)], Err(e(1)), 1),
            (&[Err(true), Err(false)], Err(e(2)), 2),
            (&[Err(true), Err(true), Err(true)], Err(give_up(3, e(3))), 3),
        ];
        for (outcomes, want, want_tries) in cases {
            let mut made = 0;
            let got = retry(
                &quick,
                |n| {
                    made = n;
                    match outcomes[n as usize - 1] {
                        Ok(v) => Ok(v),
                        Err(true) => Err(Failure::Retry(e(n))),
                        Err(false) => Err(Failure::Fatal(e(n))),
                    }
                },
                give_up,
            );
            assert_eq!(got, want, "{outcomes:?}");
            assert_eq!(made, want_tries, "{outcomes:?}");
        }
        let single = Backoff { tries: 1, ..quick };
        let got = retry(&single, |_| Err::<u8, _>(Failure::Retry(e(1))), give_up);
        assert_eq!(got, Err(e(1)));
    }

    /// What a try of the tests fails with: which try, or the give-up
    /// wrapping the last one.
    #[derive(Debug, PartialEq)]
    enum TryError {
        Try(u32),
        GaveUp(u32, Box<TryError>),
    }

    #[test]
    fn jitter_is_in_range() {
        for _ in 0..100 {
            let s = jitter_sample();
            assert!((0.0..1.0).contains(&s));
        }
    }
}
