//! `strata search REGISTRY/TERM` against a real registry's catalog.
#![allow(clippy::unwrap_used)]

mod common;
mod registry_support;

use common::Strata;
use registry_support::TestRegistry;
use strata::digest::Digest;
use strata::registry::transfer::{LocalBlob, UploadMode};
use strata::registry::{Options, Registry};

/// Put a one-blob image into `repo`, through the library.
fn put_image(reg: &Registry, repo: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let digest = Digest::of(config);
    let path = dir.path().join("config");
    fs_err::write(&path, config).unwrap();
    let loc = reg.start_upload(repo).unwrap();
    let blob = LocalBlob {
        digest: &digest,
        path: &path,
        size: config.len() as u64,
    };
    reg.upload_blob(repo, &blob, loc, UploadMode::Monolithic, &mut |_| {})
        .unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{digest}","size":{}}},"layers":[]}}"#,
        config.len()
    );
    reg.put_manifest(
        repo,
        "latest",
        "application/vnd.oci.image.manifest.v1+json",
        manifest.as_bytes(),
    )
    .unwrap();
}

#[test]
fn registry_search_filters_the_catalog() {
    let upstream = TestRegistry::start(None, None);
    let reg = Registry::connect(&upstream.addr, None, &Options::default()).unwrap();
    for repo in ["team/webapp", "team/worker", "webtools"] {
        put_image(&reg, repo);
    }
    let s = Strata::new();
    let out = s
        .run(&["search", &format!("{}/web", upstream.addr)])
        .success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{out:#?}");
    assert!(lines[0].contains("DESCRIPTION"), "{out:#?}");
    assert!(lines[0].ends_with("AUTOMATED"), "{out:#?}");
    let names: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    let want = [
        format!("{}/team/webapp", upstream.addr),
        format!("{}/webtools", upstream.addr),
    ];
    assert_eq!(names, want);
    let out = s
        .run(&["search", "--limit", "1", &format!("{}/team", upstream.addr)])
        .success();
    assert_eq!(out.stdout.lines().count(), 2, "{out:#?}");
}
