//! Round trips through every transport, and their determinism.

use super::*;
use crate::layer::compress::Compression;
use crate::reference::Reference;
use crate::store::tests::import as import_files;
use crate::store::Store;

#[test]
fn parse_table() {
    let p = |s: &str| Transport::parse(s);
    assert_eq!(
        p("oci:/tmp/x:v1").unwrap(),
        Transport::Oci {
            dir: "/tmp/x".into(),
            tag: Some("v1".into())
        }
    );
    assert_eq!(
        p("oci-archive:a.tar").unwrap(),
        Transport::OciArchive {
            file: "a.tar".into(),
            tag: None
        }
    );
    assert_eq!(
        p("docker-archive:a.tar:busybox:latest").unwrap(),
        Transport::DockerArchive {
            file: "a.tar".into(),
            reference: Some("busybox:latest".into())
        }
    );
    for bad in ["", "oci", "oci:", "ftp:x", "docker://busybox"] {
        assert!(p(bad).is_err(), "{bad}");
    }
}

fn two_stores() -> (tempfile::TempDir, Store, Store) {
    let t = tempfile::tempdir().unwrap();
    let a = Store::open(&t.path().join("a")).unwrap();
    let b = Store::open(&t.path().join("b")).unwrap();
    (t, a, b)
}

#[test]
fn archives_round_trip_and_are_deterministic() {
    let (t, a, b) = two_stores();
    let id = import_files(
        &a,
        &[("bin/sh", "shell"), ("etc/os-release", "strata")],
        "app:1",
    );
    let named = vec![Named {
        id: id.clone(),
        names: vec![Reference::parse("app:1").unwrap()],
        annotations: Default::default(),
    }];
    for format in [
        ExportFormat::DockerArchive,
        ExportFormat::OciArchive(Compression::Gzip.into()),
        ExportFormat::OciArchive(Compression::Zstd.into()),
    ] {
        let (d1, bytes1) = export(&a, &named, format, Vec::new()).unwrap();
        let (d2, bytes2) = export(&a, &named, format, Vec::new()).unwrap();
        assert_eq!(d1, d2);
        assert_eq!(bytes1, bytes2, "{format:?} export is not byte-identical");
        let file = t.path().join("out.tar");
        fs_err::write(&file, &bytes1).unwrap();
        let got = import(&b, &file, None, None).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, id, "{format:?}");
        assert_eq!(b.resolve("app:1").unwrap(), id, "{format:?}");
        assert!(b.check().unwrap().problems.is_empty());
        // Loaded layers re-export to the same bytes.
        let (d3, bytes3) = export(&b, &named, format, Vec::new()).unwrap();
        assert_eq!(d3, d1);
        assert_eq!(bytes3, bytes1, "{format:?} re-export differs");
        b.remove_image("app:1", false, true).unwrap();
    }
}

#[test]
fn oci_dir_round_trip_and_select() {
    let (t, a, b) = two_stores();
    let x = import_files(&a, &[("x", "1")], "x");
    let y = import_files(&a, &[("y", "2")], "y");
    let dir = t.path().join("layout");
    let dx = export_oci_dir(
        &a,
        &x,
        Some("x"),
        &dir,
        Compression::Gzip,
        &Default::default(),
    )
    .unwrap();
    export_oci_dir(
        &a,
        &y,
        Some("y"),
        &dir,
        Compression::Gzip,
        &Default::default(),
    )
    .unwrap();
    // Same tag again replaces, not duplicates.
    assert_eq!(
        export_oci_dir(
            &a,
            &x,
            Some("x"),
            &dir,
            Compression::Gzip,
            &Default::default()
        )
        .unwrap(),
        dx
    );
    let name = Reference::parse("pulled:y").unwrap();
    let got = import(&b, &dir, Some("y"), Some(&name)).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, y);
    assert_eq!(b.resolve("pulled:y").unwrap(), y);
    assert!(import(&b, &dir, Some("nope"), None).is_err());
}

#[test]
fn corrupt_blob_is_refused_and_leaves_nothing() {
    let (t, a, b) = two_stores();
    let id = import_files(&a, &[("x", &"data".repeat(1000))], "x");
    let dir = t.path().join("layout");
    export_oci_dir(
        &a,
        &id,
        Some("x"),
        &dir,
        Compression::Gzip,
        &Default::default(),
    )
    .unwrap();
    let layer = a.config(&id).unwrap().rootfs.diff_ids[0].clone();
    let blob = a.layer_blob(&layer, Compression::Gzip).unwrap();
    let path = dir.join("blobs/sha256").join(blob.digest.hex());
    let mut bytes = fs_err::read(&path).unwrap();
    let n = bytes.len();
    bytes.truncate(n / 2);
    fs_err::write(&path, &bytes).unwrap();
    let err = import(&b, &dir, None, None).unwrap_err();
    let chain = crate::store::error_chain(&err);
    assert!(chain.contains("gzip"), "{chain}");
    assert!(b.index().unwrap().images.is_empty());
    assert_eq!(
        fs_err::read_dir(b.root().join("layers")).unwrap().count(),
        0
    );
    assert_eq!(fs_err::read_dir(b.root().join("tmp")).unwrap().count(), 0);
}
