//! Hostile and odd layers through `load`, `import` and ADD, seen the way a
//! user sees them: the tree a container gets, on every storage driver.
//! Every archive here is written by `common::tarspec` from a readable
//! description.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::tarspec::{
    self, append, bomb, docker_archive, docker_archive_members, gnu_tar_list, plain_layers,
    smuggling_tar, tar, T,
};
use common::{busybox_tar, context, Strata, DRIVERS};

/// Load an image made of busybox and then `layers` (plain tars).
fn load(s: &Strata, dir: &Path, tag: &str, layers: &[Vec<u8>]) {
    let mut all = vec![fs_err::read(busybox_tar()).unwrap()];
    all.extend(layers.iter().cloned());
    let blobs = plain_layers(all);
    let archive = dir.join(format!("{tag}.tar"));
    docker_archive(&archive, &format!("{tag}:latest"), &blobs);
    s.run(&["load", "-i", archive.to_str().unwrap()]).success();
}

/// What `sh -c script` prints in a container of `image` on `driver`.
fn sh(s: &Strata, driver: &str, image: &str, script: &str) -> String {
    s.run(&[
        "--storage-driver",
        driver,
        "run",
        "--rm",
        image,
        "sh",
        "-c",
        script,
    ])
    .success()
    .stdout
}

#[test]
fn rootless_layer_repeated_pax_keys_read_as_gnu_tar_in_load_and_add() {
    let evil = smuggling_tar();
    let listed = gnu_tar_list(&evil).expect("GNU tar lists it");
    let names: Vec<&str> = listed.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(names, ["carrier", "after"]);

    let s = Strata::new();
    let dir = tempfile::tempdir().unwrap();
    load(&s, dir.path(), "smuggle", std::slice::from_ref(&evil));
    let out = sh(
        &s,
        "overlay",
        "smuggle",
        "ls / | grep -c pwn22; wc -c < /carrier; cat /after",
    );
    assert_eq!(out, "0\n1024\nafter", "load");

    let ctx = context(&[("Dockerfile", "FROM smuggle\nADD evil.tar /x/\n")]);
    fs_err::write(ctx.path().join("evil.tar"), &evil).unwrap();
    s.run(&["build", "-t", "added", ctx.path().to_str().unwrap()])
        .success();
    let out = sh(&s, "overlay", "added", "ls /x; wc -c < /x/carrier");
    assert_eq!(out, "after\ncarrier\n1024\n", "ADD");
}

#[test]
fn rootless_layer_whiteouts_give_one_tree_on_every_driver() {
    let s = Strata::new();
    let dir = tempfile::tempdir().unwrap();
    let lower = tar(&[
        T::Dir("w/"),
        T::File("w/keep", b"k"),
        T::Dir("w/sd/"),
        T::File("w/sd/g", b"deleted"),
    ]);
    // The whiteout hides the lower w/sd; what this layer puts there stays,
    // whatever the order of the entries (OCI image spec).
    let cases: [(&str, Vec<u8>); 3] = [
        (
            "whiteout-then-dir",
            tar(&[
                T::File("w/.wh.sd", b""),
                T::Dir("w/sd/"),
                T::File("w/sd/new", b"n"),
            ]),
        ),
        (
            "whiteout-then-file",
            tar(&[T::File("w/.wh.sd", b""), T::File("w/sd/new", b"n")]),
        ),
        (
            "file-then-whiteout",
            tar(&[
                T::Dir("w/sd/"),
                T::File("w/sd/new", b"n"),
                T::File("w/.wh.sd", b""),
            ]),
        ),
    ];
    for (name, upper) in &cases {
        load(&s, dir.path(), name, &[lower.clone(), upper.clone()]);
        for driver in DRIVERS {
            let out = sh(&s, driver, name, "find /w | sort");
            assert_eq!(out, "/w\n/w/keep\n/w/sd\n/w/sd/new\n", "{name} on {driver}");
        }
    }

    // An opaque marker at a layer's root hides every layer below it.
    let base = fs_err::read(busybox_tar()).unwrap();
    let old = tar(&[T::Dir("old/"), T::File("old/f", b"old")]);
    let top = append(&base, &[T::File(".wh..wh..opq", b""), T::File("new", b"n")]);
    let blobs = plain_layers(vec![old, top]);
    let archive = dir.path().join("opaque.tar");
    docker_archive(&archive, "rootopaque:latest", &blobs);
    s.run(&["load", "-i", archive.to_str().unwrap()]).success();
    for driver in DRIVERS {
        let out = sh(&s, driver, "rootopaque", "ls -d /old /new 2>&1; true");
        assert_eq!(
            out, "ls: /old: No such file or directory\n/new\n",
            "root opaque on {driver}"
        );
    }
}

