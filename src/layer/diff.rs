//! A layer directory to a deterministic tar stream.
//!
//! The same directory always gives the same bytes, so a layer's diff id can
//! be recomputed at any time: entries are visited depth first with each
//! directory's names sorted bytewise; every header field comes from the file
//! (mode, uid, gid, mtime in whole seconds, size, link target, device
//! numbers) and nothing from the clock, the user database or the walk
//! order; user and group names are left empty. Overlay whiteouts (char 0:0)
//! become `.wh.NAME` entries and an opaque directory is followed by its
//! `.wh..wh..opq` entry; overlay xattrs are never written. Hard links are
//! detected by (dev, ino): the first path in walk order carries the data,
//! later ones are link entries. Names or link targets over 100 bytes, ids
//! beyond ustar's octal range and xattrs (`SCHILY.xattr.NAME`) go into a PAX
//! extended header in front of the entry.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::Metadata;
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use super::whiteout::{self, is_opaque_xattr, is_overlay_xattr, OPAQUE_MARKER};
use super::LayerError;
use crate::digest::{DiffId, HashingWriter};

/// Size of a tar block.
const BLOCK: usize = 512;
/// Length of ustar's name and linkname fields.
const USTAR_NAME_LEN: usize = 100;
/// Largest value of ustar's 8-byte octal uid/gid fields (7 digits + NUL).
const USTAR_ID_MAX: u64 = 0o7_777_777;
/// Largest value of ustar's 12-byte octal size field (11 digits + NUL).
const USTAR_SIZE_MAX: u64 = 0o77_777_777_777;

/// What writing a layer's tar found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffStats {
    /// sha256 of the tar stream.
    pub diff_id: DiffId,
    /// Length of the tar stream.
    pub tar_size: u64,
    /// Sum of the sizes of the regular files (each inode once), as Docker
    /// counts a layer's size.
    pub content_size: u64,
}

/// Write the deterministic tar of `dir` to `out`.
pub fn write_tar<W: Write>(dir: &Path, out: W) -> Result<DiffStats, LayerError> {
    let mut t = TarWriter::new(out, &TarOptions::default());
    t.walk(dir, Path::new(""))?;
    t.end(dir)
}

/// How [`write_merged_tar`] writes a stack of layers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TarOptions {
    /// mtimes later than this are written as this (`SOURCE_DATE_EPOCH`, as
    /// BuildKit's rewrite-timestamp).
    pub clamp_mtime: Option<u64>,
    /// Owners written as 0:0 (a root file system for the calling user to
    /// own: `-o type=local`).
    pub reset_owners: bool,
}

/// The deterministic tar of the union of `layers` (layer directories,
/// bottom first) as overlayfs shows it, as one layer above `base` (the
/// layers under them, bottom first; none for a whole root file system):
/// for each path the top-most layer's entry; a whiteout deletes what is
/// below, an opaque directory or a non-directory hides what is below it. A
/// deletion is written only where `base` has something to delete, as
/// overlayfs itself makes them (a whiteout over nothing would show in a
/// directory overlayfs reads without merging). One layer over the layers
/// it was made on gives exactly [`write_tar`]'s bytes.
pub fn write_merged_tar<W: Write>(
    layers: &[PathBuf],
    base: &[PathBuf],
    opts: &TarOptions,
    out: W,
) -> Result<DiffStats, LayerError> {
    let mut t = TarWriter::new(out, opts);
    let (dirs, hides) = stack_roots(layers);
    let below = match hides {
        true => Vec::new(),
        false => stack_roots(base).0,
    };
    t.walk_union(&dirs, &below, Path::new(""))?;
    t.end(layers.first().map_or(Path::new("."), |p| p.as_path()))
}

/// The roots of a stack (bottom first) top first, down to the first whose
/// root is opaque (overlayfs ignores what is under it); whether one was.
fn stack_roots(layers: &[PathBuf]) -> (Vec<PathBuf>, bool) {
    let mut dirs = Vec::new();
    for dir in layers.iter().rev() {
        dirs.push(dir.clone());
        if whiteout::is_opaque_dir(dir) {
            return (dirs, true);
        }
    }
    (dirs, false)
}

