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
//!
//! So that a COPY reads each file once, the sums may also come from the
//! copy itself ([`KnownSums`], taken by `copy` while it wrote the files): a
//! [`Digester`] (the metadata cache, loaded once for a step) tells the
//! executor how much would have to be read to make the key first
//! ([`Digester::unread_bytes`]), and makes the key before or after the copy.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{Context, ContextError, ContextKind, Entry, EntryKind, Source};
use crate::build::copy::CopyOptions;
use crate::build::explain::{FileState, Files};
use crate::digest::{Digest, HashingReader};
use crate::progress::Meter;

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

/// A file's content sum taken while it was copied, with what fstat said
/// of the file after the last read: the sum is remembered in the metadata
/// cache only if the file still looked as the walk saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownSum {
    pub sha256: String,
    pub size_after: u64,
    pub ctime_ns_after: i64,
}

impl KnownSum {
    /// The sum of `file`, just read to its end, with its metadata now.
    pub fn after_reading(sha256: String, file: &std::fs::File) -> io::Result<KnownSum> {
        let now = rustix::fs::fstat(file)?;
        Ok(KnownSum {
            sha256,
            size_after: now.st_size as u64,
            ctime_ns_after: ns(now.st_ctime, now.st_ctime_nsec as i64),
        })
    }
}

