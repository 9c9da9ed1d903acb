//! Layers in the store: preparing them (unlocked, in staging), publishing
//! them (under the lock), their records, and the blobs made from them.

use fs_err::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::fsutil::{self, io_err, FileLock, Staging};
use super::{Sealed, Store, StoreError, Writer};
use crate::digest::{DiffId, Digest, DigestMismatch, HashingReader};
use crate::layer::apply::{apply, apply_over, remove_tree, ApplyStats};
use crate::layer::compress::{encode, tar_compressed, with_decompressed, Compression};
use crate::layer::diff;
use crate::layer::union::{Found, Union};

/// A blob known to decompress to a layer's tar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    pub digest: Digest,
    pub size: u64,
    pub compression: Compression,
    /// The level strata made it at, when one was asked for
    /// (`--compression-level`); `None`: the default level, or a blob
    /// strata did not make (pulled, loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<i32>,
}

/// Which blob of a layer a push, save or build output sends: the
/// `--compression-format`, `--compression-level` and `--force-compression`
/// of podman and BuildKit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobCompression {
    pub format: Compression,
    /// For blobs made now (`None`: the format's default).
    pub level: Option<i32>,
    /// Only a blob of exactly this format (and level, when one is given)
    /// will do; otherwise a kept gzip or zstd blob is sent as it is and
    /// only a layer without one is compressed, as BuildKit does without
    /// `force-compression`.
    pub force: bool,
}

/// A bare format: exactly that format, at any level (what `push
/// --compression-format` always did).
impl From<Compression> for BlobCompression {
    fn from(format: Compression) -> BlobCompression {
        BlobCompression {
            format,
            level: None,
            force: true,
        }
    }
}

impl BlobCompression {
    /// Whether a kept blob will do.
    pub fn accepts(&self, b: &BlobRecord) -> bool {
        if b.compression == self.format {
            return !self.force || self.level.is_none() || b.level == self.level;
        }
        !self.force
            && self.format != Compression::None
            && matches!(b.compression, Compression::Gzip | Compression::Zstd)
    }
}

/// `layers/<hex>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    pub diff_id: DiffId,
    /// Bytes of regular file content (Docker's layer size).
    pub size: u64,
    /// Whether the deterministic tar of the directory has this diff id, so a
    /// blob can be made from the directory alone.
    pub regenerable: bool,
    #[serde(default)]
    pub blobs: Vec<BlobRecord>,
    /// Blobs of it elsewhere ([`super::remote`]): all the store has of a
    /// layer not fetched yet, and where a push may mount it from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote: Vec<super::remote::RemoteBlob>,
}

/// A layer ready to be published by [`Store::commit_image`].
#[derive(Debug)]
pub struct PreparedLayer {
    pub record: LayerRecord,
    /// The unpacked directory to move into `layers/`; `None` when the layer
    /// is already in the store.
    dir: Option<PathBuf>,
    /// Blobs to keep, as their writers sealed them.
    blobs: Vec<Sealed>,
    /// Directories the tar implied (see [`ApplyStats::implied_dirs`]).
    implied: Vec<Vec<u8>>,
}

impl PreparedLayer {
    pub fn diff_id(&self) -> &DiffId {
        &self.record.diff_id
    }

    /// A layer whose directory is (or need not be) in the store.
    pub(super) fn record_only(record: LayerRecord) -> PreparedLayer {
        PreparedLayer {
            record,
            dir: None,
            blobs: Vec::new(),
            implied: Vec::new(),
        }
    }
}

