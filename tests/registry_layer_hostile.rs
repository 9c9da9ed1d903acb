//! Hostile layers served by the suite's registry and pulled with the whole
//! binary: a decompression bomb stops at the cap with nothing left behind,
//! and a PAX header with a repeated `size` is read as GNU tar reads it.
//! The images are pushed straight through the library, so nothing checks
//! them on the way in.
#![allow(clippy::unwrap_used)]

mod common;

use common::tarspec::{bomb, sha256_hex, smuggling_tar};
use common::Strata;
use strata::digest::Digest;
use strata::registry::transfer::{LocalBlob, UploadMode};
use strata::registry::{Options, Registry};

/// Push an image of `layers` (blob, diff id hex; gzip or plain by the
/// first bytes) as `<addr>/<repo>:v1`; returns the reference.
fn push(repo: &str, layers: &[(Vec<u8>, String)]) -> String {
    let addr = common::registry_addr();
    let reg = Registry::connect(&addr, None, &Options::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let diff_ids: Vec<String> = layers.iter().map(|(_, d)| format!("sha256:{d}")).collect();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":{}}}}}"#,
        serde_json::to_string(&diff_ids).unwrap()
    );
    let mut blobs: Vec<&[u8]> = layers.iter().map(|(b, _)| &b[..]).collect();
    blobs.push(config.as_bytes());
    for bytes in &blobs {
        let digest = Digest::of(bytes);
        let path = dir.path().join(digest.hex());
        fs_err::write(&path, bytes).unwrap();
        let local = LocalBlob {
            digest: &digest,
            path: &path,
            size: bytes.len() as u64,
        };
        let loc = reg.start_upload(repo).unwrap();
        reg.upload_blob(repo, &local, loc, UploadMode::Chunked(1 << 20), &mut |_| {})
            .unwrap();
    }
    let descs: Vec<String> = layers
        .iter()
        .map(|(b, _)| {
            let media = match b.starts_with(&[0x1f, 0x8b]) {
                true => "application/vnd.oci.image.layer.v1.tar+gzip",
                false => "application/vnd.oci.image.layer.v1.tar",
            };
            format!(
                r#"{{"mediaType":"{media}","digest":"{}","size":{}}}"#,
                Digest::of(b),
                b.len()
            )
        })
        .collect();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{}]}}"#,
        Digest::of(config.as_bytes()),
        config.len(),
        descs.join(",")
    );
    reg.put_manifest(
        repo,
        "v1",
        "application/vnd.oci.image.manifest.v1+json",
        manifest.as_bytes(),
    )
    .unwrap();
    format!("{addr}/{repo}:v1")
}

/// A repository name of its own, so a registry kept between runs is clean.
fn repo(name: &str) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!("hostile{}x{ms}/{name}", std::process::id())
}

#[test]
fn registry_layer_bomb_pull_stops_at_the_cap() {
    let (blob, diff) = bomb(false, 64 << 20);
    let image = push(&repo("bomb"), &[(blob, diff.clone())]);
    let s = Strata::new();
    let out = s
        .cmd()
        .env("STRATA_MAX_LAYER_SIZE", "8m")
        .args(["pull", &image])
        .output()
        .unwrap();
    let run = common::Run::of(out);
    assert_eq!(run.code, Some(125), "{run:#?}");
    assert!(
        run.stderr.contains("exceeds 8388608 bytes") && run.stderr.contains(&diff),
        "the error names the cap and the layer: {}",
        run.stderr
    );
    let tmp: Vec<_> = fs_err::read_dir(s.root.path().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !n.to_string_lossy().ends_with(".lock"))
        .collect();
    assert!(tmp.is_empty(), "staging left behind: {tmp:?}");
    s.run(&["system", "check"]).success();
}

#[test]
fn registry_layer_repeated_pax_size_pulls_as_gnu_tar_reads_it() {
    let base = fs_err::read(common::busybox_tar()).unwrap();
    let evil = smuggling_tar();
    let layers = vec![
        (base.clone(), sha256_hex(&base)),
        (evil.clone(), sha256_hex(&evil)),
    ];
    let image = push(&repo("smuggle"), &layers);
    let s = Strata::new();
    s.run(&["pull", &image]).success();
    let out = s
        .run(&[
            "run",
            "--rm",
            &image,
            "sh",
            "-c",
            "ls / | grep -c pwn22; wc -c < /carrier",
        ])
        .stdout;
    assert_eq!(out, "0\n1024\n");
}

/// Checklist 18 through pull: every case of the breakout matrix, served by
/// the registry as a one-layer image, leaves the victim as it was.
#[test]
fn registry_layer_breakout_matrix_through_pull() {
    use common::tarspec::{assert_victim_intact, breakout_matrix, make_victim};
    let work = tempfile::tempdir().unwrap();
    let victim = make_victim(work.path());
    let s = Strata::new();
    for (i, (case, layer)) in breakout_matrix(victim.to_str().unwrap())
        .into_iter()
        .enumerate()
    {
        let diff = sha256_hex(&layer);
        let image = push(&repo(&format!("case{i}")), &[(layer, diff)]);
        let run = s.run(&["pull", &image]);
        assert!(
            run.code == Some(0) || run.code == Some(125),
            "{case}: {run:#?}"
        );
        assert_victim_intact(&victim, case);
    }
    assert_eq!(fs_err::read_dir(work.path()).unwrap().count(), 1);
}
