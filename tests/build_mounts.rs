//! `RUN --mount` (cache, bind, tmpfs, secret; ssh is in build_mounts_ssh.rs)
//! and per-step `--network`, as the unprivileged user: what a step sees,
//! what reaches its layer (nothing of a mount), and the escapes of the
//! builder CVEs (security checklist cases 3–7, 9 and 17), each of which
//! must stay inside its root, on the three storage drivers.
#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{context, files_holding, Run, Strata};

const DRIVERS: [&str; 3] = ["overlay", "fuse-overlayfs", "vfs"];

fn build(s: &Strata, driver: &str, dir: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["--storage-driver", driver, "build"];
    args.extend(extra);
    args.push(dir.to_str().unwrap());
    s.run(&args)
}

fn sh(s: &Strata, image: &str, script: &str) -> Run {
    s.run(&["run", "--rm", image, "sh", "-c", script])
}

/// The entry names of an image's last layer (from `strata save`).
fn top_layer(s: &Strata, image: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("img.tar");
    s.run(&["save", "-o", out.to_str().unwrap(), image])
        .success();
    let mut files = BTreeMap::new();
    let mut archive = tar::Archive::new(fs_err::File::open(&out).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        files.insert(name, bytes);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let layers = manifest[0]["Layers"].as_array().unwrap();
    let top = layers.last().unwrap().as_str().unwrap();
    let mut layer = tar::Archive::new(files[top].as_slice());
    let mut names: Vec<String> = layer
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            name.trim_start_matches("./")
                .trim_end_matches('/')
                .to_string()
        })
        .filter(|n| !n.is_empty() && n != ".")
        .collect();
    names.sort();
    names
}

/// Every file under `dir` with its content, mode and size, for comparing.
fn snapshot(dir: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs_err::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            let meta = fs_err::symlink_metadata(&path).unwrap();
            let name = path.strip_prefix(dir).unwrap().display().to_string();
            let content = match meta.is_file() {
                true => fs_err::read(&path).unwrap(),
                false => Vec::new(),
            };
            out.insert(name, (meta.mode(), content));
            if meta.is_dir() {
                todo.push(path);
            }
        }
    }
    out
}

#[test]
fn rootless_mount_cache_is_kept_across_builds_and_stays_out_of_layers() {
    let s = Strata::new();
    s.import_busybox("busybox");
    for driver in DRIVERS {
        let write = format!(
            "FROM busybox\nRUN --mount=type=cache,id={driver},target=/root/.cache/x sh -c 'echo {driver} > /root/.cache/x/f'\n"
        );
        let ctx = context(&[("Dockerfile", &write)]);
        build(&s, driver, ctx.path(), &["-t", "w"]).success();
        let layer = top_layer(&s, "w");
        assert!(
            !layer.iter().any(|n| n.starts_with("root/.cache")),
            "{driver}: the cache or its mount point reached the layer: {layer:?}"
        );
        // A changed Dockerfile, so not a cache hit: the step sees the file.
        let read = format!(
            "FROM busybox\nRUN --mount=type=cache,id={driver},target=/root/.cache/x cp /root/.cache/x/f /seen\n"
        );
        let ctx = context(&[("Dockerfile", &read)]);
        build(&s, driver, ctx.path(), &["-t", "r"]).success();
        assert_eq!(
            sh(&s, "r", "cat /seen").success().stdout,
            format!("{driver}\n")
        );
        assert_eq!(top_layer(&s, "r"), ["seen"], "{driver}");
    }
}

