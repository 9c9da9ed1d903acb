//! Pushing an image from the store to a registry: each layer blob (made
//! once, compressed, and kept by the store) is checked with HEAD first
//! (`Layer already exists`), mounted from another repository of the same
//! registry the image came from (`Mounted from ...`), or uploaded
//! (`Pushed`); then the config, then the manifest with its media type.
//! The manifest type is `--format`, else the one `build`/`commit --format`
//! recorded for the image, else OCI. A manifest the store kept for the same
//! blobs and format is pushed as it is, so pushing a pulled image again in
//! its own format keeps its digest.

use std::collections::BTreeMap;

use super::backoff::{retry, Failure};
use super::client::Registry;
use super::flags::RegistryFlags;
use super::pull::connect;
use super::push_stream::{push_while_made, Streamed};
use super::transfer::{LocalBlob, MountResult, UploadMode};
use super::RegistryError;
use crate::digest::{DiffId, Digest, ImageId};
use crate::layer::compress::Compression;
use crate::progress::{self, LayerStatus, Transfer};
use crate::reference::{Reference, DEFAULT_TAG};
pub use crate::store::config::ManifestFormat;
use crate::store::config::{to_canonical_json, Descriptor, ImageConfig, Manifest};
use crate::store::remote::RemoteSource;
use crate::store::{BlobCompression, BlobRecord, Store};

/// Blobs up to this size go up in one PUT; larger ones in chunks, so a
/// failure costs one chunk's worth of progress, not the whole blob.
const MONOLITHIC_MAX: u64 = 32 << 20;
/// The chunk size of chunked uploads.
const CHUNK_SIZE: u64 = 16 << 20;

/// Layers pushed at once. Each layer made while it is pushed holds its
/// compressor's and its upload's buffers: a 300 MB three-layer push
/// peaked at 64 MB one at a time, 89 MB two at a time (0.3 s sooner), and
/// 118 MB three at a time (no sooner).
pub const PUSH_JOBS: usize = 2;

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// `None`: the format the store recorded for the image (OCI when none).
    pub format: Option<ManifestFormat>,
    pub compression: BlobCompression,
    /// Parallel blob uploads.
    pub jobs: usize,
    /// On the manifest (`build --annotation`).
    pub annotations: BTreeMap<String, String>,
}

impl Default for PushOptions {
    fn default() -> PushOptions {
        PushOptions {
            format: None,
            compression: Compression::Gzip.into(),
            jobs: PUSH_JOBS,
            annotations: BTreeMap::new(),
        }
    }
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub digest: Digest,
    pub size: usize,
    pub tag: String,
}

/// Build the manifest for a config and layer blobs (canonical JSON, so the
/// same image gives the same digest every time).
pub fn build_manifest(
    format: ManifestFormat,
    config: &Descriptor,
    layers: &[(Digest, u64, Compression)],
    annotations: &BTreeMap<String, String>,
) -> Result<Vec<u8>, serde_json::Error> {
    let m = Manifest {
        schema_version: 2,
        media_type: Some(format.manifest_type().into()),
        config: Descriptor::new(format.config_type(), config.digest.clone(), config.size),
        layers: layers
            .iter()
            .map(|(d, size, c)| Descriptor::new(format.layer_type(*c), d.clone(), *size))
            .collect(),
        annotations: crate::store::config::some_map(annotations),
        extra: Default::default(),
    };
    to_canonical_json(&m)
}

/// Push `image` (a name or id in the store) as `dest`.
pub fn push_image(
    store: &Store,
    image: &str,
    dest: &Reference,
    flags: &RegistryFlags,
    opts: &PushOptions,
) -> Result<Pushed, RegistryError> {
    let id = store.resolve(image)?;
    announced(dest, flags, |client| {
        push_with(client, store, &id, dest, opts)
    })
}

/// A push to `dest` between Docker's lines: the repository first, the
/// digest last.
pub(super) fn announced(
    dest: &Reference,
    flags: &RegistryFlags,
    push: impl FnOnce(&Registry) -> Result<Pushed, RegistryError>,
) -> Result<Pushed, RegistryError> {
    progress::transfer_line(format!(
        "The push refers to repository [{}]",
        dest.familiar_repository()
    ));
    let client = connect(dest, flags)?;
    let result = push(&client);
    progress::transfers_done();
    let pushed = result?;
    progress::transfer_line(format!(
        "{}: digest: {} size: {}",
        pushed.tag, pushed.digest, pushed.size
    ));
    Ok(pushed)
}

