//! `strata build` as an unprivileged user: steps, output, cache, failures.
#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

mod common;

use common::{context, Run, Strata};

fn inspect(s: &Strata, image: &str) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(&s.run(&["inspect", image]).success().stdout).unwrap()
        [0]
    .clone()
}

const DOCKERFILE: &str = "ARG BASE=busybox
FROM ${BASE} AS base
ARG GREETING=hello
ENV WHO=world
RUN echo \"$GREETING $WHO\" > /greeting
WORKDIR /app
RUN pwd > where
LABEL version=1
EXPOSE 8080 53/udp
VOLUME /data
USER nobody
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s CMD true
SHELL [\"/bin/sh\", \"-ec\"]
ONBUILD RUN echo triggered
CMD [\"cat\", \"/greeting\"]

FROM base AS final
ENTRYPOINT [\"/bin/sh\", \"-c\"]
";

#[test]
fn rootless_build_runs_every_step_and_sets_the_config() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let ctx = context(&[("Dockerfile", DOCKERFILE)]);
    let out = s
        .build(ctx.path(), &["-t", "app", "--build-arg", "GREETING=hi"])
        .success()
        .stdout;
    let steps: Vec<&str> = out.lines().filter(|l| l.starts_with("Step ")).collect();
    assert_eq!(steps.len(), 17, "{out}");
    assert_eq!(steps[0], "Step 1/17 : FROM ${BASE} AS base");
    assert!(out.contains(" ---> Running in "), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("Successfully built ")),
        "{out}"
    );
    assert!(out.ends_with("Successfully tagged app:latest\n"), "{out}");
    assert!(
        out.contains("# Executing 1 build trigger") && out.contains("\ntriggered\n"),
        "FROM base runs base's ONBUILD: {out}"
    );
    let config = inspect(&s, "app")["Config"].clone();
    assert_eq!(
        config["Env"].as_array().unwrap().last().unwrap(),
        "WHO=world"
    );
    assert_eq!(config["WorkingDir"], "/app");
    assert_eq!(config["User"], "nobody");
    assert_eq!(config["Labels"]["version"], "1");
    assert!(
        config["ExposedPorts"].get("53/udp").is_some()
            && config["ExposedPorts"].get("8080/tcp").is_some()
    );
    assert!(config["Volumes"].get("/data").is_some());
    assert_eq!(config["StopSignal"], "SIGTERM");
    assert_eq!(
        config["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "true"])
    );
    assert_eq!(config["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    assert_eq!(
        config["OnBuild"],
        serde_json::Value::Null,
        "triggers do not pass on"
    );
    assert_eq!(config["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(
        config["Cmd"],
        serde_json::Value::Null,
        "ENTRYPOINT resets the inherited CMD"
    );
    let ran = s
        .run(&[
            "run",
            "--rm",
            "-u",
            "root",
            "app",
            "cat /greeting /app/where",
        ])
        .success()
        .stdout;
    assert_eq!(ran, "hi world\n/app\n");
    // The base stage keeps its trigger, which fires in a child build.
    s.build(ctx.path(), &["--target", "base", "-t", "base-img"])
        .success();
    assert_eq!(
        inspect(&s, "base-img")["Config"]["OnBuild"],
        serde_json::json!(["RUN echo triggered"])
    );
    let child = context(&[("Dockerfile", "FROM base-img\nRUN test -d /app\n")]);
    let out = s.build(child.path(), &["-t", "child"]).success().stdout;
    assert!(
        out.contains("# Executing 1 build trigger") && out.contains("triggered"),
        "{out}"
    );
}

#[test]
fn rootless_build_cache_hits_and_misses() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let df = "FROM busybox\nRUN echo start\nARG V=1\nRUN echo v=$V > /v\nENV X=1\nRUN echo end\n";
    let ctx = context(&[("Dockerfile", df)]);
    let first = s.build(ctx.path(), &["-t", "c"]).success().stdout;
    assert_eq!(first.matches("Using cache").count(), 0, "{first}");
    let again = s.build(ctx.path(), &["-t", "c"]).success().stdout;
    assert_eq!(
        again.matches("Using cache").count(),
        5,
        "every step after FROM hits: {again}"
    );
    assert_eq!(again.lines().last(), first.lines().last());
    let changed = s
        .build(ctx.path(), &["-t", "c", "--build-arg", "V=2"])
        .success()
        .stdout;
    // As Docker: every RUN after the ARG sees V in its environment.
    assert_eq!(
        changed.matches("Using cache").count(),
        2,
        "the steps up to the ARG hit: {changed}"
    );
    let no_cache = s
        .build(ctx.path(), &["-t", "c", "--no-cache"])
        .success()
        .stdout;
    assert_eq!(no_cache.matches("Using cache").count(), 0, "{no_cache}");
    assert_eq!(no_cache.matches("Running in").count(), 3, "{no_cache}");
    assert_eq!(
        s.run(&["run", "--rm", "c", "cat", "/v"]).success().stdout,
        "v=1\n"
    );
}

#[test]
fn rootless_build_failures_say_where() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nENV A=1\nRUN exit 3\nRUN echo never\n",
    )]);
    let run = s.build(ctx.path(), &["-t", "broken"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    // One line: the step, where it is, the instruction, the cause.
    let file = ctx.path().join("Dockerfile");
    let line = format!(
        "strata: step 3/4 ({}:3:1) RUN exit 3: exit status 3\n",
        file.display()
    );
    assert!(run.stderr.contains(&line), "{}", run.stderr);
    let last_good = run
        .stderr
        .split("strata run -it ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        s.run(&["run", "--rm", &last_good, "sh", "-c", "echo $A"])
            .success()
            .stdout,
        "1\n",
        "the last good step's image is usable"
    );
    assert!(
        s.run(&["inspect", "broken"]).code != Some(0),
        "nothing half-built is tagged"
    );
    assert_eq!(
        s.run(&["ps", "-aq"]).success().stdout,
        "",
        "no build container is left"
    );

    let bad = context(&[("Dockerfile", "FROM busybox\nCOPPY a b\n")]);
    let run = s.build(bad.path(), &[]);
    assert_eq!(run.code, Some(1));
    let file = bad.path().join("Dockerfile");
    assert!(
        run.stderr.contains(&format!("{}:2:1:", file.display())),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("did you mean COPY?"), "{}", run.stderr);

    let mounts = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN --mount=type=ssh,required=true true\n",
    )]);
    let run = s.build(mounts.path(), &[]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("ssh agent default is required")
            && run.stderr.contains("Dockerfile:2:1) RUN"),
        "{}",
        run.stderr
    );
}

