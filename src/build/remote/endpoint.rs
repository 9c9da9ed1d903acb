//! Where a cache is read from and written to: a registry repository or an
//! OCI image layout directory, behind one type so import and export do not
//! care which. Every byte moved is counted in [`super::stats`].

use std::io;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::format::{cache_config, CacheRecord, CACHE_CONFIG_TYPE};
use super::spec::Location;
use super::{stats, RemoteError};
use crate::digest::{Digest, DigestMismatch, HashingReader};
use crate::layer::compress::Compression;
use crate::reference::Reference;
use crate::registry::flags::RegistryFlags;
use crate::registry::manifest::{CONFIG_MAX_BYTES, OCI_MANIFEST};
use crate::registry::Registry;
use crate::store::config::{Index, Manifest};
use crate::store::remote::RemoteSource;
use crate::store::transport::REF_NAME_ANNOTATION;

/// The largest cache record read (its configs are inline).
const RECORD_MAX_BYTES: u64 = 64 << 20;

/// An open cache location.
pub enum Endpoint {
    Registry {
        client: Box<Registry>,
        reference: Reference,
    },
    Layout {
        dir: PathBuf,
        tag: String,
    },
}

impl Endpoint {
    /// Connects to (or names) the location; `None` for inline, which lives
    /// in an image, not at a place of its own.
    pub fn open(location: &Location) -> Result<Option<Endpoint>, RemoteError> {
        Ok(Some(match location {
            Location::Registry(reference) => Endpoint::Registry {
                client: Box::new(crate::registry::pull::connect(
                    reference,
                    &RegistryFlags::default(),
                )?),
                reference: reference.clone(),
            },
            Location::Local { dir, tag } => Endpoint::Layout {
                dir: dir.clone(),
                tag: tag.clone(),
            },
            Location::Inline => return Ok(None),
        }))
    }

    /// Where layer blobs read from here are, for the store's remote records.
    pub fn source(&self) -> RemoteSource {
        match self {
            Endpoint::Registry { reference, .. } => RemoteSource::Registry {
                registry: reference.domain().to_string(),
                repository: reference.path().to_string(),
            },
            Endpoint::Layout { dir, .. } => RemoteSource::Layout {
                dir: std::path::absolute(dir).unwrap_or_else(|_| dir.clone()),
            },
        }
    }

    /// The cache record here: a cache manifest, or an image whose config
    /// carries one (`type=inline`).
    pub fn read_record(&self) -> Result<CacheRecord, RemoteError> {
        let manifest = self.read_manifest()?;
        stats::downloaded(manifest.len() as u64, false);
        let m: Manifest = serde_json::from_slice(&manifest).map_err(|e| RemoteError::Invalid {
            what: "cache manifest",
            reason: e.to_string(),
        })?;
        let inline = m.config.media_type != CACHE_CONFIG_TYPE;
        if !inline {
            cache_config(&manifest)?;
        }
        let config = self.read_small_blob(&m.config.digest)?;
        stats::downloaded(config.len() as u64, false);
        if inline {
            return super::inline::record_of_image(&config);
        }
        Ok(CacheRecord::from_bytes(&config)?)
    }

    fn read_manifest(&self) -> Result<Vec<u8>, RemoteError> {
        match self {
            Endpoint::Registry { client, reference } => {
                let tag = reference
                    .digest()
                    .map(ToString::to_string)
                    .or_else(|| reference.tag().map(str::to_string))
                    .unwrap_or_else(|| crate::reference::DEFAULT_TAG.into());
                Ok(client.get_manifest(reference.path(), &tag)?.bytes)
            }
            Endpoint::Layout { dir, tag } => {
                let path = dir.join("index.json");
                let bytes = fs_err::read(&path).map_err(io_err("read", &path))?;
                let index: Index =
                    serde_json::from_slice(&bytes).map_err(|e| RemoteError::Invalid {
                        what: "cache index.json",
                        reason: e.to_string(),
                    })?;
                let named = |d: &&crate::store::config::Descriptor| {
                    d.annotations
                        .as_ref()
                        .and_then(|a| a.get(REF_NAME_ANNOTATION))
                        == Some(tag)
                };
                let desc =
                    index
                        .manifests
                        .iter()
                        .find(named)
                        .ok_or_else(|| RemoteError::NoCache {
                            at: format!("{} (no manifest tagged {tag:?})", dir.display()),
                        })?;
                let data = self.read_small_blob(&desc.digest)?;
                Ok(data)
            }
        }
    }

    fn read_small_blob(&self, digest: &Digest) -> Result<Vec<u8>, RemoteError> {
        match self {
            Endpoint::Registry { client, reference } => {
                let limit = RECORD_MAX_BYTES.max(CONFIG_MAX_BYTES);
                Ok(client.get_small_blob(reference.path(), digest, limit)?)
            }
            Endpoint::Layout { dir, .. } => {
                let path = layout_blob(dir, digest);
                let data = fs_err::read(&path).map_err(io_err("read", &path))?;
                let found = Digest::of(&data);
                if &found != digest {
                    return Err(RemoteError::DigestMismatch(DigestMismatch {
                        what: path.display().to_string(),
                        expected: digest.clone(),
                        found,
                    }));
                }
                Ok(data)
            }
        }
    }

