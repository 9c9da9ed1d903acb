//! Test content pushed straight through the library: a blob of
//! incompressible bytes, a config and an OCI manifest naming them.
#![allow(dead_code)]

use strata::digest::Digest;
use strata::registry::credentials::Credential;
use strata::registry::transfer::{LocalBlob, UploadMode};
use strata::registry::{Options, Registry};

/// Size of the test blob: several read buffers, so a cut lands mid-stream.
pub const BLOB_SIZE: usize = 3 << 20;

/// Deterministic bytes that do not compress (a simple LCG).
pub fn blob_bytes(seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..BLOB_SIZE)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}

/// What a test pushed: a blob and a manifest naming it.
pub struct Seeded {
    pub repo: String,
    pub blob: Vec<u8>,
    pub blob_digest: Digest,
    pub manifest_digest: Digest,
}

/// Push a blob, a config and a manifest into `repo` directly (no proxy).
pub fn seed(addr: &str, repo: &str, cred: Option<Credential>) -> Seeded {
    let reg = Registry::connect(addr, cred, &Options::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let blob = blob_bytes(repo.len() as u64);
    let blob_digest = Digest::of(&blob);
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = Digest::of(config);
    for (bytes, digest) in [(&blob[..], &blob_digest), (&config[..], &config_digest)] {
        let path = dir.path().join(digest.hex());
        fs_err::write(&path, bytes).unwrap();
        let loc = reg.start_upload(repo).unwrap();
        let local = LocalBlob {
            digest,
            path: &path,
            size: bytes.len() as u64,
        };
        reg.upload_blob(repo, &local, loc, UploadMode::Chunked(1 << 20), &mut |_| {})
            .unwrap();
    }
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{blob_digest}","size":{}}}]}}"#,
        config.len(),
        blob.len()
    );
    let manifest_digest = reg
        .put_manifest(
            repo,
            "v1",
            "application/vnd.oci.image.manifest.v1+json",
            manifest.as_bytes(),
        )
        .unwrap();
    Seeded {
        repo: repo.into(),
        blob,
        blob_digest,
        manifest_digest,
    }
}
