//! The store's [`LayerFetcher`]: a remote layer's blob from its registry
//! repository (the registry client: verified digest and size, resumed with
//! Range) or its OCI layout directory. Shown as a pull shows a layer, and
//! counted in [`super::stats`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::endpoint::layout_blob;
use super::stats;
use crate::progress::{self, LayerStatus, Transfer};
use crate::reference::Reference;
use crate::registry::flags::RegistryFlags;
use crate::registry::Registry;
use crate::store::remote::{FetchError, LayerFetcher, RemoteBlob, RemoteSource};
use crate::store::Writer;

/// Fetches with one client per registry, kept for the process.
#[derive(Default)]
pub struct Fetcher {
    clients: Mutex<HashMap<String, Arc<Registry>>>,
}

/// Installs the fetcher for this process (the CLI does, before a command).
pub fn install() {
    crate::store::remote::install_fetcher(Box::new(Fetcher::default()));
}

impl Fetcher {
    fn client(&self, registry: &str, repository: &str) -> Result<Arc<Registry>, FetchError> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(registry) {
            return Ok(c.clone());
        }
        let reference = Reference::parse(&format!("{registry}/{repository}"))?;
        let client = crate::registry::pull::connect(&reference, &RegistryFlags::default())?;
        let client = Arc::new(client);
        clients.insert(registry.to_string(), client.clone());
        Ok(client)
    }
}

impl LayerFetcher for Fetcher {
    fn fetch(&self, remote: &RemoteBlob, dest: &mut Writer) -> Result<(), FetchError> {
        let digest = &remote.blob.digest;
        progress::layer_status(digest, LayerStatus::Downloading);
        match &remote.source {
            RemoteSource::Registry {
                registry,
                repository,
            } => {
                let client = self.client(registry, repository)?;
                let size = remote.blob.size;
                client.download_blob(repository, digest, size, dest, &mut |n| {
                    progress::layer_bytes(digest, Transfer::Download, n, Some(size))
                })?;
            }
            RemoteSource::Layout { dir } => {
                // Local: read whole again rather than resumed.
                dest.restart()?;
                let mut from = fs_err::File::open(layout_blob(dir, digest))?;
                std::io::copy(&mut from, dest)?;
            }
        }
        progress::layer_status(digest, LayerStatus::DownloadComplete);
        stats::downloaded(remote.blob.size, true);
        Ok(())
    }
}
