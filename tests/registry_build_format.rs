//! `build --format oci|docker` (and `commit --format`): the format is
//! recorded with the image and decides the media types a later `push`
//! without `--format` writes to a registry, checked with skopeo; the config
//! keeps Healthcheck, OnBuild and Shell in both formats; an explicit
//! `push --format` wins; local transports keep their own format.
#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

mod common;

use common::Strata;
use serde_json::Value;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The FMT build arg makes the two builds different images: the image id
/// is the config digest, the same in both formats.
const DOCKERFILE: &str = "FROM busybox
ARG FMT
RUN echo \"$FMT\" > /fmt
HEALTHCHECK --interval=5s CMD true
ONBUILD RUN echo triggered
SHELL [\"/bin/sh\", \"-ec\"]
";

/// A store with busybox and a context holding DOCKERFILE.
fn setup() -> (Strata, tempfile::TempDir) {
    let s = Strata::new();
    s.import_busybox("busybox");
    let ctx = tempfile::tempdir().unwrap();
    fs_err::write(ctx.path().join("Dockerfile"), DOCKERFILE).unwrap();
    (s, ctx)
}

fn build(s: &Strata, ctx: &tempfile::TempDir, tag: &str, format: &str) {
    let arg = format!("FMT={format}");
    s.run(&[
        "build",
        "-q",
        "--format",
        format,
        "--build-arg",
        &arg,
        "-t",
        tag,
        ctx.path().to_str().unwrap(),
    ])
    .success();
}

/// A repository of its own on the test registry, so a registry kept
/// between runs starts empty there.
fn repository(addr: &str) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!("{addr}/fmt{}x{ms}/app", std::process::id())
}

fn skopeo_json(args: &[&str], image: &str) -> Value {
    // Anonymous: the test user may have no readable auth file.
    let mut all = vec!["inspect", "--tls-verify=false", "--no-creds"];
    all.extend(args);
    let target = format!("docker://{image}");
    all.push(&target);
    serde_json::from_str(&common::tool("skopeo", &all)).unwrap()
}

/// The manifest's, config's and every layer's media types are the format's.
fn assert_media_types(image: &str, manifest: &str, config: &str, layer: &str) {
    let m = skopeo_json(&["--raw"], image);
    assert_eq!(m["mediaType"], manifest, "{image}: {m:#}");
    assert_eq!(m["config"]["mediaType"], config, "{image}: {m:#}");
    let layers = m["layers"].as_array().unwrap();
    // busybox and the RUN layer.
    assert_eq!(layers.len(), 2, "{image}: {m:#}");
    for l in layers {
        assert_eq!(l["mediaType"], layer, "{image}: {m:#}");
    }
}

/// Healthcheck, OnBuild and Shell survive in the pushed config.
fn assert_config_kept(image: &str) {
    let c = skopeo_json(&["--config", "--raw"], image);
    let run = &c["config"];
    assert_eq!(
        run["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "true"]),
        "{image}: {c:#}"
    );
    assert_eq!(
        run["OnBuild"],
        serde_json::json!(["RUN echo triggered"]),
        "{image}: {c:#}"
    );
    assert_eq!(
        run["Shell"],
        serde_json::json!(["/bin/sh", "-ec"]),
        "{image}: {c:#}"
    );
}

fn manifest_type(s: &Strata, image: &str) -> String {
    let out = s.run(&["inspect", image]).success().stdout;
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0]["ManifestType"].as_str().unwrap().to_string()
}

