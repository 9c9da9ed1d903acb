//! `mounts=true`: the contents of `RUN --mount=type=cache` directories
//! travel with the cache. An export tars each cache mount the build's RUN
//! steps use (deterministically, compressed) into a blob listed in the
//! record by the mount's key (a digest of its id, so the same on every
//! machine); an import restores each one the store lacks before the build
//! starts, so a pip, npm or cargo cache is warm on a new runner.

use std::io::{BufReader, BufWriter};
use std::path::PathBuf;

use super::fetch::Fetcher;
use super::import::Imported;
use super::journal::Journal;
use super::RemoteError;
use crate::digest::HashingWriter;
use crate::layer::compress::{tar_compressed, Compression};
use crate::store::config::Descriptor;
use crate::store::remote::{LayerFetcher, RemoteBlob};
use crate::store::{BlobRecord, CacheSharing, Staging, Store};

/// The cache mounts of `journal` the store has, each as a blob in
/// `staging`: (key, descriptor, file).
pub fn pack(
    store: &Store,
    journal: &Journal,
    compression: Compression,
    staging: &Staging,
) -> Result<Vec<(String, Descriptor, PathBuf)>, RemoteError> {
    let mut out = Vec::new();
    for key in journal.mounts.iter().filter(|k| store.has_cache_mount(k)) {
        // Shared: steps of other builds may use it meanwhile, but none
        // that holds it exclusively (sharing=locked) is half-way through.
        let cache = store.cache_mount(key, CacheSharing::Shared, &|| {}, &|_| Ok(()))?;
        let path = staging.file(&format!("mount-{key}"));
        let file = fs_err::File::create(&path).map_err(super::endpoint::io_err("create", &path))?;
        let hashing = HashingWriter::new(BufWriter::new(file));
        let (_, hashing) =
            tar_compressed(cache.data(), compression, None, hashing).map_err(|e| {
                RemoteError::Mount {
                    key: key.clone(),
                    reason: crate::store::error_chain(&e),
                }
            })?;
        let (digest, size, w) = hashing.finish();
        w.into_inner()
            .map_err(|e| super::endpoint::io_err("write", &path)(e.into_error()))?
            .sync_all()
            .map_err(super::endpoint::io_err("fsync", &path))?;
        let desc = Descriptor::new(compression.oci_media_type(), digest, size);
        out.push((key.clone(), desc, path));
    }
    Ok(out)
}

/// Restores the cache mounts of `imports` the store does not have (the
/// first cache listing a key wins). One that fails is a warning.
pub fn restore(store: &Store, imports: &[Imported]) {
    let fetcher = Fetcher::default();
    for imported in imports {
        for (key, desc) in &imported.record.mounts {
            if store.has_cache_mount(key) {
                continue;
            }
            if let Err(e) = restore_one(store, &fetcher, imported, key, desc) {
                crate::progress::warn(format!(
                    "cache {}: cache mount {}: {}; not restored",
                    imported.source,
                    &key[..12.min(key.len())],
                    crate::store::error_chain(&e)
                ));
            }
        }
    }
}

fn restore_one(
    store: &Store,
    fetcher: &Fetcher,
    imported: &Imported,
    key: &str,
    desc: &Descriptor,
) -> Result<(), RemoteError> {
    let compression =
        Compression::from_media_type(&desc.media_type).ok_or_else(|| RemoteError::Mount {
            key: key.to_string(),
            reason: format!("media type {:?}", desc.media_type),
        })?;
    let remote = RemoteBlob {
        blob: BlobRecord {
            digest: desc.digest.clone(),
            size: desc.size,
            compression,
            level: None,
        },
        source: imported.source.clone(),
    };
    let mut writer = store.download_writer(
        &format!("cache mount {}", desc.digest),
        desc.size,
        &desc.digest,
    )?;
    fetcher
        .fetch(&remote, &mut writer)
        .map_err(|e| RemoteError::Mount {
            key: key.to_string(),
            reason: e.to_string(),
        })?;
    let sealed = writer.seal()?;
    let path = sealed.path();
    // Unpacked by the one safe extraction, into the new cache's directory
    // before anyone can see it (the store renames it into place).
    let unpack = |dir: &std::path::Path| -> std::io::Result<()> {
        let f = BufReader::new(fs_err::File::open(&path)?);
        crate::layer::apply::apply(f, dir).map_err(std::io::Error::other)?;
        Ok(())
    };
    store.cache_mount(key, CacheSharing::Locked, &|| {}, &unpack)?;
    // Not a blob of the store: its bytes live on unpacked, and dropping
    // `sealed` removes them.
    drop(sealed);
    Ok(())
}
