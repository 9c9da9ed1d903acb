//! The cache-key input of a COPY/ADD: one digest over what the copy would
//! write, and the metadata cache that spares re-reading unchanged files.
//!
//! For each source (in the order given): its path and whether it is a
//! directory, then for the source itself and each entry under it (sorted):
//! the path relative to the source, the type, the mode after `--chmod`, the
//! owner after `--chown` (0:0 from a local context, the file's own from a
//! root file system), a symlink's target and a file's sha256. Times are
//! left out, as in BuildKit's content checksums: touching a file does not
//! invalidate the cache, changing it does.
//!
//! The metadata cache, `<cache dir>/files.json`, maps an absolute path to
//! `(dev, inode, size, mtime ns, ctime ns)` and the content sha256. ctime is
//! in the key because the kernel sets it on every change and no one can set
//! it back: a file rewritten with the same size and its mtime restored by
//! `touch -d` still misses. A file changed in the last second is not
//! remembered (see [`RACY_WINDOW_NS`]). Only local contexts use it; a root file system
//! is a fresh mount each time, so its paths would never hit. The file is
//! replaced by rename, so a concurrent build reads the old or the new one;
//! at worst one build's additions are lost, which costs a re-read.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{Context, ContextError, ContextKind, Entry, EntryKind, Source};
use crate::build::copy::CopyOptions;
use crate::digest::Digest;

/// File name of the metadata cache inside the cache dir.
const CACHE_FILE: &str = "files.json";
/// Bumped when the cache's meaning changes; another version is ignored.
const CACHE_VERSION: u32 = 1;
/// First bytes hashed, so a change of this encoding changes every key.
const DIGEST_DOMAIN: &[u8] = b"strata copy sources v1\0";

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    files: BTreeMap<String, Cached>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Cached {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    sha256: String,
}

impl Cached {
    fn key_of(e: &Entry) -> (u64, u64, u64, i64, i64) {
        (
            e.dev,
            e.ino,
            e.size,
            ns(e.mtime_sec, e.mtime_nsec),
            ns(e.ctime_sec, e.ctime_nsec),
        )
    }

    fn matches(&self, e: &Entry) -> bool {
        (self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns) == Cached::key_of(e)
    }
}

/// A file changed this recently may change again within the same
/// timestamp tick (the kernel stamps files from a coarse clock, a few
/// milliseconds wide) without its metadata showing it: git's "racy clean"
/// problem. Such a file is hashed but not remembered.
const RACY_WINDOW_NS: i64 = 1_000_000_000;

fn is_racy(ctime_ns: i64) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    now.saturating_sub(ctime_ns) < RACY_WINDOW_NS
}

fn ns(sec: i64, nsec: i64) -> i64 {
    sec.saturating_mul(1_000_000_000).saturating_add(nsec)
}

/// The loaded cache and whether it needs writing back.
struct MetaCache {
    path: Option<PathBuf>,
    file: CacheFile,
    dirty: bool,
}

impl MetaCache {
    fn load(cache_dir: Option<&Path>) -> MetaCache {
        let path = cache_dir.map(|d| d.join(CACHE_FILE));
        let file = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            // A missing, unreadable or corrupt cache is an empty one: it
            // only ever saves work, and is rewritten whole below.
            .and_then(|bytes| serde_json::from_slice::<CacheFile>(&bytes).ok())
            .filter(|f| f.version == CACHE_VERSION)
            .unwrap_or(CacheFile {
                version: CACHE_VERSION,
                files: BTreeMap::new(),
            });
        MetaCache {
            path,
            file,
            dirty: false,
        }
    }

    /// Drop entries under `root` that the walk no longer saw, so the cache
    /// does not grow with every file ever deleted from the context.
    fn prune(&mut self, ctx: &Context) {
        let root = ctx.root.to_string_lossy().into_owned();
        let prefix = format!("{}/", root.trim_end_matches('/'));
        let before = self.file.files.len();
        self.file
            .files
            .retain(|k, _| match k.strip_prefix(&prefix) {
                Some(rel) => ctx
                    .entry(Path::new(rel))
                    .is_some_and(|e| e.kind == EntryKind::File),
                None => true,
            });
        self.dirty |= self.file.files.len() != before;
    }

    fn save(&self) -> Result<(), ContextError> {
        let (Some(path), true) = (&self.path, self.dirty) else {
            return Ok(());
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(ContextError::io("create", dir))?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)
            .map_err(ContextError::io("create temp in", dir))?;
        let bytes = serde_json::to_vec(&self.file).map_err(io::Error::from);
        bytes
            .and_then(|b| tmp.write_all(&b))
            .map_err(ContextError::io("write", tmp.path()))?;
        tmp.persist(path)
            .map_err(|e| ContextError::io("replace", path)(e.error))?;
        Ok(())
    }
}

