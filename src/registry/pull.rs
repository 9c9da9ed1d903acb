//! Pulling an image from a registry into the store: resolve the tag (an
//! index picks the platform, host by default), fetch and check the config,
//! skip layers the store has (`Already exists`), download the rest a few at
//! a time (digest and size verified while streaming), unpack each checking
//! its diff id, then publish the image, its tag and its manifest at once.
//!
//! [`pull_image`] is what `build` and `run` call for a base image that is
//! not in the store.

use std::collections::VecDeque;

use super::client::Registry;
use super::flags::RegistryFlags;
use super::manifest::{Kind, Platform, CONFIG_MAX_BYTES};
use super::transfer::FetchedManifest;
use super::RegistryError;
use crate::digest::{DiffId, Digest, DigestMismatch, ImageId};
use crate::layer::compress::Compression;
use crate::progress::{self, LayerStatus, Transfer};
use crate::reference::Reference;
use crate::store::config::{Descriptor, ImageConfig, Index, Manifest};
use crate::store::{PreparedLayer, Store};

/// Blobs fetched at once by default (Docker's `max-concurrent-downloads`).
pub const DEFAULT_JOBS: usize = 3;

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The platform to take from an index [default: this machine's].
    pub platform: Option<Platform>,
    /// Parallel blob downloads.
    pub jobs: usize,
}

impl Default for PullOptions {
    fn default() -> PullOptions {
        PullOptions {
            platform: None,
            jobs: DEFAULT_JOBS,
        }
    }
}

/// One image pulled.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub reference: Reference,
    pub id: ImageId,
    /// The digest of the manifest the reference resolved to (the index's
    /// when it named one).
    pub digest: Digest,
    /// The store had this image under this name already.
    pub up_to_date: bool,
}

/// Pull `reference` (with Docker's output through `progress`), connecting
/// with the credentials and options of `flags`.
pub fn pull_image(
    store: &Store,
    reference: &Reference,
    flags: &RegistryFlags,
    opts: &PullOptions,
) -> Result<Pulled, RegistryError> {
    let client = connect(reference, flags)?;
    let result = pull_with(&client, store, reference, opts);
    progress::transfers_done();
    let pulled = result?;
    progress::transfer_line(format!("Digest: {}", pulled.digest));
    let status = if pulled.up_to_date {
        format!("Status: Image is up to date for {}", reference.familiar())
    } else {
        format!(
            "Status: Downloaded newer image for {}",
            reference.familiar()
        )
    };
    progress::transfer_line(&status);
    Ok(pulled)
}

/// The image `reference` names, pulled first when the store does not
/// have it, as `docker run` and a Dockerfile's `FROM` do (with Docker's
/// `Unable to find image ... locally` on stderr).
pub fn ensure_image(
    store: &Store,
    reference: &Reference,
    flags: &RegistryFlags,
    quiet: bool,
) -> Result<ImageId, RegistryError> {
    if let Some(id) = store.index()?.lookup(reference) {
        return Ok(id.clone());
    }
    if !quiet {
        progress::notice(format!(
            "Unable to find image '{}' locally",
            reference.familiar()
        ));
    }
    Ok(pull_image(store, reference, flags, &PullOptions::default())?.id)
}

/// What `run IMAGE` and `FROM IMAGE` need: the image `name` (reference,
/// id or id prefix) from the store, or pulled first when it is a
/// reference the store does not have.
pub fn resolve_or_pull(
    store: &Store,
    name: &str,
    flags: &RegistryFlags,
    quiet: bool,
) -> Result<ImageId, RegistryError> {
    match store.resolve_held(name) {
        Ok(id) => Ok(id),
        Err(crate::store::StoreError::ImageNotFound { .. }) => match Reference::parse(name) {
            Ok(reference) => ensure_image(store, &reference, flags, quiet),
            Err(_) => Err(crate::store::StoreError::ImageNotFound {
                name: crate::reference::shown(name),
            }
            .into()),
        },
        Err(e) => Err(e.into()),
    }
}

/// [`resolve_or_pull`] for a platform: the store's image of `name` for
/// `wanted` (`strata::store::lists`), or the reference pulled for it.
pub fn resolve_or_pull_for(
    store: &Store,
    name: &str,
    wanted: &Platform,
    flags: &RegistryFlags,
    quiet: bool,
) -> Result<ImageId, RegistryError> {
    if let Some(id) = store.resolve_platform(name, wanted)? {
        return Ok(id);
    }
    let reference =
        Reference::parse(name).map_err(|_| crate::store::StoreError::ImageNotFound {
            name: format!("{} for {}", crate::reference::shown(name), wanted),
        })?;
    if !quiet {
        progress::notice(format!(
            "Unable to find image '{}' for {} locally",
            reference.familiar(),
            crate::platform::show(wanted)
        ));
    }
    let opts = PullOptions {
        platform: Some(wanted.clone()),
        ..PullOptions::default()
    };
    Ok(pull_image(store, &reference, flags, &opts)?.id)
}

