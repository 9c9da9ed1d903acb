//! Images in the store: the index (tags and per-image records), commit of
//! new images, tagging, removal, listing.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use serde::{Deserialize, Serialize};

use super::check::Collected;
use super::config::ManifestFormat;
use super::fsutil::io_err;
use super::layers::PreparedLayer;
use super::{now_rfc3339, ImageConfig, Store, StoreError};
use crate::digest::{Digest, ImageId};
use crate::reference::Reference;

/// `images/index.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageIndex {
    #[serde(default)]
    pub images: BTreeMap<ImageId, ImageRecord>,
    /// Full reference (`docker.io/library/busybox:latest`) -> image.
    #[serde(default)]
    pub tags: BTreeMap<String, ImageId>,
    /// Full reference -> its images by platform (`lists.rs`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lists: BTreeMap<String, super::lists::ImageList>,
}

/// What the store knows of an image beyond its config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// When it entered this store (RFC 3339).
    pub added: String,
    /// The image it was built from here, for `history`'s IMAGE column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ImageId>,
    /// `repo@sha256:...` of manifests pulled or pushed.
    #[serde(default)]
    pub repo_digests: BTreeSet<String>,
    /// Manifest blobs kept for this image.
    #[serde(default)]
    pub manifests: BTreeSet<Digest>,
    /// The manifest type chosen by the last build or commit that made this
    /// image (`--format`), used by a push without `--format`. Absent in
    /// records older than the field and for pulled or loaded images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ManifestFormat>,
}

impl ImageRecord {
    /// The manifest type a push without `--format` writes.
    pub fn manifest_format(&self) -> ManifestFormat {
        self.format.unwrap_or_default()
    }
}

impl ImageIndex {
    /// The image a reference names: by tag, or by `repo@digest`.
    pub fn lookup(&self, reference: &Reference) -> Option<&ImageId> {
        if reference.digest().is_some() {
            let key = reference
                .with_digest(reference.digest()?.clone())
                .to_string();
            return self
                .images
                .iter()
                .find(|(_, r)| r.repo_digests.contains(&key))
                .map(|(id, _)| id);
        }
        self.tags.get(&reference.to_string())
    }

    /// The record of an image, to change it.
    fn record_mut(&mut self, id: &ImageId) -> Result<&mut ImageRecord, StoreError> {
        self.images
            .get_mut(id)
            .ok_or_else(|| StoreError::ImageNotFound {
                name: id.to_string(),
            })
    }

    /// The tags of an image, sorted.
    pub fn tags_of(&self, id: &ImageId) -> Vec<Reference> {
        self.tags
            .iter()
            .filter(|(_, v)| *v == id)
            .filter_map(|(k, _)| Reference::parse(k).ok())
            .collect()
    }
}

/// One row of `strata images`.
#[derive(Debug, Clone)]
pub struct ImageSummary {
    pub id: ImageId,
    pub tags: Vec<Reference>,
    pub repo_digests: Vec<String>,
    pub created: Option<String>,
    /// Sum of the sizes of its layers (those here).
    pub size: u64,
    /// Layers known only remotely, not fetched yet (`store::remote`).
    pub remote_layers: usize,
    /// `os/arch[/variant]` of its config.
    pub platform: String,
}

/// What `rmi` did, in Docker's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveEvent {
    Untagged(String),
    Deleted(Digest),
}

/// `containers/<id>/state.json`: only the field the store needs.
#[derive(Debug, Deserialize)]
struct ContainerState {
    image: ImageId,
}

impl Store {
    /// Publish `layers`, the config and the image record, and set `tags`,
    /// all under one lock. Every diff id of the config must be among
    /// `layers` or already in the store.
    /// The image is held ([`Store::hold`]) for the rest of this process:
    /// what a build or pull just made is not collected under it.
    pub fn commit_image(
        &self,
        layers: Vec<PreparedLayer>,
        config: &[u8],
        tags: &[Reference],
        parent: Option<ImageId>,
    ) -> Result<ImageId, StoreError> {
        self.commit_image_with(layers, config, tags, parent, None)
    }

