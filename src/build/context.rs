//! The build context: the directory `strata build` was given (or another
//! stage's root file system for `COPY --from`), walked once, and the choice
//! of what one COPY/ADD takes from it.
//!
//! [`Context::open`] reads the ignore file (`<Dockerfile>.dockerignore`
//! beside the Dockerfile, else `<dir>/.dockerignore`; not through a symlink
//! out of the context, see [`read_beside`]) and walks the tree
//! once, in sorted order, never following a symlink. Ignored paths are
//! dropped as Docker drops them before sending a context: they do not
//! exist for COPY. A directory that is itself ignored but holds a path an
//! exception (`!`) brings back stays, as the parent of that path. Fifos,
//! sockets and devices are skipped with a warning; a directory that cannot
//! be listed is remembered and is an error only if a COPY selects it.
//!
//! [`Context::select`] turns COPY sources into [`Source`]s: wildcards as Go's
//! `filepath.Match` per path component (`**` is `*`, except under
//! `--parents`, where it is any number of directories; a wildcard matching
//! nothing is no error), a symlink named as a source (or
//! met on the way to one) resolved inside the context root as BuildKit does,
//! `..` out of the context refused, `--exclude` patterns applied.
//!
//! Ownership: files from the local context are copied as 0:0 (Docker's
//! client resets owners when it sends a context); files from a root file
//! system keep their owners. `--chown` overrides both.
//!
//! [`digest_sources`] (in [`digest`]) is the cache-key input of a COPY.

mod beside;
pub(crate) mod digest;
mod walk;

use std::collections::BTreeMap;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::dockerignore::{self, Glob, IgnoreError, Matcher};

pub use beside::read_beside;
use walk::Walker;

/// Bytes of context files read by this process (a build's report).
static BYTES_READ: AtomicU64 = AtomicU64::new(0);

/// Bytes of context files this process has read so far.
pub fn bytes_read() -> u64 {
    BYTES_READ.load(Ordering::Relaxed)
}

pub use digest::{digest_sources, Digester};

/// Name of the ignore file at the context root.
const IGNORE_FILE: &str = ".dockerignore";
/// Symlinks followed while resolving one source path before giving up
/// (Linux's own limit for a path lookup).
const MAX_SYMLINKS: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("{op} {path}: {cause}")]
    Io {
        op: &'static str,
        path: PathBuf,
        cause: io::Error,
    },
    #[error("unable to prepare context: {path} is not a directory")]
    NotADirectory { path: PathBuf },
    #[error("reading {path}: {cause}")]
    IgnoreFile { path: PathBuf, cause: IgnoreError },
    /// A plain source that is not in the context (Docker's wording).
    #[error("file not found in build context or excluded by .dockerignore: stat {path}: file does not exist")]
    NotFound { path: String },
    #[error("forbidden path outside the build context: {path}")]
    OutsideContext { path: String },
    #[error("bad wildcard in COPY source {pattern:?}: {reason}")]
    BadGlob {
        pattern: String,
        reason: &'static str,
    },
    #[error("bad --exclude pattern: {cause}")]
    BadExclude { cause: IgnoreError },
    #[error("too many levels of symbolic links resolving {path} in the build context")]
    SymlinkLoop { path: String },
    #[error("{path} is a symlink to {target}, outside the build context: refused")]
    LinkLeaves { path: PathBuf, target: PathBuf },
    #[error("cannot read {path} in the build context: {cause}")]
    Unreadable { path: PathBuf, cause: io::Error },
    #[error("{path} changed while reading the build context: expected {expected}, found {found}")]
    Changed {
        path: PathBuf,
        expected: &'static str,
        found: &'static str,
    },
}

impl ContextError {
    fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> ContextError {
        let path = path.into();
        move |cause| ContextError::Io { op, path, cause }
    }
}

/// What a context entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink(PathBuf),
}

/// One path of the context, as `lstat` saw it during the walk.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: EntryKind,
    /// Permission bits with setuid/setgid/sticky (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime_sec: i64,
    pub mtime_nsec: i64,
    pub ctime_sec: i64,
    pub ctime_nsec: i64,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    /// A directory that could not be listed: why.
    unreadable: Option<String>,
}

