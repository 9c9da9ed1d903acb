use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::*;
use crate::build::context::tests::make_tree;

/// A listing of a tree: `PATH TYPE MODE UID:GID [-> TARGET | CONTENT]`,
/// sorted, the root left out.
fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut names: Vec<_> = fs_err::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        for n in names {
            let p = dir.join(&n);
            let m = fs_err::symlink_metadata(&p).expect("lstat");
            let rel = p.strip_prefix(root).expect("rel").display().to_string();
            let head = format!("{rel} {:o} {}:{}", m.mode() & 0o7777, m.uid(), m.gid());
            if m.file_type().is_symlink() {
                let t = fs_err::read_link(&p).expect("readlink");
                out.push(format!("{rel} -> {}", t.display()));
            } else if m.is_dir() {
                out.push(format!("{head} dir"));
                walk(root, &p, out);
            } else {
                let c = fs_err::read_to_string(&p).expect("read");
                out.push(format!("{head} {c:?}"));
            }
        }
    }
    walk(root, root, &mut out);
    out
}

fn copy(
    ctx_spec: &str,
    root_spec: &str,
    sources: &[&str],
    dest: &str,
    opts: &CopyOptions,
) -> (tempfile::TempDir, Result<CopyStats, CopyError>) {
    let ctx_dir = tempfile::tempdir().expect("ctx");
    make_tree(ctx_dir.path(), ctx_spec);
    let rootfs = tempfile::tempdir().expect("rootfs");
    make_tree(rootfs.path(), root_spec);
    let ctx = Context::open(ctx_dir.path(), None).expect("open");
    let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    let sel = ctx.select(&sources, &[]).expect("select");
    let r = copy_sources(&ctx, &sel, rootfs.path(), dest, opts);
    (rootfs, r)
}

const CTX: &str = "
    f a.txt A
    x a.txt 640
    f b.txt B
    f dir/x/y.txt Y
    x dir/x 700
    l dir/link ../a.txt
";

#[test]
fn docker_copy_semantics_table() {
    let plain = CopyOptions::default();
    let cases: &[(&[&str], &str, &str, &[&str])] = &[
        // A file to a new path is that path.
        (&["a.txt"], "/new.txt", "", &["new.txt 640 0:0 \"A\""]),
        // A file to an existing directory lands inside it.
        (
            &["a.txt"],
            "/etc",
            "d etc",
            &["etc 755 0:0 dir", "etc/a.txt 640 0:0 \"A\""],
        ),
        // A trailing slash makes a directory, parents are created.
        (
            &["a.txt"],
            "/opt/app/",
            "",
            &[
                "opt 755 0:0 dir",
                "opt/app 755 0:0 dir",
                "opt/app/a.txt 640 0:0 \"A\"",
            ],
        ),
        // Several sources mean a directory.
        (
            &["a.txt", "b.txt"],
            "/d",
            "",
            &[
                "d 755 0:0 dir",
                "d/a.txt 640 0:0 \"A\"",
                "d/b.txt 644 0:0 \"B\"",
            ],
        ),
        // A directory copies its content, symlinks stay symlinks.
        (
            &["dir"],
            "/app",
            "",
            &[
                "app 755 0:0 dir",
                "app/link -> ../a.txt",
                "app/x 700 0:0 dir",
                "app/x/y.txt 644 0:0 \"Y\"",
            ],
        ),
        // A relative destination is from the root (WORKDIR is joined by
        // the caller), and an existing file is replaced.
        (&["b.txt"], "a.txt", "f a.txt old", &["a.txt 644 0:0 \"B\""]),
        // A symlink at the destination is followed inside the root.
        (
            &["a.txt"],
            "/app/",
            "d usr/src/app\nl app /usr/src/app",
            &[
                "app -> /usr/src/app",
                "usr 755 0:0 dir",
                "usr/src 755 0:0 dir",
                "usr/src/app 755 0:0 dir",
                "usr/src/app/a.txt 640 0:0 \"A\"",
            ],
        ),
        // A symlink at a file's own place is replaced, never written through.
        (
            &["b.txt"],
            "/etc/passwd",
            "f etc/shadow secret\nl etc/passwd shadow",
            &[
                "etc 755 0:0 dir",
                "etc/passwd 644 0:0 \"B\"",
                "etc/shadow 644 0:0 \"secret\"",
            ],
        ),
    ];
    for (sources, dest, root_spec, want) in cases {
        let (rootfs, r) = copy(CTX, root_spec, sources, dest, &plain);
        r.unwrap_or_else(|e| panic!("{sources:?} -> {dest}: {e:?}"));
        assert_eq!(
            listing(rootfs.path()),
            *want,
            "{sources:?} -> {dest} over {root_spec:?}"
        );
    }
}

