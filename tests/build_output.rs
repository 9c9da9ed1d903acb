//! Build outputs (`-o/--output`, `--push`) read by their readers, and the
//! image transforms (`--squash`, `--squash-all`, `--unsetlabel`) checked
//! through the root file system the image shows.
#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

mod common;

use std::path::Path;
use std::process::Stdio;

use common::fstree::tree;
use common::Strata;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// busybox, a file, a deleted file and a RUN layer over a deleted
/// directory: every kind of change, so squashing and flattening have
/// whiteouts to honour.
const DOCKERFILE: &str = "FROM busybox
LABEL from.base=yes keep=1
RUN mkdir -p /d/sub && echo one > /d/sub/f && echo gone > /d/gone && ln -s sub/f /d/link
COPY hello /hello
RUN rm /d/gone && rm -r /d/sub && mkdir /d/sub && echo two > /d/sub/g && chmod 4755 /d/sub/g
";

fn setup() -> (Strata, tempfile::TempDir) {
    let s = Strata::new();
    s.import_busybox("busybox");
    let ctx = common::context(&[("Dockerfile", DOCKERFILE), ("hello", "hello\n")]);
    (s, ctx)
}

/// A tar's entries as `tree` lines (no directories' trailing slash).
fn tar_tree(tar: &Path) -> Vec<String> {
    let mut a = tar::Archive::new(fs_err::File::open(tar).unwrap());
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        let rel = e.path().unwrap().display().to_string();
        let rel = rel.trim_end_matches('/').to_string();
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.display().to_string())
            .unwrap_or_default();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => "d",
            tar::EntryType::Symlink => "l",
            _ => "f",
        };
        let size = if kind == "f" { h.size().unwrap() } else { 0 };
        out.push(format!(
            "{rel} {kind} {:o} {link} {size}",
            h.mode().unwrap() & 0o7777
        ));
    }
    out.sort();
    out
}

