//! What a registry serves under `/manifests/`: telling image manifests from
//! indexes (OCI and Docker media types), refusing schema 1, choosing a
//! platform from an index, and the size caps on what is read into memory.
//!
//! Pure functions over bytes and strings; the serde shapes of manifests,
//! indexes and descriptors are the store's (`store::config`), whose
//! [`Digest`](crate::digest::Digest) fields validate every digest a
//! registry sends before any path or URL is made from it.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use serde_json::Value;

/// Manifests and indexes are read into memory: no legitimate one is near
/// this (a 100-platform index is ~50 KiB), and a hostile server cannot make
/// strata allocate more.
pub const MANIFEST_MAX_BYTES: u64 = 4 << 20;
/// Token server answers (a JWT is a few KiB).
pub const TOKEN_MAX_BYTES: u64 = 1 << 20;
/// Image configs: history of many layers can be large, but not this large.
pub const CONFIG_MAX_BYTES: u64 = 16 << 20;
/// Error bodies and other small JSON answers.
pub const SMALL_BODY_MAX_BYTES: u64 = 1 << 20;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The `Accept` header of a manifest GET: the four current types, and
/// schema 1 last so a registry that only has schema 1 says so (and strata
/// can refuse it clearly) instead of answering 404.
pub fn accept_header() -> String {
    [
        OCI_INDEX,
        DOCKER_LIST,
        OCI_MANIFEST,
        DOCKER_MANIFEST,
        &format!("{DOCKER_SCHEMA1_SIGNED};q=0.5"),
        &format!("{DOCKER_SCHEMA1};q=0.5"),
    ]
    .join(", ")
}

/// Which kind of document a manifest body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Image,
    Index,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("manifest is Docker image manifest schema 1, which strata does not support; push it again with a current Docker or convert it (skopeo copy --format v2s2)")]
    Schema1,
    #[error("unsupported manifest media type {media_type:?}")]
    UnsupportedType { media_type: String },
    #[error("manifest is not valid JSON: {reason}")]
    NotJson { reason: String },
    #[error("manifest is ambiguous: it has both `manifests` (an index's) and `layers` or `config` (an image manifest's)")]
    Ambiguous,
    #[error("manifest says its media type is {body:?} but the registry served it as {header:?}")]
    TypeMismatch { body: String, header: String },
    #[error("bad platform {input:?}: expected os/arch[/variant], e.g. linux/amd64")]
    BadPlatform { input: String },
}

/// The fields that tell manifests apart.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Peek {
    #[serde(default)]
    schema_version: Option<u64>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Value>,
    #[serde(default)]
    layers: Option<Value>,
    #[serde(default)]
    config: Option<Value>,
    #[serde(default)]
    fs_layers: Option<Value>,
}

/// Tell what `body` is: its own `mediaType` first (it is covered by the
/// digest, the header is not), then the `Content-Type` header, then its
/// shape (OCI allows omitting `mediaType`). A document that could be read
/// as both kinds, or whose `mediaType` differs from the header it came
/// with, is refused: one client would take it for an image, another for an
/// index (CVE-2021-41190).
pub fn classify(content_type: Option<&str>, body: &[u8]) -> Result<Kind, ManifestError> {
    let peek: Peek = serde_json::from_slice(body).map_err(|e| ManifestError::NotJson {
        reason: e.to_string(),
    })?;
    if peek.schema_version == Some(1) || peek.fs_layers.is_some() {
        return Err(ManifestError::Schema1);
    }
    if peek.manifests.is_some() && (peek.layers.is_some() || peek.config.is_some()) {
        return Err(ManifestError::Ambiguous);
    }
    // Content-Type may carry parameters (`; charset=utf-8`).
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim())
        .filter(|c| !c.is_empty() && *c != "application/json" && *c != "application/octet-stream");
    if let (Some(body), Some(header)) = (peek.media_type.as_deref(), header) {
        if body != header {
            return Err(ManifestError::TypeMismatch {
                body: body.into(),
                header: header.into(),
            });
        }
    }
    let kind = match peek.media_type.as_deref().or(header) {
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => Kind::Image,
        Some(OCI_INDEX | DOCKER_LIST) => Kind::Index,
        Some(DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED) => return Err(ManifestError::Schema1),
        Some(other) => {
            return Err(ManifestError::UnsupportedType {
                media_type: other.into(),
            })
        }
        None if peek.manifests.is_some() => Kind::Index,
        None if peek.layers.is_some() => Kind::Image,
        None => {
            return Err(ManifestError::UnsupportedType {
                media_type: String::new(),
            })
        }
    };
    // A declared kind whose fields are the other kind's.
    match kind {
        Kind::Image if peek.manifests.is_some() => Err(ManifestError::Ambiguous),
        Kind::Index if peek.layers.is_some() || peek.config.is_some() => {
            Err(ManifestError::Ambiguous)
        }
        _ => Ok(kind),
    }
}

