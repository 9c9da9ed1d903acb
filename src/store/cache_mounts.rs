//! `cache-mounts/`: the directories of `RUN --mount=type=cache`, kept
//! across builds.
//!
//! ```text
//! cache-mounts/<key>/lock     flock: shared while a step uses the cache
//!                             (sharing=shared), exclusive for locked and
//!                             private users and for prune
//! cache-mounts/<key>/data/    what the step sees at its target
//! cache-mounts/<key>.<n>/     further instances of a private cache whose
//!                             first one was busy
//! ```
//!
//! `<key>` is hex chosen by the caller (a digest of the cache id), never a
//! name from a Dockerfile, so an id can never name a path outside
//! `cache-mounts/`. A user holds the lock for the whole step; `data/` is
//! made in a temporary directory and renamed into place, so nobody sees a
//! half-made one. Prune takes the store lock, then each cache's lock
//! without waiting: a cache in use is kept. A user that waited on a lock
//! whose directory prune removed meanwhile finds its lock file unlinked and
//! starts again.

use std::io;
use std::path::{Path, PathBuf};

use super::fsutil::{io_err, mkdirs, tree_size, FileLock};
use super::{Store, StoreError};
use crate::layer::apply::remove_tree;

/// How concurrent users of one cache share it (BuildKit's `sharing=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheSharing {
    /// Every user at once.
    Shared,
    /// One user at a time; others get an instance of their own.
    Private,
    /// One user at a time; others wait.
    Locked,
}

/// A cache directory in use, until dropped.
#[derive(Debug)]
pub struct CacheMount {
    data: PathBuf,
    _lock: FileLock,
}

impl CacheMount {
    /// The directory mounted at the step's target.
    pub fn data(&self) -> &Path {
        &self.data
    }
}

/// How many instances a private cache may have: more concurrent users than
/// this is a runaway, not a build farm.
const MAX_PRIVATE: usize = 64;

impl Store {
    fn cache_mounts(&self) -> PathBuf {
        self.root.join("cache-mounts")
    }

    /// The cache `key` (hex), locked as `sharing` says; a new one's `data/`
    /// is prepared by `init` before anyone can see it. `waiting` is called
    /// once if the lock is held by another build and this one waits.
    pub fn cache_mount(
        &self,
        key: &str,
        sharing: CacheSharing,
        waiting: &dyn Fn(),
        init: &dyn Fn(&Path) -> io::Result<()>,
    ) -> Result<CacheMount, StoreError> {
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::Invalid {
                what: format!("cache mount key {key:?}"),
                reason: "not a hex digest".into(),
            });
        }
        let base = self.cache_mounts();
        mkdirs(&base)?;
        loop {
            let lock = match sharing {
                CacheSharing::Private => self.private_instance(&base, key)?,
                CacheSharing::Shared => lock_dir(&base.join(key), Lock::Shared, waiting)?,
                CacheSharing::Locked => lock_dir(&base.join(key), Lock::Exclusive, waiting)?,
            };
            let Some(lock) = lock else { continue };
            let dir = lock.path().parent().unwrap_or(&base).to_path_buf();
            let data = dir.join("data");
            if !data.is_dir() {
                make_data(&dir, &data, init)?;
            }
            return Ok(CacheMount { data, _lock: lock });
        }
    }

    /// Whether the cache `key` (its first instance) exists.
    pub fn has_cache_mount(&self, key: &str) -> bool {
        !key.is_empty()
            && key.bytes().all(|b| b.is_ascii_hexdigit())
            && self.cache_mounts().join(key).join("data").is_dir()
    }

    /// The first instance of a private cache nobody holds.
    fn private_instance(&self, base: &Path, key: &str) -> Result<Option<FileLock>, StoreError> {
        for n in 0..MAX_PRIVATE {
            let name = match n {
                0 => key.to_string(),
                n => format!("{key}.{n}"),
            };
            let dir = base.join(name);
            if let Some(lock) = lock_dir(&dir, Lock::TryExclusive, &|| {})? {
                return Ok(Some(lock));
            }
        }
        Err(StoreError::Invalid {
            what: format!("private cache mount {key}"),
            reason: format!("{MAX_PRIVATE} instances are in use"),
        })
    }

    /// Every cache mount's size; `(count, in use, bytes, bytes not in use)`.
    pub fn cache_mounts_usage(&self) -> Result<(usize, usize, u64, u64), StoreError> {
        let (mut count, mut active, mut size, mut free) = (0, 0, 0, 0);
        for dir in instances(&self.cache_mounts())? {
            let bytes = tree_size(&dir);
            count += 1;
            size += bytes;
            match FileLock::try_exclusive(&dir.join("lock"))? {
                Some(_) => free += bytes,
                None if dir.join("lock").exists() => active += 1,
                None => free += bytes,
            }
        }
        Ok((count, active, size, free))
    }

    /// `system prune --cache-mounts`: removes every cache mount not in use;
    /// returns how many and the bytes freed.
    pub fn prune_cache_mounts(&self) -> Result<(usize, u64), StoreError> {
        let _store = self.lock()?;
        let (mut removed, mut bytes) = (0, 0);
        for dir in instances(&self.cache_mounts())? {
            let lock_path = dir.join("lock");
            let held = match FileLock::try_exclusive(&lock_path)? {
                Some(lock) => Some(lock),
                // No lock file: a crash between mkdir and lock; nobody uses it.
                None if !lock_path.exists() => None,
                None => continue,
            };
            let size = tree_size(&dir);
            remove_tree(&dir).map_err(io_err("remove", &dir))?;
            drop(held);
            removed += 1;
            bytes += size;
        }
        Ok((removed, bytes))
    }
}

