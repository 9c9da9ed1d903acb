//! Unpack an untrusted layer tar (plain, gzip or zstd) into a directory,
//! in overlay-native form, without ever touching anything outside it.
//!
//! Containment does not depend on the tar: every parent directory is opened
//! with `openat2(root, parent, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, so
//! `..`, absolute symlinks and symlink chains resolve as if the layer
//! directory were `/`; the last component is then created or replaced
//! relative to that descriptor, never followed (`O_NOFOLLOW`, `AT_SYMLINK_
//! NOFOLLOW`, `O_EXCL`), and modes, owners, xattrs and times are set on
//! descriptors or with no-follow flags. Entry names and hard link targets
//! are cleaned lexically (`t/../t/tgt` is `t/tgt`, as Docker reads it); one
//! whose `..` would climb above the root is refused; a leading `/` is
//! dropped. A hard link target must be an existing non-directory in the
//! layer. The tar is read by the one reader ([`super::reader`]), which
//! reads what GNU tar reads.
//!
//! Whiteouts follow the OCI rules: they hide what the *lower* layers have,
//! never what this layer itself holds, whatever the order of the entries.
//! `.wh.NAME` becomes an overlay whiteout (char 0:0), or, when this layer
//! already made NAME a directory, marks that directory opaque; an entry
//! that lands where this layer put a whiteout replaces it, and a directory
//! that does so is opaque (the lower one was deleted). `.wh..wh..opq` sets
//! `user.overlay.opaque=y` on its directory. Overlay xattrs in the tar
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

use super::compress::{with_decompressed, Compression, Hashed};
use super::reader::{Entry, Kind, TarReader};
use super::union::Union;
use super::whiteout::{classify, is_overlay_xattr, TarName, OPAQUE_VALUE, OPAQUE_XATTR};
use super::LayerError;
use crate::digest::{DiffId, HashingReader};

/// Read-ahead of the tar stream (a block header is 512 bytes).
const READ_BUFFER: usize = 256 << 10;
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
    /// Directories the tar implies without listing them: where a lower
    /// layer's symlink may have been meant.
    pub implied_dirs: Vec<Vec<u8>>,
}

/// Unpack `input` into `dir` (an existing, normally empty, directory).
pub fn apply<R: Read + Send>(input: R, dir: &Path) -> Result<ApplyStats, LayerError> {
    apply_over(input, dir, &[])
}

/// Unpack `input` into `dir` as the layer above `lowers` (layer
/// directories, top first): a parent the tar implies resolves through the
/// lower layers' symlinks (`var/run -> /run` below, `var/run/x/f` here
/// lands in `run/x/f`), and a directory implied over a lower one takes its
/// mode, owner and time, so the merged tree shows what a flat unpack onto
/// the image would.
pub fn apply_over<R: Read + Send>(
    input: R,
    dir: &Path,
    lowers: &[PathBuf],
) -> Result<ApplyStats, LayerError> {
    let mut blob = HashingReader::new(input);
    let root = rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| LayerError::io("open layer directory", dir)(e.into()))?;
    let union = match lowers.is_empty() {
        true => None,
        false => {
            let open_err = |e: Errno| LayerError::io("open lower layers of", dir)(e.into());
            let mut fds = vec![root.try_clone().map_err(LayerError::io("open", dir))?];
            fds.extend(Union::open(lowers).map_err(open_err)?.into_fds());
            Some(Union::new(fds))
        }
    };
    let mut unpacker = Unpacker {
        root,
        union,
        dir_times: BTreeMap::new(),
        stats: Stats::default(),
    };
    let (compression, diff) = with_decompressed(BufReader::new(&mut blob), |compression, raw| {
        let mut tar_stream = HashingReader::new(raw);
        unpacker.unpack(&mut tar_stream)?;
        // The diff id covers the whole stream, padding after the end
        // marker too.
        io::copy(&mut tar_stream, &mut io::sink()).map_err(tar_err("end of archive"))?;
        Ok::<_, LayerError>((compression, tar_stream.finish().0))
    })
    .map_err(tar_err(""))??;
    unpacker.finish_dir_times()?;
    // Read what is left of the raw input so its digest covers all of it
    // (bytes after a compressed stream's end are part of the blob).
    io::copy(&mut blob, &mut io::sink()).map_err(tar_err("end of input"))?;
    let (blob_digest, blob_size) = blob.finish();
    let stats = unpacker.stats;
    Ok(ApplyStats {
        diff_id: DiffId(diff),
        blob: Hashed {
            digest: blob_digest,
            size: blob_size,
        },
        compression,
        content_size: stats.content_size,
        skipped_devices: stats.skipped_devices,
        unmapped_owners: stats.unmapped_owners,
        skipped_xattrs: stats.skipped_xattrs,
        implied_dirs: stats.implied_dirs,
    })
}