impl<W: Write> TarWriter<W> {
    fn new(out: W, opts: &TarOptions) -> TarWriter<W> {
        TarWriter {
            out: HashingWriter::new(out),
            links: HashMap::new(),
            content_size: 0,
            opts: *opts,
        }
    }

    /// The end-of-archive blocks; the stats.
    fn end(mut self, dir: &Path) -> Result<DiffStats, LayerError> {
        self.out
            .write_all(&[0u8; 2 * BLOCK])
            .and_then(|()| self.out.flush())
            .map_err(LayerError::io("write tar of", dir))?;
        let (digest, tar_size, _) = self.out.finish();
        Ok(DiffStats {
            diff_id: DiffId(digest),
            tar_size,
            content_size: self.content_size,
        })
    }

    /// One directory of the union: `dirs` are its pieces in the stack,
    /// `below` its pieces in the base (top first).
    fn walk_union(
        &mut self,
        dirs: &[PathBuf],
        below: &[PathBuf],
        rel: &Path,
    ) -> Result<(), LayerError> {
        let mut names = std::collections::BTreeSet::new();
        for d in dirs {
            names.extend(sorted_names(d)?.into_iter().map(OsString::into_vec));
        }
        for name in names {
            let name = OsString::from_vec(name);
            let Some((top, meta)) = top_entry(dirs, &name)? else {
                continue;
            };
            let in_base = match top_entry(below, &name)? {
                Some((_, m)) => !is_whiteout(&m),
                None => false,
            };
            let (abs, rel_child) = (dirs[top].join(&name), rel.join(&name));
            if !meta.is_dir() {
                if !is_whiteout(&meta) || in_base {
                    self.entry(&abs, &rel_child, &meta, Some(false))?;
                }
                continue;
            }
            let (pieces, hides) = dir_pieces(&dirs[top..], &name)?;
            let below_child = match (hides, in_base) {
                (false, true) => dir_pieces(below, &name)?.0,
                _ => Vec::new(),
            };
            self.entry(&abs, &rel_child, &meta, Some(hides && in_base))?;
            self.walk_union(&pieces, &below_child, &rel_child)?;
        }
        Ok(())
    }
}

fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// The top-most of `dirs` that has `name`, and its metadata.
fn top_entry(dirs: &[PathBuf], name: &OsString) -> Result<Option<(usize, Metadata)>, LayerError> {
    for (i, d) in dirs.iter().enumerate() {
        let p = d.join(name);
        match fs_err::symlink_metadata(&p) {
            Ok(m) => return Ok(Some((i, m))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(LayerError::io("stat", &p)(e)),
        }
    }
    Ok(None)
}

/// The pieces of directory `name` in `dirs` (top first, the first has it
/// as a directory), down to the first that hides the rest: an opaque
/// directory, a whiteout or a non-directory. Whether one did.
fn dir_pieces(dirs: &[PathBuf], name: &OsString) -> Result<(Vec<PathBuf>, bool), LayerError> {
    let mut pieces = Vec::new();
    for d in dirs {
        let p = d.join(name);
        let meta = match fs_err::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(LayerError::io("stat", &p)(e)),
        };
        if !meta.is_dir() {
            return Ok((pieces, true));
        }
        let opaque = whiteout::is_opaque_dir(&p);
        pieces.push(p);
        if opaque {
            return Ok((pieces, true));
        }
    }
    Ok((pieces, false))
}

/// The diff id of `dir`, from its tar streamed into the hash only.
pub fn diff_id(dir: &Path) -> Result<DiffStats, LayerError> {
    write_tar(dir, io::sink())
}

/// Sum of regular file sizes under `dir`, each inode counted once.
pub fn content_size(dir: &Path) -> Result<u64, LayerError> {
    Ok(diff_id(dir)?.content_size)
}

/// An entry's header, PAX records and name while they are being made.
struct Pending {
    header: Header,
    pax: Vec<(String, Vec<u8>)>,
    name: Vec<u8>,
}

struct TarWriter<W: Write> {
    out: HashingWriter<W>,
    /// (dev, ino) of multiply-linked files -> their first path in the tar.
    links: HashMap<(u64, u64), Vec<u8>>,
    content_size: u64,
    opts: TarOptions,
}

