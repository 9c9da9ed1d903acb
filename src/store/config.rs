//! The image config (OCI image spec "config", with Docker's extra fields),
//! and the manifests and indexes archives and registries need.
//!
//! Serde structs, not a fixed schema: every struct keeps the fields it does
//! not know in `extra`, so a config read and written back loses nothing,
//! and the build issue can add fields (Healthcheck, OnBuild, Shell are here
//! already). A stored config is never re-serialised: its bytes are the blob,
//! its digest the image id; [`to_canonical_json`] is used only for configs
//! strata creates, so equal configs give equal ids.
//!
//! [`ManifestFormat`] is the other half of an image's identity on the wire:
//! the config bytes are the same in both formats (Healthcheck, OnBuild and
//! Shell included, unlike buildah's OCI output); only the media types of
//! the manifest, config and layer descriptors differ.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::digest::{DiffId, Digest};
use crate::layer::compress::Compression;

pub const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Which manifest type an image goes out as: `--format` of build, commit
/// and push, and what the store records for an image (lower case in JSON,
/// as buildah spells the values).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ManifestFormat {
    /// application/vnd.oci.image.manifest.v1+json
    // buildah's default, and what strata pushed before images recorded a
    // format, so an image without a record keeps going out as it did.
    #[default]
    Oci,
    /// application/vnd.docker.distribution.manifest.v2+json
    Docker,
}

impl ManifestFormat {
    pub fn manifest_type(self) -> &'static str {
        match self {
            ManifestFormat::Oci => MEDIA_OCI_MANIFEST,
            ManifestFormat::Docker => MEDIA_DOCKER_MANIFEST,
        }
    }

    pub fn config_type(self) -> &'static str {
        match self {
            ManifestFormat::Oci => MEDIA_OCI_CONFIG,
            ManifestFormat::Docker => MEDIA_DOCKER_CONFIG,
        }
    }

    pub fn layer_type(self, c: Compression) -> &'static str {
        match self {
            ManifestFormat::Oci => c.oci_media_type(),
            ManifestFormat::Docker => c.docker_media_type(),
        }
    }
}

/// The `--format` value.
impl std::fmt::Display for ManifestFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ManifestFormat::Oci => "oci",
            ManifestFormat::Docker => "docker",
        })
    }
}

/// `config` of the image config: how a container of the image runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Empty>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Empty>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The `{}` values of ExposedPorts and Volumes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<DiffId>,
}

impl Default for RootFs {
    fn default() -> RootFs {
        RootFs {
            kind: "layers".into(),
            diff_ids: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The image config blob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RunConfig>,
    #[serde(default)]
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl ImageConfig {
    /// An empty config for this machine's platform, created `now`.
    pub fn new(created: String) -> ImageConfig {
        ImageConfig {
            created: Some(created),
            author: None,
            architecture: go_arch().into(),
            os: "linux".into(),
            variant: None,
            config: None,
            rootfs: RootFs::default(),
            history: Vec::new(),
            extra: BTreeMap::new(),
        }
    }

    pub fn run_config_mut(&mut self) -> &mut RunConfig {
        self.config.get_or_insert_with(RunConfig::default)
    }
}

/// The GOARCH name of the machine strata runs on, as configs spell it.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "arm" => "arm",
        other => other,
    }
}

/// Serialise with sorted map keys and no whitespace: deterministic bytes.
pub fn to_canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    // Going through Value sorts object keys (serde_json's map is a BTreeMap
    // without the preserve_order feature).
    let v = serde_json::to_value(value)?;
    serde_json::to_vec(&v)
}

/// A content descriptor (OCI image spec).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Value>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            annotations: None,
            platform: None,
            extra: BTreeMap::new(),
        }
    }
}

/// An image manifest (OCI, or Docker schema 2: same shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Annotations an image goes out with (`--annotation`), by where they go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    /// On the image manifest.
    pub manifest: BTreeMap<String, String>,
    /// On the image index, where there is one (an OCI layout, a push with
    /// an attestation).
    pub index: BTreeMap<String, String>,
    /// On the manifest's descriptor in the index.
    pub descriptor: BTreeMap<String, String>,
}

impl Annotations {
    pub fn is_empty(&self) -> bool {
        self.manifest.is_empty() && self.index.is_empty() && self.descriptor.is_empty()
    }

    /// These over `base`.
    pub fn over(&self, base: &Annotations) -> Annotations {
        let merge = |a: &BTreeMap<String, String>, b: &BTreeMap<String, String>| {
            let mut m = b.clone();
            m.extend(a.iter().map(|(k, v)| (k.clone(), v.clone())));
            m
        };
        Annotations {
            manifest: merge(&self.manifest, &base.manifest),
            index: merge(&self.index, &base.index),
            descriptor: merge(&self.descriptor, &base.descriptor),
        }
    }
}

/// `Some(map)` unless empty, as optional JSON fields hold annotations.
pub fn some_map(map: &BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then(|| map.clone())
}

/// An image index / manifest list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let json = r#"{"architecture":"amd64","config":{"Cmd":["sh"],"Healthcheck":{"Test":["CMD","true"]},"Weird":1},"container":"abc","created":"2024-01-01T00:00:00Z","docker_version":"24","history":[{"created_by":"x","empty_layer":true}],"os":"linux","rootfs":{"diff_ids":[],"type":"layers"}}"#;
        let c: ImageConfig = serde_json::from_str(json).unwrap();
        assert_eq!(
            c.config.as_ref().unwrap().cmd.as_deref(),
            Some(&["sh".to_string()][..])
        );
        assert!(c.history[0].empty_layer);
        assert_eq!(
            String::from_utf8(to_canonical_json(&c).unwrap()).unwrap(),
            json
        );
    }

    #[test]
    fn canonical_json_is_stable() {
        let mut c = ImageConfig::new("2024-01-01T00:00:00Z".into());
        c.run_config_mut().env = Some(vec!["A=1".into()]);
        let a = to_canonical_json(&c).unwrap();
        let b = to_canonical_json(&c.clone()).unwrap();
        assert_eq!(a, b);
        let back: ImageConfig = serde_json::from_slice(&a).unwrap();
        assert_eq!(back, c);
    }
}
