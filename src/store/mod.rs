//! The store: every image, layer and container strata knows, on disk.
//!
//! ```text
//! $STRATA_ROOT  (default $XDG_DATA_HOME/strata, /var/lib/strata for real root)
//! ├── lock                    flock(2) taken for every change of what is published
//! ├── images/index.json       tags -> image id; per name, its images by
//! │                           platform (lists.rs); per image: when added, parent,
//! │                           RepoDigests, manifests kept for it, the
//! │                           manifest format of its build or commit
//! ├── blobs/sha256/<hex>      configs (the image id is the config digest),
//! │                           manifests, layer blobs (compressed or not) once
//! │                           they exist: pulled, loaded, or made for a save
//! ├── layers/<hex>/           a layer unpacked in overlay-native form (whiteout
//! │                           = char 0:0, opaque = user.overlay.opaque=y); used
//! │                           as a lowerdir as it is. <hex> is the diff id's hex
//! ├── layers/<hex>.json       its record: size, whether its tar is regenerable,
//! │                           blobs known to decompress to it
//! ├── l/<short> -> ../layers/<hex>   short names for long lowerdir strings
//! ├── containers/<id>/        working containers (sandbox's); state.json names
//! │                           the image, which `rmi` respects; an owner.lock
//! │                           nobody holds marks one whose process died
//! ├── cache/                  build cache (step key -> image id)
//! ├── cache-mounts/<key>/     RUN --mount=type=cache directories, each with
//! │                           its own lock (see the `cache_mounts` module)
//! └── tmp/<pid>-<rand>/       staging, one directory per operation, alive while
//!     tmp/<pid>-<rand>.lock   its lock file is flock'ed by the owning process;
//!                             one per process may hold `hold.json`: images and
//!                             layers GC must keep for it (the `hold` module)
//!     tmp/ingest-<hex>/       a blob being written by the writer of a ref,
//!     tmp/ingest-<hex>.lock   the same rules (the `ingest` module)
//! ```
//!
//! Rules that keep it consistent with concurrent strata processes and
//! crashes at any point:
//! - Everything is first written under `tmp/` (hashed while written, fsynced,
//!   checked against the digest it must have), then renamed into place;
//!   a blob only through an ingest [`Writer`], whose [`Sealed`] result is
//!   all [`Store::publish_blob`] takes.
//!   A layer directory or blob that exists is complete.
//! - Publishing (renaming layers and blobs into place, replacing
//!   `images/index.json` or a layer record) happens only while holding the
//!   exclusive flock on `lock`, and the index is written last: something not
//!   reachable from the index is either being published by the lock holder
//!   or left by a crash. Garbage collection (`rmi`, `system prune`) runs
//!   under the same lock, so it never sees a half-published image.
//! - Readers take no lock: index and records are replaced by rename, so a
//!   reader sees the old or the new file, never a mix.
//! - Slow work (unpacking, hashing, compressing) runs unlocked in a staging
//!   directory. Its `.lock` twin is flock'ed for its lifetime; the kernel
//!   drops the lock when the process dies, which is how the next
//!   [`Store::open`] (and `system prune`) tells a killed operation's
//!   leftovers from a live one, and removes them (`sweep.rs`; containers
//!   that live only as long as their process are swept the same way).
//!
//! Entry points for the rest of strata: [`Store::open`]; [`Store::resolve`]
//! (name, id or prefix to [`ImageId`]), [`Store::config`] /
//! [`Store::config_bytes`], [`Store::index`]; [`Store::lowerdirs`] (an
//! image's layer directories, top first, ready for overlay) and
//! [`Store::short_link`]; a new image from a directory in overlay-native
//! form (a container's upper dir, moved in by rename) with
//! [`Store::prepare_layer_dir`] then [`Store::commit_image`], which
//! publishes layers, config, record and tags under one lock; from a tar with
//! [`Store::prepare_layer_tar`]; [`Store::layer_blob`] for a compressed blob
//! of a layer (made once, kept); [`transport`] for archives and layouts.

mod cache_mounts;
mod check;
pub mod config;
pub mod fsutil;
mod hold;
mod images;
mod ingest;
mod layers;
mod lists;
pub mod remote;
mod sweep;
pub mod transport;

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

pub use cache_mounts::{CacheMount, CacheSharing};
pub use check::{CheckReport, DiskUsage, PruneReport, UsageRow};
pub use config::{ImageConfig, RunConfig};
pub use fsutil::{FileLock, Staging};
pub use hold::release_holds;
pub use images::{ImageIndex, ImageRecord, ImageSummary, RemoveEvent};
pub use ingest::{Sealed, Status as IngestStatus, Writer};
pub use layers::{BlobCompression, BlobRecord, LayerRecord, PreparedLayer};
pub use lists::{ImageList, ListEntry};
pub use sweep::{OWNER_LOCK, RUNNING_LOCK};