/// For each layer, a repository of `dest`'s registry (other than `dest`)
/// that an image holding it was pulled from or pushed to: where its blob
/// may be mounted from, as Docker remembers per layer.
fn mount_sources(
    store: &Store,
    dest: &Reference,
) -> Result<BTreeMap<DiffId, String>, RegistryError> {
    let index = store.index()?;
    let mut out = BTreeMap::new();
    for (image, record) in &index.images {
        let names = record.repo_digests.iter().chain(
            index
                .tags
                .iter()
                .filter(|(_, v)| *v == image)
                .map(|(k, _)| k),
        );
        let Some(repo) = names
            .filter_map(|n| Reference::parse(n).ok())
            .find(|r| r.domain() == dest.domain() && r.path() != dest.path())
        else {
            continue;
        };
        // An image whose config cannot be read offers no mount source;
        // the blob is uploaded instead.
        let Ok(config) = store.config(image) else {
            continue;
        };
        for diff_id in config.rootfs.diff_ids {
            out.entry(diff_id)
                .or_insert_with(|| repo.path().to_string());
        }
    }
    Ok(out)
}

/// A manifest kept in the store for this image whose blobs and format are
/// exactly these: pushing its bytes keeps its digest.
fn kept_manifest(store: &Store, id: &ImageId, wanted: &[u8]) -> Option<Vec<u8>> {
    let want: Manifest = serde_json::from_slice(wanted).ok()?;
    let record = store.index().ok()?.images.get(id)?.clone();
    record.manifests.iter().find_map(|d| {
        let bytes = store.read_blob(d).ok()?;
        let m: Manifest = serde_json::from_slice(&bytes).ok()?;
        let same = m.media_type == want.media_type
            && m.annotations == want.annotations
            && m.config.digest == want.config.digest
            && m.layers.len() == want.layers.len()
            && m.layers
                .iter()
                .zip(&want.layers)
                .all(|(a, b)| a.digest == b.digest && a.media_type == b.media_type);
        same.then_some(bytes)
    })
}

/// A blob to push (also the remote build cache's export).
pub(crate) struct Blob {
    pub digest: Digest,
    pub size: u64,
    pub compression: Compression,
    pub path: std::path::PathBuf,
    /// A repository of the same registry to mount it from.
    pub mount_from: Option<String>,
    /// A layer the store knows only by this remote blob (a remote build
    /// cache hit): fetched into the store only if the registry neither has
    /// the blob nor mounts it.
    pub fetch: Option<(Store, DiffId)>,
}

fn push_with(
    client: &Registry,
    store: &Store,
    id: &ImageId,
    dest: &Reference,
    opts: &PushOptions,
) -> Result<Pushed, RegistryError> {
    let (format, manifest) = upload_image(client, store, id, dest, opts)?;
    let tag = match (dest.tag(), dest.digest()) {
        (Some(t), _) => t.to_string(),
        (None, Some(d)) => d.to_string(),
        (None, None) => DEFAULT_TAG.to_string(),
    };
    let digest = client.put_manifest(dest.path(), &tag, format.manifest_type(), &manifest)?;
    store.add_manifest(id, &manifest, Some(dest))?;
    Ok(Pushed {
        digest,
        size: manifest.len(),
        tag,
    })
}

/// Uploads the image's layers and config to `dest`'s repository; returns
/// the manifest to put (the kept one when it matches) and its format.
pub(super) fn upload_image(
    client: &Registry,
    store: &Store,
    id: &ImageId,
    dest: &Reference,
    opts: &PushOptions,
) -> Result<(ManifestFormat, Vec<u8>), RegistryError> {
    let format = match opts.format {
        Some(f) => f,
        None => store
            .index()?
            .images
            .get(id)
            .map(|r| r.manifest_format())
            .unwrap_or_default(),
    };
    let config_bytes = store.config_bytes(id)?;
    let config: ImageConfig =
        serde_json::from_slice(&config_bytes).map_err(|source| RegistryError::Json {
            reference: id.to_string(),
            what: "image config",
            source,
        })?;
    let layers = make_and_upload(client, store, &config, dest, opts)?;
    let size = config_bytes.len() as u64;
    upload_stored_blob(client, store, dest, id.digest(), size)?;
    let config_desc = Descriptor::new(format.config_type(), id.digest().clone(), size);
    let built =
        build_manifest(format, &config_desc, &layers, &opts.annotations).map_err(|source| {
            RegistryError::Json {
                reference: dest.to_string(),
                what: "manifest",
                source,
            }
        })?;
    Ok((format, kept_manifest(store, id, &built).unwrap_or(built)))
}

