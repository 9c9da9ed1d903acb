use std::os::unix::fs::PermissionsExt;

use sha2::Digest as _;

use super::*;
use crate::build::copy::CopyOptions;

/// Build a tree from lines: `f PATH [CONTENT]`, `d PATH`, `l PATH TARGET`,
/// `x PATH MODE` (chmod, octal), `p PATH` (a fifo).
pub(crate) fn make_tree(root: &Path, spec: &str) {
    for line in spec.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut parts = line.splitn(3, ' ');
        let (kind, path) = (parts.next().expect("kind"), parts.next().expect("path"));
        let rest = parts.next().unwrap_or("");
        let full = root.join(path);
        if let Some(parent) = full.parent() {
            fs_err::create_dir_all(parent).expect("parent");
        }
        match kind {
            "f" => fs_err::write(&full, rest).expect("write"),
            "d" => fs_err::create_dir_all(&full).expect("mkdir"),
            "l" => fs_err::os::unix::fs::symlink(rest, &full).expect("symlink"),
            "x" => fs_err::set_permissions(
                &full,
                std::fs::Permissions::from_mode(u32::from_str_radix(rest, 8).expect("mode")),
            )
            .expect("chmod"),
            "p" => nix::unistd::mkfifo(&full, nix::sys::stat::Mode::from_bits_truncate(0o644))
                .expect("mkfifo"),
            other => panic!("bad spec kind {other}"),
        }
    }
}

fn paths(ctx: &Context) -> Vec<String> {
    ctx.entries()
        .map(|(p, _)| p.display().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn names(sources: &[Source]) -> Vec<(String, String, bool, Vec<String>)> {
    sources
        .iter()
        .map(|s| {
            (
                s.path.display().to_string(),
                s.target.display().to_string(),
                s.is_dir,
                s.entries.iter().map(|e| e.display().to_string()).collect(),
            )
        })
        .collect()
}

const TREE: &str = "
    f Dockerfile FROM x
    f odd[1].dat odd
    f a.txt A
    f b.txt B
    f src/main.rs fn main
    f src/lib/util.rs util
    f docs/guide.md guide
    f docs/keep.md keep
    f target/debug/bin binary
    f node_modules/x/index.js js
    l link.txt a.txt
    l srclink src
    l loop1 loop2
    l loop2 loop1
    l escape ../../../../etc
";

#[test]
fn walk_is_sorted_and_applies_ignores() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_tree(dir.path(), TREE);
    make_tree(dir.path(), "p fifo");
    fs_err::write(
        dir.path().join(".dockerignore"),
        "# build output\ntarget\n**/node_modules\ndocs\n!docs/keep.md\n",
    )
    .expect("write");
    let ctx = Context::open(dir.path(), None).expect("open");
    assert_eq!(
        paths(&ctx),
        [
            ".dockerignore",
            "Dockerfile",
            "a.txt",
            "b.txt",
            "docs",
            "docs/keep.md",
            "escape",
            "link.txt",
            "loop1",
            "loop2",
            "odd[1].dat",
            "src",
            "src/lib",
            "src/lib/util.rs",
            "src/main.rs",
            "srclink",
        ]
    );
    assert_eq!(
        ctx.warnings(),
        ["skipping fifo: a fifo cannot be part of a build context"]
    );
    assert_eq!(ctx.kind(), ContextKind::Local);
}

#[test]
fn dockerfile_specific_ignore_file_wins() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_tree(
        dir.path(),
        "f a.txt A\nf b.txt B\nf .dockerignore a.txt\nf build/app.Dockerfile FROM x\nf build/app.Dockerfile.dockerignore b.txt",
    );
    let df = dir.path().join("build/app.Dockerfile");
    let ctx = Context::open(dir.path(), Some(&df)).expect("open");
    assert!(ctx.entry(Path::new("a.txt")).is_some());
    assert!(ctx.entry(Path::new("b.txt")).is_none());
    let ctx = Context::open(dir.path(), None).expect("open");
    assert!(ctx.entry(Path::new("a.txt")).is_none());
    assert!(ctx.entry(Path::new("b.txt")).is_some());
}

#[test]
fn bad_ignore_file_names_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs_err::write(dir.path().join(".dockerignore"), "ok\n[\n").expect("write");
    let err = Context::open(dir.path(), None).expect_err("bad pattern");
    let ContextError::IgnoreFile { path, cause } = &err else {
        panic!("{err:?}")
    };
    assert!(path.ends_with(".dockerignore"));
    assert_eq!(
        cause.to_string(),
        "line 2: syntax error in pattern \"[\": unclosed character class"
    );
}

