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
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
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
        std::fs::read_dir(host.path()).unwrap().count(),
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
    assert_eq!(std::fs::read_dir(host.path()).unwrap().count(), 0);
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
        std::os::unix::fs::symlink(target, ctx.join(name)).unwrap();
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
    std::fs::remove_file(ctx.path().join(".dockerignore")).unwrap();
    std::fs::rename(ctx.path().join("Dockerfile"), ctx.path().join("real")).unwrap();
    link(ctx.path(), "Dockerfile", Path::new("real"));
    write(ctx.path(), &[("ignore", "real\n")]);
    link(ctx.path(), ".dockerignore", Path::new("ignore"));
    build(ctx.path()).success();
    let out = s.run(&["run", "--rm", "linked", "cat", "/keep.txt"]);
    assert_eq!(out.success().stdout, "k");
}
