//! Pushing a store list (a multi-platform build's, or one made with
//! `strata manifest`) as an image index: each image's blobs and manifest
//! (by digest), then the index under the tag. The index is OCI unless
//! every image goes out as a Docker schema 2 manifest, when it is a Docker
//! manifest list (what Docker and buildah do).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::client::Registry;
use super::flags::RegistryFlags;
use super::manifest::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX};
use super::push::{announced, upload_image, PushOptions, Pushed};
use super::RegistryError;
use crate::digest::Digest;
use crate::reference::{Reference, DEFAULT_TAG};
use crate::store::{ImageList, Store};

/// Push `list` as `dest`: every image, then the index.
pub fn push_list(
    store: &Store,
    list: &ImageList,
    dest: &Reference,
    flags: &RegistryFlags,
    opts: &PushOptions,
) -> Result<Pushed, RegistryError> {
    announced(dest, flags, |client| {
        push_with(client, store, list, dest, opts)
    })
}

fn push_with(
    client: &Registry,
    store: &Store,
    list: &ImageList,
    dest: &Reference,
    opts: &PushOptions,
) -> Result<Pushed, RegistryError> {
    let mut entries = Vec::new();
    let mut types = Vec::new();
    for entry in &list.manifests {
        let (format, manifest) = upload_image(client, store, &entry.image, dest, opts)?;
        let digest = Digest::of(&manifest);
        let media_type = format.manifest_type();
        client.put_manifest(dest.path(), &digest.to_string(), media_type, &manifest)?;
        store.add_manifest(&entry.image, &manifest, Some(dest))?;
        let mut desc = json!({
            "mediaType": media_type,
            "digest": digest,
            "size": manifest.len(),
            "platform": platform_json(&entry.platform),
        });
        if !entry.annotations.is_empty() {
            desc["annotations"] = json!(entry.annotations);
        }
        types.push(media_type);
        entries.push(desc);
    }
    let media_type = match types.iter().all(|t| *t == DOCKER_MANIFEST) && !types.is_empty() {
        true => DOCKER_LIST,
        false => OCI_INDEX,
    };
    let bytes = index_bytes(media_type, entries, &list.annotations, dest)?;
    let tag = dest.tag().unwrap_or(DEFAULT_TAG).to_string();
    let digest = client.put_manifest(dest.path(), &tag, media_type, &bytes)?;
    Ok(Pushed {
        digest,
        size: bytes.len(),
        tag,
    })
}

/// An index entry's `platform`, from `os/arch[/variant]`.
fn platform_json(shown: &str) -> Value {
    let mut parts = shown.splitn(3, '/');
    let (os, arch, variant) = (parts.next(), parts.next(), parts.next());
    let mut p = json!({"os": os.unwrap_or(""), "architecture": arch.unwrap_or("")});
    if let Some(v) = variant {
        p["variant"] = json!(v);
    }
    p
}

/// The index or manifest list of `manifests`.
pub fn index_bytes(
    media_type: &str,
    manifests: Vec<Value>,
    annotations: &BTreeMap<String, String>,
    dest: &Reference,
) -> Result<Vec<u8>, RegistryError> {
    let mut index = json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": manifests,
    });
    if !annotations.is_empty() {
        index["annotations"] = json!(annotations);
    }
    serde_json::to_vec(&index).map_err(|source| RegistryError::Json {
        reference: dest.to_string(),
        what: "image index",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_as_index_entries() {
        assert_eq!(
            platform_json("linux/arm/v7"),
            json!({"os": "linux", "architecture": "arm", "variant": "v7"})
        );
        assert_eq!(
            platform_json("linux/arm64"),
            json!({"os": "linux", "architecture": "arm64"})
        );
    }
}