fn layers(st: &Strata, image: &str) -> Vec<String> {
    let out = st.run(&["inspect", image]).success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    v[0]["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

fn inspect(st: &Strata, image: &str) -> serde_json::Value {
    let out = st.run(&["inspect", image]).success();
    serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap()[0].clone()
}

/// The image's root file system as `strata export` of a container of it
/// gives it, unpacked by tar into a directory.
fn exported_tree(st: &Strata, image: &str, work: &Path) -> Vec<String> {
    let name = format!("c{}", std::process::id());
    st.run(&["run", "--name", &name, image, "true"]).success();
    let tar = work.join("export.tar");
    st.run(&["export", "-o", s(&tar), &name]).success();
    st.run(&["rm", &name]).success();
    tar_tree(&tar)
}

#[test]
fn interop_build_outputs_are_read_by_their_readers() {
    let (st, ctx) = setup();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (local, tar, oci, ocidir, docker) = (
        w.join("local"),
        w.join("fs.tar"),
        w.join("oci.tar"),
        w.join("ocidir"),
        w.join("docker.tar"),
    );
    st.build(
        ctx.path(),
        &[
            "-t",
            "app:1",
            "-o",
            &format!("type=local,dest={}", s(&local)),
            "-o",
            &format!("type=tar,dest={}", s(&tar)),
            "-o",
            &format!("type=oci,dest={}", s(&oci)),
            "-o",
            &format!("type=oci,dest={},tar=false", s(&ocidir)),
            "-o",
            &format!("type=docker,dest={},name=loaded:d", s(&docker)),
        ],
    )
    .success();
    let want = exported_tree(&st, "app:1", w);
    assert!(
        want.iter().any(|l| l.starts_with("d/sub/g f 4755")),
        "{want:#?}"
    );
    assert!(!want.iter().any(|l| l.starts_with("d/gone")), "{want:#?}");
    // type=local is the image's root file system, owned by the caller.
    assert_eq!(tree(&local), want, "type=local");
    use std::os::unix::fs::MetadataExt;
    let owner = fs_err::metadata(local.join("hello")).unwrap().uid();
    assert_eq!(owner, nix::unistd::getuid().as_raw());
    assert_eq!(tar_tree(&tar), want, "type=tar");

    // type=oci: skopeo copies the archive; umoci unpacks the layout.
    let copy = w.join("copy");
    common::tool(
        "skopeo",
        &[
            "copy",
            &format!("oci-archive:{}", s(&oci)),
            &format!("oci:{}:x", s(&copy)),
        ],
    );
    let bundle = w.join("bundle");
    let rootfs = common::umoci_unpack(&format!("{}:1", s(&ocidir)), &bundle);
    assert_eq!(tree(&rootfs), want, "umoci of type=oci,tar=false");

    // type=docker loads into a fresh store with the same id.
    let other = Strata::new();
    other.run(&["load", "-i", s(&docker)]).success();
    assert_eq!(
        inspect(&other, "loaded:d")["Id"],
        inspect(&st, "app:1")["Id"]
    );
}

#[test]
fn rootless_build_output_to_stdout_keeps_the_log_on_stderr() {
    let (st, ctx) = setup();
    let work = tempfile::tempdir().unwrap();
    for (spec, check) in [("-", "d/sub/g"), ("type=oci,dest=-", "index.json")] {
        let out = st
            .cmd()
            .args(["build", "-o", spec, s(ctx.path())])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("Step 1/5 : FROM busybox"), "{stderr}");
        let path = work.path().join("out.tar");
        fs_err::write(&path, &out.stdout).unwrap();
        let names = tar_tree(&path);
        assert!(
            names.iter().any(|l| l.starts_with(check)),
            "{spec}: {names:#?}"
        );
    }
    // Two outputs on stdout, a bad spec: refused before anything runs.
    for bad in [
        &["-o", "-", "-o", "type=tar,dest=-"][..],
        &["-o", "type=nope"],
    ] {
        let r = st.build(ctx.path(), bad);
        assert_eq!(r.code, Some(125), "{r:#?}");
        assert!(!r.stdout.contains("Step"), "{r:#?}");
    }
}

#[test]
fn rootless_build_squash_and_squash_all() {
    let (st, ctx) = setup();
    let work = tempfile::tempdir().unwrap();
    st.build(ctx.path(), &["-q", "-t", "plain"]).success();
    st.build(ctx.path(), &["-q", "-t", "sq", "--squash"])
        .success();
    st.build(ctx.path(), &["-q", "-t", "all", "--squash-all"])
        .success();
    let base = layers(&st, "busybox");
    let plain = layers(&st, "plain");
    let sq = layers(&st, "sq");
    assert_eq!(plain.len(), base.len() + 3);
    assert_eq!(sq.len(), base.len() + 1, "--squash: base layers and one");
    assert_eq!(sq[..base.len()], base[..]);
    assert_eq!(layers(&st, "all").len(), 1, "--squash-all: one layer");
    // The same files whichever way the layers are cut.
    let want = exported_tree(&st, "plain", work.path());
    assert_eq!(exported_tree(&st, "sq", work.path()), want);
    assert_eq!(exported_tree(&st, "all", work.path()), want);
    // Non-empty history entries still pair with layers (docker load checks).
    for image in ["sq", "all"] {
        let h = st.run(&["history", "-q", image]).success();
        assert!(!h.stdout.is_empty());
        let v = inspect(&st, image);
        assert_eq!(
            v["RootFS"]["Layers"].as_array().unwrap().len(),
            layers(&st, image).len()
        );
    }
    // A rebuild reuses every step: the transforms do not touch the cache.
    let again = st.build(ctx.path(), &["-t", "sq2", "--squash"]).success();
    assert_eq!(again.stdout.matches("Using cache").count(), 4, "{again:#?}");
    assert_eq!(layers(&st, "sq2"), sq);
}

#[test]
fn rootless_build_metadata_annotations_and_unsetlabel() {
    let (st, ctx) = setup();
    let work = tempfile::tempdir().unwrap();
    let (meta, oci) = (work.path().join("meta.json"), work.path().join("oci.tar"));
    st.build(
        ctx.path(),
        &[
            "-q",
            "-t",
            "app:m",
            "--metadata-file",
            s(&meta),
            "--annotation",
            "org.opencontainers.image.title=strata test",
            "--annotation",
            "index:org.example.index=1",
            "--unsetlabel",
            "from.base",
            "-o",
            &format!("type=oci,dest={}", s(&oci)),
        ],
    )
    .success();
    let v: serde_json::Value = serde_json::from_slice(&fs_err::read(&meta).unwrap()).unwrap();
    let id = inspect(&st, "app:m")["Id"].as_str().unwrap().to_string();
    assert_eq!(v["containerimage.config.digest"], id);
    assert_eq!(v["image.name"], "docker.io/library/app:m");
    let raw = common::tool(
        "skopeo",
        &["inspect", "--raw", &format!("oci-archive:{}", s(&oci))],
    );
    let digest = format!("sha256:{}", common::tarspec::sha256_hex(raw.as_bytes()));
    assert_eq!(v["containerimage.digest"], digest);
    let m: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        m["annotations"]["org.opencontainers.image.title"],
        "strata test"
    );
    let mut a = tar::Archive::new(fs_err::File::open(&oci).unwrap());
    let index = a
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_str() == Some("index.json"))
        .map(|e| serde_json::from_reader::<_, serde_json::Value>(e).unwrap())
        .unwrap();
    assert_eq!(index["annotations"]["org.example.index"], "1", "{index}");
    let labels = &inspect(&st, "app:m")["Config"]["Labels"];
    assert_eq!(labels["keep"], "1");
    assert!(labels.get("from.base").is_none(), "{labels}");
}

