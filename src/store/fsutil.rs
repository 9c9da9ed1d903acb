//! File-system primitives of the store: the store lock, per-process staging
//! directories whose liveness is a lock, and atomic, verified writes.

use fs_err::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

use super::StoreError;
use crate::layer::apply::remove_tree;

/// Suffix of a staging directory's liveness lock in `tmp/`.
pub const STAGING_LOCK_SUFFIX: &str = ".lock";

pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.into();
    move |source| StoreError::Io { op, path, source }
}

/// An exclusive `flock` on a file, released on drop (and by the kernel when
/// the process dies, so a killed process never leaves the store locked).
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

impl FileLock {
    /// Block until the lock on `path` (created if missing) is ours.
    pub fn exclusive(path: &Path) -> Result<FileLock, StoreError> {
        let file = open_lock_file(path)?;
        rustix::fs::flock(&file, FlockOperation::LockExclusive)
            .map_err(|e| io_err("lock", path)(e.into()))?;
        Ok(FileLock {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Take the lock on an existing file if nobody holds it.
    pub fn try_exclusive(path: &Path) -> Result<Option<FileLock>, StoreError> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("open", path)(e)),
        };
        FileLock::try_on(file, path)
    }

    /// Take the lock on `path` (created if missing) if nobody holds it and
    /// the file is still there once locked (not unlinked by another
    /// remover meanwhile).
    fn try_take(path: &Path) -> Result<Option<FileLock>, StoreError> {
        match FileLock::try_on(open_lock_file(path)?, path)? {
            Some(lock) if lock.still_linked()? => Ok(Some(lock)),
            _ => Ok(None),
        }
    }

    fn try_on(file: File, path: &Path) -> Result<Option<FileLock>, StoreError> {
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(FileLock {
                file,
                path: path.to_path_buf(),
            })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(io_err("lock", path)(e.into())),
        }
    }

    /// Blocks until the lock on `path` (created if missing) is ours,
    /// shared with other shared holders or exclusive.
    pub fn lock(path: &Path, shared: bool) -> Result<FileLock, StoreError> {
        let file = open_lock_file(path)?;
        let op = match shared {
            true => FlockOperation::LockShared,
            false => FlockOperation::LockExclusive,
        };
        rustix::fs::flock(&file, op).map_err(|e| io_err("lock", path)(e.into()))?;
        Ok(FileLock {
            file,
            path: path.to_path_buf(),
        })
    }

    /// [`FileLock::lock`] without waiting: `None` if it is held.
    pub fn try_lock(path: &Path, shared: bool) -> Result<Option<FileLock>, StoreError> {
        let file = open_lock_file(path)?;
        let op = match shared {
            true => FlockOperation::NonBlockingLockShared,
            false => FlockOperation::NonBlockingLockExclusive,
        };
        match rustix::fs::flock(&file, op) {
            Ok(()) => Ok(Some(FileLock {
                file,
                path: path.to_path_buf(),
            })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(io_err("lock", path)(e.into())),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the locked file is still the one at `path` (not unlinked and
    /// replaced by a pruner between our open and our flock).
    pub(crate) fn still_linked(&self) -> Result<bool, StoreError> {
        let held = self.file.metadata().map_err(io_err("stat", &self.path))?;
        match fs_err::metadata(&self.path) {
            Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("stat", &self.path)(e)),
        }
    }
}

fn open_lock_file(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_err("open lock file", path))
}

/// A private directory under `tmp/`, alive while its lock is held. Dropped
/// (or found unlocked by `system prune`) it is removed with its content.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
    lock: Option<FileLock>,
}

impl Staging {
    pub fn new(tmp: &Path) -> Result<Staging, StoreError> {
        loop {
            let name = format!("{}-{:016x}", std::process::id(), random_u64());
            let lock_path = tmp.join(format!("{name}{STAGING_LOCK_SUFFIX}"));
            let lock = FileLock::exclusive(&lock_path)?;
            if !lock.still_linked()? {
                continue;
            }
            let dir = tmp.join(&name);
            fs_err::create_dir(&dir).map_err(io_err("create staging directory", &dir))?;
            return Ok(Staging {
                dir,
                lock: Some(lock),
            });
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A fresh path inside the staging directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}-{:016x}", random_u64()))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // Best effort: what is left is found unlocked and pruned later.
        if remove_tree(&self.dir).is_ok() {
            if let Some(lock) = self.lock.take() {
                // The unlinked lock file is harmless if this fails; prune
                // removes stale lock files whose directory is gone.
                let _ = fs_err::remove_file(lock.path());
            }
        }
    }
}