/// A small blob of the store (a config) in one PUT, unless the registry
/// has it.
pub(super) fn upload_stored_blob(
    client: &Registry,
    store: &Store,
    dest: &Reference,
    digest: &Digest,
    size: u64,
) -> Result<(), RegistryError> {
    if client.blob_exists(dest.path(), digest)?.is_some() {
        return Ok(());
    }
    let loc = client.start_upload(dest.path())?;
    let blob = LocalBlob {
        digest,
        path: &store.blob_path(digest),
        size,
    };
    client.upload_blob(dest.path(), &blob, loc, UploadMode::Monolithic, &mut |_| {})
}

/// Pushes the layers' blobs, `opts.jobs` at a time: each is sent as the
/// store keeps it (or found in, or mounted into, the registry), or made
/// now and uploaded while it is made. Layers go at once so that the
/// registry takes two uploads in parallel (one takes about 0.7 s of its
/// CPU per 200 MB) while another layer compresses. Returns the layers'
/// (digest, size, compression) in order, for the manifest.
fn make_and_upload(
    client: &Registry,
    store: &Store,
    config: &ImageConfig,
    dest: &Reference,
    opts: &PushOptions,
) -> Result<Vec<(Digest, u64, Compression)>, RegistryError> {
    let diff_ids = &config.rootfs.diff_ids;
    // Docker lists the top layer first.
    for diff_id in diff_ids.iter().rev() {
        progress::layer_status(diff_id.digest(), LayerStatus::Preparing);
    }
    let sources = mount_sources(store, dest)?;
    let items = diff_ids.iter().enumerate().collect();
    let mut pushed = super::pool::run(items, opts.jobs, |(i, diff_id)| {
        let mount_from = sources.get(diff_id);
        push_layer(client, store, dest, diff_id, mount_from, opts.compression).map(|l| (i, l))
    })?;
    pushed.sort_by_key(|(i, _)| *i);
    Ok(pushed.into_iter().map(|(_, l)| l).collect())
}

/// Push one layer's blob; returns its (digest, size, compression): a blob
/// the store keeps that `compression` accepts (or a remote one the
/// registry may have), else one made now, where the store has none yet,
/// and pushed while it is made.
fn push_layer(
    client: &Registry,
    store: &Store,
    dest: &Reference,
    diff_id: &DiffId,
    mount_from: Option<&String>,
    compression: BlobCompression,
) -> Result<(Digest, u64, Compression), RegistryError> {
    let layer = diff_id.digest();
    let record = store.layer_record(diff_id)?;
    let kept = match remote_blob(store, diff_id, dest, compression)? {
        Some(blob) => Some(blob),
        None => record
            .as_ref()
            .and_then(|r| store.kept_blob(r, compression))
            .map(|b| stored_blob(store, b, mount_from)),
    };
    let streams = record.is_some_and(|r| r.size >= STREAM_MIN);
    let blob = match kept {
        Some(blob) => blob,
        None if !streams => {
            let mut show = progress::compressing_pieces(layer);
            let made = store.layer_blob_with(diff_id, compression, &mut show)?;
            stored_blob(store, made, mount_from)
        }
        None => match push_while_made(client, store, dest.path(), diff_id, compression)? {
            Streamed::Pushed(b) => {
                progress::layer_status(layer, LayerStatus::Pushed);
                return Ok((b.digest, b.size, b.compression));
            }
            Streamed::Kept(b) => stored_blob(store, b, mount_from),
        },
    };
    push_blob(client, dest.path(), layer, &blob)?;
    Ok((blob.digest, blob.size, blob.compression))
}

/// Layers with less content than this (uncompressed) are made before
/// they are pushed,
/// so the registry is asked first whether it has the blob (another store
/// may have pushed the same layer: a base image, a remote cache's layers);
/// larger ones are uploaded while they are made, where making first would
/// cost more than the upload it might spare.
const STREAM_MIN: u64 = 16 << 20;

/// A blob the store keeps, to push.
fn stored_blob(store: &Store, b: BlobRecord, mount_from: Option<&String>) -> Blob {
    Blob {
        path: store.blob_path(&b.digest),
        digest: b.digest,
        size: b.size,
        compression: b.compression,
        mount_from: mount_from.cloned(),
        fetch: None,
    }
}

