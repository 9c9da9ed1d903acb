//! Reproducible builds: `--timestamp`, SOURCE_DATE_EPOCH (environment or
//! build arg) and `--verify-repro`, with the whole binary.
//!
//! "Two builds minutes apart" without sleeping: the second build of each
//! pair runs under libfaketime three hours ahead (strata's clock, so every
//! time strata writes: config and history `created`, the time it stamps
//! files with) in a store made at that faked time, with the context's files
//! touched two hours ahead (as a later checkout has newer mtimes). Anything
//! time-dependent that leaks into the image then shows as a difference.
#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

mod common;

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::{Run, Strata};

const DOCKERFILE: &str = "FROM busybox
COPY hello /hello
RUN mkdir -p /d && echo one > /d/f && ln -s f /d/l && touch /tmp/x
RUN echo two >> /d/f
ENV A=1
";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A fresh store holding busybox, imported now or (`later`) hours ahead.
fn store(later: bool) -> Strata {
    let st = Strata::new();
    let bb = common::busybox_tar();
    run(&st, later, &["import", s(&bb), "busybox"], &[]).success();
    st
}

/// strata in `st`'s store, under libfaketime three hours ahead if `later`.
fn run(st: &Strata, later: bool, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = if later {
        let mut c = Command::new("faketime");
        c.args(["-f", "+3h"]).arg(common::strata_bin());
        c
    } else {
        Command::new(common::strata_bin())
    };
    cmd.env("STRATA_ROOT", st.root.path())
        .env_remove("STRATA_STORAGE_DRIVER")
        .env_remove("SOURCE_DATE_EPOCH")
        .envs(env.iter().copied())
        .args(args);
    Run::of(cmd.output().unwrap())
}

/// Sets the mtime of every file of the context `hours` ahead of now.
fn touch_ahead(ctx: &Path, hours: u64) {
    let when = SystemTime::now() + Duration::from_secs(hours * 3600);
    for e in fs_err::read_dir(ctx).unwrap() {
        let f = fs_err::File::options()
            .write(true)
            .open(e.unwrap().path())
            .unwrap();
        f.set_modified(when).unwrap();
    }
}

fn context() -> tempfile::TempDir {
    common::context(&[("Dockerfile", DOCKERFILE), ("hello", "hello\n")])
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", common::tarspec::sha256_hex(data))
}

fn skopeo(args: &[&str]) -> String {
    common::tool("skopeo", args)
}

