//! What killed processes leave behind, removed by the next strata command
//! that opens the store (and by `system prune`), not left for the user:
//! staging directories in `tmp/` whose lock nobody holds, and containers
//! made to live only as long as their process (a build's working
//! container, `run --rm`'s) whose `owner.lock` nobody holds.
//!
//! A container is removed as `container::remove` does it: renamed to
//! `.<id>.rm` under the store lock, then deleted; `.<id>.new` and
//! `.<id>.rm` directories found under the store lock are the remains of a
//! creation or removal that died half way (both hold the store lock).

use std::io;
use std::path::{Path, PathBuf};

use super::fsutil::{io_err, prune_staging, FileLock};
use super::{Store, StoreError};
use crate::layer::apply::remove_tree;

/// In a container's directory: flock'ed by the process a container lives
/// only as long as. Present and free: the container is garbage.
pub const OWNER_LOCK: &str = "owner.lock";
/// In a container's directory: flock'ed while a process runs in it.
pub const RUNNING_LOCK: &str = "running.lock";

impl Store {
    /// Remove what dead processes left; returns the containers removed.
    pub fn sweep(&self) -> Result<Vec<String>, StoreError> {
        prune_staging(&self.root.join("tmp"))?;
        self.sweep_containers()
    }

    /// Remove orphaned containers and half-created or half-removed ones.
    /// The store lock is taken only when there is something to remove.
    fn sweep_containers(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.root.join("containers");
        if doomed_containers(&dir)?.is_empty() {
            return Ok(Vec::new());
        }
        let _lock = self.lock()?;
        let mut removed = Vec::new();
        // Listed again under the lock: a creation or removal may have
        // finished since.
        for (name, owner) in doomed_containers(&dir)? {
            let path = dir.join(&name);
            match owner {
                // Held while the container is renamed and deleted, so a
                // second sweeper skips it.
                Some(owner) => {
                    let doomed = dir.join(format!(".{name}.rm"));
                    fs_err::rename(&path, &doomed).map_err(io_err("rename", &path))?;
                    remove_tree(&doomed).map_err(io_err("remove", &doomed))?;
                    drop(owner);
                    removed.push(name);
                }
                None => remove_tree(&path).map_err(io_err("remove", &path))?,
            }
        }
        Ok(removed)
    }
}

/// The containers to remove: orphans (with their owner lock, now ours) and
/// `.new` / `.rm` remains (no lock; valid only under the store lock).
fn doomed_containers(dir: &Path) -> Result<Vec<(String, Option<FileLock>)>, StoreError> {
    let entries = match fs_err::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("read directory", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let name = entry
            .map_err(io_err("read directory", dir))?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.starts_with('.') && (name.ends_with(".new") || name.ends_with(".rm")) {
            out.push((name, None));
            continue;
        }
        let owner: PathBuf = dir.join(&name).join(OWNER_LOCK);
        if let Some(lock) = FileLock::try_exclusive(&owner)? {
            out.push((name, Some(lock)));
        }
    }
    Ok(out)
}