#[test]
fn rootless_mount_cache_sharing_locked_makes_the_second_build_wait() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let step = |name: &str| {
        format!(
            "FROM busybox\nRUN --mount=type=cache,id=l,target=/c,sharing=locked sh -c 'echo start-{name} >> /c/log; sleep 3; echo end-{name} >> /c/log'\n"
        )
    };
    let (a, b) = (
        context(&[("Dockerfile", &step("a"))]),
        context(&[("Dockerfile", &step("b"))]),
    );
    let spawn = |dir: &Path| {
        s.cmd()
            .args(["build", "-q", dir.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = spawn(a.path());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let second = spawn(b.path());
    let first = Run::of(first.wait_with_output().unwrap()).success();
    let second = Run::of(second.wait_with_output().unwrap()).success();
    let both = format!("{}{}", first.stderr, second.stderr);
    assert!(
        both.contains("waiting for cache mount /c"),
        "{first:?} {second:?}"
    );
    let read = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN --mount=type=cache,id=l,target=/c cp /c/log /log\n",
    )]);
    build(&s, "overlay", read.path(), &["-t", "log"]).success();
    let log = sh(&s, "log", "cat /log").success().stdout;
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 4, "{log}");
    for pair in lines.chunks(2) {
        assert_eq!(
            pair[0].strip_prefix("start-"),
            pair[1].strip_prefix("end-"),
            "the steps interleaved: {log}"
        );
    }
}

/// `from=` seeds a new cache with that path of a stage (BuildKit: the base
/// of the cache); what a step writes stays in the cache for the next
/// build, and the stage itself is never written.
#[test]
fn rootless_mount_cache_seeded_from_a_stage() {
    for driver in DRIVERS {
        let s = Strata::new();
        s.import_busybox("busybox");
        let df = |run: &str| {
            format!(
                "FROM busybox AS deps\nRUN mkdir -p /deps && echo seeded > /deps/pkg\n\
                 FROM busybox\nRUN --mount=type=cache,id=s,from=deps,source=/deps,target=/c {run}\n\
                 RUN --mount=type=bind,from=deps,source=/deps,target=/d ls /d > /stage\n"
            )
        };
        let first = df(&format!(
            "sh -c 'cat /c/pkg > /seen && echo {driver} > /c/added'"
        ));
        let ctx = context(&[("Dockerfile", &first)]);
        build(&s, driver, ctx.path(), &["-t", "c1"]).success();
        assert_eq!(
            sh(&s, "c1", "cat /seen /stage").success().stdout,
            "seeded\npkg\n",
            "{driver}: the seed, and the stage unchanged"
        );
        let second = df("sh -c 'cat /c/pkg /c/added > /seen'");
        let ctx = context(&[("Dockerfile", &second)]);
        build(&s, driver, ctx.path(), &["-t", "c2"]).success();
        assert_eq!(
            sh(&s, "c2", "cat /seen").success().stdout,
            format!("seeded\n{driver}\n"),
            "{driver}: the cache was kept"
        );
    }
}

/// The cache options of BuildKit's reference not covered above: `mode`,
/// `uid`, `gid` give a new cache its owner and mode; `source=` mounts a
/// directory inside the cache; `ro` mounts it read-only.
#[test]
fn rootless_mount_cache_options_mode_owner_source_and_ro() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let df = "FROM busybox\n\
              RUN --mount=type=cache,id=o,target=/c,mode=0750,uid=1,gid=2 sh -c 'stat -c \"%a %u %g\" /c > /perm && mkdir -p /c/sub && echo deep > /c/sub/f'\n\
              RUN --mount=type=cache,id=o,source=sub,target=/s cat /s/f > /sub\n\
              RUN --mount=type=cache,id=o,target=/r,ro sh -c '! touch /r/new 2>/dev/null && ls /r > /ro'\n";
    let ctx = context(&[("Dockerfile", df)]);
    build(&s, "overlay", ctx.path(), &["-t", "o"]).success();
    assert_eq!(
        sh(&s, "o", "cat /perm /sub /ro").success().stdout,
        "750 1 2\ndeep\nsub\n"
    );
    assert_eq!(top_layer(&s, "o"), ["ro"]);
}

