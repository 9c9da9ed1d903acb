//! `--cache-from`: caches read once at the start of a build, then asked
//! after the local cache misses, in the order given (the first hit wins).
//!
//! A hit takes the step's image into the store without its layers: the
//! config (inline in the record) and, for each layer the store lacks, a
//! remote record of its blob (`store::remote`), fetched only when
//! something needs its content. The hit is then recorded in the local
//! cache, so the next build on this machine finds it there.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::thread::ThreadId;

use super::format::CacheRecord;
use super::journal::Journal;
use super::spec::CacheSpec;
use super::{endpoint::Endpoint, RemoteError};
use crate::build::cache::{Entry, LocalCache, StepCache};
use crate::build::key::CacheKey;
use crate::digest::{DiffId, DigestMismatch, ImageId};
use crate::layer::compress::Compression;
use crate::store::remote::{RemoteBlob, RemoteSource};
use crate::store::{BlobRecord, PreparedLayer, Store, StoreError};
use crate::sync::lock;

/// One cache read.
pub struct Imported {
    pub source: RemoteSource,
    pub record: CacheRecord,
}

/// Reads every `--cache-from`; one that cannot be read is a warning and
/// the build goes on without it.
pub fn read_all(specs: &[CacheSpec]) -> Vec<Imported> {
    let mut out = Vec::new();
    for spec in specs {
        match read(spec) {
            Ok(Some(i)) => out.push(i),
            Ok(None) => {}
            Err(e) => crate::progress::warn(format!(
                "cache {}: {}; building without it",
                super::describe(&spec.location),
                crate::store::error_chain(&e)
            )),
        }
    }
    out
}

fn read(spec: &CacheSpec) -> Result<Option<Imported>, RemoteError> {
    let Some(endpoint) = Endpoint::open(&spec.location)? else {
        return Ok(None);
    };
    let record = endpoint.read_record()?;
    Ok(Some(Imported {
        source: endpoint.source(),
        record,
    }))
}

/// The local cache, then the imported ones.
pub struct LayeredCache<'a> {
    store: &'a Store,
    local: LocalCache<'a>,
    imports: Vec<Imported>,
    /// Where the last lookup's hit came from, when not the local cache.
    /// (Per thread: stages building at once each run on their own.)
    origin: Mutex<HashMap<ThreadId, String>>,
    /// The steps of this build, for exports.
    journal: Mutex<Journal>,
    /// The stage each building thread is at.
    stage: Mutex<HashMap<ThreadId, usize>>,
    /// Layers whose remote blob failed: an entry whose image has one is a
    /// miss, here or imported.
    poisoned: BTreeSet<DiffId>,
    /// Whether a hit is taken into the store and recorded (not in a dry
    /// run, which only reads the records).
    writes: bool,
}

impl<'a> LayeredCache<'a> {
    pub fn new(
        store: &'a Store,
        imports: Vec<Imported>,
        poisoned: BTreeSet<DiffId>,
    ) -> LayeredCache<'a> {
        LayeredCache {
            store,
            local: LocalCache::new(store),
            imports,
            origin: Mutex::default(),
            journal: Mutex::default(),
            stage: Mutex::default(),
            poisoned,
            writes: true,
        }
    }

    /// The caches, looked up without writing to the store (`--dry-run`):
    /// the local one peeking ([`LocalCache::peeking`]), an imported hit
    /// neither adopted nor recorded; its config is read from its record
    /// ([`StepCache::config`]), no layer is fetched.
    pub fn peeking(store: &'a Store, imports: Vec<Imported>) -> LayeredCache<'a> {
        LayeredCache {
            local: LocalCache::new(store).peeking(),
            writes: false,
            ..LayeredCache::new(store, imports, BTreeSet::new())
        }
    }

    /// Whether `entry` names an image with a poisoned layer.
    fn is_poisoned(&self, entry: &Entry) -> bool {
        let Entry::Image(id) = entry else {
            return false;
        };
        if self.poisoned.is_empty() {
            return false;
        }
        let config = self
            .store
            .config(id)
            .map(|c| c.rootfs.diff_ids)
            .or_else(|_| {
                // Not adopted yet: its config is in the record.
                let found = self.imports.iter().find_map(|i| i.record.image(id));
                found.map(|(_, c)| c.rootfs.diff_ids).ok_or(())
            });
        // A layer made here since (the step built again) is fine.
        config.map_or(true, |ids| {
            ids.iter()
                .any(|d| self.poisoned.contains(d) && !self.store.has_layer(d))
        })
    }

    /// What the build looked up and recorded so far.
    pub fn journal(&self) -> Journal {
        lock(&self.journal).clone()
    }

    /// The stage the calling thread builds.
    fn stage(&self) -> usize {
        lock(&self.stage).get(&thread()).copied().unwrap_or(0)
    }

    fn note(&self, key: &CacheKey, entry: &Entry) {
        let stage = self.stage();
        lock(&self.journal)
            .steps
            .push((stage, key.clone(), entry.clone()));
    }

    fn note_site(&self, site: &CacheKey) {
        let stage = self.stage();
        lock(&self.journal).sites.push((stage, site.clone()));
    }

    /// `key` from the imported caches, taken into the store.
    fn import(&self, key: &CacheKey) -> Option<(Entry, String)> {
        for imported in &self.imports {
            let Some(found) = imported.record.steps.get(key.hex()) else {
                continue;
            };
            let entry = match found {
                Some(id) if self.is_poisoned(&Entry::Image(id.clone())) => continue,
                None => Entry::Step,
                Some(id) if !self.writes => Entry::Image(id.clone()),
                Some(id) => match adopt(self.store, imported, id) {
                    Ok(()) => Entry::Image(id.clone()),
                    Err(e) => {
                        crate::progress::warn(format!(
                            "cache {}: entry {}: {}; not used",
                            imported.source,
                            id.short(),
                            crate::store::error_chain(&e)
                        ));
                        continue;
                    }
                },
            };
            return Some((entry, imported.source.to_string()));
        }
        None
    }
}