#[test]
fn rootless_build_target_quiet_iidfile_and_stdin() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let df = "FROM busybox AS one\nRUN echo one > /one\nFROM busybox AS two\nRUN echo two > /two\nFROM one\nRUN cat /one\n";
    let ctx = context(&[("Dockerfile", df)]);
    let out = s
        .build(ctx.path(), &["--target", "two", "-t", "t2"])
        .success()
        .stdout;
    assert!(
        out.contains("Step 1/2 : FROM busybox AS two"),
        "only stage two is built: {out}"
    );
    let dir = tempfile::tempdir().unwrap();
    let iid = dir.path().join("iid");
    let quiet = s
        .build(ctx.path(), &["-q", "--iidfile", iid.to_str().unwrap()])
        .success()
        .stdout;
    assert!(
        quiet.trim().starts_with("sha256:") && quiet.lines().count() == 1,
        "{quiet}"
    );
    assert_eq!(fs_err::read_to_string(&iid).unwrap(), quiet.trim());
    let mut child = s
        .cmd()
        .args(["build", "-t", "from-stdin", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM busybox\nRUN echo piped > /p\n")
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    assert_eq!(
        s.run(&["run", "--rm", "from-stdin", "cat", "/p"])
            .success()
            .stdout,
        "piped\n"
    );
    let unknown = s.build(ctx.path(), &["--target", "nope"]);
    assert_eq!(unknown.code, Some(1));
    let unused = s.build(ctx.path(), &["--build-arg", "UNUSED=1", "-q"]);
    assert!(
        unused.stderr.contains("[UNUSED] were not consumed"),
        "{}",
        unused.stderr
    );
}

#[test]
fn rootless_build_copy_from_the_context() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let df = "FROM busybox
COPY a.txt /one/
COPY dir /two
COPY *.md /docs/
COPY --chown=nobody:nogroup --chmod=0600 a.txt /owned
COPY --chown=1234 a.txt /numeric
COPY link /link
WORKDIR /w
COPY a.txt rel
";
    let ctx = context(&[
        ("Dockerfile", df),
        ("a.txt", "a"),
        ("dir/sub/b.txt", "b"),
        ("x.md", "x"),
        ("y.md", "y"),
        ("secret.md", "s"),
        ("ignored/f", "i"),
        (".dockerignore", "secret.md\nignored\n"),
    ]);
    // Named as a source, a symlink is followed (inside the context), as in
    // Docker; inside a copied directory it stays a symlink.
    fs_err::os::unix::fs::symlink("a.txt", ctx.path().join("link")).unwrap();
    fs_err::os::unix::fs::symlink("sub/b.txt", ctx.path().join("dir/l")).unwrap();
    s.build(ctx.path(), &["-t", "copied"]).success();
    let check = "cat /one/a.txt /two/sub/b.txt; echo; ls /docs; stat -c '%u:%g %a' /owned /numeric; cat /link; echo; readlink /two/l; cat /w/rel";
    let out = s
        .run(&["run", "--rm", "copied", "sh", "-c", check])
        .success()
        .stdout;
    assert_eq!(
        out,
        "ab\nx.md\ny.md\n65534:65534 600\n1234:1234 644\na\nsub/b.txt\na"
    );
    let escape = context(&[("Dockerfile", "FROM busybox\nCOPY ../x /x\n")]);
    let run = s.build(escape.path(), &[]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("COPY"), "{}", run.stderr);
    let ignored = context(&[
        ("Dockerfile", "FROM busybox\nCOPY secret.md /\n"),
        ("secret.md", "s"),
        (".dockerignore", "secret.md\n"),
    ]);
    let run = s.build(ignored.path(), &[]);
    assert_eq!(run.code, Some(1), "an ignored file cannot be copied");
}