/// `sharing=private`: a second build using the cache while the first holds
/// it gets an instance of its own (no waiting, neither sees the other's
/// file); once free, an instance is used again.
#[test]
fn rootless_mount_cache_sharing_private_gives_each_holder_its_own() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let step = |name: &str| {
        format!(
            "FROM busybox\nRUN --mount=type=cache,id=p,target=/c,sharing=private sh -c 'ls /c > /before; touch /c/{name}; sleep 3; ls /c > /after'\n"
        )
    };
    let (a, b) = (
        context(&[("Dockerfile", &step("a"))]),
        context(&[("Dockerfile", &step("b"))]),
    );
    let spawn = |dir: &Path, tag: &str| {
        s.cmd()
            .args(["build", "-q", "-t", tag, dir.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = spawn(a.path(), "a");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let second = spawn(b.path(), "b");
    let first = Run::of(first.wait_with_output().unwrap()).success();
    let second = Run::of(second.wait_with_output().unwrap()).success();
    assert!(
        !format!("{first:?}{second:?}").contains("waiting"),
        "{first:?} {second:?}"
    );
    assert_eq!(sh(&s, "a", "cat /after").success().stdout, "a\n");
    assert_eq!(sh(&s, "b", "cat /after").success().stdout, "b\n");
    let read = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN --mount=type=cache,id=p,target=/c,sharing=private ls /c > /seen\n",
    )]);
    build(&s, "overlay", read.path(), &["-t", "r"]).success();
    let seen = sh(&s, "r", "cat /seen").success().stdout;
    assert!(seen == "a\n" || seen == "b\n", "a kept instance: {seen}");
}

/// `--secret type=env,...` (and `id=ID,env=VAR`) reads strata's
/// environment; the step gets it as a file or as `env=`; the value is in
/// neither the image, the output, the JSON report nor the store (the report
/// is written into the store's directory, so the store's grep covers it).
#[test]
fn rootless_mount_secret_from_the_environment() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let df = "FROM busybox\n\
              RUN --mount=type=secret,id=tok --mount=type=secret,id=api,env=API_KEY \
                  sh -c 'test \"$(tr a-z A-Z < /run/secrets/tok)\" = ENV-TOK-41 && test \"$(echo $API_KEY | tr a-z A-Z)\" = ENV-API-42 && echo ok > /ok'\n";
    let ctx = context(&[("Dockerfile", df)]);
    let report = s.root.path().join("report.json");
    let run = Run::of(
        s.cmd()
            .env("TOK_VAR", "env-tok-41")
            .env("api", "env-api-42")
            .args(["build", "-t", "e", "--progress", "plain", "--report"])
            .arg(&report)
            .args(["--secret", "type=env,id=tok,src=TOK_VAR"])
            .args(["--secret", "id=api,type=env"])
            .arg(ctx.path())
            .output()
            .unwrap(),
    )
    .success();
    assert_eq!(sh(&s, "e", "cat /ok").success().stdout, "ok\n");
    let report = fs_err::read_to_string(&report).unwrap();
    assert!(report.contains("\"steps\""), "{report}");
    let saved = s.root.path().join("e.tar");
    s.run(&["save", "-o", saved.to_str().unwrap(), "e"])
        .success();
    let image = fs_err::read(&saved).unwrap();
    fs_err::remove_file(&saved).unwrap();
    for value in ["env-tok-41", "env-api-42"] {
        assert!(!format!("{run:?}").contains(value), "{value} in the output");
        assert!(
            !image.windows(value.len()).any(|w| w == value.as_bytes()),
            "{value} in the image"
        );
        let found = files_holding(s.root.path(), value.as_bytes());
        assert!(found.is_empty(), "{value} in the store: {found:?}");
    }
}

/// Case 3 (CVE-2024-9675): a cache id or source that climbs, and a source
/// climbing out of a stage, show an empty cache or the stage, never the host.
#[test]
fn rootless_mount_cache_id_and_source_cannot_climb_out() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let host = tempfile::tempdir().unwrap();
    fs_err::write(host.path().join("CANARY"), "host").unwrap();
    let up = "../".repeat(12);
    let dir = host.path().display().to_string();
    let df = format!(
        "FROM busybox AS ctx\nRUN echo stage > /stagefile\n\
         FROM busybox\n\
         RUN --mount=type=cache,id={up}{dir},target=/c ls -a /c > /by-id\n\
         RUN --mount=type=cache,target=/d,source={up}{dir} ls -a /d > /by-source\n\
         RUN --mount=type=bind,from=ctx,source=../../..,target=/e ls -a /e > /by-from\n"
    );
    let ctx = context(&[("Dockerfile", &df)]);
    let run = build(&s, "overlay", ctx.path(), &["-t", "climb"]);
    if run.code == Some(0) {
        let out = sh(&s, "climb", "cat /by-id /by-source /by-from")
            .success()
            .stdout;
        assert!(!out.contains("CANARY"), "a host file is visible: {out}");
        assert!(out.contains("stagefile"), "from=ctx shows the stage: {out}");
        let id = sh(&s, "climb", "cat /by-id").success().stdout;
        assert_eq!(id, ".\n..\n", "a new cache is empty");
    } else {
        assert!(!run.stderr.contains("CANARY"), "{run:?}");
    }
    assert_eq!(
        fs_err::read_dir(host.path()).unwrap().count(),
        1,
        "nothing was created in the host directory"
    );
}

