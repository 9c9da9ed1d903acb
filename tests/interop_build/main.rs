//! Every case under testdata/build/ built by strata and by buildah 1.28
//! (rootless, chroot isolation, docker format, `--layers`) from the same
//! busybox base gives the same root file system (paths, types, modes,
//! owners, content, link targets, which files are hardlinked together) and
//! the same config (the fields in [`CONFIG_KEYS`], the history length and
//! which history entries made a layer), compared after `umoci unpack` of
//! both. One test per case, named `interop_build::<case>`.
//!
//! A case is a directory holding a Dockerfile. Each builder builds a copy of
//! it, in which these optional files are acted on and then removed:
//! - `fixtures.txt`: what git cannot hold (tar archives, hardlinks), written
//!   into the copy first; the format is described at [`write_fixtures`].
//! - `build-args`: `KEY=VALUE` lines, given to both builders as
//!   `--build-arg`. The value of a predefined proxy arg must appear nowhere
//!   in either image's config or history: Docker keeps them out.
//! - `http/`: files served on 127.0.0.1 while the case builds; both builders
//!   get the server's base URL as the build arg `SERVER`, for `ADD <url>`.
//! - `base/`: a Dockerfile and its context, built first by each builder;
//!   the case's build gets that image's tag as the build arg `BASE`, for
//!   `FROM $BASE` (ONBUILD triggers, an inherited CMD).
//! - `Dockerfile.buildah`: what buildah builds instead of `Dockerfile`, for
//!   the features buildah 1.28 lacks (heredocs, `COPY --parents`,
//!   `COPY --exclude`, `ADD --checksum`). It must do the same with the same number of history
//!   entries; the comparison is then against buildah building an
//!   equivalent, not the same text.
//!
//! Where buildah departs from Docker, its side is normalised here, with what
//! Docker does. Not compared, because buildah 1.28 cannot build them:
//! `.wh.` entries in an ADDed tar (buildah's vfs storage applies them as
//! whiteouts while its layer record still lists them, so it cannot even
//! push the image); failing builds are tested in tests/build.rs.

// Tests report what they checked on stderr.
#![allow(clippy::disallowed_macros)]
#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

#[path = "../common/mod.rs"]
mod common;
mod fixtures;
mod image;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use common::Strata;
use fixtures::{copy_tree, write_fixtures};
use image::{compare_trees, config, normalise_buildah, raw_config, unpacked_tree};

/// One test per directory under testdata/build/;
/// `interop_build_every_case_has_a_test` keeps the two in step.
macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        const CASES: &[&str] = &[$(stringify!($name)),*];
        mod interop_build {
            $(#[test]
            fn $name() {
                super::compare(stringify!($name));
            })*
        }
    };
}

cases!(
    add_tar_hardlink_mode,
    add_tars,
    add_url,
    args,
    basic,
    copy_dot,
    copy_from,
    copy_sources,
    copyflags,
    dockerignore,
    entrypoint,
    heredoc,
    metadata,
    multistage,
    onbuild,
    parents_exclude,
    parents_globstar,
    sources_one_inode,
    whiteouts,
    workdir_env,
    workdir_user,
);

#[test]
fn interop_build_every_case_has_a_test() {
    let mut names: Vec<String> = fs_err::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, CASES, "testdata/build/ and the cases! list differ");
}

fn cases_dir() -> PathBuf {
    common::project_dir().join("testdata/build")
}

/// buildah's image store is shared by every test in this process: one
/// buildah at a time, as a concurrent `rmi` broke another build's cache
/// lookup ("getting top layer info: layer not known").
static BUILDAH: Mutex<()> = Mutex::new(());

/// Files buildah leaves in an image that Docker (and strata) do not: its
/// mount points for the name files and /run.
const BUILDAH_ARTIFACTS: [&str; 4] = ["etc/hostname", "etc/hosts", "etc/resolv.conf", "run"];

