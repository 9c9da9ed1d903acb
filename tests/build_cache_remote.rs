//! `--cache-from` / `--cache-to`: two stores stand for two CI runners that
//! share nothing but the cache (a directory here, the test registry in the
//! registry_* tests). Runner B must reuse A's steps without running them
//! (the timestamp files are A's), end at A's image id, and fetch a layer's
//! blob only when a step has to run on top of it.
#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

mod common;

use std::path::Path;

use common::{Run, Strata};

/// Six steps: RUNs that write the time (a re-run would differ), a COPY of
/// the context, a metadata step.
const DOCKERFILE: &str = "FROM base
RUN date +%s%N > /t1
COPY f /f
RUN date +%s%N > /t2 && cat /f >> /t2
ENV STAGE=done
RUN date +%s%N > /t3
";

/// A runner: a fresh store with the same base image as every other (loaded
/// from one archive, so the same image id everywhere).
fn runner(base: &Path) -> Strata {
    let s = Strata::new();
    let out = s.run(&["load", "-i", base.to_str().unwrap()]).success();
    // An OCI archive's name is its tag alone: named `base` here.
    let loaded = out.stdout.trim().strip_prefix("Loaded image: ").unwrap();
    if loaded != "base:latest" {
        s.run(&["tag", loaded, "base"]).success();
    }
    s
}

/// The shared base archive, made once from busybox.
fn base_archive(dir: &Path) -> std::path::PathBuf {
    let s = Strata::new();
    s.import_busybox("base");
    let out = dir.join("base.tar");
    s.run(&["save", "-o", out.to_str().unwrap(), "base"])
        .success();
    out
}

fn build(s: &Strata, ctx: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["build", "-t", "app"];
    args.extend(extra);
    args.push(ctx.to_str().unwrap());
    s.run(&args).success()
}

fn image_id(s: &Strata, name: &str) -> String {
    let out = s.run(&["inspect", name]).success().stdout;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["Id"].as_str().unwrap().to_string()
}

fn cat(s: &Strata, file: &str) -> String {
    s.run(&["run", "--rm", "app", "cat", file]).success().stdout
}

/// `Build cache: X downloaded (N layers), ...`: N.
fn layers_downloaded(out: &Run) -> usize {
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("Build cache: "))
        .unwrap_or_else(|| panic!("no Build cache line: {out:#?}"));
    let n = line.split(" downloaded (").nth(1).unwrap();
    n.split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn local_cache_carries_every_step_to_a_fresh_store() {
    let tmp = tempfile::tempdir().unwrap();
    let base = base_archive(tmp.path());
    let cache = tmp.path().join("cache");
    let ctx = common::context(&[("Dockerfile", DOCKERFILE), ("f", "one\n")]);
    let to = format!("type=local,dest={},mode=max", cache.display());
    let from = format!("type=local,src={}", cache.display());

    let a = runner(&base);
    build(&a, ctx.path(), &["--cache-to", &to]);
    assert!(cache.join("index.json").is_file());

    // B: every step from the cache, nothing run, nothing fetched.
    let b = runner(&base);
    let out = build(&b, ctx.path(), &["--cache-from", &from]);
    let remote_hits = out
        .stdout
        .matches(&format!(" ---> Using cache (local {})", cache.display()))
        .count();
    assert_eq!(remote_hits, 5, "{out:#?}");
    assert!(!out.stdout.contains("Running in"), "{out:#?}");
    assert_eq!(layers_downloaded(&out), 0, "{out:#?}");
    assert_eq!(image_id(&b, "app"), image_id(&a, "app"));
    // Its four layers above the base are known, not here.
    let images = b.run(&["images", "app"]).success().stdout;
    assert!(images.contains("(+4 remote)"), "{images}");
    b.run(&["system", "check"]).success();
    // Running the image needs its layers: fetched now, and they are A's.
    for f in ["/t1", "/t2", "/t3"] {
        assert_eq!(cat(&b, f), cat(&a, f), "{f}");
    }
    let images = b.run(&["images", "app"]).success().stdout;
    assert!(!images.contains("remote"), "{images}");
    b.run(&["system", "check"]).success();
    // A second build on B hits its own cache now.
    let again = build(&b, ctx.path(), &["--cache-from", &from]);
    assert_eq!(
        again.stdout.matches(" ---> Using cache\n").count(),
        5,
        "{again:#?}"
    );

    // C: a changed context file; the steps before the COPY come from the
    // cache, and only the layer under the first miss is fetched.
    let ctx2 = common::context(&[("Dockerfile", DOCKERFILE), ("f", "two\n")]);
    let c = runner(&base);
    let out = build(&c, ctx2.path(), &["--cache-from", &from]);
    assert_eq!(
        out.stdout.matches(" ---> Using cache (local").count(),
        1,
        "{out:#?}"
    );
    assert_eq!(out.stdout.matches("Running in").count(), 2, "{out:#?}");
    assert_eq!(layers_downloaded(&out), 1, "{out:#?}");
    assert_eq!(cat(&c, "/t1"), cat(&a, "/t1"));
    assert_ne!(cat(&c, "/t2"), cat(&a, "/t2"));
}

