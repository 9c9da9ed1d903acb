//! Layer tars built from a readable description: malicious ones must be
//! refused or contained (a canary outside the layer never changes), legit
//! edge cases must land where a real rootfs expects them.

// Tests report what they checked on stderr.
#![allow(clippy::disallowed_macros)]

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use super::*;
use crate::layer::compress::compress;
use crate::layer::diff::{read_xattrs, write_tar};

/// One entry of a test tar.
enum E<'a> {
    Dir(&'a str),
    File(&'a str, &'a str),
    Mode(&'a str, u32),
    Sym(&'a str, &'a str),
    Hard(&'a str, &'a str),
    /// PAX records for the next entry.
    Pax(&'a [(&'a str, &'a str)]),
    /// A regular file whose ustar size and data are given separately.
    Sized(&'a str, u64, &'a [u8]),
}

fn header(kind: EntryType, name: &[u8], link: &[u8], size: u64, mode: u32) -> Header {
    let mut h = Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(1_000_000);
    h.set_uid(0);
    h.set_gid(0);
    let n = name.len().min(100);
    h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    h.set_cksum();
    h
}

fn tar_of(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match e {
            E::Dir(p) => b.append(
                &header(EntryType::Directory, p.as_bytes(), b"", 0, 0o755),
                &[][..],
            ),
            E::File(p, data) => {
                if p.len() > 100 {
                    b.append_pax_extensions([("path", p.as_bytes())]).unwrap();
                }
                let len = data.len() as u64;
                b.append(
                    &header(EntryType::Regular, p.as_bytes(), b"", len, 0o644),
                    data.as_bytes(),
                )
            }
            E::Mode(p, mode) => b.append(
                &header(EntryType::Regular, p.as_bytes(), b"", 0, *mode),
                &[][..],
            ),
            E::Sym(p, t) => b.append(
                &header(EntryType::Symlink, p.as_bytes(), t.as_bytes(), 0, 0o777),
                &[][..],
            ),
            E::Hard(p, t) => b.append(
                &header(EntryType::Link, p.as_bytes(), t.as_bytes(), 0, 0o644),
                &[][..],
            ),
            E::Pax(recs) => b.append_pax_extensions(recs.iter().map(|(k, v)| (*k, v.as_bytes()))),
            E::Sized(p, size, data) => {
                let h = header(EntryType::Regular, p.as_bytes(), b"", *size, 0o644);
                b.get_mut().extend_from_slice(h.as_bytes());
                b.get_mut().extend_from_slice(data);
                let pad = (512 - data.len() % 512) % 512;
                b.get_mut().extend(std::iter::repeat_n(0u8, pad));
                Ok(())
            }
        }
        .unwrap();
    }
    b.into_inner().unwrap()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    outer: PathBuf,
    layer: PathBuf,
    canary: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let outer = tmp.path().to_path_buf();
    let canary = outer.join("canary");
    fs_err::write(&canary, "canary").unwrap();
    fs_err::set_permissions(&canary, fs::Permissions::from_mode(0o600)).unwrap();
    let layer = outer.join("layer");
    fs_err::create_dir(&layer).unwrap();
    Fixture {
        _tmp: tmp,
        outer,
        layer,
        canary,
    }
}

impl Fixture {
    fn apply(&self, entries: &[E<'_>]) -> Result<ApplyStats, LayerError> {
        apply(&tar_of(entries)[..], &self.layer)
    }

    fn assert_contained(&self) {
        assert_eq!(fs_err::read_to_string(&self.canary).unwrap(), "canary");
        let meta = fs_err::symlink_metadata(&self.canary).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.mode() & 0o7777, 0o600);
        let mut names: Vec<_> = fs_err::read_dir(&self.outer)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["canary", "layer"]);
    }
}

