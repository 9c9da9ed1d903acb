//! Multi-platform images (issue #18) with the whole binary: `--platform` on
//! build, pull and run; RUN of an arm64 image emulated by qemu-user through
//! binfmt_misc; `build --platform A,B --push` making an index a registry
//! and skopeo read; the store keeping both platforms under one name; the
//! BuildKit platform args; `strata info` and a foreign run that cannot be
//! emulated.
//!
//! The arm64 base is Debian's busybox-static for arm64, made offline by
//! scripts/busybox-arm64.sh (scripts/test.sh passes it in
//! STRATA_TEST_ARM64_TAR). The emulated tests skip, saying why, only when
//! this machine has no qemu-aarch64 handler with the F flag, never under
//! CI=true.
#![allow(clippy::unwrap_used)]
// A skipped emulated test says why on stderr.
#![allow(clippy::disallowed_macros)]

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};

use common::Strata;

/// The arm64 busybox tarball, or `None` (with the reason printed) when
/// emulated tests cannot run here.
fn arm64_base() -> Option<PathBuf> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let handler = fs_err::read_to_string("/proc/sys/fs/binfmt_misc/qemu-aarch64");
    let usable = handler.as_ref().is_ok_and(|h| {
        h.starts_with("enabled")
            && h.lines()
                .any(|l| l.starts_with("flags:") && l.contains('F'))
    });
    if !usable {
        assert!(!ci, "CI=true: no qemu-aarch64 binfmt_misc handler with the F flag (scripts/setup-machine.sh sets it up)");
        eprintln!("skipped: no qemu-aarch64 binfmt_misc handler with the F flag: apt-get install qemu-user-static binfmt-support");
        return None;
    }
    let tar = std::env::var("STRATA_TEST_ARM64_TAR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/var/cache/strata/busybox-arm64.tar"));
    assert!(
        tar.is_file(),
        "{} is missing: scripts/busybox-arm64.sh makes it (scripts/test.sh runs it)",
        tar.display()
    );
    Some(tar)
}

/// A store with busybox for amd64 (the host) and arm64 under one name.
fn store_with_both(name: &str, arm64: &Path) -> Strata {
    let s = Strata::new();
    let cmd = r#"CMD ["/bin/sh"]"#;
    s.run(&[
        "import",
        "--platform",
        "linux/arm64",
        "-c",
        cmd,
        arm64.to_str().unwrap(),
        name,
    ])
    .success();
    let host = common::busybox_tar();
    s.run(&["import", "-c", cmd, host.to_str().unwrap(), name])
        .success();
    s
}

fn unique(prefix: &str) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!("{prefix}{}x{ms}", std::process::id())
}

const CROSS: &str = "FROM --platform=$BUILDPLATFORM bb:1 AS builder
ARG BUILDARCH
RUN echo \"builder-ran-$(uname -m)\" && echo \"$BUILDARCH\" > /built-on
FROM bb:1
ARG TARGETARCH
ARG TARGETPLATFORM
ARG BUILDARCH
COPY --from=builder /built-on /built-on
RUN uname -m > /arch && echo \"$TARGETARCH $TARGETPLATFORM $BUILDARCH\" > /args
";

/// What the builder stage's RUN of [`CROSS`] printed, each time it ran
/// (its lines may start with `[platform stage n/m]`).
fn builder_runs(log: &str) -> Vec<&str> {
    log.lines()
        .filter_map(|l| l.find("builder-ran-").map(|i| &l[i..]))
        .filter(|ran| !ran.contains('$'))
        .collect()
}

/// The platforms (`os/arch`) of the index `name` in the registry, sorted.
fn index_platforms(name: &str) -> Vec<String> {
    let src = format!("docker://{name}");
    let raw = common::tool("skopeo", &["inspect", "--raw", "--tls-verify=false", &src]);
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let mut platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("not an index: {raw}"))
        .iter()
        .map(|m| {
            let p = &m["platform"];
            format!(
                "{}/{}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            )
        })
        .collect();
    platforms.sort();
    platforms
}

/// `skopeo copy --override-arch arm64` of `name` into an OCI layout.
fn arm64_copy(name: &str) -> tempfile::TempDir {
    let oci = tempfile::tempdir().unwrap();
    let layout = format!("oci:{}:x", oci.path().display());
    let src = format!("docker://{name}");
    let args = [
        "copy",
        "--override-arch",
        "arm64",
        "--src-tls-verify=false",
        &src,
        &layout,
    ];
    common::tool("skopeo", &args);
    oci
}