#[test]
fn a_missing_cache_is_a_warning_and_a_cold_build() {
    let tmp = tempfile::tempdir().unwrap();
    let base = base_archive(tmp.path());
    let ctx = common::context(&[("Dockerfile", DOCKERFILE), ("f", "one\n")]);
    let from = format!("type=local,src={}", tmp.path().join("nothing").display());
    let a = runner(&base);
    let out = build(&a, ctx.path(), &["--cache-from", &from]);
    assert_eq!(out.stderr.matches("warning").count(), 1, "{out:#?}");
    assert!(out.stderr.contains("building without it"), "{out:#?}");
    assert_eq!(out.stdout.matches("Running in").count(), 3, "{out:#?}");
}

#[test]
fn bad_cache_flags_are_usage_errors() {
    let s = Strata::new();
    let ctx = common::context(&[("Dockerfile", "FROM scratch\n")]);
    for (flag, value, want) in [
        (
            "--cache-to",
            "type=gha",
            "cache type \"gha\" is not supported",
        ),
        ("--cache-from", "type=local", "needs src=DIR"),
        (
            "--cache-to",
            "type=registry,ref=r/a,mode=all",
            "mode \"all\"",
        ),
    ] {
        let out = s.run(&["build", flag, value, ctx.path().to_str().unwrap()]);
        assert_eq!(out.code, Some(125), "{out:#?}");
        assert!(out.stderr.contains(want), "{value}: {out:#?}");
    }
}

/// A repository path of its own on the test registry, so a registry kept
/// between runs starts empty there.
fn namespace(addr: &str, what: &str) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!("{addr}/{what}{}x{ms}", std::process::id())
}

/// `strata push`'s digest line: `TAG: digest: sha256:… size: N`.
fn push(s: &Strata, image: &str, dest: &str) -> (String, Run) {
    let out = s.run(&["push", image, dest]).success();
    let digest = out
        .stdout
        .lines()
        .find_map(|l| l.split(": digest: ").nth(1))
        .and_then(|d| d.split(' ').next())
        .unwrap_or_else(|| panic!("no digest: {out:#?}"))
        .to_string();
    (digest, out)
}

#[test]
fn registry_cache_carries_every_step_and_the_push_mounts_its_layers() {
    let ns = namespace(&common::registry_addr(), "rc");
    let tmp = tempfile::tempdir().unwrap();
    let base = base_archive(tmp.path());
    let (cache, digest_a) = two_runners_share_a_registry(&base, &ns);
    // The same through `build --push`, on a runner of its own.
    let ctx = common::context(&[("Dockerfile", DOCKERFILE), ("f", "one\n")]);
    let d = runner(&base);
    let dest = format!("{ns}/app:d");
    let ctx_dir = ctx.path().to_str().unwrap();
    let args = [
        "build",
        "--cache-from",
        &cache,
        "--push",
        "-t",
        &dest,
        ctx_dir,
    ];
    let out = d.run(&args).success();
    let digest_d = out
        .stderr
        .lines()
        .find_map(|l| l.split(": digest: ").nth(1))
        .and_then(|d| d.split(' ').next())
        .unwrap_or_else(|| panic!("no digest: {out:#?}"));
    assert_eq!(digest_d, digest_a, "{out:#?}");
    assert!(!out.stderr.contains("Pushed"), "{out:#?}");
    assert_eq!(layers_downloaded(&out), 0, "{out:#?}");
}

