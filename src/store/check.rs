//! Garbage collection, `system prune`, `system df` and `system check`.
//!
//! Reachability starts from the images in the index and those of working
//! containers: their config blobs, the layers of each config, the blobs of
//! those layers' records, and kept manifests. Anything else under `blobs/`
//! or `layers/` was left by a removal or a crash and is garbage; garbage is
//! not damage, so `check` reports it separately and passes.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

use super::config::Manifest;
use super::fsutil::{io_err, prune_staging, tree_size, FileLock, STAGING_LOCK_SUFFIX};
use super::images::ImageIndex;
use super::{error_chain, Store, StoreError};
use crate::digest::{DiffId, Digest, HashingReader, ImageId};
use crate::layer::apply::remove_tree;
use crate::layer::diff;

/// What a garbage collection removed.
#[derive(Debug, Default)]
pub struct Collected {
    pub layers: Vec<DiffId>,
    pub blobs: Vec<Digest>,
    pub bytes: u64,
}

/// `system prune`'s result.
#[derive(Debug, Default)]
pub struct PruneReport {
    pub images: Vec<ImageId>,
    pub layers: usize,
    pub blobs: usize,
    pub temp_entries: u64,
    pub bytes: u64,
}

/// One row of `system df`.
#[derive(Debug, Default, Clone)]
pub struct UsageRow {
    pub total: usize,
    pub active: usize,
    pub size: u64,
    pub reclaimable: u64,
}

/// `system df`'s result.
#[derive(Debug, Default)]
pub struct DiskUsage {
    pub images: UsageRow,
    pub layers: UsageRow,
    pub blobs: UsageRow,
    pub containers: UsageRow,
    pub cache: UsageRow,
}

/// `system check`'s result: `problems` is damage; the rest is information.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub problems: Vec<String>,
    pub garbage: Vec<String>,
    pub images: usize,
    pub layers: usize,
    pub blobs: usize,
}

/// What the roots reach.
#[derive(Default)]
struct Reachable {
    blobs: BTreeSet<Digest>,
    layers: BTreeSet<DiffId>,
}

impl Store {
    fn reachable(&self, index: &ImageIndex, roots: &[ImageId]) -> Result<Reachable, StoreError> {
        let mut r = Reachable::default();
        for id in roots {
            r.blobs.insert(id.0.clone());
            // An unreadable config of a live image stops the collection:
            // guessing would delete its layers.
            let config = match self.config(id) {
                Ok(c) => c,
                Err(StoreError::ImageNotFound { .. }) if !index.images.contains_key(id) => continue,
                Err(e) => return Err(e),
            };
            r.layers.extend(config.rootfs.diff_ids.iter().cloned());
            if let Some(rec) = index.images.get(id) {
                for m in &rec.manifests {
                    r.blobs.insert(m.clone());
                    if let Ok(bytes) = self.read_blob(m) {
                        if let Ok(manifest) = serde_json::from_slice::<Manifest>(&bytes) {
                            r.blobs
                                .extend(manifest.layers.into_iter().map(|l| l.digest));
                        }
                    }
                }
            }
        }
        for d in &r.layers {
            if let Some(rec) = self.layer_record(d)? {
                r.blobs.extend(rec.blobs.into_iter().map(|b| b.digest));
            }
        }
        Ok(r)
    }