    /// [`Store::commit_image`], keeping `manifest` for the image (and
    /// recording `repo@digest` for it with a repository) under the same
    /// lock, as a pull does: no `rmi` can come between the two.
    pub fn commit_image_with(
        &self,
        layers: Vec<PreparedLayer>,
        config: &[u8],
        tags: &[Reference],
        parent: Option<ImageId>,
        manifest: Option<(&[u8], Option<&Reference>)>,
    ) -> Result<ImageId, StoreError> {
        let parsed: ImageConfig =
            serde_json::from_slice(config).map_err(|e| StoreError::Invalid {
                what: "image config".into(),
                reason: e.to_string(),
            })?;
        let layers = self.settle_layers(layers)?;
        self.update_index(|lock, staging, index| {
            for layer in layers {
                self.publish_layer(lock, staging, layer)?;
            }
            for diff_id in &parsed.rootfs.diff_ids {
                if !self.knows_layer(diff_id)? || self.layer_record(diff_id)?.is_none() {
                    return Err(StoreError::LayerMissing {
                        diff_id: diff_id.clone(),
                    });
                }
            }
            let id = ImageId(self.put_blob(lock, staging, config)?);
            index
                .images
                .entry(id.clone())
                .or_insert_with(|| ImageRecord {
                    added: now_rfc3339(),
                    parent,
                    ..ImageRecord::default()
                });
            for tag in tags {
                index.tags.insert(tag.to_string(), id.clone());
            }
            if let Some((bytes, repo)) = manifest {
                let digest = self.put_blob(lock, staging, bytes)?;
                record_manifest(index, &id, digest, repo)?;
            }
            self.hold_locked(lock, std::slice::from_ref(&id), &[])?;
            Ok(id)
        })
    }

    /// Keep a manifest blob for an image and record `repo@digest` for it.
    pub fn add_manifest(
        &self,
        id: &ImageId,
        manifest: &[u8],
        repo: Option<&Reference>,
    ) -> Result<Digest, StoreError> {
        self.update_index(|lock, staging, index| {
            let digest = self.put_blob(lock, staging, manifest)?;
            record_manifest(index, id, digest.clone(), repo)?;
            Ok(digest)
        })
    }

    /// Record the manifest format a build or commit chose for `id` and set
    /// its `tags`, under one lock, so no tag ever names the image before its
    /// format is recorded. The image id is the config digest, equal in both
    /// formats, so the last build or commit of an image decides.
    pub fn finish_image(
        &self,
        id: &ImageId,
        format: ManifestFormat,
        tags: &[Reference],
    ) -> Result<(), StoreError> {
        self.update_index(|_, _, index| {
            let record = index.record_mut(id)?;
            record.format = Some(format);
            for tag in tags {
                index.tags.insert(tag.to_string(), id.clone());
            }
            Ok(())
        })
    }

    /// `tag SRC DST`.
    pub fn tag(&self, src: &str, dst: &Reference) -> Result<ImageId, StoreError> {
        let id = self.resolve(src)?;
        self.update_index(|_, _, index| {
            if !index.images.contains_key(&id) {
                return Err(StoreError::ImageNotFound { name: src.into() });
            }
            index.tags.insert(dst.to_string(), id.clone());
            Ok(id)
        })
    }