/// A name, the build's flags, its environment, the `created` it gives.
type Variant = (
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[test]
fn registry_build_reproducible_pushes_the_same_manifest_from_two_stores() {
    let addr = common::registry_addr();
    let ns = format!("repro{}", std::process::id());
    let work = tempfile::tempdir().unwrap();
    let variants: [Variant; 4] = [
        ("ts0", &["--timestamp", "0"], &[], "1970-01-01T00:00:00Z"),
        (
            "zstd-ts0",
            &["--timestamp", "0", "--compression-format", "zstd"],
            &[],
            "1970-01-01T00:00:00Z",
        ),
        (
            "zstd-env",
            &["--compression-format", "zstd"],
            &[("SOURCE_DATE_EPOCH", "1700000000")],
            "2023-11-14T22:13:20Z",
        ),
        (
            "arg",
            &["--build-arg", "SOURCE_DATE_EPOCH=1700000000"],
            &[],
            "2023-11-14T22:13:20Z",
        ),
    ];
    for (name, flags, env, created) in variants {
        let ctx = context();
        let mut pushed = Vec::new();
        for later in [false, true] {
            if later {
                touch_ahead(ctx.path(), 2);
            }
            let st = store(later);
            let tag = format!("{addr}/{ns}/{name}:{}", u8::from(later));
            let meta = work.path().join(format!("{name}-{later}.json"));
            let mut args = vec!["build", "-q", "-t", &tag, "--push"];
            args.extend(["--metadata-file", s(&meta)]);
            args.extend(flags);
            args.push(s(ctx.path()));
            run(&st, later, &args, env).success();
            let raw = skopeo(&[
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{tag}"),
            ]);
            let m: serde_json::Value =
                serde_json::from_slice(&fs_err::read(&meta).unwrap()).unwrap();
            assert_eq!(m["containerimage.digest"], sha256(raw.as_bytes()), "{name}");
            let config = skopeo(&[
                "inspect",
                "--config",
                "--tls-verify=false",
                &format!("docker://{tag}"),
            ]);
            let config: serde_json::Value = serde_json::from_str(&config).unwrap();
            assert_eq!(config["created"], created, "{name}: {config}");
            pushed.push(raw);
        }
        assert_eq!(pushed[0], pushed[1], "{name}: the two pushed manifests");
        let manifest: serde_json::Value = serde_json::from_str(&pushed[0]).unwrap();
        let wanted = if name.starts_with("zstd") {
            "tar+zstd"
        } else {
            "tar+gzip"
        };
        for layer in manifest["layers"].as_array().unwrap() {
            let t = layer["mediaType"].as_str().unwrap();
            assert!(t.ends_with(wanted), "{name}: {manifest}");
        }
    }
}

/// One entry of a layer: path, then type, mode, owner, size, link target,
/// content digest; and the mtime apart.
type Entry = (String, String, u64);

/// The image of an OCI layout directory: its config and each layer's
/// entries.
fn read_layout(dir: &Path) -> (serde_json::Value, Vec<Vec<Entry>>) {
    let blob = |d: &serde_json::Value| {
        let hex = d.as_str().unwrap().trim_start_matches("sha256:");
        fs_err::read(dir.join("blobs/sha256").join(hex)).unwrap()
    };
    let json = |b: Vec<u8>| serde_json::from_slice::<serde_json::Value>(&b).unwrap();
    let index = json(fs_err::read(dir.join("index.json")).unwrap());
    let manifest = json(blob(&index["manifests"][0]["digest"]));
    let config = json(blob(&manifest["config"]["digest"]));
    let layers = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| entries(&blob(&l["digest"])))
        .collect();
    (config, layers)
}

fn entries(gz: &[u8]) -> Vec<Entry> {
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        let what = format!(
            "{:?} {:o} {}:{} {} {:?} {}",
            h.entry_type(),
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.size().unwrap(),
            h.link_name().unwrap(),
            sha256(&data)
        );
        out.push((
            e.path().unwrap().display().to_string(),
            what,
            h.mtime().unwrap(),
        ));
    }
    out
}

/// `created` removed wherever it is (config and history).
fn without_created(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.remove("created");
            m.values_mut().for_each(without_created);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(without_created),
        _ => {}
    }
}

