//! Bad input and a full disk (rootless tier): each ends with a clear error,
//! no partial layer, blob or temp file, earlier images intact, and the next
//! command works.

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::path::Path;

use common::Strata;

fn rootfs_tar(files: usize, size: usize, seed: u64) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let noise = common::noise(files * size, seed);
    for (i, data) in noise.chunks(size).enumerate() {
        let mut h = tar::Header::new_ustar();
        h.set_path(format!("f{i}")).unwrap();
        h.set_size(size as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Names under a store directory, sorted.
fn names(root: &Path, dir: &str) -> Vec<String> {
    let mut v: Vec<String> = fs_err::read_dir(root.join(dir))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn rootless_store_bad_streams_leave_nothing_behind() {
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new();
    let good = work.path().join("good.tar");
    fs_err::write(&good, rootfs_tar(3, 100, 1)).unwrap();
    strata
        .run(&["import", good.to_str().unwrap(), "good:1"])
        .success();
    let layers_before = names(strata.root.path(), "layers");
    let blobs_before = names(strata.root.path(), "blobs/sha256");

    let tar = rootfs_tar(50, 20_000, 2);
    let gz = gzip(&tar);
    let zst = zstd::encode_all(&tar[..], 3).unwrap();
    let flip = |mut v: Vec<u8>| {
        let mid = v.len() / 2;
        for b in &mut v[mid..mid + 64] {
            *b ^= 0x5a;
        }
        v
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "gzip-truncated",
            gz[..gz.len() / 2].to_vec(),
            "gzip stream is corrupt or truncated",
        ),
        ("gzip-corrupt", flip(gz.clone()), "corrupt"),
        (
            "zstd-truncated",
            zst[..zst.len() / 2].to_vec(),
            "zstd stream is corrupt or truncated",
        ),
        ("zstd-corrupt", flip(zst.clone()), "corrupt"),
        (
            "tar-truncated",
            tar[..tar.len() / 2 + 100].to_vec(),
            "reading layer tar",
        ),
    ];
    for (name, bytes, want) in cases {
        let file = work.path().join(name);
        fs_err::write(&file, bytes).unwrap();
        let run = strata.run(&["import", file.to_str().unwrap(), "bad:1"]);
        assert_ne!(run.code, Some(0), "{name}: {run:#?}");
        assert!(run.stderr.contains(want), "{name}: {}", run.stderr);
        assert!(
            !run.stderr.contains(char::REPLACEMENT_CHARACTER),
            "{name}: {}",
            run.stderr
        );
        assert_eq!(
            names(strata.root.path(), "tmp"),
            Vec::<String>::new(),
            "{name}: temp files left"
        );
        assert_eq!(
            names(strata.root.path(), "layers"),
            layers_before,
            "{name}: layer left"
        );
        assert_eq!(
            names(strata.root.path(), "blobs/sha256"),
            blobs_before,
            "{name}: blob left"
        );
    }
    // A docker-archive whose layer is not what its config says.
    let other = Strata::new();
    other
        .run(&["import", good.to_str().unwrap(), "good:1"])
        .success();
    let archive = work.path().join("archive.tar");
    other
        .run(&["save", "-o", archive.to_str().unwrap(), "good:1"])
        .success();
    let mut bytes = fs_err::read(&archive).unwrap();
    let at = bytes.windows(4).position(|w| w == b"f0\0\0").unwrap() + 512 + 10;
    bytes[at] ^= 0xff;
    let tampered = work.path().join("tampered.tar");
    fs_err::write(&tampered, &bytes).unwrap();
    let fresh = Strata::new();
    let run = fresh.run(&["load", "-i", tampered.to_str().unwrap()]);
    assert_ne!(run.code, Some(0), "{run:#?}");
    assert!(run.stderr.contains("digest mismatch"), "{}", run.stderr);
    assert_eq!(names(fresh.root.path(), "layers"), Vec::<String>::new());
    // Garbage is neither format.
    let garbage = work.path().join("garbage");
    fs_err::write(&garbage, b"this is not an archive at all").unwrap();
    assert_ne!(
        fresh.run(&["load", "-i", garbage.to_str().unwrap()]).code,
        Some(0)
    );

    strata.run(&["inspect", "good:1"]).success();
    let check = strata.run(&["system", "check"]).success();
    assert!(!check.stdout.contains("note:"), "{check:#?}");
    let ok = work.path().join("ok.tar.gz");
    fs_err::write(&ok, &gz).unwrap();
    strata
        .run(&["import", ok.to_str().unwrap(), "ok:1"])
        .success();
}

#[test]
fn rootless_store_full_disk_says_no_space_and_recovers() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let small = w.join("small.tar");
    let big = w.join("big.tar");
    fs_err::write(&small, rootfs_tar(2, 1000, 3)).unwrap();
    fs_err::write(&big, rootfs_tar(100, 40_000, 4)).unwrap();
    let mnt = w.join("mnt");
    fs_err::create_dir(&mnt).unwrap();
    let bin = common::strata_bin();
    // An 8 MiB tmpfs, mounted in strata's own mount namespace (so an
    // unprivileged user can make one), holds the store; a filler file
    // leaves it too little room for the big import.
    let script = r#"
set -u
mount -t tmpfs -o size=8m tmpfs "$MNT" || exit 3
export STRATA_ROOT="$MNT/root"
"$BIN" import "$SMALL" small:1 >/dev/null || exit 4
head -c 5000000 /dev/zero > "$MNT/filler"
"$BIN" import "$BIG" big:1 2>"$W/err"
echo $? > "$W/rc"
ls -A "$MNT/root/tmp" > "$W/tmp-left"
ls -A "$MNT/root/layers" > "$W/layers-left"
rm "$MNT/filler"
"$BIN" system check > "$W/check" || exit 5
"$BIN" import "$BIG" big:1 > /dev/null || exit 6
"$BIN" inspect small:1 > /dev/null || exit 7
"$BIN" system check >> "$W/check" || exit 8
"#;
    let strata = Strata::new();
    let out = strata
        .cmd()
        .args(["unshare", "--", "sh", "-c", script])
        .env("MNT", &mnt)
        .env("BIN", &bin)
        .env("SMALL", &small)
        .env("BIG", &big)
        .env("W", w)
        .output()
        .unwrap();
    let run = common::Run::of(out);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let err = fs_err::read_to_string(w.join("err")).unwrap();
    assert_ne!(
        fs_err::read_to_string(w.join("rc")).unwrap().trim(),
        "0",
        "the big import fit: {err}"
    );
    assert!(
        err.to_lowercase().contains("no space left on device"),
        "{err}"
    );
    assert_eq!(
        fs_err::read_to_string(w.join("tmp-left")).unwrap(),
        "",
        "temp files left"
    );
    // Only the small image's layer (directory and record) remains.
    assert_eq!(
        fs_err::read_to_string(w.join("layers-left"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    let check = fs_err::read_to_string(w.join("check")).unwrap();
    assert_eq!(check.matches("ok:").count(), 2, "{check}");
}

/// A raw tar entry: the name and link bytes go in as given (no `..` check).
fn raw_entry(
    b: &mut tar::Builder<Vec<u8>>,
    kind: tar::EntryType,
    name: &str,
    link: &str,
    data: &[u8],
) {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o777
    });
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_cksum();
    b.append(&h, data).unwrap();
}

#[test]
fn rootless_store_malicious_imports_stay_inside_the_layer() {
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    let work = tempfile::tempdir().unwrap();
    let outside = work.path().join("outside");
    fs_err::create_dir(&outside).unwrap();
    let canary = outside.join("canary");
    fs_err::write(&canary, "canary").unwrap();
    let out = outside.to_str().unwrap();
    let can = canary.to_str().unwrap();
    let through_root = format!("r{can}");
    type Entry<'a> = (tar::EntryType, &'a str, &'a str, &'a [u8]);
    let cases: Vec<(&str, Vec<Entry<'_>>)> = vec![
        (
            "dotdot",
            vec![(Regular, "../../../../../../../../x", "", b"pwned")],
        ),
        (
            "symlink dir escape",
            vec![
                (Symlink, "esc", out, b""),
                (Regular, "esc/canary", "", b"pwned"),
            ],
        ),
        (
            "symlink to /",
            vec![
                (Symlink, "r", "/", b""),
                (Regular, &through_root, "", b"pwned"),
            ],
        ),
        (
            "symlink up",
            vec![
                (Symlink, "up", "../../../../..", b""),
                (Regular, "up/canary", "", b"inside"),
            ],
        ),
        ("hardlink out", vec![(Link, "h", can, b"")]),
        (
            "chmod via symlink",
            vec![(Symlink, "c", can, b""), (Directory, "c", "", b"")],
        ),
        (
            "write via symlink",
            vec![(Symlink, "w", can, b""), (Regular, "w", "", b"pwned")],
        ),
    ];
    let strata = Strata::new();
    for (name, entries) in cases {
        let mut b = tar::Builder::new(Vec::new());
        for (kind, path, link, data) in entries {
            raw_entry(&mut b, kind, path, link, data);
        }
        let file = work.path().join("evil.tar");
        fs_err::write(&file, b.into_inner().unwrap()).unwrap();
        let run = strata.run(&["import", file.to_str().unwrap(), "evil:1"]);
        assert_eq!(
            fs_err::read_to_string(&canary).unwrap(),
            "canary",
            "{name}: {run:#?}"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = fs_err::metadata(&canary).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{name}: canary mode changed");
        assert_eq!(
            fs_err::read_dir(&outside).unwrap().count(),
            1,
            "{name}: a file appeared outside"
        );
        assert!(!work.path().join("x").exists(), "{name}");
    }
    let check = strata.run(&["system", "check"]).success();
    assert!(!check.stdout.contains("damaged"), "{check:#?}");
}

#[test]
fn rootless_store_full_disk_during_a_copy_says_no_space_and_recovers() {
    // Checklist case 40 (buildah commit.bats): the store on a 4 MiB tmpfs,
    // a build COPYing an 8 MiB random file. It fails once with "no space
    // left on device" (no retry loop), leaves no temp file or container,
    // the base image still works, and once there is room the same build
    // succeeds.
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let ctx = w.join("ctx");
    fs_err::create_dir(&ctx).unwrap();
    fs_err::write(ctx.join("Dockerfile"), "FROM busybox\nCOPY big /big\n").unwrap();
    let big = common::noise(8 << 20, 0);
    fs_err::write(ctx.join("big"), &big).unwrap();
    let mnt = w.join("mnt");
    fs_err::create_dir(&mnt).unwrap();
    let script = r#"
set -u
mount -t tmpfs -o size=4m tmpfs "$MNT" || exit 3
export STRATA_ROOT="$MNT/root"
"$BIN" import "$BUSYBOX" busybox >/dev/null || exit 4
"$BIN" build -t big "$CTX" >/dev/null 2>"$W/err"
echo $? > "$W/rc"
ls -A "$MNT/root/tmp" > "$W/tmp-left"
ls -A "$MNT/root/containers" > "$W/containers-left"
"$BIN" inspect busybox > /dev/null || exit 5
"$BIN" save -o "$W/saved.tar" busybox || exit 6
mount -o remount,size=64m "$MNT" || exit 7
"$BIN" build -t big "$CTX" > /dev/null || exit 8
"$BIN" system check > "$W/check" || exit 9
"#;
    let strata = Strata::new();
    let out = strata
        .cmd()
        .args(["unshare", "--", "sh", "-c", script])
        .env("MNT", &mnt)
        .env("BIN", common::strata_bin())
        .env("BUSYBOX", common::busybox_tar())
        .env("CTX", &ctx)
        .env("W", w)
        .output()
        .unwrap();
    let run = common::Run::of(out);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let err = fs_err::read_to_string(w.join("err")).unwrap();
    assert_eq!(
        fs_err::read_to_string(w.join("rc")).unwrap().trim(),
        "1",
        "{err}"
    );
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(err.matches("No space left").count(), 1, "{err}");
    for left in ["tmp-left", "containers-left"] {
        assert_eq!(
            fs_err::read_to_string(w.join(left)).unwrap(),
            "",
            "{left}: {err}"
        );
    }
    let check = fs_err::read_to_string(w.join("check")).unwrap();
    assert!(check.starts_with("ok:"), "{check}");
}

/// `common::busybox_tar` makes its tarball once per test process; the
/// process must not leave it behind in the temp directory. Runs this same
/// test binary as a child (with its own TMPDIR) that only asks for the
/// tarball, then looks at what the child left.
#[test]
fn busybox_tar_leaves_nothing_in_tmp_after_the_process() {
    if std::env::var_os("STRATA_BUSYBOX_TAR_CHILD").is_some() {
        assert!(common::busybox_tar().is_file());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "busybox_tar_leaves_nothing_in_tmp_after_the_process",
            "--test-threads=1",
            "--quiet",
        ])
        .env("TMPDIR", tmp.path())
        .env("STRATA_BUSYBOX_TAR_CHILD", "1")
        .status()
        .unwrap();
    assert!(status.success(), "child test failed: {status}");
    let left: Vec<_> = fs_err::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
}