#[test]
fn escaping_symlinks_in_the_image_stay_inside() {
    let outside = tempfile::tempdir().expect("outside");
    let spec = format!(
        "l app /../../../../{}\nl abs {}\nd etc",
        outside.path().display(),
        outside.path().display()
    );
    for dest in ["/app/", "/abs/", "/etc/../../../../x/"] {
        let (rootfs, r) = copy(CTX, &spec, &["a.txt"], dest, &CopyOptions::default());
        r.unwrap_or_else(|e| panic!("{dest}: {e:?}"));
        assert_eq!(
            fs_err::read_dir(outside.path()).expect("outside").count(),
            0,
            "{dest} wrote outside the root"
        );
        assert!(
            listing(rootfs.path())
                .iter()
                .any(|l| l.ends_with("a.txt 640 0:0 \"A\"")),
            "{dest}"
        );
    }
}

#[test]
fn chown_chmod_parents_and_times() {
    let opts = CopyOptions {
        chown: Some((1000, 1001)),
        chmod: Some(0o750),
        ..Default::default()
    };
    let (rootfs, r) = copy(CTX, "d srv", &["dir"], "/srv/new/deep", &opts);
    r.expect("copy");
    assert_eq!(
        listing(rootfs.path()),
        [
            "srv 755 0:0 dir",
            "srv/new 755 1000:1001 dir",
            "srv/new/deep 755 1000:1001 dir",
            "srv/new/deep/link -> ../a.txt",
            "srv/new/deep/x 750 1000:1001 dir",
            "srv/new/deep/x/y.txt 750 1000:1001 \"Y\"",
        ]
    );
    let link = fs_err::symlink_metadata(rootfs.path().join("srv/new/deep/link")).expect("lstat");
    assert_eq!((link.uid(), link.gid()), (1000, 1001));

    let parents = CopyOptions {
        parents: true,
        ..Default::default()
    };
    let (rootfs, r) = copy(
        CTX,
        "",
        &["dir/x/y.txt", "a.txt", "dir/./x"],
        "/p",
        &parents,
    );
    r.expect("copy");
    assert_eq!(
        listing(rootfs.path()),
        [
            "p 755 0:0 dir",
            "p/a.txt 640 0:0 \"A\"",
            "p/dir 755 0:0 dir",
            "p/dir/x 755 0:0 dir",
            "p/dir/x/y.txt 644 0:0 \"Y\"",
            "p/x 755 0:0 dir",
            "p/x/y.txt 644 0:0 \"Y\"",
        ]
    );

    // Modification times are kept, directories' too.
    let ctx_dir = tempfile::tempdir().expect("ctx");
    make_tree(ctx_dir.path(), "f d/sub/f.txt x");
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    for p in ["d/sub/f.txt", "d/sub"] {
        fs_err::File::open(ctx_dir.path().join(p))
            .expect("open")
            .set_modified(old)
            .expect("set mtime");
    }
    let rootfs = tempfile::tempdir().expect("rootfs");
    let ctx = Context::open(ctx_dir.path(), None).expect("open");
    let sel = ctx.select(&["d".into()], &[]).expect("select");
    copy_sources(&ctx, &sel, rootfs.path(), "/out", &CopyOptions::default()).expect("copy");
    for p in ["out/sub/f.txt", "out/sub"] {
        let m = fs_err::metadata(rootfs.path().join(p)).expect("stat");
        assert_eq!(m.mtime(), 1_000_000, "{p}");
    }
}

