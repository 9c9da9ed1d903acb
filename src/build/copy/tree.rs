//! Writing into an untrusted root file system without leaving it.
//!
//! Every directory is reached with `openat2(root, path, RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS)` from an `O_PATH` descriptor of the root, so a
//! symlink in the image (`/app -> /usr/src/app`, or `-> /etc/../..`) is
//! followed as if the root were `/` and never leads out of it. The last
//! component is then created or replaced relative to that descriptor with
//! `*at()` calls that do not follow it (`O_EXCL | O_NOFOLLOW`,
//! `AT_SYMLINK_NOFOLLOW`); owners, modes and times are set on descriptors
//! or with no-follow flags. Directory times are set last, deepest first,
//! because creating children changes them.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid};
use rustix::io::Errno;

use super::CopyError;
use crate::layer::apply::remove_existing;
use crate::layer::whiteout::is_overlay_xattr;

/// Mode of a directory created because a path needs it (Docker's).
pub(crate) const CREATED_DIR_MODE: u32 = 0o755;

/// Symlinks followed while creating one directory path (Linux's limit).
const MAX_SYMLINKS: usize = 40;

/// The outcome of one pass of creating directories.
enum Created {
    Dir(OwnedFd),
    /// A dangling symlink was in the way: create this path instead.
    Redirect(PathBuf),
}

/// Owner, mode and mtime to give a written entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub mtime_sec: i64,
    pub mtime_nsec: i64,
}

/// A root file system opened for writing.
pub(crate) struct Tree {
    root: OwnedFd,
    rootfs: PathBuf,
    /// Directories whose mtime is set at the end (container path -> time).
    dir_times: BTreeMap<PathBuf, (i64, i64)>,
    /// The last directory opened, since sorted entries share parents.
    last: Option<(PathBuf, OwnedFd)>,
    /// xattrs the kernel refused (e.g. `trusted.*` in a user namespace).
    pub(crate) skipped_xattrs: Vec<(PathBuf, String)>,
}

impl Tree {
    pub(crate) fn open(rootfs: &Path) -> Result<Tree, CopyError> {
        let root = rustix::fs::open(
            rootfs,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| CopyError::io("open root file system", rootfs)(e.into()))?;
        Ok(Tree {
            root,
            rootfs: rootfs.to_path_buf(),
            dir_times: BTreeMap::new(),
            last: None,
            skipped_xattrs: Vec::new(),
        })
    }

    /// A tree rooted at the directory `dir` (opened `O_PATH`) at `path` in
    /// this one: what is written through it stays inside that directory,
    /// whose symlinks resolve as if it were `/` (ADD of an archive).
    pub(crate) fn subtree(&self, dir: OwnedFd, path: &Path) -> Tree {
        Tree {
            root: dir,
            rootfs: self.shown(path),
            dir_times: BTreeMap::new(),
            last: None,
            skipped_xattrs: Vec::new(),
        }
    }

    /// Path shown in errors: the container path, with the rootfs it is in.
    fn shown(&self, path: &Path) -> PathBuf {
        let rel = path.strip_prefix("/").unwrap_or(path);
        self.rootfs.join(rel)
    }

    fn err(&self, op: &'static str, path: &Path) -> impl FnOnce(Errno) -> CopyError {
        let shown = self.shown(path);
        move |e| CopyError::io(op, shown)(e.into())
    }

    /// Resolve a container path inside the root, following symlinks in it.
    pub(crate) fn resolve(&self, path: &Path, flags: OFlags) -> Result<OwnedFd, Errno> {
        let rel = path.strip_prefix("/").unwrap_or(path);
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        rustix::fs::openat2(
            &self.root,
            rel,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
    }

    /// Is the container path an existing directory (through symlinks)?
    pub(crate) fn is_dir(&self, path: &Path) -> bool {
        self.resolve(path, OFlags::PATH | OFlags::DIRECTORY).is_ok()
    }

    /// Open the directory at `path`, creating what is missing (mode 0755,
    /// owned by `owner`).
    pub(crate) fn open_dir(
        &mut self,
        path: &Path,
        owner: (u32, u32),
    ) -> Result<OwnedFd, CopyError> {
        if let Some((p, fd)) = &self.last {
            if p == path {
                return fd
                    .try_clone()
                    .map_err(|e| CopyError::io("open", self.shown(path))(e));
            }
        }
        let fd = match self.resolve(path, OFlags::PATH | OFlags::DIRECTORY) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => self.create_dirs(path, owner)?,
            Err(e) => return Err(self.err("open directory", path)(e)),
        };
        let keep = fd
            .try_clone()
            .map_err(|e| CopyError::io("open", self.shown(path))(e))?;
        self.last = Some((path.to_path_buf(), keep));
        Ok(fd)
    }

