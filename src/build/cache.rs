//! The build cache: step key -> the image that step made.
//!
//! A key is sha256 over the parent image id, the instruction after
//! variable expansion, and its inputs (the digest of COPY/ADD sources, the
//! build args a RUN sees, its network). Entries live in
//! `<store>/cache/steps/<key hex>`, each holding an image id, written by
//! rename so a reader sees a whole entry or none. An entry whose image is
//! gone (removed, pruned) is a miss.

use std::fs;
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

use crate::digest::ImageId;
use crate::store::Store;

/// A step's cache key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey(String);

impl CacheKey {
    /// The key of a step on `parent` (`None` for scratch): `parts` are the
    /// expanded instruction and its inputs, each one length-prefixed so no
    /// two different lists hash alike.
    pub fn new(parent: Option<&ImageId>, parts: &[&str]) -> CacheKey {
        let mut h = Sha256::new();
        let parent = parent.map_or_else(|| "scratch".to_string(), |p| p.to_string());
        for part in std::iter::once(parent.as_str()).chain(parts.iter().copied()) {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        CacheKey(hex::encode(h.finalize()))
    }

    pub fn hex(&self) -> &str {
        &self.0
    }
}

fn dir(store: &Store) -> PathBuf {
    store.root().join("cache").join("steps")
}

/// The image recorded for `key`, if it is still in the store.
pub fn lookup(store: &Store, key: &CacheKey) -> Option<ImageId> {
    let text = fs::read_to_string(dir(store).join(key.hex())).ok()?;
    let id: ImageId = text.trim().parse().ok()?;
    store.config_bytes(&id).is_ok().then_some(id)
}

/// Records that `key` made `id`.
pub fn record(store: &Store, key: &CacheKey, id: &ImageId) -> std::io::Result<()> {
    let dir = dir(store);
    fs::create_dir_all(&dir)?;
    let tmp: PathBuf = dir.join(format!(".{}.{}", key.hex(), std::process::id()));
    fs::write(&tmp, id.to_string())?;
    fs::rename(&tmp, dir.join(key.hex()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_every_part_and_its_boundaries() {
        let a = CacheKey::new(None, &["RUN x", "A=1"]);
        assert_eq!(a, CacheKey::new(None, &["RUN x", "A=1"]));
        assert_ne!(a, CacheKey::new(None, &["RUN x", "A=2"]));
        assert_ne!(a, CacheKey::new(None, &["RUN xA=1"]));
        assert_ne!(a, CacheKey::new(None, &["RUN x", "A", "=1"]));
        let id: ImageId = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        assert_ne!(a, CacheKey::new(Some(&id), &["RUN x", "A=1"]));
    }
}