impl Entry {
    fn from_meta(kind: EntryKind, m: &std::fs::Metadata) -> Entry {
        Entry {
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            size: m.size(),
            mtime_sec: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
            ctime_sec: m.ctime(),
            ctime_nsec: m.ctime_nsec(),
            dev: m.dev(),
            ino: m.ino(),
            nlink: m.nlink(),
            unreadable: None,
        }
    }

    pub fn is_dir(&self) -> bool {
        self.kind == EntryKind::Dir
    }
}

/// Where a context's files come from; decides owners and ignore rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextKind {
    /// The directory given to `strata build`.
    Local,
    /// A root file system used by `COPY --from`.
    Rootfs,
    /// No context (Dockerfile from stdin).
    Empty,
}

/// What a `**` path component of a COPY source matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Globstar {
    /// As `*`, within one component: a plain COPY/ADD source goes through
    /// Go's `filepath.Match` in BuildKit.
    OneComponent,
    /// None or any number of directories: `COPY --parents` sources become
    /// BuildKit's include patterns (as `.dockerignore` reads them).
    AnyDepth,
}

/// A build context, walked once.
#[derive(Debug)]
pub struct Context {
    root: PathBuf,
    kind: ContextKind,
    /// Relative path (the root is the empty path) -> entry, in component
    /// order, so a directory's content follows it contiguously.
    entries: BTreeMap<PathBuf, Entry>,
    warnings: Vec<String>,
}

/// What one COPY source matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The path as matched, relative to the context root (empty for the
    /// root itself): names the copy at the destination.
    pub path: PathBuf,
    /// What `--parents` keeps of `path`: all of it, or the part after a
    /// `/./` pivot in the source (`COPY --parents a/./b/c /d/` makes
    /// `/d/b/c`).
    pub parents_path: PathBuf,
    /// Where the content is: `path` with a symlink at the source resolved
    /// inside the context root; equal to `path` otherwise.
    pub target: PathBuf,
    pub is_dir: bool,
    /// For a directory, everything under it after ignores and excludes,
    /// relative to `target`, sorted so a directory precedes its content.
    /// Empty for a file.
    pub entries: Vec<PathBuf>,
}

impl Source {
    /// The context-relative path of one of `entries` (or of the source).
    pub fn context_path(&self, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() {
            self.target.clone()
        } else {
            self.target.join(rel)
        }
    }
}

impl Context {
    /// Open a context directory: read its ignore file and walk it once.
    pub fn open(dir: &Path, dockerfile: Option<&Path>) -> Result<Context, ContextError> {
        Context::open_ignoring(dir, dockerfile, None)
    }

    /// As [`Context::open`], with `--ignorefile`'s rules (when given)
    /// instead of the context's own ignore file.
    pub fn open_ignoring(
        dir: &Path,
        dockerfile: Option<&Path>,
        ignorefile: Option<&Path>,
    ) -> Result<Context, ContextError> {
        let root = fs_err::canonicalize(dir).map_err(ContextError::io("open context", dir))?;
        let ignore = read_ignore_file(&root, dockerfile, ignorefile)?;
        Context::walk(root, ContextKind::Local, ignore.as_ref())
    }