#[test]
fn rootless_build_copy_from_stages_and_images() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let df = "FROM busybox AS make
RUN mkdir /out && echo made > /out/thing
FROM busybox
COPY --from=make /out/thing /by-name
COPY --from=0 /out/ /by-index/
COPY --from=busybox /etc/passwd /from-image
";
    let ctx = context(&[("Dockerfile", df)]);
    s.build(ctx.path(), &["-t", "staged"]).success();
    let out = s
        .run(&[
            "run",
            "--rm",
            "staged",
            "sh",
            "-c",
            "cat /by-name /by-index/thing; head -1 /from-image",
        ])
        .success()
        .stdout;
    assert_eq!(out, "made\nmade\nroot:x:0:0:root:/root:/bin/sh\n");
}

#[test]
fn rootless_build_copy_cache_sees_every_change() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let df = "FROM busybox\nRUN echo before\nCOPY one /one\nRUN echo middle\nCOPY two /two\nRUN echo after\n";
    let ctx = context(&[("Dockerfile", df), ("one", "1111"), ("two", "2222")]);
    let hits = |extra: &[&str]| {
        s.build(ctx.path(), extra)
            .success()
            .stdout
            .matches("Using cache")
            .count()
    };
    assert_eq!(hits(&["-t", "k"]), 0);
    assert_eq!(
        hits(&["-t", "k"]),
        5,
        "an unchanged rebuild hits every step"
    );
    // Same size and mtime, other content: still a change.
    let two = ctx.path().join("two");
    let mtime = fs_err::metadata(&two).unwrap().modified().unwrap();
    fs_err::write(&two, "2229").unwrap();
    fs_err::File::options()
        .write(true)
        .open(&two)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(
        hits(&["-t", "k"]),
        3,
        "steps before COPY two hit, the rest rebuild"
    );
    // The mode alone: a change.
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(
        ctx.path().join("one"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    assert_eq!(hits(&["-t", "k"]), 1, "only the step before COPY one hits");
    assert_eq!(
        s.run(&["run", "--rm", "k", "cat", "/two"]).success().stdout,
        "2229"
    );
}

#[test]
fn rootless_build_add_extracts_local_archives() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM busybox\nADD bundle.tar.gz /opt/\nADD plain.txt /opt/plain.txt\n",
        ),
        ("plain.txt", "plain"),
    ]);
    let mut tar = tar::Builder::new(Vec::new());
    let (name, data) = ("app/run.sh", "#!/bin/sh\necho packed\n");
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    tar.append_data(&mut h, name, data.as_bytes()).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar.into_inner().unwrap()).unwrap();
    fs_err::write(ctx.path().join("bundle.tar.gz"), gz.finish().unwrap()).unwrap();
    s.build(ctx.path(), &["-t", "added"]).success();
    let out = s
        .run(&[
            "run",
            "--rm",
            "added",
            "sh",
            "-c",
            "/opt/app/run.sh; cat /opt/plain.txt; echo; ls /opt",
        ])
        .success()
        .stdout;
    assert_eq!(out, "packed\nplain\napp\nplain.txt\n");
}

