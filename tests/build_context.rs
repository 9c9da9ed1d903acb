//! `strata build`'s context and COPY/ADD edges, as an unprivileged user:
//! ignore files, and symlinks planted by an image that must not lead a
//! COPY out of it.
#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

mod common;

use std::path::Path;

use common::Strata;

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, content) in files {
        let path = dir.join(name);
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(path, content).unwrap();
    }
}

#[test]
fn rootless_build_copy_through_planted_symlinks_stays_in_the_image() {
    let s = Strata::new();
    s.import_busybox("busybox");
    // A directory of the caller's that a symlink in the image names, with
    // `..` to spare: a write that followed it on the host would land here.
    let host = tempfile::tempdir().unwrap();
    let target = host.path().display().to_string();
    let ctx = tempfile::tempdir().unwrap();
    let df = format!(
        "FROM busybox
RUN ln -s /../../../..{target} /app && ln -s ../../../..{target} /rel && mkdir /d && ln -s {target} /d/sub
COPY a.txt /app/
COPY a.txt /rel/b.txt
COPY tree/sub /d/sub
"
    );
    write(
        ctx.path(),
        &[("Dockerfile", &df), ("a.txt", "a"), ("tree/sub/c.txt", "c")],
    );
    s.run(&["build", "-t", "planted", ctx.path().to_str().unwrap()])
        .success();
    assert_eq!(
        fs_err::read_dir(host.path()).unwrap().count(),
        0,
        "COPY wrote through a symlink onto the host"
    );
    // Inside the image, the symlinks were followed within its root.
    let out = s
        .run(&[
            "run",
            "--rm",
            "planted",
            "sh",
            "-c",
            &format!("cat {target}/a.txt {target}/b.txt {target}/c.txt"),
        ])
        .success()
        .stdout;
    assert_eq!(out, "aac");
    // A directory of the context landing on that symlink below the
    // destination fails, as in Docker BuildKit (`cannot copy to
    // non-directory`), and writes nothing anywhere.
    write(
        ctx.path(),
        &[("Dockerfile", "FROM planted\nCOPY tree /d\n")],
    );
    let run = s.run(&["build", ctx.path().to_str().unwrap()]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("cannot copy to non-directory: /d/sub"));
    assert_eq!(fs_err::read_dir(host.path()).unwrap().count(), 0);
}

#[test]
fn rootless_build_ignore_files_and_exceptions() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        &[
            ("build/app.Dockerfile", "FROM busybox\nCOPY . /ctx/\n"),
            (
                "build/app.Dockerfile.dockerignore",
                "# the Dockerfile's own ignore file wins\n*.log\nnode_modules\ndocs\n!docs/keep.md\nbuild\n",
            ),
            (".dockerignore", "src\n"),
            ("src/main.rs", "fn main() {}"),
            ("debug.log", "noise"),
            ("node_modules/x/index.js", "js"),
            ("docs/keep.md", "keep"),
            ("docs/drop.md", "drop"),
        ],
    );
    let df = ctx.path().join("build/app.Dockerfile");
    s.run(&[
        "build",
        "-t",
        "ignored",
        "-f",
        df.to_str().unwrap(),
        ctx.path().to_str().unwrap(),
    ])
    .success();
    let out = s
        .run(&["run", "--rm", "ignored", "find", "/ctx"])
        .success()
        .stdout;
    let mut found: Vec<&str> = out.lines().collect();
    found.sort();
    assert_eq!(
        found,
        [
            "/ctx",
            "/ctx/.dockerignore",
            "/ctx/docs",
            "/ctx/docs/keep.md",
            "/ctx/src",
            "/ctx/src/main.rs",
        ]
    );
}