    /// A context with nothing in it (`strata build -`).
    pub fn empty() -> Context {
        Context {
            root: PathBuf::new(),
            kind: ContextKind::Empty,
            entries: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }

    /// A root file system used as a `COPY --from` source: no ignore file.
    pub fn rootfs(dir: &Path) -> Result<Context, ContextError> {
        let root = fs_err::canonicalize(dir).map_err(ContextError::io("open", dir))?;
        Context::walk(root, ContextKind::Rootfs, None)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn kind(&self) -> ContextKind {
        self.kind
    }

    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The entry at a context-relative path (the empty path is the root).
    pub fn entry(&self, rel: &Path) -> Option<&Entry> {
        self.entries.get(rel)
    }

    /// Every entry, in walk order.
    pub fn entries(&self) -> impl Iterator<Item = (&Path, &Entry)> {
        self.entries.iter().map(|(p, e)| (p.as_path(), e))
    }

    fn walk(
        root: PathBuf,
        kind: ContextKind,
        ignore: Option<&Matcher>,
    ) -> Result<Context, ContextError> {
        let meta = fs_err::symlink_metadata(&root).map_err(ContextError::io("stat", &root))?;
        if !meta.is_dir() {
            return Err(ContextError::NotADirectory { path: root });
        }
        let mut ctx = Context {
            root,
            kind,
            entries: BTreeMap::new(),
            warnings: Vec::new(),
        };
        let root_entry = Entry::from_meta(EntryKind::Dir, &meta);
        ctx.entries.insert(PathBuf::new(), root_entry);
        // The root must be listable now; a directory below only matters
        // if a COPY selects it.
        if let Err(cause) = fs_err::read_dir(&ctx.root) {
            return Err(ContextError::Unreadable {
                path: ctx.root.clone(),
                cause,
            });
        }
        let walker = Walker {
            ignore: ignore.filter(|m| !m.is_empty()),
        };
        walker.dir(&mut ctx, Path::new(""))?;
        Ok(ctx)
    }

    /// Open the context root for reading files below it.
    pub(crate) fn open_root(&self) -> Result<OwnedFd, ContextError> {
        rustix::fs::open(
            &self.root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ContextError::io("open context", &self.root)(e.into()))
    }

    /// Open a regular file of the context for reading. The path is the
    /// walk's own (no symlink in it), so any symlink met now means the tree
    /// changed under us: refuse it rather than follow it.
    pub(crate) fn open_file(
        &self,
        root: &OwnedFd,
        rel: &Path,
    ) -> Result<std::fs::File, ContextError> {
        let fd = rustix::fs::openat2(
            root,
            rel,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|e| ContextError::Unreadable {
            path: self.root.join(rel),
            cause: e.into(),
        })?;
        let st = rustix::fs::fstat(&fd).map_err(|e| ContextError::Unreadable {
            path: self.root.join(rel),
            cause: e.into(),
        })?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(ContextError::Changed {
                path: self.root.join(rel),
                expected: "a regular file",
                found: "another file type",
            });
        }
        // Whoever opens a context file reads it whole (to hash or copy it).
        BYTES_READ.fetch_add(u64::try_from(st.st_size).unwrap_or(0), Ordering::Relaxed);
        Ok(std::fs::File::from(fd))
    }

    /// The sources of one COPY/ADD.
    pub fn select(
        &self,
        sources: &[String],
        excludes: &[String],
    ) -> Result<Vec<Source>, ContextError> {
        self.pick(sources, excludes, Globstar::OneComponent)
    }

    /// The sources of one `COPY --parents`: as [`Context::select`], but a
    /// `**` component is any number of directories (BuildKit hands these
    /// sources to its include patterns, not to `filepath.Match`).
    pub fn select_parents(
        &self,
        sources: &[String],
        excludes: &[String],
    ) -> Result<Vec<Source>, ContextError> {
        self.pick(sources, excludes, Globstar::AnyDepth)
    }

    fn pick(
        &self,
        sources: &[String],
        excludes: &[String],
        globstar: Globstar,
    ) -> Result<Vec<Source>, ContextError> {
        let excludes =
            Matcher::new(excludes).map_err(|cause| ContextError::BadExclude { cause })?;
        let mut out = Vec::new();
        for src in sources {
            let rel = self.clean_source(src)?;
            // Components before a `/./` pivot are dropped by --parents.
            let pivot_depth = src
                .trim_start_matches('/')
                .find("/./")
                .map(|at| {
                    let before = dockerignore::clean(&src.trim_start_matches('/')[..at]);
                    Path::new(&before)
                        .components()
                        .filter(|c| matches!(c, Component::Normal(_)))
                        .count()
                })
                .unwrap_or(0);
            let matched: Vec<PathBuf> = if dockerignore::has_meta(&rel) {
                let mut found = self.glob(&rel, globstar)?;
                // A name that only looks like a pattern (`file[1].txt`)
                // and exists as written is taken as written.
                if found.is_empty() && self.resolve(Path::new(&rel), src)?.is_some() {
                    found.push(PathBuf::from(&rel));
                }
                // A wildcard that matches nothing is no error: BuildKit
                // copies what the other sources matched (or nothing).
                found
            } else {
                vec![PathBuf::from(if rel == "." { "" } else { rel.as_str() })]
            };
            for path in matched {
                let target = match self.resolve(&path, src)? {
                    Some(t) => t,
                    None => {
                        return Err(ContextError::NotFound {
                            path: src.trim_start_matches('/').to_string(),
                        })
                    }
                };
                if !excludes.is_empty() && excluded_top(&excludes, &path) {
                    continue;
                }
                let parents_path: PathBuf = path.iter().skip(pivot_depth).collect();
                let mut source = self.source(path, target, &excludes)?;
                source.parents_path = parents_path;
                out.push(source);
            }
        }
        Ok(out)
    }

    /// A source string as a clean context-relative path; `..` out of the
    /// context is refused.
    fn clean_source(&self, src: &str) -> Result<String, ContextError> {
        let cleaned = dockerignore::clean(src.trim_start_matches('/'));
        if cleaned == ".." || cleaned.starts_with("../") {
            return Err(ContextError::OutsideContext {
                path: src.to_string(),
            });
        }
        Ok(cleaned)
    }

    /// Paths matching a wildcard source, component by component, sorted.
    /// What a `**` component is depends on `globstar` (see [`Globstar`]).
    /// Directories on the way are reached through symlinks as a plain
    /// source would be (`/lib/*.so` where `/lib -> usr/lib`); the paths
    /// returned are spelled as matched.
    fn glob(&self, pattern: &str, globstar: Globstar) -> Result<Vec<PathBuf>, ContextError> {
        let mut named: Vec<PathBuf> = vec![PathBuf::new()];
        let comps: Vec<&str> = pattern.split('/').collect();
        for (i, &comp) in comps.iter().enumerate() {
            if comp == "**" && globstar == Globstar::AnyDepth {
                named = self.any_depth(&named, pattern, i + 1 == comps.len())?;
                continue;
            }
            let mut next = Vec::new();
            if !dockerignore::has_meta(comp) {
                next.extend(named.iter().map(|n| n.join(comp)));
                named = next;
                continue;
            }
            let glob = Glob::new(comp).map_err(|reason| ContextError::BadGlob {
                pattern: pattern.to_string(),
                reason,
            })?;
            for n in &named {
                let Some(dir) = self.resolve(n, pattern)? else {
                    continue;
                };
                for child in self.children(&dir) {
                    let Some(name) = child.file_name() else {
                        continue;
                    };
                    if name.to_str().is_some_and(|c| glob.matches(c)) {
                        next.push(n.join(name));
                    }
                }
            }
            named = next;
        }
        // A literal component after a wildcard may name nothing.
        let mut out = Vec::new();
        for n in named {
            if self.resolve(&n, pattern)?.is_some() {
                out.push(n);
            }
        }
        // `**` can reach one path along several ways.
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// What a `**` component matches below each of `named`: none or any
    /// number of directories; when it ends the pattern, everything below.
    fn any_depth(
        &self,
        named: &[PathBuf],
        pattern: &str,
        last: bool,
    ) -> Result<Vec<PathBuf>, ContextError> {
        let mut next = Vec::new();
        for n in named {
            let Some(dir) = self.resolve(n, pattern)? else {
                continue;
            };
            next.push(n.clone());
            let below = self
                .entries
                .range(dir.clone()..)
                .take_while(|(p, _)| p.starts_with(&dir))
                .filter(|(p, e)| **p != dir && (last || e.kind == EntryKind::Dir));
            for (p, _) in below {
                if let Ok(rel) = p.strip_prefix(&dir) {
                    next.push(n.join(rel));
                }
            }
        }
        Ok(next)
    }

    /// The entries directly inside the directory `dir`, in order.
    fn children<'a>(&'a self, dir: &'a Path) -> impl Iterator<Item = &'a PathBuf> + 'a {
        self.entries
            .range(dir.to_path_buf()..)
            .take_while(move |(p, _)| p.starts_with(dir))
            .map(|(p, _)| p)
            .filter(move |p| p.parent() == Some(dir))
    }

    /// Resolve `path` inside the context, following symlinks (the last
    /// component too) as if the root were `/`. `None` if it does not exist.
    fn resolve(&self, path: &Path, shown: &str) -> Result<Option<PathBuf>, ContextError> {
        let mut pending: Vec<PathBuf> = path.iter().rev().map(PathBuf::from).collect();
        let mut done = PathBuf::new();
        let mut links = 0;
        while let Some(comp) = pending.pop() {
            let comp = comp.as_path();
            if comp == Path::new("..") {
                done.pop();
                continue;
            }
            if comp == Path::new(".") || comp.as_os_str().is_empty() {
                continue;
            }
            let next = done.join(comp);
            let Some(entry) = self.entries.get(&next) else {
                return Ok(None);
            };
            match &entry.kind {
                EntryKind::Symlink(target) => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(ContextError::SymlinkLoop {
                            path: shown.to_string(),
                        });
                    }
                    if target.is_absolute() {
                        done = PathBuf::new();
                    }
                    for c in target.components().rev() {
                        match c {
                            Component::Normal(n) => pending.push(PathBuf::from(n)),
                            Component::ParentDir => pending.push(PathBuf::from("..")),
                            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
                        }
                    }
                }
                _ => done = next,
            }
        }
        Ok(Some(done))
    }

    /// Build the [`Source`] for one matched path.
    fn source(
        &self,
        path: PathBuf,
        target: PathBuf,
        excludes: &Matcher,
    ) -> Result<Source, ContextError> {
        let Some(entry) = self.entries.get(&target) else {
            return Err(ContextError::NotFound {
                path: path.display().to_string(),
            });
        };
        self.check_readable(&target, entry)?;
        if !entry.is_dir() {
            return Ok(Source {
                parents_path: path.clone(),
                path,
                target,
                is_dir: false,
                entries: Vec::new(),
            });
        }
        let mut entries = Vec::new();
        for (p, e) in self.entries.range(target.clone()..) {
            let Ok(rel) = p.strip_prefix(&target) else {
                break;
            };
            if rel.as_os_str().is_empty() {
                continue;
            }
            if !excludes.is_empty() && excludes.is_excluded(&rel.to_string_lossy()) {
                continue;
            }
            self.check_readable(p, e)?;
            entries.push(rel.to_path_buf());
        }
        Ok(Source {
            parents_path: path.clone(),
            path,
            target,
            is_dir: true,
            entries,
        })
    }

    fn check_readable(&self, rel: &Path, entry: &Entry) -> Result<(), ContextError> {
        let full = self.root.join(rel);
        if let Some(why) = &entry.unreadable {
            return Err(ContextError::Unreadable {
                path: full,
                cause: io::Error::other(why.clone()),
            });
        }
        if entry.kind == EntryKind::File {
            // Cheap (no open), and names the file now rather than halfway
            // through the copy.
            rustix::fs::access(&full, rustix::fs::Access::READ_OK).map_err(|e| {
                ContextError::Unreadable {
                    path: full.clone(),
                    cause: e.into(),
                }
            })?;
        }
        Ok(())
    }
}

