//! Housekeeping of the local build cache: its row in `system df` and
//! `system prune --build-cache [--filter until=DURATION] [--keep-storage
//! SIZE]`, as `docker builder prune` does it.
//!
//! The build cache is its entries (`cache/steps/`, `cache/sites/`, and the
//! `--explain-cache` records in `cache/explain/`) and the
//! images only they keep: an entry's image that no tag, no container and
//! no tagged image's parent chain needs. Pruning forgets entries, then
//! removes those of their images nothing else needs, and the layers and
//! blobs only those held.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use super::cache::{LocalCache, Stored};
use crate::digest::ImageId;
use crate::store::{Store, StoreError, UsageRow};

/// Which entries `prune --build-cache` removes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filters {
    /// Only entries not used (recorded or hit) for this long.
    pub until: Option<Duration>,
    /// Keep the most recently used entries up to this many bytes.
    pub keep_storage: Option<u64>,
}

/// What a prune removed.
#[derive(Debug, Default)]
pub struct Pruned {
    pub entries: Vec<Stored>,
    pub images: Vec<ImageId>,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheGcError {
    #[error("reading the build cache")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The images tags, names' lists (another platform's image under a name),
/// containers and those images' parent chains need.
fn protected(store: &Store) -> Result<BTreeSet<ImageId>, StoreError> {
    let index = store.index()?;
    let mut out: BTreeSet<ImageId> = store.containers_by_image()?.into_keys().collect();
    let mut todo: Vec<ImageId> = index.tags.values().cloned().collect();
    let listed = index.lists.values().flat_map(|l| &l.manifests);
    todo.extend(listed.map(|e| e.image.clone()));
    todo.extend(out.iter().cloned());
    while let Some(id) = todo.pop() {
        let parent = index.images.get(&id).and_then(|r| r.parent.clone());
        out.insert(id);
        todo.extend(parent.filter(|p| !out.contains(p)));
    }
    Ok(out)
}

/// The images of `entries` only the cache keeps.
fn cache_images(store: &Store, entries: &[Stored]) -> Result<BTreeSet<ImageId>, StoreError> {
    let keep = protected(store)?;
    let index = store.index()?;
    Ok(entries
        .iter()
        .filter_map(|e| e.image.clone())
        .filter(|id| index.images.contains_key(id) && !keep.contains(id))
        .collect())
}

/// `system df`'s Build Cache row: entries, those whose image a tag or
/// container needs (active), and the bytes only the cache holds.
pub fn usage(store: &Store) -> Result<UsageRow, CacheGcError> {
    let entries = LocalCache::new(store).stored()?;
    let only_cache = cache_images(store, &entries)?;
    // The `--explain-cache` records are the cache's too (not entries).
    let explained = super::explain::usage(store)?;
    let size = store.exclusive_size(&only_cache)? + explained;
    let active = entries
        .iter()
        .filter(|e| e.image.as_ref().is_some_and(|i| !only_cache.contains(i)))
        .count();
    Ok(UsageRow {
        total: entries.len(),
        active,
        size,
        reclaimable: size,
    })
}

/// `system prune --build-cache`.
pub fn prune(store: &Store, filters: Filters) -> Result<Pruned, CacheGcError> {
    let cache = LocalCache::new(store);
    let mut entries = cache.stored()?;
    // Most recently used first: what --keep-storage keeps.
    entries.sort_by_key(|e| std::cmp::Reverse(e.used));
    let cutoff = filters.until.map(|d| SystemTime::now() - d);
    let mut kept_bytes = 0u64;
    let mut counted = BTreeSet::new();
    let (doomed, kept): (Vec<Stored>, Vec<Stored>) = entries.into_iter().partition(|e| {
        let old = cutoff.is_some_and(|t| e.used < t);
        // Past the budget, counting from the most recently used.
        let mut over = || {
            kept_bytes += entry_size(store, e, &mut counted);
            filters.keep_storage.is_some_and(|limit| kept_bytes > limit)
        };
        match (filters.until, filters.keep_storage) {
            (None, None) => true,
            (Some(_), None) => old,
            (None, Some(_)) => over(),
            (Some(_), Some(_)) => over() && old,
        }
    });
    for e in &doomed {
        cache.forget(&e.key)?;
    }
    // Sites and `--explain-cache` records are small: all go with the whole
    // cache, old ones with `until`, none for a size budget.
    let explained = match (filters.until, filters.keep_storage) {
        (None, None) => cache
            .forget_sites(None)
            .and(super::explain::forget(store, None))?,
        (Some(_), _) => cache
            .forget_sites(cutoff)
            .and(super::explain::forget(store, cutoff))?,
        (None, Some(_)) => 0,
    };
    let still: BTreeSet<ImageId> = kept.iter().filter_map(|e| e.image.clone()).collect();
    let candidates: BTreeSet<ImageId> = cache_images(store, &doomed)?
        .into_iter()
        .filter(|id| !still.contains(id))
        .collect();
    let report = store.prune_where(false, &|id| candidates.contains(id))?;
    Ok(Pruned {
        entries: doomed,
        images: report.images,
        bytes: report.bytes + explained,
    })
}

/// The bytes of the layer an entry's step made (its image's top layer),
/// counted once per layer.
fn entry_size(store: &Store, e: &Stored, counted: &mut BTreeSet<ImageId>) -> u64 {
    let Some(id) = &e.image else { return 0 };
    if !counted.insert(id.clone()) {
        return 0;
    }
    let top = store
        .config(id)
        .ok()
        .and_then(|c| c.rootfs.diff_ids.last().cloned());
    top.and_then(|d| store.layer_record(&d).ok().flatten())
        .map_or(0, |r| r.size)
}
