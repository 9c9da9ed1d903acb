//! Images into the store from a docker-archive or an OCI layout (directory
//! or tar). Every config, manifest and layer is checked against the digest
//! that names it; layers the store already has are not read at all.

use std::path::Path;

use serde::Deserialize;

use super::super::config::{
    Descriptor, ImageConfig, Index, Manifest, MEDIA_DOCKER_LIST, MEDIA_OCI_INDEX,
};
use super::super::layers::PreparedLayer;
use super::super::{Store, StoreError};
use super::source::Source;
use super::{IMAGE_NAME_ANNOTATION, REF_NAME_ANNOTATION};
use crate::digest::{Digest, DigestMismatch, ImageId};
use crate::layer::apply::ApplyStats;
use crate::reference::Reference;

/// One image brought in.
#[derive(Debug, Clone)]
pub struct Imported {
    pub id: ImageId,
    pub tags: Vec<Reference>,
    /// What unpacking each new layer had to skip (for warnings).
    pub applied: Vec<ApplyStats>,
}

/// An entry of docker-archive's manifest.json.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Read images from `path` (a directory or a tar, either format).
///
/// `select` picks one image: a tag or reference in a docker-archive, a
/// ref name in an OCI index. `name` tags the result (for `pull`); without
/// it the names recorded in the archive are used.
pub fn import(
    store: &Store,
    path: &Path,
    select: Option<&str>,
    name: Option<&Reference>,
) -> Result<Vec<Imported>, StoreError> {
    let src = if path.is_dir() {
        Source::dir(path)
    } else {
        Source::tar(path)?
    };
    let invalid = |reason: String| StoreError::Invalid {
        what: path.display().to_string(),
        reason,
    };
    if src.exists("manifest.json") {
        let entries: Vec<ArchiveEntry> = json(&src, "manifest.json")?;
        let wanted = select.map(Reference::parse).transpose()?;
        let mut out = Vec::new();
        for e in entries {
            let tags: Vec<Reference> = e
                .repo_tags
                .iter()
                .flatten()
                .filter_map(|t| Reference::parse(t).ok())
                .collect();
            if wanted.as_ref().is_some_and(|w| !tags.contains(w)) {
                continue;
            }
            let tags = name.map_or(tags, |n| vec![n.clone()]);
            out.push(retry_if_collected(|| {
                import_docker_entry(store, &src, &e, tags.clone())
            })?);
        }
        if out.is_empty() {
            return Err(invalid(match select {
                Some(s) => format!("no image named {s:?} in the archive"),
                None => "the archive holds no image".into(),
            }));
        }
        return Ok(out);
    }
    if src.exists("index.json") {
        let index: Index = json(&src, "index.json")?;
        let mut out = Vec::new();
        for d in &index.manifests {
            let annotations = d.annotations.clone().unwrap_or_default();
            let ref_name = annotations.get(REF_NAME_ANNOTATION);
            if select.is_some_and(|s| ref_name.is_none_or(|r| r != s)) {
                continue;
            }
            let tags = match name {
                Some(n) => vec![n.clone()],
                None => annotations
                    .get(IMAGE_NAME_ANNOTATION)
                    .or(ref_name.filter(|r| r.contains(':') || r.contains('/')))
                    .and_then(|r| Reference::parse(r).ok())
                    .into_iter()
                    .collect(),
            };
            let manifest = resolve_manifest(&src, d)?;
            out.push(retry_if_collected(|| {
                import_oci_manifest(store, &src, &manifest, tags.clone())
            })?);
        }
        if out.is_empty() {
            return Err(invalid(match select {
                Some(s) => format!("no image with ref name {s:?} in the layout"),
                None => "the layout holds no image".into(),
            }));
        }
        return Ok(out);
    }
    Err(invalid(
        "neither a docker-archive (manifest.json) nor an OCI layout (index.json)".into(),
    ))
}

/// Run an image import again once if a layer it found in the store was
/// garbage-collected before the commit (a concurrent `rmi` or `prune`):
/// the second run unpacks that layer itself.
fn retry_if_collected(
    mut f: impl FnMut() -> Result<Imported, StoreError>,
) -> Result<Imported, StoreError> {
    match f() {
        Err(StoreError::LayerMissing { .. }) => f(),
        r => r,
    }
}

fn json<T: serde::de::DeserializeOwned>(src: &Source, name: &str) -> Result<T, StoreError> {
    let bytes = src.read(name)?;
    serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
        path: src.location().join(name),
        source,
    })
}