/// The acceptance on Debian: the base CI builds on, made once per
/// machine by scripts/debian-base.sh (debootstrap).
#[test]
fn registry_acceptance_on_the_debian_base() {
    let ns = namespace(&common::registry_addr(), "deb");
    let script = common::project_dir().join("scripts/debian-base.sh");
    let tar = match script.is_file() {
        true => common::tool("bash", &[script.to_str().unwrap()])
            .trim()
            .to_string(),
        false => std::env::var("STRATA_DEBIAN_BASE")
            .unwrap_or_else(|_| "/var/cache/strata/debian-bookworm.tar".into()),
    };
    let tar = Path::new(&tar);
    assert!(
        tar.is_file(),
        "no Debian base at {tar:?}: run scripts/debian-base.sh"
    );
    two_runners_share_a_registry(&debian_archive(tar), &ns);
}

/// The Debian base as an OCI archive (gzip blobs, kept on load as a pulled
/// base's are, so no runner compresses it again to push), made once per
/// machine and base: importing and compressing 120 MB is most of the
/// test's time otherwise.
fn debian_archive(tar: &Path) -> std::path::PathBuf {
    let meta = fs_err::metadata(tar).unwrap();
    let mtime = meta.modified().unwrap();
    let secs = mtime
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let name = format!("strata-test-debian-{}-{secs}.oci.tar", meta.len());
    let out = std::env::temp_dir().join(name);
    if out.is_file() {
        return out;
    }
    let s = Strata::new();
    s.run(&["import", tar.to_str().unwrap(), "base"]).success();
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let dest = format!("oci-archive:{}:base", tmp.display());
    s.run(&["push", "base", &dest]).success();
    fs_err::rename(&tmp, &out).unwrap();
    out
}

/// Runner A fills a registry cache (mode=max) and pushes; B, a fresh
/// store, takes every step from it and pushes the same manifest without
/// downloading a layer; then, after a context file changed, B reuses the
/// steps before the COPY and fetches only the layer under it. Returns the
/// cache's reference and A's pushed digest.
fn two_runners_share_a_registry(base: &Path, ns: &str) -> (String, String) {
    let ctx = common::context(&[("Dockerfile", DOCKERFILE), ("f", "one\n")]);
    let cache = format!("{ns}/cache");
    let to = format!("type=registry,ref={cache},mode=max");

    let a = runner(base);
    let out = build(&a, ctx.path(), &["--cache-to", &to]);
    assert!(
        out.stdout.contains("Build cache: 0B downloaded"),
        "{out:#?}"
    );
    let (digest_a, _) = push(&a, "app", &format!("{ns}/app:a"));

    // B shares nothing with A but the registry (and the base archive).
    let b = runner(base);
    let out = build(&b, ctx.path(), &["--cache-from", &cache]);
    let want = format!(" ---> Using cache (registry {cache})");
    assert_eq!(out.stdout.matches(&want).count(), 5, "{out:#?}");
    assert!(!out.stdout.contains("Running in"), "{out:#?}");
    assert_eq!(layers_downloaded(&out), 0, "{out:#?}");
    assert_eq!(image_id(&b, "app"), image_id(&a, "app"));
    // The push mounts the layers B never downloaded from the cache's
    // repository: the same manifest as A's.
    let (digest_b, out) = push(&b, "app", &format!("{ns}/app:b"));
    assert_eq!(digest_b, digest_a, "{out:#?}");
    assert!(!out.stdout.contains("Pushed"), "{out:#?}");
    assert!(!out.stdout.contains("Download"), "{out:#?}");
    assert!(out.stdout.contains("Mounted from") || out.stdout.contains("already exists"));

    // A changed context file: the step before the COPY is reused, and only
    // the layer under the first miss is fetched.
    let t1 = cat(&a, "/t1");
    fs_err::write(ctx.path().join("f"), "two\n").unwrap();
    let out = build(&b, ctx.path(), &["--cache-from", &cache]);
    assert_eq!(
        out.stdout.matches(" ---> Using cache").count(),
        1,
        "{out:#?}"
    );
    assert_eq!(out.stdout.matches("Running in").count(), 2, "{out:#?}");
    assert_eq!(layers_downloaded(&out), 1, "{out:#?}");
    assert_eq!(cat(&b, "/t1"), t1);
    assert_ne!(cat(&b, "/t2"), cat(&a, "/t2"));
    (cache, digest_a)
}

