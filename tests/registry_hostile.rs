//! Hostile registries, pulled from with the whole binary (checklist cases
//! 29–33): digests that are not digests, blobs that are not what their
//! digest says, manifests that hash differently or read as two kinds,
//! bodies of a gibibyte, and foreign-layer URLs. Each fails with an error
//! saying what, and leaves nothing in the store. The registry is the mock
//! (`registry_support/mock.rs`): no real registry serves these.
#![allow(clippy::unwrap_used)]

mod common;
mod registry_support;

use std::sync::{Arc, Mutex};

use common::{Run, Strata};
use registry_support::mock::{gzip_layer, plain_layer, Fault, MockRegistry};
use registry_support::proxy::Seen;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn pull(s: &Strata, reference: &str) -> Run {
    Run::of(s.cmd().args(["pull", "-q", reference]).output().unwrap())
}

/// The command ended with an error of its own (not a signal, not 0).
fn failed(run: &Run) -> bool {
    matches!(run.code, Some(c) if c != 0)
}

/// The names in `dir` of the store (none when it does not exist).
fn entries(s: &Strata, dir: &str) -> Vec<String> {
    fs_err::read_dir(s.root.path().join(dir))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The failed pull left no image, layer or staging behind.
fn nothing_stored(s: &Strata, what: &str) {
    let images = s.run(&["images", "-q"]).success().stdout;
    assert_eq!(images, "", "{what}: an image was stored");
    assert_eq!(entries(s, "layers"), Vec::<String>::new(), "{what}");
    assert_eq!(entries(s, "tmp"), Vec::<String>::new(), "{what}");
    let check = s.run(&["system", "check"]).success();
    assert!(!check.stdout.contains("note:"), "{what}: {check:#?}");
}

fn layer_tar(seed: u8) -> Vec<u8> {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i as u8) ^ seed).collect();
    common::tarspec::tar(&[common::tarspec::T::File("f", &data)])
}

/// An image manifest naming a valid config and `layers` (digest, media
/// type, size) as given, stored under `repo:v1`; the reference.
fn image_with_layers(mock: &MockRegistry, repo: &str, layers: &[(String, u64)]) -> String {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = mock.put_blob(config);
    let descs: Vec<serde_json::Value> = layers
        .iter()
        .map(|(digest, size)| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": digest,
                "size": size,
            })
        })
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": descs,
    });
    mock.put_manifest(
        repo,
        "v1",
        OCI_MANIFEST,
        &serde_json::to_vec(&manifest).unwrap(),
    );
    format!("{}/{repo}:v1", mock.addr)
}

#[test]
fn registry_hostile_digests_that_are_not_digests_are_refused_before_any_request() {
    // Case 29 (CVE-2024-3727).
    let mock = MockRegistry::serving();
    let s = Strata::new();
    let bad = [
        "sha256:../../../../tmp/strata-escape".to_string(),
        format!("sha256:{}", "z".repeat(64)),
        format!("sha256:{}", "A".repeat(64)),
        "sha256:abcd".to_string(),
        format!("sha256:{}", "a".repeat(65)),
        "md5:d41d8cd98f00b204e9800998ecf8427e".to_string(),
        format!("sha256:{}/../{}", "a".repeat(64), "b".repeat(64)),
    ];
    for (i, digest) in bad.iter().enumerate() {
        let repo = format!("hostile/digest{i}");
        let image = image_with_layers(&mock, &repo, &[(digest.clone(), 10)]);
        let run = pull(&s, &image);
        assert!(failed(&run), "{digest}: {run:#?}");
        assert!(run.stderr.contains("digest"), "{digest}: {run:#?}");
        nothing_stored(&s, digest);
    }
    // No request named a bad digest: they were refused when the manifest
    // was read, before any URL was made of them.
    let seen: Vec<Seen> = mock.seen();
    assert!(
        seen.iter().all(|x| !x.path.contains("/blobs/")),
        "{seen:#?}"
    );
    // The manifest's own reference by a bad digest does not reach the wire.
    let run = pull(&s, &format!("{}/hostile/digest0@sha256:../../x", mock.addr));
    assert_ne!(run.code, Some(0), "{run:#?}");
    assert!(mock.seen().iter().all(|x| !x.path.contains("..")));
}

