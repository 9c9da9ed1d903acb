//! The build cache: a step's key -> what that step made before.
//!
//! [`StepCache`] is what the engine asks; [`LocalCache`] answers from the
//! store (the remote cache adds importers behind the same trait). Entries
//! live in `<store>/cache/steps/<key hex>`, written by rename so a reader
//! sees a whole entry or none. An entry names an image, or says the step is
//! a metadata step seen before whose change lives in a later step's image
//! ([`Entry::Step`]: metadata steps in a row make one image, not one each).
//! An entry whose image is gone (removed, pruned) is a miss. A file in
//! `cache/sites/` says a version of a COPY (same parent, destination and
//! flags, any content) was recorded, so a COPY the cache never saw in any
//! version skips reading its sources before it copies them. Remote caches
//! (`--cache-from`) are asked after this one: [`super::remote`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use super::key::CacheKey;
use crate::digest::ImageId;
use crate::store::Store;

/// What a key was recorded with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// The image the step made.
    Image(ImageId),
    /// A metadata step, made before, that has no image of its own.
    Step,
}

/// An [`Entry::Step`] is an empty file: it takes an inode but no data
/// block, which matters when a Dockerfile has 100,000 ENV lines.
const STEP_MARK: &str = "";

/// Where the engine looks steps up and records them.
pub trait StepCache: Send + Sync {
    /// What `key` made, if it is still usable.
    fn lookup(&self, key: &CacheKey) -> Option<Entry>;
    /// Records that `key` made `entry`. A cache that cannot be written only
    /// costs the next build time, so callers may warn and go on.
    fn record(&self, key: &CacheKey, entry: &Entry) -> std::io::Result<()>;
    /// Whether a version of the step at `site` was recorded
    /// ([`crate::build::key::site`]): if not, its key cannot hit.
    fn has_site(&self, site: &CacheKey) -> bool;
    /// Records that a version of the step at `site` was recorded.
    fn record_site(&self, site: &CacheKey) -> std::io::Result<()>;
    /// Where the last lookup's hit came from, when not this machine's
    /// cache (` ---> Using cache (registry REG/REPO)`).
    fn origin(&self) -> Option<String> {
        None
    }
    /// The steps looked up from now on belong to stage `stage` (what a
    /// cache export of mode=min tells apart).
    fn stage_started(&self, _stage: usize) {}
    /// A RUN of this build uses the cache mount `key` (a store key).
    fn note_cache_mount(&self, _key: &str) {}
    /// The config of an image a hit named that is not in the store (a
    /// dry run's remote hit, read from the cache record).
    fn config(&self, _id: &ImageId) -> Option<crate::store::config::ImageConfig> {
        None
    }
}

/// The cache in the local store.
pub struct LocalCache<'a> {
    store: &'a Store,
    /// Whether a lookup may write to the store: hold what hits and mark
    /// its entry used (not in a dry run).
    writes: bool,
}

impl<'a> LocalCache<'a> {
    pub fn new(store: &'a Store) -> LocalCache<'a> {
        LocalCache {
            store,
            writes: true,
        }
    }

    /// The cache, looked up without holding what hits or marking it used:
    /// a dry run leaves the store as it was (and makes nothing from what
    /// it finds, so a GC meanwhile only makes its answer stale).
    pub fn peeking(self) -> LocalCache<'a> {
        LocalCache {
            writes: false,
            ..self
        }
    }

    fn dir(&self) -> PathBuf {
        self.store.root().join("cache").join("steps")
    }

    fn sites(&self) -> PathBuf {
        self.store.root().join("cache").join("sites")
    }
}

/// An entry of the local cache, for housekeeping.
#[derive(Debug, Clone)]
pub struct Stored {
    pub key: CacheKey,
    /// The image it names (`None`: a metadata step, or an unreadable entry).
    pub image: Option<ImageId>,
    /// When it was recorded or last hit.
    pub used: SystemTime,
}

impl LocalCache<'_> {
    /// Every entry (unordered).
    pub fn stored(&self) -> std::io::Result<Vec<Stored>> {
        let mut out = Vec::new();
        let entries = match fs_err::read_dir(self.dir()) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for e in entries {
            let e = e?;
            let Some(key) = e.file_name().to_str().and_then(CacheKey::from_hex) else {
                continue; // a temporary file of a record in progress
            };
            let used = e.metadata()?.modified()?;
            let text = fs_err::read_to_string(e.path()).unwrap_or_default();
            let image = text.trim().parse().ok();
            out.push(Stored { key, image, used });
        }
        Ok(out)
    }

    /// Removes an entry (gone already is fine).
    pub fn forget(&self, key: &CacheKey) -> std::io::Result<()> {
        remove_if_there(&self.dir().join(key.hex()))
    }

    /// Removes the site records last written before `before` (all with
    /// `None`); how many.
    pub fn forget_sites(&self, before: Option<SystemTime>) -> std::io::Result<usize> {
        let mut n = 0;
        let entries = match fs_err::read_dir(self.sites()) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        for e in entries {
            let e = e?;
            if before.is_none_or(|t| e.metadata().and_then(|m| m.modified()).is_ok_and(|m| m < t)) {
                remove_if_there(&e.path())?;
                n += 1;
            }
        }
        Ok(n)
    }
}

fn remove_if_there(path: &std::path::Path) -> std::io::Result<()> {
    match fs_err::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl StepCache for LocalCache<'_> {
    fn lookup(&self, key: &CacheKey) -> Option<Entry> {
        // Unreadable or damaged is a miss: the step runs again.
        let path = self.dir().join(key.hex());
        let text = fs_err::read_to_string(&path).ok()?;
        let text = text.trim();
        let entry = match text == STEP_MARK {
            true => Entry::Step,
            false => {
                let id: ImageId = text.parse().ok()?;
                // Held before it is checked: GC keeps it for the build.
                if self.writes {
                    self.store.hold(std::slice::from_ref(&id), &[]).ok()?;
                }
                self.store
                    .has_blob(id.digest())
                    .then_some(Entry::Image(id))?
            }
        };
        // The time of the last hit is what `prune --filter until=` reads;
        // not recording it only makes the entry look older.
        if !self.writes {
            return Some(entry);
        }
        let _ = fs_err::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(SystemTime::now()));
        Some(entry)
    }

    fn record(&self, key: &CacheKey, entry: &Entry) -> std::io::Result<()> {
        let dir = self.dir();
        fs_err::create_dir_all(&dir)?;
        let text = match entry {
            Entry::Image(id) => id.to_string(),
            Entry::Step => STEP_MARK.to_string(),
        };
        // Stages building at once may record the same key: each write its
        // own temporary file.
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let n = WRITES.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{}.{}.{n}", key.hex(), std::process::id()));
        fs_err::write(&tmp, text)?;
        fs_err::rename(&tmp, dir.join(key.hex()))
    }

    fn has_site(&self, site: &CacheKey) -> bool {
        self.sites().join(site.hex()).exists()
    }

    fn record_site(&self, site: &CacheKey) -> std::io::Result<()> {
        let dir = self.sites();
        fs_err::create_dir_all(&dir)?;
        // An empty file: its name says it all, and a second write is a no-op.
        fs_err::write(dir.join(site.hex()), b"")
    }
}