#[test]
fn registry_inline_cache_rides_in_the_pushed_image() {
    let addr = common::registry_addr();
    let ns = namespace(&addr, "inl");
    let tmp = tempfile::tempdir().unwrap();
    let base = base_archive(tmp.path());
    let ctx = common::context(&[("Dockerfile", DOCKERFILE), ("f", "one\n")]);
    let image = format!("{ns}/app:1");

    let a = runner(&base);
    build(&a, ctx.path(), &["--cache-to", "type=inline"]);
    let (digest_a, _) = push(&a, "app", &image);

    let b = runner(&base);
    let out = build(
        &b,
        ctx.path(),
        &["--cache-from", &image, "--cache-to", "type=inline"],
    );
    let want = format!(" ---> Using cache (registry {ns}/app)");
    assert_eq!(out.stdout.matches(&want).count(), 5, "{out:#?}");
    assert!(!out.stdout.contains("Running in"), "{out:#?}");
    assert_eq!(layers_downloaded(&out), 0, "{out:#?}");
    // The same record, so the same image with it.
    assert_eq!(image_id(&b, "app"), image_id(&a, "app"));
    let (digest_b, _) = push(&b, "app", &format!("{ns}/app:2"));
    assert_eq!(digest_b, digest_a);
}

#[test]
fn registry_down_is_one_warning_and_a_cold_build() {
    let tmp = tempfile::tempdir().unwrap();
    let base = base_archive(tmp.path());
    let ctx = common::context(&[("Dockerfile", DOCKERFILE), ("f", "one\n")]);
    // A loopback port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cache = format!("127.0.0.1:{port}/app/cache");
    let a = runner(&base);
    let out = build(&a, ctx.path(), &["--cache-from", &cache]);
    assert_eq!(out.stderr.matches("warning").count(), 1, "{out:#?}");
    assert!(out.stderr.contains(&cache), "{out:#?}");
    assert_eq!(out.stdout.matches("Running in").count(), 3, "{out:#?}");
}