/// An `os/arch[/variant]` platform, normalised as containerd does
/// (`x86_64` is `amd64`, `aarch64` is `arm64`, arm64 means v8, arm v7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        let os = os.to_ascii_lowercase();
        let (architecture, variant) = normalize_arch(&architecture.to_ascii_lowercase(), variant);
        Platform {
            os,
            architecture,
            variant,
        }
    }

    /// The platform of the machine strata runs on.
    pub fn host() -> Platform {
        Platform::new("linux", std::env::consts::ARCH, None)
    }

    /// From an index entry's `platform` object.
    pub fn from_json(v: &Value) -> Option<Platform> {
        let os = v.get("os")?.as_str()?;
        let arch = v.get("architecture")?.as_str()?;
        let variant = v
            .get("variant")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        Some(Platform::new(os, arch, variant))
    }

    /// Whether an image for `self` runs here when `wanted` is asked for: same
    /// os and architecture, and the variant if one is asked for.
    pub fn satisfies(&self, wanted: &Platform) -> bool {
        self.os == wanted.os
            && self.architecture == wanted.architecture
            && (wanted.variant.is_none() || self.variant == wanted.variant)
    }
}

fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let variant = variant.map(str::to_ascii_lowercase);
    match arch {
        "x86_64" | "x86-64" | "amd64" => ("amd64".into(), variant),
        "aarch64" | "arm64" => {
            let v = match variant.as_deref() {
                None | Some("8") | Some("v8") => Some("v8".into()),
                _ => variant,
            };
            ("arm64".into(), v)
        }
        "armhf" => ("arm".into(), Some("v7".into())),
        "armel" => ("arm".into(), Some("v6".into())),
        "arm" => {
            let v = match variant.as_deref() {
                None | Some("7") | Some("v7") => Some("v7".into()),
                Some(v) if !v.starts_with('v') => Some(format!("v{v}")),
                _ => variant,
            };
            ("arm".into(), v)
        }
        "i386" | "x86" | "386" => ("386".into(), variant),
        "powerpc64" | "ppc64le" => ("ppc64le".into(), variant),
        other => (other.into(), variant),
    }
}

