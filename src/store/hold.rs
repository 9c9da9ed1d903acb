//! Holds: what a running strata process uses and garbage collection must
//! keep, though no tag or container names it yet (or any more): the base
//! image a build resolved, the images its steps committed or the cache
//! gave it, the layers a pull found in the store and means to reuse.
//!
//! One hold per process and store: a staging directory under `tmp/`
//! (locked for the process's life like any staging) holding `hold.json`.
//! GC (`rmi`, `system prune`) reads every `tmp/*/hold.json` under the
//! store lock and keeps what they name; `system prune` removes no held
//! image. When the process dies its staging lock is free, and the next
//! sweep removes the hold with its directory.
//!
//! A hold is written under the store lock, and the caller checks that
//! what it holds still exists only after holding it: GC either ran before
//! the hold (the check sees what it removed) or sees the hold.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use super::fsutil::{io_err, FileLock, Staging};
use super::{Store, StoreError};
use crate::digest::{DiffId, ImageId};

/// The file in a process's hold directory.
const HOLD_FILE: &str = "hold.json";

/// What one process holds.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Held {
    pub images: BTreeSet<ImageId>,
    pub layers: BTreeSet<DiffId>,
}

/// This process's hold in one store.
struct ProcessHold {
    dir: Staging,
    held: Held,
}

/// This process's holds, by store root. Never dropped: a hold lasts as
/// long as its process.
static HOLDS: Mutex<BTreeMap<PathBuf, ProcessHold>> = Mutex::new(BTreeMap::new());

impl Store {
    /// Keep `images` (their configs and layers) and `layers` from garbage
    /// collection while this process runs. Takes the store lock: never
    /// call it while holding it (see [`Store::hold_locked`]).
    pub fn hold(&self, images: &[ImageId], layers: &[DiffId]) -> Result<(), StoreError> {
        let lock = self.lock()?;
        self.hold_locked(&lock, images, layers)
    }

    /// [`Store::hold`] for a caller holding the store lock.
    pub(crate) fn hold_locked(
        &self,
        _lock: &FileLock,
        images: &[ImageId],
        layers: &[DiffId],
    ) -> Result<(), StoreError> {
        let mut holds = HOLDS.lock().unwrap_or_else(PoisonError::into_inner);
        let hold = match holds.entry(self.root.clone()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => v.insert(ProcessHold {
                dir: self.staging()?,
                held: Held::default(),
            }),
        };
        let mut held = hold.held.clone();
        held.images.extend(images.iter().cloned());
        held.layers.extend(layers.iter().cloned());
        if (held.images.len(), held.layers.len())
            == (hold.held.images.len(), hold.held.layers.len())
        {
            return Ok(());
        }
        write_hold(hold.dir.path(), &held)?;
        hold.held = held;
        Ok(())
    }

    /// Drop this process's hold on this store: what only it kept is
    /// collected by the next GC.
    pub fn release(&self) {
        let mut holds = HOLDS.lock().unwrap_or_else(PoisonError::into_inner);
        holds.remove(&self.root);
    }

    /// An image by name, held: `Err(ImageNotFound)` if GC removed it
    /// between the lookup and the hold.
    pub fn resolve_held(&self, name: &str) -> Result<ImageId, StoreError> {
        let id = self.resolve(name)?;
        self.hold(std::slice::from_ref(&id), &[])?;
        match self.has_blob(id.digest()) {
            true => Ok(id),
            false => Err(StoreError::ImageNotFound {
                name: crate::reference::shown(name),
            }),
        }
    }

    /// Everything live processes hold. Read under the store lock, as holds
    /// are written under it.
    pub(crate) fn held(&self, _lock: &FileLock) -> Result<Held, StoreError> {
        let tmp = self.root.join("tmp");
        let mut all = Held::default();
        let entries = match fs_err::read_dir(&tmp) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(all),
            Err(e) => return Err(io_err("read directory", &tmp)(e)),
        };
        for entry in entries {
            let path = entry
                .map_err(io_err("read directory", &tmp))?
                .path()
                .join(HOLD_FILE);
            let bytes = match fs_err::read(&path) {
                Ok(b) => b,
                // Not a hold, or swept since it was listed.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(io_err("read", &path)(e)),
            };
            // Written whole by rename: a hold that does not parse is
            // damage, and guessing would delete what it holds.
            let held: Held = serde_json::from_slice(&bytes)
                .map_err(|source| StoreError::Json { path, source })?;
            all.images.extend(held.images);
            all.layers.extend(held.layers);
        }
        Ok(all)
    }
}

/// Drop every hold of this process, in every store: the CLI calls it when
/// its command has ended, so a process that ends leaves nothing in `tmp/`
/// (one killed leaves its hold to the next sweep).
pub fn release_holds() {
    // Never wait here: a thread that died holding the map leaves it.
    if let Ok(mut holds) = HOLDS.try_lock() {
        std::mem::take(&mut *holds);
    }
}

/// Replace `dir`'s hold file by rename, so a reader sees it whole.
fn write_hold(dir: &Path, held: &Held) -> Result<(), StoreError> {
    let path = dir.join(HOLD_FILE);
    let tmp = dir.join(".hold.json.new");
    let bytes = serde_json::to_vec(held).map_err(|source| StoreError::Json {
        path: path.clone(),
        source,
    })?;
    fs_err::write(&tmp, bytes).map_err(io_err("write", &tmp))?;
    fs_err::rename(&tmp, &path).map_err(io_err("rename", &tmp))
}