/// `images`: `NAME:TAG PLATFORM` lines.
fn names_and_platforms(s: &Strata) -> String {
    let format = "{{.Repository}}:{{.Tag}} {{.Platform}}";
    s.run(&["images", "--format", format]).success().stdout
}

/// A file of the top layer of the image in OCI layout `dir`.
fn top_layer_file(dir: &Path, file: &str) -> String {
    let read_json = |p: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&fs_err::read(p).unwrap()).unwrap()
    };
    let blob = |d: &str| {
        dir.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let index = read_json(dir.join("index.json"));
    let manifest = read_json(blob(index["manifests"][0]["digest"].as_str().unwrap()));
    let top = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let gz = flate2::read::GzDecoder::new(fs_err::File::open(blob(&top)).unwrap());
    let mut archive = tar::Archive::new(gz);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        if path.trim_start_matches("./") == file {
            let mut s = String::new();
            entry.read_to_string(&mut s).unwrap();
            return s;
        }
    }
    panic!("{file} is not in the top layer {top}")
}

#[test]
fn registry_platform_build_two_platforms_push_index_pull_run() {
    let Some(arm64) = arm64_base() else { return };
    let addr = common::registry_addr();
    let s = store_with_both("bb:1", &arm64);
    let ctx = common::context(&[("Dockerfile", CROSS)]);
    let dest = format!("{addr}/{}/x:1", unique("plat"));
    let out = s
        .run(&[
            "build",
            "--progress=plain",
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            &dest,
            "--push",
            ctx.path().to_str().unwrap(),
        ])
        .success();
    let log = format!("{}{}", out.stdout, out.stderr);
    // The builder stage ran once, natively, for both platforms.
    assert_eq!(builder_runs(&log), ["builder-ran-x86_64"], "{log}");

    assert_eq!(index_platforms(&dest), ["linux/amd64", "linux/arm64"]);
    let oci = arm64_copy(&dest);
    assert_eq!(top_layer_file(oci.path(), "arch"), "aarch64\n");
    assert_eq!(
        top_layer_file(oci.path(), "args"),
        "arm64 linux/arm64 amd64\n"
    );

    // A fresh store: pull the arm64 image by platform and run it.
    let fresh = Strata::new();
    fresh
        .run(&["pull", "--platform", "linux/arm64", &dest])
        .success();
    let run = fresh.run(&[
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        &dest,
        "cat",
        "/arch",
        "/args",
        "/built-on",
    ]);
    assert_eq!(
        run.success().stdout,
        "aarch64\narm64 linux/arm64 amd64\namd64\n"
    );
    // The host's too, beside it under the same name.
    fresh
        .run(&["pull", "--platform", "linux/amd64", &dest])
        .success();
    let both = fresh.run(&[
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        &dest,
        "uname",
        "-m",
    ]);
    assert_eq!(both.success().stdout, "aarch64\n");
    let host = fresh.run(&[
        "run",
        "--rm",
        "--platform",
        "linux/amd64",
        &dest,
        "cat",
        "/args",
    ]);
    assert_eq!(host.success().stdout, "amd64 linux/amd64 amd64\n");
}