    /// Images used by working containers -> the containers' ids.
    pub fn containers_by_image(&self) -> Result<BTreeMap<ImageId, Vec<String>>, StoreError> {
        let dir = self.root.join("containers");
        let mut out: BTreeMap<ImageId, Vec<String>> = BTreeMap::new();
        let entries = match fs_err::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err("read directory", dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err("read directory", &dir))?;
            let state = entry.path().join("state.json");
            let bytes = match fs_err::read(&state) {
                Ok(b) => b,
                // A container being created has no state yet.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("read", state)(e)),
            };
            let s: ContainerState =
                serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
                    path: state,
                    source,
                })?;
            out.entry(s.image)
                .or_default()
                .push(entry.file_name().to_string_lossy().into_owned());
        }
        Ok(out)
    }

    /// `rmi [-f] NAME`: untag, and delete the image when no tag is left,
    /// then the layers and blobs nothing else uses. An image other images
    /// were built on is only untagged when named by a tag, and refused when
    /// named by id, even forced (Docker's rules). A name with several
    /// platforms takes its list's other images along, those no other name
    /// holds (as Docker's containerd store: one name, all its platforms).
    pub fn remove_image(
        &self,
        name: &str,
        force: bool,
        prune_parents: bool,
    ) -> Result<Vec<RemoveEvent>, StoreError> {
        let by_ref = Reference::parse(name).ok();
        self.update_index(|lock, _staging, index| {
            // Read under the lock: containers are created under it too.
            let containers = self.containers_by_image()?;
            let listed = by_ref.as_ref().map(|r| index.listed(r)).unwrap_or_default();
            let mut events = remove_named(
                index,
                &containers,
                name,
                by_ref.as_ref(),
                force,
                prune_parents,
            )?;
            for id in listed {
                if index.unnamed(&id, &containers) {
                    let parent = delete_record(index, &id, &mut events);
                    if prune_parents {
                        remove_untagged_parents(index, &containers, parent, &mut events);
                    }
                }
            }
            if !events.iter().any(|e| matches!(e, RemoveEvent::Deleted(_))) {
                return Ok(events);
            }
            let removed = self.collect_garbage(lock, index, &containers)?;
            events.extend(
                removed
                    .layers
                    .into_iter()
                    .map(|d| RemoveEvent::Deleted(d.0)),
            );
            Ok(events)
        })
    }

    /// The rows of `strata images`, newest first; `all` adds untagged images
    /// that are not dangling leaves (intermediate build steps).
    pub fn list_images(&self) -> Result<Vec<ImageSummary>, StoreError> {
        let index = self.index()?;
        let mut out = Vec::new();
        for (id, rec) in &index.images {
            let config = self.config(id)?;
            let (mut size, mut remote_layers) = (0, 0);
            for d in &config.rootfs.diff_ids {
                size += self.layer_record(d)?.map_or(0, |r| r.size);
                remote_layers += usize::from(self.is_remote_layer(d)?);
            }
            out.push(ImageSummary {
                id: id.clone(),
                tags: index.names_of(id),
                repo_digests: rec.repo_digests.iter().cloned().collect(),
                created: config.created.clone(),
                size,
                remote_layers,
                platform: crate::platform::show(&crate::platform::of_config(&config)),
            });
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Ids of images that are some image's parent (so not dangling leaves).
    pub fn parents(&self) -> Result<BTreeSet<ImageId>, StoreError> {
        Ok(self
            .index()?
            .images
            .values()
            .filter_map(|r| r.parent.clone())
            .collect())
    }

    pub(crate) fn collect_garbage(
        &self,
        lock: &super::FileLock,
        index: &ImageIndex,
        containers: &BTreeMap<ImageId, Vec<String>>,
    ) -> Result<Collected, StoreError> {
        let roots: Vec<ImageId> = index
            .images
            .keys()
            .chain(containers.keys())
            .cloned()
            .collect();
        self.gc(lock, index, &roots)
    }
}

/// `rmi`'s untagging and deleting of what `name` names, before the
/// garbage collection.
fn remove_named(
    index: &mut ImageIndex,
    containers: &BTreeMap<ImageId, Vec<String>>,
    name: &str,
    by_ref: Option<&Reference>,
    force: bool,
    prune_parents: bool,
) -> Result<Vec<RemoveEvent>, StoreError> {
    let mut events = Vec::new();
    let tagged = by_ref.and_then(|r| index.lookup(r).cloned().map(|id| (r.clone(), id)));
    let id = match &tagged {
        Some((_, id)) => id.clone(),
        None => resolve_id(index, name)?,
    };
    let tags = index.tags_of(&id);
    let user = containers.get(&id).and_then(|c| c.first()).cloned();
    match &tagged {
        Some((r, _)) if r.digest().is_none() && tags.len() > 1 => {
            index.tags.remove(&r.to_string());
            index.lists.remove(&r.to_string());
            events.push(RemoveEvent::Untagged(r.familiar()));
            return Ok(events);
        }
        Some((r, _)) if r.digest().is_none() => {}
        _ if tags.len() > 1 && !force => {
            return Err(StoreError::MultipleTags {
                image: id.short().into(),
            });
        }
        _ => {}
    }
    if let (Some(container), false) = (&user, force) {
        return Err(StoreError::InUse {
            reference: name.into(),
            container: container.chars().take(12).collect(),
            image: id.short().into(),
        });
    }
    let has_children = index
        .images
        .values()
        .any(|r| r.parent.as_ref() == Some(&id));
    if has_children && tagged.is_none() {
        return Err(StoreError::HasChildren {
            image: id.short().into(),
        });
    }
    for t in &tags {
        index.tags.remove(&t.to_string());
        index.lists.remove(&t.to_string());
        events.push(RemoveEvent::Untagged(t.familiar()));
    }
    if has_children {
        // Kept, untagged, for the images built on it.
        return Ok(events);
    }
    let parent = delete_record(index, &id, &mut events);
    if prune_parents {
        remove_untagged_parents(index, containers, parent, &mut events);
    }
    Ok(events)
}

/// Keep manifest `digest` in `id`'s record, with `repo@digest` for a
/// repository.
fn record_manifest(
    index: &mut ImageIndex,
    id: &ImageId,
    digest: Digest,
    repo: Option<&Reference>,
) -> Result<(), StoreError> {
    let record = index.record_mut(id)?;
    if let Some(repo) = repo {
        record
            .repo_digests
            .insert(repo.with_digest(digest.clone()).to_string());
    }
    record.manifests.insert(digest);
    Ok(())
}

/// An image id from a full id or a unique prefix, within `index`.
pub(crate) fn resolve_id(index: &ImageIndex, name: &str) -> Result<ImageId, StoreError> {
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    let matches: Vec<&ImageId> = if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        index
            .images
            .keys()
            .filter(|id| id.hex().starts_with(hex))
            .collect()
    } else {
        Vec::new()
    };
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(StoreError::ImageNotFound { name: name.into() }),
        many => Err(StoreError::Ambiguous {
            prefix: name.into(),
            matches: many.iter().map(|id| id.short().to_string()).collect(),
        }),
    }
}