#[test]
fn malicious_tars_are_refused_or_contained() {
    let f = fixture();
    let outer = f.outer.to_str().unwrap().to_string();
    let canary = f.canary.to_str().unwrap().to_string();
    let r_canary = format!("r{canary}");
    let cases: Vec<(&str, Vec<E<'_>>)> = vec![
        ("dotdot", vec![E::File("../x", "pwned")]),
        ("abs dotdot", vec![E::File("/../x", "pwned")]),
        (
            "nested dotdot",
            vec![E::Dir("a/"), E::File("a/../../x", "pwned")],
        ),
        (
            "symlink to ..",
            vec![
                E::Sym("up", ".."),
                E::File("up/x", "contained"),
                E::File("up/canary", "pwned"),
            ],
        ),
        (
            "symlink to host dir",
            vec![E::Sym("host", &outer), E::File("host/canary", "pwned")],
        ),
        (
            "symlink to / then through",
            vec![E::Sym("r", "/"), E::File(&r_canary, "pwned")],
        ),
        ("hardlink outside", vec![E::Hard("h", "../canary")]),
        ("hardlink abs host path", vec![E::Hard("h", &canary)]),
        (
            "hardlink through symlink",
            vec![E::Sym("hs", &outer), E::Hard("h2", "hs/canary")],
        ),
        (
            "symlink swapped for dir",
            vec![
                E::Sym("d", &outer),
                E::Dir("d/"),
                E::File("d/canary", "inside"),
            ],
        ),
        (
            "chmod through symlink (file)",
            vec![E::Sym("c", &canary), E::Mode("c", 0o777)],
        ),
        (
            "chmod through symlink (dir)",
            vec![E::Sym("c2", &canary), E::Dir("c2/")],
        ),
        ("bare whiteout", vec![E::Mode(".wh.", 0o600)]),
        (
            "whiteout under symlinked parent",
            vec![E::Sym("w", &outer), E::Mode("w/.wh.canary", 0o600)],
        ),
        (
            "whiteout under symlink to ..",
            vec![E::Sym("w2", ".."), E::Mode("w2/.wh.canary", 0o600)],
        ),
        ("whiteout of ..", vec![E::Mode(".wh..", 0o600)]),
        ("pax and ustar sizes disagree", {
            // The PAX size says 5, so the reader resyncs 512 bytes in,
            // where a hidden header for "../x" waits.
            let hidden = header(EntryType::Regular, b"../x", b"", 0, 0o644);
            let mut data = b"hello".to_vec();
            data.resize(512, 0);
            data.extend_from_slice(hidden.as_bytes());
            let data: &'static [u8] = Box::leak(data.into_boxed_slice());
            vec![E::Pax(&[("size", "5")]), E::Sized("sz", 1024, data)]
        }),
    ];
    for (name, entries) in &cases {
        let result = f.apply(entries);
        f.assert_contained();
        // Whatever was refused or contained, nothing under the layer is a
        // path to the canary's inode.
        let canary_ino = fs_err::metadata(&f.canary).unwrap().ino();
        for e in walk(&f.layer) {
            let m = fs_err::symlink_metadata(&e).unwrap();
            assert_ne!(m.ino(), canary_ino, "{name}: {} is the canary", e.display());
        }
        eprintln!(
            "{name}: {:?}",
            result.as_ref().map(|_| ()).map_err(|e| e.to_string())
        );
        match *name {
            "dotdot" | "abs dotdot" | "nested dotdot" | "hardlink outside" | "bare whiteout"
            | "whiteout of .." => {
                assert!(result.is_err(), "{name} should be refused")
            }
            "symlink to .." => {
                result.unwrap();
                assert_eq!(
                    fs_err::read_to_string(f.layer.join("x")).unwrap(),
                    "contained"
                );
                assert_eq!(
                    fs_err::read_to_string(f.layer.join("canary")).unwrap(),
                    "pwned"
                );
            }
            "symlink swapped for dir" => {
                result.unwrap();
                assert!(fs_err::symlink_metadata(f.layer.join("d"))
                    .unwrap()
                    .is_dir());
                assert_eq!(
                    fs_err::read_to_string(f.layer.join("d/canary")).unwrap(),
                    "inside"
                );
            }
            "chmod through symlink (file)" => {
                result.unwrap();
                let m = fs_err::symlink_metadata(f.layer.join("c")).unwrap();
                assert!(m.is_file() && m.mode() & 0o777 == 0o777);
            }
            _ => {}
        }
        fs_err::remove_dir_all(&f.layer).unwrap();
        fs_err::create_dir(&f.layer).unwrap();
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs_err::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if fs_err::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn absolute_symlink_stays_in_rootfs() {
    let f = fixture();
    f.apply(&[
        E::Dir("run/"),
        E::Dir("var/"),
        E::Sym("var/run", "/run"),
        E::File("var/run/x", "pid"),
    ])
    .unwrap();
    assert_eq!(
        fs_err::read_to_string(f.layer.join("run/x")).unwrap(),
        "pid"
    );
    assert_eq!(
        fs_err::read_link(f.layer.join("var/run")).unwrap(),
        Path::new("/run")
    );
    f.assert_contained();
}

#[test]
fn dir_replaced_by_file_and_back_and_rewrites() {
    let f = fixture();
    f.apply(&[
        E::Dir("a/"),
        E::File("a/f", "1"),
        E::File("a", "now a file"),
        E::Dir("a/"),
        E::File("a/g", "2"),
        E::Dir("bin/"),
        E::File("bin/sh", "first"),
        E::File("bin/sh", "second"),
        E::File("bin/sh", "third"),
    ])
    .unwrap();
    assert!(fs_err::metadata(f.layer.join("a")).unwrap().is_dir());
    assert!(!f.layer.join("a/f").exists());
    assert_eq!(fs_err::read_to_string(f.layer.join("a/g")).unwrap(), "2");
    assert_eq!(
        fs_err::read_to_string(f.layer.join("bin/sh")).unwrap(),
        "third"
    );
}

#[test]
fn whiteouts_opaque_and_overlay_xattrs() {
    let f = fixture();
    f.apply(&[
        E::Mode(".wh.gone", 0o600),
        E::Pax(&[
            ("SCHILY.xattr.trusted.overlay.opaque", "y"),
            ("SCHILY.xattr.user.overlay.redirect", "/x"),
            ("SCHILY.xattr.user.keep", "v"),
        ]),
        E::Dir("d/"),
        E::Mode("d/.wh..wh..opq", 0o600),
        E::Dir("plain/"),
    ])
    .unwrap();
    let wh = fs_err::symlink_metadata(f.layer.join("gone")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    let d = read_xattrs(&f.layer.join("d")).unwrap();
    assert_eq!(
        d,
        vec![
            (b"user.keep".to_vec(), b"v".to_vec()),
            (b"user.overlay.opaque".to_vec(), b"y".to_vec())
        ]
    );
    assert!(read_xattrs(&f.layer.join("plain")).unwrap().is_empty());
    // And back: the tar has the `.wh.` spellings, not the xattr.
    let mut tar = Vec::new();
    write_tar(&f.layer, &mut tar).unwrap();
    let names = entry_names(&tar);
    // Sorted by the names on disk: `gone` after `d`.
    assert_eq!(names, ["d/", "d/.wh..wh..opq", ".wh.gone", "plain/"]);
}

fn entry_names(tar: &[u8]) -> Vec<String> {
    let mut r = crate::layer::reader::TarReader::new(tar);
    let mut out = Vec::new();
    while let Some(e) = r.next_entry().unwrap() {
        out.push(String::from_utf8(e.path).unwrap());
    }
    out
}

#[test]
fn round_trip_is_byte_identical() {
    let f = fixture();
    let long = format!("deep/{}/file", "n".repeat(150));
    let entries = vec![
        E::Dir("etc/"),
        E::File("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
        E::Hard("etc/passwd-link", "etc/passwd"),
        E::Sym("etc/link", "passwd"),
        E::Pax(&[("SCHILY.xattr.user.k", "v")]),
        E::File("x", "with xattr"),
        E::File(&long, "long name"),
        E::Mode(".wh.removed", 0o600),
    ];
    let input = tar_of(&entries);
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let (raw, _, blob) = compress(&input[..], c, Vec::new()).unwrap();
        let stats = apply(&blob[..], &f.layer).unwrap();
        assert_eq!(stats.diff_id.0, raw.digest);
        assert_eq!(stats.compression, c);
        assert_eq!(stats.blob.digest, crate::digest::Digest::of(&blob));
        assert_eq!(
            fs_err::read_to_string(f.layer.join(&long)).unwrap(),
            "long name"
        );
        let a = fs_err::metadata(f.layer.join("etc/passwd")).unwrap();
        let b = fs_err::metadata(f.layer.join("etc/passwd-link")).unwrap();
        assert_eq!(a.ino(), b.ino());

        let mut t1 = Vec::new();
        let s1 = write_tar(&f.layer, &mut t1).unwrap();
        let mut t1b = Vec::new();
        write_tar(&f.layer, &mut t1b).unwrap();
        assert_eq!(t1, t1b, "tar of a directory is deterministic");
        let second = f.outer.join("second");
        fs_err::create_dir(&second).unwrap();
        let s2 = apply(&t1[..], &second).unwrap();
        assert_eq!(s2.diff_id, s1.diff_id);
        let mut t2 = Vec::new();
        write_tar(&second, &mut t2).unwrap();
        assert_eq!(t1, t2, "apply then tar reproduces the tar");
        fs_err::remove_dir_all(&second).unwrap();
        fs_err::remove_dir_all(&f.layer).unwrap();
        fs_err::create_dir(&f.layer).unwrap();
    }
}

#[test]
fn corrupt_streams_fail_cleanly() {
    let f = fixture();
    let input = tar_of(&[E::File("a", &"x".repeat(100_000))]);
    let (_, _, gz) = compress(&input[..], Compression::Gzip, Vec::new()).unwrap();
    let err = apply(&gz[..gz.len() / 2], &f.layer).unwrap_err();
    let chain = crate::store::error_chain(&err);
    assert!(
        chain.contains("gzip stream is corrupt or truncated"),
        "{chain}"
    );
    let err = apply(&input[..1000], &f.layer).unwrap_err();
    assert!(matches!(err, LayerError::Tar { .. }), "{err}");
}

#[test]
fn clean_components_table() {
    type Case<'a> = (&'a [u8], Result<Vec<&'a [u8]>, &'a str>);
    let cases: &[Case<'_>] = &[
        (b"a/b", Ok(vec![b"a", b"b"])),
        (b"/a//./b/", Ok(vec![b"a", b"b"])),
        (b"./", Ok(vec![])),
        (b"../a", Err("path climbs above the root with '..'")),
        (b"a/../../b", Err("path climbs above the root with '..'")),
        (b"/../a", Err("path climbs above the root with '..'")),
        (b"a/../b", Ok(vec![b"b"])),
        (b"t/../t/tgt", Ok(vec![b"t", b"tgt"])),
    ];
    for (input, want) in cases {
        assert_eq!(
            &clean_components(input),
            want,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

/// Checklist 18 to 21: the containers/storage breakout matrix, unpacked
/// next to the victim (so the relative cases aim at it).
#[test]
fn breakout_matrix_leaves_the_victim_intact() {
    use crate::layer::tarspec::{assert_victim_intact, breakout_matrix, make_victim};
    let tmp = tempfile::tempdir().unwrap();
    let victim = make_victim(tmp.path());
    for (case, tar) in breakout_matrix(victim.to_str().unwrap()) {
        let dest = tmp.path().join("dest");
        fs_err::create_dir(&dest).unwrap();
        let result = apply(&tar[..], &dest);
        assert_victim_intact(&victim, case);
        let mut names: Vec<_> = fs_err::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["dest", "victim"], "{case}: {result:?}");
        remove_tree(&dest).unwrap();
    }
}

/// Checklist 19, 21, 23 and 26: root entries as symlinks, `symlink -> ..`
/// chains, whiteouts in every order with an opaque marker, and the odd but
/// legitimate shapes real images have.
#[test]
fn root_entries_whiteout_orders_and_odd_shapes() {
    let f = fixture();
    let outer = f.outer.to_str().unwrap().to_string();
    let t = |items: &[crate::layer::tarspec::T<'_>]| crate::layer::tarspec::tar(items);
    use crate::layer::tarspec::T;
    // 19: "./" or "/." as a symlink to a host dir: the root stays a dir.
    for root in ["./", "/.", "."] {
        apply(
            &t(&[T::Sym(root, &outer), T::File("x", b"in")])[..],
            &f.layer,
        )
        .unwrap();
        assert!(
            fs_err::symlink_metadata(&f.layer).unwrap().is_dir(),
            "{root}"
        );
        assert_eq!(fs_err::read_to_string(f.layer.join("x")).unwrap(), "in");
        f.assert_contained();
        remove_tree(&f.layer).unwrap();
        fs_err::create_dir(&f.layer).unwrap();
    }
    // 21: symlink -> .. then symlink/exploit/foo/bar: made inside.
    apply(
        &t(&[
            T::Sym("symlink", ".."),
            T::File("symlink/exploit/foo/bar", b"b"),
        ])[..],
        &f.layer,
    )
    .unwrap();
    assert!(f.layer.join("exploit/foo/bar").is_file());
    f.assert_contained();
    // 23: `.wh...` is refused; opaque and plain whiteouts in all orders.
    assert!(apply(&t(&[T::File(".wh...", b"")])[..], &f.layer).is_err());
    let orders: [&[T<'_>]; 3] = [
        &[
            T::File("o/.wh..wh..opq", b""),
            T::File("o/.wh.gone", b""),
            T::File("o/kept", b"k"),
        ],
        &[
            T::File("o/kept", b"k"),
            T::File("o/.wh.gone", b""),
            T::File("o/.wh..wh..opq", b""),
        ],
        &[
            T::File("o/.wh.gone", b""),
            T::File("o/kept", b"k"),
            T::File("o/.wh..wh..opq", b""),
        ],
    ];
    for items in orders {
        let dir = f.outer.join("orders");
        fs_err::create_dir(&dir).unwrap();
        apply(&t(items)[..], &dir).unwrap();
        assert!(crate::layer::whiteout::is_opaque_dir(&dir.join("o")));
        assert_eq!(fs_err::read_to_string(dir.join("o/kept")).unwrap(), "k");
        let gone = fs_err::symlink_metadata(dir.join("o/gone")).unwrap();
        assert!(gone.file_type().is_char_device() && gone.rdev() == 0);
        remove_tree(&dir).unwrap();
    }
    // 26: a link with more `..` than depth, `bin/sh -> dash` written three
    // times, a file named `..gitme`, a file under a non-directory parent.
    remove_tree(&f.layer).unwrap();
    fs_err::create_dir(&f.layer).unwrap();
    let dir = f.layer.clone();
    apply(
        &t(&[
            T::Sym("etc/ssl/cacerts", "../../../../../../../etc/pki/cacerts"),
            T::Sym("bin/sh", "dash"),
            T::Sym("bin/sh", "dash"),
            T::Sym("bin/sh", "bash"),
            T::File("..gitme", b"g"),
            T::File("plain", b"p"),
            T::File("plain/under", b"u"),
        ])[..],
        &dir,
    )
    .unwrap();
    assert_eq!(
        fs_err::read_link(dir.join("bin/sh")).unwrap(),
        Path::new("bash")
    );
    assert_eq!(fs_err::read_to_string(dir.join("..gitme")).unwrap(), "g");
    assert_eq!(
        fs_err::read_to_string(dir.join("plain/under")).unwrap(),
        "u"
    );
    f.assert_contained();
}

/// Checklist 24: overlay xattrs from a tar are dropped, other ones (a file
/// capability included) are set or, where the kernel refuses, listed.
#[test]
fn overlay_xattrs_dropped_capabilities_kept_or_listed() {
    use crate::layer::tarspec::{tar, T};
    let f = fixture();
    let layer = tar(&[
        T::Pax(&[
            ("SCHILY.xattr.user.overlay.opaque", "y"),
            ("SCHILY.xattr.user.overlay.redirect", "/etc"),
            ("SCHILY.xattr.trusted.overlay.opaque", "y"),
            // VFS_CAP_REVISION_2, cap_net_bind_service permitted.
            (
                "SCHILY.xattr.security.capability",
                "\u{1}\0\0\u{2}\0\u{4}\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
            ),
            ("SCHILY.xattr.user.keep", "v"),
        ]),
        T::Dir("d/"),
    ]);
    let stats = apply(&layer[..], &f.layer).unwrap();
    let set = read_xattrs(&f.layer.join("d")).unwrap();
    let names: Vec<_> = set
        .iter()
        .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains("overlay")), "{names:?}");
    assert!(names.contains(&"user.keep".to_string()), "{names:?}");
    let skipped: Vec<_> = stats
        .skipped_xattrs
        .iter()
        .map(|(_, n)| n.as_str())
        .collect();
    assert!(
        names.contains(&"security.capability".to_string())
            || skipped.contains(&"security.capability"),
        "{names:?} {skipped:?}"
    );
}