impl FromStr for Platform {
    type Err = ManifestError;
    fn from_str(s: &str) -> Result<Platform, ManifestError> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || ManifestError::BadPlatform { input: s.into() };
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => {
                Ok(Platform::new(os, arch, Some(variant)))
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The index entry to use for `wanted`, among entries' platforms (`None`
/// for an entry without one, like an attestation manifest): the first
/// exact match (variant included), else the first that satisfies it.
pub fn choose_platform(wanted: &Platform, entries: &[Option<Platform>]) -> Option<usize> {
    let exact = entries
        .iter()
        .position(|p| p.as_ref().is_some_and(|p| p == wanted));
    exact.or_else(|| {
        entries
            .iter()
            .position(|p| p.as_ref().is_some_and(|p| p.satisfies(wanted)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_table() {
        let cases: &[(Option<&str>, &str, Result<Kind, ManifestError>)] = &[
            (
                None,
                r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#,
                Ok(Kind::Image),
            ),
            (
                Some(DOCKER_MANIFEST),
                r#"{"schemaVersion":2,"layers":[]}"#,
                Ok(Kind::Image),
            ),
            (
                Some("application/vnd.oci.image.index.v1+json; charset=utf-8"),
                r#"{"schemaVersion":2,"manifests":[]}"#,
                Ok(Kind::Index),
            ),
            (
                Some(DOCKER_LIST),
                r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#,
                Ok(Kind::Index),
            ),
            (
                Some("application/json"),
                r#"{"schemaVersion":2,"manifests":[]}"#,
                Ok(Kind::Index),
            ),
            (None, r#"{"schemaVersion":2,"layers":[]}"#, Ok(Kind::Image)),
            // The body's own media type and the header disagree.
            (
                Some(DOCKER_MANIFEST),
                r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
                Err(ManifestError::TypeMismatch {
                    body: OCI_INDEX.into(),
                    header: DOCKER_MANIFEST.into(),
                }),
            ),
            // Both kinds' fields, with or without a media type.
            (
                None,
                r#"{"schemaVersion":2,"manifests":[],"layers":[]}"#,
                Err(ManifestError::Ambiguous),
            ),
            (
                Some(OCI_MANIFEST),
                r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","manifests":[],"config":{}}"#,
                Err(ManifestError::Ambiguous),
            ),
            (
                Some(OCI_MANIFEST),
                r#"{"schemaVersion":2,"manifests":[]}"#,
                Err(ManifestError::Ambiguous),
            ),
            (
                Some(OCI_INDEX),
                r#"{"schemaVersion":2,"layers":[]}"#,
                Err(ManifestError::Ambiguous),
            ),
            (
                Some(DOCKER_SCHEMA1_SIGNED),
                r#"{"schemaVersion":1,"fsLayers":[]}"#,
                Err(ManifestError::Schema1),
            ),
            (
                None,
                r#"{"schemaVersion":1,"name":"x"}"#,
                Err(ManifestError::Schema1),
            ),
            (
                Some(DOCKER_SCHEMA1),
                r#"{"schemaVersion":2}"#,
                Err(ManifestError::Schema1),
            ),
            (
                Some("text/html"),
                r#"{"schemaVersion":2}"#,
                Err(ManifestError::UnsupportedType {
                    media_type: "text/html".into(),
                }),
            ),
        ];
        for (ct, body, want) in cases {
            assert_eq!(&classify(*ct, body.as_bytes()), want, "{ct:?} {body}");
        }
        assert!(matches!(
            classify(None, b"<html>"),
            Err(ManifestError::NotJson { .. })
        ));
    }

    #[test]
    fn platform_parse_table() {
        for (input, want) in [
            ("linux/amd64", Some("linux/amd64")),
            ("linux/x86_64", Some("linux/amd64")),
            ("linux/arm64", Some("linux/arm64/v8")),
            ("linux/aarch64/v8", Some("linux/arm64/v8")),
            ("linux/arm", Some("linux/arm/v7")),
            ("linux/arm/6", Some("linux/arm/v6")),
            ("Linux/AMD64", Some("linux/amd64")),
            ("linux", None),
            ("linux/", None),
            ("a/b/c/d", None),
        ] {
            let got = input.parse::<Platform>().ok().map(|p| p.to_string());
            assert_eq!(got.as_deref(), want, "{input}");
        }
    }

    #[test]
    fn choose_table() {
        let p = |s: &str| Some(s.parse::<Platform>().unwrap());
        let entries = vec![
            p("linux/arm/v6"),
            p("linux/arm/v7"),
            p("linux/amd64"),
            None,
            p("linux/arm64"),
            p("windows/amd64"),
        ];
        for (wanted, want) in [
            ("linux/amd64", Some(2)),
            ("linux/arm/v7", Some(1)),
            ("linux/arm/v6", Some(0)),
            ("linux/arm/v5", None),
            ("linux/arm64", Some(4)),
            ("windows/amd64", Some(5)),
            ("linux/s390x", None),
        ] {
            let w: Platform = wanted.parse().unwrap();
            assert_eq!(choose_platform(&w, &entries), want, "{wanted}");
        }
        // An arm entry without variant is v7, so it satisfies linux/arm.
        let json: Value = serde_json::json!({"os": "linux", "architecture": "arm"});
        let plain = Platform::from_json(&json).unwrap();
        assert_eq!(
            choose_platform(&"linux/arm".parse().unwrap(), &[Some(plain)]),
            Some(0)
        );
        // A wanted platform without a variant takes the first of any variant.
        let any = Platform::new("linux", "riscv64", None);
        let rv = Platform::new("linux", "riscv64", Some("rva22"));
        assert_eq!(choose_platform(&any, &[Some(rv)]), Some(0));
    }

    #[test]
    fn host_platform_is_linux() {
        let h = Platform::host();
        assert_eq!(h.os, "linux");
        assert!(!h.architecture.is_empty());
    }

    #[test]
    fn accept_lists_schema1_last() {
        let a = accept_header();
        assert!(a.starts_with(OCI_INDEX));
        assert!(a.ends_with("v1+json;q=0.5"));
    }
}