#[test]
fn select_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_tree(dir.path(), TREE);
    let ctx = Context::open(dir.path(), None).expect("open");
    type Want = &'static [(&'static str, &'static str, bool, &'static [&'static str])];
    let cases: &[(&[&str], &[&str], Want)] = &[
        (&["a.txt"], &[], &[("a.txt", "a.txt", false, &[])]),
        (
            &["odd[1].dat"],
            &[],
            &[("odd[1].dat", "odd[1].dat", false, &[])],
        ),
        (&["/a.txt"], &[], &[("a.txt", "a.txt", false, &[])]),
        (&["./src/../a.txt"], &[], &[("a.txt", "a.txt", false, &[])]),
        (
            &["*.txt"],
            &[],
            &[
                ("a.txt", "a.txt", false, &[]),
                ("b.txt", "b.txt", false, &[]),
                ("link.txt", "a.txt", false, &[]),
            ],
        ),
        (&["[ab].txt"], &["b.txt"], &[("a.txt", "a.txt", false, &[])]),
        (
            &["src"],
            &[],
            &[("src", "src", true, &["lib", "lib/util.rs", "main.rs"])],
        ),
        (&["src"], &["lib"], &[("src", "src", true, &["main.rs"])]),
        (
            &["src"],
            &["*.rs"],
            &[("src", "src", true, &["lib", "lib/util.rs"])],
        ),
        (
            &["srclink"],
            &[],
            &[("srclink", "src", true, &["lib", "lib/util.rs", "main.rs"])],
        ),
        (
            &["srclink/main.rs"],
            &[],
            &[("srclink/main.rs", "src/main.rs", false, &[])],
        ),
        (
            &["src/*/*.rs"],
            &[],
            &[("src/lib/util.rs", "src/lib/util.rs", false, &[])],
        ),
        (
            &["a.txt", "b.txt"],
            &[],
            &[
                ("a.txt", "a.txt", false, &[]),
                ("b.txt", "b.txt", false, &[]),
            ],
        ),
    ];
    for (sources, excludes, want) in cases {
        let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
        let excludes: Vec<String> = excludes.iter().map(|s| s.to_string()).collect();
        let got = ctx.select(&sources, &excludes).expect("select");
        let want: Vec<(String, String, bool, Vec<String>)> = want
            .iter()
            .map(|(p, t, d, e)| {
                (
                    p.to_string(),
                    t.to_string(),
                    *d,
                    e.iter().map(|s| s.to_string()).collect(),
                )
            })
            .collect();
        assert_eq!(names(&got), want, "{sources:?} --exclude {excludes:?}");
    }
    // The whole context: the root, everything under it.
    let all = ctx.select(&[".".into()], &[]).expect("select .");
    assert_eq!(all.len(), 1);
    assert!(all[0].is_dir && all[0].path.as_os_str().is_empty());
    assert_eq!(all[0].entries.len(), paths(&ctx).len());
}

#[test]
fn select_errors_in_dockers_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_tree(dir.path(), TREE);
    make_tree(dir.path(), "f .dockerignore b.txt");
    let ctx = Context::open(dir.path(), None).expect("open");
    let cases = [
        ("missing.txt", "file not found in build context or excluded by .dockerignore: stat missing.txt: file does not exist"),
        ("b.txt", "file not found in build context or excluded by .dockerignore: stat b.txt: file does not exist"),
        ("/nope/x", "file not found in build context or excluded by .dockerignore: stat nope/x: file does not exist"),
        ("../x", "forbidden path outside the build context: ../x"),
        ("src/../../x", "forbidden path outside the build context: src/../../x"),
        ("loop1", "too many levels of symbolic links resolving loop1 in the build context"),
        ("[", "bad wildcard in COPY source \"[\": unclosed character class"),
    ];
    for (src, want) in cases {
        let err = ctx.select(&[src.to_string()], &[]).expect_err(src);
        assert_eq!(err.to_string(), want, "{src}");
    }
    // A symlink pointing out of the context resolves inside it: /etc in
    // the context does not exist.
    let err = ctx.select(&["escape".into()], &[]).expect_err("escape");
    assert!(matches!(err, ContextError::NotFound { .. }), "{err:?}");
    assert!(Context::empty().select(&["a".into()], &[]).is_err());
}

