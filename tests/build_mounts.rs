//! `RUN --mount` (bind, tmpfs, secret; cache is in build_mounts_cache.rs, ssh
//! in build_mounts_ssh.rs)
//! and per-step `--network`, as the unprivileged user: what a step sees,
//! what reaches its layer (nothing of a mount), and the escapes of the
//! builder CVEs (security checklist cases 3–7, 9 and 17), each of which
//! must stay inside its root, on the three storage drivers.
#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{context, files_holding, Run, Strata, DRIVERS};

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
    assert_eq!(s.sh("e", "cat /ok").success().stdout, "ok\n");
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
        s.build_on(driver, ctx.path(), &["-t", "b"]).success();
        s.build_on(driver, ctx.path(), &["--target", "a", "-t", "a"])
            .success();
        let listing = s.sh("b", "cat /listing").success().stdout;
        assert!(
            listing.contains("rootdir"),
            "{driver}: /x is stage a's root: {listing}"
        );
        assert_eq!(s.top_layer("b"), ["listing"], "{driver}");
        assert!(
            s.sh("a", "test ! -e /BREAKOUT").code == Some(0),
            "{driver}: stage a changed"
        );
        assert!(s.sh("b", "test ! -e /BREAKOUT").code == Some(0), "{driver}");
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
    let run = s.build_on("overlay", ctx.path(), &[]);
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
        s.build_on(driver, ctx.path(), &["-t", "t"]).success();
        let df_out = s.sh("t", "cat /df").success().stdout;
        assert!(df_out.contains(" 1024 "), "{driver}: size=1m: {df_out}");
        // The mount point made through /a -> /inside is gone again: the
        // layer holds /df only.
        assert_eq!(s.top_layer("t"), ["df"], "{driver}");
        // A symlink in the image to the host's path names a path in the
        // image: the step fails (nothing to mount on) or mounts inside.
        let df = format!(
            "FROM busybox\nRUN rm -rf /a && ln -s {h} /a\nRUN --mount=type=tmpfs,target=/a/b/c touch /a/b/c/x\n",
            h = hostdir.display()
        );
        let ctx = context(&[("Dockerfile", &df)]);
        s.build_on(driver, ctx.path(), &[]);
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
            let run = s.build_on("overlay", ctx.path(), &[]);
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
        s.build_on(driver, ctx.path(), &["-t", "c"]).success();
        assert_eq!(
            snapshot(ctx.path()),
            before,
            "{driver}: the context changed"
        );
        assert_eq!(s.top_layer("c"), ["seen"], "{driver}");
        let seen = s.sh("c", "cat /seen").success().stdout;
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
        s.build_on(driver, ctx.path(), &["-t", "app"]).success();
        assert_eq!(
            s.sh("app", "cat /app /again").success().stdout,
            "artifact\nartifact\n",
            "{driver}"
        );
        assert_eq!(s.top_layer("app"), ["again"], "{driver}");
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
    s.build_on("overlay", ctx.path(), &["-t", "k"]).success();
    let again = s.build_on("overlay", ctx.path(), &["-t", "k"]).success();
    assert!(again.stdout.contains("Using cache"), "{}", again.stdout);
    fs_err::write(ctx.path().join("v"), "2").unwrap();
    let changed = s.build_on("overlay", ctx.path(), &["-t", "k"]).success();
    assert!(
        !changed.stdout.contains("Using cache"),
        "{}",
        changed.stdout
    );
    assert_eq!(s.sh("k", "cat /copy").success().stdout, "2");
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
            s.sh("final", "cat /perm").success().stdout,
            "440 1 2\n",
            "{driver}"
        );
        assert_eq!(
            s.top_layer("final"),
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
    let run = s.build_on("overlay", ctx.path(), &[]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("Dockerfile:2:1") && run.stderr.contains("secret npm is required"),
        "{}",
        run.stderr
    );
    let df = "FROM busybox\nRUN --mount=type=secret,id=npm test ! -e /run/secrets/npm\n";
    let ctx = context(&[("Dockerfile", df)]);
    s.build_on("overlay", ctx.path(), &[]).success();
    let run = s.build_on(
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
    let run = s.build_on("overlay", ctx.path(), &["--secret", "src=/x"]);
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
    s.build_on("overlay", ctx.path(), &["--secret", &flag, "-t", "k"])
        .success();
    fs_err::write(&file, "two").unwrap();
    let again = s
        .build_on("overlay", ctx.path(), &["--secret", &flag, "-t", "k"])
        .success();
    assert!(again.stdout.contains("Using cache"), "{}", again.stdout);
    assert_eq!(s.sh("k", "cat /copy").success().stdout, "one");
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
    s.build_on(
        "overlay",
        ctx.path(),
        &["-t", "n", "--allow", "network.host"],
    )
    .success();
    assert_eq!(s.sh("n", "cat /none").success().stdout, "1\n");
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
        let run = s.build_on("overlay", ctx.path(), &[]);
        assert_eq!(run.code, Some(1), "{run:?}");
        assert!(
            run.stderr.contains(want) && run.stderr.contains("Dockerfile:2:1"),
            "{}",
            run.stderr
        );
    }
    let insecure = context(&[("Dockerfile", "FROM busybox\nRUN --security=insecure true\n")]);
    let run = s.build_on(
        "overlay",
        insecure.path(),
        &["--allow", "security.insecure"],
    );
    assert!(
        run.stderr.contains("--security=insecure is refused"),
        "{run:?}"
    );
    let bad = s.build_on("overlay", insecure.path(), &["--allow", "net.host"]);
    assert_ne!(bad.code, Some(0), "{bad:?}");
    assert!(bad.stderr.contains("net.host"), "{}", bad.stderr);
}