#[test]
fn rootless_build_without_an_epoch_differs_only_in_times() {
    let ctx = context();
    let work = tempfile::tempdir().unwrap();
    let mut images = Vec::new();
    for later in [false, true] {
        if later {
            touch_ahead(ctx.path(), 2);
        }
        let st = store(later);
        let dir = work.path().join(format!("oci-{later}"));
        let out = format!("type=oci,dest={},tar=false", s(&dir));
        run(&st, later, &["build", "-q", "-o", &out, s(ctx.path())], &[]).success();
        images.push(read_layout(&dir));
    }
    let [(mut c0, l0), (mut c1, l1)] = <[_; 2]>::try_from(images).unwrap();
    assert_ne!(c0["created"], c1["created"]);
    // The layers' digests differ with their mtimes; their entries are
    // compared below.
    for c in [&mut c0, &mut c1] {
        without_created(c);
        c.as_object_mut().unwrap().remove("rootfs");
    }
    assert_eq!(
        c0, c1,
        "the configs apart from `created` and the layer digests"
    );
    assert_eq!(l0.len(), l1.len());
    let mut mtimes_differ = 0;
    for (a, b) in l0.iter().zip(&l1) {
        let strip = |l: &[Entry]| {
            l.iter()
                .map(|(p, w, _)| (p.clone(), w.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(a), strip(b), "the layers' entries apart from mtimes");
        mtimes_differ += a.iter().zip(b).filter(|(x, y)| x.2 != y.2).count();
    }
    // The context's file, touched ahead, at least.
    assert!(mtimes_differ > 0);
}

#[test]
fn rootless_build_epoch_keeps_the_step_cache() {
    let ctx = context();
    let st = store(false);
    let plain = run(&st, false, &["build", "-t", "plain", s(ctx.path())], &[]).success();
    assert!(!plain.stdout.contains("Using cache"), "{plain:#?}");
    // The same steps with an epoch: every step from the cache, a different
    // (dated) image; and the plain build after it still cached and the same.
    let dated = run(
        &st,
        false,
        &["build", "--timestamp", "0", "-t", "dated", s(ctx.path())],
        &[],
    )
    .success();
    assert_eq!(dated.stdout.matches("Using cache").count(), 4, "{dated:#?}");
    let again = run(&st, false, &["build", "-t", "again", s(ctx.path())], &[]).success();
    assert_eq!(again.stdout.matches("Using cache").count(), 4, "{again:#?}");
    let id = |name: &str| {
        let out = run(
            &st,
            false,
            &["inspect", "-f", "{{.Id}} {{.Created}}", name],
            &[],
        )
        .success();
        out.stdout.trim().to_string()
    };
    assert_eq!(id("plain"), id("again"));
    assert_ne!(id("plain"), id("dated"));
    assert!(
        id("dated").ends_with("1970-01-01T00:00:00Z"),
        "{}",
        id("dated")
    );
}

#[test]
fn rootless_build_verify_repro_passes_or_names_the_first_difference() {
    let st = store(false);
    let ctx = context();
    let args = ["build", "--verify-repro", "--timestamp", "0", "-t", "v"];
    let ok = run(&st, false, &[&args[..], &[s(ctx.path())]].concat(), &[]).success();
    // Two whole builds in fresh stores: nothing from a cache.
    assert_eq!(
        ok.stdout.matches("Step 1/5 : FROM busybox").count(),
        2,
        "{ok:#?}"
    );
    assert!(!ok.stdout.contains("Using cache"), "{ok:#?}");
    let id = run(&st, false, &["inspect", "-f", "{{.Id}}", "v"], &[]).success();
    let verdict = format!("reproducible: {}", id.stdout.trim());
    assert!(ok.stdout.lines().any(|l| l == verdict), "{ok:#?}");

    // `date` a second after the other build's: /t differs, and only /t.
    let dated = common::context(&[("Dockerfile", "FROM busybox\nRUN sleep 1 && date > /t\n")]);
    let args = ["build", "--verify-repro", "--timestamp", "0", "-t", "dated"];
    let bad = run(&st, false, &[&args[..], &[s(dated.path())]].concat(), &[]);
    assert_eq!(bad.code, Some(1), "{bad:#?}");
    let mut lines = bad
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("not reproducible"));
    assert_eq!(
        lines.next(),
        Some("not reproducible: /t: content differs (layer 2: /bin/sh -c sleep 1 && date > /t)"),
        "{bad:#?}"
    );
    let first = lines
        .next()
        .unwrap()
        .strip_prefix("  first build:  ")
        .unwrap();
    let second = lines
        .next()
        .unwrap()
        .strip_prefix("  second build: ")
        .unwrap();
    assert_ne!(first, second);
    assert!(
        first.contains("UTC") && second.contains("UTC"),
        "{first} {second}"
    );
    // Not reproducible: nothing tagged.
    assert_ne!(run(&st, false, &["inspect", "dated"], &[]).code, Some(0));

    // Without an epoch no two builds are the same: refused before building.
    let none = run(&st, false, &["build", "--verify-repro", s(ctx.path())], &[]);
    assert_eq!(none.code, Some(125), "{none:#?}");
    assert!(
        none.stderr.contains("--verify-repro needs --timestamp"),
        "{none:#?}"
    );
    assert!(!none.stdout.contains("Step"), "{none:#?}");
}
