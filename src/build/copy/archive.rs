//! ADD of a local archive: a tar (plain, gzip, bzip2, xz or zstd, told by
//! content as Docker does, never by name) is unpacked at the destination;
//! any other file is copied like COPY.
//!
//! This is not layer application (`crate::layer::apply`): an ADDed tar is
//! user content, so `.wh.` names are ordinary files and overlay xattrs mean
//! nothing. But it is read by the same reader and decompressor (so the
//! same bytes list the same members, and a bomb stops at the same caps).
//!
//! The destination is the archive's root, as in Docker: entries and the
//! symlinks among them resolve inside it (`symldir1 -> ..` then
//! `symldir1/etc/myfile`, added to `/testsubdir/`, gives
//! `/testsubdir/etc/myfile`), written through a [`Tree`] rooted at the
//! destination directory, so nothing can land outside it. As in Docker, a
//! parent that exists (even as a dangling symlink, `abs -> /etc` with no
//! `etc` in the destination) is used as it is, and a missing one is
//! created. Names are cleaned lexically; one whose `..` climbs above the
//! root is refused. Owners come from the tar unless `--chown`; device
//! nodes and fifos are skipped and listed in the stats.

use std::ffi::OsStr;
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::tree::{Meta, Tree};
use super::{Copier, CopyError, CopyOptions, CopyStats};
use crate::build::context::{Context, Source};
use crate::layer::apply::clean_components;
use crate::layer::compress::{with_decompressed, Compression};
use crate::layer::reader::{self, Entry, Kind, TarReader, BLOCK};

/// Read-ahead of the tar stream (a block header is 512 bytes).
const READ_BUFFER: usize = 256 << 10;

/// Sniff a context file: its compression if it is a tar, `None` if not.
fn sniff(copier: &Copier<'_>, rel: &Path) -> Result<Option<Compression>, CopyError> {
    let Some(root) = &copier.src_root else {
        return Ok(None);
    };
    let file = copier.ctx.open_file(root, rel)?;
    let found = with_decompressed(BufReader::new(file), |compression, stream| {
        let mut block = [0u8; BLOCK];
        let mut filled = 0;
        while filled < BLOCK {
            match stream.read(&mut block[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                // A corrupt stream is not an archive: Docker copies it as is.
                Err(_) => return None,
            }
        }
        reader::is_header(&block[..filled]).then_some(compression)
    });
    found.map_err(CopyError::io("read", copier.ctx.root().join(rel)))
}

/// ADD: unpack local tar archives at `dest`, copy everything else.
pub fn add_sources(
    ctx: &Context,
    sources: &[Source],
    rootfs: &Path,
    dest: &str,
    opts: &CopyOptions,
) -> Result<CopyStats, CopyError> {
    super::copy_or_add(ctx, sources, rootfs, dest, opts, true)
}

/// Unpack `source` at `dest` if it is an archive; false if it is not.
pub(super) fn try_extract(
    copier: &mut Copier<'_>,
    source: &Source,
    dest: &Path,
) -> Result<bool, CopyError> {
    match sniff(copier, &source.target)? {
        Some(_) => extract(copier, source, dest).map(|()| true),
        None => Ok(false),
    }
}

/// Unpack one archive into the directory `dest`, the archive's root.
fn extract(copier: &mut Copier<'_>, source: &Source, dest: &Path) -> Result<(), CopyError> {
    let archive = copier.ctx.root().join(&source.target);
    let Some(root) = &copier.src_root else {
        return Ok(());
    };
    let file = copier.ctx.open_file(root, &source.target)?;
    let top = copier.tree.open_dir(dest, copier.created_owner())?;
    let mut tree = copier.tree.subtree(top, dest);
    let read_err = |cause| CopyError::Archive {
        archive: archive.clone(),
        entry: String::new(),
        cause,
    };
    with_decompressed(BufReader::new(file), |_, stream| {
        unpack(copier, &mut tree, stream, &archive)
    })
    .map_err(read_err)??;
    copier.tree.skipped_xattrs.append(&mut tree.skipped_xattrs);
    tree.finish()
}

fn unpack(
    copier: &mut Copier<'_>,
    tree: &mut Tree,
    stream: &mut dyn Read,
    archive: &Path,
) -> Result<(), CopyError> {
    let mut reader = TarReader::new(BufReader::with_capacity(READ_BUFFER, stream));
    let mut last = String::new();
    loop {
        let entry = reader.next_entry().map_err(|e| CopyError::Archive {
            archive: archive.to_path_buf(),
            entry: format!("after {last}"),
            cause: io::Error::new(io::ErrorKind::InvalidData, e),
        })?;
        let Some(entry) = entry else {
            return Ok(());
        };
        last = String::from_utf8_lossy(&entry.path).into_owned();
        let at = Located {
            archive,
            shown: &last,
        };
        extract_entry(copier, tree, &entry, &mut reader.data(), &at)?;
    }
}

/// Where an entry comes from, for errors.
struct Located<'a> {
    archive: &'a Path,
    shown: &'a str,
}