#[test]
fn registry_hostile_blobs_not_matching_their_descriptor_are_refused() {
    // Case 30 (umoci hardening.bats, containers/image storage_dest.go).
    let good = layer_tar(1);
    let other = layer_tar(2);
    let (gz, _) = gzip_layer(&good);
    let mut flipped = good.clone();
    flipped[1000] ^= 1;
    let mut appended = good.clone();
    appended.push(0);
    let truncated = good[..good.len() - 512].to_vec();
    // The same tar gzip'ed again at another level: same DiffID, another digest.
    let recompressed = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&good).unwrap();
        e.finish().unwrap()
    };
    let shapes: [(&str, &[u8], Vec<u8>); 5] = [
        ("flipped", &good, flipped),
        ("appended", &good, appended),
        ("truncated", &good, truncated),
        ("swapped", &good, other.clone()),
        ("recompressed", &gz, recompressed),
    ];
    for (what, right, served) in shapes {
        let mock = MockRegistry::serving();
        let s = Strata::new();
        let diff = common::tarspec::sha256_hex(&good);
        let image = mock.push_image("hostile/blob", "v1", &[(right.to_vec(), diff)]);
        let digest = format!("sha256:{}", common::tarspec::sha256_hex(right));
        mock.put_blob_as(&digest, &served);
        let run = pull(&s, &image);
        assert!(failed(&run), "{what}: {run:#?}");
        let err = run.stderr.to_lowercase();
        assert!(
            err.contains("digest mismatch") || err.contains("size"),
            "{what}: {run:#?}"
        );
        nothing_stored(&s, what);
    }
    // The right blob, but the config's DiffID is another tar's.
    let mock = MockRegistry::serving();
    let s = Strata::new();
    let wrong_diff = common::tarspec::sha256_hex(&other);
    let image = mock.push_image("hostile/diffid", "v1", &[(good.clone(), wrong_diff)]);
    let run = pull(&s, &image);
    assert!(failed(&run), "{run:#?}");
    assert!(run.stderr.to_lowercase().contains("diff"), "{run:#?}");
    nothing_stored(&s, "diffid");
    // Untouched, the same image pulls.
    let image = mock.push_image("hostile/fine", "v1", &[plain_layer(good)]);
    pull(&s, &image).success();
}

#[test]
fn registry_hostile_manifests_that_read_two_ways_are_refused() {
    // Case 31 (CVE-2021-41190).
    let mock = MockRegistry::serving();
    let s = Strata::new();
    let image = mock.push_image("hostile/m", "v1", &[plain_layer(layer_tar(3))]);
    let manifest = mock.manifest("hostile/m", "v1");
    let digest = format!("sha256:{}", common::tarspec::sha256_hex(&manifest));
    // By digest, bytes that hash to something else.
    let mut other: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    other["annotations"] = serde_json::json!({"x": "y"});
    let other = serde_json::to_vec(&other).unwrap();
    mock.put_manifest_as("hostile/m", &digest, OCI_MANIFEST, &other);
    let run = pull(&s, &format!("{}/hostile/m@{digest}", mock.addr));
    assert!(failed(&run), "{run:#?}");
    assert!(run.stderr.contains("digest mismatch"), "{run:#?}");
    nothing_stored(&s, "by digest");
    // A manifest that is also an index, with and without a media type.
    let mut both: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    both["manifests"] = serde_json::json!([]);
    let mut untyped = both.clone();
    untyped.as_object_mut().unwrap().remove("mediaType");
    for (what, doc, header) in [
        ("both kinds", &both, OCI_MANIFEST),
        ("both kinds, untyped", &untyped, OCI_MANIFEST),
        ("both kinds, served as an index", &untyped, OCI_INDEX),
    ] {
        mock.put_manifest_as("hostile/m", "v2", header, &serde_json::to_vec(doc).unwrap());
        let run = pull(&s, &format!("{}/hostile/m:v2", mock.addr));
        assert!(failed(&run), "{what}: {run:#?}");
        assert!(run.stderr.contains("ambiguous"), "{what}: {run:#?}");
        nothing_stored(&s, what);
    }
    // mediaType says image manifest, Content-Type says index.
    mock.put_manifest_as("hostile/m", "v3", OCI_INDEX, &manifest);
    let run = pull(&s, &format!("{}/hostile/m:v3", mock.addr));
    assert!(failed(&run), "{run:#?}");
    assert!(run.stderr.contains("served it as"), "{run:#?}");
    nothing_stored(&s, "media type");
    pull(&s, &image).success();
}

