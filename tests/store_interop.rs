//! The store against real tools (interop tier): skopeo- and umoci-made
//! images load into strata, and what strata exports skopeo and umoci read,
//! byte-identical from one export to the next.

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::fstree::tree;
use common::Strata;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn image_id(strata: &Strata, name: &str) -> String {
    let out = strata.run(&["inspect", name]).success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    v[0]["Id"].as_str().unwrap().to_string()
}

fn layer_dir(strata: &Strata, name: &str) -> PathBuf {
    let out = strata.run(&["inspect", name]).success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let diff = v[0]["RootFS"]["Layers"][0].as_str().unwrap();
    strata
        .root
        .path()
        .join("layers")
        .join(diff.trim_start_matches("sha256:"))
}

#[test]
fn interop_strata_exports_are_read_by_skopeo_and_umoci() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let strata = Strata::new();
    let bb = common::busybox_tar();
    strata
        .run(&[
            "import",
            "-c",
            r#"CMD ["/bin/sh"]"#,
            s(&bb),
            "busybox:latest",
        ])
        .success();

    // save, twice: the same bytes.
    let (a, b) = (w.join("a.tar"), w.join("b.tar"));
    strata.run(&["save", "-o", s(&a), "busybox"]).success();
    strata.run(&["save", "-o", s(&b), "busybox"]).success();
    assert!(
        fs_err::read(&a).unwrap() == fs_err::read(&b).unwrap(),
        "two saves differ"
    );
    let inspect = common::tool("skopeo", &["inspect", &format!("docker-archive:{}", s(&a))]);
    assert!(inspect.contains("\"Architecture\""), "{inspect}");

    // push to every local transport; skopeo reads and copies each.
    let oci = w.join("oci");
    let d1 = strata
        .run(&["push", "busybox", &format!("oci:{}:latest", s(&oci))])
        .success()
        .stdout;
    let d2 = strata
        .run(&["push", "busybox", &format!("oci:{}:latest", s(&oci))])
        .success()
        .stdout;
    assert_eq!(
        d1, d2,
        "the same image pushed twice has one manifest digest"
    );
    let oa = w.join("oci.tar");
    let da = w.join("docker.tar");
    strata
        .run(&["push", "busybox", &format!("oci-archive:{}:latest", s(&oa))])
        .success();
    strata
        .run(&[
            "push",
            "busybox",
            &format!("docker-archive:{}:busybox:latest", s(&da)),
        ])
        .success();
    for src in [
        format!("oci:{}:latest", s(&oci)),
        format!("oci-archive:{}:latest", s(&oa)),
        format!("docker-archive:{}", s(&da)),
        format!("docker-archive:{}", s(&a)),
    ] {
        let out = common::tool("skopeo", &["inspect", &src]);
        assert!(out.contains("\"Layers\""), "{src}: {out}");
        let copy = w.join(format!("copy-{}", sha256_hex(src.as_bytes())));
        common::tool("skopeo", &["copy", &src, &format!("oci:{}:x", s(&copy))]);
    }
    let raw = common::tool(
        "skopeo",
        &["inspect", "--raw", &format!("oci:{}:latest", s(&oci))],
    );
    let digest = format!("sha256:{}", sha256_hex(raw.as_bytes()));
    assert_eq!(
        digest,
        d1.trim(),
        "skopeo sees the manifest strata reported"
    );

    // umoci unpacks the same tree strata unpacked.
    let bundle = w.join("bundle");
    let rootfs = common::umoci_unpack(&format!("{}:latest", s(&oci)), &bundle);
    assert_eq!(tree(&rootfs), tree(&layer_dir(&strata, "busybox")));
}

#[test]
fn interop_skopeo_made_archives_load_into_strata() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let bb = common::busybox_tar();
    // An image made by umoci from the busybox rootfs, then copied by skopeo.
    let layout = w.join("umoci");
    let bundle = w.join("bundle");
    common::tool("umoci", &["init", "--layout", s(&layout)]);
    common::tool("umoci", &["new", "--image", &format!("{}:bb", s(&layout))]);
    common::tool(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:bb", s(&layout)),
            s(&bundle),
        ],
    );
    let mut archive = tar::Archive::new(fs_err::File::open(&bb).unwrap());
    archive.set_preserve_permissions(true);
    archive.unpack(bundle.join("rootfs")).unwrap();
    common::tool(
        "umoci",
        &[
            "repack",
            "--image",
            &format!("{}:bb", s(&layout)),
            s(&bundle),
        ],
    );
    let docker_archive = w.join("skopeo-docker.tar");
    let oci = w.join("skopeo-oci");
    common::tool(
        "skopeo",
        &[
            "copy",
            &format!("oci:{}:bb", s(&layout)),
            &format!("docker-archive:{}:busybox:latest", s(&docker_archive)),
        ],
    );
    common::tool(
        "skopeo",
        &[
            "copy",
            &format!("oci:{}:bb", s(&layout)),
            &format!("oci:{}:bb", s(&oci)),
        ],
    );

    let strata = Strata::new();
    let loaded = strata.run(&["load", "-i", s(&docker_archive)]).success();
    assert!(
        loaded.stdout.contains("Loaded image: busybox:latest"),
        "{loaded:?}"
    );
    strata
        .run(&[
            "pull",
            "--name",
            "busybox:oci",
            &format!("oci:{}:bb", s(&oci)),
        ])
        .success();
    assert_eq!(
        image_id(&strata, "busybox:latest"),
        image_id(&strata, "busybox:oci")
    );
    assert_eq!(
        tree(&layer_dir(&strata, "busybox:latest")),
        tree(&bundle.join("rootfs"))
    );
    let check = strata.run(&["system", "check"]).success();
    assert!(
        check.stdout.starts_with("ok:") || check.stdout.contains("\nok:"),
        "{check:?}"
    );

    // The loaded image goes back out with the digests it came in with.
    let back = w.join("back");
    strata
        .run(&["push", "busybox:oci", &format!("oci:{}:bb", s(&back))])
        .success();
    let theirs = common::tool("skopeo", &["inspect", &format!("oci:{}:bb", s(&oci))]);
    let ours = common::tool("skopeo", &["inspect", &format!("oci:{}:bb", s(&back))]);
    let layers = |j: &str| serde_json::from_str::<serde_json::Value>(j).unwrap()["Layers"].clone();
    assert_eq!(layers(&theirs), layers(&ours));
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}
