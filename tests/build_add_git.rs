//! ADD of a git repository, served by `git http-backend` on 127.0.0.1
//! (tests/common/githttp.rs). Docker's docker.io 20.10 here predates ADD
//! <git> (its BuildKit takes the URL for a context path), so the expected
//! results follow BuildKit's git source as its code and docs give it: the
//! tree of the named commit copied like a directory source, 0644/0755 and
//! symlinks as git records them, owned by root, no `.git` unless
//! `--keep-git-dir`, `#ref:subdir`, `--checksum` a prefix of the commit.
#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

mod common;

use std::path::Path;
use std::process::Command;

use common::githttp::serve_git;
use common::{context, Strata};

/// The commit time of the first commit (2020-01-01T00:00:00Z).
const FIRST: &str = "1577836800";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .env("GIT_AUTHOR_DATE", format!("@{FIRST} +0000"))
        .env("GIT_COMMITTER_DATE", format!("@{FIRST} +0000"))
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `root/repo.git`: a first commit (a.txt, run.sh 0755, link -> a.txt,
/// sub/s.txt) tagged `v1` (annotated), then b.txt on `main`. Returns the
/// two commit ids and the tag's.
fn repository(root: &Path) -> (String, String, String) {
    let work = root.join("work");
    fs_err::create_dir_all(work.join("sub")).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    fs_err::write(work.join("a.txt"), "a\n").unwrap();
    fs_err::write(work.join("sub/s.txt"), "s\n").unwrap();
    fs_err::write(work.join("run.sh"), "#!/bin/sh\n").unwrap();
    fs_err::set_permissions(
        work.join("run.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    fs_err::os::unix::fs::symlink("a.txt", work.join("link")).unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "one"]);
    let first = git(&work, &["rev-parse", "HEAD"]);
    git(&work, &["tag", "-a", "-m", "v1", "v1"]);
    let tag = git(&work, &["rev-parse", "v1"]);
    fs_err::write(work.join("b.txt"), "b\n").unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "two"]);
    let second = git(&work, &["rev-parse", "HEAD"]);
    git(root, &["clone", "-q", "--bare", "work", "repo.git"]);
    (first, second, tag)
}

#[test]
fn rootless_build_add_git_repository() {
    let served = tempfile::tempdir().unwrap();
    let (first, second, tag) = repository(served.path());
    let repo = format!("{}/repo.git", serve_git(served.path()));
    let s = Strata::new();
    s.import_busybox("busybox");
    let dockerfile = format!(
        "FROM busybox
ADD {repo} /g1/
ADD {repo}#v1 /g2
ADD {repo}#v1:sub /g3/
ADD {repo}#{first} /g4/
ADD --keep-git-dir=true {repo}#main /g5/
ADD --checksum={} {repo}#v1 /g6/
ADD --checksum={} {repo}#v1 /g7/
",
        &first[..10],
        &tag[..10]
    );
    let dir = context(&[("Dockerfile", &dockerfile)]);
    s.run(&["build", "-t", "git", dir.path().to_str().unwrap()])
        .success();
    let list = "cd / && find g1 g2 g3 g4 g6 g7 | sort | while read p; do \
                stat -c '%n %A %u:%g' \"$p\"; done";
    let got = s
        .run(&["run", "--rm", "git", "sh", "-c", list])
        .success()
        .stdout;
    let tree = |d: &str, b: bool| {
        let mut lines = vec![
            format!("{d} drwxr-xr-x 0:0"),
            format!("{d}/a.txt -rw-r--r-- 0:0"),
        ];
        if b {
            lines.push(format!("{d}/b.txt -rw-r--r-- 0:0"));
        }
        lines.extend([
            format!("{d}/link lrwxrwxrwx 0:0"),
            format!("{d}/run.sh -rwxr-xr-x 0:0"),
            format!("{d}/sub drwxr-xr-x 0:0"),
            format!("{d}/sub/s.txt -rw-r--r-- 0:0"),
        ]);
        lines.join("\n")
    };
    let want = [
        tree("g1", true),
        tree("g2", false),
        "g3 drwxr-xr-x 0:0\ng3/s.txt -rw-r--r-- 0:0".into(),
        tree("g4", false),
        tree("g6", false),
        tree("g7", false),
    ]
    .join("\n")
        + "\n";
    assert_eq!(got, want);
    // The link is a link, every entry is dated at its commit, and only
    // --keep-git-dir keeps a .git (HEAD at the commit, an index, origin).
    let script = "readlink /g2/link; stat -c %Y /g2/a.txt /g2/sub /g2/link; \
                  ls -a /g1 | grep -c .git; cat /g5/.git/HEAD; grep -c 'url = http' /g5/.git/config; \
                  ls /g5/b.txt /g5/.git/index";
    let got = s.run(&["run", "--rm", "git", "sh", "-c", script]).stdout;
    assert_eq!(
        got,
        format!("a.txt\n{FIRST}\n{FIRST}\n{FIRST}\n0\n{second}\n1\n/g5/.git/index\n/g5/b.txt\n")
    );
}

#[test]
fn rootless_build_add_git_failures_say_what() {
    let served = tempfile::tempdir().unwrap();
    let (first, _, _) = repository(served.path());
    let repo = format!("{}/repo.git", serve_git(served.path()));
    let s = Strata::new();
    s.import_busybox("busybox");
    for (add, want) in [
        (
            format!("ADD --checksum=0000000 {repo}#v1 /x/"),
            "expected checksum to match 0000000, got ".to_string(),
        ),
        (format!("ADD {repo}#nosuchref /x/"), "nosuchref".to_string()),
        (
            format!("ADD {repo}#v1:nosuchdir /x/"),
            "no directory nosuchdir".into(),
        ),
        (
            format!("ADD {repo}#v1:a.txt /x/"),
            "a.txt is not a directory".into(),
        ),
        (
            format!("ADD {}/missing.git /x/", serve_git(served.path())),
            "fetching http://127.0.0.1".into(),
        ),
    ] {
        let dir = context(&[("Dockerfile", &format!("FROM busybox\n{add}\n"))]);
        let run = s.run(&["build", dir.path().to_str().unwrap()]);
        assert_eq!(run.code, Some(1), "{add}: {run:#?}");
        assert!(run.stderr.contains(&want), "{add}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 2, "{add}: {}", run.stderr);
    }
    // The commit's id alone is a full checksum.
    let dir = context(&[(
        "Dockerfile",
        &format!("FROM busybox\nADD --checksum={first} {repo}#{first} /x/\n"),
    )]);
    s.run(&["build", dir.path().to_str().unwrap()]).success();
}
