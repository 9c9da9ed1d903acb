//! ADD of a local archive: a tar (plain, gzip, bzip2, xz or zstd, told by
//! content as Docker does, never by name) is unpacked at the destination;
//! any other file is copied like COPY.
//!
//! This is not layer application (`crate::layer::apply`): an ADDed tar is
//! user content, so `.wh.` names are ordinary files and overlay xattrs mean
//! nothing. It writes through the same [`Tree`](super::tree) as COPY, so
//! entry names and links resolve inside the root file system only; a name
//! with a `..` component is refused outright, a leading `/` dropped. Owners
//! come from the tar unless `--chown`; device nodes and fifos are skipped
//! and listed in the stats.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use tar::EntryType;

use super::tree::Meta;
use super::{Copier, CopyError, CopyOptions, CopyStats};
use crate::build::context::{Context, Source};
use crate::layer::apply::clean_components;

/// Bytes enough to tell every supported compression (xz's magic is 6).
const MAGIC_LEN: usize = 6;
/// Size of a tar header block.
const TAR_BLOCK: usize = 512;
/// Where the "ustar" magic sits in a tar header.
const USTAR_MAGIC_AT: usize = 257;
/// The checksum field of a tar header: offset and length.
const CHECKSUM_FIELD: std::ops::Range<usize> = 148..156;

/// The compression of an archive, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

impl Compression {
    pub fn detect(head: &[u8]) -> Compression {
        match head {
            [0x1f, 0x8b, 0x08, ..] => Compression::Gzip,
            [b'B', b'Z', b'h', ..] => Compression::Bzip2,
            [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Compression::Xz,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            _ => Compression::None,
        }
    }
}

/// Does this block look like a tar header (ustar magic, or an old-style
/// header whose checksum adds up)?
pub fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < TAR_BLOCK {
        return false;
    }
    if &block[USTAR_MAGIC_AT..USTAR_MAGIC_AT + 5] == b"ustar" {
        return true;
    }
    let field = &block[CHECKSUM_FIELD];
    let digits: String = field
        .iter()
        .take_while(|&&b| b != 0 && b != b' ')
        .skip_while(|&&b| b == b' ')
        .map(|&b| b as char)
        .collect();
    let Ok(stored) = u32::from_str_radix(digits.trim(), 8) else {
        return false;
    };
    let sum: u32 = block[..TAR_BLOCK]
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if CHECKSUM_FIELD.contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    // An all-zero block sums to 256 (the spaces), which is not a header.
    stored == sum && block[..100].iter().any(|&b| b != 0)
}

/// The decompressed stream of `file`.
fn decoder(file: File, compression: Compression) -> io::Result<Box<dyn Read>> {
    let input = BufReader::new(file);
    Ok(match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
        Compression::Xz => Box::new(XzReader::spawn(input)?),
    })
}

/// lzma-rs decodes xz into a writer; a thread feeds a pipe so the tar
/// reader can stream it. The thread's error surfaces at end of stream.
struct XzReader {
    pipe: Option<File>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl XzReader {
    fn spawn(mut input: BufReader<File>) -> io::Result<XzReader> {
        let (rx, tx) = nix::unistd::pipe().map_err(io::Error::from)?;
        let mut tx = File::from(tx);
        let thread = std::thread::spawn(move || {
            lzma_rs::xz_decompress(&mut input, &mut tx).map_err(|e| match e {
                lzma_rs::error::Error::IoError(e) => e,
                other => io::Error::new(io::ErrorKind::InvalidData, format!("xz: {other}")),
            })
        });
        Ok(XzReader {
            pipe: Some(File::from(rx)),
            thread: Some(thread),
        })
    }
}

impl Read for XzReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(pipe) = self.pipe.as_mut() else {
            return Ok(0);
        };
        let n = pipe.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if let Some(t) = self.thread.take() {
                t.join()
                    .map_err(|_| io::Error::other("xz decoder thread panicked"))??;
            }
        }
        Ok(n)
    }
}

impl Drop for XzReader {
    fn drop(&mut self) {
        // Closing our end first makes a still-running decoder fail with
        // EPIPE and stop; its result no longer matters to anyone.
        drop(self.pipe.take());
        if let Some(t) = self.thread.take() {
            let _finished = t.join();
        }
    }
}

/// Sniff a context file: its compression if it is a tar, `None` if not.
fn sniff(copier: &Copier<'_>, rel: &Path) -> Result<Option<Compression>, CopyError> {
    let Some(root) = &copier.src_root else {
        return Ok(None);
    };
    let shown = copier.ctx.root().join(rel);
    let mut file = copier.ctx.open_file(root, rel)?;
    let mut head = [0u8; MAGIC_LEN];
    let mut got = 0;
    while got < MAGIC_LEN {
        match file.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(CopyError::io("read", shown)(e)),
        }
    }
    let compression = Compression::detect(&head[..got]);
    file.seek(io::SeekFrom::Start(0))
        .map_err(CopyError::io("seek", &shown))?;
    let Ok(mut stream) = decoder(file, compression) else {
        return Ok(None);
    };
    let mut block = vec![0u8; TAR_BLOCK];
    let mut filled = 0;
    while filled < TAR_BLOCK {
        match stream.read(&mut block[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            // A corrupt stream is not an archive: Docker copies it as is.
            Err(_) => return Ok(None),
        }
    }
    Ok(is_tar_header(&block[..filled]).then_some(compression))
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
        Some(compression) => extract(copier, source, compression, dest).map(|()| true),
        None => Ok(false),
    }
}