#[test]
fn rootless_layer_hardlink_target_with_dotdot_inside_is_accepted() {
    let s = Strata::new();
    let dir = tempfile::tempdir().unwrap();
    let layer = tar(&[
        T::Dir("t/"),
        T::File("t/tgt", b"target"),
        T::Hard("link", "t/../t/tgt"),
    ]);
    load(&s, dir.path(), "hl", &[layer]);
    let out = sh(&s, "overlay", "hl", "cat /link; stat -c %h /t/tgt");
    assert_eq!(out, "target2\n");
}

/// Files and directories under the store's `tmp/`.
fn staged(s: &Strata) -> Vec<String> {
    match fs_err::read_dir(s.root.path().join("tmp")) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".lock"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn rootless_layer_bombs_stop_at_the_cap_through_load_and_add() {
    let dir = tempfile::tempdir().unwrap();
    for zstd in [false, true] {
        let what = if zstd { "zstd" } else { "gzip" };
        // 64 MiB inside a few KiB; the cap is 8 MiB.
        let (blob, diff) = bomb(zstd, 64 << 20);
        assert!(blob.len() < 200_000, "{what}: {}", blob.len());
        let s = Strata::new();
        let archive = dir.path().join(format!("{what}.tar"));
        docker_archive(&archive, "bomb:latest", &[(blob.clone(), diff.clone())]);
        let out = s
            .cmd()
            .env("STRATA_MAX_LAYER_SIZE", "8m")
            .args(["load", "-i", archive.to_str().unwrap()])
            .output()
            .unwrap();
        let run = common::Run::of(out);
        assert_eq!(run.code, Some(125), "{what}: {run:#?}");
        assert!(
            run.stderr.contains("exceeds 8388608 bytes") && run.stderr.contains(&diff),
            "{what}: the error names the cap and the layer: {}",
            run.stderr
        );
        assert_eq!(staged(&s), Vec::<String>::new(), "{what}: staging left");
        s.run(&["system", "check"]).success();

        // The same bytes ADDed in a build.
        s.import_busybox("busybox");
        let ctx = context(&[("Dockerfile", "FROM busybox\nADD bomb.tar.x /b/\n")]);
        fs_err::write(ctx.path().join("bomb.tar.x"), &blob).unwrap();
        let out = s
            .cmd()
            .env("STRATA_MAX_LAYER_SIZE", "8m")
            .args(["build", "-t", "b", ctx.path().to_str().unwrap()])
            .output()
            .unwrap();
        let run = common::Run::of(out);
        assert_ne!(run.code, Some(0), "{what}: {run:#?}");
        assert!(
            run.stderr.contains("exceeds 8388608 bytes") && run.stderr.contains("bomb.tar.x"),
            "{what}: {}",
            run.stderr
        );
        assert_eq!(staged(&s), Vec::<String>::new(), "{what}: staging left");
    }
}

#[test]
fn rootless_layer_gzip_bomb_stops_at_the_default_ratio() {
    // 320 MiB of zeros in about 320 KiB: over the default 100x once past
    // the 256 MiB the ratio allows unchecked.
    let (blob, diff) = bomb(false, 320 << 20);
    let s = Strata::new();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("bomb.tar");
    docker_archive(&archive, "bomb:latest", &[(blob, diff)]);
    let run = s.run(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(run.code, Some(125), "{run:#?}");
    assert!(run.stderr.contains("decompression bomb"), "{}", run.stderr);
    assert_eq!(staged(&s), Vec::<String>::new());
}

/// `tarspec` keeps its own helpers honest: what it writes, GNU tar reads.
#[test]
fn rootless_layer_fixtures_are_real_tars() {
    let t = tar(&[T::Dir("d/"), T::File("d/f", b"x"), T::Sym("l", "d/f")]);
    let list = gnu_tar_list(&t).unwrap();
    assert_eq!(
        list,
        vec![
            ('d', "d/".to_string(), 0),
            ('-', "d/f".to_string(), 1),
            ('l', "l".to_string(), 0)
        ]
    );
    assert_eq!(tarspec::BLOCK, 512);
}

#[test]
fn rootless_layer_paths_resolve_through_an_earlier_layers_symlink() {
    let s = Strata::new();
    let dir = tempfile::tempdir().unwrap();
    // Debian's own shape: var/run -> /run in one layer, a file under
    // var/run in a later one, whose tar does not list var/run.
    let links = tar(&[
        T::Dir("var/"),
        T::Sym("var/run", "/run"),
        T::Dir("run/"),
        T::Sym("up", "../../.."),
    ]);
    let later = tar(&[
        T::File("var/run/x/f", b"pid\n"),
        T::File("up/etc/f", b"in\n"),
    ]);
    load(&s, dir.path(), "links", &[links, later]);
    for driver in DRIVERS {
        let out = sh(
            &s,
            driver,
            "links",
            "cat /run/x/f /etc/f; readlink /var/run; ls /var",
        );
        assert_eq!(out, "pid\nin\n/run\nrun\n", "{driver}");
    }
}

/// Checklist 18 (and 20, 21): the containers/storage breakout matrix
/// through `load` and through ADD: the victim never changes.
#[test]
fn rootless_layer_breakout_matrix_through_load_and_add() {
    use common::tarspec::{assert_victim_intact, breakout_matrix, make_victim};
    let work = tempfile::tempdir().unwrap();
    let victim = make_victim(work.path());
    let s = Strata::new();
    s.import_busybox("busybox");
    for (i, (case, layer)) in breakout_matrix(victim.to_str().unwrap())
        .into_iter()
        .enumerate()
    {
        let archive = work.path().join("case.tar");
        docker_archive(
            &archive,
            &format!("case{i}:latest"),
            &plain_layers(vec![layer.clone()]),
        );
        let run = s.run(&["load", "-i", archive.to_str().unwrap()]);
        assert_victim_intact(&victim, case);
        assert!(
            run.code == Some(0) || run.code == Some(125),
            "{case}: {run:#?}"
        );

        let ctx = context(&[("Dockerfile", "FROM busybox\nADD case.tar /x/\n")]);
        fs_err::write(ctx.path().join("case.tar"), &layer).unwrap();
        let run = s.run(&["build", "-t", "added", ctx.path().to_str().unwrap()]);
        assert_victim_intact(&victim, case);
        assert!(!run.stderr.contains("panicked"), "{case}: {run:#?}");
    }
    let names: Vec<_> = fs_err::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "something appeared next to the victim: {names:?}"
    );
}

/// Checklist 28 (and 27's truncated stream): garbage and cut streams
/// through every compression fail with a reading error, and leave no
/// partial layer behind.
#[test]
fn rootless_layer_garbage_blobs_fail_cleanly_in_every_compression() {
    use std::io::Write;
    let garbage: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let good = tar(&[T::File("f", &garbage)]);
    let gz = |d: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(d).unwrap();
        e.finish().unwrap()
    };
    let zst = |d: &[u8]| zstd::stream::encode_all(d, 3).unwrap();
    let bz = |d: &[u8]| {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        e.write_all(d).unwrap();
        e.finish().unwrap()
    };
    let xz = |d: &[u8]| {
        let mut out = Vec::new();
        lzma_rs::xz_compress(&mut &d[..], &mut out).unwrap();
        out
    };
    let mut cases: Vec<(String, Vec<u8>)> = vec![("plain garbage".into(), garbage.clone())];
    for (name, f) in [
        ("gzip", &gz as &dyn Fn(&[u8]) -> Vec<u8>),
        ("zstd", &zst),
        ("bzip2", &bz),
        ("xz", &xz),
    ] {
        cases.push((format!("{name} of garbage"), f(&garbage)));
        let whole = f(&good);
        cases.push((
            format!("{name} cut short"),
            whole[..whole.len() / 2].to_vec(),
        ));
    }
    let s = Strata::new();
    let dir = tempfile::tempdir().unwrap();
    for (case, blob) in cases {
        let archive = dir.path().join("g.tar");
        let diff = common::tarspec::sha256_hex(&good);
        docker_archive(&archive, "garbage:latest", &[(blob, diff)]);
        let run = s.run(&["load", "-i", archive.to_str().unwrap()]);
        assert_eq!(run.code, Some(125), "{case}: {run:#?}");
        let said = ["corrupt", "truncated", "checksum", "end of", "not a tar"];
        assert!(
            said.iter().any(|w| run.stderr.contains(w)),
            "{case}: {}",
            run.stderr
        );
        assert_eq!(staged(&s), Vec::<String>::new(), "{case}: staging left");
        let layers = fs_err::read_dir(s.root.path().join("layers"))
            .unwrap()
            .count();
        assert_eq!(layers, 0, "{case}: a layer was kept");
    }
}

