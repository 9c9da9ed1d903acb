//! The cache record and the manifest that carries it (pure; see
//! `docs/cache.md`).
//!
//! A cache is an OCI image manifest: its config is a [`CacheRecord`]
//! (media type [`CACHE_CONFIG_TYPE`]), its layers every layer blob the
//! record names, so any registry keeps them (no referrers API, no artifact
//! type) and an OCI layout directory holds it as any image.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::spec::Mode;
use crate::digest::{DiffId, Digest, ImageId};
use crate::layer::compress::Compression;
use crate::registry::manifest::OCI_MANIFEST;
use crate::store::config::{to_canonical_json, Descriptor, ImageConfig, Manifest};

/// The media type of a cache manifest's config.
pub const CACHE_CONFIG_TYPE: &str = "application/vnd.strata.cache.config.v1+json";
/// The only record version this strata reads and writes.
pub const VERSION: u32 = 1;

/// Step keys to what they made, with everything needed to take a hit
/// without fetching a layer: each image's config bytes and each layer's
/// blob descriptor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheRecord {
    pub version: u32,
    pub mode: Mode,
    /// Step key (hex) -> the image it made, or `None` for a metadata step
    /// whose change lives in a later step's image.
    pub steps: BTreeMap<String, Option<ImageId>>,
    /// Sites of COPY steps recorded ([`crate::build::key::site`]), so a
    /// COPY on a new machine knows it may hit before it reads its sources.
    #[serde(default)]
    pub sites: BTreeSet<String>,
    /// Image id -> its config, byte for byte (its digest is the id).
    pub images: BTreeMap<ImageId, String>,
    /// Diff id -> the blob of that layer.
    pub layers: BTreeMap<DiffId, Descriptor>,
    /// Cache mount key (`RUN --mount=type=cache`, a digest of its id) ->
    /// a tar of its contents (`mounts=true`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mounts: BTreeMap<String, Descriptor>,
    /// The platforms whose builds made the record (`linux/arm64`); their
    /// keys include the platform wherever it matters, so they share one
    /// record without hitting each other's steps.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub platforms: BTreeSet<String>,
}

/// A record that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("not a strata cache (config media type {0:?})")]
    NotACache(String),
    #[error("cache record version {0} (this strata reads {VERSION})")]
    Version(u32),
    #[error("{what}: {source}")]
    Json {
        what: &'static str,
        source: serde_json::Error,
    },
}

impl CacheRecord {
    pub fn new(mode: Mode) -> CacheRecord {
        CacheRecord {
            version: VERSION,
            mode,
            ..CacheRecord::default()
        }
    }

    /// The record's bytes (canonical JSON: the same record, the same digest).
    pub fn to_bytes(&self) -> Result<Vec<u8>, FormatError> {
        to_canonical_json(self).map_err(|source| FormatError::Json {
            what: "cache record",
            source,
        })
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<CacheRecord, FormatError> {
        let record: CacheRecord =
            serde_json::from_slice(bytes).map_err(|source| FormatError::Json {
                what: "cache record",
                source,
            })?;
        if record.version != VERSION {
            return Err(FormatError::Version(record.version));
        }
        Ok(record)
    }

    /// The manifest that carries the record whose bytes are `config`.
    pub fn manifest(&self, config: &[u8]) -> Result<Vec<u8>, FormatError> {
        let mut layers: Vec<Descriptor> = self
            .layers
            .values()
            .chain(self.mounts.values())
            .cloned()
            .collect();
        layers.sort_by(|a, b| a.digest.cmp(&b.digest));
        layers.dedup_by(|a, b| a.digest == b.digest);
        let m = Manifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.into()),
            config: Descriptor::new(CACHE_CONFIG_TYPE, Digest::of(config), config.len() as u64),
            layers,
            annotations: None,
            extra: BTreeMap::new(),
        };
        to_canonical_json(&m).map_err(|source| FormatError::Json {
            what: "cache manifest",
            source,
        })
    }

    /// The config of `id`, checked against its digest and parsed; `None`
    /// when the record lacks it or its bytes are not the id's.
    pub fn image(&self, id: &ImageId) -> Option<(Vec<u8>, ImageConfig)> {
        let bytes = self.images.get(id)?.as_bytes().to_vec();
        if &Digest::of(&bytes) != id.digest() {
            return None;
        }
        let config = serde_json::from_slice(&bytes).ok()?;
        Some((bytes, config))
    }

    /// The blob of a layer and its compression, if the record has a usable one.
    pub fn layer(&self, diff_id: &DiffId) -> Option<(&Descriptor, Compression)> {
        let d = self.layers.get(diff_id)?;
        Some((d, Compression::from_media_type(&d.media_type)?))
    }
}

