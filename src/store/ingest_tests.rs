//! containerd's content-store conformance (`ContentSuite`: Writer,
//! UpdateStatus, CommitExists, Resume*, SmallBlob) against the store's
//! ingest writers, plus the sweep's rules for ingests.

use std::io::Write as _;

use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let tmp = tempfile::tempdir().unwrap();
    let s = Store::open(&tmp.path().join("root")).unwrap();
    (tmp, s)
}

/// `len` bytes that differ from test to test.
fn content(len: usize, seed: u8) -> (Vec<u8>, Digest) {
    let b: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let d = Digest::of(&b);
    (b, d)
}

fn written(w: &mut Writer, bytes: &[u8]) {
    // Small pieces, as containerd's suite copies through a 32-byte buffer.
    for piece in bytes.chunks(32) {
        w.write_all(piece).unwrap();
    }
}

#[test]
fn writer_commits_with_and_without_expected() {
    let (_t, s) = store();
    for (i, expected) in [false, true].into_iter().enumerate() {
        let (b, d) = content(256, i as u8);
        let want = expected.then(|| (256, d.clone()));
        let mut w = s.writer(&format!("c{i}"), want).unwrap();
        written(&mut w, &b);
        assert_eq!(w.digest(), d);
        w.commit(256, &d).unwrap();
        assert_eq!(s.read_blob(&d).unwrap(), b);
    }
    assert_eq!(s.ingests().unwrap(), vec![], "a commit removes its ingest");
}

#[test]
fn status_follows_the_writes() {
    let (_t, s) = store();
    let (b, d) = content(256, 1);
    let mut w = s.writer("c1", Some((256, d.clone()))).unwrap();
    let empty = Digest::of(b"");
    assert_eq!((w.offset(), w.digest()), (0, empty));
    for end in [64, 192, 256] {
        let start = w.offset() as usize;
        written(&mut w, &b[start..end]);
        let st = w.status();
        assert_eq!(
            (st.reference.as_str(), st.offset, st.total),
            ("c1", end as u64, Some(256))
        );
        assert_eq!(w.digest(), Digest::of(&b[..end]));
    }
    w.commit(256, &d).unwrap();
}

#[test]
fn resume_after_drop_at_every_truncation() {
    let (_t, s) = store();
    for (i, size) in [500usize, 5000, 50000].into_iter().enumerate() {
        for (j, part) in [0.0, 0.1, 0.5, 0.9, 1.0].into_iter().enumerate() {
            let (b, d) = content(size, (i * 5 + j) as u8);
            let limit = (size as f64 * part) as usize;
            let reference = format!("ref-{i}-{j}");
            let mut w = s
                .writer(&reference, Some((size as u64, d.clone())))
                .unwrap();
            written(&mut w, &b[..limit]);
            drop(w);
            let mut w = s
                .writer(&reference, Some((size as u64, d.clone())))
                .unwrap();
            assert_eq!(w.offset(), limit as u64, "{reference}");
            assert_eq!(w.digest(), Digest::of(&b[..limit]), "{reference}");
            if j % 2 == 0 {
                // ResumeDiscard: carry on from the offset.
                written(&mut w, &b[limit..]);
            } else {
                // ResumeTruncate: start over.
                w.restart().unwrap();
                written(&mut w, &b);
            }
            w.commit(size as u64, &d).unwrap();
            assert_eq!(s.read_blob(&d).unwrap(), b, "{reference}");
        }
    }
}

#[test]
fn commit_with_a_wrong_size_or_digest_is_refused_and_kept() {
    let (_t, s) = store();
    let (b, d) = content(300, 7);
    let mut w = s.writer("wrong", None).unwrap();
    written(&mut w, &b);
    let err = w.commit(299, &d).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SizeMismatch(crate::digest::SizeMismatch {
                expected: 299,
                found: 300,
                ..
            })
        ),
        "{err}"
    );
    assert!(!s.has_blob(&d));
    let w = s.writer("wrong", None).unwrap();
    assert_eq!(w.offset(), 300, "the ingest stays for a retry");
    let other = Digest::of(b"other");
    let err = w.commit(300, &other).unwrap_err();
    assert!(
        matches!(&err, StoreError::DigestMismatch(DigestMismatch { expected, found, .. }) if *expected == other && *found == d),
        "{err}"
    );
    assert!(!s.has_blob(&other) && !s.has_blob(&d));
    assert_eq!(s.ingests().unwrap()[0].offset, 300);
    s.writer("wrong", None).unwrap().commit(300, &d).unwrap();
    assert_eq!(s.read_blob(&d).unwrap(), b);
}