/// Sums taken during a copy, by source (device, inode): hard links share
/// one.
pub type KnownSums = HashMap<(u64, u64), KnownSum>;

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
            .and_then(|p| fs_err::read(p).ok())
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
        if ctx.kind != ContextKind::Local {
            return;
        }
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

    /// Where a context file is remembered; only local contexts are: a root
    /// file system is a fresh mount each time, so it would never hit.
    fn key(ctx: &Context, rel: &Path) -> Option<String> {
        if ctx.kind != ContextKind::Local {
            return None;
        }
        ctx.root.join(rel).to_str().map(str::to_owned)
    }

    /// The remembered sum of a file whose metadata is unchanged.
    fn lookup(&self, ctx: &Context, rel: &Path, entry: &Entry) -> Option<&str> {
        let hit = self.file.files.get(&MetaCache::key(ctx, rel)?)?;
        hit.matches(entry).then_some(hit.sha256.as_str())
    }

    /// Remember a sum, but only of a file that still looked as the walk saw
    /// it after it was read (one changing meanwhile must not be remembered
    /// under its old metadata) and is not racy.
    fn remember(&mut self, ctx: &Context, rel: &Path, entry: &Entry, sum: &KnownSum) {
        let unchanged = sum.size_after == entry.size
            && sum.ctime_ns_after == ns(entry.ctime_sec, entry.ctime_nsec);
        let (Some(k), true, false) = (
            MetaCache::key(ctx, rel),
            unchanged,
            is_racy(sum.ctime_ns_after),
        ) else {
            return;
        };
        let (dev, ino, size, mtime_ns, ctime_ns) = Cached::key_of(entry);
        self.file.files.insert(
            k,
            Cached {
                dev,
                ino,
                size,
                mtime_ns,
                ctime_ns,
                sha256: sum.sha256.clone(),
            },
        );
        self.dirty = true;
    }

    fn save(&self) -> Result<(), ContextError> {
        let (Some(path), true) = (&self.path, self.dirty) else {
            return Ok(());
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        fs_err::create_dir_all(dir).map_err(ContextError::io("create", dir))?;
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

/// A digest of the selected sources for the build cache key, reading every
/// file whose sum the metadata cache lacks.
pub fn digest_sources(
    ctx: &Context,
    sources: &[Source],
    opts: &CopyOptions,
    cache_dir: Option<&Path>,
) -> Result<Digest, ContextError> {
    let mut digester = Digester::load(cache_dir);
    let digest = digester.digest(ctx, sources, opts, &KnownSums::new())?;
    digester.save()?;
    Ok(digest)
}

/// The metadata cache, read once for a step's digests and written back by
/// [`Digester::save`].
pub struct Digester {
    cache: MetaCache,
    /// What each file was, for `--explain-cache`'s record.
    seen: Files,
}

impl Digester {
    pub fn load(cache_dir: Option<&Path>) -> Digester {
        Digester {
            cache: MetaCache::load(cache_dir),
            seen: Files::default(),
        }
    }

    /// The digest of `sources`, with the sums a copy took: only files
    /// neither the metadata cache nor `known` has are read. Stable sums are
    /// remembered.
    pub fn digest(
        &mut self,
        ctx: &Context,
        sources: &[Source],
        opts: &CopyOptions,
        known: &KnownSums,
    ) -> Result<Digest, ContextError> {
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
            for (rel, cpath) in items(source) {
                let entry = entry_of(ctx, &cpath)?;
                field(&mut h, rel.as_os_str().as_encoded_bytes());
                let (uid, gid) = owner(ctx, entry, opts);
                let mode = match (&entry.kind, opts.chmod) {
                    (EntryKind::Symlink(_), _) => entry.mode,
                    (_, Some(m)) => m,
                    (_, None) => entry.mode,
                };
                field(&mut h, format!("{mode:o} {uid}:{gid}").as_bytes());
                let owner = format!("{uid}:{gid}");
                let content = match &entry.kind {
                    EntryKind::Dir => {
                        field(&mut h, b"d");
                        "dir".to_string()
                    }
                    EntryKind::Symlink(target) => {
                        field(&mut h, b"l");
                        field(&mut h, target.as_os_str().as_encoded_bytes());
                        format!("-> {}", target.display())
                    }
                    EntryKind::File => {
                        field(&mut h, b"f");
                        let Some(root_fd) = &root_fd else {
                            return Err(ContextError::NotFound {
                                path: cpath.display().to_string(),
                            });
                        };
                        let sum = match known.get(&(entry.dev, entry.ino)) {
                            Some(k) => {
                                self.cache.remember(ctx, &cpath, entry, k);
                                k.sha256.clone()
                            }
                            None => file_sha256(
                                ctx,
                                root_fd,
                                &cpath,
                                entry,
                                &mut self.cache,
                                &opts.meter,
                            )?,
                        };
                        field(&mut h, sum.as_bytes());
                        sum
                    }
                };
                let state = FileState {
                    content,
                    mode,
                    owner,
                };
                self.seen.add(&cpath, state);
            }
        }
        self.cache.prune(ctx);
        Ok(Digest::of(&h.finalize()))
    }

    /// Bytes of file content [`Digester::digest`] would have to read (what
    /// the metadata cache does not know), and the bytes of all selected
    /// files.
    pub fn unread_bytes(&self, ctx: &Context, sources: &[Source]) -> (u64, u64) {
        let (mut unread, mut total) = (0u64, 0u64);
        for source in sources {
            for (_, cpath) in items(source) {
                let Some(entry) = ctx.entry(&cpath) else {
                    continue;
                };
                if entry.kind != EntryKind::File {
                    continue;
                }
                total = total.saturating_add(entry.size);
                if self.cache.lookup(ctx, &cpath, entry).is_none() {
                    unread = unread.saturating_add(entry.size);
                }
            }
        }
        (unread, total)
    }

    /// What the files digested so far were (and forgets them).
    pub fn take_seen(&mut self) -> Files {
        std::mem::take(&mut self.seen)
    }

    /// Writes the metadata cache back if it changed.
    pub fn save(&self) -> Result<(), ContextError> {
        self.cache.save()
    }
}

/// A source itself, then each entry under it: (path relative to the
/// source, path in the context).
fn items(source: &Source) -> impl Iterator<Item = (&Path, PathBuf)> {
    std::iter::once(Path::new(""))
        .chain(source.entries.iter().map(PathBuf::as_path))
        .map(|rel| (rel, source.context_path(rel)))
}

fn entry_of<'c>(ctx: &'c Context, cpath: &Path) -> Result<&'c Entry, ContextError> {
    ctx.entry(cpath).ok_or_else(|| ContextError::NotFound {
        path: cpath.display().to_string(),
    })
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
    meter: &Meter,
) -> Result<String, ContextError> {
    if let Some(hit) = cache.lookup(ctx, rel, entry) {
        return Ok(hit.to_string());
    }
    let unreadable = |cause| ContextError::Unreadable {
        path: ctx.root.join(rel),
        cause,
    };
    let mut file = ctx.open_file(root_fd, rel)?;
    let mut reader = HashingReader::new(meter.reader(&mut file));
    io::copy(&mut reader, &mut io::sink()).map_err(unreadable)?;
    let (digest, _) = reader.finish();
    let sum = KnownSum::after_reading(digest.hex().to_string(), &file).map_err(unreadable)?;
    cache.remember(ctx, rel, entry, &sum);
    Ok(sum.sha256)
}