#[test]
fn interop_built_image_is_read_by_skopeo_and_umoci() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM busybox\nCOPY f /f\nRUN echo ran > /ran\nCMD [\"cat\", \"/f\"]\n",
        ),
        ("f", "content\n"),
    ]);
    s.build(ctx.path(), &["-t", "built"]).success();
    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("layout");
    let dest = format!("oci:{}:v1", layout.display());
    s.run(&["push", "built", &dest]).success();
    let inspect = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", &format!("oci:{}:v1", layout.display())])
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(
        manifest["layers"].as_array().unwrap().len(),
        3,
        "busybox + COPY + RUN: {manifest:#}"
    );
    let bundle = out.path().join("bundle");
    common::umoci_unpack(&format!("{}:v1", layout.display()), &bundle);
    assert_eq!(
        fs_err::read_to_string(bundle.join("rootfs/f")).unwrap(),
        "content\n"
    );
    assert_eq!(
        fs_err::read_to_string(bundle.join("rootfs/ran")).unwrap(),
        "ran\n"
    );
    assert_eq!(
        s.run(&["run", "--rm", "built"]).success().stdout,
        "content\n"
    );
}

#[test]
fn rootless_build_heredocs() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let df = "FROM busybox\nENV NAME=heredoc\nCOPY <<EOF /etc/greeting\nhello from $NAME\nEOF\nRUN <<EOF\necho ran > /ran\nEOF\n";
    let ctx = context(&[("Dockerfile", df)]);
    s.build(ctx.path(), &["-t", "hd"]).success();
    assert_eq!(
        s.run(&["run", "--rm", "hd", "cat", "/etc/greeting", "/ran"])
            .success()
            .stdout,
        "hello from heredoc\nran\n"
    );
    assert_eq!(
        s.build(ctx.path(), &["-t", "hd"])
            .success()
            .stdout
            .matches("Using cache")
            .count(),
        3
    );
}

#[test]
fn rootless_build_platform_args_and_from_platform() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let df = "FROM --platform=$BUILDPLATFORM busybox\nARG TARGETARCH\nARG TARGETPLATFORM\nRUN echo \"$TARGETPLATFORM $TARGETARCH\" > /p\n";
    let ctx = context(&[("Dockerfile", df)]);
    s.build(ctx.path(), &["-t", "plat"]).success();
    let out = s
        .run(&["run", "--rm", "plat", "cat", "/p"])
        .success()
        .stdout;
    assert_eq!(out, format!("linux/{arch} {arch}\n"));
    let other = if arch == "s390x" {
        "linux/arm64"
    } else {
        "linux/s390x"
    };
    let foreign = context(&[("Dockerfile", &*format!("FROM --platform={other} busybox\n"))]);
    // The store's busybox is the host's only: another platform's is not
    // taken for it (tests/registry_platform.rs builds foreign ones).
    let run = s.build(foreign.path(), &["--pull=never"]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains(&format!("busybox for {other}")),
        "{}",
        run.stderr
    );
}