#[test]
fn rootless_build_dockerfile_and_ignore_file_may_not_link_out_of_the_context() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let outside = tempfile::tempdir().unwrap();
    write(
        outside.path(),
        &[
            (
                "Dockerfile",
                "FROM busybox\nRUN echo OUTSIDE-DOCKERFILE-WAS-READ\n",
            ),
            ("ignore", "keep.txt\n"),
        ],
    );
    let link = |ctx: &Path, name: &str, target: &Path| {
        fs_err::os::unix::fs::symlink(target, ctx.join(name)).unwrap();
    };
    let build = |ctx: &Path| s.run(&["build", "-t", "linked", ctx.to_str().unwrap()]);
    // The Dockerfile, then the ignore file, a link to a host file.
    let ctx = tempfile::tempdir().unwrap();
    link(ctx.path(), "Dockerfile", &outside.path().join("Dockerfile"));
    let run = build(ctx.path());
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.contains("outside the build context"), "{run:?}");
    assert!(!run.stdout.contains("OUTSIDE"), "{run:?}");
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        &[
            ("Dockerfile", "FROM busybox\nCOPY keep.txt /\n"),
            ("keep.txt", "k"),
        ],
    );
    link(ctx.path(), ".dockerignore", &outside.path().join("ignore"));
    let run = build(ctx.path());
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.contains(".dockerignore is a symlink"), "{run:?}");
    // A link to a file of the context is followed.
    fs_err::remove_file(ctx.path().join(".dockerignore")).unwrap();
    fs_err::rename(ctx.path().join("Dockerfile"), ctx.path().join("real")).unwrap();
    link(ctx.path(), "Dockerfile", Path::new("real"));
    write(ctx.path(), &[("ignore", "real\n")]);
    link(ctx.path(), ".dockerignore", Path::new("ignore"));
    build(ctx.path()).success();
    let out = s.run(&["run", "--rm", "linked", "cat", "/keep.txt"]);
    assert_eq!(out.success().stdout, "k");
}

/// Runs strata with `args`, failing the test if it has not ended within
/// `secs` (a hang is the failure these cases look for; the child is
/// killed so the test ends).
fn run_within(s: &Strata, args: &[&str], secs: u64) -> common::Run {
    let mut child = s
        .cmd()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed().as_secs() >= secs {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "strata {args:?} still running after {secs}s: {:#?}",
                common::Run::of(out)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    common::Run::of(child.wait_with_output().unwrap())
}

/// A busybox whose /etc/passwd and /etc/group are `passwd` and `group`
/// (added by the closures), imported as `name`.
fn trap_image(s: &Strata, name: &str, add: impl FnOnce(&mut tar::Builder<std::fs::File>)) {
    let dir = tempfile::tempdir().unwrap();
    let tar = common::busybox_variant(dir.path(), &["etc/passwd", "etc/group"], add);
    s.run(&["import", tar.to_str().unwrap(), name]).success();
}

fn fifo_entry(b: &mut tar::Builder<std::fs::File>, path: &str) {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Fifo);
    h.set_size(0);
    h.set_mode(0o644);
    h.set_mtime(0);
    b.append_data(&mut h, path, std::io::empty()).unwrap();
}

/// awk's program printing the real uid of /proc/self/status.
const UID: &str = "/^Uid/ {print $2}";

#[test]
fn rootless_build_passwd_traps_neither_hang_nor_grow() {
    let s = Strata::new();
    // Case 10 (CVE-2024-9676): passwd a link to /dev/zero, group a FIFO;
    // then both FIFOs.
    trap_image(&s, "zero", |b| {
        common::symlink_entry(b, "etc/passwd", "/dev/zero");
        fifo_entry(b, "etc/group");
    });
    trap_image(&s, "fifo", |b| {
        fifo_entry(b, "etc/passwd");
        fifo_entry(b, "etc/group");
    });
    for image in ["zero", "fifo"] {
        // No USER, and a numeric one: the ids need no entry.
        // (Not busybox's `id`: it reads passwd itself, forever.)
        let out = run_within(
            &s,
            &["run", "--rm", image, "awk", UID, "/proc/self/status"],
            60,
        );
        assert_eq!(out.success().stdout.trim(), "0", "{image}");
        let out = run_within(
            &s,
            &[
                "run",
                "--rm",
                "-u",
                "1000:1000",
                image,
                "awk",
                UID,
                "/proc/self/status",
            ],
            60,
        );
        assert_eq!(out.success().stdout.trim(), "1000", "{image}");
        // A name has no entry to be found in: a clear error.
        let out = run_within(&s, &["run", "--rm", "-u", "app", image, "true"], 60);
        assert_ne!(out.code, Some(0), "{image}: {out:#?}");
        assert!(out.stderr.contains("unable to find user app"), "{out:#?}");
        // The build reads them for USER, WORKDIR and COPY --chown.
        let ctx = common::context(&[
            (
                "Dockerfile",
                &format!(
                    "FROM {image}\nUSER 1000\nWORKDIR /w\nCOPY --chown=1000:1000 a /w/a\nRUN awk '{UID}' /proc/self/status\n"
                ),
            ),
            ("a", "a"),
        ]);
        let ctx = ctx.path().to_str().unwrap();
        run_within(&s, &["build", ctx], 120).success();
        let ctx = common::context(&[
            (
                "Dockerfile",
                &format!("FROM {image}\nCOPY --chown=app a /a\n"),
            ),
            ("a", "a"),
        ]);
        let out = run_within(&s, &["build", ctx.path().to_str().unwrap()], 120);
        assert_ne!(out.code, Some(0), "{image}: {out:#?}");
        assert!(out.stderr.contains("app"), "{out:#?}");
    }
}