/// The cache directories (every instance), sorted.
fn instances(base: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let entries = match fs_err::read_dir(base) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("read directory", base)(e)),
    };
    let mut dirs = Vec::new();
    for e in entries {
        let e = e.map_err(io_err("read directory", base))?;
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            dirs.push(e.path());
        }
    }
    dirs.sort();
    Ok(dirs)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lock {
    Shared,
    Exclusive,
    TryExclusive,
}

/// Locks `dir/lock` (making `dir` if needed). `None`: try again (the lock
/// was busy for a try, or prune removed the directory while we waited).
fn lock_dir(dir: &Path, how: Lock, waiting: &dyn Fn()) -> Result<Option<FileLock>, StoreError> {
    match fs_err::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("create", dir)(e)),
    }
    let path = dir.join("lock");
    let lock = match FileLock::try_lock(&path, how == Lock::Shared) {
        // Prune removed the directory between our mkdir and open.
        Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(None)
        }
        Err(e) => return Err(e),
        Ok(Some(lock)) => lock,
        Ok(None) if how == Lock::TryExclusive => return Ok(None),
        Ok(None) => {
            waiting();
            FileLock::lock(&path, how == Lock::Shared)?
        }
    };
    Ok(lock.still_linked()?.then_some(lock))
}

/// Makes `data` in a temporary directory beside it, then renames it into
/// place; a concurrent maker's rename winning first is fine.
fn make_data(
    dir: &Path,
    data: &Path,
    init: &dyn Fn(&Path) -> io::Result<()>,
) -> Result<(), StoreError> {
    // Per process and call: two stages (or platforms) of one build can
    // make the same mount's data at once.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!("data.tmp-{}-{n}", std::process::id()));
    if tmp.exists() {
        remove_tree(&tmp).map_err(io_err("remove", &tmp))?;
    }
    fs_err::create_dir(&tmp).map_err(io_err("create", &tmp))?;
    init(&tmp).map_err(io_err("prepare cache mount", &tmp))?;
    match fs_err::rename(&tmp, data) {
        Ok(()) => Ok(()),
        Err(_) if data.is_dir() => remove_tree(&tmp).map_err(io_err("remove", &tmp)),
        Err(e) => Err(io_err("rename", &tmp)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        (t, s)
    }

    fn init(dir: &Path) -> io::Result<()> {
        fs_err::write(dir.join("seed"), b"1")
    }

    #[test]
    fn keys_must_be_hex() {
        let (_t, s) = store();
        for key in ["", "../x", "a/b", "..", "abc.1"] {
            assert!(
                s.cache_mount(key, CacheSharing::Shared, &|| {}, &init)
                    .is_err(),
                "{key}"
            );
        }
    }

    #[test]
    fn a_cache_persists_and_is_seeded_once() {
        let (t, s) = store();
        let m = s
            .cache_mount("ab", CacheSharing::Shared, &|| {}, &init)
            .unwrap();
        assert_eq!(
            m.data(),
            fs_err::canonicalize(t.path())
                .unwrap()
                .join("cache-mounts/ab/data")
        );
        fs_err::write(m.data().join("x"), b"2").unwrap();
        // Shared users hold it together.
        let m2 = s
            .cache_mount("ab", CacheSharing::Shared, &|| panic!("waited"), &init)
            .unwrap();
        assert!(m2.data().join("x").exists());
        drop((m, m2));
        let (count, active, ..) = s.cache_mounts_usage().unwrap();
        assert_eq!((count, active), (1, 0));
    }

    #[test]
    fn private_users_get_instances_and_prune_keeps_caches_in_use() {
        let (_t, s) = store();
        let a = s
            .cache_mount("cd", CacheSharing::Private, &|| {}, &init)
            .unwrap();
        let b = s
            .cache_mount("cd", CacheSharing::Private, &|| {}, &init)
            .unwrap();
        assert_ne!(a.data(), b.data());
        assert!(b.data().ends_with("cd.1/data"));
        let (count, active, ..) = s.cache_mounts_usage().unwrap();
        assert_eq!((count, active), (2, 2));
        assert_eq!(s.prune_cache_mounts().unwrap().0, 0);
        drop(b);
        assert_eq!(s.prune_cache_mounts().unwrap().0, 1);
        assert!(a.data().is_dir());
        drop(a);
        assert_eq!(s.prune_cache_mounts().unwrap().0, 1);
        assert_eq!(s.cache_mounts_usage().unwrap().0, 0);
    }
}