    /// Open the parent directory `path` of an archive entry as Docker's
    /// unpacker does: missing directories are created, but a component
    /// that exists and leads nowhere (a dangling symlink: `abs -> /etc`
    /// with no `etc` under the root) fails, where COPY would follow it.
    pub(crate) fn open_parent(
        &mut self,
        path: &Path,
        owner: (u32, u32),
    ) -> Result<OwnedFd, CopyError> {
        if self.is_dir(path) {
            return self.open_dir(path, owner);
        }
        let mut sofar = PathBuf::from("/");
        for c in path.components().skip(1) {
            let up = match self.resolve(&sofar, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(fd) => fd,
                Err(_) => break,
            };
            sofar.push(c);
            let name = sofar.file_name().unwrap_or_default();
            let exists = rustix::fs::statat(&up, name, AtFlags::SYMLINK_NOFOLLOW).is_ok();
            if exists && !self.is_dir(&sofar) {
                return Err(self.err("open", &sofar)(Errno::NOENT));
            }
        }
        self.open_dir(path, owner)
    }

    /// Create the missing directories of `path`, one component at a time.
    fn create_dirs(&mut self, path: &Path, owner: (u32, u32)) -> Result<OwnedFd, CopyError> {
        let mut path = path.to_path_buf();
        for _ in 0..MAX_SYMLINKS {
            match self.create_dirs_once(&path, owner)? {
                Created::Dir(fd) => return Ok(fd),
                Created::Redirect(next) => path = next,
            }
        }
        Err(self.err("create directory", &path)(Errno::LOOP))
    }