/// A reader that copies what it reads into a blob writer.
struct Tee<R> {
    inner: R,
    copy: Writer,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Whether a directory `layer` implied stands where `lowers` (top first)
/// have a symlink.
fn shadows_a_lower_symlink(layer: &PreparedLayer, lowers: &[PathBuf]) -> Result<bool, StoreError> {
    if layer.implied.is_empty() {
        return Ok(false);
    }
    let union = Union::open(lowers).map_err(|e| io_err("open", &lowers[0])(e.into()))?;
    for dir in &layer.implied {
        let comps: Vec<&[u8]> = dir.split(|&b| b == b'/').collect();
        let found = union
            .lookup(&comps)
            .map_err(|e| io_err("read", &lowers[0])(e.into()))?;
        if matches!(found, Found::Symlink { .. }) {
            return Ok(true);
        }
    }
    Ok(false)
}

impl Store {
    fn layer_record_path(&self, diff_id: &DiffId) -> PathBuf {
        self.root
            .join("layers")
            .join(format!("{}.json", diff_id.hex()))
    }

    /// The record of a layer, if the store has one.
    pub fn layer_record(&self, diff_id: &DiffId) -> Result<Option<LayerRecord>, StoreError> {
        let path = self.layer_record_path(diff_id);
        match fs_err::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|source| StoreError::Json { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", path)(e)),
        }
    }

    /// A layer the store already has (for deduplication), if complete.
    pub fn prepare_existing(&self, diff_id: &DiffId) -> Result<Option<PreparedLayer>, StoreError> {
        if !self.has_layer(diff_id) {
            return Ok(None);
        }
        Ok(self.layer_record(diff_id)?.map(PreparedLayer::record_only))
    }

    /// Keep another blob of a layer the store already has (a pulled layer
    /// compressed differently), so it can be pushed again with its digest:
    /// the blob is copied to staging while its decompressed stream is
    /// checked against the diff id; nothing is unpacked.
    pub fn prepare_extra_blob<R: Read + Send>(
        &self,
        staging: &Staging,
        input: R,
        existing: PreparedLayer,
    ) -> Result<PreparedLayer, StoreError> {
        let path = staging.path().to_path_buf();
        let mut tee = Tee {
            inner: input,
            copy: self.temp_writer()?,
        };
        let (compression, diff) = with_decompressed(BufReader::new(&mut tee), |c, raw| {
            let mut hashed = HashingReader::new(raw);
            io::copy(&mut hashed, &mut io::sink()).map(|_| (c, hashed.finish().0))
        })
        .and_then(|r| r)
        .map_err(io_err("read layer", &path))?;
        io::copy(&mut tee, &mut io::sink()).map_err(io_err("read layer", &path))?;
        let diff_id = existing.record.diff_id.clone();
        if &diff != diff_id.digest() {
            return Err(StoreError::DigestMismatch(DigestMismatch {
                what: "layer".into(),
                expected: diff_id.0,
                found: diff,
            }));
        }
        let sealed = tee.copy.seal()?;
        let mut layer = existing;
        layer.record.blobs = vec![BlobRecord {
            digest: sealed.digest().clone(),
            size: sealed.size(),
            compression,
            level: None,
        }];
        layer.blobs = vec![sealed];
        Ok(layer)
    }

    /// A layer from a directory in overlay-native form on the store's file
    /// system (a container's upper dir): its diff id is that of its
    /// deterministic tar. The directory is moved into `layers/` on commit.
    pub fn prepare_layer_dir(&self, dir: &Path) -> Result<PreparedLayer, StoreError> {
        let stats = diff::diff_id(dir)?;
        Ok(PreparedLayer {
            record: LayerRecord {
                diff_id: stats.diff_id,
                size: stats.content_size,
                regenerable: true,
                blobs: Vec::new(),
                remote: Vec::new(),
            },
            dir: Some(dir.to_path_buf()),
            blobs: Vec::new(),
            implied: Vec::new(),
        })
    }

    /// Unpack a layer tar (plain, gzip or zstd) into `staging`.
    ///
    /// With `expected`, the stream must have that diff id and the input is
    /// kept as a blob (what a loaded layer needs to be pushed again with
    /// the same digest). Without it (a rootfs import), the layer is
    /// identified by the deterministic tar of what was unpacked.
    pub fn prepare_layer_tar<R: Read + Send>(
        &self,
        staging: &Staging,
        input: R,
        expected: Option<&DiffId>,
    ) -> Result<(PreparedLayer, ApplyStats), StoreError> {
        if expected.is_none() {
            let (dir, stats) = unpack(staging, input, None)?;
            return prepared(dir, stats, None, None);
        }
        let mut tee = Tee {
            inner: input,
            copy: self.temp_writer()?,
        };
        let (dir, stats) = unpack(staging, &mut tee, expected)?;
        let sealed = tee.copy.seal()?;
        prepared(dir, stats, expected, Some(sealed))
    }