#[test]
fn rootless_platform_single_foreign_build_images_inspect() {
    let Some(arm64) = arm64_base() else { return };
    let s = store_with_both("bb:1", &arm64);
    let ctx = common::context(&[("Dockerfile", CROSS)]);
    s.run(&[
        "build",
        "-q",
        "--platform",
        "linux/arm64",
        "-t",
        "cross:1",
        ctx.path().to_str().unwrap(),
    ])
    .success();
    let run = s
        .run(&["run", "--rm", "cross:1", "cat", "/arch", "/args"])
        .success();
    assert_eq!(run.stdout, "aarch64\narm64 linux/arm64 amd64\n");
    // Provenance names the platform built for, and each base's own.
    let oci = tempfile::tempdir().unwrap();
    let dest = oci.path().join("out");
    s.run(&[
        "build",
        "-q",
        "--platform",
        "linux/arm64",
        "--provenance=mode=min",
        "-o",
        &format!("type=oci,dest={},tar=false", dest.display()),
        ctx.path().to_str().unwrap(),
    ])
    .success();
    let statement = fs_err::read_to_string(oci.path().join("out.provenance.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&statement).unwrap();
    let subject = v["subject"][0]["name"].as_str().unwrap();
    assert!(subject.ends_with("?platform=linux%2Farm64"), "{statement}");
    let mut bases: Vec<&str> = v["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["uri"].as_str().unwrap())
        .collect();
    bases.sort_unstable();
    assert_eq!(
        bases,
        [
            "pkg:docker/bb@1?platform=linux%2Famd64",
            "pkg:docker/bb@1?platform=linux%2Farm64"
        ],
        "{statement}"
    );
    let inspect = s.run(&["inspect", "cross:1"]).success().stdout;
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v[0]["Architecture"], "arm64", "{inspect}");
    // Both busybox images listed under bb:1, each with its platform.
    let images = names_and_platforms(&s);
    let mut bb: Vec<&str> = images.lines().filter(|l| l.starts_with("bb:1 ")).collect();
    bb.sort_unstable();
    assert_eq!(bb, ["bb:1 linux/amd64", "bb:1 linux/arm64"], "{images}");
    let table = s.run(&["images"]).success().stdout;
    assert!(
        table.lines().next().unwrap().ends_with("PLATFORM"),
        "{table}"
    );
}

#[test]
fn rootless_platform_foreign_run_without_emulation_says_how() {
    let s = Strata::new();
    let tar = common::busybox_tar();
    // No emulator is known for big-endian mips64: it cannot run here.
    s.run(&[
        "import",
        "--platform",
        "linux/mips64",
        tar.to_str().unwrap(),
        "odd:1",
    ])
    .success();
    let out = s.run(&["run", "--rm", "odd:1", "true"]);
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert!(out.stderr.contains("linux/mips64"), "{}", out.stderr);
    assert!(out.stderr.contains("qemu-user-static"), "{}", out.stderr);
    let ctx = common::context(&[("Dockerfile", "FROM odd:1\nRUN true\n")]);
    let build = s.run(&[
        "build",
        "--platform",
        "linux/mips64",
        ctx.path().to_str().unwrap(),
    ]);
    assert_eq!(build.code, Some(1), "{build:#?}");
    assert!(
        build
            .stderr
            .contains("cannot run linux/mips64 binaries here"),
        "{}",
        build.stderr
    );
    let bad = s.run(&["build", "--platform", "linux", ctx.path().to_str().unwrap()]);
    assert_eq!(bad.code, Some(125), "{bad:#?}");
}

#[test]
fn rootless_platform_info_lists_runnable_platforms() {
    let s = Strata::new();
    let out = s.run(&["info"]).success().stdout;
    assert!(out.contains("platform linux/amd64:"), "{out}");
    let arm = out
        .lines()
        .find(|l| l.starts_with("platform linux/arm64:"))
        .unwrap();
    match arm64_base() {
        Some(_) => assert!(arm.contains("emulated"), "{out}"),
        None => assert!(
            arm.contains("no:") && out.contains("qemu-user-static"),
            "{out}"
        ),
    }
    let json = s.run(&["info", "--format", "json"]).success().stdout;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v["platforms"].as_array().unwrap().len() >= 2, "{json}");
}

#[test]
fn registry_platform_manifest_round_trip() {
    let Some(arm64) = arm64_base() else { return };
    let addr = common::registry_addr();
    let s = Strata::new();
    let host = common::busybox_tar();
    s.run(&["import", host.to_str().unwrap(), "one:amd"])
        .success();
    s.run(&[
        "import",
        "--platform",
        "linux/arm64",
        arm64.to_str().unwrap(),
        "one:arm",
    ])
    .success();
    let list = format!("{addr}/{}/list:1", unique("man"));
    s.run(&["manifest", "create", &list]).success();
    let again = s.run(&["manifest", "create", &list]);
    assert_eq!(again.code, Some(125), "{again:#?}");
    s.run(&["manifest", "add", &list, "one:amd"]).success();
    s.run(&[
        "manifest",
        "add",
        "--annotation",
        "org.example.k=v",
        &list,
        "one:arm",
    ])
    .success();
    s.run(&[
        "manifest",
        "annotate",
        "--index",
        "--annotation",
        "org.example.idx=1",
        &list,
    ])
    .success();
    let local = s.run(&["manifest", "inspect", &list]).success().stdout;
    let v: serde_json::Value = serde_json::from_str(&local).unwrap();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 2, "{local}");
    assert_eq!(
        v["manifests"][1]["platform"]["architecture"], "arm64",
        "{local}"
    );
    assert_eq!(
        v["manifests"][1]["annotations"]["org.example.k"], "v",
        "{local}"
    );
    assert_eq!(v["annotations"]["org.example.idx"], "1", "{local}");
    s.run(&["manifest", "push", &list]).success();

    // The registry has the index; a fresh store pulls each by platform.
    let raw = common::tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{list}"),
        ],
    );
    let remote: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(remote["manifests"].as_array().unwrap().len(), 2, "{raw}");
    assert_eq!(remote["annotations"]["org.example.idx"], "1", "{raw}");
    let fresh = Strata::new();
    let shown = fresh.run(&["manifest", "inspect", &list]).success().stdout;
    assert!(shown.contains("\"arm64\""), "{shown}");
    fresh
        .run(&["pull", "--platform", "linux/arm64", &list])
        .success();
    let arch = fresh.run(&[
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        &list,
        "uname",
        "-m",
    ]);
    assert_eq!(arch.success().stdout, "aarch64\n");
    fresh
        .run(&["pull", "--platform", "linux/amd64", &list])
        .success();
    let images = fresh
        .run(&["images", "--format", "{{.Platform}}"])
        .success()
        .stdout;
    let mut platforms: Vec<&str> = images.lines().collect();
    platforms.sort_unstable();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"], "{images}");

    s.run(&["manifest", "rm", &list]).success();
    let gone = s.run(&["manifest", "inspect", &list.replace("list:1", "missing:1")]);
    assert_ne!(gone.code, Some(0), "{gone:#?}");
    let again = s.run(&["manifest", "add", &list, "one:amd"]);
    assert_eq!(again.code, Some(125), "{again:#?}");
}