/// Case 3 (CVE-2024-23651, BuildKit's testCacheMountSourceEscape): stage
/// one fills a cache, stage two swaps its `src` directory for a symlink to a
/// host directory (absolute, or climbing out of the cache), stage three
/// mounts `source=src`: the source is resolved inside the cache, so the
/// build fails (no such path in the cache) and the host canary is never
/// read; a link to `/` is the cache's own root.
#[test]
fn rootless_mount_cache_source_swapped_for_a_symlink_stays_in_the_cache() {
    let host = tempfile::tempdir().unwrap();
    fs_err::write(host.path().join("hostname"), "HOST-CANARY-5e1").unwrap();
    let dir = host.path().display().to_string();
    let climbing = format!("{}{dir}", "../".repeat(12));
    for driver in DRIVERS {
        let s = Strata::new();
        s.import_busybox("busybox");
        for (n, link) in [dir.as_str(), climbing.as_str(), "/"]
            .into_iter()
            .enumerate()
        {
            let df = format!(
                "FROM busybox AS fill\n\
                 RUN --mount=type=cache,id=c{n},target=/c mkdir -p /c/src && echo cache > /c/src/hostname\n\
                 FROM fill AS swap\n\
                 RUN --mount=type=cache,id=c{n},target=/c rm -rf /c/src && ln -s {link} /c/src\n\
                 FROM swap\n\
                 RUN --mount=type=cache,id=c{n},source=src,target=/m sh -c 'cat /m/hostname > /read 2>&1; ls /m > /list'\n"
            );
            let ctx = context(&[("Dockerfile", &df)]);
            let run = build(&s, driver, ctx.path(), &["-t", "swap"]);
            assert!(
                !format!("{run:?}").contains("HOST-CANARY"),
                "{driver}: {run:?}"
            );
            if link != "/" {
                assert_eq!(run.code, Some(1), "{driver} {link}: {run:?}");
                assert!(run.stderr.contains("is not in the cache"), "{}", run.stderr);
                continue;
            }
            run.success();
            let seen = sh(&s, "swap", "cat /read /list").success().stdout;
            assert!(!seen.contains("HOST-CANARY"), "{driver}: {seen}");
            assert!(
                seen.ends_with("src\n"),
                "{driver}: the cache's root: {seen}"
            );
        }
    }
    assert_eq!(fs_err::read_dir(host.path()).unwrap().count(), 1);
}

/// Case 4 (CVE-2024-1753): an `rw` bind of a stage's `/rootdir -> /`
/// writes into a throwaway copy of that stage, never outside it.
#[test]
fn rootless_mount_bind_from_a_stage_symlink_to_root_stays_in_the_stage() {
    let s = Strata::new();
    s.import_busybox("busybox");
    for driver in DRIVERS {
        let df = "FROM busybox AS a\nRUN ln -s / /rootdir\n\
                  FROM busybox\n\
                  RUN --mount=type=bind,from=a,source=/rootdir,target=/x,rw sh -c 'touch /x/BREAKOUT && ls /x > /listing'\n";
        let ctx = context(&[("Dockerfile", df)]);
        build(&s, driver, ctx.path(), &["-t", "b"]).success();
        build(&s, driver, ctx.path(), &["--target", "a", "-t", "a"]).success();
        let listing = sh(&s, "b", "cat /listing").success().stdout;
        assert!(
            listing.contains("rootdir"),
            "{driver}: /x is stage a's root: {listing}"
        );
        assert_eq!(top_layer(&s, "b"), ["listing"], "{driver}");
        assert!(
            sh(&s, "a", "test ! -e /BREAKOUT").code == Some(0),
            "{driver}: stage a changed"
        );
        assert!(
            sh(&s, "b", "test ! -e /BREAKOUT").code == Some(0),
            "{driver}"
        );
        assert!(!Path::new("/BREAKOUT").exists());
    }
}

