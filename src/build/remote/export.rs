//! `--cache-to`: at the end of a build, the steps it looked up or made
//! (all of them for mode=max, the final image's for mode=min) as a cache
//! record, written where the spec says. Blobs go first; the name (the
//! registry tag, the layout's index.json) moves last, so a reader never
//! sees a cache whose blobs are not all there.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::endpoint::Endpoint;
use super::format::CacheRecord;
use super::journal::Journal;
use super::spec::{CacheSpec, Location, Mode};
use super::{stats, RemoteError};
use crate::build::cache::Entry;
use crate::digest::DiffId;
use crate::layer::compress::Compression;
use crate::store::config::Descriptor;
use crate::store::remote::RemoteSource;
use crate::store::Store;

/// One layer blob of a record, and how to get it there.
pub struct Blob {
    diff_id: DiffId,
    desc: Descriptor,
    /// The store's copy, if it has one.
    file: Option<PathBuf>,
    /// Where it is known to live besides.
    remote: Vec<RemoteSource>,
}

/// The record of `journal` for `mode` (`final_stages`: the stages of the
/// final image) and the blobs it needs, compressed as `compression` when
/// the store makes them (a blob known only remotely keeps its own).
pub fn record(
    store: &Store,
    journal: &Journal,
    mode: Mode,
    final_stages: &BTreeSet<usize>,
    compression: Compression,
) -> Result<(CacheRecord, Vec<Blob>), RemoteError> {
    let mut record = CacheRecord::new(mode);
    record.platforms.clone_from(&journal.platforms);
    let mut blobs = Vec::new();
    let wanted = |stage: usize| mode == Mode::Max || final_stages.contains(&stage);
    for (_, site) in journal.sites.iter().filter(|(s, _)| wanted(*s)) {
        record.sites.insert(site.hex().to_string());
    }
    for (_, key, entry) in journal.steps.iter().filter(|(s, _, _)| wanted(*s)) {
        let id = match entry {
            Entry::Step => {
                // Seen only: never over the image a run of metadata steps
                // made under the same key (another platform's journal,
                // merged after, may have only seen it).
                record.steps.entry(key.hex().to_string()).or_insert(None);
                continue;
            }
            Entry::Image(id) => id,
        };
        record.steps.insert(key.hex().to_string(), Some(id.clone()));
        if record.images.contains_key(id) {
            continue;
        }
        let bytes = store.config_bytes(id)?;
        let config = store.config(id)?;
        let text = String::from_utf8(bytes).map_err(|_| RemoteError::Invalid {
            what: "image config",
            reason: format!("{id} is not UTF-8"),
        })?;
        record.images.insert(id.clone(), text);
        for diff_id in config.rootfs.diff_ids {
            if record.layers.contains_key(&diff_id) {
                continue;
            }
            let blob = blob(store, &diff_id, compression)?;
            record.layers.insert(diff_id, blob.desc.clone());
            blobs.push(blob);
        }
    }
    Ok((record, blobs))
}

/// The layer's blob: the store's (made once and kept), or, for a layer not
/// fetched, the remote one it was recorded with.
fn blob(store: &Store, diff_id: &DiffId, compression: Compression) -> Result<Blob, RemoteError> {
    let record = store.layer_record(diff_id)?;
    let remote = record.map(|r| r.remote).unwrap_or_default();
    let sources = remote.iter().map(|r| r.source.clone()).collect();
    if store.is_remote_layer(diff_id)? {
        if let Some(r) = remote.first() {
            return Ok(Blob {
                diff_id: diff_id.clone(),
                desc: Descriptor::new(
                    r.blob.compression.oci_media_type(),
                    r.blob.digest.clone(),
                    r.blob.size,
                ),
                file: None,
                remote: sources,
            });
        }
    }
    let b = store.layer_blob(diff_id, compression)?;
    Ok(Blob {
        diff_id: diff_id.clone(),
        desc: Descriptor::new(b.compression.oci_media_type(), b.digest.clone(), b.size),
        file: Some(store.blob_path(&b.digest)),
        remote: sources,
    })
}