    /// Unpack a blob its writer sealed (a pulled layer), which must have
    /// the diff id `diff_id`; the blob is kept as it is.
    pub fn prepare_layer_blob(
        &self,
        staging: &Staging,
        sealed: Sealed,
        diff_id: &DiffId,
    ) -> Result<(PreparedLayer, ApplyStats), StoreError> {
        let path = sealed.path();
        let f = File::open(&path).map_err(io_err("open", &path))?;
        let (dir, stats) = unpack(staging, BufReader::new(f), Some(diff_id))?;
        prepared(dir, stats, Some(diff_id), Some(sealed))
    }

    /// Layers are unpacked on their own (in parallel, as they download), so
    /// a parent directory a tar implies cannot see a symlink a lower layer
    /// has there (`var/run -> /run`). Where one does, the layer is unpacked
    /// again from its kept blob over the layers below it
    /// ([`crate::layer::apply::apply_over`]), which resolves through them.
    /// Rare: real tars list their parent directories. Such a layer's
    /// directory depends on the layers under it; a second image sharing its
    /// diff id over other layers reuses it as it is.
    pub(crate) fn settle_layers(
        &self,
        mut layers: Vec<PreparedLayer>,
    ) -> Result<Vec<PreparedLayer>, StoreError> {
        for i in 1..layers.len() {
            let lowers: Vec<PathBuf> = layers[..i]
                .iter()
                .rev()
                .map(|l| self.prepared_dir(l))
                .collect();
            if !shadows_a_lower_symlink(&layers[i], &lowers)? {
                continue;
            }
            let (Some(old), Some(blob)) = (layers[i].dir.clone(), layers[i].blobs.first()) else {
                continue;
            };
            let blob = blob.path();
            let new = old.with_extension("over");
            fsutil::mkdirs(&new)?;
            let f = File::open(&blob).map_err(io_err("open", &blob))?;
            let layer = &mut layers[i];
            let unpack_err = |source| StoreError::Unpack {
                layer: layer.record.diff_id.to_string(),
                source,
            };
            let stats = apply_over(BufReader::new(f), &new, &lowers).map_err(unpack_err)?;
            remove_tree(&old).map_err(io_err("remove", &old))?;
            let own = diff::diff_id(&new)?;
            layer.record.regenerable = own.diff_id == stats.diff_id;
            layer.record.size = own.content_size;
            layer.dir = Some(new);
            layer.implied = stats.implied_dirs;
        }
        Ok(layers)
    }

    fn prepared_dir(&self, layer: &PreparedLayer) -> PathBuf {
        layer
            .dir
            .clone()
            .unwrap_or_else(|| self.layer_dir(&layer.record.diff_id))
    }

    /// Move a prepared layer into place and merge its record. Caller holds
    /// the lock.
    pub(crate) fn publish_layer(
        &self,
        lock: &FileLock,
        staging: &Staging,
        layer: PreparedLayer,
    ) -> Result<(), StoreError> {
        let diff_id = layer.record.diff_id.clone();
        for sealed in layer.blobs {
            self.publish_blob(lock, sealed)?;
        }
        let dest = self.layer_dir(&diff_id);
        match layer.dir {
            Some(dir) if dest.exists() => remove_tree(&dir).map_err(io_err("remove", &dir))?,
            Some(dir) => {
                let fd = File::open(&dir).map_err(io_err("open", &dir))?;
                // One syncfs instead of an fsync per unpacked file.
                rustix::fs::syncfs(fd.as_fd()).map_err(|e| io_err("sync", &dir)(e.into()))?;
                fsutil::publish(&dir, &dest)?;
            }
            None if dest.exists() || !layer.record.remote.is_empty() => {}
            None => return Err(StoreError::LayerMissing { diff_id }),
        }
        let mut record = self
            .layer_record(&diff_id)?
            .unwrap_or_else(|| layer.record.clone());
        for b in layer.record.blobs {
            if !record.blobs.contains(&b) {
                record.blobs.push(b);
            }
        }
        for r in layer.record.remote {
            if !record.remote.contains(&r) {
                record.remote.push(r);
            }
        }
        if record.size == 0 {
            // A remote record learns its size when the layer arrives.
            record.size = layer.record.size;
        }
        record.regenerable |= layer.record.regenerable;
        self.write_layer_record(lock, staging, &record)?;
        let link = self.root.join(self.short_link(&diff_id));
        if fs_err::symlink_metadata(&link).is_err() {
            let target = Path::new("../layers").join(diff_id.hex());
            fs_err::os::unix::fs::symlink(&target, &link).map_err(io_err("create link", &link))?;
        }
        Ok(())
    }

