//! Several platforms under one name: per name, the image of each platform
//! (`images/index.json`'s `lists`). The tag itself keeps naming one image
//! (the last pulled, or the host's of a multi-platform build), as Docker's
//! tag does; a lookup for a platform asks the list first. A list made by a
//! multi-platform build or `strata manifest create` is pushed as an image
//! index; one that only gathered platforms pulled one by one is not.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ImageIndex, Store, StoreError};
use crate::digest::ImageId;
use crate::platform::{self, Platform};
use crate::reference::Reference;

/// The images of one name, by platform.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageList {
    /// Pushed as an image index (a multi-platform build's, or made with
    /// `strata manifest`).
    #[serde(default)]
    pub index: bool,
    #[serde(default)]
    pub manifests: Vec<ListEntry>,
    /// On the index (`manifest annotate --index`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// One image of a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListEntry {
    pub image: ImageId,
    /// `os/arch[/variant]` as Docker prints it.
    pub platform: String,
    /// On its descriptor in the index.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ListEntry {
    pub fn platform(&self) -> Option<Platform> {
        self.platform.parse().ok()
    }
}

impl ImageList {
    /// The entry for `wanted`: an exact match first, else one that
    /// satisfies it (any variant when none is asked for).
    pub fn find(&self, wanted: &Platform) -> Option<&ListEntry> {
        let platforms: Vec<Option<Platform>> =
            self.manifests.iter().map(ListEntry::platform).collect();
        crate::registry::manifest::choose_platform(wanted, &platforms).map(|i| &self.manifests[i])
    }

    /// Put `image` in as the one of `platform` (replacing that platform's).
    pub fn set(&mut self, platform: &Platform, image: &ImageId) {
        let shown = platform::show(platform);
        self.manifests.retain(|e| e.platform != shown);
        self.manifests.push(ListEntry {
            image: image.clone(),
            platform: shown,
            annotations: BTreeMap::new(),
        });
    }
}

impl ImageIndex {
    /// The list of a name, if it has one.
    pub fn list(&self, reference: &Reference) -> Option<&ImageList> {
        self.lists.get(&reference.to_string())
    }

    /// The images of a name's list (none without one).
    pub(super) fn listed(&self, reference: &Reference) -> Vec<ImageId> {
        self.list(reference)
            .map(|l| l.manifests.iter().map(|e| e.image.clone()).collect())
            .unwrap_or_default()
    }

    /// Whether `id` is in the store with no name (tag or list), no
    /// container and no image built on it: `rmi` of its list's name takes
    /// it along.
    pub(super) fn unnamed(
        &self,
        id: &ImageId,
        containers: &BTreeMap<ImageId, Vec<String>>,
    ) -> bool {
        self.images.contains_key(id)
            && self.names_of(id).is_empty()
            && !containers.contains_key(id)
            && !self.images.values().any(|r| r.parent.as_ref() == Some(id))
    }

    /// An image's tags and the names whose list holds it (another
    /// platform's image under the same name), sorted.
    pub fn names_of(&self, id: &ImageId) -> Vec<Reference> {
        let mut names = self.tags_of(id);
        let listed = self
            .lists
            .iter()
            .filter(|(_, l)| l.manifests.iter().any(|e| e.image == *id))
            .filter_map(|(k, _)| Reference::parse(k).ok());
        for name in listed {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names.sort_by_key(ToString::to_string);
        names
    }
}

impl Store {
    /// The image `name` (reference, id or prefix) names for `wanted`: the
    /// name's list entry for it, else what the name resolves to if that
    /// image is for `wanted`. `Ok(None)` when the store has the name but
    /// not for this platform, or does not have it at all.
    pub fn resolve_platform(
        &self,
        name: &str,
        wanted: &Platform,
    ) -> Result<Option<ImageId>, StoreError> {
        let index = self.index()?;
        if let Ok(reference) = Reference::parse(name) {
            if let Some(entry) = index.list(&reference).and_then(|l| l.find(wanted)) {
                if index.images.contains_key(&entry.image) {
                    return Ok(Some(entry.image.clone()));
                }
            }
        }
        let id = match self.resolve(name) {
            Ok(id) => id,
            Err(StoreError::ImageNotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let found = platform::of_config(&self.config(&id)?);
        Ok(found.satisfies(wanted).then_some(id))
    }

    /// Record `image` as the one of its config's platform under each of
    /// `names` (a pull, a build for one platform).
    pub fn record_platform(&self, names: &[Reference], image: &ImageId) -> Result<(), StoreError> {
        if names.is_empty() {
            return Ok(());
        }
        let p = platform::of_config(&self.config(image)?);
        self.update_index(|_, _, index| {
            for name in names {
                index
                    .lists
                    .entry(name.to_string())
                    .or_default()
                    .set(&p, image);
            }
            Ok(())
        })
    }

    /// Change (or make, from empty) the list of `name`; `f`'s error
    /// leaves the store as it was.
    pub fn update_list<T>(
        &self,
        name: &Reference,
        f: impl FnOnce(&mut ImageList, &ImageIndex) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.update_index(|_, _, index| {
            let mut list = index
                .lists
                .get(&name.to_string())
                .cloned()
                .unwrap_or_default();
            let out = f(&mut list, index)?;
            index.lists.insert(name.to_string(), list);
            Ok(out)
        })
    }

    /// Forget the list of `name` (its images stay); whether there was one.
    pub fn remove_list(&self, name: &Reference) -> Result<bool, StoreError> {
        self.update_index(|_, _, index| Ok(index.lists.remove(&name.to_string()).is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_by_platform() {
        let id = |c: &str| ImageId(crate::digest::Digest::from_hex(&c.repeat(64)).unwrap());
        let (a, b) = (id("a"), id("b"));
        let mut list = ImageList::default();
        list.set(&"linux/amd64".parse().unwrap(), &a);
        list.set(&"linux/arm64".parse().unwrap(), &b);
        list.set(&"linux/amd64".parse().unwrap(), &b);
        assert_eq!(list.manifests.len(), 2);
        assert_eq!(list.manifests[1].platform, "linux/amd64");
        let arm: Platform = "linux/aarch64".parse().unwrap();
        assert_eq!(list.find(&arm).unwrap().image, b);
        assert!(list.find(&"linux/s390x".parse().unwrap()).is_none());
    }
}
