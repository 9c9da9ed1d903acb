//! Bytes the remote cache moved in this process: cache records read and
//! written, layer blobs fetched (lazily, when their content was needed) and
//! exported. `build` shows them when it ends, and a `--report` reads the
//! same [`Totals`].

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Bytes read from caches (records and layer blobs).
    pub downloaded: u64,
    /// Bytes written to caches (records and layer blobs actually sent: a
    /// blob the cache had, or mounted from another repository, costs none).
    pub uploaded: u64,
    /// Layer blobs fetched.
    pub layers_downloaded: u64,
    /// Layer blobs sent.
    pub layers_uploaded: u64,
}

static DOWNLOADED: AtomicU64 = AtomicU64::new(0);
static UPLOADED: AtomicU64 = AtomicU64::new(0);
static LAYERS_DOWNLOADED: AtomicU64 = AtomicU64::new(0);
static LAYERS_UPLOADED: AtomicU64 = AtomicU64::new(0);

pub fn downloaded(bytes: u64, layer: bool) {
    DOWNLOADED.fetch_add(bytes, Ordering::Relaxed);
    if layer {
        LAYERS_DOWNLOADED.fetch_add(1, Ordering::Relaxed);
    }
}

pub fn uploaded(bytes: u64, layer: bool) {
    UPLOADED.fetch_add(bytes, Ordering::Relaxed);
    if layer {
        LAYERS_UPLOADED.fetch_add(1, Ordering::Relaxed);
    }
}

pub fn totals() -> Totals {
    Totals {
        downloaded: DOWNLOADED.load(Ordering::Relaxed),
        uploaded: UPLOADED.load(Ordering::Relaxed),
        layers_downloaded: LAYERS_DOWNLOADED.load(Ordering::Relaxed),
        layers_uploaded: LAYERS_UPLOADED.load(Ordering::Relaxed),
    }
}