    /// Puts a blob here unless it is here already; `mount_from` is a
    /// repository of the same registry that has it. Returns whether bytes
    /// were sent.
    pub fn put_blob(
        &self,
        digest: &Digest,
        size: u64,
        file: Option<&Path>,
        mount_from: Option<&str>,
    ) -> Result<bool, RemoteError> {
        match self {
            Endpoint::Registry { client, reference } => {
                let blob = crate::registry::push::Blob {
                    digest: digest.clone(),
                    size,
                    // Not read by a blob's push: only manifests need it.
                    compression: Compression::None,
                    path: file.map(Path::to_path_buf).unwrap_or_default(),
                    mount_from: mount_from.map(str::to_string),
                    fetch: None,
                };
                Ok(crate::registry::push::push_blob(
                    client,
                    reference.path(),
                    digest,
                    &blob,
                )?)
            }
            Endpoint::Layout { dir, .. } => {
                let dest = layout_blob(dir, digest);
                if dest.is_file() {
                    return Ok(false);
                }
                let from = file.ok_or_else(|| RemoteError::Invalid {
                    what: "cache export",
                    reason: format!("blob {digest} has no local copy to write"),
                })?;
                copy_checked(from, &dest, digest)?;
                Ok(true)
            }
        }
    }

    /// Puts small bytes (the record) as a blob.
    pub fn put_bytes(&self, staging: &Path, bytes: &[u8]) -> Result<Digest, RemoteError> {
        let digest = Digest::of(bytes);
        let path = staging.join(digest.hex());
        fs_err::write(&path, bytes).map_err(io_err("write", &path))?;
        if self.put_blob(&digest, bytes.len() as u64, Some(&path), None)? {
            stats::uploaded(bytes.len() as u64, false);
        }
        Ok(digest)
    }

    /// Points the cache's name at `manifest`: the last write of an export,
    /// so a reader sees the old cache or the whole new one.
    pub fn put_manifest(&self, staging: &Path, manifest: &[u8]) -> Result<(), RemoteError> {
        stats::uploaded(manifest.len() as u64, false);
        match self {
            Endpoint::Registry { client, reference } => {
                let tag = reference.tag().unwrap_or(crate::reference::DEFAULT_TAG);
                client.put_manifest(reference.path(), tag, OCI_MANIFEST, manifest)?;
                Ok(())
            }
            Endpoint::Layout { dir, tag } => {
                let digest = self.put_bytes(staging, manifest)?;
                let index = json!({
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": [{
                        "mediaType": OCI_MANIFEST,
                        "digest": digest,
                        "size": manifest.len(),
                        "annotations": { REF_NAME_ANNOTATION: tag },
                    }],
                });
                write_atomic(
                    &dir.join("oci-layout"),
                    br#"{"imageLayoutVersion":"1.0.0"}"#,
                )?;
                write_atomic(&dir.join("index.json"), index.to_string().as_bytes())
            }
        }
    }

    /// Creates a layout directory's tree (nothing for a registry).
    pub fn prepare(&self) -> Result<(), RemoteError> {
        if let Endpoint::Layout { dir, .. } = self {
            let blobs = dir.join("blobs/sha256");
            fs_err::create_dir_all(&blobs).map_err(io_err("create", &blobs))?;
        }
        Ok(())
    }
}

/// `DIR/blobs/sha256/<hex>`.
pub fn layout_blob(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs")
        .join(digest.algorithm())
        .join(digest.hex())
}

/// Copies `from` to `dest` (through a temporary name beside it) if its
/// bytes have `digest`.
pub fn copy_checked(from: &Path, dest: &Path, digest: &Digest) -> Result<u64, RemoteError> {
    let tmp = dest.with_extension(format!("tmp{}", std::process::id()));
    let copied = (|| -> Result<u64, RemoteError> {
        let src = fs_err::File::open(from).map_err(io_err("open", from))?;
        let mut reader = HashingReader::new(src);
        let mut out = fs_err::File::create(&tmp).map_err(io_err("create", &tmp))?;
        io::copy(&mut reader, &mut out).map_err(io_err("copy to", &tmp))?;
        out.sync_all().map_err(io_err("fsync", &tmp))?;
        let (found, size) = reader.finish();
        if &found != digest {
            return Err(RemoteError::DigestMismatch(DigestMismatch {
                what: from.display().to_string(),
                expected: digest.clone(),
                found,
            }));
        }
        fs_err::rename(&tmp, dest).map_err(io_err("rename to", dest))?;
        Ok(size)
    })();
    if copied.is_err() {
        // Nothing half-written stays; it may not exist at all.
        let _ = fs_err::remove_file(&tmp);
    }
    copied
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<(), RemoteError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs_err::write(&tmp, data).map_err(io_err("write", &tmp))?;
    fs_err::rename(&tmp, path).map_err(io_err("rename to", path))
}

pub fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> RemoteError {
    let path = path.to_path_buf();
    move |source| RemoteError::Io { op, path, source }
}