/// The same through a stage's file symlink to a host path: the source is
/// resolved inside the stage, so it names the stage's own file or nothing.
#[test]
fn rootless_mount_bind_source_symlinks_resolve_inside_the_stage() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let host = tempfile::tempdir().unwrap();
    let canary = host.path().join("canary");
    fs_err::write(&canary, "host secret").unwrap();
    let df = format!(
        "FROM busybox AS a\nRUN ln -s {} /link\n\
         FROM busybox\nRUN --mount=type=bind,from=a,source=/link,target=/x cat /x\n",
        canary.display()
    );
    let ctx = context(&[("Dockerfile", &df)]);
    let run = build(&s, "overlay", ctx.path(), &[]);
    assert_ne!(run.code, Some(0), "the link names nothing in the stage");
    assert!(!run.stdout.contains("host secret") && !run.stderr.contains("host secret"));
}

/// Case 6 (CVE-2024-23652): a step that swaps its tmpfs mount point's
/// parent for a symlink to a host directory cannot touch that directory,
/// nor can a symlink in the image lead the mount point out.
#[test]
fn rootless_mount_tmpfs_mount_points_never_reach_the_host() {
    let s = Strata::new();
    s.import_busybox("busybox");
    for driver in DRIVERS {
        let host = tempfile::tempdir().unwrap();
        let hostdir = host.path().join("HOSTDIR");
        fs_err::create_dir_all(hostdir.join("b/c")).unwrap();
        let df = format!(
            "FROM busybox\n\
             RUN --mount=type=tmpfs,target=/a/b/c sh -c 'rm -rf /a; ln -s {h} /a; true'\n\
             RUN rm -rf /a && mkdir /inside && ln -s /inside /a\n\
             RUN --mount=type=tmpfs,target=/a/b/c/d,size=1m sh -c 'df -k /a/b/c/d > /df'\n",
            h = hostdir.display()
        );
        let ctx = context(&[("Dockerfile", &df)]);
        build(&s, driver, ctx.path(), &["-t", "t"]).success();
        let df_out = sh(&s, "t", "cat /df").success().stdout;
        assert!(df_out.contains(" 1024 "), "{driver}: size=1m: {df_out}");
        // The mount point made through /a -> /inside is gone again: the
        // layer holds /df only.
        assert_eq!(top_layer(&s, "t"), ["df"], "{driver}");
        // A symlink in the image to the host's path names a path in the
        // image: the step fails (nothing to mount on) or mounts inside.
        let df = format!(
            "FROM busybox\nRUN rm -rf /a && ln -s {h} /a\nRUN --mount=type=tmpfs,target=/a/b/c touch /a/b/c/x\n",
            h = hostdir.display()
        );
        let ctx = context(&[("Dockerfile", &df)]);
        build(&s, driver, ctx.path(), &[]);
        assert!(
            hostdir.join("b/c").is_dir(),
            "{driver}: the host directory is still there"
        );
        assert_eq!(fs_err::read_dir(hostdir.join("b/c")).unwrap().count(), 0);
    }
}

/// Case 7 (CVE-2024-9407): propagation options are not Docker's for RUN.
#[test]
fn rootless_mount_bind_propagation_is_refused_naming_the_line() {
    let s = Strata::new();
    s.import_busybox("busybox");
    for value in ["shared", "rshared", "garbage"] {
        for kind in ["bind", "cache"] {
            let df = format!(
                "FROM busybox\nRUN --mount=type={kind},target=/x,bind-propagation={value} true\n"
            );
            let ctx = context(&[("Dockerfile", &df)]);
            let run = build(&s, "overlay", ctx.path(), &[]);
            assert_eq!(run.code, Some(1), "{run:?}");
            assert!(
                run.stderr.contains("Dockerfile:2") && run.stderr.contains("bind-propagation"),
                "{}",
                run.stderr
            );
        }
    }
}