#[test]
fn writes_past_the_expected_size_fail() {
    let (_t, s) = store();
    let (b, d) = content(10, 3);
    let mut w = s.writer("big", Some((10, d))).unwrap();
    w.write_all(&b).unwrap();
    assert!(w.write_all(b"x").is_err());
    assert_eq!(w.offset(), 10);
}

#[test]
fn commit_of_an_existing_blob_is_already_exists() {
    let (_t, s) = store();
    let (b, d) = content(256, 9);
    let mut w = s.writer("c1", Some((256, d.clone()))).unwrap();
    written(&mut w, &b);
    w.commit(256, &d).unwrap();
    for i in 0..2 {
        let mut w = s.writer(&format!("c1-commitexists-{i}"), None).unwrap();
        written(&mut w, &b);
        let err = w.commit(256, &d).unwrap_err();
        assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");
    }
    assert_eq!(
        s.ingests().unwrap(),
        vec![],
        "AlreadyExists removes the ingest"
    );
    let err = s.writer("again", Some((256, d))).unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");
}

#[test]
fn a_second_writer_on_a_ref_is_unavailable_at_once() {
    let (_t, s) = store();
    let mut w = s.writer("shared", None).unwrap();
    w.write_all(b"first").unwrap();
    let s2 = s.clone();
    let other = std::thread::spawn(move || s2.writer("shared", None).map(|_| ()));
    let err = other.join().unwrap().unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable { reference } if reference == "shared"),
        "{err}"
    );
    assert!(err.to_string().contains("unavailable"), "{err}");
    // Another ref is not held up, and the ref is free once the writer goes.
    s.writer("other", None).unwrap().abort();
    drop(w);
    assert_eq!(s.writer("shared", None).unwrap().offset(), 5);
}

#[test]
fn abort_removes_the_ingest() {
    let (_t, s) = store();
    let mut w = s.writer("gone", None).unwrap();
    w.write_all(b"bytes").unwrap();
    w.abort();
    assert_eq!(s.ingests().unwrap(), vec![]);
    assert_eq!(s.writer("gone", None).unwrap().offset(), 0);
}

#[test]
fn small_blob_reads_back_whole() {
    let (_t, s) = store();
    let d = Digest::of(b"foobar");
    let mut w = s.writer("small", Some((6, d.clone()))).unwrap();
    w.write_all(b"foobar").unwrap();
    w.commit(6, &d).unwrap();
    assert_eq!(s.read_blob(&d).unwrap(), b"foobar");
}

#[test]
fn sweep_keeps_held_ingests_and_removes_abandoned_ones() {
    let (_t, s) = store();
    let mut held = s.writer("held", None).unwrap();
    held.write_all(b"held").unwrap();
    s.writer("dropped", None)
        .unwrap()
        .write_all(b"dropped")
        .unwrap();
    let refs = |s: &Store| -> Vec<String> {
        s.ingests()
            .unwrap()
            .into_iter()
            .map(|i| i.reference)
            .collect()
    };
    assert_eq!(refs(&s), ["dropped", "held"]);
    // The next command opening the store sweeps what nobody holds.
    let s2 = Store::open(s.root()).unwrap();
    assert_eq!(refs(&s2), ["held"]);
    let again = s2.writer("dropped", None).unwrap();
    assert_eq!(again.offset(), 0);
    again.abort();
    let err = s2.writer("held", None).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
    held.commit(4, &Digest::of(b"held")).unwrap();
    assert_eq!(tmp_entries(&s), Vec::<String>::new());
}

/// The names in `tmp/`.
fn tmp_entries(s: &Store) -> Vec<String> {
    fs_err::read_dir(s.root().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_temporary_writer_leaves_nothing() {
    let (_t, s) = store();
    let mut w = s.temp_writer().unwrap();
    w.write_all(b"temp").unwrap();
    drop(w);
    let mut w = s.temp_writer().unwrap();
    w.write_all(b"sealed, not published").unwrap();
    drop(w.seal().unwrap());
    assert_eq!(tmp_entries(&s), Vec::<String>::new());
}
