//! Remote layers: a layer the store knows by its blob's descriptor and
//! where that blob lives (a registry repository, an OCI layout directory),
//! before its bytes are here. A remote build cache hit records one, so a
//! fully cached build downloads nothing; the layer is fetched the first
//! time something needs its content ([`Store::lowerdirs`] for a container,
//! [`Store::layer_blob`] for an export) and is then an ordinary layer whose
//! record still says where its blob can be found (a push to that registry
//! mounts it from there).
//!
//! The store does not talk to registries: moving the bytes is the job of
//! the [`LayerFetcher`] the program installs once; the store checks them
//! (the blob's digest, the diff id of its tar), unpacks and publishes.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use super::layers::{BlobRecord, LayerRecord, PreparedLayer};
use super::{Sealed, Store, StoreError, Writer};
use crate::digest::{DiffId, ImageId};

/// Where a remote blob lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum RemoteSource {
    /// `registry/repository`, fetched with the registry client.
    Registry {
        registry: String,
        repository: String,
    },
    /// An OCI image layout directory (`blobs/sha256/<hex>`).
    Layout { dir: PathBuf },
}

impl fmt::Display for RemoteSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteSource::Registry {
                registry,
                repository,
            } => write!(f, "registry {registry}/{repository}"),
            RemoteSource::Layout { dir } => write!(f, "local {}", dir.display()),
        }
    }
}

/// A blob of a layer, and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteBlob {
    #[serde(flatten)]
    pub blob: BlobRecord,
    pub source: RemoteSource,
}

/// What a fetcher's failure is to the store.
pub type FetchError = Box<dyn std::error::Error + Send + Sync>;

/// Moves a remote blob's bytes into a store writer (which checks them
/// when sealed), from where the writer is (a resumed fetch).
pub trait LayerFetcher: Send + Sync {
    fn fetch(&self, remote: &RemoteBlob, dest: &mut Writer) -> Result<(), FetchError>;
}

static FETCHER: OnceLock<Box<dyn LayerFetcher>> = OnceLock::new();

/// A remote blob that could not be made a layer (unreachable, or bytes
/// that fail their digest or diff id).
#[derive(Debug, Clone)]
pub struct FailedFetch {
    pub diff_id: DiffId,
    pub source: RemoteSource,
    /// The cause, as a chain.
    pub reason: String,
}

/// The failed fetches of this process not taken yet: a build that failed
/// because of one tries again without the cache entries that need it.
static FAILED: Mutex<Vec<FailedFetch>> = Mutex::new(Vec::new());

/// The failed fetches since the last call.
pub fn take_failed_fetches() -> Vec<FailedFetch> {
    std::mem::take(&mut *FAILED.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Installs the process's fetcher (the first call wins).
pub fn install_fetcher(fetcher: Box<dyn LayerFetcher>) {
    // A second install is the same program asking twice: keep the first.
    let _ = FETCHER.set(fetcher);
}

impl PreparedLayer {
    /// A layer known only by its remote blobs: publishing it writes its
    /// record and no directory.
    pub fn remote(diff_id: DiffId, remote: Vec<RemoteBlob>) -> PreparedLayer {
        PreparedLayer::record_only(LayerRecord {
            diff_id,
            size: 0,
            regenerable: false,
            blobs: Vec::new(),
            remote,
        })
    }
}

impl Store {
    /// Whether the store knows the layer, here or remote.
    pub fn knows_layer(&self, diff_id: &DiffId) -> Result<bool, StoreError> {
        Ok(self.has_layer(diff_id) || self.is_remote_layer(diff_id)?)
    }

    /// Whether the layer is known only by a remote blob (not fetched yet).
    pub fn is_remote_layer(&self, diff_id: &DiffId) -> Result<bool, StoreError> {
        if self.has_layer(diff_id) {
            return Ok(false);
        }
        Ok(self
            .layer_record(diff_id)?
            .is_some_and(|r| !r.remote.is_empty()))
    }

    /// The layers of an image not fetched yet.
    pub fn remote_layers(&self, id: &ImageId) -> Result<Vec<DiffId>, StoreError> {
        let mut out = Vec::new();
        for d in self.config(id)?.rootfs.diff_ids {
            if self.is_remote_layer(&d)? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Makes a remote layer local: its blob fetched from the first source
    /// that gives the right bytes, unpacked, published. A layer already
    /// here is left alone.
    pub fn ensure_layer(&self, diff_id: &DiffId) -> Result<(), StoreError> {
        if self.has_layer(diff_id) {
            return Ok(());
        }
        let missing = || StoreError::LayerMissing {
            diff_id: diff_id.clone(),
        };
        let record = self.layer_record(diff_id)?.ok_or_else(missing)?;
        let fetcher = FETCHER.get().ok_or_else(missing)?;
        let staging = self.staging()?;
        let mut last = None;
        for remote in &record.remote {
            let fetched = self
                .fetch_blob(fetcher.as_ref(), remote, diff_id)
                .and_then(|sealed| self.prepare_layer_blob(&staging, sealed, diff_id))
                .map(|(layer, _)| layer);
            match fetched {
                Ok(layer) => {
                    let lock = self.lock()?;
                    return self.publish_layer(&lock, &staging, layer);
                }
                Err(e) => {
                    let failed = FailedFetch {
                        diff_id: diff_id.clone(),
                        source: remote.source.clone(),
                        reason: super::error_chain(&e),
                    };
                    FAILED
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(failed);
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(missing))
    }

    /// A remote blob fetched into its writer and sealed: its digest and
    /// size checked.
    fn fetch_blob(
        &self,
        fetcher: &dyn LayerFetcher,
        remote: &RemoteBlob,
        diff_id: &DiffId,
    ) -> Result<Sealed, StoreError> {
        let digest = &remote.blob.digest;
        let mut writer =
            self.download_writer(&format!("fetch {digest}"), remote.blob.size, digest)?;
        fetcher
            .fetch(remote, &mut writer)
            .map_err(|source| StoreError::Fetch {
                diff_id: diff_id.clone(),
                from: remote.source.to_string(),
                cause: source,
            })?;
        writer.seal()
    }

    /// Fetches every remote layer of an image.
    pub fn ensure_image_layers(&self, id: &ImageId) -> Result<(), StoreError> {
        for d in self.remote_layers(id)? {
            self.ensure_layer(&d)?;
        }
        Ok(())
    }
}