/// Checklist 26 (BuildKit testSymlinkDestination): a destination that is a
/// symlink with `..` in the image is followed inside the image.
#[test]
fn rootless_layer_copy_to_a_symlink_with_dotdot_lands_inside() {
    let s = Strata::new();
    let dir = tempfile::tempdir().unwrap();
    let layer = tar(&[T::Dir("tmp/dest/"), T::Sym("symlink", "../tmp/dest")]);
    load(&s, dir.path(), "linked", &[layer]);
    let ctx = context(&[
        ("Dockerfile", "FROM linked\nCOPY foo /symlink/\n"),
        ("foo", "f\n"),
    ]);
    s.run(&["build", "-t", "copied", ctx.path().to_str().unwrap()])
        .success();
    let out = sh(
        &s,
        "overlay",
        "copied",
        "cat /tmp/dest/foo; readlink /symlink",
    );
    assert_eq!(out, "f\n../tmp/dest\n");
}

/// Overlay xattr records in a pulled layer steer nothing here (dropped on
/// unpack: the directory is not made opaque), and `save` writes the layer
/// as the bytes it came in, records included: its diff id, and so the
/// image id, names those bytes (Docker keeps them too, through tar-split).
#[test]
fn rootless_layer_overlay_xattr_records_are_dropped_on_unpack_and_kept_by_save() {
    let s = Strata::new();
    let dir = tempfile::tempdir().unwrap();
    let lower = tar(&[T::Dir("d/"), T::File("d/lower", b"l")]);
    let upper = tar(&[
        T::Pax(&[
            ("SCHILY.xattr.trusted.overlay.opaque", "y"),
            ("SCHILY.xattr.user.overlay.opaque", "y"),
        ]),
        T::Dir("d/"),
        T::File("d/upper", b"u"),
    ]);
    load(&s, dir.path(), "xattrs", &[lower, upper.clone()]);
    for driver in DRIVERS {
        assert_eq!(
            sh(&s, driver, "xattrs", "ls /d"),
            "lower\nupper\n",
            "{driver}"
        );
    }
    let out = dir.path().join("saved.tar");
    s.run(&["save", "-o", out.to_str().unwrap(), "xattrs"])
        .success();
    let want = common::tarspec::sha256_hex(&upper);
    let mut archive = tar::Archive::new(fs_err::File::open(&out).unwrap());
    let mut found = false;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        found |= common::tarspec::sha256_hex(&bytes) == want;
    }
    assert!(found, "the saved archive holds the layer's own bytes");
}