/// Each platform's RUN leaves a marker in a cache mount both share, then
/// (with WAIT=1) waits for the other's, and says whether it saw it.
const MEET: &str = "FROM bb:1
ARG TARGETARCH
ARG NONCE
ARG WAIT=0
RUN --mount=type=cache,target=/c,sharing=shared \\
    echo \"start-$TARGETARCH\"; touch /c/$NONCE-$TARGETARCH; \\
    other=amd64; [ \"$TARGETARCH\" = amd64 ] && other=arm64; \\
    i=0; while [ \"$WAIT\" = 1 ] && [ ! -e /c/$NONCE-$other ] && [ $i -lt 120 ]; do sleep 1; i=$((i+1)); done; \\
    if [ -e /c/$NONCE-$other ]; then echo \"end-$TARGETARCH saw-$other\"; else echo \"end-$TARGETARCH alone\"; fi
";

/// The position of the first line of `log` that ends with `text`.
fn line_of(log: &str, text: &str) -> usize {
    log.lines()
        .position(|l| l.trim_end().ends_with(text))
        .unwrap_or_else(|| panic!("no line ending {text:?} in:\n{log}"))
}

#[test]
fn registry_platform_builds_overlap_with_two_jobs_in_order_with_one() {
    let Some(arm64) = arm64_base() else { return };
    let s = store_with_both("bb:1", &arm64);
    let ctx = common::context(&[("Dockerfile", MEET)]);
    let build = |jobs: &str, wait: &str| {
        let nonce = format!("NONCE={}", unique("n"));
        let out = s
            .run(&[
                "build",
                "--progress=plain",
                "--jobs",
                jobs,
                "--build-arg",
                &nonce,
                "--build-arg",
                &format!("WAIT={wait}"),
                "--platform",
                "linux/amd64,linux/arm64",
                "-t",
                "meet:1",
                ctx.path().to_str().unwrap(),
            ])
            .success();
        format!("{}{}", out.stdout, out.stderr)
    };
    // Two jobs: each RUN saw the marker the other left while it ran, so
    // they ran at once (neither could have seen it otherwise: each waits
    // for the other's).
    let log = build("2", "1");
    line_of(&log, "end-amd64 saw-arm64");
    line_of(&log, "end-arm64 saw-amd64");
    // Their lines say which platform they are of.
    assert!(log.contains("[linux/arm64 stage-0 "), "{log}");
    // One job: amd64's whole RUN, then arm64's, which saw amd64's marker.
    let log = build("1", "0");
    let order = [
        line_of(&log, "start-amd64"),
        line_of(&log, "end-amd64 alone"),
        line_of(&log, "start-arm64"),
        line_of(&log, "end-arm64 saw-amd64"),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}\n{log}");
}

#[test]
fn registry_platform_no_cache_builder_runs_once_lint_warns_once_report_has_platforms() {
    let Some(arm64) = arm64_base() else { return };
    let s = store_with_both("bb:1", &arm64);
    let dockerfile = format!("{CROSS}MAINTAINER me\n");
    let ctx = common::context(&[("Dockerfile", &dockerfile)]);
    let report = ctx.path().join("report.json");
    let out = s
        .run(&[
            "build",
            "--progress=plain",
            "--no-cache",
            "--jobs",
            "2",
            "--report",
            report.to_str().unwrap(),
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            "cross:2",
            ctx.path().to_str().unwrap(),
        ])
        .success();
    let log = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(builder_runs(&log), ["builder-ran-x86_64"], "{log}");
    // The lint's warning once, not once per platform (BuildKit warns for
    // the first platform only).
    assert_eq!(log.matches("MaintainerDeprecated").count(), 1, "{log}");
    // The report has each platform's steps, the builder's RUN run once.
    let v: serde_json::Value = serde_json::from_slice(&fs_err::read(&report).unwrap()).unwrap();
    let steps = v["steps"].as_array().unwrap();
    let runs = |platform: &str, stage: &str| -> Vec<String> {
        steps
            .iter()
            .filter(|st| st["platform"] == platform && st["stage_name"] == stage)
            .filter(|st| st["instruction"].as_str().unwrap().starts_with("RUN"))
            .map(|st| st["status"].as_str().unwrap().to_string())
            .collect()
    };
    let mut builder = runs("linux/amd64", "builder");
    builder.extend(runs("linux/arm64", "builder"));
    builder.sort();
    assert_eq!(builder, ["cached", "run"], "{v:#}");
    assert_eq!(runs("linux/arm64", "stage-1"), ["run"], "{v:#}");
    assert_eq!(runs("linux/amd64", "stage-1"), ["run"], "{v:#}");
}

#[test]
fn registry_platform_push_list_and_build_manifest() {
    let Some(arm64) = arm64_base() else { return };
    let addr = common::registry_addr();
    let s = store_with_both("bb:1", &arm64);
    let ctx = common::context(&[("Dockerfile", CROSS)]);
    let dir = ctx.path().to_str().unwrap();
    // `build --manifest NAME` twice, one platform each: NAME made, then
    // added to.
    let list = format!("{addr}/{}/m:1", unique("man"));
    for p in ["linux/arm64", "linux/amd64"] {
        s.run(&["build", "-q", "--platform", p, "--manifest", &list, dir])
            .success();
    }
    let shown = s.run(&["manifest", "inspect", &list]).success().stdout;
    let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let mut archs: Vec<&str> = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    archs.sort_unstable();
    assert_eq!(archs, ["amd64", "arm64"], "{shown}");
    // `strata push` of a multi-platform build's tag: the index and both
    // images.
    let dest = format!("{addr}/{}/x:1", unique("pushed"));
    s.run(&[
        "build",
        "-q",
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        &dest,
        dir,
    ])
    .success();
    for name in [&dest, &list] {
        s.run(&["push", name]).success();
        assert_eq!(index_platforms(name), ["linux/amd64", "linux/arm64"]);
        let oci = arm64_copy(name);
        assert_eq!(top_layer_file(oci.path(), "arch"), "aarch64\n");
    }
}

#[test]
fn rootless_platform_rmi_takes_every_platform() {
    let Some(arm64) = arm64_base() else { return };
    let s = store_with_both("bb:1", &arm64);
    let ids = |s: &Strata| -> Vec<String> {
        let out = s
            .run(&["images", "-a", "-q", "--no-trunc"])
            .success()
            .stdout;
        let mut ids: Vec<String> = out.lines().map(str::to_string).collect();
        ids.sort();
        ids.dedup();
        ids
    };
    assert_eq!(ids(&s).len(), 2);
    s.run(&["rmi", "bb:1"]).success();
    assert_eq!(ids(&s), Vec::<String>::new(), "both platforms' images went");
    // An image another name holds stays.
    let s = store_with_both("bb:1", &arm64);
    let arm = s
        .run(&["images", "--format", "{{.ID}} {{.Platform}}"])
        .success()
        .stdout
        .lines()
        .find(|l| l.ends_with("linux/arm64"))
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    s.run(&["tag", &arm, "keep:1"]).success();
    s.run(&["rmi", "bb:1"]).success();
    let left = names_and_platforms(&s);
    assert_eq!(left.trim(), "keep:1 linux/arm64", "{left}");
}

#[test]
fn registry_platform_cache_to_holds_every_platform() {
    let Some(arm64) = arm64_base() else { return };
    let addr = common::registry_addr();
    let cache = format!("{addr}/{}/cache:1", unique("pcache"));
    let ctx = common::context(&[("Dockerfile", CROSS)]);
    let dir = ctx.path().to_str().unwrap();
    let build = |s: &Strata, cache_flag: &str, report: &Path| {
        let spec = match cache_flag {
            "--cache-to" => format!("type=registry,ref={cache},mode=max"),
            _ => format!("type=registry,ref={cache}"),
        };
        s.run(&[
            "build",
            "-q",
            cache_flag,
            &spec,
            "--report",
            report.to_str().unwrap(),
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            "cached:1",
            dir,
        ])
        .success();
    };
    let first = store_with_both("bb:1", &arm64);
    let reports = tempfile::tempdir().unwrap();
    build(&first, "--cache-to", &reports.path().join("1.json"));
    // The record says which platforms' builds made it.
    let config = common::tool(
        "skopeo",
        &[
            "inspect",
            "--config",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{cache}"),
        ],
    );
    let record: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(
        record["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"]),
        "{config}"
    );
    // With its local cache gone (the base images kept: a fresh import
    // would be other images), the store takes every RUN of both platforms
    // from the registry: neither platform's export replaced the other's.
    first.run(&["rmi", "cached:1"]).success();
    first
        .run(&["system", "prune", "--build-cache", "--force"])
        .success();
    let report = reports.path().join("2.json");
    build(&first, "--cache-from", &report);
    let v: serde_json::Value = serde_json::from_slice(&fs_err::read(&report).unwrap()).unwrap();
    let runs: Vec<(String, String)> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|st| st["instruction"].as_str().unwrap().starts_with("RUN"))
        .map(|st| {
            let p = st["platform"].as_str().unwrap().to_string();
            (p, st["status"].as_str().unwrap().to_string())
        })
        .collect();
    let platforms: std::collections::BTreeSet<&str> =
        runs.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(platforms.len(), 2, "{v:#}");
    assert!(runs.iter().all(|(_, s)| s == "cached"), "{v:#}");
}