#[test]
fn rootless_build_volume_climbing_out_stays_in_the_image() {
    // Case 10 (CVE-2022-23648): a VOLUME path with `..` is metadata only;
    // the steps after it see the image's own /etc.
    let s = Strata::new();
    s.import_busybox("busybox");
    let ctx = common::context(&[(
        "Dockerfile",
        "FROM busybox\nRUN echo image > /etc/marker\nVOLUME [\"/../../etc\"]\nRUN cat /etc/marker && ls /etc > /etc-list\n",
    )]);
    s.run(&["build", "-t", "vol", ctx.path().to_str().unwrap()])
        .success();
    let out = s.run(&[
        "run",
        "--rm",
        "vol",
        "sh",
        "-c",
        "cat /etc/marker; cat /etc-list",
    ]);
    let out = out.success().stdout;
    assert!(out.starts_with("image\n"), "{out}");
    // Nothing of the host's /etc (the machine's os-release, hostname) came in.
    let host_only: Vec<String> = fs_err::read_dir("/etc")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| ["os-release", "debian_version", "apt"].contains(&n.as_str()))
        .collect();
    for name in host_only {
        assert!(!out.lines().any(|l| l == name), "host /etc/{name} in {out}");
    }
}

#[test]
fn rootless_build_copy_sources_never_leave_the_context() {
    // Case 11: a source climbing out with `..` (a file or a glob) is
    // refused, as Docker's builder does ("forbidden path outside the build
    // context"); an absolute source names a file of the context.
    let s = Strata::new();
    s.import_busybox("busybox");
    let above = tempfile::tempdir().unwrap();
    write(above.path(), &[("upper.txt", "UPPER-SECRET")]);
    let ctx = above.path().join("ctx");
    write(
        &ctx,
        &[
            ("upper.txt", "context-upper"),
            ("etc/passwd", "context-passwd"),
        ],
    );
    let c = ctx.to_str().unwrap();
    for copy in [
        "COPY ../upper.txt /",
        "COPY ../* /all/",
        "COPY ctx/../../upper.txt /",
    ] {
        write(&ctx, &[("Dockerfile", &format!("FROM busybox\n{copy}\n"))]);
        let run = s.run(&["build", c]);
        assert_eq!(run.code, Some(1), "{copy}: {run:#?}");
        assert!(
            run.stderr.contains("outside the build context"),
            "{copy}: {run:#?}"
        );
        assert!(!format!("{run:?}").contains("UPPER-SECRET"), "{run:#?}");
    }
    write(
        &ctx,
        &[(
            "Dockerfile",
            "FROM busybox\nCOPY /etc/passwd /x\nCOPY /upper.txt /\n",
        )],
    );
    s.run(&["build", "-t", "above", c]).success();
    let out = s.run(&["run", "--rm", "above", "cat", "/x", "/upper.txt"]);
    assert_eq!(out.success().stdout, "context-passwdcontext-upper");
}

#[test]
fn rootless_build_context_symlinks_are_copied_as_links() {
    // Case 12 (BuildKit testLocalSymlinkEscape, testCopyThroughSymlinkContext).
    let s = Strata::new();
    s.import_busybox("busybox");
    let ctx = common::context(&[
        (
            "Dockerfile",
            "FROM busybox\nCOPY . /c/\nCOPY link/foo /through\n",
        ),
        ("sub/foo", "foo"),
    ]);
    let p = ctx.path();
    fs_err::os::unix::fs::symlink("/etc/shadow", p.join("shadow")).unwrap();
    fs_err::os::unix::fs::symlink("../../../etc/group", p.join("sub/group")).unwrap();
    fs_err::os::unix::fs::symlink("sub", p.join("link")).unwrap();
    s.run(&["build", "-t", "links", p.to_str().unwrap()])
        .success();
    let out = s.run(&[
        "run",
        "--rm",
        "links",
        "sh",
        "-c",
        "for l in /c/shadow /c/sub/group /c/link; do readlink $l; done; cat /through; test -L /c/shadow && test -L /c/sub/group && echo links",
    ]);
    assert_eq!(
        out.success().stdout,
        "/etc/shadow\n../../../etc/group\nsub\nfoolinks\n"
    );
}

