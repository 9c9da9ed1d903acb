//! COPY and ADD: writing selected context sources into a container's root
//! file system (the merged overlay view), with Docker's semantics.
//!
//! - A directory source copies its content, not itself; a file lands inside
//!   the destination when that is a directory (named with a trailing `/`,
//!   given several sources, or existing), else at the destination path.
//! - Missing directories on the way are created with mode 0755, owned by
//!   the `--chown` owner (root without one), as Docker's `MkdirAll` does.
//! - Symlinks are copied as symlinks, hard links between the files of one
//!   source stay hard links (never across two sources, as BuildKit copies
//!   each on its own); modes, mtimes and files' xattrs (capabilities) are kept. Owners are 0:0 from a local
//!   context and kept from a root file system (`COPY --from`), unless
//!   `--chown`; `--chmod` replaces the mode of files and directories.
//! - `--parents` keeps each source's context-relative path under the
//!   destination (from a `/./` pivot on, if the source has one). `--link` changes nothing here: how the layer is made is
//!   the executor's business.
//! - As BuildKit, a file or symlink never replaces a directory of the image
//!   (`cannot replace to directory`), and a directory is never copied
//!   through a symlink or onto a file below the destination (`cannot copy
//!   to non-directory`); the destination itself is followed when it is a
//!   symlink, and a file or symlink replaces a symlink.
//! - The destination of a directory source is made like any missing
//!   directory (0755, the `--chown` owner) or, if it exists, left as it is;
//!   the directories inside a copied tree get their source's metadata.
//!
//! The root file system belongs to an untrusted image: all writes go
//! through [`tree`], which never resolves a path outside it.

mod archive;
mod tree;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

use super::context::digest::{KnownSum, KnownSums};
use super::context::{Context, ContextError, Entry, EntryKind, Source};
use crate::digest::HashingReader;
use crate::sandbox::user::UserError;
use rustix::fs::FileType;
use strata_parser::instructions::UserGroup;
use tree::{Meta, Tree};

pub use archive::add_sources;

/// The flags of one COPY/ADD, resolved (a `--chown` user name is looked up
/// in the image's /etc/passwd by the caller).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyOptions {
    pub chown: Option<(u32, u32)>,
    /// Permission bits (`--chmod=755` is 0o755).
    pub chmod: Option<u32>,
    pub parents: bool,
    pub link: bool,
    /// Take each copied file's sha256 while reading it (into
    /// [`CopyStats::sums`]), so the cache key needs no second read.
    pub hash_contents: bool,
    /// Where the bytes of copied files are counted (a progress bar).
    pub meter: crate::progress::Meter,
}

/// What a copy wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Entries an ADDed archive held that cannot be made here (devices,
    /// fifos), skipped.
    pub skipped: Vec<PathBuf>,
    /// Extended attributes of copied files the kernel refused here
    /// (`trusted.*` in a user namespace), skipped: (container path, name).
    pub skipped_xattrs: Vec<(PathBuf, String)>,
    /// With [`CopyOptions::hash_contents`], the sums of the files copied
    /// (not of ADDed archives, which are unpacked rather than copied).
    pub sums: KnownSums,
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{op} {path}: {cause}")]
    Io {
        op: &'static str,
        path: PathBuf,
        cause: io::Error,
    },
    #[error("chown {path} to {uid}:{gid}: {cause}")]
    Chown {
        path: PathBuf,
        uid: u32,
        gid: u32,
        cause: io::Error,
    },
    /// A file or symlink of the source where the image has a directory
    /// (BuildKit's wording).
    #[error("cannot replace to directory {path} with file")]
    ReplaceDir { path: PathBuf },
    /// A directory of the source where the image has a file or a symlink,
    /// below the destination (BuildKit's wording).
    #[error("cannot copy to non-directory: {path}")]
    NotADirectory { path: PathBuf },
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error("archive {archive}: entry {entry:?} is unsafe: {reason}")]
    UnsafeEntry {
        archive: PathBuf,
        entry: String,
        reason: &'static str,
    },
    #[error("reading archive {archive} at entry {entry:?}: {cause}")]
    Archive {
        archive: PathBuf,
        entry: String,
        cause: io::Error,
    },
}

impl CopyError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> CopyError {
        let path = path.into();
        move |cause| CopyError::Io { op, path, cause }
    }
}