/// What `strata ARGS` read, in bytes: a shell runs it and then reads its
/// own /proc/PID/io, whose counters include the children it has reaped.
fn bytes_read_by(s: &Strata, args: &[&str]) -> u64 {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#""$0" "$@" >/dev/null && grep '^rchar:' /proc/$$/io"#)
        .arg(common::strata_bin())
        .args(args)
        .env("STRATA_ROOT", s.root.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim()
        .trim_start_matches("rchar:")
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn rootless_build_copy_reads_each_source_file_once() {
    let s = Strata::new();
    s.import_busybox("busybox");
    const SIZE: usize = 32 << 20;
    // Incompressible and unlike anything else in the store.
    let data = common::noise(SIZE, u64::from(std::process::id()));
    let df = "FROM busybox AS one\nCOPY big /big\nFROM busybox\nCOPY --from=one /big /again\n";
    let ctx = context(&[("Dockerfile", df)]);
    fs_err::write(ctx.path().join("big"), &data).unwrap();
    // A file changed within the last second is never remembered by the
    // metadata cache (it could change again unseen in the same tick).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let dir = ctx.path().to_str().unwrap();
    // Each COPY reads its source once, and making its layer's digest reads
    // the layer once: four times the file, where hashing the sources before
    // copying them would read it six times.
    let cold = bytes_read_by(&s, &["build", "-q", "-t", "once", dir]);
    assert!(
        cold < 5 * SIZE as u64,
        "a cold build read {cold} bytes for two copies of {SIZE}"
    );
    // A rebuild finds both steps in the cache without reading the file:
    // the local one by the metadata cache, the --from one by the image id.
    let warm = bytes_read_by(&s, &["build", "-q", "-t", "once", dir]);
    assert!(warm < SIZE as u64 / 4, "a cached rebuild read {warm} bytes");
    assert_eq!(
        s.run(&["run", "--rm", "once", "sha256sum", "/again"])
            .success()
            .stdout
            .split_whitespace()
            .next()
            .unwrap(),
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data))
    );
}

/// Starts a build of `ctx` whose RUN sleeps, waits until the sleep runs and
/// sends `sig` (to the process group, as a terminal's ^C, or to strata
/// alone, as `kill`); returns what strata did.
fn interrupted_build(s: &Strata, sig: nix::sys::signal::Signal, group: bool) -> Run {
    use std::os::unix::process::CommandExt;
    let marker = format!("{}{}", 7_000_000 + std::process::id(), group as u8);
    let df = format!("FROM busybox\nRUN echo first > /first\nRUN [\"sleep\", \"{marker}\"]\n");
    let ctx = context(&[("Dockerfile", &df)]);
    let child = s
        .cmd()
        .args(["build", "-t", "stopped", ctx.path().to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let started = std::time::Instant::now();
    while common::processes_with_arg(&marker).is_empty() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "the RUN never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let target = if group {
        nix::unistd::Pid::from_raw(-pid.as_raw())
    } else {
        pid
    };
    nix::sys::signal::kill(target, sig).unwrap();
    // Not a timing assertion: only a guard against hanging the suite.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("strata did not stop after the signal")
        .unwrap();
    assert!(
        common::processes_with_arg(&marker).is_empty(),
        "the RUN's process outlived the build"
    );
    Run::of(out)
}

#[test]
fn rootless_build_stops_cleanly_on_ctrl_c_and_sigterm() {
    let s = Strata::new();
    s.import_busybox("busybox");
    // Docker's codes: 128 + the signal.
    for (sig, group, code) in [
        (nix::sys::signal::Signal::SIGINT, true, 130),
        (nix::sys::signal::Signal::SIGTERM, false, 143),
    ] {
        let run = interrupted_build(&s, sig, group);
        assert_eq!(run.code, Some(code), "{sig}: {run:?}");
        assert!(run.stderr.contains("build interrupted"), "{sig}: {run:?}");
        let images = s.run(&["images"]).success().stdout;
        assert!(!images.contains("stopped"), "{sig}: tagged: {images}");
        let containers = s.run(&["ps", "-a", "-q"]).success().stdout;
        assert_eq!(containers.trim(), "", "{sig}: working containers left");
        s.run(&["system", "check"]).success();
    }
}