/// Drops an image's record (its digests untagged), returning its parent.
fn delete_record(
    index: &mut ImageIndex,
    id: &ImageId,
    events: &mut Vec<RemoveEvent>,
) -> Option<ImageId> {
    let rec = index.images.remove(id);
    for list in index.lists.values_mut() {
        list.manifests.retain(|e| e.image != *id);
    }
    let mut parent = None;
    if let Some(rec) = rec {
        for rd in rec.repo_digests {
            events.push(RemoveEvent::Untagged(
                Reference::parse(&rd).map_or(rd.clone(), |r| r.familiar()),
            ));
        }
        parent = rec.parent;
    }
    events.push(RemoveEvent::Deleted(id.0.clone()));
    parent
}

/// Docker's `rmi` without `--no-prune`: the parents a removed image leaves
/// with no name, no other child and no container go too, nearest first.
fn remove_untagged_parents(
    index: &mut ImageIndex,
    containers: &BTreeMap<ImageId, Vec<String>>,
    mut parent: Option<ImageId>,
    events: &mut Vec<RemoveEvent>,
) {
    while let Some(p) = parent.take() {
        let named = !index.names_of(&p).is_empty()
            || index
                .images
                .get(&p)
                .is_some_and(|r| !r.repo_digests.is_empty());
        let used = containers.contains_key(&p)
            || index.images.values().any(|r| r.parent.as_ref() == Some(&p));
        if named || used {
            return;
        }
        let Some(rec) = index.images.remove(&p) else {
            return;
        };
        events.push(RemoveEvent::Deleted(p.0.clone()));
        parent = rec.parent;
    }
}