#[test]
fn hard_links_are_kept() {
    let ctx_dir = tempfile::tempdir().expect("ctx");
    make_tree(ctx_dir.path(), "f d/one data");
    fs_err::hard_link(ctx_dir.path().join("d/one"), ctx_dir.path().join("d/two")).expect("link");
    let rootfs = tempfile::tempdir().expect("rootfs");
    let ctx = Context::open(ctx_dir.path(), None).expect("open");
    let sel = ctx.select(&["d".into()], &[]).expect("select");
    let stats =
        copy_sources(&ctx, &sel, rootfs.path(), "/d", &CopyOptions::default()).expect("copy");
    assert_eq!((stats.files, stats.hardlinks), (1, 1));
    let a = fs_err::metadata(rootfs.path().join("d/one")).expect("one");
    let b = fs_err::metadata(rootfs.path().join("d/two")).expect("two");
    assert_eq!(a.ino(), b.ino());
}

#[test]
fn rootfs_sources_keep_owners() {
    let src = tempfile::tempdir().expect("src");
    make_tree(src.path(), "f app/bin X");
    fs_err::os::unix::fs::lchown(src.path().join("app/bin"), Some(7), Some(8)).expect("chown");
    fs_err::set_permissions(
        src.path().join("app/bin"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .expect("chmod");
    let ctx = Context::rootfs(src.path()).expect("rootfs");
    let sel = ctx.select(&["/app/bin".into()], &[]).expect("select");
    let rootfs = tempfile::tempdir().expect("rootfs");
    copy_sources(
        &ctx,
        &sel,
        rootfs.path(),
        "/usr/local/bin/",
        &CopyOptions::default(),
    )
    .expect("copy");
    let m = fs_err::metadata(rootfs.path().join("usr/local/bin/bin")).expect("stat");
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (7, 8, 0o4755));
}

/// A tar built by test code from (path, kind, content) triples.
fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(if *kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(5);
        h.set_gid(6);
        h.set_mtime(1_000);
        match kind {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                h.set_size(0);
                b.append_link(&mut h, path, data).expect("link");
            }
            _ => {
                h.set_size(data.len() as u64);
                // Bypass the builder's own path checks, to test ours.
                let name = h.as_old_mut();
                name.name[..path.len()].copy_from_slice(path.as_bytes());
                h.set_cksum();
                b.append(&h, data.as_bytes()).expect("append");
            }
        }
    }
    b.into_inner().expect("finish")
}

#[test]
fn add_unpacks_archives_of_every_compression() {
    use tar::EntryType as E;
    let tar = tar_of(&[
        ("top/", E::Directory, ""),
        ("top/f.txt", E::Regular, "hi"),
        ("top/.wh.secret", E::Regular, "plain"),
        ("top/l", E::Symlink, "f.txt"),
        ("top/h", E::Link, "top/f.txt"),
    ]);
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut e, &tar).expect("gz");
        e.finish().expect("gz")
    };
    let zst = zstd::encode_all(&tar[..], 0).expect("zstd");
    let bz = {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        std::io::Write::write_all(&mut e, &tar).expect("bz");
        e.finish().expect("bz")
    };
    let xz = {
        let mut out = Vec::new();
        lzma_rs::xz_compress(&mut &tar[..], &mut out).expect("xz");
        out
    };
    for (name, bytes) in [
        ("a.tar", &tar),
        ("a.tgz", &gz),
        ("a.zst", &zst),
        ("a.bz2", &bz),
        ("a.xz", &xz),
    ] {
        let ctx_dir = tempfile::tempdir().expect("ctx");
        fs_err::write(ctx_dir.path().join(name), bytes).expect("write");
        let ctx = Context::open(ctx_dir.path(), None).expect("open");
        let sel = ctx.select(&[name.into()], &[]).expect("select");
        let rootfs = tempfile::tempdir().expect("rootfs");
        let stats = add_sources(&ctx, &sel, rootfs.path(), "/x", &CopyOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(
            (stats.files, stats.hardlinks, stats.symlinks),
            (2, 1, 1),
            "{name}"
        );
        assert_eq!(
            listing(rootfs.path()),
            [
                "x 755 0:0 dir",
                "x/top 755 5:6 dir",
                "x/top/.wh.secret 644 5:6 \"plain\"",
                "x/top/f.txt 644 5:6 \"hi\"",
                "x/top/h 644 5:6 \"hi\"",
                "x/top/l -> f.txt",
            ],
            "{name}"
        );
    }
}