/// `--chown=user[:group]` as ids, BuildKit's way (its file op's
/// `readUser`, checked with docker.io 20.10): a number is that id and an
/// empty part is 0 (`:` is 0:0, `1234:` is 1234:0); a user alone also gives
/// the gid, its own number or its /etc/passwd group. A name is looked up in
/// the image's files (`passwd`, `groups`: their text, empty when missing):
/// a user no entry has is uid 0 (and gid 0), a group no entry has leaves
/// the user's gid (`--chown=nosuchuser` is 0:0, `1234:nosuchgroup`
/// 1234:1234); only a file that is missing (or empty) fails the lookup, as
/// BuildKit's open does. An empty spec (`--chown=$U` with `U` unset) is no
/// `--chown` at all: `None`, owners kept.
pub(crate) fn chown_ids(
    ug: &UserGroup,
    passwd: &str,
    groups: &str,
) -> Result<Option<(u32, u32)>, UserError> {
    if ug.user.is_empty() && ug.group.is_none() {
        return Ok(None);
    }
    let (uid, user_gid) = match ug.user.parse::<u32>() {
        _ if ug.user.is_empty() => (0, 0),
        Ok(n) => (n, n),
        Err(_) if passwd.is_empty() => return Err(UserError::NoUser(ug.user.clone())),
        Err(_) => account_entry(passwd, &ug.user)
            .map(|f| (id_field(&f, 2), id_field(&f, 3)))
            .unwrap_or((0, 0)),
    };
    let gid = match ug.group.as_deref() {
        None => user_gid,
        Some("") => 0,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) if groups.is_empty() => return Err(UserError::NoGroup(g.to_string())),
            Err(_) => account_entry(groups, g).map_or(user_gid, |f| id_field(&f, 2)),
        },
    };
    Ok(Some((uid, gid)))
}

/// The fields of the first line of an /etc/passwd or /etc/group text whose
/// name is `name`.
fn account_entry<'a>(text: &'a str, name: &str) -> Option<Vec<&'a str>> {
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 3 && f[0] == name)
}

/// A numeric field of an account entry; a missing or bad one reads as 0, as
/// Go's `user.ParsePasswdFile` leaves it.
fn id_field(fields: &[&str], i: usize) -> u32 {
    fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Makes the directory `dir` (a container path, cleaned first) in `rootfs`
/// as Docker's `MkdirAll` does for a WORKDIR: missing components 0755,
/// owned by `owner`, symlinks on the way followed inside the root; what
/// exists is left as it is.
pub fn make_dir(rootfs: &Path, dir: &str, owner: (u32, u32)) -> Result<(), CopyError> {
    let mut tree = Tree::open(rootfs)?;
    tree.open_dir(&clean_dest(dir), owner)?;
    tree.finish()
}

/// Is `dest` (as written in the Dockerfile) a directory by its spelling?
pub(crate) fn names_dir(dest: &str) -> bool {
    dest.ends_with('/') || dest.ends_with("/.") || dest == "." || dest.is_empty()
}

/// `dest` as a clean absolute container path.
fn clean_dest(dest: &str) -> PathBuf {
    PathBuf::from(super::dockerignore::clean(&format!("/{dest}")))
}

/// Copy `sources` to `dest` inside `rootfs`.
pub fn copy_sources(
    ctx: &Context,
    sources: &[Source],
    rootfs: &Path,
    dest: &str,
    opts: &CopyOptions,
) -> Result<CopyStats, CopyError> {
    copy_or_add(ctx, sources, rootfs, dest, opts, false)
}

/// COPY, or with `add` ADD (local archives unpacked, the rest copied).
fn copy_or_add(
    ctx: &Context,
    sources: &[Source],
    rootfs: &Path,
    dest: &str,
    opts: &CopyOptions,
    add: bool,
) -> Result<CopyStats, CopyError> {
    let mut copier = Copier::new(ctx, rootfs, opts)?;
    let dest_is_dir = names_dir(dest) || sources.len() > 1 || opts.parents;
    let dest = clean_dest(dest);
    for source in sources {
        if add && !source.is_dir && archive::try_extract(&mut copier, source, &dest)? {
            continue;
        }
        copier.source(source, &dest, dest_is_dir)?;
    }
    copier.finish()
}

/// One copy in progress.
pub(crate) struct Copier<'a> {
    ctx: &'a Context,
    opts: &'a CopyOptions,
    tree: Tree,
    src_root: Option<std::os::fd::OwnedFd>,
    /// Source (dev, inode) of a multiply linked file -> where it was written.
    links: HashMap<(u64, u64), PathBuf>,
    stats: CopyStats,
}