/// Writes every non-inline `--cache-to`.
pub fn write_all(
    store: &Store,
    journal: &Journal,
    final_stages: &BTreeSet<usize>,
    specs: &[CacheSpec],
) -> Result<(), RemoteError> {
    for spec in specs {
        if spec.location == Location::Inline {
            continue;
        }
        let written = record(store, journal, spec.mode, final_stages, spec.compression)
            .and_then(|(record, blobs)| write(store, spec, journal, record, &blobs));
        match written {
            Ok(()) => {}
            Err(e) if spec.ignore_error => crate::progress::warn(format!(
                "exporting the cache to {}: {}",
                super::describe(&spec.location),
                crate::store::error_chain(&e)
            )),
            Err(e) => {
                return Err(RemoteError::Export {
                    to: super::describe(&spec.location),
                    source: Box::new(e),
                })
            }
        }
    }
    Ok(())
}

fn write(
    store: &Store,
    spec: &CacheSpec,
    journal: &Journal,
    mut record: CacheRecord,
    blobs: &[Blob],
) -> Result<(), RemoteError> {
    let Some(endpoint) = Endpoint::open(&spec.location)? else {
        return Ok(());
    };
    endpoint.prepare()?;
    for blob in blobs {
        put_layer(store, &endpoint, blob)?;
    }
    let staging = store.staging()?;
    if spec.mounts {
        for (key, desc, file) in super::mounts::pack(store, journal, spec.compression, &staging)? {
            if endpoint.put_blob(&desc.digest, desc.size, Some(&file), None)? {
                stats::uploaded(desc.size, false);
            }
            record.mounts.insert(key, desc);
        }
    }
    let config = record.to_bytes()?;
    endpoint.put_bytes(staging.path(), &config)?;
    let manifest = record.manifest(&config)?;
    endpoint.put_manifest(staging.path(), &manifest)
}

/// One layer blob: found there, mounted from a repository of the same
/// registry, or sent (fetched first when the store has it only remotely).
fn put_layer(store: &Store, endpoint: &Endpoint, blob: &Blob) -> Result<(), RemoteError> {
    let mount_from = mount_source(endpoint, &blob.remote);
    let digest = &blob.desc.digest;
    let size = blob.desc.size;
    // A blob the store has only remotely may be there already (the same
    // cache written again) or mountable; its bytes are fetched only if not.
    let sent = match endpoint.put_blob(digest, size, blob.file.as_deref(), mount_from.as_deref()) {
        Ok(sent) => sent,
        Err(_) if blob.file.is_none() => {
            store.ensure_layer(&blob.diff_id)?;
            let file = local_blob(store, blob)?;
            endpoint.put_blob(digest, size, Some(&file), None)?
        }
        Err(e) => return Err(e),
    };
    if sent {
        stats::uploaded(size, true);
    }
    Ok(())
}

/// The store's file of the blob, once the layer is local (a fetched layer
/// keeps the blob it came as).
fn local_blob(store: &Store, blob: &Blob) -> Result<PathBuf, RemoteError> {
    let path = store.blob_path(&blob.desc.digest);
    match Path::new(&path).is_file() {
        true => Ok(path),
        false => Err(RemoteError::NotLocal),
    }
}

/// A repository of the endpoint's registry that has the blob.
fn mount_source(endpoint: &Endpoint, remote: &[RemoteSource]) -> Option<String> {
    let Endpoint::Registry { reference, .. } = endpoint else {
        return None;
    };
    remote.iter().find_map(|r| match r {
        RemoteSource::Registry {
            registry,
            repository,
        } if registry == reference.domain() && repository != reference.path() => {
            Some(repository.clone())
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::key::{key, Op, Parent};

    #[test]
    fn a_step_seen_by_one_platform_keeps_the_image_another_made() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let config = crate::store::config::ImageConfig::new("2026-12-04T00:00:00Z".into());
        let id = crate::build::commit::commit_config(&store, &config, None).unwrap();
        let k = key(
            Parent::Scratch,
            &Op::Config {
                instruction: "ARG A",
            },
        );
        // amd64 made the image of the metadata run; arm64 only saw the
        // step, and its journal is merged after.
        let mut journal = Journal::default();
        journal.steps.push((0, k.clone(), Entry::Image(id.clone())));
        journal.steps.push((0, k.clone(), Entry::Step));
        let stages = BTreeSet::from([0]);
        let (record, _) = record(&store, &journal, Mode::Max, &stages, Compression::Gzip).unwrap();
        assert_eq!(record.steps[k.hex()], Some(id));
    }
}
