//! Ingest writers: the one way bytes become a blob in the store (the
//! content-addressed `blobs/sha256/`), with containerd's content-store
//! semantics (its `ContentSuite`):
//!
//! ```text
//! tmp/ingest-<hex>.lock   flock'ed by the one writer of the ref; <hex> is
//!                         the sha256 of the ref
//! tmp/ingest-<hex>/ref    the ref, for listing
//! tmp/ingest-<hex>/data   the bytes written so far
//! ```
//!
//! An ingest is a staging entry of `tmp/` like any other, named by its
//! ref instead of at random, so the sweep's rule is the same: one whose
//! lock nobody holds is removed by the next command that opens the store
//! (what a killed pull leaves must not wait for `system prune`).
//!
//! - A second writer on a ref that has one (another thread or process) gets
//!   [`StoreError::Unavailable`] at once; nothing waits.
//! - The bytes outlive the writer (dropped, or its process killed): the
//!   next writer on the ref resumes at their end, its digest state
//!   re-derived by reading them again, until the sweep removes them.
//! - [`Writer::commit`] refuses a wrong size or digest with a typed error,
//!   publishing nothing and leaving the ingest for a retry (a new writer
//!   can [`Writer::restart`] it or carry on), as containerd does; a blob
//!   already in the store gives [`StoreError::AlreadyExists`] and the
//!   ingest goes.
//! - [`Store::publish_blob`] takes a [`Sealed`] blob, which only a writer
//!   makes, carrying the digest the writer computed from the bytes: no
//!   caller can name a digest the bytes do not have.
//!

use fs_err::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

use super::fsutil::{self, io_err, mkdirs, FileLock, STAGING_LOCK_SUFFIX};
use super::{Store, StoreError};
use crate::digest::{Digest, DigestMismatch, HashingWriter};
use crate::layer::apply::remove_tree;

/// Prefix of an ingest's name in `tmp/`.
const INGEST_PREFIX: &str = "ingest-";

/// Where an ingest stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub reference: String,
    /// Bytes written so far.
    pub offset: u64,
    /// The size it must reach, when the writer was told.
    pub total: Option<u64>,
}

/// The directory and lock of one ingest; removed when dropped unless kept
/// (a ref'd writer's ingest stays for a resume).
#[derive(Debug)]
struct Ingest {
    dir: PathBuf,
    lock: FileLock,
    keep: bool,
}

impl Ingest {
    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        // Best effort: what is left is found unlocked and swept later.
        if remove_tree(&self.dir).is_ok() {
            let _ = fs_err::remove_file(self.lock.path());
        }
    }
}

/// A writer of one blob, keyed by a ref. Writes go to the ingest's data
/// file, hashed as they go.
#[derive(Debug)]
pub struct Writer {
    reference: String,
    // Dropped before `ingest`: buffered bytes reach the file before the
    // ingest is kept or removed. Hashed as they go.
    data: HashingWriter<io::BufWriter<File>>,
    expected: Option<(u64, Digest)>,
    ingest: Ingest,
    store: Store,
}

/// A complete blob, fsynced, whose digest its writer computed: the only
/// thing [`Store::publish_blob`] accepts. Dropped unpublished, it is
/// removed (complete, there is nothing to resume).
#[derive(Debug)]
pub struct Sealed {
    digest: Digest,
    size: u64,
    ingest: Ingest,
}

impl Sealed {
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The bytes, for reading them again before they are published.
    pub fn path(&self) -> PathBuf {
        self.ingest.data()
    }
}