/// Each layer's media type in a manifest.
fn layer_types(manifest: &str) -> Vec<String> {
    let m: serde_json::Value = serde_json::from_str(manifest).unwrap();
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap().to_string())
        .collect()
}

fn all_zstd(types: &[String]) -> bool {
    types.iter().all(|t| t.ends_with("+zstd"))
}

#[test]
fn registry_build_outputs_zstd_and_force_compression() {
    let addr = common::registry_addr();
    let ns = format!("outputs{}", std::process::id());
    let (st, ctx) = setup();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let repo = format!("{addr}/{ns}/app");
    let raw = |tag: &str| {
        common::tool(
            "skopeo",
            &[
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{repo}:{tag}"),
            ],
        )
    };
    // type=registry and a gzip push: skopeo reads both.
    let oci = w.join("zstd.tar");
    st.build(
        ctx.path(),
        &[
            "-q",
            "-t",
            &format!("{repo}:gzip"),
            "--push",
            "-o",
            &format!("type=registry,name={repo}:out"),
        ],
    )
    .success();
    assert_eq!(raw("gzip"), raw("out"));
    assert!(raw("gzip").contains("tar+gzip"));
    // zstd asked without force: the layers' kept gzip blobs go as they are
    // (BuildKit); with --force-compression they are recompressed.
    let zstd = ["--compression-format", "zstd"];
    st.build(
        ctx.path(),
        &[&["-q", "-t", &format!("{repo}:kept"), "--push"][..], &zstd].concat(),
    )
    .success();
    assert_eq!(raw("kept"), raw("gzip"));
    let forced = format!("{repo}:zstd");
    let mut args = vec!["-q", "-t", &forced, "--push", "--force-compression"];
    args.extend(zstd);
    let oci_out = format!("type=oci,dest={}", s(&oci));
    args.extend(["-o", &oci_out]);
    st.build(ctx.path(), &args).success();
    assert!(all_zstd(&layer_types(&raw("zstd"))), "{}", raw("zstd"));
    // skopeo reads the zstd output and the zstd image in the registry.
    let copy = w.join("copy");
    for src in [
        format!("oci-archive:{}", s(&oci)),
        format!("docker://{forced}"),
    ] {
        common::tool(
            "skopeo",
            &[
                "copy",
                "--src-tls-verify=false",
                &src,
                &format!("oci:{}:x", s(&copy)),
            ],
        );
    }
    let copied = common::tool(
        "skopeo",
        &["inspect", "--raw", &format!("oci:{}:x", s(&copy))],
    );
    assert!(all_zstd(&layer_types(&copied)), "{copied}");
    // save --compression-format zstd, read by skopeo.
    let saved = w.join("saved.tar");
    let app = format!("{repo}:zstd");
    st.run(&[
        "save",
        "--format",
        "oci-archive",
        "--compression-format",
        "zstd",
        "-o",
        s(&saved),
        &app,
    ])
    .success();
    let saved_raw = common::tool(
        "skopeo",
        &["inspect", "--raw", &format!("oci-archive:{}", s(&saved))],
    );
    assert!(all_zstd(&layer_types(&saved_raw)), "{saved_raw}");
    // strata pulls the zstd image back into a fresh store and runs it.
    let other = Strata::new();
    other.run(&["pull", &forced]).success();
    let out = other
        .run(&["run", "--rm", &forced, "cat", "/hello"])
        .success();
    assert_eq!(out.stdout, "hello\n");
    // A gzip image pushed again with push --force-compression is zstd.
    st.run(&[
        "push",
        "--compression-format",
        "zstd",
        "--force-compression",
        &format!("{repo}:gzip"),
    ])
    .success();
    assert!(all_zstd(&layer_types(&raw("gzip"))), "{}", raw("gzip"));
}