    fn write_layer_record(
        &self,
        _lock: &FileLock,
        staging: &Staging,
        record: &LayerRecord,
    ) -> Result<(), StoreError> {
        let path = self.layer_record_path(&record.diff_id);
        let bytes = serde_json::to_vec_pretty(record).map_err(|source| StoreError::Json {
            path: path.clone(),
            source,
        })?;
        fsutil::write_atomic(staging, &path, &bytes)
    }

    /// A blob of the layer as `choice` says, made once and kept: a kept
    /// blob it accepts (the wanted format first), else one made from a
    /// kept blob of another compression, or from the directory's tar.
    pub fn layer_blob(
        &self,
        diff_id: &DiffId,
        choice: impl Into<BlobCompression>,
    ) -> Result<BlobRecord, StoreError> {
        self.layer_blob_with(diff_id, choice, &mut |_| {})
    }

    /// [`Store::layer_blob`], handing `made` every piece of a blob being
    /// made as it is written (an empty piece when it starts; never called
    /// when the blob exists), so a push can upload it while it is made and
    /// an export can show the work.
    pub fn layer_blob_with(
        &self,
        diff_id: &DiffId,
        choice: impl Into<BlobCompression>,
        made: &mut dyn FnMut(&[u8]),
    ) -> Result<BlobRecord, StoreError> {
        let choice: BlobCompression = choice.into();
        let (compression, level) = (choice.format, choice.level);
        self.ensure_layer(diff_id)?;
        let record = self
            .layer_record(diff_id)?
            .ok_or_else(|| StoreError::LayerMissing {
                diff_id: diff_id.clone(),
            })?;
        if let Some(b) = self.kept_blob(&record, choice) {
            return Ok(b);
        }
        let staging = self.staging()?;
        made(&[]);
        let out = Watched {
            inner: self.temp_writer()?,
            watch: made,
        };
        let source = record.blobs.iter().find(|b| self.has_blob(&b.digest));
        let (raw_digest, out) = if let Some(src) = source {
            let src_path = self.blob_path(&src.digest);
            let f = File::open(&src_path).map_err(io_err("open", &src_path))?;
            with_decompressed(BufReader::new(f), |_, reader| {
                let mut raw = HashingReader::new(reader);
                let out = encode(&mut raw, compression, level, out)?;
                Ok((raw.finish().0, out))
            })
            .and_then(|r| r)
            .map_err(io_err("compress", &src_path))?
        } else if record.regenerable {
            let dir = self.layer_dir(diff_id);
            let (stats, out) = tar_compressed(&dir, compression, level, out)?;
            (stats.diff_id.0, out)
        } else {
            return Err(StoreError::NotRegenerable {
                diff_id: diff_id.clone(),
            });
        };
        if &raw_digest != diff_id.digest() {
            return Err(StoreError::DigestMismatch(DigestMismatch {
                what: format!("layer {diff_id} content"),
                expected: diff_id.0.clone(),
                found: raw_digest,
            }));
        }
        let sealed = out.inner.seal()?;
        let new = BlobRecord {
            digest: sealed.digest().clone(),
            size: sealed.size(),
            compression,
            level,
        };
        self.add_blob(diff_id, &staging, sealed, &new)?;
        Ok(new)
    }

