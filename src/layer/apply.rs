//! Unpack an untrusted layer tar (plain, gzip or zstd) into a directory,
//! in overlay-native form, without ever touching anything outside it.
//!
//! Containment does not depend on the tar: every parent directory is opened
//! with `openat2(root, parent, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, so
//! `..`, absolute symlinks and symlink chains resolve as if the layer
//! directory were `/`; the last component is then created or replaced
//! relative to that descriptor, never followed (`O_NOFOLLOW`, `AT_SYMLINK_
//! NOFOLLOW`, `O_EXCL`), and modes, owners, xattrs and times are set on
//! descriptors or with no-follow flags. Entry names with a `..` component
//! are refused outright; leading `/` is dropped. Hard link targets are
//! resolved the same way and must be an existing non-directory in the layer.
//!
//! Whiteouts become overlay whiteouts (char 0:0) and `.wh..wh..opq` sets
//! `user.overlay.opaque=y` on its directory; overlay xattrs in the tar
//! (`user.overlay.*`, `trusted.overlay.*`) are dropped. Device nodes that
//! cannot be made (an unprivileged user namespace) are skipped and counted,
//! as are owners outside the namespace's id map, so the caller warns once.
//! Directory times are set at the end (creating children changes them);
//! directories the tar implies but does not list get mode 0755, owner 0 and
//! mtime 0, so the result does not depend on the clock.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::{self, BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{
    AtFlags, Dir, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid, CWD,
};
use rustix::io::Errno;
use tar::EntryType;

use super::compress::{decompressed, Compression, Hashed};
use super::whiteout::{classify, is_overlay_xattr, TarName, OPAQUE_VALUE, OPAQUE_XATTR};
use super::LayerError;
use crate::digest::{DiffId, HashingReader};

/// PAX key prefix of an xattr (the GNU tar / Docker convention).
const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";
/// Mode of a parent directory a tar implies without listing it.
const IMPLIED_DIR_MODE: u32 = 0o755;

/// What applying a layer found.
#[derive(Debug, Clone)]
pub struct ApplyStats {
    /// sha256 of the uncompressed tar stream.
    pub diff_id: DiffId,
    /// Digest and size of the input exactly as given (compressed or not).
    pub blob: Hashed,
    pub compression: Compression,
    /// Bytes of regular file data written.
    pub content_size: u64,
    /// Device nodes that could not be created, skipped.
    pub skipped_devices: Vec<PathBuf>,
    /// Entries whose owner is outside the id map; left owned by root.
    pub unmapped_owners: Vec<PathBuf>,
    /// xattrs the kernel refused (e.g. `trusted.*` in a user namespace).
    pub skipped_xattrs: Vec<(PathBuf, String)>,
}

/// Unpack `input` into `dir` (an existing, normally empty, directory).
pub fn apply<R: Read>(input: R, dir: &Path) -> Result<ApplyStats, LayerError> {
    let mut blob = HashingReader::new(input);
    let (compression, raw) =
        decompressed(BufReader::new(&mut blob)).map_err(|e| LayerError::Tar {
            entry: String::new(),
            source: e,
        })?;
    let mut tar_stream = HashingReader::new(raw);
    let root = rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| LayerError::io("open layer directory", dir)(e.into()))?;
    let mut unpacker = Unpacker {
        root,
        dir_times: BTreeMap::new(),
        stats: Stats::default(),
    };
    {
        let mut archive = tar::Archive::new(&mut tar_stream);
        let entries = archive.entries().map_err(|e| LayerError::Tar {
            entry: String::new(),
            source: e,
        })?;
        let mut last = String::new();
        for entry in entries {
            let mut entry = entry.map_err(|e| LayerError::Tar {
                entry: format!("after {last}"),
                source: readable(e),
            })?;
            last = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            unpacker.entry(&mut entry)?;
        }
    }
    // The diff id covers the whole stream, padding after the end marker too.
    io::copy(&mut tar_stream, &mut io::sink()).map_err(|e| LayerError::Tar {
        entry: "end of archive".into(),
        source: e,
    })?;
    let (diff, _) = tar_stream.finish();
    unpacker.finish_dir_times()?;
    tar_stream_drain(&mut blob).map_err(|e| LayerError::Tar {
        entry: "end of input".into(),
        source: e,
    })?;
    let (blob_digest, blob_size) = blob.finish();
    Ok(ApplyStats {
        diff_id: DiffId(diff),
        blob: Hashed {
            digest: blob_digest,
            size: blob_size,
        },
        compression,
        content_size: unpacker.stats.content_size,
        skipped_devices: unpacker.stats.skipped_devices,
        unmapped_owners: unpacker.stats.unmapped_owners,
        skipped_xattrs: unpacker.stats.skipped_xattrs,
    })
}