/// Remove staging directories of dead processes; returns bytes and entries
/// freed. A directory is removed only by whoever holds its lock, taken
/// without waiting: a live operation holds its own, and of several
/// processes sweeping at once one takes each dead lock, the others skip it.
/// A directory whose lock file is gone gets one made, for the same rule.
pub fn prune_staging(tmp: &Path) -> Result<(u64, u64), StoreError> {
    let mut freed = (0, 0);
    let entries = match fs_err::read_dir(tmp) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(freed),
        Err(e) => return Err(io_err("read directory", tmp)(e)),
    };
    for entry in entries {
        let name = entry
            .map_err(io_err("read directory", tmp))?
            .file_name()
            .to_string_lossy()
            .into_owned();
        let (base, is_lock) = match name.strip_suffix(STAGING_LOCK_SUFFIX) {
            Some(base) => (base, true),
            None => (name.as_str(), false),
        };
        let lock_path = tmp.join(format!("{base}{STAGING_LOCK_SUFFIX}"));
        // A directory with a lock file is the lock file's entry's business.
        if !is_lock && lock_path.exists() {
            continue;
        }
        let Some(lock) = FileLock::try_take(&lock_path)? else {
            continue;
        };
        let dir = tmp.join(base);
        if fs_err::symlink_metadata(&dir).is_ok() {
            freed.0 += tree_size(&dir);
            freed.1 += 1;
            remove_tree(&dir).map_err(io_err("remove", &dir))?;
        }
        match fs_err::remove_file(lock.path()) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_err("remove", lock.path())(e))
            }
            _ => {}
        }
    }
    Ok(freed)
}

/// Total bytes of regular files under `path` (best effort, for reports).
pub fn tree_size(path: &Path) -> u64 {
    let Ok(meta) = fs_err::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    fs_err::read_dir(path)
        .map(|rd| rd.flatten().map(|e| tree_size(&e.path())).sum())
        .unwrap_or(0)
}

pub(crate) fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    // getrandom can only fail on exotic kernels; a clock-derived fallback
    // still gives distinct staging names (they are not secrets).
    if rustix::rand::getrandom(&mut buf, rustix::rand::GetRandomFlags::empty()).is_err() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        return (now as u64) ^ u64::from(std::process::id()).rotate_left(32);
    }
    u64::from_le_bytes(buf)
}

/// fsync a directory, so a rename into it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    let f = File::open(dir).map_err(io_err("open", dir))?;
    rustix::fs::fsync(f.as_fd()).map_err(|e| io_err("fsync", dir)(e.into()))
}

/// Write `data` to a staging file, fsync it, and rename it to `dest`.
pub fn write_atomic(staging: &Staging, dest: &Path, data: &[u8]) -> Result<(), StoreError> {
    let tmp = staging.file("write");
    let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
    f.write_all(data).map_err(io_err("write", &tmp))?;
    f.sync_all().map_err(io_err("fsync", &tmp))?;
    drop(f);
    publish(&tmp, dest)
}

/// Write a file outside the store (an archive, an output) through a
/// temporary file next to `path`, renamed into place only when complete:
/// a failed write leaves no partial file. The file gets the mode a plain
/// create would give it.
pub fn write_whole_file<E: From<io::Error>>(
    path: &Path,
    write: impl FnOnce(io::BufWriter<std::fs::File>) -> Result<io::BufWriter<std::fs::File>, E>,
) -> Result<(), E> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let (file, tmp_path) = tempfile::NamedTempFile::new_in(dir)?.into_parts();
    let out = write(io::BufWriter::new(file))?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    // A temporary file is private (0600).
    let mode = 0o666 & !current_umask();
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    file.sync_all()?;
    tmp_path.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The process umask (read by setting and restoring it).
fn current_umask() -> u32 {
    let old = rustix::process::umask(rustix::fs::Mode::empty());
    rustix::process::umask(old);
    old.bits()
}

/// Rename a finished staging file or directory into place and fsync the
/// destination directory.
pub fn publish(tmp: &Path, dest: &Path) -> Result<(), StoreError> {
    fs_err::rename(tmp, dest).map_err(io_err("rename into place", dest))?;
    if let Some(parent) = dest.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Read a whole file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>, StoreError> {
    fs_err::read(path).map_err(io_err("read", path))
}

/// Create a directory and its parents, naming it in the error.
pub fn mkdirs(path: &Path) -> Result<(), StoreError> {
    fs_err::create_dir_all(path).map_err(io_err("create directory", path))
}