/// The archive `load` reads is indexed by the same reader: a member hidden
/// in another's data by a repeated PAX `size` (here a second manifest.json,
/// naming another tag) is data, as GNU tar lists it.
#[test]
fn rootless_layer_load_reads_the_outer_archive_as_gnu_tar_does() {
    let members = docker_archive_members(
        "good:latest",
        &plain_layers(vec![tar(&[T::File("f", b"x")])]),
    );
    let (_, manifest) = members.last().unwrap();
    let evil = String::from_utf8_lossy(manifest).replace("good:latest", "evil:latest");
    let hidden = tar(&[T::File("manifest.json", evil.as_bytes())]);
    let hidden = &hidden[..hidden.len() - 1024];
    let size = hidden.len().to_string();
    let sizes = [("size", "0"), ("size", size.as_str())];
    let mut items: Vec<T<'_>> = members.iter().map(|(n, d)| T::File(n, d)).collect();
    items.push(T::Pax(&sizes));
    items.push(T::Raw {
        name: "carrier",
        flag: b'0',
        size: 0,
        data: hidden,
    });
    let bytes = tar(&items);
    let listed = gnu_tar_list(&bytes).unwrap();
    let manifests = listed
        .iter()
        .filter(|(_, n, _)| n == "manifest.json")
        .count();
    assert_eq!(manifests, 1, "{listed:?}");

    let s = Strata::new();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("outer.tar");
    fs_err::write(&archive, &bytes).unwrap();
    let out = s.run(&["load", "-i", archive.to_str().unwrap()]).success();
    assert!(out.stdout.contains("good:latest"), "{out:#?}");
    let images = s.run(&["images"]).success().stdout;
    assert!(!images.contains("evil"), "{images}");
}