impl<'a> Copier<'a> {
    pub(crate) fn new(
        ctx: &'a Context,
        rootfs: &Path,
        opts: &'a CopyOptions,
    ) -> Result<Copier<'a>, CopyError> {
        let src_root = match ctx.kind() {
            super::context::ContextKind::Empty => None,
            _ => Some(ctx.open_root()?),
        };
        Ok(Copier {
            ctx,
            opts,
            tree: Tree::open(rootfs)?,
            src_root,
            links: HashMap::new(),
            stats: CopyStats::default(),
        })
    }

    /// Owner for created directories.
    fn created_owner(&self) -> (u32, u32) {
        self.opts.chown.unwrap_or((0, 0))
    }

    fn meta(&self, entry: &Entry) -> Meta {
        let (uid, gid) = super::context::digest::owner(self.ctx, entry, self.opts);
        Meta {
            uid,
            gid,
            mode: self.opts.chmod.unwrap_or(entry.mode),
            mtime_sec: entry.mtime_sec,
            mtime_nsec: entry.mtime_nsec,
        }
    }

    fn entry(&self, cpath: &Path) -> Result<&'a Entry, CopyError> {
        self.ctx.entry(cpath).ok_or_else(|| {
            CopyError::Context(ContextError::NotFound {
                path: cpath.display().to_string(),
            })
        })
    }

    pub(crate) fn source(
        &mut self,
        source: &Source,
        dest: &Path,
        dest_is_dir: bool,
    ) -> Result<(), CopyError> {
        // BuildKit copies each source (and each wildcard match) on its own:
        // hard links are kept within one, never made across two.
        self.links.clear();
        if source.is_dir {
            let target = if self.opts.parents {
                dest.join(&source.parents_path)
            } else {
                dest.to_path_buf()
            };
            return self.dir(source, &target);
        }
        let name = source.path.file_name().unwrap_or(OsStr::new(""));
        let at = if self.opts.parents {
            dest.join(&source.parents_path)
        } else if dest_is_dir || self.tree.is_dir(dest) {
            dest.join(name)
        } else {
            dest.to_path_buf()
        };
        let entry = self.entry(&source.target)?;
        self.put(&source.target, entry, &at)
    }

    /// Copy a directory source's content into `target`.
    fn dir(&mut self, source: &Source, target: &Path) -> Result<(), CopyError> {
        // Only a directory source's content is copied (BuildKit's
        // CopyDirContentsOnly): the destination is made like any missing
        // directory, or left as it is.
        if !self.tree.is_dir(target) {
            let owner = self.created_owner();
            self.tree.open_dir(target, owner)?;
            self.stats.dirs += 1;
        }
        for rel in &source.entries {
            let cpath = source.context_path(rel);
            let entry = self.entry(&cpath)?;
            self.put(&cpath, entry, &target.join(rel))?;
        }
        Ok(())
    }

    /// Write one context entry at container path `at`.
    fn put(&mut self, cpath: &Path, entry: &Entry, at: &Path) -> Result<(), CopyError> {
        let (Some(parent), Some(name)) = (at.parent(), at.file_name()) else {
            // Only a directory can be "/"; its content is copied by `dir`.
            return Ok(());
        };
        let owner = self.created_owner();
        let pfd = self.tree.open_dir(parent, owner)?;
        let meta = self.meta(entry);
        // What is there now, not followed: BuildKit never replaces a
        // directory with a file and never copies a directory through a
        // symlink below the destination (the destination itself is
        // followed, in `source` and `dir`).
        match (tree::existing(&pfd, name), &entry.kind) {
            (Some(FileType::Directory), EntryKind::Dir) | (None, _) => {}
            (Some(_), EntryKind::Dir) => return Err(CopyError::NotADirectory { path: at.into() }),
            (Some(FileType::Directory), _) => {
                return Err(CopyError::ReplaceDir { path: at.into() })
            }
            (Some(_), _) => {}
        }
        match &entry.kind {
            EntryKind::Dir => {
                self.tree.put_dir(&pfd, name, at, Some(meta))?;
                self.stats.dirs += 1;
            }
            EntryKind::Symlink(target) => {
                self.tree.put_symlink(&pfd, name, at, target, meta)?;
                self.stats.symlinks += 1;
            }
            EntryKind::File => {
                let key = (entry.dev, entry.ino);
                if entry.nlink > 1 {
                    if let Some(first) = self.links.get(&key) {
                        let first = first.clone();
                        self.tree.put_hardlink(&pfd, name, at, &first)?;
                        self.stats.hardlinks += 1;
                        return Ok(());
                    }
                }
                let Some(src_root) = &self.src_root else {
                    return Err(CopyError::Context(ContextError::NotFound {
                        path: cpath.display().to_string(),
                    }));
                };
                let mut file = self.ctx.open_file(src_root, cpath)?;
                let full = self.ctx.root().join(cpath);
                let xattrs = crate::layer::diff::read_xattrs(&full).map_err(|e| CopyError::Io {
                    op: "read xattrs of",
                    path: full.clone(),
                    cause: match e {
                        crate::layer::LayerError::Io { source, .. } => source,
                        other => io::Error::other(other.to_string()),
                    },
                })?;
                let mut src = self.opts.meter.reader(&mut file);
                let n = if self.opts.hash_contents {
                    let mut reader = HashingReader::new(&mut src);
                    let n = self
                        .tree
                        .put_file(&pfd, name, at, &mut reader, meta, &xattrs)?;
                    let (digest, _) = reader.finish();
                    let sum = KnownSum::after_reading(digest.hex().to_string(), &file)
                        .map_err(CopyError::io("stat", &full))?;
                    self.stats.sums.insert(key, sum);
                    n
                } else {
                    self.tree
                        .put_file(&pfd, name, at, &mut src, meta, &xattrs)?
                };
                self.stats.files += 1;
                self.stats.bytes += n;
                if entry.nlink > 1 {
                    self.links.insert(key, at.to_path_buf());
                }
            }
        }
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Result<CopyStats, CopyError> {
        self.stats.skipped_xattrs = std::mem::take(&mut self.tree.skipped_xattrs);
        self.tree.finish()?;
        Ok(self.stats)
    }
}

#[cfg(test)]
mod tests;