/// The config fields compared.
const CONFIG_KEYS: [&str; 12] = [
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "StopSignal",
    "Healthcheck",
    "OnBuild",
    "Shell",
];

/// A case's context, made ready to build: see the module doc.
struct Case {
    ctx: PathBuf,
    /// `--build-arg`s for both builders.
    args: Vec<(String, String)>,
    /// What buildah builds instead of ctx/Dockerfile.
    buildah_file: Option<PathBuf>,
    /// The context of the base image to build first.
    base: Option<PathBuf>,
}

/// Copies case `name` into `w` and acts on its optional files.
fn prepare(name: &str, w: &Path) -> Case {
    let ctx = w.join("ctx");
    copy_tree(&cases_dir().join(name), &ctx);
    // Moves `file` out of the context, if there, to `w`.
    let take = |file: &str| {
        let (from, to) = (ctx.join(file), w.join(file));
        fs_err::symlink_metadata(&from).is_ok().then(|| {
            fs_err::rename(&from, &to).unwrap();
            to
        })
    };
    if ctx.join("fixtures.txt").exists() {
        let text = fs_err::read_to_string(ctx.join("fixtures.txt")).unwrap();
        write_fixtures(&ctx, &text);
    }
    take("fixtures.txt");
    let mut args: Vec<(String, String)> = Vec::new();
    if let Some(file) = take("build-args") {
        let text = fs_err::read_to_string(file).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (k, v) = line.split_once('=').expect("build-args: KEY=VALUE");
            args.push((k.into(), v.into()));
        }
    }
    if let Some(dir) = take("http") {
        args.push(("SERVER".into(), common::http::serve_dir(&dir)));
    }
    Case {
        buildah_file: take("Dockerfile.buildah"),
        base: take("base"),
        ctx,
        args,
    }
}