/// arm64's RUN fails once amd64's runs; amd64's would wait two minutes.
const ONE_FAILS: &str = "FROM bb:1
ARG TARGETARCH
ARG NONCE
RUN --mount=type=cache,target=/c,sharing=shared \\
    if [ \"$TARGETARCH\" = arm64 ]; then \\
      i=0; while [ ! -e /c/$NONCE-amd64 ] && [ $i -lt 120 ]; do sleep 1; i=$((i+1)); done; exit 3; \\
    fi; \\
    touch /c/$NONCE-amd64; i=0; while [ $i -lt 120 ]; do sleep 1; i=$((i+1)); done; echo finished-$TARGETARCH
";

#[test]
fn registry_platform_one_failure_stops_the_others() {
    let Some(arm64) = arm64_base() else { return };
    let s = store_with_both("bb:1", &arm64);
    let ctx = common::context(&[("Dockerfile", ONE_FAILS)]);
    let out = s.run(&[
        "build",
        "--progress=plain",
        "--jobs",
        "2",
        "--build-arg",
        &format!("NONCE={}", unique("f")),
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        "fails:1",
        ctx.path().to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(1), "{out:#?}");
    // The error is arm64's own, not the stop it caused in amd64's build.
    assert!(
        out.stderr.contains("building for linux/arm64") && out.stderr.contains("exit status 3"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("building for linux/amd64:"),
        "{}",
        out.stderr
    );
    // amd64's RUN was stopped, not let run to its end.
    assert!(!out.stdout.contains("finished-amd64"), "{}", out.stdout);
    assert_eq!(
        s.run(&["ps", "-aq"]).success().stdout,
        "",
        "no container left"
    );
    assert!(
        s.run(&["inspect", "fails:1"]).code != Some(0),
        "nothing tagged"
    );
}
