//! The Bearer token flow: a proxy in front of a real registry plays a
//! registry that answers `401` with a Bearer challenge and a token server
//! that wants Basic credentials. Login checks the credentials there;
//! tokens are asked for with the right service and scope, and cached.
#![allow(clippy::unwrap_used)]

mod common;
mod registry_support;

use std::io::Write;
use std::process::Stdio;
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use common::{Run, Strata};
use registry_support::proxy::{Action, Proxy, Seen};
use registry_support::seed::seed;
use registry_support::TestRegistry;
use strata::registry::auth::Secret;
use strata::registry::credentials::Credential;
use strata::registry::{Options, Registry};

const USER: &str = "tester";
const PASSWORD: &str = "b34rer-pw";
/// The only token the gate accepts.
const TOKEN: &str = "tok-abc";

/// A proxy that demands `Bearer TOKEN` on /v2/ and hands TOKEN out at
/// /token to USER:PASSWORD.
fn bearer_gate(upstream: &str) -> Proxy {
    let realm: Arc<OnceLock<String>> = Arc::default();
    let realm_in_rule = realm.clone();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    let proxy = Proxy::start("127.0.0.1:0", upstream, move |seen: &Seen, _| {
        let auth = seen.header("authorization").unwrap_or_default();
        if seen.path.starts_with("/token") {
            return if auth == basic {
                let body = format!(r#"{{"token":"{TOKEN}","expires_in":300}}"#);
                Action::Respond(200, vec![], body.into_bytes())
            } else {
                Action::Respond(401, vec![], b"{}".to_vec())
            };
        }
        if auth == format!("Bearer {TOKEN}") {
            return Action::Forward;
        }
        let challenge = format!(
            r#"Bearer realm="{}",service="strata-test""#,
            realm_in_rule.get().unwrap()
        );
        Action::Respond(
            401,
            vec![("WWW-Authenticate".into(), challenge)],
            br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#.to_vec(),
        )
    });
    realm.set(format!("http://{}/token", proxy.addr)).unwrap();
    proxy
}

fn login(s: &Strata, auth: &std::path::Path, registry: &str, password: &str) -> Run {
    let mut child = s
        .cmd()
        .env("REGISTRY_AUTH_FILE", auth)
        .args(["login", "-u", USER, "--password-stdin", registry])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    Run::of(child.wait_with_output().unwrap())
}

#[test]
fn registry_bearer_login_checks_with_the_token_server() {
    let upstream = TestRegistry::start(None, None);
    let gate = bearer_gate(&upstream.addr);
    let s = Strata::new();
    let auth = s.root.path().join("auth.json");
    let bad = login(&s, &auth, &gate.addr, "nope");
    assert_eq!(bad.code, Some(125), "{bad:#?}");
    assert!(
        bad.stderr.contains("incorrect username or password"),
        "{bad:#?}"
    );
    assert!(!auth.exists());
    let good = login(&s, &auth, &gate.addr, PASSWORD).success();
    assert!(good.stdout.contains("Login Succeeded"), "{good:#?}");
    assert!(!good.stdout.contains(TOKEN) && !good.stderr.contains(TOKEN));
    assert!(gate.seen().iter().any(|x| x.path.starts_with("/token")));
}

#[test]
fn registry_bearer_tokens_are_scoped_and_cached() {
    let upstream = TestRegistry::start(None, None);
    let s = seed(&upstream.addr, "bearer/app", None);
    let gate = bearer_gate(&upstream.addr);
    let cred = Credential {
        username: USER.into(),
        secret: Secret::new(PASSWORD),
    };
    let reg = Registry::connect(&gate.addr, Some(cred), &Options::default()).unwrap();
    let m1 = reg.get_manifest(&s.repo, "v1").unwrap();
    let m2 = reg.get_manifest(&s.repo, "v1").unwrap();
    assert_eq!(m1.digest, s.manifest_digest);
    assert_eq!(m2.digest, s.manifest_digest);
    let token_requests: Vec<Seen> = gate
        .seen()
        .into_iter()
        .filter(|x| x.path.starts_with("/token"))
        .collect();
    assert_eq!(token_requests.len(), 1, "{token_requests:#?}");
    let q = &token_requests[0].path;
    assert!(q.contains("service=strata-test"), "{q}");
    assert!(q.contains("scope=repository%3Abearer%2Fapp%3Apull"), "{q}");

    // Without credentials the token server refuses, and the error says so.
    let anon = Registry::connect(&gate.addr, None, &Options::default()).unwrap();
    let err = anon.get_manifest(&s.repo, "v1").unwrap_err().to_string();
    assert!(err.contains("authentication required"), "{err}");
}