/// A gibibyte: what a hostile server offers.
const GIB: u64 = 1 << 30;
/// Far less than a gibibyte, far more than any cap plus socket buffers.
const READ_AT_MOST: u64 = 64 << 20;

#[test]
fn registry_hostile_gibibyte_bodies_stop_at_the_cap() {
    // Case 32 (containers/image iolimits): a manifest, an error body and a
    // token answer of 1 GiB, with the length announced and without.
    for declared in [true, false] {
        for what in ["manifest", "error", "token"] {
            let addr: Arc<Mutex<String>> = Arc::default();
            let realm = addr.clone();
            let mock = MockRegistry::start(move |seen, _| {
                let token = seen.path.starts_with("/token");
                match (what, seen.path.as_str()) {
                    ("token", p)
                        if p.starts_with("/v2") && seen.header("authorization").is_none() =>
                    {
                        Fault::Respond(
                            401,
                            vec![(
                                "WWW-Authenticate".into(),
                                format!(
                                    "Bearer realm=\"http://{}/token\",service=\"mock\"",
                                    realm.lock().unwrap()
                                ),
                            )],
                            Vec::new(),
                        )
                    }
                    ("token", _) if token => Fault::Flood {
                        status: 200,
                        len: GIB,
                        declared,
                    },
                    ("manifest", _) if seen.is_manifest() => Fault::Flood {
                        status: 200,
                        len: GIB,
                        declared,
                    },
                    ("error", _) if seen.is_manifest() => Fault::Flood {
                        status: 400,
                        len: GIB,
                        declared,
                    },
                    _ => Fault::None,
                }
            });
            *addr.lock().unwrap() = mock.addr.clone();
            let s = Strata::new();
            let run = pull(&s, &format!("{}/hostile/big:v1", mock.addr));
            let case = format!("{what}, declared {declared}");
            assert!(failed(&run), "{case}: {run:#?}");
            // An error body is only read for its message: the status says
            // what failed.
            let says = if what == "error" { "400" } else { "limit" };
            assert!(run.stderr.contains(says), "{case}: {run:#?}");
            assert!(
                mock.flooded() < READ_AT_MOST,
                "{case}: {} bytes were read",
                mock.flooded()
            );
            nothing_stored(&s, &case);
        }
    }
}

#[test]
fn registry_hostile_foreign_layer_urls_are_never_fetched() {
    // Case 33 (CVE-2020-15157): a layer's `urls` name another server (one
    // that answers 401 with a challenge, to collect credentials); strata
    // fetches layers from the registry only, and sends that server nothing.
    let collector = MockRegistry::start(|_, _| {
        Fault::Respond(
            401,
            vec![(
                "WWW-Authenticate".into(),
                "Basic realm=\"collector\"".into(),
            )],
            Vec::new(),
        )
    });
    let mock = MockRegistry::serving();
    let (blob, diff) = gzip_layer(&layer_tar(4));
    let image = mock.push_image("hostile/foreign", "v1", &[(blob.clone(), diff)]);
    // Rewrite the layer's descriptor as a foreign one with urls.
    let mut m: serde_json::Value =
        serde_json::from_slice(&mock.manifest("hostile/foreign", "v1")).unwrap();
    m["layers"][0]["mediaType"] =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip".into();
    m["layers"][0]["urls"] = serde_json::json!([format!("http://{}/layer.tar.gz", collector.addr)]);
    mock.put_manifest(
        "hostile/foreign",
        "v1",
        OCI_MANIFEST,
        &serde_json::to_vec(&m).unwrap(),
    );
    let s = Strata::new();
    let auth = s.root.path().join("auth.json");
    let secret = base64_creds("u", "COLLECTED-SECRET");
    fs_err::write(
        &auth,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{secret}"}},"{}":{{"auth":"{secret}"}}}}}}"#,
            mock.addr, collector.addr
        ),
    )
    .unwrap();
    let run = Run::of(
        s.cmd()
            .env("REGISTRY_AUTH_FILE", &auth)
            .args(["pull", "-q", &image])
            .output()
            .unwrap(),
    );
    assert!(collector.seen().is_empty(), "{:#?}", collector.seen());
    // Fetched from the registry instead, as Docker does by default.
    run.success();
}

fn base64_creds(user: &str, pass: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
}