    /// One pass of [`Tree::create_dirs`]. A dangling symlink in the way is
    /// followed as Docker's `MkdirAll` does: its target (inside the root)
    /// is created instead, by a new pass over the rewritten path.
    fn create_dirs_once(&mut self, path: &Path, owner: (u32, u32)) -> Result<Created, CopyError> {
        let comps: Vec<&OsStr> = path
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect();
        let mut sofar = PathBuf::from("/");
        let mut parent = self
            .resolve(&sofar, OFlags::PATH | OFlags::DIRECTORY)
            .map_err(self.err("open", &sofar))?;
        for (i, name) in comps.iter().enumerate() {
            let name = *name;
            sofar.push(name);
            match self.resolve(&sofar, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(fd) => {
                    parent = fd;
                    continue;
                }
                Err(Errno::NOENT) => {}
                Err(e) => return Err(self.err("open directory", &sofar)(e)),
            }
            match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(CREATED_DIR_MODE)) {
                Ok(()) => {}
                Err(Errno::EXIST) => {
                    let target = rustix::fs::readlinkat(&parent, name, Vec::new())
                        .map_err(self.err("create directory", &sofar))?;
                    let base = sofar.parent().unwrap_or(Path::new("/"));
                    let mut next = base.join(OsStr::from_bytes(target.as_bytes()));
                    for rest in &comps[i + 1..] {
                        next.push(rest);
                    }
                    let cleaned = crate::build::dockerignore::clean(&next.to_string_lossy());
                    return Ok(Created::Redirect(PathBuf::from(cleaned)));
                }
                Err(e) => return Err(self.err("create directory", &sofar)(e)),
            }
            let fd = rustix::fs::openat(
                &parent,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(self.err("open directory", &sofar))?;
            self.chown(&fd, owner, &sofar)?;
            // Explicitly, since the umask applied to mkdirat.
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(CREATED_DIR_MODE))
                .map_err(self.err("chmod", &sofar))?;
            parent = fd;
        }
        Ok(Created::Dir(parent))
    }

    fn chown<Fd: AsFd>(
        &self,
        fd: Fd,
        (uid, gid): (u32, u32),
        path: &Path,
    ) -> Result<(), CopyError> {
        rustix::fs::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
            .map_err(|e| self.chown_err(e, uid, gid, path))
    }

    /// chown of `parent/name` itself, a symlink not followed.
    fn lchown_at(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        path: &Path,
        meta: Meta,
    ) -> Result<(), CopyError> {
        rustix::fs::chownat(
            parent,
            name,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| self.chown_err(e, meta.uid, meta.gid, path))
    }

    fn chown_err(&self, e: Errno, uid: u32, gid: u32, path: &Path) -> CopyError {
        let cause = if e == Errno::INVAL {
            // What EINVAL from chown means in a user namespace.
            io::Error::other(
                "the id is not mapped in this user namespace (the user needs a subuid/subgid range)",
            )
        } else {
            e.into()
        };
        CopyError::Chown {
            path: self.shown(path),
            uid,
            gid,
            cause,
        }
    }

    /// Make `parent/name` a directory with `meta`: an existing directory
    /// (or a symlink to one, followed inside the root) is kept, anything
    /// else replaced. Returns whether it was created.
    pub(crate) fn put_dir(
        &mut self,
        parent: &OwnedFd,
        name: &OsStr,
        path: &Path,
        meta: Option<Meta>,
    ) -> Result<bool, CopyError> {
        self.last = None;
        let mut created = false;
        match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
            Ok(st)
                if FileType::from_raw_mode(st.st_mode) == FileType::Symlink
                    && self.is_dir(path) =>
            {
                // Docker follows a symlink to a directory at the destination;
                // its target keeps its own metadata.
                return Ok(false);
            }
            Ok(_) => {
                remove_existing(parent, name.as_bytes()).map_err(self.err("replace", path))?;
                created = true;
            }
            Err(Errno::NOENT) => created = true,
            Err(e) => return Err(self.err("stat", path)(e)),
        }
        if created {
            rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700))
                .map_err(self.err("create directory", path))?;
        }
        if let Some(meta) = meta {
            let fd = rustix::fs::openat(
                parent,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(self.err("open directory", path))?;
            self.chown(&fd, (meta.uid, meta.gid), path)?;
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(meta.mode))
                .map_err(self.err("chmod", path))?;
            self.dir_times
                .insert(path.to_path_buf(), (meta.mtime_sec, meta.mtime_nsec));
        }
        Ok(created)
    }

    /// Write a regular file at `parent/name` from `content`, replacing
    /// whatever is there. Returns the bytes written.
    pub(crate) fn put_file(
        &mut self,
        parent: &OwnedFd,
        name: &OsStr,
        path: &Path,
        content: &mut dyn io::Read,
        meta: Meta,
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<u64, CopyError> {
        if let Some((p, _)) = &self.last {
            if p.starts_with(path) {
                self.last = None;
            }
        }
        let create = || {
            rustix::fs::openat(
                parent,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
        };
        // Most COPY targets are new: create first, and only when something
        // (of any type: O_EXCL|O_NOFOLLOW) is there, remove it and retry,
        // rather than a stat per file to find nothing.
        let fd = match create() {
            Err(Errno::EXIST) => {
                remove_existing(parent, name.as_bytes()).map_err(self.err("replace", path))?;
                create()
            }
            created => created,
        }
        .map_err(self.err("create file", path))?;
        let mut file = std::fs::File::from(fd);
        let n = crate::layer::chunked::copy(content, &mut file)
            .map_err(|e| CopyError::io("write", self.shown(path))(e))?;
        self.chown(&file, (meta.uid, meta.gid), path)?;
        // After chown, which drops file capabilities.
        self.set_xattrs(&file, xattrs, path)?;
        // After chown, which clears setuid/setgid.
        rustix::fs::fchmod(&file, Mode::from_raw_mode(meta.mode))
            .map_err(self.err("chmod", path))?;
        rustix::fs::futimens(&file, &timestamps(meta.mtime_sec, meta.mtime_nsec))
            .map_err(self.err("set times of", path))?;
        Ok(n)
    }

    /// Set extended attributes (file capabilities, ACLs, SELinux labels)
    /// except overlay ones, which only strata itself may write; those the
    /// kernel refuses here are listed rather than fatal.
    fn set_xattrs<Fd: AsFd>(
        &mut self,
        fd: Fd,
        xattrs: &[(Vec<u8>, Vec<u8>)],
        path: &Path,
    ) -> Result<(), CopyError> {
        for (name, value) in xattrs {
            if is_overlay_xattr(name) || name.is_empty() {
                continue;
            }
            let flags = rustix::fs::XattrFlags::empty();
            match rustix::fs::fsetxattr(fd.as_fd(), OsStr::from_bytes(name), value, flags) {
                Ok(()) => {}
                Err(Errno::PERM | Errno::NOTSUP | Errno::ACCESS | Errno::INVAL) => {
                    self.skipped_xattrs.push((
                        path.to_path_buf(),
                        String::from_utf8_lossy(name).into_owned(),
                    ))
                }
                Err(e) => return Err(self.err("set xattr on", path)(e)),
            }
        }
        Ok(())
    }

    /// Create a symlink at `parent/name`, replacing whatever is there.
    pub(crate) fn put_symlink(
        &mut self,
        parent: &OwnedFd,
        name: &OsStr,
        path: &Path,
        target: &Path,
        meta: Meta,
    ) -> Result<(), CopyError> {
        remove_existing(parent, name.as_bytes()).map_err(self.err("replace", path))?;
        if let Some((p, _)) = &self.last {
            if p.starts_with(path) {
                self.last = None;
            }
        }
        rustix::fs::symlinkat(target, parent, name).map_err(self.err("create symlink", path))?;
        self.lchown_at(parent, name, path, meta)?;
        rustix::fs::utimensat(
            parent,
            name,
            &timestamps(meta.mtime_sec, meta.mtime_nsec),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(self.err("set times of", path))?;
        Ok(())
    }

    /// Make `parent/name` a hard link to the already written `existing`
    /// (a container path).
    pub(crate) fn put_hardlink(
        &mut self,
        parent: &OwnedFd,
        name: &OsStr,
        path: &Path,
        existing: &Path,
    ) -> Result<(), CopyError> {
        let (Some(ename), Some(eparent)) = (existing.file_name(), existing.parent()) else {
            return Err(CopyError::io("link", self.shown(path))(io::Error::other(
                "hard link to the root",
            )));
        };
        let eparent_fd = self
            .resolve(eparent, OFlags::PATH | OFlags::DIRECTORY)
            .map_err(self.err("open directory", eparent))?;
        let est = rustix::fs::statat(&eparent_fd, ename, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(self.err("stat", existing))?;
        if FileType::from_raw_mode(est.st_mode) == FileType::Directory {
            return Err(CopyError::io("link", self.shown(path))(io::Error::other(
                "hard link target is a directory",
            )));
        }
        match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if st.st_dev == est.st_dev && st.st_ino == est.st_ino => return Ok(()),
            _ => remove_existing(parent, name.as_bytes()).map_err(self.err("replace", path))?,
        }
        rustix::fs::linkat(&eparent_fd, ename, parent, name, AtFlags::empty())
            .map_err(self.err("create hard link", path))?;
        Ok(())
    }

    /// Give the file a hard link entry just made (`parent/name`) the
    /// entry's owner, mode and time, as Docker's tar extraction does after
    /// linking; a symlink keeps its mode and time.
    pub(crate) fn set_linked_meta(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        path: &Path,
        meta: Meta,
    ) -> Result<(), CopyError> {
        let st = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(self.err("stat", path))?;
        self.lchown_at(parent, name, path, meta)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
            return Ok(());
        }
        // After chown, which clears setuid/setgid.
        rustix::fs::chmodat(
            parent,
            name,
            Mode::from_raw_mode(meta.mode),
            AtFlags::empty(),
        )
        .map_err(self.err("chmod", path))?;
        rustix::fs::utimensat(
            parent,
            name,
            &timestamps(meta.mtime_sec, meta.mtime_nsec),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(self.err("set times of", path))
    }

    /// Set the recorded directory times, deepest first.
    pub(crate) fn finish(mut self) -> Result<(), CopyError> {
        self.last = None;
        for (path, (sec, nsec)) in self.dir_times.iter().rev() {
            match self.resolve(path, OFlags::RDONLY | OFlags::DIRECTORY) {
                Ok(fd) => rustix::fs::futimens(&fd, &timestamps(*sec, *nsec))
                    .map_err(self.err("set times of", path))?,
                // Replaced by a later source: nothing to date.
                Err(Errno::NOENT | Errno::NOTDIR) => {}
                Err(e) => return Err(self.err("open directory", path)(e)),
            }
        }
        Ok(())
    }
}

/// The type of `parent/name` itself (a symlink not followed), if it exists.
pub(crate) fn existing(parent: &OwnedFd, name: &OsStr) -> Option<FileType> {
    rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
        .ok()
        .map(|st| FileType::from_raw_mode(st.st_mode))
}

fn timestamps(sec: i64, nsec: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}