/// Case 17: an `rw` bind of the context writes to a copy; the context on
/// the host is unchanged, setuid files included.
#[test]
fn rootless_mount_bind_of_the_context_rw_leaves_it_unchanged() {
    let s = Strata::new();
    s.import_busybox("busybox");
    for driver in DRIVERS {
        let df = "FROM busybox\n\
                  RUN --mount=type=bind,source=/,target=/ctx,rw sh -c 'echo x > /ctx/new && chmod 4755 /ctx/new && echo changed > /ctx/file && rm /ctx/gone && ls /ctx > /seen'\n";
        let ctx = context(&[("Dockerfile", df), ("file", "original"), ("gone", "here")]);
        let before = snapshot(ctx.path());
        build(&s, driver, ctx.path(), &["-t", "c"]).success();
        assert_eq!(
            snapshot(ctx.path()),
            before,
            "{driver}: the context changed"
        );
        assert_eq!(top_layer(&s, "c"), ["seen"], "{driver}");
        let seen = sh(&s, "c", "cat /seen").success().stdout;
        assert!(seen.contains("new") && !seen.contains("gone"), "{seen}");
    }
}

/// `type=bind,from=stage` instead of a COPY: the step's layer holds only
/// what the RUN wrote; a read-only bind refuses writes.
#[test]
fn rootless_mount_bind_from_a_stage_avoids_a_copy() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let df = "FROM busybox AS builder\nRUN mkdir /out && echo artifact > /out/app && echo big > /out/tools\n\
              FROM busybox\n\
              RUN --mount=type=bind,from=builder,source=/out,target=/in cp /in/app /app\n\
              RUN --mount=type=bind,from=builder,source=/out/app,target=/in/app sh -c '! echo x > /in/app && cat /in/app > /again'\n";
    let ctx = context(&[("Dockerfile", df)]);
    for driver in DRIVERS {
        build(&s, driver, ctx.path(), &["-t", "app"]).success();
        assert_eq!(
            sh(&s, "app", "cat /app /again").success().stdout,
            "artifact\nartifact\n",
            "{driver}"
        );
        assert_eq!(top_layer(&s, "app"), ["again"], "{driver}");
    }
}

/// A bind of the context is keyed by its content: a changed file reruns
/// the step, an unchanged context is a cache hit.
#[test]
fn rootless_mount_bind_of_the_context_is_keyed_by_its_content() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let df = "FROM busybox\nRUN --mount=type=bind,source=v,target=/v cp /v /copy\n";
    let ctx = context(&[("Dockerfile", df), ("v", "1")]);
    build(&s, "overlay", ctx.path(), &["-t", "k"]).success();
    let again = build(&s, "overlay", ctx.path(), &["-t", "k"]).success();
    assert!(again.stdout.contains("Using cache"), "{}", again.stdout);
    fs_err::write(ctx.path().join("v"), "2").unwrap();
    let changed = build(&s, "overlay", ctx.path(), &["-t", "k"]).success();
    assert!(
        !changed.stdout.contains("Using cache"),
        "{}",
        changed.stdout
    );
    assert_eq!(sh(&s, "k", "cat /copy").success().stdout, "2");
}