    /// Remove every layer and blob the roots do not reach. Caller holds the
    /// lock, so nothing is half-published.
    pub(crate) fn gc(
        &self,
        lock: &FileLock,
        index: &ImageIndex,
        roots: &[ImageId],
    ) -> Result<Collected, StoreError> {
        // What running builds and pulls hold is kept like what tags reach.
        let held = self.held(lock)?;
        let roots: Vec<ImageId> = roots.iter().chain(&held.images).cloned().collect();
        let mut keep = self.reachable(index, &roots)?;
        for d in held.layers {
            if let Some(rec) = self.layer_record(&d)? {
                keep.blobs.extend(rec.blobs.into_iter().map(|b| b.digest));
            }
            keep.layers.insert(d);
        }
        let mut out = Collected::default();
        let layers = self.root.join("layers");
        for name in list(&layers)? {
            let hex = name.strip_suffix(".json").unwrap_or(&name);
            let Ok(d) = Digest::from_hex(hex) else {
                continue;
            };
            let diff_id = DiffId(d);
            if keep.layers.contains(&diff_id) {
                continue;
            }
            let path = layers.join(&name);
            if name.ends_with(".json") {
                fs_err::remove_file(&path).map_err(io_err("remove", &path))?;
            } else {
                out.bytes += tree_size(&path);
                // Unlink the short link first: a dangling link is harmless,
                // a link to a half-removed layer is not.
                let link = self.root.join(self.short_link(&diff_id));
                match fs_err::remove_file(&link) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("remove", link)(e)),
                }
                remove_tree(&path).map_err(io_err("remove", &path))?;
                out.layers.push(diff_id);
            }
        }
        let blobs = self.root.join("blobs/sha256");
        for name in list(&blobs)? {
            let keep_it = Digest::from_hex(&name).is_ok_and(|d| keep.blobs.contains(&d));
            if !keep_it {
                let path = blobs.join(&name);
                out.bytes += tree_size(&path);
                fs_err::remove_file(&path).map_err(io_err("remove", &path))?;
                if let Ok(d) = Digest::from_hex(&name) {
                    out.blobs.push(d);
                }
            }
        }
        Ok(out)
    }

    /// `system prune [-a]`: dangling images (all unused ones with `all`),
    /// unreachable layers and blobs, staging left by dead processes.
    pub fn prune(&self, all: bool) -> Result<PruneReport, StoreError> {
        self.prune_where(all, &|_| true)
    }

    /// [`Store::prune`] of only the images `may_remove` accepts (those of
    /// the build cache, for `system prune --build-cache`).
    pub fn prune_where(
        &self,
        all: bool,
        may_remove: &dyn Fn(&ImageId) -> bool,
    ) -> Result<PruneReport, StoreError> {
        let mut report = PruneReport::default();
        self.update_index(|lock, _, index| {
            let containers = self.containers_by_image()?;
            let held = self.held(lock)?.images;
            // Until none is left: removing a dangling image can leave its
            // untagged parent dangling (the steps of a stage no tagged
            // image is built on), as Docker's image prune removes them.
            let mut doomed: Vec<ImageId> = Vec::new();
            loop {
                let parents: BTreeSet<ImageId> = index
                    .images
                    .values()
                    .filter_map(|r| r.parent.clone())
                    .collect();
                let next: Vec<ImageId> = index
                    .images
                    .keys()
                    .filter(|id| !containers.contains_key(*id) && !held.contains(*id))
                    .filter(|id| may_remove(id))
                    .filter(|id| all || (index.tags_of(id).is_empty() && !parents.contains(*id)))
                    .cloned()
                    .collect();
                if next.is_empty() {
                    break;
                }
                for id in &next {
                    index.images.remove(id);
                    index.tags.retain(|_, v| v != id);
                }
                doomed.extend(next);
            }
            let c = self.collect_garbage(lock, index, &containers)?;
            report.images = doomed;
            report.layers = c.layers.len();
            report.blobs = c.blobs.len();
            report.bytes = c.bytes;
            Ok(())
        })?;
        let (bytes, entries) = prune_staging(&self.root.join("tmp"))?;
        report.bytes += bytes;
        report.temp_entries = entries;
        Ok(report)
    }

    /// Bytes of the layers only `ids` hold (no other image, no container):
    /// what removing them would free.
    pub fn exclusive_size(&self, ids: &BTreeSet<ImageId>) -> Result<u64, StoreError> {
        let index = self.index()?;
        let containers = self.containers_by_image()?;
        let others: Vec<ImageId> = index
            .images
            .keys()
            .chain(containers.keys())
            .filter(|id| !ids.contains(*id))
            .cloned()
            .collect();
        let mine: Vec<ImageId> = ids.iter().cloned().collect();
        let kept = self.reachable(&index, &others)?;
        let theirs = self.reachable(&index, &mine)?;
        Ok(theirs
            .layers
            .difference(&kept.layers)
            .map(|d| tree_size(&self.layer_dir(d)))
            .sum())
    }

    /// `system df`.
    pub fn disk_usage(&self) -> Result<DiskUsage, StoreError> {
        let index = self.index()?;
        let containers = self.containers_by_image()?;
        let mut du = DiskUsage::default();
        let active: Vec<ImageId> = containers.keys().cloned().collect();
        let used = self.reachable(&index, &active)?;
        for id in index.images.keys() {
            du.images.total += 1;
            if containers.contains_key(id) {
                du.images.active += 1;
            }
        }
        let layers = self.root.join("layers");
        for name in list(&layers)? {
            let Ok(d) = Digest::from_hex(&name) else {
                continue;
            };
            let size = tree_size(&layers.join(&name));
            du.layers.total += 1;
            du.layers.size += size;
            if used.layers.contains(&DiffId(d)) {
                du.layers.active += 1;
            } else {
                du.layers.reclaimable += size;
            }
        }
        du.images.size = du.layers.size;
        du.images.reclaimable = du.layers.reclaimable;
        let blobs = self.root.join("blobs/sha256");
        for name in list(&blobs)? {
            let size = tree_size(&blobs.join(&name));
            du.blobs.total += 1;
            du.blobs.size += size;
        }
        // Active: running (a process holds its running lock); the others
        // are what `container prune` would free, as Docker counts them.
        for id in containers.values().flatten() {
            let dir = self.root.join("containers").join(id);
            let size = tree_size(&dir);
            du.containers.total += 1;
            du.containers.size += size;
            match FileLock::try_exclusive(&dir.join(super::RUNNING_LOCK))? {
                None => du.containers.active += 1,
                Some(_) => du.containers.reclaimable += size,
            }
        }
        let cache = self.root.join("cache");
        // One entry per step key (cache/steps/); files.json and sites/ are
        // bookkeeping.
        du.cache.total = list(&cache.join("steps"))?.len();
        du.cache.size = tree_size(&cache);
        du.cache.reclaimable = du.cache.size;
        Ok(du)
    }

    /// `system check`: every blob's digest, every link from the index to
    /// configs, manifests, layers and their blobs, every layer directory.
    pub fn check(&self) -> Result<CheckReport, StoreError> {
        // Held throughout, so a concurrent removal is not taken for damage.
        let _lock = self.lock()?;
        let mut rep = CheckReport::default();
        let index = match self.index() {
            Ok(i) => i,
            Err(e) => {
                rep.problems
                    .push(format!("image index: {}", error_chain(&e)));
                return Ok(rep);
            }
        };
        let sizes = self.check_blobs(&mut rep)?;
        let mut blob_ok =
            |d: &Digest, size: Option<u64>, what: &str, rep: &mut CheckReport| match sizes.get(d) {
                None => rep.problems.push(format!("{what}: blob {d} is missing")),
                Some(&s) if size.is_some_and(|want| want != s) => rep.problems.push(format!(
                    "{what}: blob {d} has {s} bytes, expected {}",
                    size.unwrap_or(0)
                )),
                Some(_) => {}
            };
        for (tag, id) in &index.tags {
            if !index.images.contains_key(id) {
                rep.problems
                    .push(format!("tag {tag}: image {id} is not in the index"));
            }
        }
        let mut layers_seen = BTreeSet::new();
        for (id, rec) in &index.images {
            rep.images += 1;
            let config = match self.config(id) {
                Ok(c) => c,
                Err(e) => {
                    rep.problems
                        .push(format!("image {}: config: {}", id.short(), error_chain(&e)));
                    continue;
                }
            };
            for m in &rec.manifests {
                blob_ok(m, None, &format!("image {} manifest", id.short()), &mut rep);
                self.check_manifest(id, m, &sizes, &mut rep, &mut blob_ok);
            }
            for d in &config.rootfs.diff_ids {
                if layers_seen.insert(d.clone()) {
                    self.check_layer(d, &mut rep, &mut blob_ok)?;
                }
            }
        }
        self.note_garbage(&index, &sizes, &mut rep)?;
        Ok(rep)
    }

    /// Every blob must hash to its name; their sizes.
    fn check_blobs(&self, rep: &mut CheckReport) -> Result<BTreeMap<Digest, u64>, StoreError> {
        let blobs = self.root.join("blobs/sha256");
        let mut sizes = BTreeMap::new();
        for name in list(&blobs)? {
            rep.blobs += 1;
            let path = blobs.join(&name);
            match (Digest::from_hex(&name), hash_file(&path)) {
                (Err(_), _) => rep
                    .problems
                    .push(format!("blob {}: not a sha256 name", path.display())),
                (_, Err(e)) => rep.problems.push(format!("blob {}: {e}", path.display())),
                (Ok(want), Ok((found, size))) => {
                    if want != found {
                        rep.problems
                            .push(format!("blob {want}: content digest is {found}"));
                    }
                    sizes.insert(want, size);
                }
            }
        }
        Ok(sizes)
    }

    /// A kept manifest of image `id` must name its config, and the layer
    /// blobs it names that the store has must have their sizes.
    fn check_manifest(
        &self,
        id: &ImageId,
        m: &Digest,
        sizes: &BTreeMap<Digest, u64>,
        rep: &mut CheckReport,
        blob_ok: &mut impl FnMut(&Digest, Option<u64>, &str, &mut CheckReport),
    ) {
        let Ok(bytes) = self.read_blob(m) else {
            return;
        };
        match serde_json::from_slice::<Manifest>(&bytes) {
            Err(e) => rep
                .problems
                .push(format!("manifest {m}: {}", error_chain(&e))),
            Ok(man) if man.config.digest != id.0 => rep.problems.push(format!(
                "manifest {m}: config is {}, expected {id}",
                man.config.digest
            )),
            Ok(man) => {
                for l in man.layers.iter().filter(|l| sizes.contains_key(&l.digest)) {
                    blob_ok(&l.digest, Some(l.size), &format!("manifest {m}"), rep);
                }
            }
        }
    }

    /// Garbage (information only): what no image or container reaches, and
    /// staging of dead processes.
    fn note_garbage(
        &self,
        index: &ImageIndex,
        sizes: &BTreeMap<Digest, u64>,
        rep: &mut CheckReport,
    ) -> Result<(), StoreError> {
        let containers = self.containers_by_image()?;
        let roots: Vec<ImageId> = index
            .images
            .keys()
            .chain(containers.keys())
            .cloned()
            .collect();
        // With a damaged config, reachability is unknown: the damage is
        // reported already, and garbage is not guessed at.
        let Ok(keep) = self.reachable(index, &roots) else {
            return Ok(());
        };
        for name in list(&self.root.join("layers"))? {
            if let Ok(d) = Digest::from_hex(name.strip_suffix(".json").unwrap_or(&name)) {
                if !keep.layers.contains(&DiffId(d)) {
                    rep.garbage.push(format!("unreferenced layers/{name}"));
                }
            }
        }
        for d in sizes.keys().filter(|d| !keep.blobs.contains(*d)) {
            rep.garbage.push(format!("unreferenced blob {d}"));
        }
        for name in list(&self.root.join("tmp"))? {
            let lock = self.root.join("tmp").join(&name);
            if name.ends_with(STAGING_LOCK_SUFFIX) && FileLock::try_exclusive(&lock)?.is_some() {
                rep.garbage
                    .push(format!("temp files of a dead process: tmp/{name}"));
            }
        }
        Ok(())
    }

    fn check_layer(
        &self,
        d: &DiffId,
        rep: &mut CheckReport,
        blob_ok: &mut impl FnMut(&Digest, Option<u64>, &str, &mut CheckReport),
    ) -> Result<(), StoreError> {
        rep.layers += 1;
        let dir = self.layer_dir(d);
        if !dir.is_dir() && self.is_remote_layer(d)? {
            // Known by its remote blob only (see store::remote): fine.
            return Ok(());
        }
        if !dir.is_dir() {
            rep.problems
                .push(format!("layer {d}: directory {} is missing", dir.display()));
            return Ok(());
        }
        let rec = match self.layer_record(d) {
            Ok(Some(r)) => r,
            Ok(None) => {
                rep.problems.push(format!("layer {d}: record is missing"));
                return Ok(());
            }
            Err(e) => {
                rep.problems.push(format!("layer {d}: {}", error_chain(&e)));
                return Ok(());
            }
        };
        if &rec.diff_id != d {
            rep.problems
                .push(format!("layer {d}: record names {}", rec.diff_id));
        }
        let link = self.root.join(self.short_link(d));
        match fs_err::read_link(&link) {
            Ok(target) if target == Path::new("../layers").join(d.hex()) => {}
            Ok(target) => rep.problems.push(format!(
                "layer {d}: {} points to {}",
                link.display(),
                target.display()
            )),
            Err(e) => rep
                .problems
                .push(format!("layer {d}: short link {}: {e}", link.display())),
        }
        for b in &rec.blobs {
            blob_ok(&b.digest, Some(b.size), &format!("layer {d}"), rep);
        }
        if rec.regenerable {
            match diff::diff_id(&dir) {
                Ok(s) if &s.diff_id != d => rep.problems.push(format!(
                    "layer {d}: directory content has diff id {}",
                    s.diff_id
                )),
                Ok(_) => {}
                Err(e) => rep.problems.push(format!("layer {d}: {}", error_chain(&e))),
            }
        }
        Ok(())
    }
}

/// Names in a directory, sorted (empty if it does not exist).
fn list(dir: &Path) -> Result<Vec<String>, StoreError> {
    let mut names = Vec::new();
    let entries = match fs_err::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(io_err("read directory", dir)(e)),
    };
    for e in entries {
        names.push(
            e.map_err(io_err("read directory", dir))?
                .file_name()
                .to_string_lossy()
                .into_owned(),
        );
    }
    names.sort();
    Ok(names)
}

fn hash_file(path: &Path) -> io::Result<(Digest, u64)> {
    let mut r = HashingReader::new(fs_err::File::open(path)?);
    io::copy(&mut r, &mut io::sink())?;
    Ok(r.finish())
}