/// The config descriptor of a cache manifest's bytes, if it is one.
pub fn cache_config(manifest: &[u8]) -> Result<Descriptor, FormatError> {
    let m: Manifest = serde_json::from_slice(manifest).map_err(|source| FormatError::Json {
        what: "cache manifest",
        source,
    })?;
    if m.config.media_type != CACHE_CONFIG_TYPE {
        return Err(FormatError::NotACache(m.config.media_type));
    }
    Ok(m.config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> (CacheRecord, ImageId, DiffId) {
        let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:1111111111111111111111111111111111111111111111111111111111111111"]}}"#;
        let id = ImageId(Digest::of(config));
        let diff: DiffId = serde_json::from_str(
            "\"sha256:1111111111111111111111111111111111111111111111111111111111111111\"",
        )
        .unwrap();
        let mut r = CacheRecord::new(Mode::Max);
        r.steps.insert("ab".repeat(32), Some(id.clone()));
        r.steps.insert("cd".repeat(32), None);
        r.images
            .insert(id.clone(), String::from_utf8(config.to_vec()).unwrap());
        r.layers.insert(
            diff.clone(),
            Descriptor::new(Compression::Gzip.oci_media_type(), Digest::of(b"blob"), 4),
        );
        (r, id, diff)
    }

    #[test]
    fn round_trips_byte_for_byte() {
        let (r, id, diff) = record();
        let bytes = r.to_bytes().unwrap();
        let back = CacheRecord::from_bytes(&bytes).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.to_bytes().unwrap(), bytes);
        // The config comes back with the bytes its id is the digest of.
        let (config, parsed) = back.image(&id).unwrap();
        assert_eq!(ImageId(Digest::of(&config)), id);
        assert_eq!(parsed.rootfs.diff_ids, vec![diff.clone()]);
        assert_eq!(back.layer(&diff).unwrap().1, Compression::Gzip);
    }

    #[test]
    fn the_manifest_lists_every_blob_once_and_names_its_config() {
        let (mut r, _, _) = record();
        let again: DiffId =
            serde_json::from_str(&format!("\"sha256:{}\"", "2".repeat(64))).unwrap();
        let same_blob = r.layers.values().next().unwrap().clone();
        r.layers.insert(again, same_blob);
        let config = r.to_bytes().unwrap();
        let manifest = r.manifest(&config).unwrap();
        let desc = cache_config(&manifest).unwrap();
        assert_eq!(desc.digest, Digest::of(&config));
        let m: Manifest = serde_json::from_slice(&manifest).unwrap();
        assert_eq!(m.layers.len(), 1);
        assert_eq!(r.manifest(&config).unwrap(), manifest, "deterministic");
    }

    #[test]
    fn a_forged_config_or_another_version_is_refused() {
        let (mut r, id, _) = record();
        r.images.insert(id.clone(), "{}".into());
        assert!(r.image(&id).is_none());
        let mut other = CacheRecord::new(Mode::Min);
        other.version = 2;
        let e = CacheRecord::from_bytes(&other.to_bytes().unwrap()).unwrap_err();
        assert!(e.to_string().contains("version 2"), "{e}");
        let image_manifest = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":1},"layers":[]}"#;
        assert!(matches!(
            cache_config(image_manifest),
            Err(FormatError::NotACache(_))
        ));
    }
}