/// Case 9: a secret as a file (owner and mode as asked) and as a variable
/// reaches the step and nothing else: not the image, its layers, config or
/// history, not the store, not the output; a build arg used only in a
/// builder stage stays out of the final image, and its name warns.
#[test]
fn rootless_mount_secrets_reach_the_step_and_nothing_else() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tok");
    fs_err::write(&file, "p4ss-FILE-9f3a").unwrap();
    for driver in DRIVERS {
        let df = "FROM busybox AS builder\nARG TOKEN\n\
                  RUN test \"$(echo $TOKEN | tr a-z A-Z)\" = S3CR3T-ARG-77 && echo built > /artifact\n\
                  RUN --mount=type=secret,id=t test \"$(tr a-z A-Z < /run/secrets/t)\" = P4SS-FILE-9F3A\n\
                  FROM busybox\nCOPY --from=builder /artifact /artifact\n\
                  RUN --mount=type=secret,id=t,target=/etc/app/tok,mode=0440,uid=1,gid=2 \
                      --mount=type=secret,id=e,env=APP_TOKEN \
                      sh -c 'stat -c \"%a %u %g\" /etc/app/tok > /perm && test \"$(tr a-z A-Z < /etc/app/tok)\" = P4SS-FILE-9F3A && test \"$(echo $APP_TOKEN | tr a-z A-Z)\" = P4SS-ENV-C0DE && ! touch /etc/app/tok'\n";
        let ctx = context(&[("Dockerfile", df)]);
        let secret = format!("id=t,src={}", file.display());
        let run = Run::of(
            s.cmd()
                .env("MY_ENV_SECRET", "p4ss-ENV-c0de")
                .args([
                    "--storage-driver",
                    driver,
                    "build",
                    "-t",
                    "final",
                    "--build-arg",
                    "TOKEN=s3cr3t-ARG-77",
                ])
                .args(["--secret", &secret, "--secret", "id=e,env=MY_ENV_SECRET"])
                .arg(ctx.path())
                .output()
                .unwrap(),
        )
        .success();
        let output = format!("{}{}", run.stdout, run.stderr);
        assert!(output.contains("SecretsUsedInArgOrEnv"), "{output}");
        assert_eq!(
            sh(&s, "final", "cat /perm").success().stdout,
            "440 1 2\n",
            "{driver}"
        );
        assert_eq!(
            top_layer(&s, "final"),
            ["perm"],
            "{driver}: no mount point is left"
        );
        let saved = dir.path().join(format!("final-{driver}.tar"));
        s.run(&["save", "-o", saved.to_str().unwrap(), "final"])
            .success();
        for value in ["p4ss-FILE-9f3a", "p4ss-ENV-c0de", "s3cr3t-ARG-77"] {
            assert!(
                !output.contains(value),
                "{driver}: {value} in the output: {output}"
            );
            let image = fs_err::read(&saved).unwrap();
            assert!(
                !image.windows(value.len()).any(|w| w == value.as_bytes()),
                "{driver}: {value} in the image"
            );
        }
        for value in ["p4ss-FILE-9f3a", "p4ss-ENV-c0de"] {
            let found = files_holding(s.root.path(), value.as_bytes());
            assert!(
                found.is_empty(),
                "{driver}: {value} in the store: {found:?}"
            );
        }
        fs_err::remove_file(&saved).unwrap();
    }
}

/// A required secret that was not given is an error naming its id and the
/// line; an optional one is simply absent; a missing --secret file stops
/// the build before it starts.
#[test]
fn rootless_mount_secret_required_missing_and_bad_flags() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let df = "FROM busybox\nRUN --mount=type=secret,id=npm,required=true true\n";
    let ctx = context(&[("Dockerfile", df)]);
    let run = build(&s, "overlay", ctx.path(), &[]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("Dockerfile:2:1") && run.stderr.contains("secret npm is required"),
        "{}",
        run.stderr
    );
    let df = "FROM busybox\nRUN --mount=type=secret,id=npm test ! -e /run/secrets/npm\n";
    let ctx = context(&[("Dockerfile", df)]);
    build(&s, "overlay", ctx.path(), &[]).success();
    let run = build(
        &s,
        "overlay",
        ctx.path(),
        &["--secret", "id=npm,src=/nonexistent/tok"],
    );
    assert_ne!(run.code, Some(0));
    assert!(
        run.stderr.contains("--secret") && run.stderr.contains("/nonexistent/tok"),
        "{}",
        run.stderr
    );
    let run = build(&s, "overlay", ctx.path(), &["--secret", "src=/x"]);
    assert!(run.stderr.contains("secret missing ID"), "{}", run.stderr);
}

/// A secret's value does not decide a rebuild (BuildKit's rule): a changed
/// value is still a cache hit.
#[test]
fn rootless_mount_secret_values_are_not_in_the_key() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tok");
    fs_err::write(&file, "one").unwrap();
    let df = "FROM busybox\nRUN --mount=type=secret,id=t cp /run/secrets/t /copy\n";
    let ctx = context(&[("Dockerfile", df)]);
    let flag = format!("id=t,src={}", file.display());
    build(&s, "overlay", ctx.path(), &["--secret", &flag, "-t", "k"]).success();
    fs_err::write(&file, "two").unwrap();
    let again = build(&s, "overlay", ctx.path(), &["--secret", &flag, "-t", "k"]).success();
    assert!(again.stdout.contains("Using cache"), "{}", again.stdout);
    assert_eq!(sh(&s, "k", "cat /copy").success().stdout, "one");
}