/// Builds, unpacks and compares one case; panics with every difference.
fn compare(name: &str) {
    buildah_has_busybox();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let mut case = prepare(name, w);
    let tag = format!("strata-interop-{name}-{}", std::process::id());
    let base = format!("{tag}-base");
    if case.base.is_some() {
        case.args.push(("BASE".into(), base.clone()));
    }

    let s = Strata::new();
    s.import_busybox("busybox");
    if let Some(base_ctx) = &case.base {
        strata_build(&s, base_ctx, &base, &[]);
    }
    strata_build(&s, &case.ctx, &tag, &case.args);
    let ours = w.join("s");
    s.run(&["push", &tag, &format!("oci:{}:latest", ours.display())])
        .success();

    let theirs = w.join("b");
    let mut their_config = {
        let _one_at_a_time = BUILDAH.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(base_ctx) = &case.base {
            buildah_build(base_ctx, None, &base, &[]);
        }
        buildah_build(&case.ctx, case.buildah_file.as_deref(), &tag, &case.args);
        common::tool(
            "buildah",
            &[
                "push",
                "-q",
                &tag,
                &format!("oci:{}:latest", theirs.display()),
            ],
        );
        // The Docker-format config as built: pushing to an OCI layout
        // drops Healthcheck, OnBuild and Shell.
        let inspect = common::tool("buildah", &["inspect", "--type", "image", &tag]);
        for t in [&tag, &base] {
            // Only tidies buildah's store; a leftover tag harms no later run.
            let _ = Command::new("buildah").args(["rmi", "-f", t]).output();
        }
        let mut inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
        inspect["Docker"].take()
    };
    let our_config = raw_config(&ours);

    let mut differ = Vec::new();
    for (k, v) in &case.args {
        // Docker's predefined proxy args: usable without ARG, never recorded.
        let proxies = [
            "http_proxy",
            "https_proxy",
            "ftp_proxy",
            "no_proxy",
            "all_proxy",
        ];
        if proxies.contains(&k.to_ascii_lowercase().as_str()) {
            for (who, c) in [("strata", &our_config), ("buildah", &their_config)] {
                if c.to_string().contains(v.as_str()) {
                    differ.push(format!("{who}'s config or history records {k}={v}"));
                }
            }
        }
    }
    let our_tree = unpacked_tree(&ours, w);
    let mut their_tree = unpacked_tree(&theirs, w);
    normalise_buildah(&mut their_config, &mut their_tree, &our_tree);
    for dir in workdirs(&s, &tag) {
        // Docker (BuildKit) makes every WORKDIR's directory; buildah only
        // the ones a later step needs.
        let mut path = Path::new(dir.trim_start_matches('/'));
        while let (Some(p), Some(ours)) = (path.to_str(), our_tree.get(path.to_str().unwrap())) {
            their_tree
                .entry(p.to_string())
                .or_insert_with(|| ours.clone());
            path = match path.parent() {
                Some(up) if !up.as_os_str().is_empty() => up,
                _ => break,
            };
        }
    }
    compare_trees(&our_tree, &their_tree, &mut differ);
    let (ours, theirs) = (config(our_config), config(their_config));
    for (k, v) in &ours {
        if theirs.get(k) != Some(v) {
            differ.push(format!(
                "config {k}: strata {v} / buildah {}",
                theirs.get(k).unwrap_or(&serde_json::Value::Null)
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "{name}: strata and buildah differ:\n{}",
        differ.join("\n")
    );
}

/// The directories strata's WORKDIR steps made for `tag`, cleaned: the
/// WorkingDir of each WORKDIR step's image.
fn workdirs(s: &Strata, tag: &str) -> Vec<String> {
    let format = "{{.ID}} {{.CreatedBy}}";
    let history = s.run(&["history", "--no-trunc", "--format", format, tag]);
    let mut dirs = Vec::new();
    for line in history.success().stdout.lines() {
        // A heredoc's CreatedBy goes on over several lines: only the
        // first of them starts with an id.
        let Some((id, by)) = line.split_once(' ') else {
            continue;
        };
        if id != "<missing>" && by.contains("#(nop) WORKDIR ") {
            let out = s.run(&["inspect", "-f", "{{.Config.WorkingDir}}", id]);
            let dir = out.success().stdout.trim().to_string();
            let mut clean: Vec<&str> = Vec::new();
            for c in dir.split('/') {
                match c {
                    "" | "." => {}
                    ".." => {
                        clean.pop();
                    }
                    c => clean.push(c),
                }
            }
            dirs.push(format!("/{}", clean.join("/")));
        }
    }
    dirs
}

fn strata_build(s: &Strata, ctx: &Path, tag: &str, args: &[(String, String)]) {
    let mut argv = vec!["build".to_string(), "-q".into(), "-t".into(), tag.into()];
    for (k, v) in args {
        argv.extend(["--build-arg".into(), format!("{k}={v}")]);
    }
    argv.push(ctx.to_str().unwrap().into());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    s.run(&argv).success();
}

fn buildah_build(ctx: &Path, file: Option<&Path>, tag: &str, args: &[(String, String)]) {
    let mut argv: Vec<String> = [
        "bud",
        "-q",
        "--layers",
        "--isolation",
        "chroot",
        "--format",
        "docker",
        "-t",
        tag,
    ]
    .map(String::from)
    .into();
    if let Some(f) = file {
        argv.extend(["-f".into(), f.to_str().unwrap().into()]);
    }
    for (k, v) in args {
        argv.extend(["--build-arg".into(), format!("{k}={v}")]);
    }
    argv.push(ctx.to_str().unwrap().into());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    common::tool("buildah", &argv);
}

/// Gives buildah's store the same busybox image strata imports, once per
/// test process (buildah's store outlives it, so a second pull is cheap).
fn buildah_has_busybox() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let s = Strata::new();
        s.import_busybox("busybox");
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("busybox.tar");
        s.run(&["save", "-o", archive.to_str().unwrap(), "busybox"])
            .success();
        common::tool(
            "buildah",
            &[
                "pull",
                "-q",
                &format!("docker-archive:{}", archive.display()),
            ],
        );
    });
}