#[test]
fn registry_build_provenance_is_attached_as_buildkit_does() {
    let addr = common::registry_addr();
    let ns = format!("prov{}", std::process::id());
    let (st, _) = setup();
    let base = format!("{addr}/{ns}/busybox:1");
    st.run(&["push", "busybox", &base]).success();
    let raw = |r: &str| common::tool("skopeo", &["inspect", "--raw", "--tls-verify=false", r]);
    let sha = |text: &str| common::tarspec::sha256_hex(text.as_bytes());
    let base_manifest = sha(&raw(&format!("docker://{base}")));
    // A fresh store pulls the base from the registry for FROM.
    let fresh = Strata::new();
    let dockerfile =
        format!("FROM {base}\nARG API_TOKEN\nARG VERSION\nRUN echo \"$VERSION\" > /v\n");
    let ctx = common::context(&[("Dockerfile", &dockerfile)]);
    let work = tempfile::tempdir().unwrap();
    let oci = work.path().join("app.tar");
    let app = format!("{addr}/{ns}/app:prov");
    let secret = "s3cr3t-valu3";
    fresh
        .build(
            ctx.path(),
            &[
                "-q",
                "--provenance=mode=max",
                "--build-arg",
                &format!("API_TOKEN={secret}"),
                "--build-arg",
                "VERSION=7",
                "-t",
                &app,
                "--push",
                "-o",
                &format!("type=oci,dest={}", s(&oci)),
            ],
        )
        .success();
    // The index: the image, then its attestation manifest.
    let index: serde_json::Value = serde_json::from_str(&raw(&format!("docker://{app}"))).unwrap();
    let (image, att) = (&index["manifests"][0], &index["manifests"][1]);
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
    assert_eq!(
        att["annotations"]["vnd.docker.reference.type"],
        "attestation-manifest"
    );
    assert_eq!(
        att["annotations"]["vnd.docker.reference.digest"],
        image["digest"]
    );
    assert_eq!(att["platform"]["os"], "unknown");
    let att_ref = format!(
        "docker://{addr}/{ns}/app@{}",
        att["digest"].as_str().unwrap()
    );
    let att_manifest = raw(&att_ref);
    let m: serde_json::Value = serde_json::from_str(&att_manifest).unwrap();
    let layer = &m["layers"][0];
    assert_eq!(layer["mediaType"], "application/vnd.in-toto+json");
    assert_eq!(m["subject"]["digest"], image["digest"]);
    let blob = format!(
        "http://{addr}/v2/{ns}/app/blobs/{}",
        layer["digest"].as_str().unwrap()
    );
    let statement = common::tool("curl", &["-sf", &blob]);
    let v: serde_json::Value = serde_json::from_str(&statement).unwrap();
    assert_eq!(v["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(v["predicateType"], "https://slsa.dev/provenance/v1");
    assert_eq!(
        layer["annotations"]["in-toto.io/predicate-type"],
        v["predicateType"]
    );
    let subject = format!(
        "sha256:{}",
        v["subject"][0]["digest"]["sha256"].as_str().unwrap()
    );
    assert_eq!(subject, image["digest"].as_str().unwrap());
    let def = &v["predicate"]["buildDefinition"];
    assert_eq!(
        def["resolvedDependencies"][0]["digest"]["sha256"], base_manifest,
        "{v:#}"
    );
    assert_eq!(
        def["externalParameters"]["request"]["args"]["build-arg:VERSION"],
        "7"
    );
    let steps = def["internalParameters"]["buildConfig"]["steps"].to_string();
    assert!(steps.contains("RUN echo \\\"$VERSION\\\" > /v"), "{steps}");
    for text in [&statement, &att_manifest, &index.to_string()] {
        assert!(!text.contains(secret), "a secret in {text}");
    }
    // Beside the type=oci output: a statement about the manifest in it.
    let beside = fs_err::read_to_string(work.path().join("app.tar.provenance.json")).unwrap();
    assert!(!beside.contains(secret));
    let b: serde_json::Value = serde_json::from_str(&beside).unwrap();
    let in_oci = sha(&raw(&format!("oci-archive:{}", s(&oci))));
    assert_eq!(b["subject"][0]["digest"]["sha256"], in_oci);
    // The index still pulls and runs: the attestation is never picked.
    let other = Strata::new();
    other.run(&["pull", &app]).success();
    let out = other.run(&["run", "--rm", &app, "cat", "/v"]).success();
    assert_eq!(out.stdout, "7\n");
}

#[test]
fn rootless_build_arg_file_under_build_arg() {
    let st = Strata::new();
    st.import_busybox("busybox");
    let ctx = common::context(&[
        (
            "Dockerfile",
            "FROM busybox\nARG A\nARG B\nRUN echo \"$A $B\" > /ab\n",
        ),
        ("args.conf", "# a comment\n\nA=from-file\n  B=file\n"),
    ]);
    let file = ctx.path().join("args.conf");
    let args = [
        "-q",
        "-t",
        "ab",
        "--build-arg-file",
        s(&file),
        "--build-arg",
        "B=cli",
    ];
    st.build(ctx.path(), &args).success();
    let out = st.run(&["run", "--rm", "ab", "cat", "/ab"]).success();
    assert_eq!(out.stdout, "from-file cli\n");
    let missing = st.build(ctx.path(), &["--build-arg-file", "/nonexistent/args"]);
    assert_eq!(missing.code, Some(125), "{missing:#?}");
    assert!(missing.stderr.contains("/nonexistent/args"), "{missing:#?}");
}

/// `--provenance` of a context that is no git checkout names the digest of
/// its files as the build sees them: the same for the same files, another
/// for a new file, the first again once `.dockerignore` leaves it out.
#[test]
fn rootless_build_provenance_names_the_context_digest() {
    let (st, ctx) = setup();
    let work = tempfile::tempdir().unwrap();
    let digest = |n: usize| {
        let dest = work.path().join(format!("oci{n}"));
        st.build(
            ctx.path(),
            &[
                "--provenance",
                "-t",
                "app:1",
                "-o",
                &format!("type=oci,dest={},tar=false", s(&dest)),
            ],
        )
        .success();
        let beside =
            fs_err::read_to_string(work.path().join(format!("oci{n}.provenance.json"))).unwrap();
        let v: serde_json::Value = serde_json::from_str(&beside).unwrap();
        let context = &v["predicate"]["buildDefinition"]["externalParameters"]["context"];
        let d = context["digest"]["sha256"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(d.len(), 64, "{v:#}");
        d
    };
    let first = digest(1);
    assert_eq!(digest(2), first, "the same files");
    fs_err::write(ctx.path().join("new"), "new\n").unwrap();
    let with_new = digest(3);
    assert_ne!(with_new, first, "a new file");
    fs_err::write(ctx.path().join(".dockerignore"), "new\n.dockerignore\n").unwrap();
    assert_eq!(digest(4), first, "the new file ignored");
}

/// Compressing shows as a push shows it, on stderr: `save` to stdout (the
/// archive whole) and a build's `type=oci` output, each making new blobs.
#[test]
fn rootless_save_and_outputs_show_compression() {
    let (st, ctx) = setup();
    st.build(ctx.path(), &["-t", "app:1"]).success();
    let out = st
        .cmd()
        .args([
            "save",
            "--format",
            "oci-archive",
            "--compression-format",
            "zstd",
            "app:1",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(": Compressing"), "{stderr}");
    let mut archive = tar::Archive::new(&out.stdout[..]);
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.iter().any(|n| n == "index.json"), "{names:?}");

    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("gz.tar");
    let run = st
        .build(
            ctx.path(),
            &[
                "-t",
                "app:1",
                "-o",
                &format!(
                    "type=oci,dest={},compression=gzip,compression-level=1,force-compression=true",
                    s(&dest)
                ),
            ],
        )
        .success();
    assert!(run.stderr.contains(": Compressing"), "{run:#?}");
}