/// A layer not fetched yet whose remote blob is in `dest`'s registry (and
/// in a compression the push accepts): pushed by mounting it from there,
/// never downloaded and uploaded again.
fn remote_blob(
    store: &Store,
    diff_id: &DiffId,
    dest: &Reference,
    compression: BlobCompression,
) -> Result<Option<Blob>, RegistryError> {
    if !store.is_remote_layer(diff_id)? {
        return Ok(None);
    }
    let record = store.layer_record(diff_id)?;
    let found = record
        .into_iter()
        .flat_map(|r| r.remote)
        .find_map(|r| match r.source {
            RemoteSource::Registry {
                registry,
                repository,
            } if registry == dest.domain() && compression.accepts(&r.blob) => {
                Some((r.blob, repository))
            }
            _ => None,
        });
    Ok(found.map(|(blob, repository)| Blob {
        path: store.blob_path(&blob.digest),
        digest: blob.digest,
        size: blob.size,
        compression: blob.compression,
        mount_from: (repository != dest.path()).then_some(repository),
        fetch: Some((store.clone(), diff_id.clone())),
    }))
}

/// Push one blob; `id` is the layer's diff id, which Docker shows it by.
/// Whether its bytes were sent (not when found there or mounted).
pub(crate) fn push_blob(
    client: &Registry,
    repo: &str,
    id: &Digest,
    blob: &Blob,
) -> Result<bool, RegistryError> {
    if client.blob_exists(repo, &blob.digest)?.is_some() {
        progress::layer_status(id, LayerStatus::LayerAlreadyExists);
        return Ok(false);
    }
    // A failed mount opens an upload session, so only one source is asked.
    let mut session = None;
    if let Some(from) = &blob.mount_from {
        match client.mount_blob(repo, &blob.digest, from)? {
            MountResult::Mounted => {
                progress::layer_status(
                    id,
                    LayerStatus::MountedFrom {
                        repository: from.clone(),
                    },
                );
                return Ok(false);
            }
            MountResult::Upload(loc) => session = Some(loc),
        }
    }
    if let Some((store, diff_id)) = &blob.fetch {
        store.ensure_layer(diff_id)?;
    }
    progress::layer_status(id, LayerStatus::Pushing);
    let mode = if blob.size <= MONOLITHIC_MAX {
        UploadMode::Monolithic
    } else {
        UploadMode::Chunked(CHUNK_SIZE)
    };
    let local = LocalBlob {
        digest: &blob.digest,
        path: &blob.path,
        size: blob.size,
    };
    // The upload's PATCH and PUT are not retried one by one (the server
    // may have applied them); a failed upload starts over in a new session.
    let schedule = client.backoff();
    retry(
        &schedule,
        |_| {
            let location = match session.take() {
                Some(l) => l,
                None => client.start_upload(repo).map_err(Failure::Fatal)?,
            };
            client
                .upload_blob(repo, &local, location, mode, &mut |n| {
                    progress::layer_bytes(id, Transfer::Upload, n, Some(blob.size))
                })
                .map_err(|e| match e.is_retryable() {
                    true => Failure::Retry(e),
                    false => Failure::Fatal(e),
                })
        },
        |_, last| last,
    )?;
    progress::layer_status(id, LayerStatus::Pushed);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::manifest::{DOCKER_MANIFEST, OCI_MANIFEST};
    use crate::store::config::{MEDIA_DOCKER_CONFIG, MEDIA_OCI_CONFIG};

    #[test]
    fn manifest_types_follow_the_format() {
        let cfg = Descriptor::new(MEDIA_OCI_CONFIG, Digest::of(b"c"), 1);
        let layers = vec![
            (Digest::of(b"l"), 2, Compression::Gzip),
            (Digest::of(b"z"), 3, Compression::Zstd),
        ];
        let oci: Manifest = serde_json::from_slice(
            &build_manifest(ManifestFormat::Oci, &cfg, &layers, &BTreeMap::new()).unwrap(),
        )
        .unwrap();
        assert_eq!(oci.media_type.as_deref(), Some(OCI_MANIFEST));
        assert_eq!(oci.config.media_type, MEDIA_OCI_CONFIG);
        assert_eq!(
            oci.layers[0].media_type,
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(
            oci.layers[1].media_type,
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
        let docker: Manifest = serde_json::from_slice(
            &build_manifest(ManifestFormat::Docker, &cfg, &layers, &BTreeMap::new()).unwrap(),
        )
        .unwrap();
        assert_eq!(docker.media_type.as_deref(), Some(DOCKER_MANIFEST));
        assert_eq!(docker.config.media_type, MEDIA_DOCKER_CONFIG);
        assert_eq!(
            docker.layers[0].media_type,
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
        assert_eq!(docker.layers[1].size, 3);
        // Same input, same bytes.
        assert_eq!(
            build_manifest(ManifestFormat::Oci, &cfg, &layers, &BTreeMap::new()).unwrap(),
            build_manifest(ManifestFormat::Oci, &cfg, &layers, &BTreeMap::new()).unwrap()
        );
    }
}