/// Is a matched source itself excluded? Tested as its context path and as
/// its name, so `--exclude=*.txt` drops `dir/a.txt` matched by `dir/*`.
fn excluded_top(excludes: &Matcher, path: &Path) -> bool {
    // The context root itself is never dropped whole (`--exclude=*` on `.`
    // excludes its content, not the copy).
    if path.as_os_str().is_empty() {
        return false;
    }
    let full = path.to_string_lossy();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    excludes.is_excluded(&full) || excludes.is_excluded(&name)
}

/// The ignore rules for a context: `<Dockerfile>.dockerignore` beside the
/// Dockerfile wins over `<root>/.dockerignore`; `ignorefile`
/// (`--ignorefile`, buildah's: any path, which must exist) over both.
pub(crate) fn read_ignore_file(
    root: &Path,
    dockerfile: Option<&Path>,
    ignorefile: Option<&Path>,
) -> Result<Option<Matcher>, ContextError> {
    if let Some(path) = ignorefile {
        let bytes = fs_err::read(path).map_err(ContextError::io("reading --ignorefile", path))?;
        let m = Matcher::parse(&String::from_utf8_lossy(&bytes)).map_err(|cause| {
            ContextError::IgnoreFile {
                path: path.to_path_buf(),
                cause,
            }
        })?;
        return Ok(Some(m));
    }
    let mut candidates = Vec::new();
    if let Some(df) = dockerfile {
        let mut name = df.as_os_str().to_os_string();
        name.push(IGNORE_FILE);
        candidates.push(PathBuf::from(name));
    }
    candidates.push(root.join(IGNORE_FILE));
    for path in candidates {
        match read_beside(root, &path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let m = Matcher::parse(&text)
                    .map_err(|cause| ContextError::IgnoreFile { path, cause })?;
                return Ok(Some(m));
            }
            Err(e) if beside::is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

#[cfg(test)]
pub(crate) mod tests;
