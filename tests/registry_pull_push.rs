//! `push` to and `pull` from real registries with the whole binary: the
//! suite's plain registry, one with htpasswd auth and one with TLS from a
//! test CA; shared layers skipped on pull, `Layer already exists` and
//! `Mounted from` on push, and the pulled image runs.
#![allow(clippy::unwrap_used)]

mod common;
mod registry_support;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use common::{Run, Strata};
use registry_support::{TestCa, TestRegistry};

/// A store with `base` (busybox) and `app` (base plus one layer).
fn store_with_images() -> Strata {
    let s = Strata::new();
    let bb = common::busybox_tar();
    s.run(&[
        "import",
        "-c",
        r#"CMD ["/bin/sh"]"#,
        bb.to_str().unwrap(),
        "base:1",
    ])
    .success();
    s.run(&[
        "run",
        "--name",
        "mk",
        "base:1",
        "sh",
        "-c",
        "echo app-layer > /app.txt",
    ])
    .success();
    s.run(&["commit", "mk", "app:1"]).success();
    s
}

fn image_id(s: &Strata, name: &str) -> String {
    let out = s.run(&["inspect", name]).success().stdout;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["Id"].as_str().unwrap().to_string()
}

fn with_auth(s: &Strata, auth: &Path, args: &[&str]) -> Run {
    Run::of(
        s.cmd()
            .env("REGISTRY_AUTH_FILE", auth)
            .args(args)
            .output()
            .unwrap(),
    )
}