/// A digest of the selected sources for the build cache key.
pub fn digest_sources(
    ctx: &Context,
    sources: &[Source],
    opts: &CopyOptions,
    cache_dir: Option<&Path>,
) -> Result<Digest, ContextError> {
    let use_cache = ctx.kind == ContextKind::Local;
    let mut cache = MetaCache::load(if use_cache { cache_dir } else { None });
    let root_fd = match ctx.kind {
        ContextKind::Empty => None,
        _ => Some(ctx.open_root()?),
    };
    let mut h = Sha256::new();
    h.update(DIGEST_DOMAIN);
    for source in sources {
        field(&mut h, b"source");
        field(&mut h, source.path.as_os_str().as_encoded_bytes());
        field(&mut h, if source.is_dir { b"dir" } else { b"file" });
        let items =
            std::iter::once(Path::new("")).chain(source.entries.iter().map(PathBuf::as_path));
        for rel in items {
            let cpath = source.context_path(rel);
            let Some(entry) = ctx.entry(&cpath) else {
                return Err(ContextError::NotFound {
                    path: cpath.display().to_string(),
                });
            };
            field(&mut h, rel.as_os_str().as_encoded_bytes());
            let (uid, gid) = owner(ctx, entry, opts);
            let mode = match (&entry.kind, opts.chmod) {
                (EntryKind::Symlink(_), _) => entry.mode,
                (_, Some(m)) => m,
                (_, None) => entry.mode,
            };
            field(&mut h, format!("{mode:o} {uid}:{gid}").as_bytes());
            match &entry.kind {
                EntryKind::Dir => field(&mut h, b"d"),
                EntryKind::Symlink(target) => {
                    field(&mut h, b"l");
                    field(&mut h, target.as_os_str().as_encoded_bytes());
                }
                EntryKind::File => {
                    field(&mut h, b"f");
                    let Some(root_fd) = &root_fd else {
                        return Err(ContextError::NotFound {
                            path: cpath.display().to_string(),
                        });
                    };
                    let sum = file_sha256(ctx, root_fd, &cpath, entry, &mut cache)?;
                    field(&mut h, sum.as_bytes());
                }
            }
        }
    }
    if use_cache {
        cache.prune(ctx);
        cache.save()?;
    }
    Ok(Digest::of(&h.finalize()))
}

/// The owner a copied entry gets.
pub(crate) fn owner(ctx: &Context, entry: &Entry, opts: &CopyOptions) -> (u32, u32) {
    match (opts.chown, ctx.kind) {
        (Some(ids), _) => ids,
        (None, ContextKind::Rootfs) => (entry.uid, entry.gid),
        (None, _) => (0, 0),
    }
}

/// Length-prefixed, so no two field sequences hash the same bytes.
fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// The content sha256 of a context file, from the cache when its metadata
/// is unchanged.
fn file_sha256(
    ctx: &Context,
    root_fd: &std::os::fd::OwnedFd,
    rel: &Path,
    entry: &Entry,
    cache: &mut MetaCache,
) -> Result<String, ContextError> {
    let key = ctx.root.join(rel).to_str().map(str::to_owned);
    if let Some(hit) = key.as_ref().and_then(|k| cache.file.files.get(k)) {
        if hit.matches(entry) {
            return Ok(hit.sha256.clone());
        }
    }
    let mut file = ctx.open_file(root_fd, rel)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|e| ContextError::Unreadable {
            path: ctx.root.join(rel),
            cause: e,
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let sum = hex::encode(hasher.finalize());
    // Cache only what still looks as the walk saw it: a file changing while
    // it is read must not be remembered under its old metadata.
    let now = rustix::fs::fstat(&file).map_err(|e| ContextError::Unreadable {
        path: ctx.root.join(rel),
        cause: e.into(),
    })?;
    let ctime = ns(now.st_ctime, now.st_ctime_nsec as i64);
    let unchanged =
        now.st_size as u64 == entry.size && ctime == ns(entry.ctime_sec, entry.ctime_nsec);
    if let (Some(k), true, false) = (key, unchanged, is_racy(ctime)) {
        let (dev, ino, size, mtime_ns, ctime_ns) = Cached::key_of(entry);
        cache.file.files.insert(
            k,
            Cached {
                dev,
                ino,
                size,
                mtime_ns,
                ctime_ns,
                sha256: sum.clone(),
            },
        );
        cache.dirty = true;
    }
    Ok(sum)
}