use crate::digest::{DiffId, Digest, DigestMismatch, ImageId, SizeMismatch};
use crate::layer::LayerError;
use crate::reference::{Reference, ReferenceError};
use fsutil::{io_err, mkdirs};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("parsing {path}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(transparent)]
    DigestMismatch(#[from] DigestMismatch),
    #[error(transparent)]
    SizeMismatch(#[from] SizeMismatch),
    #[error("ref {reference:?} has a writer already: unavailable")]
    Unavailable { reference: String },
    #[error("content {digest}: already exists")]
    AlreadyExists { digest: Digest },
    #[error("No such image: {name}")]
    ImageNotFound { name: String },
    #[error("image id prefix {prefix:?} is ambiguous: matches {matches:?}")]
    Ambiguous {
        prefix: String,
        matches: Vec<String>,
    },
    #[error("layer {diff_id} is not in the store")]
    LayerMissing { diff_id: DiffId },
    #[error("fetching layer {diff_id} from {from}")]
    Fetch {
        diff_id: DiffId,
        from: String,
        #[source]
        cause: remote::FetchError,
    },
    #[error("blob {digest} is not in the store")]
    BlobMissing { digest: Digest },
    #[error("conflict: unable to remove repository reference {reference:?} (must force) - container {container} is using its referenced image {image}")]
    InUse {
        reference: String,
        container: String,
        image: String,
    },
    #[error("conflict: unable to delete {image} (must be forced) - image is referenced in multiple repositories")]
    MultipleTags { image: String },
    #[error(
        "conflict: unable to delete {image} (cannot be forced) - image has dependent child images"
    )]
    HasChildren { image: String },
    #[error("layer {diff_id} has no blob and its directory does not reproduce its diff id")]
    NotRegenerable { diff_id: DiffId },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error("unpacking layer {layer}")]
    Unpack { layer: String, source: LayerError },
    #[error(transparent)]
    Reference(#[from] ReferenceError),
}

impl StoreError {
    /// Whether the root cause is ENOSPC (reported as "no space left on device").
    pub fn is_no_space(&self) -> bool {
        let io = match self {
            StoreError::Io { source, .. } => source,
            StoreError::Layer(LayerError::Io { source, .. } | LayerError::Tar { source, .. })
            | StoreError::Unpack {
                source: LayerError::Io { source, .. } | LayerError::Tar { source, .. },
                ..
            } => source,
            _ => return false,
        };
        io.kind() == std::io::ErrorKind::StorageFull
    }
}

/// The store's sub-directories, created by [`Store::open`].
const LAYOUT: [&str; 7] = [
    "images",
    "blobs/sha256",
    "layers",
    "l",
    "containers",
    "cache",
    "tmp",
];
/// Length of the names in `l/`: long enough to be unique among layers,
/// short enough that 128 lowerdirs fit in a page-sized mount option string.
const SHORT_LINK_LEN: usize = 26;