impl Store {
    fn ingest_root(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The writer of `reference`, resuming what an earlier writer of it
    /// left. `expected` (size, digest), when known, bounds the writes and
    /// is what [`Writer::seal`] checks; a blob already in the store is
    /// [`StoreError::AlreadyExists`] before anything is written.
    pub fn writer(
        &self,
        reference: &str,
        expected: Option<(u64, Digest)>,
    ) -> Result<Writer, StoreError> {
        if let Some((_, digest)) = &expected {
            if self.has_blob(digest) {
                return Err(StoreError::AlreadyExists {
                    digest: digest.clone(),
                });
            }
        }
        self.open_writer(reference, expected, true)
    }

    /// The writer a download of `digest` (`size` bytes) goes into: the one
    /// of `reference`, resuming what a killed download left, or a
    /// temporary one when another process downloads it now or the store
    /// has it already (a layer dropped, its blob kept): never waits.
    pub fn download_writer(
        &self,
        reference: &str,
        size: u64,
        digest: &Digest,
    ) -> Result<Writer, StoreError> {
        let expected = Some((size, digest.clone()));
        match self.writer(reference, expected.clone()) {
            Err(StoreError::Unavailable { .. } | StoreError::AlreadyExists { .. }) => {
                self.temp_writer_expecting(expected)
            }
            w => w,
        }
    }

    /// A writer under a fresh ref nobody can resume, removed when dropped:
    /// for blobs made here (a layer's kept blob, a config).
    pub(crate) fn temp_writer(&self) -> Result<Writer, StoreError> {
        self.temp_writer_expecting(None)
    }

    fn temp_writer_expecting(&self, expected: Option<(u64, Digest)>) -> Result<Writer, StoreError> {
        let reference = format!("temp-{}-{:016x}", std::process::id(), fsutil::random_u64());
        self.open_writer(&reference, expected, false)
    }

    fn open_writer(
        &self,
        reference: &str,
        expected: Option<(u64, Digest)>,
        keep: bool,
    ) -> Result<Writer, StoreError> {
        let root = self.ingest_root();
        let name = format!("{INGEST_PREFIX}{}", Digest::of(reference.as_bytes()).hex());
        let lock_path = root.join(format!("{name}{STAGING_LOCK_SUFFIX}"));
        let lock = loop {
            match FileLock::try_lock(&lock_path, false)? {
                None => {
                    return Err(StoreError::Unavailable {
                        reference: reference.to_string(),
                    })
                }
                Some(lock) if lock.still_linked()? => break lock,
                // A sweeper removed the file between our open and flock.
                Some(_) => continue,
            }
        };
        let ingest = Ingest {
            dir: root.join(&name),
            lock,
            keep,
        };
        mkdirs(&ingest.dir)?;
        let ref_path = ingest.dir.join("ref");
        fs_err::write(&ref_path, reference).map_err(io_err("write", &ref_path))?;
        let path = ingest.data();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err("open", &path))?;
        let (hasher, offset) = rehash(&mut file).map_err(io_err("read", &path))?;
        Ok(Writer {
            reference: reference.to_string(),
            data: HashingWriter::resuming(io::BufWriter::new(file), hasher, offset),
            expected,
            ingest,
            store: self.clone(),
        })
    }

    /// The ingests there are, held or not.
    pub fn ingests(&self) -> Result<Vec<Status>, StoreError> {
        let root = self.ingest_root();
        let entries = match fs_err::read_dir(&root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("read directory", &root)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("read directory", &root))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !name.starts_with(INGEST_PREFIX) || name.ends_with(STAGING_LOCK_SUFFIX) {
                continue;
            }
            let dir = entry.path();
            let (Ok(reference), Ok(meta)) = (
                fs_err::read_to_string(dir.join("ref")),
                fs_err::metadata(dir.join("data")),
            ) else {
                continue;
            };
            out.push(Status {
                reference,
                offset: meta.len(),
                total: None,
            });
        }
        out.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(out)
    }

    /// Move a sealed blob into place; one already there wins (same bytes).
    /// Caller holds the lock.
    pub fn publish_blob(&self, _lock: &FileLock, sealed: Sealed) -> Result<(), StoreError> {
        let dest = self.blob_path(&sealed.digest);
        if !dest.exists() {
            fsutil::publish(&sealed.ingest.data(), &dest)?;
        }
        // Dropping `sealed` removes the ingest.
        Ok(())
    }
}

