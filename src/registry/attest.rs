//! An image pushed with an attestation, as BuildKit lays them out
//! (docs/attestations/attestation-storage.md): the image manifest by
//! digest; an attestation manifest (an OCI manifest, artifactType
//! `application/vnd.docker.attestation.manifest.v1+json`, the empty config,
//! one `application/vnd.in-toto+json` layer per statement, `subject` the
//! image manifest); and an OCI image index of both, tagged, the
//! attestation's descriptor with platform `unknown/unknown` and the
//! `vnd.docker.reference.type=attestation-manifest` and
//! `vnd.docker.reference.digest` annotations, so runtimes never pick it.

use serde_json::json;

use super::client::Registry;
use super::flags::RegistryFlags;
use super::push::{announced, upload_image, upload_stored_blob, PushOptions, Pushed};
use super::RegistryError;
use crate::digest::{Digest, ImageId};
use crate::reference::{Reference, DEFAULT_TAG};
use crate::store::config::{MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST};
use crate::store::Store;

pub const MEDIA_IN_TOTO: &str = "application/vnd.in-toto+json";
pub const ATTESTATION_ARTIFACT: &str = "application/vnd.docker.attestation.manifest.v1+json";
pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
pub const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";
const MEDIA_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// Pushes image `id` as `dest` with the in-toto `statement` made for its
/// manifest digest (with its predicate type) beside it in an index.
pub fn push_attested(
    store: &Store,
    id: &ImageId,
    dest: &Reference,
    flags: &RegistryFlags,
    opts: &PushOptions,
    statement: &dyn Fn(&Digest) -> (Vec<u8>, String),
) -> Result<Pushed, RegistryError> {
    announced(dest, flags, |client| {
        push_index(client, store, id, dest, opts, statement)
    })
}

fn push_index(
    client: &Registry,
    store: &Store,
    id: &ImageId,
    dest: &Reference,
    opts: &PushOptions,
    statement: &dyn Fn(&Digest) -> (Vec<u8>, String),
) -> Result<Pushed, RegistryError> {
    let repo = dest.path();
    let (format, manifest) = upload_image(client, store, id, dest, opts)?;
    let image = Digest::of(&manifest);
    client.put_manifest(repo, &image.to_string(), format.manifest_type(), &manifest)?;
    store.add_manifest(id, &manifest, Some(dest))?;
    let (body, predicate_type) = statement(&image);
    let config = b"{}";
    for blob in [&config[..], &body] {
        let digest = keep_blob(store, blob)?;
        upload_stored_blob(client, store, dest, &digest, blob.len() as u64)?;
    }
    let image_desc = json!({
        "mediaType": format.manifest_type(),
        "digest": image,
        "size": manifest.len(),
    });
    let attestation = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_OCI_MANIFEST,
        "artifactType": ATTESTATION_ARTIFACT,
        "config": {"mediaType": MEDIA_EMPTY, "digest": Digest::of(config), "size": config.len()},
        "layers": [{
            "mediaType": MEDIA_IN_TOTO,
            "digest": Digest::of(&body),
            "size": body.len(),
            "annotations": {"in-toto.io/predicate-type": predicate_type},
        }],
        "subject": image_desc,
    });
    let attestation = json_bytes(&attestation, dest)?;
    let att_digest = Digest::of(&attestation);
    client.put_manifest(
        repo,
        &att_digest.to_string(),
        MEDIA_OCI_MANIFEST,
        &attestation,
    )?;
    let cfg = store.config(id)?;
    let mut image_entry = image_desc;
    image_entry["platform"] = json!({"architecture": cfg.architecture, "os": cfg.os});
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_OCI_INDEX,
        "manifests": [image_entry, {
            "mediaType": MEDIA_OCI_MANIFEST,
            "digest": att_digest,
            "size": attestation.len(),
            "annotations": {REFERENCE_DIGEST: image, REFERENCE_TYPE: ATTESTATION_MANIFEST},
            "platform": {"architecture": "unknown", "os": "unknown"},
        }],
    });
    let index = json_bytes(&index, dest)?;
    let tag = dest.tag().unwrap_or(DEFAULT_TAG).to_string();
    let digest = client.put_manifest(repo, &tag, MEDIA_OCI_INDEX, &index)?;
    Ok(Pushed {
        digest,
        size: index.len(),
        tag,
    })
}

/// Puts a small blob in the store, for the upload to read.
fn keep_blob(store: &Store, data: &[u8]) -> Result<Digest, RegistryError> {
    let staging = store.staging()?;
    let lock = store.lock()?;
    Ok(store.put_blob(&lock, &staging, data)?)
}

fn json_bytes(v: &serde_json::Value, dest: &Reference) -> Result<Vec<u8>, RegistryError> {
    serde_json::to_vec(v).map_err(|source| RegistryError::Json {
        reference: dest.to_string(),
        what: "attestation manifest",
        source,
    })
}