fn blob_name(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// Read a blob of an OCI layout and check its digest and size.
fn read_blob(src: &Source, d: &Descriptor) -> Result<Vec<u8>, StoreError> {
    let bytes = src.read(&blob_name(&d.digest))?;
    let found = Digest::of(&bytes);
    if found != d.digest {
        return Err(StoreError::DigestMismatch(DigestMismatch {
            what: format!("{} in {}", blob_name(&d.digest), src.location().display()),
            expected: d.digest.clone(),
            found,
        }));
    }
    if bytes.len() as u64 != d.size {
        return Err(StoreError::SizeMismatch(crate::digest::SizeMismatch {
            what: blob_name(&d.digest),
            expected: d.size,
            found: bytes.len() as u64,
        }));
    }
    Ok(bytes)
}

/// Follow nested indexes to an image manifest for this machine's platform
/// (or the first one); returns the manifest's bytes.
fn resolve_manifest(src: &Source, d: &Descriptor) -> Result<Vec<u8>, StoreError> {
    let bytes = read_blob(src, d)?;
    let is_index = d.media_type == MEDIA_OCI_INDEX || d.media_type == MEDIA_DOCKER_LIST;
    if !is_index {
        return Ok(bytes);
    }
    let index: Index = serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
        path: src.location().join(blob_name(&d.digest)),
        source,
    })?;
    let arch = super::super::config::go_arch();
    let pick = index
        .manifests
        .iter()
        .find(|m| {
            m.platform.as_ref().is_some_and(|p| {
                p.get("architecture").and_then(|a| a.as_str()) == Some(arch)
                    && p.get("os").and_then(|o| o.as_str()) == Some("linux")
            })
        })
        .or(index.manifests.first())
        .ok_or_else(|| StoreError::Invalid {
            what: blob_name(&d.digest),
            reason: "empty image index".into(),
        })?;
    resolve_manifest(src, pick)
}

fn import_docker_entry(
    store: &Store,
    src: &Source,
    e: &ArchiveEntry,
    tags: Vec<Reference>,
) -> Result<Imported, StoreError> {
    let config_bytes = src.read(&e.config)?;
    let config: ImageConfig =
        serde_json::from_slice(&config_bytes).map_err(|source| StoreError::Json {
            path: src.location().join(&e.config),
            source,
        })?;
    // A config named by its digest (`<hex>.json`, or `blobs/sha256/<hex>`
    // in newer docker saves) must match it.
    if let Some(hex) = e
        .config
        .rsplit('/')
        .next()
        .map(|n| n.strip_suffix(".json").unwrap_or(n))
    {
        if let Ok(want) = Digest::from_hex(hex) {
            let found = Digest::of(&config_bytes);
            if want != found {
                return Err(StoreError::DigestMismatch(DigestMismatch {
                    what: e.config.clone(),
                    expected: want,
                    found,
                }));
            }
        }
    }
    if config.rootfs.diff_ids.len() != e.layers.len() {
        return Err(StoreError::Invalid {
            what: src.location().display().to_string(),
            reason: format!(
                "{} lists {} layers, its config {}",
                e.config,
                e.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        });
    }
    let staging = store.staging()?;
    let mut layers = Vec::new();
    let mut applied = Vec::new();
    for (diff_id, name) in config.rootfs.diff_ids.iter().zip(&e.layers) {
        if let Some(p) = store.prepare_existing(diff_id)? {
            layers.push(p);
            continue;
        }
        let (reader, _) = src.open(name)?;
        let (p, stats) = store.prepare_layer_tar(&staging, reader, Some(diff_id))?;
        layers.push(p);
        applied.push(stats);
    }
    let id = store.commit_image(layers, &config_bytes, &tags, None)?;
    Ok(Imported { id, tags, applied })
}

/// A layer blob read from an archive must have its descriptor's digest.
fn check_blob(found: &Digest, desc: &Descriptor) -> Result<(), StoreError> {
    if found != &desc.digest {
        return Err(StoreError::DigestMismatch(DigestMismatch {
            what: format!("layer blob {}", desc.digest),
            expected: desc.digest.clone(),
            found: found.clone(),
        }));
    }
    Ok(())
}

fn import_oci_manifest(
    store: &Store,
    src: &Source,
    manifest_bytes: &[u8],
    tags: Vec<Reference>,
) -> Result<Imported, StoreError> {
    let manifest: Manifest =
        serde_json::from_slice(manifest_bytes).map_err(|source| StoreError::Json {
            path: src.location().to_path_buf(),
            source,
        })?;
    let config_bytes = read_blob(src, &manifest.config)?;
    let config: ImageConfig =
        serde_json::from_slice(&config_bytes).map_err(|source| StoreError::Json {
            path: src.location().join(blob_name(&manifest.config.digest)),
            source,
        })?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(StoreError::Invalid {
            what: format!("manifest {}", Digest::of(manifest_bytes)),
            reason: format!(
                "{} layers, its config {}",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        });
    }
    let staging = store.staging()?;
    let mut layers: Vec<PreparedLayer> = Vec::new();
    let mut applied = Vec::new();
    for (diff_id, desc) in config.rootfs.diff_ids.iter().zip(&manifest.layers) {
        if let Some(p) = store.prepare_existing(diff_id)? {
            let known = p.record.blobs.iter().any(|b| b.digest == desc.digest);
            if known || !src.exists(&blob_name(&desc.digest)) {
                layers.push(p);
            } else {
                let (reader, _) = src.open(&blob_name(&desc.digest))?;
                let p = store.prepare_extra_blob(&staging, reader, p)?;
                check_blob(&p.record.blobs[0].digest, desc)?;
                layers.push(p);
            }
            continue;
        }
        let (reader, _) = src.open(&blob_name(&desc.digest))?;
        let (p, stats) = store.prepare_layer_tar(&staging, reader, Some(diff_id))?;
        check_blob(&stats.blob.digest, desc)?;
        layers.push(p);
        applied.push(stats);
    }
    let id = store.commit_image(layers, &config_bytes, &tags, None)?;
    store.add_manifest(&id, manifest_bytes, None)?;
    Ok(Imported { id, tags, applied })
}