impl StepCache for LayeredCache<'_> {
    fn lookup(&self, key: &CacheKey) -> Option<Entry> {
        lock(&self.origin).remove(&thread());
        if let Some(e) = self.local.lookup(key).filter(|e| !self.is_poisoned(e)) {
            self.note(key, &e);
            return Some(e);
        }
        let (entry, origin) = self.import(key)?;
        self.note(key, &entry);
        lock(&self.origin).insert(thread(), origin);
        if !self.writes {
            return Some(entry);
        }
        if let Err(e) = self.local.record(key, &entry) {
            // Only the next build's time: it asks the remote cache again.
            crate::progress::warn(format!("recording the build cache: {e}"));
        }
        Some(entry)
    }

    fn record(&self, key: &CacheKey, entry: &Entry) -> std::io::Result<()> {
        self.note(key, entry);
        self.local.record(key, entry)
    }

    fn has_site(&self, site: &CacheKey) -> bool {
        let seen = self.local.has_site(site)
            || self
                .imports
                .iter()
                .any(|i| i.record.sites.contains(site.hex()));
        if seen {
            self.note_site(site);
        }
        seen
    }

    fn record_site(&self, site: &CacheKey) -> std::io::Result<()> {
        self.note_site(site);
        self.local.record_site(site)
    }

    fn origin(&self) -> Option<String> {
        lock(&self.origin).get(&thread()).cloned()
    }

    fn stage_started(&self, stage: usize) {
        lock(&self.stage).insert(thread(), stage);
    }

    fn note_cache_mount(&self, key: &str) {
        lock(&self.journal).mounts.insert(key.to_string());
    }

    fn config(&self, id: &ImageId) -> Option<crate::store::config::ImageConfig> {
        let found = self.imports.iter().find_map(|i| i.record.image(id));
        found.map(|(_, config)| config)
    }
}

fn thread() -> ThreadId {
    std::thread::current().id()
}

/// Takes image `id` of `imported` into the store: its config, and a remote
/// record for each layer the store does not have.
fn adopt(store: &Store, imported: &Imported, id: &ImageId) -> Result<(), RemoteError> {
    if store.has_blob(id.digest()) && store.index()?.images.contains_key(id) {
        return Ok(());
    }
    let (bytes, config) = imported.record.image(id).ok_or(RemoteError::Invalid {
        what: "cache entry",
        reason: "its config is missing or does not match its id".into(),
    })?;
    let mut layers = Vec::new();
    for diff_id in &config.rootfs.diff_ids {
        layers.push(remote_layer(store, imported, diff_id)?);
    }
    store.commit_image(layers, &bytes, &[], None)?;
    Ok(())
}

/// The layer as the store has it, or as the cache describes it.
fn remote_layer(
    store: &Store,
    imported: &Imported,
    diff_id: &DiffId,
) -> Result<PreparedLayer, RemoteError> {
    if let Some(existing) = store.prepare_existing(diff_id)? {
        return Ok(existing);
    }
    let (desc, compression) =
        imported
            .record
            .layer(diff_id)
            .ok_or_else(|| RemoteError::Invalid {
                what: "cache entry",
                reason: format!("layer {diff_id} has no usable blob in the cache"),
            })?;
    if compression == Compression::None && &desc.digest != diff_id.digest() {
        return Err(StoreError::DigestMismatch(DigestMismatch {
            what: format!("uncompressed layer {diff_id}"),
            expected: diff_id.0.clone(),
            found: desc.digest.clone(),
        })
        .into());
    }
    Ok(PreparedLayer::remote(
        diff_id.clone(),
        vec![RemoteBlob {
            blob: BlobRecord {
                digest: desc.digest.clone(),
                size: desc.size,
                compression,
                level: None,
            },
            source: imported.source.clone(),
        }],
    ))
}