#[test]
fn registry_push_pull_run_with_shared_layers() {
    let addr = common::registry_addr();
    let a = store_with_images();
    // A namespace of its own, so a registry kept between runs starts empty.
    let ns = format!(
        "run{}x{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let base = format!("{addr}/{ns}/base:1");
    let app = format!("{addr}/{ns}/app:1");

    let out = a.run(&["push", "base:1", &base]).success();
    assert!(out.stdout.contains("Pushed"), "{out:#?}");
    assert!(out.stdout.contains("1: digest: sha256:"), "{out:#?}");
    // The gzip blob is made on the first push, which says so before it
    // uploads (it was silent while it compressed).
    let compressing = out
        .stdout
        .find(": Compressing")
        .expect("a Compressing line");
    assert!(
        compressing < out.stdout.find(": Pushing").unwrap(),
        "{out:#?}"
    );
    let again = a.run(&["push", "base:1", &base]).success();
    assert!(again.stdout.contains("Layer already exists"), "{again:#?}");
    assert!(!again.stdout.contains("Compressing"), "kept: {again:#?}");
    // The base layer is known in strata-test/base on this registry: mounted.
    let out = a.run(&["push", "app:1", &app]).success();
    assert!(
        out.stdout.contains(&format!("Mounted from {ns}/base")),
        "{out:#?}"
    );

    let b = Strata::new();
    let out = b.run(&["pull", &base]).success();
    assert!(out.stdout.contains("Pull complete"), "{out:#?}");
    assert!(out.stdout.contains("Digest: sha256:"), "{out:#?}");
    assert!(
        out.stdout
            .contains(&format!("Status: Downloaded newer image for {base}")),
        "{out:#?}"
    );
    // The second image shares the base layer: only its own is fetched.
    let out = b.run(&["pull", &app]).success();
    assert_eq!(out.stdout.matches("Already exists").count(), 1, "{out:#?}");
    assert_eq!(out.stdout.matches("Pull complete").count(), 1, "{out:#?}");
    let out = b.run(&["pull", &app]).success();
    assert!(out.stdout.contains("Image is up to date"), "{out:#?}");

    let run = b.run(&["run", "--rm", &app, "cat", "/app.txt"]).success();
    assert_eq!(run.stdout.trim(), "app-layer");
    // Same image id on both sides.
    assert_eq!(image_id(&a, "app:1"), image_id(&b, &app));
}

#[test]
fn registry_pull_of_a_missing_tag_says_manifest_unknown() {
    let addr = common::registry_addr();
    let s = Strata::new();
    let out = s.run(&["pull", &format!("{addr}/strata-test/nothing:here")]);
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert!(out.stderr.contains("manifest unknown"), "{out:#?}");
}

fn login(s: &Strata, auth: &Path, extra: &[&str]) {
    let mut child = s
        .cmd()
        .env("REGISTRY_AUTH_FILE", auth)
        .args(["login", "-u", "tester", "--password-stdin"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"pw\n").unwrap();
    Run::of(child.wait_with_output().unwrap()).success();
}

/// login, push, pull into an empty store, run, logout, and refused after.
fn auth_cycle(reg: &TestRegistry, extra: &[&str]) {
    let work = tempfile::tempdir().unwrap();
    let a = store_with_images();
    let auth = work.path().join("auth.json");
    let image = format!("{}/private/app:1", reg.addr);
    let mut args = extra.to_vec();

    let mut push: Vec<&str> = vec!["push"];
    push.extend(&args);
    push.extend(["app:1", image.as_str()]);
    let denied = with_auth(&a, &auth, &push);
    assert_eq!(denied.code, Some(125), "{denied:#?}");
    assert!(denied.stderr.contains("unauthorized"), "{denied:#?}");

    args.push(&reg.addr);
    login(&a, &auth, &args);
    with_auth(&a, &auth, &push).success();

    let b = Strata::new();
    let mut pull: Vec<&str> = vec!["pull"];
    pull.extend(extra);
    pull.push(&image);
    with_auth(&b, &auth, &pull).success();
    let run = b.run(&["run", "--rm", &image, "cat", "/app.txt"]).success();
    assert_eq!(run.stdout.trim(), "app-layer");

    with_auth(&b, &auth, &["logout", &reg.addr]).success();
    let c = Strata::new();
    let out = with_auth(&c, &auth, &pull);
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert!(out.stderr.contains("unauthorized"), "{out:#?}");
}

#[test]
fn registry_htpasswd_login_push_pull_run_logout() {
    let reg = TestRegistry::start(Some(("tester", "pw")), None);
    auth_cycle(&reg, &[]);
}

#[test]
fn registry_tls_login_push_pull_run_logout() {
    let ca = TestCa::new();
    let reg = TestRegistry::start(Some(("tester", "pw")), Some(&ca));
    let certs = ca.cert_dir(reg.dir.path());
    auth_cycle(&reg, &["--cert-dir", certs.to_str().unwrap()]);
}

/// Needs wire-run.patch too.
#[test]
fn registry_run_pulls_an_image_the_store_lacks() {
    let addr = common::registry_addr();
    let a = store_with_images();
    let image = format!("{addr}/autopull{}/base:1", std::process::id());
    a.run(&["push", "base:1", &image]).success();
    let b = Strata::new();
    let run = b.run(&["run", "--rm", &image, "echo", "auto"]).success();
    assert_eq!(run.stdout, "auto\n", "{run:#?}");
    assert!(run.stderr.contains("Unable to find image"), "{run:#?}");
    assert!(run.stderr.contains("Pull complete"), "{run:#?}");
}

#[test]
fn registry_build_pulls_a_from_image_it_lacks() {
    let addr = common::registry_addr();
    let a = store_with_images();
    let image = format!("{addr}/buildpull{}/base:1", std::process::id());
    a.run(&["push", "base:1", &image]).success();
    let ctx = tempfile::tempdir().unwrap();
    fs_err::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {image}\nRUN echo built > /b\n"),
    )
    .unwrap();
    let b = Strata::new();
    let build = b
        .run(&["build", "-t", "from-registry", ctx.path().to_str().unwrap()])
        .success();
    assert!(build.stderr.contains("Pull complete"), "{build:#?}");
    assert_eq!(
        b.run(&["run", "--rm", "from-registry", "cat", "/b"])
            .success()
            .stdout,
        "built\n"
    );
}

#[test]
fn registry_build_pull_policies() {
    let addr = common::registry_addr();
    let a = store_with_images();
    let image = format!("{addr}/pullpolicy{}/base:1", std::process::id());
    a.run(&["push", "base:1", &image]).success();
    let ctx = tempfile::tempdir().unwrap();
    fs_err::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {image}\nRUN true\n"),
    )
    .unwrap();
    let dir = ctx.path().to_str().unwrap();
    let b = Strata::new();
    let never = b.run(&["build", "--pull=never", dir]);
    assert_eq!(never.code, Some(1), "{never:#?}");
    assert!(!never.stderr.contains("Pull complete"), "{never:#?}");
    b.run(&["build", dir]).success();
    let always = b.run(&["build", "--pull", dir]).success();
    assert!(
        always.stderr.contains("Image is up to date"),
        "--pull asks the registry again: {always:#?}"
    );
    let missing = b.run(&["build", dir]).success();
    assert!(
        !missing.stderr.contains("Digest:"),
        "present: not pulled again: {missing:#?}"
    );
}