fn tar_err(entry: &str) -> impl FnOnce(io::Error) -> LayerError + '_ {
    move |source| LayerError::Tar {
        entry: entry.to_string(),
        source,
    }
}

#[derive(Default)]
struct Stats {
    implied_dirs: Vec<Vec<u8>>,
    content_size: u64,
    skipped_devices: Vec<PathBuf>,
    unmapped_owners: Vec<PathBuf>,
    skipped_xattrs: Vec<(PathBuf, String)>,
}

struct Unpacker {
    root: OwnedFd,
    /// This layer over the layers below it, when they are given: paths
    /// resolve through their symlinks.
    union: Option<Union>,
    /// Directory (components joined by '/') -> mtime, applied at the end.
    dir_times: BTreeMap<Vec<u8>, i64>,
    stats: Stats,
}

/// An entry's path split into lexically clean components (`.` dropped,
/// `..` taking the previous one away), or why it is refused: a `..` that
/// would climb above the root.
pub fn clean_components(path: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    let mut out = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop().ok_or("path climbs above the root with '..'")?;
            }
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

/// One entry's place and metadata, as the `put_*` steps need them.
struct Target<'a> {
    parent: OwnedFd,
    name: &'a [u8],
    /// Components joined by '/', the key of `dir_times`.
    key: Vec<u8>,
    rel: PathBuf,
    shown: &'a str,
}

impl Target<'_> {
    fn errno(&self, op: &'static str) -> impl FnOnce(Errno) -> LayerError + '_ {
        move |e| LayerError::io(op, self.rel.clone())(e.into())
    }

    fn unsafe_entry(&self, reason: &'static str) -> LayerError {
        LayerError::Unsafe {
            entry: self.shown.to_string(),
            reason,
        }
    }
}

