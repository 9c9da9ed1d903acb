//! `login` / `logout` against real registries: the suite's plain one, one
//! with htpasswd Basic auth, and one with TLS from a CA made by the test.
#![allow(clippy::unwrap_used)]

mod common;
mod registry_support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use common::{Run, Strata};
use registry_support::{TestCa, TestRegistry};

const USER: &str = "tester";
const PASSWORD: &str = "s3cret-Pa55";

/// `strata login` with the password on stdin and the auth file at `auth`.
fn login(s: &Strata, auth: &Path, extra: &[&str], password: &str) -> Run {
    let mut cmd = s.cmd();
    cmd.env("REGISTRY_AUTH_FILE", auth)
        .arg("login")
        .args(["-u", USER, "--password-stdin"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    Run::of(child.wait_with_output().unwrap())
}

fn logout(s: &Strata, auth: &Path, registry: &str) -> Run {
    Run::of(
        s.cmd()
            .env("REGISTRY_AUTH_FILE", auth)
            .args(["logout", registry])
            .output()
            .unwrap(),
    )
}

fn assert_no_secret(run: &Run) {
    for out in [&run.stdout, &run.stderr] {
        assert!(!out.contains(PASSWORD), "password printed: {run:#?}");
        assert!(
            !out.contains("wrong-password"),
            "password printed: {run:#?}"
        );
    }
}

/// Bad password refused with nothing written; good one written 0600 in
/// Docker's format; logout removes it.
fn login_cycle(registry: &str, extra: &[&str]) {
    let s = Strata::new();
    let auth = s.root.path().join("auth.json");
    let mut args = extra.to_vec();
    args.push(registry);

    let bad = login(&s, &auth, &args, "wrong-password");
    assert_eq!(bad.code, Some(125), "{bad:#?}");
    assert!(
        bad.stderr.contains("incorrect username or password"),
        "{bad:#?}"
    );
    assert!(!auth.exists(), "a refused login wrote {}", auth.display());
    assert_no_secret(&bad);

    let good = login(&s, &auth, &args, PASSWORD).success();
    assert!(good.stdout.contains("Login Succeeded"), "{good:#?}");
    assert_no_secret(&good);
    let mode = fs_err::metadata(&auth).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let doc: serde_json::Value = serde_json::from_slice(&fs_err::read(&auth).unwrap()).unwrap();
    use base64::Engine as _;
    let want = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    assert_eq!(doc["auths"][registry]["auth"], want.as_str(), "{doc}");

    let out = logout(&s, &auth, registry).success();
    assert!(
        out.stdout
            .contains(&format!("Removing login credentials for {registry}")),
        "{out:#?}"
    );
    let doc: serde_json::Value = serde_json::from_slice(&fs_err::read(&auth).unwrap()).unwrap();
    assert!(doc["auths"].get(registry).is_none(), "{doc}");
    let again = logout(&s, &auth, registry).success();
    assert!(again.stdout.contains("Not logged in"), "{again:#?}");
}

#[test]
fn registry_login_htpasswd() {
    let reg = TestRegistry::start(Some((USER, PASSWORD)), None);
    login_cycle(&reg.addr, &[]);
}

#[test]
fn registry_login_tls_with_cert_dir() {
    let ca = TestCa::new();
    let reg = TestRegistry::start(Some((USER, PASSWORD)), Some(&ca));
    let certs = ca.cert_dir(reg.dir.path());
    login_cycle(&reg.addr, &["--cert-dir", certs.to_str().unwrap()]);
}

#[test]
fn registry_login_tls_without_the_ca_is_refused() {
    let ca = TestCa::new();
    let reg = TestRegistry::start(Some((USER, PASSWORD)), Some(&ca));
    let s = Strata::new();
    let auth = s.root.path().join("auth.json");
    let run = login(&s, &auth, &[&reg.addr], PASSWORD);
    assert_eq!(run.code, Some(125), "{run:#?}");
    assert!(run.stderr.contains("certificate"), "{run:#?}");
    assert!(!auth.exists());
    // --tls-verify=false accepts the unknown CA.
    let run = login(&s, &auth, &["--tls-verify=false", &reg.addr], PASSWORD).success();
    assert!(run.stdout.contains("Login Succeeded"), "{run:#?}");
}

#[test]
fn registry_login_plain_registry_without_auth() {
    let addr = common::registry_addr();
    let s = Strata::new();
    let auth = s.root.path().join("auth.json");
    let run = login(&s, &auth, &[&addr], PASSWORD).success();
    assert!(run.stdout.contains("Login Succeeded"), "{run:#?}");
    logout(&s, &auth, &addr).success();
}

#[test]
fn registry_a_password_in_a_reference_is_never_shown() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let ctx = common::context(&[("Dockerfile", "FROM busybox\n")]);
    let addr = common::registry_addr();
    for reference in [
        format!("{USER}:{PASSWORD}@{addr}/app"),
        format!("docker://https://{USER}:{PASSWORD}@{addr}/app:v1"),
        format!("{USER}:{PASSWORD}@x@sha256:{}", "0".repeat(64)),
    ] {
        let plain = reference.trim_start_matches("docker://");
        for args in [
            vec!["pull", &reference],
            vec!["push", "busybox", &reference],
            vec!["tag", "busybox", plain],
            vec!["build", "-t", plain, ctx.path().to_str().unwrap()],
            vec!["run", "--rm", plain, "true"],
        ] {
            let run = s.run(&[&["--log-level", "debug"], &args[..]].concat());
            assert_ne!(run.code, Some(0), "{args:?}: {run:#?}");
            assert!(run.stderr.contains(":***@"), "{args:?}: {run:#?}");
            assert_no_secret(&run);
        }
    }
}

/// Every file under `dir` whose bytes contain one of `needles`.
fn files_holding(dir: &Path, needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs_err::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = fs_err::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() {
                let bytes = fs_err::read(&p).unwrap_or_default();
                let hit = needles
                    .iter()
                    .any(|n| bytes.windows(n.len()).any(|w| w == n.as_bytes()));
                if hit {
                    found.push(p.display().to_string());
                }
            }
        }
    }
    found
}