/// The names in `dir`, sorted bytewise.
fn sorted_names(dir: &Path) -> Result<Vec<OsString>, LayerError> {
    let mut names = Vec::new();
    for entry in fs_err::read_dir(dir).map_err(LayerError::io("read directory", dir))? {
        names.push(
            entry
                .map_err(LayerError::io("read directory", dir))?
                .file_name(),
        );
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// xattr (name, value) pairs.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// The xattrs of `path` (not following a symlink), sorted by name.
pub(crate) fn read_xattrs(path: &Path) -> Result<Xattrs, LayerError> {
    xattrs_of(path).map_err(LayerError::io("read xattrs of", path))
}

/// [`read_xattrs`] for callers with errors of their own (the container
/// drivers' diff and copy).
pub(crate) fn xattrs_of(path: &Path) -> io::Result<Xattrs> {
    let list = xattr_names(path)?;
    let mut out = Vec::new();
    for name in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name_os = OsString::from_vec(name.to_vec());
        let size = match rustix::fs::lgetxattr_query(path, name_os.as_os_str()) {
            Ok(size) => size,
            // Removed between list and get: it is not part of the file now.
            Err(rustix::io::Errno::NODATA) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut value = vec![0u8; size];
        let n = rustix::fs::lgetxattr(path, name_os.as_os_str(), &mut value[..])?;
        value.truncate(n);
        out.push((name.to_vec(), value));
    }
    out.sort();
    Ok(out)
}

/// The NUL-separated xattr names of `path`. One llistxattr into a buffer
/// that holds the usual few names (most files have none; a COPY and its
/// commit list every file's), the size asked only when it is too small.
fn xattr_names(path: &Path) -> io::Result<Vec<u8>> {
    let mut list = vec![0u8; 1024];
    loop {
        match rustix::fs::llistxattr(path, &mut list[..]) {
            Ok(len) => {
                list.truncate(len);
                return Ok(list);
            }
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            // The max: names added between the query and the next try
            // cannot make this loop forever.
            Err(rustix::io::Errno::RANGE) => {
                let len = rustix::fs::llistxattr_query(path)?;
                list.resize(len.max(list.len() * 2), 0);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

impl<W: Write> TarWriter<W> {
    fn walk(&mut self, abs: &Path, rel: &Path) -> Result<(), LayerError> {
        for name in sorted_names(abs)? {
            let abs_child = abs.join(&name);
            let rel_child = rel.join(&name);
            let meta =
                fs_err::symlink_metadata(&abs_child).map_err(LayerError::io("stat", &abs_child))?;
            self.entry(&abs_child, &rel_child, &meta, None)?;
            if meta.is_dir() {
                self.walk(&abs_child, &rel_child)?;
            }
        }
        Ok(())
    }

    /// One entry; `opaque`: whether a directory is written opaque (`None`:
    /// as its xattr says).
    fn entry(
        &mut self,
        abs: &Path,
        rel: &Path,
        meta: &Metadata,
        opaque: Option<bool>,
    ) -> Result<(), LayerError> {
        if meta.file_type().is_socket() {
            // Sockets cannot be archived; Docker skips them too.
            return Ok(());
        }
        let mut xattrs = read_xattrs(abs)?;
        let opaque = opaque
            .unwrap_or_else(|| meta.is_dir() && xattrs.iter().any(|(n, v)| is_opaque_xattr(n, v)));
        xattrs.retain(|(n, _)| !is_overlay_xattr(n));

        let mut e = Pending {
            header: Header::new_ustar(),
            pax: Vec::new(),
            name: rel.as_os_str().as_bytes().to_vec(),
        };
        e.header.set_mode(meta.mode() & 0o7777);
        let mtime = u64::try_from(meta.mtime()).unwrap_or(0);
        e.header
            .set_mtime(self.opts.clamp_mtime.map_or(mtime, |c| mtime.min(c)));
        let (uid, gid) = match self.opts.reset_owners {
            true => (0, 0),
            false => (meta.uid(), meta.gid()),
        };
        set_id(&mut e.header, &mut e.pax, "uid", u64::from(uid));
        set_id(&mut e.header, &mut e.pax, "gid", u64::from(gid));
        let data = self.kind_fields(&mut e, abs, rel, meta)?;
        set_name_field(&mut e.header.as_old_mut().name, &mut e.pax, "path", &e.name);
        for (xname, value) in xattrs {
            let mut key = "SCHILY.xattr.".to_string();
            key.push_str(&String::from_utf8_lossy(&xname));
            e.pax.push((key, value));
        }
        let write_err = LayerError::io("write tar of", abs);
        let written = (|| {
            if !e.pax.is_empty() {
                self.write_pax(&e.name, &e.pax)?;
            }
            e.header.set_cksum();
            self.out.write_all(e.header.as_bytes())
        })();
        written.map_err(write_err)?;
        if let Some(size) = data {
            self.file_data(abs, size)?;
        }
        if opaque {
            self.opaque_marker(&e.name, &e.header)
                .map_err(LayerError::io("write tar of", abs))?;
        }
        Ok(())
    }

    /// The type-dependent fields of an entry's header; the size of the
    /// data to write after it, for a regular file that carries it.
    fn kind_fields(
        &mut self,
        e: &mut Pending,
        abs: &Path,
        rel: &Path,
        meta: &Metadata,
    ) -> Result<Option<u64>, LayerError> {
        let ft = meta.file_type();
        let (kind, data) = if ft.is_char_device() && meta.rdev() == 0 {
            // An overlay whiteout: `.wh.NAME`, an empty regular file.
            e.name = tar_whiteout_path(rel).into_os_string().into_vec();
            (EntryType::Regular, None)
        } else if ft.is_dir() {
            e.name.push(b'/');
            (EntryType::Directory, None)
        } else if ft.is_symlink() {
            let target = fs_err::read_link(abs).map_err(LayerError::io("read link", abs))?;
            let field = &mut e.header.as_old_mut().linkname;
            set_name_field(field, &mut e.pax, "linkpath", target.as_os_str().as_bytes());
            (EntryType::Symlink, None)
        } else if ft.is_file() {
            return Ok(self.file_fields(e, meta));
        } else if ft.is_char_device() || ft.is_block_device() {
            let rdev = meta.rdev();
            let dev_err = LayerError::io("set device number of", abs);
            let set = |h: &mut Header| {
                h.set_device_major(rustix::fs::major(rdev))?;
                h.set_device_minor(rustix::fs::minor(rdev))
            };
            set(&mut e.header).map_err(dev_err)?;
            match ft.is_char_device() {
                true => (EntryType::Char, None),
                false => (EntryType::Block, None),
            }
        } else {
            (EntryType::Fifo, None)
        };
        e.header.set_entry_type(kind);
        e.header.set_size(0);
        Ok(data)
    }

    /// A regular file: its data, or a hard link to the first path of its
    /// inode in walk order.
    fn file_fields(&mut self, e: &mut Pending, meta: &Metadata) -> Option<u64> {
        let key = (meta.dev(), meta.ino());
        let first = match meta.nlink() > 1 {
            true => self.links.get(&key).cloned(),
            false => None,
        };
        if let Some(first) = first {
            e.header.set_entry_type(EntryType::Link);
            e.header.set_size(0);
            let field = &mut e.header.as_old_mut().linkname;
            set_name_field(field, &mut e.pax, "linkpath", &first);
            return None;
        }
        if meta.nlink() > 1 {
            self.links.insert(key, e.name.clone());
        }
        e.header.set_entry_type(EntryType::Regular);
        let size = meta.len();
        if size > USTAR_SIZE_MAX {
            e.pax.push(("size".into(), size.to_string().into_bytes()));
            e.header.set_size(0);
        } else {
            e.header.set_size(size);
        }
        self.content_size += size;
        Some(size)
    }

    fn file_data(&mut self, abs: &Path, size: u64) -> Result<(), LayerError> {
        let file = fs_err::File::open(abs).map_err(LayerError::io("open", abs))?;
        let copied = super::chunked::copy(&mut file.take(size), &mut self.out)
            .map_err(LayerError::io("read", abs))?;
        if copied != size {
            return Err(LayerError::FileChanged {
                path: abs.to_path_buf(),
                expected: size,
                found: copied,
            });
        }
        self.pad(size).map_err(LayerError::io("write tar of", abs))
    }

    /// The `.wh..wh..opq` entry after an opaque directory's own entry.
    fn opaque_marker(&mut self, dir_name: &[u8], dir_header: &Header) -> io::Result<()> {
        let mut h = dir_header.clone();
        h.set_entry_type(EntryType::Regular);
        h.set_size(0);
        let mut name = dir_name.to_vec();
        name.extend_from_slice(OPAQUE_MARKER.as_bytes());
        let mut pax = Vec::new();
        set_name_field(&mut h.as_old_mut().name, &mut pax, "path", &name);
        if !pax.is_empty() {
            self.write_pax(&name, &pax)?;
        }
        h.set_cksum();
        self.out.write_all(h.as_bytes())
    }

    fn write_pax(&mut self, name: &[u8], records: &[(String, Vec<u8>)]) -> io::Result<()> {
        let mut data = Vec::new();
        for (key, value) in records {
            data.extend_from_slice(&pax_record(key, value));
        }
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::XHeader);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        let mut pax_name = b"PaxHeaders.0/".to_vec();
        let base = name
            .rsplit(|&b| b == b'/')
            .find(|s| !s.is_empty())
            .unwrap_or(b"");
        pax_name.extend_from_slice(base);
        let field = &mut h.as_old_mut().name;
        let n = pax_name.len().min(USTAR_NAME_LEN);
        field[..n].copy_from_slice(&pax_name[..n]);
        h.set_cksum();
        self.out.write_all(h.as_bytes())?;
        self.out.write_all(&data)?;
        self.pad(data.len() as u64)
    }

    fn pad(&mut self, len: u64) -> io::Result<()> {
        let rem = (len % BLOCK as u64) as usize;
        if rem != 0 {
            self.out.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }
}

/// Put `value` in a 100-byte ustar field, or a PAX record when it is longer.
fn set_name_field(
    field: &mut [u8; USTAR_NAME_LEN],
    pax: &mut Vec<(String, Vec<u8>)>,
    key: &str,
    value: &[u8],
) {
    let n = value.len().min(USTAR_NAME_LEN);
    field.fill(0);
    field[..n].copy_from_slice(&value[..n]);
    if value.len() > USTAR_NAME_LEN {
        pax.push((key.to_string(), value.to_vec()));
    }
}

fn set_id(header: &mut Header, pax: &mut Vec<(String, Vec<u8>)>, key: &str, id: u64) {
    let field = if id > USTAR_ID_MAX {
        pax.push((key.to_string(), id.to_string().into_bytes()));
        0
    } else {
        id
    };
    if key == "uid" {
        header.set_uid(field);
    } else {
        header.set_gid(field);
    }
}

/// One PAX record, `"<len> <key>=<value>\n"`, where len counts itself.
pub(crate) fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    let mut rec = format!("{len} {key}=").into_bytes();
    rec.extend_from_slice(value);
    rec.push(b'\n');
    rec
}

/// Path helper for callers: the `.wh.` name a whiteout of `rel` has in a tar.
pub fn tar_whiteout_path(rel: &Path) -> PathBuf {
    let file = rel.file_name().unwrap_or_default();
    rel.parent()
        .unwrap_or(Path::new(""))
        .join(OsString::from_vec(whiteout::whiteout_name(file)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths() {
        for (key, value, want) in [
            ("path", "a", "9 path=a\n"),
            ("path", "abcdefgh", "17 path=abcdefgh\n"),
            // 98 bytes without the length -> "100 ..." (the length grows a digit).
            ("path", &"x".repeat(89)[..], ""),
        ] {
            let rec = pax_record(key, value.as_bytes());
            let (len, _) = std::str::from_utf8(&rec).unwrap().split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), rec.len(), "{key}={value}");
            if !want.is_empty() {
                assert_eq!(rec, want.as_bytes());
            }
        }
    }

    /// Layers unpacked from tars, bottom first, in `root`.
    fn layers(root: &Path, tars: &[Vec<u8>]) -> Vec<PathBuf> {
        tars.iter()
            .enumerate()
            .map(|(i, t)| {
                let dir = root.join(i.to_string());
                fs_err::create_dir_all(&dir).unwrap();
                crate::layer::apply::apply(&t[..], &dir).unwrap();
                dir
            })
            .collect()
    }

    fn names(tar: &[u8]) -> Vec<String> {
        let mut a = tar::Archive::new(tar);
        a.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn merged_stacks() {
        use crate::layer::tarspec::{tar, T};
        let tmp = tempfile::tempdir().unwrap();
        let base = tar(&[
            T::Dir("d/"),
            T::File("d/keep", b"1"),
            T::File("d/old", b"2"),
            T::Dir("o/"),
            T::File("o/hidden", b"3"),
            T::File("gone", b"4"),
        ]);
        let mid = tar(&[
            T::Dir("d/"),
            T::File("d/new", b"5"),
            T::File(".wh.gone", b""),
        ]);
        let top = tar(&[
            T::Dir("d/"),
            T::File("d/.wh.old", b""),
            T::Dir("o/"),
            T::File("o/.wh..wh..opq", b""),
            T::File("o/fresh", b"6"),
        ]);
        let dirs = layers(tmp.path(), &[base, mid, top]);
        let none = TarOptions::default();
        // One layer over the ones below it: write_tar's bytes exactly.
        for i in 0..dirs.len() {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            write_tar(&dirs[i], &mut a).unwrap();
            write_merged_tar(&dirs[i..=i], &dirs[..i], &none, &mut b).unwrap();
            assert_eq!(a, b);
        }
        // The whole stack as a root file system: no deletions left.
        let mut flat = Vec::new();
        write_merged_tar(&dirs, &[], &none, &mut flat).unwrap();
        assert_eq!(names(&flat), ["d/", "d/keep", "d/new", "o/", "o/fresh"]);
        // The upper two as one layer above the base: deletions kept where
        // the base has something to delete.
        let mut squashed = Vec::new();
        write_merged_tar(&dirs[1..], &dirs[..1], &none, &mut squashed).unwrap();
        // (In the order of the names on disk: `old`'s whiteout is `old`.)
        assert_eq!(
            names(&squashed),
            [
                "d/",
                "d/new",
                "d/.wh.old",
                ".wh.gone",
                "o/",
                "o/.wh..wh..opq",
                "o/fresh"
            ]
        );
        // Clamped times and reset owners.
        let clamp = TarOptions {
            clamp_mtime: Some(0),
            reset_owners: true,
        };
        // A whiteout over nothing below is left out (here `d/new` was
        // never in the base).
        let wh = tar(&[
            T::Dir("d/"),
            T::File("d/.wh.new", b""),
            T::File("d/.wh.keep", b""),
        ]);
        let upper = layers(&tmp.path().join("x"), &[wh]);
        let mut out = Vec::new();
        write_merged_tar(&upper, &dirs[..1], &none, &mut out).unwrap();
        assert_eq!(names(&out), ["d/", "d/.wh.keep"]);
        let mut clamped = Vec::new();
        write_merged_tar(&dirs, &[], &clamp, &mut clamped).unwrap();
        let mut a = tar::Archive::new(&clamped[..]);
        for e in a.entries().unwrap() {
            let h = e.unwrap().header().clone();
            assert_eq!(
                (h.mtime().unwrap(), h.uid().unwrap(), h.gid().unwrap()),
                (0, 0, 0)
            );
        }
    }

    /// More names than the first llistxattr buffer holds: all read, sorted.
    #[test]
    fn xattrs_past_the_first_buffer() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("f");
        fs_err::write(&f, "x").unwrap();
        assert!(read_xattrs(&f).unwrap().is_empty());
        let names: Vec<String> = (0..60)
            .map(|i| format!("user.a-long-attribute-name-{i:02}"))
            .collect();
        for n in &names {
            rustix::fs::lsetxattr(&f, n.as_str(), b"v", rustix::fs::XattrFlags::empty()).unwrap();
        }
        let got = read_xattrs(&f).unwrap();
        // The names with their NULs are more than xattr_names's first buffer.
        assert!(got.iter().map(|(n, _)| n.len() + 1).sum::<usize>() > 1024);
        let got: Vec<_> = got
            .into_iter()
            .map(|(n, v)| (String::from_utf8(n).unwrap(), v))
            .collect();
        let want: Vec<_> = names.into_iter().map(|n| (n, b"v".to_vec())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn whiteout_path() {
        assert_eq!(tar_whiteout_path(Path::new("a/b")), Path::new("a/.wh.b"));
        assert_eq!(tar_whiteout_path(Path::new("b")), Path::new(".wh.b"));
    }
}