/// Expected values taken from Docker BuildKit (docker.io 20.10 here), with
/// the same tree: `COPY **/*.txt /g1/` gave `a.txt d.txt`, `COPY x/**/c.txt
/// /g2/` nothing, `COPY x/** /g3/` `a.txt` and the content of `y`; `COPY
/// file-a.txt missing* subdir/ /dst/` what matched, `COPY missing* /none/`
/// succeeded and made no /none.
#[test]
fn wildcards_match_like_filepath_match() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_tree(
        dir.path(),
        "f x/a.txt a\nf x/y/b.txt b\nf x/y/z/c.txt c\nf w/d.txt d\nf top.txt t\nf file-a.txt fa\nf subdir/s.txt s",
    );
    let ctx = Context::open(dir.path(), None).expect("open");
    let select = |sources: &[&str]| -> Vec<String> {
        let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
        let got = ctx.select(&sources, &[]).expect("select");
        got.iter().map(|s| s.path.display().to_string()).collect()
    };
    assert_eq!(
        select(&["**/*.txt"]),
        ["subdir/s.txt", "w/d.txt", "x/a.txt"]
    );
    assert!(select(&["x/**/c.txt"]).is_empty());
    assert_eq!(select(&["x/**"]), select(&["x/*"]));
    assert_eq!(select(&["x/**"]), ["x/a.txt", "x/y"]);
    assert_eq!(
        select(&["file-a.txt", "missing*", "subdir/"]),
        ["file-a.txt", "subdir"]
    );
    assert!(select(&["missing*"]).is_empty());
    assert!(select(&["m1*", "m2?.txt"]).is_empty());
    // A plain missing name still fails.
    let err = ctx
        .select(&["missing*".into(), "missing".into()], &[])
        .expect_err("plain missing name");
    assert!(matches!(err, ContextError::NotFound { .. }), "{err:?}");
}

/// `COPY --parents` sources are BuildKit's include patterns, where `**` is
/// any number of directories, none included (Docker's reference, COPY
/// --parents: `COPY --parents ./x/**/*.txt` keeps every .txt below x).
#[test]
fn parents_sources_read_globstar_as_any_depth() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_tree(
        dir.path(),
        "f x/a.txt a\nf x/y/b.txt b\nf x/y/z/c.txt c\nf x/y/z/c.md m\nf top.txt t",
    );
    let ctx = Context::open(dir.path(), None).expect("open");
    let select = |sources: &[&str]| -> Vec<String> {
        let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
        let got = ctx.select_parents(&sources, &[]).expect("select");
        got.iter().map(|s| s.path.display().to_string()).collect()
    };
    assert_eq!(
        select(&["x/**/*.txt"]),
        ["x/a.txt", "x/y/b.txt", "x/y/z/c.txt"]
    );
    assert_eq!(select(&["**/c.*"]), ["x/y/z/c.md", "x/y/z/c.txt"]);
    assert_eq!(select(&["x/**/c.txt"]), ["x/y/z/c.txt"]);
    assert_eq!(
        select(&["x/y/**"]),
        ["x/y", "x/y/b.txt", "x/y/z", "x/y/z/c.md", "x/y/z/c.txt"]
    );
    // A plain COPY of the same source stays within one component.
    let plain = ctx.select(&["x/**/*.txt".into()], &[]).expect("select");
    let plain: Vec<String> = plain.iter().map(|s| s.path.display().to_string()).collect();
    assert_eq!(plain, ["x/y/b.txt"]);
}

#[test]
fn rootfs_resolves_absolute_symlinks_inside_the_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_tree(
        dir.path(),
        "f bin/busybox BB\nd usr\nl usr/bin /bin\nl sbin/tool ../bin/busybox\nf .dockerignore bin",
    );
    make_tree(
        dir.path(),
        "f usr/lib/a.so A\nf usr/lib/b.so B\nf usr/lib/c.txt C\nl lib usr/lib\nl etc/alt /usr",
    );
    let ctx = Context::rootfs(dir.path()).expect("rootfs");
    let got = ctx
        .select(&["/lib/*.so".into(), "/etc/alt/l?b/c.*".into()], &[])
        .expect("glob through symlinks");
    assert_eq!(
        names(&got),
        [
            ("lib/a.so".into(), "usr/lib/a.so".into(), false, vec![]),
            ("lib/b.so".into(), "usr/lib/b.so".into(), false, vec![]),
            (
                "etc/alt/lib/c.txt".into(),
                "usr/lib/c.txt".into(),
                false,
                vec![]
            ),
        ]
    );
    let got = ctx
        .select(&["/usr/bin/busybox".into(), "/sbin/tool".into()], &[])
        .expect("select");
    assert_eq!(
        names(&got),
        [
            (
                "usr/bin/busybox".into(),
                "bin/busybox".into(),
                false,
                vec![]
            ),
            ("sbin/tool".into(), "bin/busybox".into(), false, vec![]),
        ]
    );
}