    /// The kept blob of the layer `record` that `choice` accepts (the
    /// wanted format first), if there is one: [`Store::layer_blob`]
    /// without making one.
    pub fn kept_blob(&self, record: &LayerRecord, choice: BlobCompression) -> Option<BlobRecord> {
        let kept = |b: &&BlobRecord| choice.accepts(b) && self.has_blob(&b.digest);
        let exact = record
            .blobs
            .iter()
            .filter(kept)
            .find(|b| b.compression == choice.format);
        exact.or_else(|| record.blobs.iter().find(kept)).cloned()
    }

    /// Publishes the blob made at `path` and adds it to the layer's record.
    fn add_blob(
        &self,
        diff_id: &DiffId,
        staging: &Staging,
        sealed: Sealed,
        new: &BlobRecord,
    ) -> Result<(), StoreError> {
        let lock = self.lock()?;
        self.publish_blob(&lock, sealed)?;
        // Re-read under the lock: another process may have added blobs.
        let mut record = self
            .layer_record(diff_id)?
            .ok_or_else(|| StoreError::LayerMissing {
                diff_id: diff_id.clone(),
            })?;
        if !record.blobs.contains(new) {
            record.blobs.push(new.clone());
        }
        self.write_layer_record(&lock, staging, &record)
    }

    /// Open a layer blob for reading (made first if needed).
    pub fn open_layer_blob(
        &self,
        diff_id: &DiffId,
        compression: Compression,
    ) -> Result<(BlobRecord, File), StoreError> {
        let blob = self.layer_blob(diff_id, compression)?;
        let path = self.blob_path(&blob.digest);
        let f = File::open(&path).map_err(io_err("open", &path))?;
        Ok((blob, f))
    }
}

/// A layer tar unpacked into a new directory of `staging`.
fn unpack<R: Read + Send>(
    staging: &Staging,
    input: R,
    expected: Option<&DiffId>,
) -> Result<(PathBuf, ApplyStats), StoreError> {
    let dir = staging.file("layer");
    fsutil::mkdirs(&dir)?;
    let stats = apply(input, &dir).map_err(|source| StoreError::Unpack {
        layer: expected.map_or_else(|| "tar".to_string(), |d| d.to_string()),
        source,
    })?;
    Ok((dir, stats))
}

/// The layer `dir` holds, checked against the diff id `expected`, with the
/// blob it came from when one is kept.
fn prepared(
    dir: PathBuf,
    stats: ApplyStats,
    expected: Option<&DiffId>,
    blob: Option<Sealed>,
) -> Result<(PreparedLayer, ApplyStats), StoreError> {
    let own = diff::diff_id(&dir)?;
    let (diff_id, regenerable) = match expected {
        Some(want) if want != &stats.diff_id => {
            return Err(StoreError::DigestMismatch(DigestMismatch {
                what: "layer".into(),
                expected: want.0.clone(),
                found: stats.diff_id.0.clone(),
            }))
        }
        Some(want) => (want.clone(), own.diff_id == *want),
        None => (own.diff_id.clone(), true),
    };
    let records = blob
        .iter()
        .map(|sealed| BlobRecord {
            digest: sealed.digest().clone(),
            size: sealed.size(),
            compression: stats.compression,
            level: None,
        })
        .collect();
    let layer = PreparedLayer {
        record: LayerRecord {
            diff_id,
            size: own.content_size,
            regenerable,
            blobs: records,
            remote: Vec::new(),
        },
        dir: Some(dir),
        blobs: blob.into_iter().collect(),
        implied: stats.implied_dirs.clone(),
    };
    Ok((layer, stats))
}

/// A writer that hands a copy of every piece written through it to `watch`.
struct Watched<'a, W> {
    inner: W,
    watch: &'a mut dyn FnMut(&[u8]),
}

impl<W: Write> Write for Watched<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        (self.watch)(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