/// Whether `st` is an overlay whiteout (a 0:0 character device).
fn is_whiteout(st: &rustix::fs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

impl Unpacker {
    fn unpack<R: Read>(&mut self, input: R) -> Result<(), LayerError> {
        // Headers are read a block at a time: buffer them.
        let mut reader = TarReader::new(io::BufReader::with_capacity(READ_BUFFER, input));
        let mut last = String::new();
        loop {
            let entry = reader.next_entry().map_err(|e| LayerError::Read {
                after: last.clone(),
                source: e,
            })?;
            let Some(entry) = entry else {
                return Ok(());
            };
            last = String::from_utf8_lossy(&entry.path).into_owned();
            self.entry(&entry, &mut reader.data(), &last)?;
        }
    }

    fn entry(&mut self, e: &Entry, data: &mut dyn Read, shown: &str) -> Result<(), LayerError> {
        let unsafe_err = |reason| LayerError::Unsafe {
            entry: shown.to_string(),
            reason,
        };
        let comps = clean_components(&e.path).map_err(unsafe_err)?;
        let resolved = self.through_lowers(&comps, shown)?;
        let comps: Vec<&[u8]> = resolved.iter().map(Vec::as_slice).collect();
        let Some((name, parents)) = comps.split_last() else {
            // The root itself ("./"): its metadata is not part of a layer.
            return Ok(());
        };
        let rel = PathBuf::from(os(&join(&comps)));
        let owner = Owner {
            uid: u32::try_from(e.uid).map_err(|_| unsafe_err("uid out of range"))?,
            gid: u32::try_from(e.gid).map_err(|_| unsafe_err("gid out of range"))?,
        };
        let kind = classify(os(name));
        let flags = match kind {
            TarName::Opaque => OFlags::RDONLY,
            _ => OFlags::PATH,
        };
        let t = Target {
            parent: self.open_dir(parents, flags, &rel)?,
            name,
            key: join(&comps),
            rel,
            shown,
        };
        match kind {
            TarName::Invalid => Err(unsafe_err("malformed whiteout name")),
            TarName::Opaque => set_opaque(&t.parent).map_err(t.errno("mark opaque")),
            TarName::Whiteout(target) => self.whiteout(&t, target.as_bytes(), e, owner),
            TarName::Plain => self.put(&t, e, data, owner),
        }
    }

    /// `comps` with its parents resolved through the lower layers, when
    /// they are given and this layer alone does not resolve them.
    fn through_lowers(&self, comps: &[&[u8]], shown: &str) -> Result<Vec<Vec<u8>>, LayerError> {
        let owned = || comps.iter().map(|c| c.to_vec()).collect();
        let (Some(union), Some((name, parents))) = (&self.union, comps.split_last()) else {
            return Ok(owned());
        };
        if parents.is_empty() || self.resolve(parents, OFlags::PATH).is_ok() {
            return Ok(owned());
        }
        let mut path = union
            .resolve(parents)
            .map_err(|e| LayerError::io("resolve parent directory of", shown)(e.into()))?;
        path.push(name.to_vec());
        Ok(path)
    }

    /// `.wh.NAME`: hide the lower layers' NAME, and nothing of this layer.
    fn whiteout(
        &mut self,
        t: &Target<'_>,
        target: &[u8],
        e: &Entry,
        owner: Owner,
    ) -> Result<(), LayerError> {
        match rustix::fs::statat(&t.parent, os(target), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                let dir = open_child_dir(&t.parent, target).map_err(t.errno("open directory"))?;
                return set_opaque(&dir).map_err(t.errno("mark opaque"));
            }
            // A file, link or whiteout of this layer already hides NAME.
            Ok(_) => return Ok(()),
            Err(Errno::NOENT) => {}
            Err(err) => return Err(t.errno("stat")(err)),
        }
        rustix::fs::mknodat(
            &t.parent,
            os(target),
            FileType::CharacterDevice,
            Mode::from_raw_mode(e.mode),
            0,
        )
        .map_err(t.errno("create whiteout"))?;
        self.chown_at(&t.parent, target, owner, &t.rel)?;
        set_times_at(&t.parent, target, e.mtime).map_err(t.errno("set times of"))
    }

    fn put(
        &mut self,
        t: &Target<'_>,
        e: &Entry,
        data: &mut dyn Read,
        owner: Owner,
    ) -> Result<(), LayerError> {
        if e.kind != Kind::Dir {
            self.dir_times.remove(&t.key);
        }
        match e.kind {
            Kind::Dir => self.put_dir(t, e, owner),
            Kind::File => self.put_file(t, e, data, owner),
            Kind::Symlink => {
                remove_existing(&t.parent, t.name).map_err(t.errno("replace"))?;
                rustix::fs::symlinkat(os(&e.link), &t.parent, os(t.name))
                    .map_err(t.errno("create symlink"))?;
                self.chown_at(&t.parent, t.name, owner, &t.rel)?;
                set_times_at(&t.parent, t.name, e.mtime).map_err(t.errno("set times of"))
            }
            Kind::HardLink => self.put_hardlink(t, e),
            Kind::Char | Kind::Block | Kind::Fifo => self.put_node(t, e, owner),
            Kind::Other(_) => Err(t.unsafe_entry("unsupported tar entry type")),
        }
    }

    fn put_dir(&mut self, t: &Target<'_>, e: &Entry, owner: Owner) -> Result<(), LayerError> {
        let (parent, name) = (&t.parent, t.name);
        let create = || rustix::fs::mkdirat(parent, os(name), Mode::from_raw_mode(0o700));
        let mut opaque = false;
        match rustix::fs::statat(parent, os(name), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
            Ok(st) => {
                // Over this layer's whiteout: the lower directory was
                // deleted, so this one must not show its content.
                opaque = is_whiteout(&st);
                remove_existing(parent, name).map_err(t.errno("replace"))?;
                create().map_err(t.errno("create directory"))?;
            }
            Err(Errno::NOENT) => create().map_err(t.errno("create directory"))?,
            Err(err) => return Err(t.errno("stat")(err)),
        }
        let fd = open_child_dir(parent, name).map_err(t.errno("open directory"))?;
        self.chown_fd(&fd, owner, &t.rel)?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(e.mode)).map_err(t.errno("chmod"))?;
        self.set_xattrs(&fd, e, &t.rel)?;
        if opaque {
            set_opaque(&fd).map_err(t.errno("mark opaque"))?;
        }
        self.dir_times.insert(t.key.clone(), e.mtime);
        Ok(())
    }

    fn put_file(
        &mut self,
        t: &Target<'_>,
        e: &Entry,
        data: &mut dyn Read,
        owner: Owner,
    ) -> Result<(), LayerError> {
        remove_existing(&t.parent, t.name).map_err(t.errno("replace"))?;
        let fd = rustix::fs::openat(
            &t.parent,
            os(t.name),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(t.errno("create file"))?;
        let mut file = std::fs::File::from(fd);
        let n = io::copy(data, &mut file).map_err(|source| LayerError::Tar {
            entry: t.shown.to_string(),
            source,
        })?;
        self.stats.content_size += n;
        self.chown_fd(&file, owner, &t.rel)?;
        rustix::fs::fchmod(&file, Mode::from_raw_mode(e.mode)).map_err(t.errno("chmod"))?;
        self.set_xattrs(&file, e, &t.rel)?;
        rustix::fs::futimens(&file, &timestamps(e.mtime)).map_err(t.errno("set times of"))
    }

    fn put_hardlink(&mut self, t: &Target<'_>, e: &Entry) -> Result<(), LayerError> {
        let tcomps = clean_components(&e.link).map_err(|r| t.unsafe_entry(r))?;
        let Some((tname, tparents)) = tcomps.split_last() else {
            return Err(t.unsafe_entry("hard link to the layer root"));
        };
        let tparent = self
            .resolve(tparents, OFlags::PATH)
            .map_err(t.errno("resolve link target"))?;
        let tstat = rustix::fs::statat(&tparent, os(tname), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(t.errno("stat link target"))?;
        if FileType::from_raw_mode(tstat.st_mode) == FileType::Directory {
            return Err(t.unsafe_entry("hard link to a directory"));
        }
        match rustix::fs::statat(&t.parent, os(t.name), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if st.st_dev == tstat.st_dev && st.st_ino == tstat.st_ino => return Ok(()),
            _ => remove_existing(&t.parent, t.name).map_err(t.errno("replace"))?,
        }
        rustix::fs::linkat(&tparent, os(tname), &t.parent, os(t.name), AtFlags::empty())
            .map_err(t.errno("create hard link"))
    }

    fn put_node(&mut self, t: &Target<'_>, e: &Entry, owner: Owner) -> Result<(), LayerError> {
        let (ft, dev) = match e.kind {
            Kind::Fifo => (FileType::Fifo, 0),
            Kind::Char => (
                FileType::CharacterDevice,
                rustix::fs::makedev(e.dev_major, e.dev_minor),
            ),
            _ => (
                FileType::BlockDevice,
                rustix::fs::makedev(e.dev_major, e.dev_minor),
            ),
        };
        remove_existing(&t.parent, t.name).map_err(t.errno("replace"))?;
        let mode = Mode::from_raw_mode(e.mode);
        match rustix::fs::mknodat(&t.parent, os(t.name), ft, mode, dev) {
            Ok(()) => {}
            Err(Errno::PERM | Errno::ACCESS) if ft != FileType::Fifo => {
                self.stats.skipped_devices.push(t.rel.clone());
                return Ok(());
            }
            Err(err) => return Err(t.errno("create device node")(err)),
        }
        self.chown_at(&t.parent, t.name, owner, &t.rel)?;
        set_times_at(&t.parent, t.name, e.mtime).map_err(t.errno("set times of"))
    }

    /// Open `comps` (a directory path) inside the root, creating missing
    /// directories as implied ones.
    fn open_dir(
        &mut self,
        comps: &[&[u8]],
        flags: OFlags,
        rel: &Path,
    ) -> Result<OwnedFd, LayerError> {
        let err = |op: &'static str| move |e: Errno| LayerError::io(op, rel)(e.into());
        match self.resolve(comps, flags) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT | Errno::NOTDIR) => {}
            Err(e) => return Err(err("open parent directory of")(e)),
        }
        for i in 1..=comps.len() {
            self.imply_dir(&comps[..i])
                .map_err(err("create parent directory of"))?;
        }
        self.resolve(comps, flags)
            .map_err(err("open parent directory of"))
    }

    /// Make sure the directory `comps` exists: its last component is made
    /// as an implied directory if missing, or in place of this layer's
    /// whiteout or regular file (then opaque: what the lower layers had
    /// there was deleted, as a flat unpack would have it).
    fn imply_dir(&mut self, comps: &[&[u8]]) -> Result<(), Errno> {
        match self.resolve(comps, OFlags::PATH) {
            Ok(_) => return Ok(()),
            Err(Errno::NOENT | Errno::NOTDIR) => {}
            Err(e) => return Err(e),
        }
        let Some((name, parents)) = comps.split_last() else {
            return Ok(());
        };
        let up = self.resolve(parents, OFlags::PATH)?;
        let below = self.union.as_ref().and_then(|u| u.dir_stat(comps));
        let opaque = match rustix::fs::statat(&up, os(name), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if is_whiteout(&st) || FileType::from_raw_mode(st.st_mode).is_file() => {
                rustix::fs::unlinkat(&up, os(name), AtFlags::empty())?;
                true
            }
            _ => false,
        };
        match rustix::fs::mkdirat(&up, os(name), Mode::from_raw_mode(IMPLIED_DIR_MODE)) {
            // EEXIST: a dangling symlink in the way: resolving through it
            // failed with ENOENT, and it is not ours to follow (the open
            // below refuses it).
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e),
        }
        let fd = open_child_dir(&up, name)?;
        let mut mtime = 0;
        match below {
            Some(st) => {
                let (uid, gid) = (Uid::from_raw(st.st_uid), Gid::from_raw(st.st_gid));
                match rustix::fs::fchown(&fd, Some(uid), Some(gid)) {
                    // EINVAL: the lower directory's owner has no mapping
                    // here; it was unpacked by another user namespace.
                    Ok(()) | Err(Errno::INVAL) => {}
                    Err(e) => return Err(e),
                }
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(st.st_mode & 0o7777))?;
                mtime = st.st_mtime;
            }
            None => rustix::fs::fchmod(&fd, Mode::from_raw_mode(IMPLIED_DIR_MODE))?,
        }
        if opaque {
            set_opaque(&fd)?;
        }
        self.dir_times.entry(join(comps)).or_insert(mtime);
        self.stats.implied_dirs.push(join(comps));
        Ok(())
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

    fn set_xattrs<Fd: AsFd>(&mut self, fd: Fd, e: &Entry, rel: &Path) -> Result<(), LayerError> {
        for (name, value) in &e.xattrs {
            if is_overlay_xattr(name) || name.is_empty() {
                continue;
            }
            let flags = rustix::fs::XattrFlags::empty();
            match rustix::fs::fsetxattr(fd.as_fd(), os(name), value, flags) {
                Ok(()) => {}
                Err(Errno::PERM | Errno::NOTSUP | Errno::ACCESS) => {
                    self.stats.skipped_xattrs.push((
                        rel.to_path_buf(),
                        String::from_utf8_lossy(name).into_owned(),
                    ))
                }
                Err(err) => return Err(LayerError::io("set xattr on", rel)(err.into())),
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

fn timestamps(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn set_times_at(parent: &OwnedFd, name: &[u8], mtime: i64) -> Result<(), Errno> {
    rustix::fs::utimensat(
        parent,
        os(name),
        &timestamps(mtime),
        AtFlags::SYMLINK_NOFOLLOW,
    )
}

/// Mark a directory opaque: the lower layers' content under it is hidden.
fn set_opaque(dir: &OwnedFd) -> Result<(), Errno> {
    rustix::fs::fsetxattr(
        dir,
        OPAQUE_XATTR,
        OPAQUE_VALUE,
        rustix::fs::XattrFlags::empty(),
    )
}

/// Open the directory `name` in `parent`, never through a symlink.
fn open_child_dir(parent: &OwnedFd, name: &[u8]) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        parent,
        os(name),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
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