#[test]
fn digest_tracks_content_mode_owner_but_not_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = tempfile::tempdir().expect("cache");
    make_tree(
        dir.path(),
        "f app/a.txt hello\nf app/b.txt world\nl app/l a.txt",
    );
    let digest = |opts: &CopyOptions| {
        let ctx = Context::open(dir.path(), None).expect("open");
        let sel = ctx.select(&["app".into()], &[]).expect("select");
        digest_sources(&ctx, &sel, opts, Some(cache.path())).expect("digest")
    };
    let plain = CopyOptions::default();
    let d0 = digest(&plain);
    assert_eq!(digest(&plain), d0, "stable");

    // Times alone do not matter.
    let a = dir.path().join("app/a.txt");
    let f = fs_err::File::options().write(true).open(&a).expect("open");
    f.set_modified(std::time::SystemTime::UNIX_EPOCH)
        .expect("touch");
    drop(f);
    assert_eq!(digest(&plain), d0, "mtime only");

    // Same size, same mtime, new content: ctime gives it away.
    let meta = fs_err::metadata(&a).expect("stat");
    fs_err::write(&a, "HELLO").expect("rewrite");
    let f = fs_err::File::options().write(true).open(&a).expect("open");
    f.set_modified(meta.modified().expect("mtime"))
        .expect("restore mtime");
    drop(f);
    let d1 = digest(&plain);
    assert_ne!(d1, d0, "content change behind a restored mtime");

    let chown = CopyOptions {
        chown: Some((1000, 1000)),
        ..Default::default()
    };
    assert_ne!(digest(&chown), d1, "owner");
    let chmod = CopyOptions {
        chmod: Some(0o600),
        ..Default::default()
    };
    assert_ne!(digest(&chmod), d1, "mode");
    fs_err::set_permissions(&a, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    assert_ne!(digest(&plain), d1, "mode of one file");

    // Another selection of the same files differs too.
    let ctx = Context::open(dir.path(), None).expect("open");
    let sel = ctx.select(&["app/*".into()], &[]).expect("select");
    assert_ne!(
        digest_sources(&ctx, &sel, &plain, None).expect("digest"),
        digest(&plain)
    );
}

#[test]
fn digest_cache_spares_reading_unchanged_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = tempfile::tempdir().expect("cache");
    make_tree(dir.path(), "f a.txt hello\nf new.txt fresh");
    // Out of the racy window, so the cache may remember a.txt.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    fs_err::write(dir.path().join("new.txt"), "fresh!").expect("rewrite");
    let ctx = Context::open(dir.path(), None).expect("open");
    let sel = ctx.select(&["a.txt".into()], &[]).expect("select");
    let d0 =
        digest_sources(&ctx, &sel, &CopyOptions::default(), Some(cache.path())).expect("digest");
    // Plant a wrong hash under the right metadata: a cache hit must use it,
    // which proves the file was not read again.
    let path = cache.path().join("files.json");
    let text = fs_err::read_to_string(&path).expect("cache file");
    let real = hex::encode(sha2::Sha256::digest(b"hello"));
    assert!(text.contains(&real), "{text}");
    // A file changed a moment ago is hashed but not remembered.
    let fresh = ctx.select(&["new.txt".into()], &[]).expect("select");
    digest_sources(&ctx, &fresh, &CopyOptions::default(), Some(cache.path())).expect("digest");
    let text = fs_err::read_to_string(&path).expect("cache file");
    assert!(!text.contains("new.txt"), "{text}");
    fs_err::write(&path, text.replace(&real, &"0".repeat(64))).expect("tamper");
    let d1 =
        digest_sources(&ctx, &sel, &CopyOptions::default(), Some(cache.path())).expect("digest");
    assert_ne!(d0, d1, "served from the cache");
    // Same size, mtime restored: the new ctime still misses the cache.
    let a = dir.path().join("a.txt");
    let mtime = fs_err::metadata(&a)
        .expect("stat")
        .modified()
        .expect("mtime");
    fs_err::write(&a, "HELLO").expect("rewrite");
    let f = fs_err::File::options().write(true).open(&a).expect("open");
    f.set_modified(mtime).expect("restore mtime");
    drop(f);
    let ctx2 = Context::open(dir.path(), None).expect("open");
    let sel2 = ctx2.select(&["a.txt".into()], &[]).expect("select");
    let changed = digest_sources(&ctx2, &sel2, &CopyOptions::default(), None).expect("digest");
    let cached =
        digest_sources(&ctx2, &sel2, &CopyOptions::default(), Some(cache.path())).expect("digest");
    assert_eq!(cached, changed, "ctime change not seen");
    assert_ne!(changed, d0);
    // A corrupt cache is an empty one.
    fs_err::write(&path, "{not json").expect("corrupt");
    let d2 =
        digest_sources(&ctx2, &sel2, &CopyOptions::default(), Some(cache.path())).expect("digest");
    assert_eq!(d2, changed);
}