#[test]
fn registry_credentials_reach_no_store_file_history_or_log() {
    // Checklist case 35: push, pull and a build FROM the pulled image, with
    // credentials, at debug level; the password (plain or in the base64 of
    // `user:password`) is in no output and in no file of either store,
    // and the auth file is 0600.
    use base64::Engine as _;
    let reg = TestRegistry::start(Some((USER, PASSWORD)), None);
    let auth_dir = tempfile::tempdir().unwrap();
    let auth = auth_dir.path().join("auth.json");
    let pusher = Strata::new();
    let puller = Strata::new();
    login(&pusher, &auth, &[&reg.addr], PASSWORD).success();
    let mode = fs_err::metadata(&auth).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    pusher.import_busybox("busybox");
    let image = format!("{}/secret/busybox:1", reg.addr);
    let ctx = common::context(&[(
        "Dockerfile",
        &format!("FROM {image}\nARG TOKEN=none\nRUN echo built > /b\n"),
    )]);
    let runs: Vec<(&Strata, Vec<&str>)> = vec![
        (&pusher, vec!["tag", "busybox", &image]),
        (&pusher, vec!["push", &image]),
        (&puller, vec!["pull", &image]),
        (
            &puller,
            vec!["build", "-t", "built", ctx.path().to_str().unwrap()],
        ),
        (&puller, vec!["history", "--no-trunc", "built"]),
        (&puller, vec!["inspect", "built"]),
    ];
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let needles = [PASSWORD, b64.as_str()];
    for (s, args) in runs {
        let out = s
            .cmd()
            .env("REGISTRY_AUTH_FILE", &auth)
            .env("RUST_LOG", "trace")
            .args(["--log-level", "debug"])
            .args(&args)
            .output()
            .unwrap();
        let run = Run::of(out).success();
        for n in needles {
            assert!(
                !run.stdout.contains(n) && !run.stderr.contains(n),
                "{args:?}: {run:#?}"
            );
        }
    }
    // The search finds what is there: the auth file holds the base64.
    assert_eq!(files_holding(auth_dir.path(), &needles).len(), 1);
    for s in [&pusher, &puller] {
        let found = files_holding(s.root.path(), &needles);
        assert!(found.is_empty(), "the password is in {found:#?}");
    }
}
