//! Caps on how far a compressed stream may expand, so a decompression bomb
//! (10 MiB of gzip holding 10 GiB, 337 KB of zstd holding 4 GB) stops with
//! an error instead of filling the disk.
//!
//! Two limits, both configurable (`--max-layer-size`, `--max-layer-ratio`
//! or `STRATA_MAX_LAYER_SIZE`, `STRATA_MAX_LAYER_RATIO`): an absolute size
//! of the decompressed stream, and a ratio of decompressed to compressed
//! bytes, enforced once the output passes [`RATIO_GRACE`] so that a small
//! layer of zeros still unpacks. The limits are set once per process (the
//! CLI does it before any command runs) and read wherever a stream is
//! decompressed: pull, load, import and ADD.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Default largest decompressed layer or archive: 1 TiB, beyond any real
/// image layer, but a bound.
pub const DEFAULT_MAX_SIZE: u64 = 1 << 40;
/// Default largest expansion ratio. Real layers compress 2-10x; gzip's
/// own ceiling is about 1030x, so 100x stops a gzip bomb early while a
/// layer of text or sparse-ish binaries passes.
pub const DEFAULT_MAX_RATIO: u64 = 100;
/// Output below which the ratio is not enforced (a decoder's first reads
/// have consumed little input, and small layers of zeros are legitimate).
pub const RATIO_GRACE: u64 = 256 << 20;

/// The two caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_size: u64,
    pub max_ratio: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_size: DEFAULT_MAX_SIZE,
            max_ratio: DEFAULT_MAX_RATIO,
        }
    }
}

static LIMITS: OnceLock<Limits> = OnceLock::new();

/// Set this process's limits; the first call wins (later ones are ignored,
/// so a test harness and the CLI cannot fight).
pub fn set(limits: Limits) {
    // Already set: the first value stays, as documented.
    let _first = LIMITS.set(limits);
}

/// The limits in force.
pub fn get() -> Limits {
    LIMITS.get().copied().unwrap_or_default()
}

/// A size as `--max-layer-size` takes it: bytes, or a number with a
/// binary suffix (`k`, `m`, `g`, `t`; `512m`, `10G`).
pub fn parse_size(text: &str) -> Result<u64, BadSize> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    let digits = lower.trim_end_matches(['b', 'i']);
    let (num, shift) = match digits.chars().last() {
        Some('k') => (&digits[..digits.len() - 1], 10),
        Some('m') => (&digits[..digits.len() - 1], 20),
        Some('g') => (&digits[..digits.len() - 1], 30),
        Some('t') => (&digits[..digits.len() - 1], 40),
        _ => (digits, 0),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| BadSize(text.to_string()))
}

/// A `--max-layer-size` value that is not a size.
#[derive(Debug, thiserror::Error)]
#[error("invalid size {0:?} (bytes, or a number with k, m, g or t)")]
pub struct BadSize(String);

/// Why a stream was stopped.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error(
        "decompressed data exceeds {max} bytes (set --max-layer-size or \
         STRATA_MAX_LAYER_SIZE to allow more)"
    )]
    Size { max: u64 },
    #[error(
        "decompression bomb: {out} bytes from {input} compressed, over the \
         {ratio}x ratio limit (set --max-layer-ratio or STRATA_MAX_LAYER_RATIO \
         to allow more)"
    )]
    Ratio { out: u64, input: u64, ratio: u64 },
}

/// Whether an io::Error is a [`LimitError`] (to keep it unwrapped).
pub fn is_limit_error(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<LimitError>())
}

/// A decompressed stream that fails once it passes the limits. `input`
/// counts the compressed bytes consumed so far.
pub struct Capped<R> {
    inner: R,
    input: Arc<AtomicU64>,
    out: u64,
    limits: Limits,
}

impl<R> Capped<R> {
    pub fn new(inner: R, input: Arc<AtomicU64>, limits: Limits) -> Capped<R> {
        Capped {
            inner,
            input,
            out: 0,
            limits,
        }
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out += n as u64;
        let input = self.input.load(Ordering::Relaxed).max(1);
        if self.out > self.limits.max_size {
            return Err(io::Error::other(LimitError::Size {
                max: self.limits.max_size,
            }));
        }
        if self.out > RATIO_GRACE && self.out / input > self.limits.max_ratio {
            return Err(io::Error::other(LimitError::Ratio {
                out: self.out,
                input,
                ratio: self.limits.max_ratio,
            }));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(data: &[u8], input: u64, limits: Limits) -> io::Result<u64> {
        let count = Arc::new(AtomicU64::new(input));
        io::copy(&mut Capped::new(data, count, limits), &mut io::sink())
    }

    #[test]
    fn size_table() {
        assert_eq!(parse_size("1024").ok(), Some(1024));
        assert_eq!(parse_size("512m").ok(), Some(512 << 20));
        assert_eq!(parse_size("10G").ok(), Some(10 << 30));
        assert_eq!(parse_size("2GiB").ok(), Some(2 << 30));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999t").is_err());
    }

    #[test]
    fn caps_table() {
        let big = vec![0u8; (RATIO_GRACE + 1024) as usize];
        let lim = |max_size, max_ratio| Limits {
            max_size,
            max_ratio,
        };
        // Under both.
        assert!(drain(&big, RATIO_GRACE, lim(u64::MAX, 2)).is_ok());
        // The ratio is not enforced below the grace size.
        assert!(drain(&big[..1 << 20], 1, lim(u64::MAX, 2)).is_ok());
        // Over the ratio past the grace size.
        let e = drain(&big, 1024, lim(u64::MAX, 100)).unwrap_err();
        assert!(is_limit_error(&e) && e.to_string().contains("ratio"), "{e}");
        // Over the absolute size.
        let e = drain(&big[..4096], 4096, lim(1000, 100)).unwrap_err();
        assert!(
            is_limit_error(&e) && e.to_string().contains("1000 bytes"),
            "{e}"
        );
        assert!(!is_limit_error(&io::Error::other("x")));
    }
}