/// The tar reader quotes the bytes of a bad header in its message; from a
/// corrupt stream that is binary noise, so say what it means instead.
fn readable(e: io::Error) -> io::Error {
    let msg = e.to_string();
    if msg
        .chars()
        .any(|c| (c.is_control() && c != '\n') || c == char::REPLACEMENT_CHARACTER)
    {
        io::Error::new(
            e.kind(),
            "corrupt tar header (the stream is damaged or not a tar)",
        )
    } else {
        e
    }
}

/// Read what is left of the raw input so its digest covers all of it
/// (bytes after a compressed stream's end are part of the blob).
fn tar_stream_drain<R: Read>(r: &mut R) -> io::Result<u64> {
    io::copy(r, &mut io::sink())
}

#[derive(Default)]
struct Stats {
    content_size: u64,
    skipped_devices: Vec<PathBuf>,
    unmapped_owners: Vec<PathBuf>,
    skipped_xattrs: Vec<(PathBuf, String)>,
}

struct Unpacker {
    root: OwnedFd,
    /// Directory (components joined by '/') -> mtime, applied at the end.
    dir_times: BTreeMap<Vec<u8>, u64>,
    stats: Stats,
}

/// An entry's path split into clean components, or why it is refused.
pub fn clean_components(path: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    let mut out = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("path has a '..' component"),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

fn join(comps: &[&[u8]]) -> Vec<u8> {
    comps.join(&b'/')
}

impl Unpacker {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), LayerError> {
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let unsafe_err = |reason| LayerError::Unsafe {
            entry: shown.clone(),
            reason,
        };
        let comps = clean_components(&raw_path).map_err(unsafe_err)?;
        let kind = entry.header().entry_type();
        let Some((name, parents)) = comps.split_last() else {
            // The root itself ("./"): its metadata is not part of a layer.
            return Ok(());
        };
        let (name, parents) = (*name, parents.to_vec());
        let rel = PathBuf::from(os(&join(&comps)));
        let io_err = |op: &'static str| LayerError::io(op, rel.clone());
        let errno = |op: &'static str| move |e: Errno| io_err(op)(e.into());
        if matches!(kind, EntryType::XGlobalHeader) {
            return Ok(());
        }
        let header = entry.header();
        let mode = header.mode().map_err(io_err("read mode of"))? & 0o7777;
        let uid = header.uid().map_err(io_err("read uid of"))?;
        let gid = header.gid().map_err(io_err("read gid of"))?;
        let mtime = header.mtime().map_err(io_err("read mtime of"))?;
        let owner = Owner {
            uid: u32::try_from(uid).map_err(|_| unsafe_err("uid out of range"))?,
            gid: u32::try_from(gid).map_err(|_| unsafe_err("gid out of range"))?,
        };

        match classify(os(name)) {
            TarName::Invalid => return Err(unsafe_err("malformed whiteout name")),
            TarName::Opaque => {
                let parent = self.open_dir(&parents, OFlags::RDONLY, &rel)?;
                rustix::fs::fsetxattr(
                    &parent,
                    OPAQUE_XATTR,
                    OPAQUE_VALUE,
                    rustix::fs::XattrFlags::empty(),
                )
                .map_err(errno("mark opaque"))?;
                return Ok(());
            }
            TarName::Whiteout(target) => {
                let parent = self.open_dir(&parents, OFlags::PATH, &rel)?;
                remove_existing(&parent, target.as_bytes()).map_err(errno("remove whited-out"))?;
                rustix::fs::mknodat(
                    &parent,
                    target,
                    FileType::CharacterDevice,
                    Mode::from_raw_mode(mode),
                    0,
                )
                .map_err(errno("create whiteout"))?;
                self.chown_at(&parent, target.as_bytes(), owner, &rel)?;
                set_times_at(&parent, target.as_bytes(), mtime).map_err(errno("set times of"))?;
                return Ok(());
            }
            TarName::Plain => {}
        }

        let parent = self.open_dir(&parents, OFlags::PATH, &rel)?;
        let key = join(&comps);
        match kind {
            EntryType::Directory => {
                match rustix::fs::statat(&parent, os(name), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                    Ok(_) => {
                        remove_existing(&parent, name).map_err(errno("replace"))?;
                        rustix::fs::mkdirat(&parent, os(name), Mode::from_raw_mode(0o700))
                            .map_err(errno("create directory"))?;
                    }
                    Err(Errno::NOENT) => {
                        rustix::fs::mkdirat(&parent, os(name), Mode::from_raw_mode(0o700))
                            .map_err(errno("create directory"))?
                    }
                    Err(e) => return Err(errno("stat")(e)),
                }
                let fd = rustix::fs::openat(
                    &parent,
                    os(name),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(errno("open directory"))?;
                self.chown_fd(&fd, owner, &rel)?;
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(errno("chmod"))?;
                self.set_xattrs(&fd, entry, &rel)?;
                self.dir_times.insert(key, mtime);
            }
            EntryType::Regular | EntryType::Continuous => {
                remove_existing(&parent, name).map_err(errno("replace"))?;
                let fd = rustix::fs::openat(
                    &parent,
                    os(name),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(errno("create file"))?;
                let mut file = std::fs::File::from(fd);
                let n = io::copy(entry, &mut file).map_err(|e| LayerError::Tar {
                    entry: shown.clone(),
                    source: e,
                })?;
                self.stats.content_size += n;
                self.chown_fd(&file, owner, &rel)?;
                rustix::fs::fchmod(&file, Mode::from_raw_mode(mode)).map_err(errno("chmod"))?;
                self.set_xattrs(&file, entry, &rel)?;
                rustix::fs::futimens(&file, &timestamps(mtime)).map_err(errno("set times of"))?;
                self.dir_times.remove(&key);
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_err("symlink without a target"))?
                    .into_owned();
                remove_existing(&parent, name).map_err(errno("replace"))?;
                rustix::fs::symlinkat(os(&target), &parent, os(name))
                    .map_err(errno("create symlink"))?;
                self.chown_at(&parent, name, owner, &rel)?;
                set_times_at(&parent, name, mtime).map_err(errno("set times of"))?;
                self.dir_times.remove(&key);
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_err("hard link without a target"))?
                    .into_owned();
                let tcomps = clean_components(&target).map_err(unsafe_err)?;
                let Some((tname, tparents)) = tcomps.split_last() else {
                    return Err(unsafe_err("hard link to the layer root"));
                };
                let tparent = self
                    .resolve(tparents, OFlags::PATH)
                    .map_err(errno("resolve link target"))?;
                let tstat = rustix::fs::statat(&tparent, os(tname), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(errno("stat link target"))?;
                if FileType::from_raw_mode(tstat.st_mode) == FileType::Directory {
                    return Err(unsafe_err("hard link to a directory"));
                }
                match rustix::fs::statat(&parent, os(name), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if st.st_dev == tstat.st_dev && st.st_ino == tstat.st_ino => {
                        return Ok(())
                    }
                    _ => remove_existing(&parent, name).map_err(errno("replace"))?,
                }
                rustix::fs::linkat(&tparent, os(tname), &parent, os(name), AtFlags::empty())
                    .map_err(errno("create hard link"))?;
                self.dir_times.remove(&key);
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (ft, dev) = match kind {
                    EntryType::Fifo => (FileType::Fifo, 0),
                    _ => {
                        let major = header.device_major().ok().flatten().unwrap_or(0);
                        let minor = header.device_minor().ok().flatten().unwrap_or(0);
                        let ft = if kind == EntryType::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (ft, rustix::fs::makedev(major, minor))
                    }
                };
                remove_existing(&parent, name).map_err(errno("replace"))?;
                match rustix::fs::mknodat(&parent, os(name), ft, Mode::from_raw_mode(mode), dev) {
                    Ok(()) => {}
                    Err(Errno::PERM | Errno::ACCESS) if ft != FileType::Fifo => {
                        self.stats.skipped_devices.push(rel);
                        return Ok(());
                    }
                    Err(e) => return Err(errno("create device node")(e)),
                }
                self.chown_at(&parent, name, owner, &rel)?;
                set_times_at(&parent, name, mtime).map_err(errno("set times of"))?;
                self.dir_times.remove(&key);
            }
            _ => return Err(unsafe_err("unsupported tar entry type")),
        }
        Ok(())
    }

    /// Open `comps` (a directory path) inside the root, creating missing
    /// directories as implied ones.
    fn open_dir(
        &mut self,
        comps: &[&[u8]],
        flags: OFlags,
        rel: &Path,
    ) -> Result<OwnedFd, LayerError> {
        match self.resolve(comps, flags) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) => {}
            Err(e) => return Err(LayerError::io("open parent directory of", rel)(e.into())),
        }
        for i in 1..=comps.len() {
            match self.resolve(&comps[..i], OFlags::PATH) {
                Ok(_) => continue,
                Err(Errno::NOENT) => {}
                Err(e) => return Err(LayerError::io("open parent directory of", rel)(e.into())),
            }
            let up = self
                .resolve(&comps[..i - 1], OFlags::PATH)
                .map_err(|e| LayerError::io("open parent directory of", rel)(e.into()))?;
            let name = os(comps[i - 1]);
            match rustix::fs::mkdirat(&up, name, Mode::from_raw_mode(IMPLIED_DIR_MODE)) {
                // A dangling symlink in the way: resolving through it failed
                // with ENOENT, and it is not ours to follow.
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(LayerError::io("create parent directory of", rel)(e.into())),
            }
            let fd = rustix::fs::openat(
                &up,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| LayerError::io("open parent directory of", rel)(e.into()))?;
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(IMPLIED_DIR_MODE))
                .map_err(|e| LayerError::io("chmod parent directory of", rel)(e.into()))?;
            self.dir_times.entry(join(&comps[..i])).or_insert(0);
        }
        self.resolve(comps, flags)
            .map_err(|e| LayerError::io("open parent directory of", rel)(e.into()))
    }

    /// `openat2(root, comps, RESOLVE_IN_ROOT)`: symlinks and `..` inside
    /// resolve as if the layer directory were `/`.
    fn resolve(&self, comps: &[&[u8]], flags: OFlags) -> Result<OwnedFd, Errno> {
        let path = if comps.is_empty() {
            b".".to_vec()
        } else {
            join(comps)
        };
        rustix::fs::openat2(
            &self.root,
            os(&path),
            flags | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
    }

    fn chown_fd<Fd: AsFd>(&mut self, fd: Fd, owner: Owner, rel: &Path) -> Result<(), LayerError> {
        let r = rustix::fs::fchown(
            fd,
            Some(Uid::from_raw(owner.uid)),
            Some(Gid::from_raw(owner.gid)),
        );
        self.chown_result(r, rel)
    }

    fn chown_at(
        &mut self,
        parent: &OwnedFd,
        name: &[u8],
        owner: Owner,
        rel: &Path,
    ) -> Result<(), LayerError> {
        let r = rustix::fs::chownat(
            parent,
            os(name),
            Some(Uid::from_raw(owner.uid)),
            Some(Gid::from_raw(owner.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        );
        self.chown_result(r, rel)
    }

    fn chown_result(&mut self, r: Result<(), Errno>, rel: &Path) -> Result<(), LayerError> {
        match r {
            Ok(()) => Ok(()),
            // EINVAL: the id has no mapping in this user namespace.
            Err(Errno::INVAL) => {
                self.stats.unmapped_owners.push(rel.to_path_buf());
                Ok(())
            }
            Err(e) => Err(LayerError::io("chown", rel)(e.into())),
        }
    }

    fn set_xattrs<Fd: AsFd, R: Read>(
        &mut self,
        fd: Fd,
        entry: &mut tar::Entry<'_, R>,
        rel: &Path,
    ) -> Result<(), LayerError> {
        let Some(exts) = entry
            .pax_extensions()
            .map_err(LayerError::io("read PAX header of", rel))?
        else {
            return Ok(());
        };
        for ext in exts {
            let ext = ext.map_err(LayerError::io("read PAX header of", rel))?;
            let Some(name) = ext.key_bytes().strip_prefix(PAX_XATTR_PREFIX.as_bytes()) else {
                continue;
            };
            if is_overlay_xattr(name) || name.is_empty() {
                continue;
            }
            let flags = rustix::fs::XattrFlags::empty();
            match rustix::fs::fsetxattr(fd.as_fd(), os(name), ext.value_bytes(), flags) {
                Ok(()) => {}
                Err(Errno::PERM | Errno::NOTSUP | Errno::ACCESS) => {
                    self.stats.skipped_xattrs.push((
                        rel.to_path_buf(),
                        String::from_utf8_lossy(name).into_owned(),
                    ))
                }
                Err(e) => return Err(LayerError::io("set xattr on", rel)(e.into())),
            }
        }
        Ok(())
    }

    /// Set directory mtimes, deepest first, now that nothing changes them.
    fn finish_dir_times(&mut self) -> Result<(), LayerError> {
        for (path, mtime) in self.dir_times.iter().rev() {
            let comps: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
            let rel = PathBuf::from(os(path));
            match self.resolve(&comps, OFlags::RDONLY) {
                Ok(fd) => rustix::fs::futimens(&fd, &timestamps(*mtime))
                    .map_err(|e| LayerError::io("set times of", &rel)(e.into()))?,
                // Replaced by a non-directory or removed by a later entry.
                Err(Errno::NOENT | Errno::NOTDIR) => {}
                Err(e) => return Err(LayerError::io("open", &rel)(e.into())),
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
struct Owner {
    uid: u32,
    gid: u32,
}

fn timestamps(mtime: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn set_times_at(parent: &OwnedFd, name: &[u8], mtime: u64) -> Result<(), Errno> {
    rustix::fs::utimensat(
        parent,
        os(name),
        &timestamps(mtime),
        AtFlags::SYMLINK_NOFOLLOW,
    )
}

/// Remove `name` in `parent` if it exists, recursively for a directory,
/// without following symlinks.
pub(crate) fn remove_existing(parent: &OwnedFd, name: &[u8]) -> Result<(), Errno> {
    let st = match rustix::fs::statat(parent, os(name), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return rustix::fs::unlinkat(parent, os(name), AtFlags::empty());
    }
    let dir = rustix::fs::openat(
        parent,
        os(name),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut children: Vec<OsString> = Vec::new();
    for ent in Dir::read_from(&dir)? {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            children.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    for child in children {
        remove_existing(&dir, child.as_bytes())?;
    }
    rustix::fs::unlinkat(parent, os(name), AtFlags::REMOVEDIR)
}

/// Remove a directory tree at `path` without following symlinks inside it.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let Some(name) = path.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot remove /",
        ));
    };
    let pfd = rustix::fs::openat(
        CWD,
        parent,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    remove_existing(&pfd, name.as_bytes()).map_err(io::Error::from)
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