impl Located<'_> {
    fn unsafe_entry(&self, reason: &'static str) -> CopyError {
        CopyError::UnsafeEntry {
            archive: self.archive.to_path_buf(),
            entry: self.shown.to_string(),
            reason,
        }
    }
}

/// The path of `comps` under the archive's root.
fn rooted(comps: &[&[u8]]) -> PathBuf {
    let mut p = PathBuf::from("/");
    for c in comps {
        p.push(OsStr::from_bytes(c));
    }
    p
}

fn extract_entry(
    copier: &mut Copier<'_>,
    tree: &mut Tree,
    entry: &Entry,
    data: &mut dyn Read,
    loc: &Located<'_>,
) -> Result<(), CopyError> {
    let comps = clean_components(&entry.path).map_err(|r| loc.unsafe_entry(r))?;
    if comps.is_empty() {
        // The archive's root ("./") names the destination itself, which
        // keeps its own metadata.
        return Ok(());
    }
    let at = rooted(&comps);
    let meta = entry_meta(copier.opts, entry, loc)?;
    let (Some(parent), Some(name)) = (at.parent(), at.file_name()) else {
        return Ok(());
    };
    let pfd = tree.open_parent(parent, copier.created_owner())?;
    match entry.kind {
        Kind::Dir => {
            tree.put_dir(&pfd, name, &at, Some(meta))?;
            copier.stats.dirs += 1;
        }
        Kind::File => {
            let n = tree.put_file(&pfd, name, &at, data, meta, &[])?;
            copier.stats.files += 1;
            copier.stats.bytes += n;
        }
        Kind::Symlink => {
            let target = PathBuf::from(OsStr::from_bytes(&entry.link));
            tree.put_symlink(&pfd, name, &at, &target, meta)?;
            copier.stats.symlinks += 1;
        }
        Kind::HardLink => {
            let tcomps = clean_components(&entry.link).map_err(|r| loc.unsafe_entry(r))?;
            if tcomps.is_empty() {
                return Err(loc.unsafe_entry("hard link to the archive root"));
            }
            tree.put_hardlink(&pfd, name, &at, &rooted(&tcomps))?;
            tree.set_linked_meta(&pfd, name, &at, meta)?;
            copier.stats.hardlinks += 1;
        }
        // Devices need privileges a rootless build lacks, and a fifo in an
        // image is almost always a mistake: listed, not made.
        _ => copier.stats.skipped.push(at),
    }
    Ok(())
}

/// Owner, mode and time of an entry, after `--chown` and `--chmod`.
fn entry_meta(opts: &CopyOptions, entry: &Entry, loc: &Located<'_>) -> Result<Meta, CopyError> {
    let id = |v: u64| u32::try_from(v).map_err(|_| loc.unsafe_entry("uid or gid out of range"));
    let (uid, gid) = match opts.chown {
        Some(ids) => ids,
        None => (id(entry.uid)?, id(entry.gid)?),
    };
    Ok(Meta {
        uid,
        gid,
        mode: opts.chmod.unwrap_or(entry.mode),
        mtime_sec: entry.mtime,
        mtime_nsec: 0,
    })
}