/// `system df`'s row for the build cache: TOTAL, ACTIVE, SIZE (as shown).
fn cache_row(s: &Strata) -> Vec<String> {
    let out = s.run(&["system", "df"]).success().stdout;
    let line = out
        .lines()
        .find(|l| l.starts_with("Build Cache"))
        .unwrap_or_else(|| panic!("no Build Cache row: {out}"));
    line.split_whitespace()
        .skip(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn prune_build_cache_forgets_entries_and_the_images_only_they_keep() {
    let s = Strata::new();
    s.import_busybox("base");
    // The builder stage's image is kept by the cache alone; the final
    // image's steps are the tagged image's.
    let df = "FROM base AS b\nRUN head -c 300000 /dev/zero > /z && echo s > /s\n\
              FROM base\nCOPY --from=b /s /s\n";
    let ctx = common::context(&[("Dockerfile", df)]);
    let dir = ctx.path().to_str().unwrap();
    s.run(&["build", "-t", "app", dir]).success();
    let row = cache_row(&s);
    // RUN; COPY --from keyed by the stage's image and by content.
    assert_eq!(&row[..2], ["3", "2"], "{row:?}");
    assert!(row[2].ends_with("kB") && row[2].starts_with('3'), "{row:?}");

    // Recent entries, and a budget they fit in: nothing goes.
    for args in [&["--filter", "until=1h"][..], &["--keep-storage", "1g"]] {
        let mut all = vec!["system", "prune", "--build-cache"];
        all.extend(args);
        let out = s.run(&all).success();
        assert!(out.stdout.contains("Total reclaimed space: 0B"), "{out:#?}");
    }
    let out = s.run(&["system", "prune", "--build-cache"]).success();
    assert!(
        out.stdout.contains("Deleted build cache objects:"),
        "{out:#?}"
    );
    assert!(!out.stdout.contains("reclaimed space: 0B"), "{out:#?}");
    assert_eq!(&cache_row(&s)[..2], ["0", "0"]);
    // The tagged image is whole; the cache is cold.
    s.run(&["run", "--rm", "app", "test", "-s", "/s"]).success();
    let again = s.run(&["build", "-t", "app", dir]).success();
    assert!(again.stdout.contains("Running in"), "{again:#?}");

    for bad in [
        &["system", "prune", "--build-cache", "--filter", "until=soon"][..],
        &["system", "prune", "--keep-storage", "1g"],
    ] {
        assert_eq!(s.run(bad).code, Some(125), "{bad:?}");
    }
}

#[test]
fn cache_mounts_travel_with_mounts_true() {
    let tmp = tempfile::tempdir().unwrap();
    let base = base_archive(tmp.path());
    let cache = tmp.path().join("cache");
    // RUNNER is in the RUN's key: B's step runs, and sees A's files.
    let df = "FROM base\nARG RUNNER\n\
              RUN --mount=type=cache,id=deps,target=/deps ls /deps > /seen && touch /deps/$RUNNER\n";
    let ctx = common::context(&[("Dockerfile", df)]);
    let to = format!("type=local,dest={},mounts=true", cache.display());
    let from = format!("type=local,src={}", cache.display());

    let a = runner(&base);
    build(
        &a,
        ctx.path(),
        &["--cache-to", &to, "--build-arg", "RUNNER=a"],
    );
    let b = runner(&base);
    build(
        &b,
        ctx.path(),
        &["--cache-from", &from, "--build-arg", "RUNNER=b"],
    );
    assert_eq!(cat(&b, "/seen"), "a\n");
    // Without mounts=true the cache has none: C starts empty.
    let plain = tmp.path().join("plain");
    let c = runner(&base);
    let to = format!("type=local,dest={}", plain.display());
    build(
        &c,
        ctx.path(),
        &["--cache-to", &to, "--build-arg", "RUNNER=c"],
    );
    let d = runner(&base);
    let from = format!("type=local,src={}", plain.display());
    build(
        &d,
        ctx.path(),
        &["--cache-from", &from, "--build-arg", "RUNNER=d"],
    );
    assert_eq!(cat(&d, "/seen"), "");
}

#[test]
fn a_cached_layer_that_fails_its_digest_is_not_used() {
    let tmp = tempfile::tempdir().unwrap();
    let base = base_archive(tmp.path());
    let cache = tmp.path().join("cache");
    let ctx = common::context(&[("Dockerfile", DOCKERFILE), ("f", "one\n")]);
    let a = runner(&base);
    let to = format!("type=local,dest={},mode=max", cache.display());
    build(&a, ctx.path(), &["--cache-to", &to]);
    // Every layer blob of the cache gets other bytes of the same size.
    let index: serde_json::Value =
        serde_json::from_slice(&fs_err::read(cache.join("index.json")).unwrap()).unwrap();
    let blob = |digest: &serde_json::Value| {
        let hex = digest.as_str().unwrap().strip_prefix("sha256:").unwrap();
        cache.join("blobs/sha256").join(hex)
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs_err::read(blob(&index["manifests"][0]["digest"])).unwrap())
            .unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        let path = blob(&layer["digest"]);
        let mut bytes = fs_err::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs_err::write(&path, bytes).unwrap();
    }
    // A changed file: the COPY must run on the first RUN's layer, whose
    // blob is bad. The entry is not used; the build goes on without it.
    let ctx2 = common::context(&[("Dockerfile", DOCKERFILE), ("f", "two\n")]);
    let c = runner(&base);
    let from = format!("type=local,src={}", cache.display());
    let out = build(&c, ctx2.path(), &["--cache-from", &from]);
    assert!(
        out.stderr.contains("not used, building again without it"),
        "{out:#?}"
    );
    assert!(out.stderr.contains("digest mismatch"), "{out:#?}");
    assert_ne!(cat(&c, "/t1"), cat(&a, "/t1"), "the bad entry was used");
    c.run(&["system", "check"]).success();
}