/// Unpack one archive into the directory `dest`.
fn extract(
    copier: &mut Copier<'_>,
    source: &Source,
    compression: Compression,
    dest: &Path,
) -> Result<(), CopyError> {
    let archive_path = copier.ctx.root().join(&source.target);
    let Some(root) = &copier.src_root else {
        return Ok(());
    };
    let file = copier.ctx.open_file(root, &source.target)?;
    let stream = decoder(file, compression).map_err(CopyError::io("read", &archive_path))?;
    let owner = copier.created_owner();
    copier.tree.open_dir(dest, owner)?;
    let mut archive = tar::Archive::new(stream);
    let entries = archive.entries().map_err(|e| CopyError::Archive {
        archive: archive_path.clone(),
        entry: String::new(),
        cause: e,
    })?;
    let mut last = String::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| CopyError::Archive {
            archive: archive_path.clone(),
            entry: format!("after {last}"),
            cause: e,
        })?;
        last = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        extract_entry(copier, &mut entry, &archive_path, &last, dest)?;
    }
    Ok(())
}

fn extract_entry<R: Read>(
    copier: &mut Copier<'_>,
    entry: &mut tar::Entry<'_, R>,
    archive: &Path,
    shown: &str,
    dest: &Path,
) -> Result<(), CopyError> {
    let unsafe_entry = |reason| CopyError::UnsafeEntry {
        archive: archive.to_path_buf(),
        entry: shown.to_string(),
        reason,
    };
    let bad_header = |e| CopyError::Archive {
        archive: archive.to_path_buf(),
        entry: shown.to_string(),
        cause: e,
    };
    let raw = entry.path_bytes().into_owned();
    let comps = clean_components(&raw).map_err(unsafe_entry)?;
    let kind = entry.header().entry_type();
    if comps.is_empty() || matches!(kind, EntryType::XGlobalHeader | EntryType::XHeader) {
        // The archive's root ("./") names the destination itself, which
        // keeps its own metadata.
        return Ok(());
    }
    let mut at = dest.to_path_buf();
    for c in &comps {
        at.push(std::ffi::OsStr::from_bytes(c));
    }
    let header = entry.header();
    let old = header.as_old();
    let (uid, gid) = match copier.opts.chown {
        Some(ids) => ids,
        None => (
            u32::try_from(number(header.uid(), &old.uid).map_err(bad_header)?)
                .map_err(|_| unsafe_entry("uid out of range"))?,
            u32::try_from(number(header.gid(), &old.gid).map_err(bad_header)?)
                .map_err(|_| unsafe_entry("gid out of range"))?,
        ),
    };
    let mode = match copier.opts.chmod {
        Some(m) => m,
        None => {
            number(header.mode().map(u64::from), &old.mode).map_err(bad_header)? as u32 & 0o7777
        }
    };
    let mtime = number(header.mtime(), &old.mtime).map_err(bad_header)?;
    let meta = Meta {
        uid,
        gid,
        mode,
        mtime_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
        mtime_nsec: 0,
    };
    let (Some(parent), Some(name)) = (at.parent(), at.file_name()) else {
        return Ok(());
    };
    let owner = copier.created_owner();
    let pfd = copier.tree.open_dir(parent, owner)?;
    match kind {
        EntryType::Directory => {
            copier.tree.put_dir(&pfd, name, &at, Some(meta))?;
            copier.stats.dirs += 1;
        }
        EntryType::Regular | EntryType::Continuous => {
            let n = copier.tree.put_file(&pfd, name, &at, entry, meta, &[])?;
            copier.stats.files += 1;
            copier.stats.bytes += n;
        }
        EntryType::Symlink => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| unsafe_entry("symlink without a target"))?
                .into_owned();
            let target = PathBuf::from(std::ffi::OsStr::from_bytes(&target));
            copier.tree.put_symlink(&pfd, name, &at, &target, meta)?;
            copier.stats.symlinks += 1;
        }
        EntryType::Link => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| unsafe_entry("hard link without a target"))?
                .into_owned();
            let tcomps = clean_components(&target).map_err(unsafe_entry)?;
            if tcomps.is_empty() {
                return Err(unsafe_entry("hard link to the archive root"));
            }
            let mut existing = dest.to_path_buf();
            for c in &tcomps {
                existing.push(std::ffi::OsStr::from_bytes(c));
            }
            copier.tree.put_hardlink(&pfd, name, &at, &existing)?;
            copier.tree.set_linked_meta(&pfd, name, &at, meta)?;
            copier.stats.hardlinks += 1;
        }
        // Devices need privileges a rootless build lacks, and a fifo in an
        // image is almost always a mistake: listed, not made.
        _ => copier.stats.skipped.push(at),
    }
    Ok(())
}

/// A numeric header field; an empty one (all NULs or spaces, as some tar
/// writers leave uid and gid) is 0, as Go's archive/tar reads it for Docker.
fn number(parsed: io::Result<u64>, raw: &[u8]) -> io::Result<u64> {
    match raw.iter().all(|&b| b == 0 || b == b' ') {
        true => Ok(0),
        false => parsed,
    }
}