/// Every tag of `reference`'s repository (`pull -a`).
pub fn pull_all_tags(
    store: &Store,
    reference: &Reference,
    flags: &RegistryFlags,
    opts: &PullOptions,
) -> Result<Vec<Pulled>, RegistryError> {
    let client = connect(reference, flags)?;
    let mut tags = client.list_tags(reference.path())?;
    tags.sort();
    let mut out = Vec::new();
    for tag in tags {
        let r = reference
            .with_tag(&tag)
            .map_err(|e| RegistryError::Invalid {
                reference: reference.repository(),
                reason: format!("the registry lists a bad tag: {e}"),
            })?;
        let pulled = pull_with(&client, store, &r, opts)?;
        progress::transfer_line(format!("Digest: {}", pulled.digest));
        out.push(pulled);
    }
    progress::transfers_done();
    progress::transfer_line(format!(
        "Status: Downloaded images for {}",
        reference.familiar_repository()
    ));
    Ok(out)
}

/// A client for `reference`'s registry with the stored credentials.
pub fn connect(reference: &Reference, flags: &RegistryFlags) -> Result<Registry, RegistryError> {
    let cred = flags.credential(reference.domain())?;
    Registry::connect(reference.domain(), cred, &flags.options()?)
}

fn json<T: serde::de::DeserializeOwned>(
    reference: &Reference,
    what: &'static str,
    bytes: &[u8],
) -> Result<T, RegistryError> {
    serde_json::from_slice(bytes).map_err(|source| RegistryError::Json {
        reference: reference.to_string(),
        what,
        source,
    })
}

/// Resolve an index to the manifest for `wanted`.
fn resolve_platform(
    client: &Registry,
    reference: &Reference,
    top: FetchedManifest,
    wanted: &Platform,
) -> Result<FetchedManifest, RegistryError> {
    if top.kind == Kind::Image {
        return Ok(top);
    }
    let index: Index = json(reference, "image index", &top.bytes)?;
    let platforms: Vec<Option<Platform>> = index
        .manifests
        .iter()
        .map(|d| d.platform.as_ref().and_then(Platform::from_json))
        .collect();
    let Some(i) = super::manifest::choose_platform(wanted, &platforms) else {
        let available: Vec<String> = platforms
            .iter()
            .flatten()
            .map(ToString::to_string)
            .collect();
        return Err(RegistryError::NoPlatform {
            reference: reference.familiar(),
            wanted: wanted.to_string(),
            available: if available.is_empty() {
                "no platforms".into()
            } else {
                available.join(", ")
            },
        });
    };
    let child = client.get_manifest(reference.path(), &index.manifests[i].digest.to_string())?;
    if child.kind != Kind::Image {
        return Err(RegistryError::Invalid {
            reference: reference.familiar(),
            reason: format!(
                "index entry {} is not an image manifest",
                index.manifests[i].digest
            ),
        });
    }
    Ok(child)
}

fn pull_with(
    client: &Registry,
    store: &Store,
    reference: &Reference,
    opts: &PullOptions,
) -> Result<Pulled, RegistryError> {
    let (top_digest, image, manifest) = image_manifest(client, reference, opts)?;
    let (config_bytes, config) = image_config(client, store, reference, &manifest)?;
    let id = ImageId(manifest.config.digest.clone());
    let tags: Vec<Reference> = if reference.digest().is_none() {
        vec![reference.clone()]
    } else {
        Vec::new()
    };
    // Held before the store is asked which layers it has: a concurrent
    // GC keeps them from here to the commit.
    store.hold(&[], &config.rootfs.diff_ids)?;
    let already = store.index()?.lookup(reference) == Some(&id)
        && config.rootfs.diff_ids.iter().all(|d| store.has_layer(d));
    // Kept until the commit: the prepared layers are in it.
    let staging = store.staging()?;
    let jobs = opts.jobs;
    let layers = prepare_layers(client, store, &staging, reference, &config, &manifest, jobs)?;
    let manifest = Some((&image.bytes[..], Some(reference)));
    let id_stored = store.commit_image_with(layers, &config_bytes, &tags, None, manifest)?;
    if id_stored != id {
        return Err(RegistryError::DigestMismatch(DigestMismatch {
            what: format!("config of {}", reference.familiar()),
            expected: id.0,
            found: id_stored.0,
        }));
    }
    // Other platforms pulled under the same name stay reachable by platform.
    store.record_platform(&tags, &id)?;
    Ok(Pulled {
        reference: reference.clone(),
        id,
        digest: top_digest,
        up_to_date: already,
    })
}

