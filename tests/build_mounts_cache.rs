//! `RUN --mount=type=cache` as the unprivileged user: kept across builds
//! and out of layers, its sharing modes, options and seeding, its place in
//! `system df`/`prune`, and the escapes of checklist case 3 (a cache id or
//! source that climbs, a source swapped for a symlink), on the three
//! storage drivers. The other mount types are in build_mounts.rs.
#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

mod common;

use std::path::Path;

use common::{context, Run, Strata, DRIVERS};

#[test]
fn rootless_mount_cache_is_kept_across_builds_and_stays_out_of_layers() {
    let s = Strata::new();
    s.import_busybox("busybox");
    for driver in DRIVERS {
        let write = format!(
            "FROM busybox\nRUN --mount=type=cache,id={driver},target=/root/.cache/x sh -c 'echo {driver} > /root/.cache/x/f'\n"
        );
        let ctx = context(&[("Dockerfile", &write)]);
        s.build_on(driver, ctx.path(), &["-t", "w"]).success();
        let layer = s.top_layer("w");
        assert!(
            !layer.iter().any(|n| n.starts_with("root/.cache")),
            "{driver}: the cache or its mount point reached the layer: {layer:?}"
        );
        // A changed Dockerfile, so not a cache hit: the step sees the file.
        let read = format!(
            "FROM busybox\nRUN --mount=type=cache,id={driver},target=/root/.cache/x cp /root/.cache/x/f /seen\n"
        );
        let ctx = context(&[("Dockerfile", &read)]);
        s.build_on(driver, ctx.path(), &["-t", "r"]).success();
        assert_eq!(
            s.sh("r", "cat /seen").success().stdout,
            format!("{driver}\n")
        );
        assert_eq!(s.top_layer("r"), ["seen"], "{driver}");
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
    s.build_on("overlay", read.path(), &["-t", "log"]).success();
    let log = s.sh("log", "cat /log").success().stdout;
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
        s.build_on(driver, ctx.path(), &["-t", "c1"]).success();
        assert_eq!(
            s.sh("c1", "cat /seen /stage").success().stdout,
            "seeded\npkg\n",
            "{driver}: the seed, and the stage unchanged"
        );
        let second = df("sh -c 'cat /c/pkg /c/added > /seen'");
        let ctx = context(&[("Dockerfile", &second)]);
        s.build_on(driver, ctx.path(), &["-t", "c2"]).success();
        assert_eq!(
            s.sh("c2", "cat /seen").success().stdout,
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
    s.build_on("overlay", ctx.path(), &["-t", "o"]).success();
    assert_eq!(
        s.sh("o", "cat /perm /sub /ro").success().stdout,
        "750 1 2\ndeep\nsub\n"
    );
    assert_eq!(s.top_layer("o"), ["ro"]);
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
    assert_eq!(s.sh("a", "cat /after").success().stdout, "a\n");
    assert_eq!(s.sh("b", "cat /after").success().stdout, "b\n");
    let read = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN --mount=type=cache,id=p,target=/c,sharing=private ls /c > /seen\n",
    )]);
    s.build_on("overlay", read.path(), &["-t", "r"]).success();
    let seen = s.sh("r", "cat /seen").success().stdout;
    assert!(seen == "a\n" || seen == "b\n", "a kept instance: {seen}");
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
    let run = s.build_on("overlay", ctx.path(), &["-t", "climb"]);
    if run.code == Some(0) {
        let out = s
            .sh("climb", "cat /by-id /by-source /by-from")
            .success()
            .stdout;
        assert!(!out.contains("CANARY"), "a host file is visible: {out}");
        assert!(out.contains("stagefile"), "from=ctx shows the stage: {out}");
        let id = s.sh("climb", "cat /by-id").success().stdout;
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
            let run = s.build_on(driver, ctx.path(), &["-t", "swap"]);
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
            let seen = s.sh("swap", "cat /read /list").success().stdout;
            assert!(!seen.contains("HOST-CANARY"), "{driver}: {seen}");
            assert!(
                seen.ends_with("src\n"),
                "{driver}: the cache's root: {seen}"
            );
        }
    }
    assert_eq!(fs_err::read_dir(host.path()).unwrap().count(), 1);
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
        s.build_on("overlay", ctx.path(), &["-t", "c"]).success();
        s.sh("c", "cat /seen").success().stdout
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