/// The hash and length of what `file` holds; leaves it positioned at the end.
fn rehash(file: &mut File) -> io::Result<(Sha256, u64)> {
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut offset = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((hasher, offset));
        }
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
}

impl Writer {
    pub fn status(&self) -> Status {
        Status {
            reference: self.reference.clone(),
            offset: self.offset(),
            total: self.expected.as_ref().map(|(size, _)| *size),
        }
    }

    /// The file the bytes are in (for error messages).
    pub fn path(&self) -> PathBuf {
        self.ingest.data()
    }

    /// Bytes written so far (by this writer and those before it).
    pub fn offset(&self) -> u64 {
        self.data.written()
    }

    /// The digest of the bytes written so far.
    pub fn digest(&self) -> Digest {
        self.data.digest()
    }

    /// Start over from no bytes (the source cannot resume).
    pub fn restart(&mut self) -> Result<(), StoreError> {
        let path = self.ingest.data();
        self.data.flush().map_err(io_err("write", &path))?;
        let file = self.data.get_mut().get_mut();
        file.set_len(0).map_err(io_err("truncate", &path))?;
        file.seek(SeekFrom::Start(0))
            .map_err(io_err("seek", &path))?;
        self.data.reset();
        Ok(())
    }

    /// Remove the ingest: nothing is kept for a resume.
    pub fn abort(mut self) {
        self.ingest.keep = false;
    }

    /// The bytes, complete: fsynced, checked against what the writer was
    /// told to expect, ready for [`Store::publish_blob`]. On an error the
    /// ingest stays as it was for a retry (unless temporary).
    pub fn seal(self) -> Result<Sealed, StoreError> {
        let expected = self.expected.clone();
        self.seal_as(expected)
    }

    fn seal_as(self, expected: Option<(u64, Digest)>) -> Result<Sealed, StoreError> {
        let path = self.ingest.data();
        let Writer {
            reference,
            data,
            ingest,
            ..
        } = self;
        let (digest, offset, file) = data.finish();
        let file = file
            .into_inner()
            .map_err(|e| io_err("write", &path)(e.into_error()))?;
        if let Some((size, want)) = expected {
            let what = format!("ingest {reference:?}");
            if size != offset {
                return Err(StoreError::SizeMismatch(crate::digest::SizeMismatch {
                    what,
                    expected: size,
                    found: offset,
                }));
            }
            if want != digest {
                return Err(StoreError::DigestMismatch(DigestMismatch {
                    what,
                    expected: want,
                    found: digest,
                }));
            }
        }
        file.sync_all().map_err(io_err("fsync", &path))?;
        let mut ingest = ingest;
        ingest.keep = false;
        Ok(Sealed {
            digest,
            size: offset,
            ingest,
        })
    }

    /// Publish the bytes as the blob `digest` of `size` bytes. A wrong size
    /// or digest is refused (nothing published, the ingest kept); a blob
    /// the store has already is [`StoreError::AlreadyExists`] (the ingest
    /// removed).
    pub fn commit(self, size: u64, digest: &Digest) -> Result<(), StoreError> {
        let store = self.store.clone();
        let sealed = self.seal_as(Some((size, digest.clone())))?;
        let lock = store.lock()?;
        if store.has_blob(digest) {
            drop((lock, sealed));
            return Err(StoreError::AlreadyExists {
                digest: digest.clone(),
            });
        }
        store.publish_blob(&lock, sealed)
    }
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let end = self.offset() + buf.len() as u64;
        if let Some((size, _)) = &self.expected {
            if end > *size {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "ingest {:?}: {end} bytes written, expected {size}",
                        self.reference
                    ),
                ));
            }
        }
        self.data.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.data.flush()
    }
}

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod tests;