#[test]
fn registry_build_format_decides_what_a_push_writes() {
    let addr = common::registry_addr();
    let repo = repository(&addr);
    let (s, ctx) = setup();
    build(&s, &ctx, "app:docker", "docker");
    build(&s, &ctx, "app:oci", "oci");
    assert_eq!(manifest_type(&s, "app:docker"), DOCKER_MANIFEST);
    assert_eq!(manifest_type(&s, "app:oci"), OCI_MANIFEST);

    for (format, manifest, config, layer) in [
        ("docker", DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER),
        ("oci", OCI_MANIFEST, OCI_CONFIG, OCI_LAYER),
    ] {
        let dest = format!("{repo}:{format}");
        s.run(&["push", &format!("app:{format}"), &dest]).success();
        assert_media_types(&dest, manifest, config, layer);
        assert_config_kept(&dest);
    }

    // An explicit --format wins over the recorded one, both ways.
    let dest = format!("{repo}:docker-as-oci");
    s.run(&["push", "--format", "oci", "app:docker", &dest])
        .success();
    assert_media_types(&dest, OCI_MANIFEST, OCI_CONFIG, OCI_LAYER);
    assert_config_kept(&dest);
    let dest = format!("{repo}:oci-as-docker");
    s.run(&["push", "--format", "docker", "app:oci", &dest])
        .success();
    assert_media_types(&dest, DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER);
    // The recorded format is unchanged by a push.
    assert_eq!(manifest_type(&s, "app:docker"), DOCKER_MANIFEST);
}

#[test]
fn registry_commit_format_decides_what_a_push_writes() {
    let addr = common::registry_addr();
    let repo = repository(&addr);
    let s = Strata::new();
    s.import_busybox("busybox");
    s.run(&["run", "--name", "c", "busybox", "sh", "-c", "echo x > /x"])
        .success();
    s.run(&["commit", "-f", "docker", "c", "committed:1"])
        .success();
    assert_eq!(manifest_type(&s, "committed:1"), DOCKER_MANIFEST);
    let dest = format!("{repo}:committed");
    s.run(&["push", "committed:1", &dest]).success();
    assert_media_types(&dest, DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER);
}

#[test]
fn build_format_default_is_oci_and_a_bad_value_is_a_usage_error() {
    let (s, ctx) = setup();
    let out = s.run(&[
        "build",
        "-q",
        "--format",
        "v2s2",
        ctx.path().to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert!(out.stderr.contains("invalid value 'v2s2'"), "{out:#?}");
    // buildah's variable gives the default; a bad value there fails too.
    let with_env = |value: &str| {
        common::Run::of(
            s.cmd()
                .env("BUILDAH_FORMAT", value)
                .args(["build", "-q", "-t", "env:1", ctx.path().to_str().unwrap()])
                .output()
                .unwrap(),
        )
    };
    with_env("docker").success();
    assert_eq!(manifest_type(&s, "env:1"), DOCKER_MANIFEST);
    assert_eq!(with_env("bogus").code, Some(125));
    // Without --format or the variable: oci, as buildah, even for the same
    // image id the previous build recorded as docker.
    s.run(&["build", "-q", "-t", "env:1", ctx.path().to_str().unwrap()])
        .success();
    assert_eq!(manifest_type(&s, "env:1"), OCI_MANIFEST);
}

#[test]
fn build_format_local_transports_keep_their_own_format() {
    let (s, ctx) = setup();
    build(&s, &ctx, "app:docker", "docker");
    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("layout");
    // As buildah: an OCI layout gets OCI manifests whatever the image's format.
    s.run(&["push", "app:docker", &format!("oci:{}:t", layout.display())])
        .success();
    let index: Value =
        serde_json::from_slice(&fs_err::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["mediaType"], OCI_MANIFEST,
        "{index:#}"
    );
    // An explicit format the transport cannot hold is refused, not ignored.
    let archive = out.path().join("a.tar");
    for (format, dest) in [
        ("docker", format!("oci:{}:u", layout.display())),
        ("oci", format!("docker-archive:{}", archive.display())),
    ] {
        let refused = s.run(&["push", "--format", format, "app:docker", &dest]);
        assert_eq!(refused.code, Some(125), "{refused:#?}");
        let flag = format!("--format {format}");
        assert!(refused.stderr.contains(&flag), "{refused:#?}");
    }
    assert!(!archive.exists());
}
