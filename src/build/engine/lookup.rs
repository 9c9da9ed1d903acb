//! The step cache as the engine asks it: `--no-cache` and
//! `--no-cache-filter` applied, write failures only warned about.

use super::{Build, Entry};
use crate::build::key::CacheKey;
use crate::digest::ImageId;

thread_local! {
    /// Set while a stage `--no-cache-filter` names runs on this thread (a
    /// stage runs wholly on one thread, so the executors' lookups need not
    /// be told which stage they are of).
    static UNCACHED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The stage running on this thread takes nothing from the cache, until
/// dropped.
pub(super) struct Uncached;

impl Uncached {
    pub(super) fn set(on: bool) -> Uncached {
        UNCACHED.with(|u| u.set(on));
        Uncached
    }

    pub(super) fn here() -> bool {
        UNCACHED.with(std::cell::Cell::get)
    }
}

impl Drop for Uncached {
    fn drop(&mut self) {
        UNCACHED.with(|u| u.set(false));
    }
}

impl Build<'_> {
    /// What `key` made before, unless `--no-cache`; what another
    /// platform of this build made for it, even then (the step is this
    /// thread's to run when `None`: see [`crate::build::siblings`]).
    pub fn lookup(&self, key: &CacheKey) -> Option<Entry> {
        self.lookup_as(key, false)
    }

    /// [`Build::lookup`]; `image`: only an image answers it among the
    /// platforms' steps (see [`crate::build::siblings`]).
    fn lookup_as(&self, key: &CacheKey, image: bool) -> Option<Entry> {
        let siblings = self.siblings();
        if let Some(entry) = siblings.and_then(|s| s.take_or_claim(key, image)) {
            return Some(entry);
        }
        if self.opts.no_cache || Uncached::here() {
            return None;
        }
        let entry = self.cache.lookup(key).filter(|e| self.fresh(e));
        crate::log::debug(&format!("cache key {key}: {entry:?}"));
        if let (Some(s), Some(e)) = (siblings, &entry) {
            s.publish(key, e);
        }
        entry
    }

    /// Whether an entry is young enough for `--cache-ttl` (buildah's: the
    /// image it names entered the store less than the TTL ago).
    fn fresh(&self, entry: &Entry) -> bool {
        let (Some(ttl), Entry::Image(id)) = (self.opts.cache_ttl, entry) else {
            return true;
        };
        let added = self.store.index().ok().and_then(|index| {
            let record = index.images.get(id)?;
            humantime::parse_rfc3339_weak(&record.added).ok()
        });
        // An image of unknown age is taken as too old: the TTL asked for
        // images known to be recent.
        added
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < ttl)
    }

    /// The image `key` made before, unless `--no-cache`.
    pub fn lookup_image(&self, key: &CacheKey) -> Option<ImageId> {
        match self.lookup_as(key, true)? {
            Entry::Image(id) => Some(id),
            Entry::Step => None,
        }
    }

    /// Records what `key` made (nothing in a dry run).
    pub fn record(&self, key: &CacheKey, entry: &Entry) {
        if self.opts.dry_run {
            return;
        }
        if let Some(s) = self.siblings() {
            s.publish(key, entry);
        }
        if let Err(e) = self.cache.record(key, entry) {
            // A cache that cannot be written only costs the next build time.
            self.out.warn(&format!("recording the build cache: {e}"));
        }
    }

    /// Records that a version of the step at `site` is in the cache.
    pub fn record_site(&self, site: &CacheKey) {
        if self.opts.dry_run {
            return;
        }
        if let Err(e) = self.cache.record_site(site) {
            self.out.warn(&format!("recording the build cache: {e}"));
        }
    }

    /// Whether the step at `site` can be in the cache at all (or made by
    /// another platform of this build).
    pub fn may_hit(&self, site: &CacheKey) -> bool {
        self.siblings().is_some()
            || !(self.opts.no_cache || Uncached::here()) && self.cache.has_site(site)
    }
}