/// `RUN --network=none` has only a loopback; `--network=host` runs with
/// `--allow network.host` only (Docker's entitlement); `--security=insecure`
/// and a required ssh agent not given are refused naming the line.
#[test]
fn rootless_mount_network_per_step_and_refusals() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let df = "FROM busybox\n\
              RUN --network=none sh -c 'grep -c : /proc/net/dev > /none'\n\
              RUN --network=default true\nRUN --network=host true\n";
    let ctx = context(&[("Dockerfile", df)]);
    build(
        &s,
        "overlay",
        ctx.path(),
        &["-t", "n", "--allow", "network.host"],
    )
    .success();
    assert_eq!(sh(&s, "n", "cat /none").success().stdout, "1\n");
    for (line, want) in [
        (
            "RUN --network=host true",
            "RUN --network=host is not allowed: pass --allow network.host",
        ),
        ("RUN --security=insecure true", "--security=insecure"),
        (
            "RUN --mount=type=ssh,required=true true",
            "ssh agent default is required",
        ),
    ] {
        let ctx = context(&[("Dockerfile", &format!("FROM busybox\n{line}\n"))]);
        let run = build(&s, "overlay", ctx.path(), &[]);
        assert_eq!(run.code, Some(1), "{run:?}");
        assert!(
            run.stderr.contains(want) && run.stderr.contains("Dockerfile:2:1"),
            "{}",
            run.stderr
        );
    }
    let insecure = context(&[("Dockerfile", "FROM busybox\nRUN --security=insecure true\n")]);
    let run = build(
        &s,
        "overlay",
        insecure.path(),
        &["--allow", "security.insecure"],
    );
    assert!(
        run.stderr.contains("--security=insecure is refused"),
        "{run:?}"
    );
    let bad = build(&s, "overlay", insecure.path(), &["--allow", "net.host"]);
    assert_ne!(bad.code, Some(0), "{bad:?}");
    assert!(bad.stderr.contains("net.host"), "{}", bad.stderr);
}

/// Cache mounts are shown by `system df` and removed by `system prune
/// --cache-mounts` and by `prune -a`; a build after finds an empty cache.
#[test]
fn rootless_mount_cache_mounts_in_system_df_and_prune() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let row = |s: &Strata| {
        let out = s
            .run(&[
                "system",
                "df",
                "--format",
                "{{.Type}} {{.TotalCount}} {{.Active}}",
            ])
            .success()
            .stdout;
        out.lines()
            .find(|l| l.starts_with("Cache Mounts"))
            .unwrap_or_else(|| panic!("no Cache Mounts row: {out}"))
            .to_string()
    };
    assert_eq!(row(&s), "Cache Mounts 0 0");
    let write = |n: &str| {
        let df = format!(
            "FROM busybox\nRUN --mount=type=cache,target=/c sh -c 'ls /c > /seen; echo {n} > /c/f'\n"
        );
        let ctx = context(&[("Dockerfile", &df)]);
        build(&s, "overlay", ctx.path(), &["-t", "c"]).success();
        sh(&s, "c", "cat /seen").success().stdout
    };
    assert_eq!(write("1"), "");
    assert_eq!(row(&s), "Cache Mounts 1 0");
    let pruned = s
        .run(&["system", "prune", "--cache-mounts"])
        .success()
        .stdout;
    assert!(pruned.contains("Deleted 1 cache mount(s)"), "{pruned}");
    assert_eq!(row(&s), "Cache Mounts 0 0");
    assert_eq!(write("2"), "", "the cache was emptied");
    assert_eq!(write("3"), "f\n", "and is kept again");
    let all = s.run(&["system", "prune", "-a"]).success().stdout;
    assert!(all.contains("Deleted 1 cache mount(s)"), "{all}");
    assert_eq!(row(&s), "Cache Mounts 0 0");
}
