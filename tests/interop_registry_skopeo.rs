//! strata and skopeo through a real registry: an image pushed by strata and
//! copied by skopeo to an OCI layout keeps its manifest digest; a
//! two-platform index pushed by skopeo is pulled by strata for the host
//! platform (or the one asked for with --platform).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::path::Path;

use common::Strata;
use sha2::{Digest as _, Sha256};

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A namespace of its own, so a registry kept between runs starts empty.
fn namespace() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!("interop{}x{ms}", std::process::id())
}

#[test]
fn interop_registry_strata_push_skopeo_copy_keeps_the_digest() {
    let addr = common::registry_addr();
    let work = tempfile::tempdir().unwrap();
    let s = Strata::new();
    let bb = common::busybox_tar();
    s.run(&["import", bb.to_str().unwrap(), "base:1"]).success();
    s.run(&["run", "--name", "c", "base:1", "sh", "-c", "echo 2 > /two"])
        .success();
    s.run(&["commit", "c", "two:1"]).success();
    let image = format!("{addr}/{}/two:1", namespace());
    let out = s.run(&["push", "two:1", &image]).success();
    let digest = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("1: digest: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest line: {out:#?}"))
        .to_string();

    let layout = work.path().join("layout");
    common::tool(
        "skopeo",
        &[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{image}"),
            &format!("oci:{}:two", layout.display()),
        ],
    );
    let index: serde_json::Value =
        serde_json::from_slice(&fs_err::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest.as_str(), "{index}");
    let manifest: serde_json::Value = serde_json::from_slice(
        &fs_err::read(layout.join("blobs/sha256").join(&digest[7..])).unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["layers"].as_array().unwrap().len(),
        2,
        "{manifest}"
    );
}

/// An OCI layout holding an index of the same rootfs for amd64 and arm64;
/// returns the config digest per architecture.
fn two_platform_layout(layout: &Path) -> Vec<(&'static str, String)> {
    let tar = fs_err::read(common::busybox_tar()).unwrap();
    let diff_id = sha(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let layer = gz.finish().unwrap();
    let blobs = layout.join("blobs/sha256");
    fs_err::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let d = sha(data);
        fs_err::write(blobs.join(&d[7..]), data).unwrap();
        d
    };
    let layer_digest = put(&layer);
    let mut entries = Vec::new();
    let mut configs = Vec::new();
    for arch in ["amd64", "arm64"] {
        let config = serde_json::json!({
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        });
        let config = serde_json::to_vec(&config).unwrap();
        let config_digest = put(&config);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer.len()}],
        });
        let manifest = serde_json::to_vec(&manifest).unwrap();
        entries.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": put(&manifest),
            "size": manifest.len(),
            "platform": {"os": "linux", "architecture": arch},
        }));
        configs.push((arch, config_digest));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    });
    let index = serde_json::to_vec(&index).unwrap();
    let index_digest = put(&index);
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index_digest,
            "size": index.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }],
    });
    fs_err::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    fs_err::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    configs
}

#[test]
fn interop_registry_skopeo_index_is_pulled_for_the_host_platform() {
    let addr = common::registry_addr();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let configs = two_platform_layout(&layout);
    let image = format!("{addr}/{}/multi:1", namespace());
    common::tool(
        "skopeo",
        &[
            "copy",
            "--all",
            "--dest-tls-verify=false",
            &format!("oci:{}:multi", layout.display()),
            &format!("docker://{image}"),
        ],
    );
    let host = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    };
    let id_of = |s: &Strata| {
        let out = s.run(&["inspect", &image]).success().stdout;
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v[0]["Id"].as_str().unwrap().to_string()
    };
    let want = |arch: &str| configs.iter().find(|(a, _)| *a == arch).unwrap().1.clone();

    let s = Strata::new();
    s.run(&["pull", &image]).success();
    assert_eq!(id_of(&s), want(host));
    let run = s
        .run(&["run", "--rm", &image, "echo", "multi-ok"])
        .success();
    assert_eq!(run.stdout.trim(), "multi-ok");

    let other = if host == "amd64" { "arm64" } else { "amd64" };
    let t = Strata::new();
    t.run(&["pull", "--platform", &format!("linux/{other}"), &image])
        .success();
    assert_eq!(id_of(&t), want(other));

    let u = Strata::new();
    let out = u.run(&["pull", "--platform", "linux/s390x", &image]);
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert!(
        out.stderr.contains("no image for platform linux/s390x"),
        "{out:#?}"
    );
}