/// The manifest `reference` names (its digest), and the image manifest for
/// the wanted platform, raw and parsed, its layers of known media types.
fn image_manifest(
    client: &Registry,
    reference: &Reference,
    opts: &PullOptions,
) -> Result<(Digest, FetchedManifest, Manifest), RegistryError> {
    let wanted_ref = match (reference.digest(), reference.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => crate::reference::DEFAULT_TAG.to_string(),
    };
    progress::transfer_line(format!(
        "{wanted_ref}: Pulling from {}",
        reference.familiar_repository()
    ));
    let top = client.get_manifest(reference.path(), &wanted_ref)?;
    let top_digest = top.digest.clone();
    let wanted = opts.platform.clone().unwrap_or_else(Platform::host);
    let image = resolve_platform(client, reference, top, &wanted)?;
    let manifest: Manifest = json(reference, "image manifest", &image.bytes)?;
    for layer in &manifest.layers {
        if Compression::from_media_type(&layer.media_type).is_none() {
            return Err(RegistryError::Invalid {
                reference: reference.familiar(),
                reason: format!(
                    "layer {} has unsupported media type {:?}",
                    layer.digest, layer.media_type
                ),
            });
        }
    }
    Ok((top_digest, image, manifest))
}

/// The image config (from the store if it has it), raw and parsed; it must
/// have a diff id per layer of the manifest.
fn image_config(
    client: &Registry,
    store: &Store,
    reference: &Reference,
    manifest: &Manifest,
) -> Result<(Vec<u8>, ImageConfig), RegistryError> {
    let digest = &manifest.config.digest;
    let config_bytes = if store.has_blob(digest) {
        store.read_blob(digest)?
    } else {
        client.get_small_blob(reference.path(), digest, CONFIG_MAX_BYTES)?
    };
    check_size("config", &manifest.config, config_bytes.len() as u64)?;
    let config: ImageConfig = json(reference, "image config", &config_bytes)?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(RegistryError::Invalid {
            reference: reference.familiar(),
            reason: format!(
                "the manifest has {} layers, its config {} diff ids",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        });
    }
    Ok((config_bytes, config))
}

/// Every layer of the image, in order: those the store has as they are,
/// the others downloaded and unpacked into `staging` on `jobs` threads.
fn prepare_layers(
    client: &Registry,
    store: &Store,
    staging: &crate::store::Staging,
    reference: &Reference,
    config: &ImageConfig,
    manifest: &Manifest,
    jobs: usize,
) -> Result<Vec<PreparedLayer>, RegistryError> {
    let mut prepared: Vec<Option<PreparedLayer>> = Vec::new();
    let mut queue = VecDeque::new();
    let layers = config.rootfs.diff_ids.iter().zip(&manifest.layers);
    for (i, (diff_id, desc)) in layers.enumerate() {
        match store.prepare_existing(diff_id)? {
            Some(p) => {
                progress::layer_status(&desc.digest, LayerStatus::AlreadyExists);
                prepared.push(Some(p));
            }
            None => {
                progress::layer_status(&desc.digest, LayerStatus::PullingFsLayer);
                prepared.push(None);
                queue.push_back((i, diff_id.clone(), desc.clone()));
            }
        }
    }
    let results = download_layers(client, store, staging, reference.path(), queue, jobs)?;
    for (i, layer) in results {
        prepared[i] = Some(layer);
    }
    Ok(prepared.into_iter().flatten().collect())
}

fn check_size(what: &str, desc: &Descriptor, found: u64) -> Result<(), RegistryError> {
    if desc.size != found {
        return Err(RegistryError::SizeMismatch(crate::digest::SizeMismatch {
            what: format!("{what} {}", desc.digest),
            expected: desc.size,
            found,
        }));
    }
    Ok(())
}

type Job = (usize, DiffId, Descriptor);

/// Download and unpack the queued layers on `jobs` threads.
fn download_layers(
    client: &Registry,
    store: &Store,
    staging: &crate::store::Staging,
    repo: &str,
    queue: VecDeque<Job>,
    jobs: usize,
) -> Result<Vec<(usize, PreparedLayer)>, RegistryError> {
    super::pool::run(queue, jobs, |(i, diff_id, desc)| {
        fetch_layer(client, store, staging, repo, &diff_id, &desc).map(|l| (i, l))
    })
}

fn fetch_layer(
    client: &Registry,
    store: &Store,
    staging: &crate::store::Staging,
    repo: &str,
    diff_id: &DiffId,
    desc: &Descriptor,
) -> Result<PreparedLayer, RegistryError> {
    let id = &desc.digest;
    // Named by the blob: a pull killed half way resumes where it stopped.
    let mut writer = store.download_writer(&format!("pull {id}"), desc.size, id)?;
    progress::layer_status(id, LayerStatus::Downloading);
    client.download_blob(repo, id, desc.size, &mut writer, &mut |n| {
        progress::layer_bytes(id, Transfer::Download, n, Some(desc.size))
    })?;
    progress::layer_status(id, LayerStatus::DownloadComplete);
    progress::layer_status(id, LayerStatus::Extracting);
    let (layer, _stats) = store.prepare_layer_blob(staging, writer.seal()?, diff_id)?;
    progress::layer_status(id, LayerStatus::PullComplete);
    Ok(layer)
}