#[test]
fn rootless_build_context_special_files_neither_block_nor_overflow() {
    // Case 14. A device node cannot be made by an unprivileged user; it
    // takes the FIFO's path (a file that is neither regular, dir nor link).
    use std::os::unix::fs::PermissionsExt;
    let s = Strata::new();
    s.import_busybox("busybox");
    let build =
        |ctx: &Path| run_within(&s, &["build", "-t", "special", ctx.to_str().unwrap()], 180);
    let df = "FROM busybox\nCOPY . /c/\n";
    // A FIFO and a socket: skipped, as Docker's context sender skips them.
    let ctx = common::context(&[("Dockerfile", df), ("a", "a")]);
    nix::unistd::mkfifo(
        &ctx.path().join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(ctx.path().join("sock")).unwrap();
    let out = build(ctx.path());
    let listing = s.run(&["run", "--rm", "special", "ls", "/c"]);
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(listing.success().stdout, "Dockerfile\na\n");
    // A directory symlink loop is a link, copied as one.
    let ctx = common::context(&[("Dockerfile", df)]);
    fs_err::os::unix::fs::symlink("..", ctx.path().join("up")).unwrap();
    fs_err::create_dir(ctx.path().join("loop")).unwrap();
    fs_err::os::unix::fs::symlink("../loop", ctx.path().join("loop/self")).unwrap();
    build(ctx.path()).success();
    let out = s.run(&["run", "--rm", "special", "readlink", "/c/loop/self"]);
    assert_eq!(out.success().stdout, "../loop\n");
    // 10,000 nested directories: a path beyond PATH_MAX is an error that
    // says so (as Docker's lstat of it), without a stack overflow.
    let ctx = common::context(&[("Dockerfile", df)]);
    make_deep(ctx.path(), 10_000);
    let out = build(ctx.path());
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(out.stderr.contains("File name too long"), "{out:#?}");
    // 200 levels (beyond what a naive recursion of big frames would bear
    // on a small stack, within PATH_MAX) are copied whole.
    let ctx = common::context(&[("Dockerfile", df)]);
    make_deep(ctx.path(), 200);
    build(ctx.path()).success();
    let out = s.run(&["run", "--rm", "special", "sh", "-c", "find /c | wc -l"]);
    assert_eq!(out.success().stdout.trim(), "202");
    // A file of the caller's with mode 000: the builder is root in its
    // user namespace (as Docker's daemon is root), so the caller's own file
    // is read and keeps its mode; files of other users are not the
    // caller's to put in a context.
    let ctx = common::context(&[("Dockerfile", df), ("secret", "s")]);
    let secret = ctx.path().join("secret");
    fs_err::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    build(ctx.path()).success();
    let out = s.run(&["run", "--rm", "special", "stat", "-c", "%a", "/c/secret"]);
    assert_eq!(out.success().stdout, "0\n");
}

/// `levels` nested directories `d/d/...` under `dir`, made with openat so
/// no path grows beyond PATH_MAX.
fn make_deep(dir: &Path, levels: usize) {
    use rustix::fs::{mkdirat, openat, Mode, OFlags};
    let mut fd = openat(
        rustix::fs::CWD,
        dir,
        OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    for _ in 0..levels {
        mkdirat(&fd, "d", Mode::from_raw_mode(0o755)).unwrap();
        fd = openat(&fd, "d", OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap();
    }
}

#[test]
fn rootless_build_context_hardlinks_stay_linked() {
    // Case 15 (buildah bud-copy-dockerignore-hardlinks): four names of one
    // file across directories keep one inode, link count 4.
    let s = Strata::new();
    s.import_busybox("busybox");
    let ctx = common::context(&[
        ("Dockerfile", "FROM busybox\nCOPY . /c/\n"),
        ("a/f", "data"),
    ]);
    let p = ctx.path();
    for d in ["b", "c/d"] {
        fs_err::create_dir_all(p.join(d)).unwrap();
    }
    fs_err::hard_link(p.join("a/f"), p.join("a/g")).unwrap();
    fs_err::hard_link(p.join("a/f"), p.join("b/f")).unwrap();
    fs_err::hard_link(p.join("a/f"), p.join("c/d/f")).unwrap();
    s.run(&["build", "-t", "hard", p.to_str().unwrap()])
        .success();
    let out = s.run(&[
        "run",
        "--rm",
        "hard",
        "sh",
        "-c",
        "stat -c '%h %i' /c/a/f /c/a/g /c/b/f /c/c/d/f",
    ]);
    let out = out.success().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines.iter().all(|l| *l == lines[0]), "{out}");
    assert!(lines[0].starts_with("4 "), "{out}");
}
