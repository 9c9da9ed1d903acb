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
use std::fs::{self, File, Metadata};
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
    let mut t = TarWriter {
        out: HashingWriter::new(out),
        links: HashMap::new(),
        content_size: 0,
    };
    t.walk(dir, Path::new(""))?;
    t.out
        .write_all(&[0u8; 2 * BLOCK])
        .and_then(|()| t.out.flush())
        .map_err(LayerError::io("write tar of", dir))?;
    let (digest, tar_size, _) = t.out.finish();
    Ok(DiffStats {
        diff_id: DiffId(digest),
        tar_size,
        content_size: t.content_size,
    })
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
}

/// The names in `dir`, sorted bytewise.
fn sorted_names(dir: &Path) -> Result<Vec<OsString>, LayerError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(LayerError::io("read directory", dir))? {
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
    let len = match rustix::fs::llistxattr_query(path) {
        Ok(len) => len,
        Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(LayerError::io("list xattrs of", path)(e.into())),
    };
    let mut list = vec![0u8; len];
    let len = rustix::fs::llistxattr(path, &mut list[..])
        .map_err(|e| LayerError::io("list xattrs of", path)(e.into()))?;
    list.truncate(len);
    let mut out = Vec::new();
    for name in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name_os = OsString::from_vec(name.to_vec());
        let size = match rustix::fs::lgetxattr_query(path, name_os.as_os_str()) {
            Ok(size) => size,
            // Removed between list and get: it is not part of the file now.
            Err(rustix::io::Errno::NODATA) => continue,
            Err(e) => return Err(LayerError::io("read xattr of", path)(e.into())),
        };
        let mut value = vec![0u8; size];
        let n = rustix::fs::lgetxattr(path, name_os.as_os_str(), &mut value[..])
            .map_err(|e| LayerError::io("read xattr of", path)(e.into()))?;
        value.truncate(n);
        out.push((name.to_vec(), value));
    }
    out.sort();
    Ok(out)
}

impl<W: Write> TarWriter<W> {
    fn walk(&mut self, abs: &Path, rel: &Path) -> Result<(), LayerError> {
        for name in sorted_names(abs)? {
            let abs_child = abs.join(&name);
            let rel_child = rel.join(&name);
            let meta =
                fs::symlink_metadata(&abs_child).map_err(LayerError::io("stat", &abs_child))?;
            self.entry(&abs_child, &rel_child, &meta)?;
            if meta.is_dir() {
                self.walk(&abs_child, &rel_child)?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, abs: &Path, rel: &Path, meta: &Metadata) -> Result<(), LayerError> {
        if meta.file_type().is_socket() {
            // Sockets cannot be archived; Docker skips them too.
            return Ok(());
        }
        let mut xattrs = read_xattrs(abs)?;
        let opaque = meta.is_dir() && xattrs.iter().any(|(n, v)| is_opaque_xattr(n, v));
        xattrs.retain(|(n, _)| !is_overlay_xattr(n));

        let mut e = Pending {
            header: Header::new_ustar(),
            pax: Vec::new(),
            name: rel.as_os_str().as_bytes().to_vec(),
        };
        e.header.set_mode(meta.mode() & 0o7777);
        e.header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
        set_id(&mut e.header, &mut e.pax, "uid", u64::from(meta.uid()));
        set_id(&mut e.header, &mut e.pax, "gid", u64::from(meta.gid()));
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
            let target = fs::read_link(abs).map_err(LayerError::io("read link", abs))?;
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
        let file = File::open(abs).map_err(LayerError::io("open", abs))?;
        let copied =
            io::copy(&mut file.take(size), &mut self.out).map_err(LayerError::io("read", abs))?;
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

    #[test]
    fn whiteout_path() {
        assert_eq!(tar_whiteout_path(Path::new("a/b")), Path::new("a/.wh.b"));
        assert_eq!(tar_whiteout_path(Path::new("b")), Path::new(".wh.b"));
    }
}