/// An open store. Cheap to create; holds no lock between calls.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Open (creating if needed) the store at `root`.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        for dir in LAYOUT {
            mkdirs(&root.join(dir))?;
        }
        let root = fs_err::canonicalize(root).map_err(io_err("resolve", root))?;
        let store = Store { root };
        // What killed processes left goes now, not at the next `system
        // prune`. Best effort: a failure is left for prune to say.
        let _ = store.sweep();
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The exclusive store lock; hold it while publishing.
    pub fn lock(&self) -> Result<FileLock, StoreError> {
        FileLock::exclusive(&self.root.join("lock"))
    }

    /// A fresh staging directory under `tmp/`, removed when dropped.
    pub fn staging(&self) -> Result<Staging, StoreError> {
        Staging::new(&self.root.join("tmp"))
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Read a blob and check its digest.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        let data = match fs_err::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::BlobMissing {
                    digest: digest.clone(),
                })
            }
            Err(e) => return Err(io_err("read", path)(e)),
        };
        let found = Digest::of(&data);
        if &found != digest {
            return Err(StoreError::DigestMismatch(DigestMismatch {
                what: path.display().to_string(),
                expected: digest.clone(),
                found,
            }));
        }
        Ok(data)
    }

    /// Put a small blob (config, manifest) in place. Caller holds the lock.
    pub fn put_blob(
        &self,
        lock: &FileLock,
        _staging: &Staging,
        data: &[u8],
    ) -> Result<Digest, StoreError> {
        let digest = Digest::of(data);
        if self.has_blob(&digest) {
            return Ok(digest);
        }
        let mut w = self.temp_writer()?;
        w.write_all(data)
            .map_err(io_err("write", self.root.join("tmp")))?;
        self.publish_blob(lock, w.seal()?)?;
        Ok(digest)
    }

    /// The directory of a layer, usable as an overlay lowerdir.
    pub fn layer_dir(&self, diff_id: &DiffId) -> PathBuf {
        self.root.join("layers").join(diff_id.hex())
    }

    pub fn has_layer(&self, diff_id: &DiffId) -> bool {
        self.layer_dir(diff_id).is_dir()
    }

    /// `l/<short>`, relative to the root: a short name of the layer
    /// directory for mount option strings (mount with the root as cwd).
    pub fn short_link(&self, diff_id: &DiffId) -> PathBuf {
        Path::new("l").join(&diff_id.hex()[..SHORT_LINK_LEN])
    }

    /// The layer directories of an image in overlay lowerdir order: the top
    /// layer first. A layer whose root is opaque (`.wh..wh..opq` at the top
    /// of its tar) hides every layer below it, as the OCI rules say; the
    /// kernel's overlay ignores an opaque lowerdir root while fuse-overlayfs
    /// honours it, so the hidden layers are left out here, for every driver.
    pub fn lowerdirs(&self, id: &ImageId) -> Result<Vec<PathBuf>, StoreError> {
        let config = self.config(id)?;
        let mut dirs = Vec::with_capacity(config.rootfs.diff_ids.len());
        for diff_id in config.rootfs.diff_ids.iter().rev() {
            self.ensure_layer(diff_id)?;
            let dir = self.layer_dir(diff_id);
            if !dir.is_dir() {
                return Err(StoreError::LayerMissing {
                    diff_id: diff_id.clone(),
                });
            }
            let opaque = crate::layer::whiteout::is_opaque_dir(&dir);
            dirs.push(dir);
            if opaque {
                break;
            }
        }
        Ok(dirs)
    }

    /// The raw config blob of an image (its bytes define its id).
    pub fn config_bytes(&self, id: &ImageId) -> Result<Vec<u8>, StoreError> {
        self.read_blob(id.digest()).map_err(|e| match e {
            StoreError::BlobMissing { .. } => StoreError::ImageNotFound {
                name: id.to_string(),
            },
            e => e,
        })
    }

    /// The parsed config of an image.
    pub fn config(&self, id: &ImageId) -> Result<ImageConfig, StoreError> {
        let bytes = self.config_bytes(id)?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
            path: self.blob_path(id.digest()),
            source,
        })
    }

    /// Find an image by reference (`busybox`, `app:1`, `app@sha256:..`),
    /// full id (`sha256:...`) or id prefix, as Docker does.
    pub fn resolve(&self, name: &str) -> Result<ImageId, StoreError> {
        let index = self.index()?;
        if let Ok(reference) = Reference::parse(name) {
            if let Some(id) = index.lookup(&reference) {
                return Ok(id.clone());
            }
        }
        images::resolve_id(&index, name).map_err(|e| match e {
            // What was typed may hold a pasted `user:password@`.
            StoreError::ImageNotFound { name } => StoreError::ImageNotFound {
                name: crate::reference::shown(&name),
            },
            e => e,
        })
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("images/index.json")
    }

    /// The image index as it is now (no lock: it is replaced atomically).
    pub fn index(&self) -> Result<ImageIndex, StoreError> {
        let path = self.index_path();
        match fs_err::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| StoreError::Json { path, source })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(ImageIndex::default()),
            Err(e) => Err(io_err("read", path)(e)),
        }
    }

    /// Replace the index. Caller holds the lock.
    fn write_index(
        &self,
        _lock: &FileLock,
        staging: &Staging,
        index: &ImageIndex,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(index).map_err(|source| StoreError::Json {
            path: self.index_path(),
            source,
        })?;
        fsutil::write_atomic(staging, &self.index_path(), &bytes)
    }

    /// Run `f` on the index under the lock and write the result back.
    pub fn update_index<T>(
        &self,
        f: impl FnOnce(&FileLock, &Staging, &mut ImageIndex) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let staging = self.staging()?;
        let lock = self.lock()?;
        let mut index = self.index()?;
        let out = f(&lock, &staging, &mut index)?;
        self.write_index(&lock, &staging, &index)?;
        Ok(out)
    }
}

/// An error with its causes, `a: b: c`, for reports that list errors.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The current time as RFC 3339 with seconds, as configs store it.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
pub(crate) mod tests;
