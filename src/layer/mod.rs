//! Layers as directories and as tar streams.
//!
//! A layer lives on disk as a directory in overlay-native form (a deleted
//! path is a 0:0 character device, an opaque directory carries
//! `user.overlay.opaque=y`), usable as an overlay lowerdir as it is.
//! - [`diff`] turns such a directory into a deterministic tar (sorted, header
//!   fields derived only from the files, whiteouts as `.wh.` entries), so a
//!   layer's diff id is a pure function of its directory.
//! - [`compress`] gzips or zstds a tar while hashing both sides in one pass,
//!   and sniffs the compression of incoming streams.
//! - [`apply`] unpacks an untrusted tar (plain, gzip or zstd) into a fresh
//!   directory without ever resolving a path outside it.
//! - [`whiteout`] is the pure mapping between the two spellings of deletions.
//!
//! This module knows nothing of the store or of registries.

pub mod apply;
pub(crate) mod chunked;
pub mod compress;
pub mod diff;
pub mod limits;
mod pargzip;
pub mod reader;
pub mod union;
pub mod whiteout;

#[cfg(test)]
#[path = "../../tests/common/tarspec.rs"]
pub(crate) mod tarspec;

use std::path::PathBuf;

use crate::digest::Digest;

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading layer tar at entry {entry:?}")]
    Tar {
        entry: String,
        source: std::io::Error,
    },
    #[error("reading layer tar after entry {after:?}")]
    Read {
        after: String,
        source: reader::TarError,
    },
    #[error("layer tar entry {entry:?} is unsafe: {reason}")]
    Unsafe { entry: String, reason: &'static str },
    #[error("{path} changed while being read: expected {expected} bytes, found {found}")]
    FileChanged {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("layer content digest mismatch: expected {expected}, found {found}")]
    DigestMismatch { expected: Digest, found: Digest },
}

impl LayerError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> LayerError {
        let path = path.into();
        move |source| LayerError::Io { op, path, source }
    }
}