#[test]
fn add_copies_non_archives_and_refuses_unsafe_entries() {
    let ctx_dir = tempfile::tempdir().expect("ctx");
    make_tree(ctx_dir.path(), "f notes.gz not really gzip");
    let bad = tar_of(&[("../../evil", tar::EntryType::Regular, "x")]);
    fs_err::write(ctx_dir.path().join("bad.tar"), bad).expect("write");
    let ctx = Context::open(ctx_dir.path(), None).expect("open");
    let rootfs = tempfile::tempdir().expect("rootfs");
    let sel = ctx.select(&["notes.gz".into()], &[]).expect("select");
    add_sources(&ctx, &sel, rootfs.path(), "/n.gz", &CopyOptions::default()).expect("add");
    assert_eq!(listing(rootfs.path()), ["n.gz 644 0:0 \"not really gzip\""]);
    let sel = ctx.select(&["bad.tar".into()], &[]).expect("select");
    let err =
        add_sources(&ctx, &sel, rootfs.path(), "/b/", &CopyOptions::default()).expect_err("unsafe");
    assert!(matches!(err, CopyError::UnsafeEntry { .. }), "{err:?}");
}

#[test]
fn tar_header_detection() {
    let tar = tar_of(&[("f", tar::EntryType::Regular, "x")]);
    assert!(crate::layer::reader::is_header(&tar[..512]));
    let mut v7 = tar[..512].to_vec();
    v7[257..265].fill(0);
    // Recompute the checksum of the old-style header.
    let sum: u32 = v7
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    v7[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    assert!(crate::layer::reader::is_header(&v7));
    assert!(!crate::layer::reader::is_header(&[0u8; 512]));
    assert!(!crate::layer::reader::is_header(b"short"));
    assert!(!crate::layer::reader::is_header(&[b'a'; 512]));
}

#[test]
fn file_xattrs_are_copied_but_not_overlay_ones() {
    let ctx_dir = tempfile::tempdir().expect("ctx");
    make_tree(ctx_dir.path(), "f bin/tool x");
    let tool = ctx_dir.path().join("bin/tool");
    let flags = rustix::fs::XattrFlags::empty();
    if let Err(e) = rustix::fs::setxattr(&tool, "user.strata.test", b"v", flags) {
        panic!("this test needs user xattrs on the temp dir's file system: {e}");
    }
    rustix::fs::setxattr(&tool, "user.overlay.opaque", b"y", flags).expect("overlay xattr");
    let ctx = Context::open(ctx_dir.path(), None).expect("open");
    let sel = ctx.select(&["bin/tool".into()], &[]).expect("select");
    let rootfs = tempfile::tempdir().expect("rootfs");
    copy_sources(&ctx, &sel, rootfs.path(), "/t", &CopyOptions::default()).expect("copy");
    let copied = rootfs.path().join("t");
    let mut v = [0u8; 8];
    let n = rustix::fs::getxattr(&copied, "user.strata.test", &mut v[..]).expect("copied xattr");
    assert_eq!(&v[..n], b"v");
    assert_eq!(
        rustix::fs::getxattr(&copied, "user.overlay.opaque", &mut v[..]),
        Err(rustix::io::Errno::NODATA)
    );
}

#[test]
fn symlinks_inside_copied_trees_and_archives_stay_inside() {
    let outside = tempfile::tempdir().expect("outside");
    let out = outside.path().display().to_string();
    // The image has /app/x pointing out of the root; the context has x/:
    // BuildKit refuses to copy a directory through a symlink below the
    // destination; the destination itself is followed, inside the root.
    let (_rootfs, r) = copy(
        CTX,
        &format!("d app\nl app/x /../../..{out}"),
        &["dir"],
        "/app",
        &CopyOptions::default(),
    );
    assert!(
        matches!(r, Err(CopyError::NotADirectory { ref path }) if path == Path::new("/app/x")),
        "{r:?}"
    );
    let (rootfs, r) = copy(
        CTX,
        &format!("l app /../../..{out}"),
        &["dir"],
        "/app",
        &CopyOptions::default(),
    );
    r.expect("copy");
    assert!(rootfs
        .path()
        .join(out.trim_start_matches('/'))
        .join("x/y.txt")
        .exists());
    assert_eq!(
        fs_err::read_dir(outside.path()).expect("outside").count(),
        0
    );

    // A tar that plants a symlink, then writes through it: the link
    // resolves inside the destination, where its target does not exist,
    // so the write fails as in Docker ("open /l/evil: no such file").
    use tar::EntryType as E;
    let planting = tar_of(&[
        ("l", E::Symlink, out.as_str()),
        ("l/evil", E::Regular, "pwned"),
    ]);
    let climbing = tar_of(&[("h", E::Link, "../../../../etc/passwd")]);
    for (tar, unsafe_entry) in [(planting, false), (climbing, true)] {
        let ctx_dir = tempfile::tempdir().expect("ctx");
        fs_err::write(ctx_dir.path().join("t.tar"), &tar[..]).expect("write");
        let ctx = Context::open(ctx_dir.path(), None).expect("open");
        let sel = ctx.select(&["t.tar".into()], &[]).expect("select");
        let rootfs = tempfile::tempdir().expect("rootfs");
        let err = add_sources(&ctx, &sel, rootfs.path(), "/", &CopyOptions::default())
            .expect_err("refused");
        match unsafe_entry {
            true => assert!(matches!(err, CopyError::UnsafeEntry { .. }), "{err:?}"),
            false => assert!(err.to_string().contains("l: No such file"), "{err}"),
        }
        assert_eq!(
            fs_err::read_dir(outside.path()).expect("outside").count(),
            0
        );
        assert!(!rootfs.path().join(out.trim_start_matches('/')).exists());
    }
}

#[test]
fn sums_taken_while_copying_make_the_key_without_reading_again() {
    let ctx_dir = tempfile::tempdir().expect("ctx");
    make_tree(
        ctx_dir.path(),
        "f d/one first\nf d/sub/three third\nl d/l one",
    );
    fs_err::hard_link(ctx_dir.path().join("d/one"), ctx_dir.path().join("d/two")).expect("link");
    let ctx = Context::open(ctx_dir.path(), None).expect("open");
    let sel = ctx.select(&["d".into()], &[]).expect("select");
    let opts = CopyOptions {
        hash_contents: true,
        ..Default::default()
    };
    let expected = crate::build::context::digest_sources(&ctx, &sel, &opts, None).expect("digest");
    let rootfs = tempfile::tempdir().expect("rootfs");
    let stats = copy_sources(&ctx, &sel, rootfs.path(), "/d", &opts).expect("copy");
    // One sum per inode: the hard link shares the first name's.
    assert_eq!(stats.sums.len(), 2);
    // The file changes after the copy, in place: a key made by reading it
    // again would differ from what was copied.
    fs_err::write(ctx_dir.path().join("d/one"), "FIRST").expect("rewrite");
    let got = crate::build::context::Digester::load(None)
        .digest(&ctx, &sel, &opts, &stats.sums)
        .expect("key");
    assert_eq!(got, expected);
    let without = crate::build::context::digest_sources(&ctx, &sel, &opts, None).expect("digest");
    assert_ne!(without, expected, "the test must see the rewrite");
}

/// Expected ids taken from Docker BuildKit (docker.io 20.10), with bob as
/// `bob:x:1500:1600` and `grp:x:1700` added to busybox's files.
#[test]
fn chown_ids_as_buildkit() {
    let passwd = "root:x:0:0:root:/root:/bin/sh\nbob:x:1500:1600::/home/bob:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    let groups = "root:x:0:\ngrp:x:1700:\n";
    let cases = [
        (":", Some((0, 0))),
        ("1234:", Some((1234, 0))),
        (":5", Some((0, 5))),
        ("bob:", Some((1500, 0))),
        ("bob", Some((1500, 1600))),
        (":grp", Some((0, 1700))),
        ("1234", Some((1234, 1234))),
        ("1500", Some((1500, 1500))),
        ("nobody", Some((65534, 65534))),
        ("bob:grp", Some((1500, 1700))),
        ("1500:grp", Some((1500, 1700))),
        // `--chown=$U` with U unset: no --chown, owners kept.
        ("", None),
        // Names no entry has, taken from Docker BuildKit (docker.io 20.10:
        // `stat -c %u:%g` after `COPY --chown=... f /x` on a busybox base
        // with root, nobody and nogroup): an unknown user is 0:0, an
        // unknown group leaves the user's gid.
        ("nosuchuser", Some((0, 0))),
        ("nosuchuser:nosuchgroup", Some((0, 0))),
        ("1234:nosuchgroup", Some((1234, 1234))),
        ("nosuchuser:1234", Some((0, 1234))),
        ("nobody:nosuchgroup", Some((65534, 65534))),
        ("bob:nosuchgroup", Some((1500, 1600))),
        ("nosuchuser:grp", Some((0, 1700))),
    ];
    let parse = |spec: &str| match spec.split_once(':') {
        Some((u, g)) => UserGroup {
            user: u.into(),
            group: Some(g.into()),
        },
        None => UserGroup {
            user: spec.into(),
            group: None,
        },
    };
    for (spec, want) in cases {
        assert_eq!(
            chown_ids(&parse(spec), passwd, groups),
            Ok(want),
            "{spec:?}"
        );
    }
    // A name needs its file: BuildKit fails with `open /etc/passwd: no such
    // file or directory` (or /etc/group) where the image lacks it, while a
    // number needs none.
    assert_eq!(
        chown_ids(&parse("nosuchuser"), "", groups),
        Err(UserError::NoUser("nosuchuser".into()))
    );
    assert_eq!(
        chown_ids(&parse("nobody:nosuchgroup"), passwd, ""),
        Err(UserError::NoGroup("nosuchgroup".into()))
    );
    assert_eq!(chown_ids(&parse("1234:5"), "", ""), Ok(Some((1234, 5))));
    assert_eq!(
        chown_ids(&parse("1234:nosuchgroup"), "", groups),
        Ok(Some((1234, 1234)))
    );
}

/// The errors and the following taken from Docker BuildKit (docker.io
/// 20.10) on the same trees.
#[test]
fn symlinks_meeting_directories_as_buildkit() {
    let plain = CopyOptions::default();
    let base = "f dst/x/keep keep\nd elsewhere\nl dst/sub /elsewhere\nd real\nl link /real\nf d2/sub/plain p";
    // A context symlink (or file) where the image has a directory.
    let (rootfs, r) = copy("l a/x target", base, &["a/"], "/dst/", &plain);
    assert_eq!(
        r.expect_err("symlink over dir").to_string(),
        "cannot replace to directory /dst/x with file"
    );
    assert!(rootfs.path().join("dst/x/keep").exists());
    let (_, r) = copy("f e/x h", base, &["e/x"], "/dst/", &plain);
    assert_eq!(
        r.expect_err("file over dir").to_string(),
        "cannot replace to directory /dst/x with file"
    );
    // A context directory where the image has a symlink or a file below
    // the destination.
    let (rootfs, r) = copy("f b/sub/file f", base, &["b/"], "/dst/", &plain);
    assert_eq!(
        r.expect_err("dir over symlink").to_string(),
        "cannot copy to non-directory: /dst/sub"
    );
    assert_eq!(
        fs_err::read_dir(rootfs.path().join("elsewhere"))
            .expect("ls")
            .count(),
        0
    );
    let (_, r) = copy("f k/plain/in i", base, &["k/"], "/d2/sub/", &plain);
    assert_eq!(
        r.expect_err("dir over file").to_string(),
        "cannot copy to non-directory: /d2/sub/plain"
    );
    // The destination itself a symlink: followed.
    for (src, dest) in [
        ("b/sub/", "/dst/sub"),
        ("b/sub", "/dst/sub/"),
        ("b/sub/file", "/dst/sub"),
    ] {
        let (rootfs, r) = copy("f b/sub/file f", base, &[src], dest, &plain);
        r.expect(src);
        assert!(
            rootfs.path().join("elsewhere/file").exists(),
            "{src} {dest}"
        );
    }
    let (rootfs, r) = copy("f c/g g", base, &["c/"], "/link/", &plain);
    r.expect("c/");
    assert!(rootfs.path().join("real/g").exists());
    // A file or symlink over a symlink replaces it.
    let (rootfs, r) = copy("f f/sub s", base, &["f/"], "/dst/", &plain);
    r.expect("file over symlink");
    assert!(rootfs.path().join("dst/sub").is_file());
    let (rootfs, r) = copy("l h/sub abc", base, &["h/"], "/dst/", &plain);
    r.expect("symlink over symlink");
    assert_eq!(
        fs_err::read_link(rootfs.path().join("dst/sub")).expect("link"),
        Path::new("abc")
    );
}
