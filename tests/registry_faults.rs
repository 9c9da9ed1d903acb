//! The registry client under injected faults, through a proxy in front of a
//! real `docker-registry`: transient 503s, a registry that only fails, a
//! blob cut short, a flipped byte, a manifest that does not match its
//! digest, and a redirect to another host (which must not receive the
//! credentials). Faults no real registry makes (a body that stalls or
//! resets half way) come from the mock registry, through the library and
//! through the whole binary.
#![allow(clippy::unwrap_used)]

mod common;
mod registry_support;

use std::time::Instant;

use registry_support::mock::{plain_layer, Fault, MockRegistry};
use registry_support::proxy::{Action, Proxy, Seen};
use registry_support::seed::{seed, Seeded};
use registry_support::TestRegistry;
use strata::digest::{Digest, DigestMismatch};
use strata::registry::auth::Secret;
use strata::registry::credentials::Credential;
use strata::registry::{Options, Registry, RegistryError};
use strata::store::Store;

fn is_blob_get(s: &Seen, digest: &Digest) -> bool {
    s.method == "GET" && s.path.ends_with(&format!("/blobs/{digest}"))
}

/// Downloads into a store writer (in a new store); what the writer holds
/// after.
fn download_into(
    reg: &Registry,
    repo: &str,
    digest: &Digest,
    len: usize,
) -> (Result<(), RegistryError>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let mut w = store
        .writer("download", Some((len as u64, digest.clone())))
        .unwrap();
    let r = reg.download_blob(repo, digest, len as u64, &mut w, &mut |_| {});
    let got = fs_err::read(w.path()).unwrap();
    (r, got)
}

fn download(reg: &Registry, s: &Seeded) -> (Result<(), RegistryError>, Vec<u8>) {
    download_into(reg, &s.repo, &s.blob_digest, s.blob.len())
}

#[test]
fn registry_fault_503_twice_then_success() {
    let upstream = TestRegistry::start(None, None);
    let s = seed(&upstream.addr, "faults/retry", None);
    let d = s.blob_digest.clone();
    let proxy = Proxy::start("127.0.0.1:0", &upstream.addr, move |seen, n| {
        if is_blob_get(seen, &d) && n < 2 {
            Action::Status(503)
        } else {
            Action::Forward
        }
    });
    let reg = Registry::connect(&proxy.addr, None, &Options::default()).unwrap();
    let (r, got) = download(&reg, &s);
    r.unwrap();
    assert_eq!(got, s.blob);
    let gets = proxy
        .seen()
        .iter()
        .filter(|x| is_blob_get(x, &s.blob_digest))
        .count();
    assert_eq!(gets, 3);
}

#[test]
fn registry_fault_500_forever_fails_in_bounded_time() {
    let upstream = TestRegistry::start(None, None);
    let s = seed(&upstream.addr, "faults/dead", None);
    let proxy = Proxy::start("127.0.0.1:0", &upstream.addr, |seen, _| {
        if seen.path.contains("/manifests/") {
            Action::Status(500)
        } else {
            Action::Forward
        }
    });
    let opts = Options::default();
    let reg = Registry::connect(&proxy.addr, None, &opts).unwrap();
    let start = Instant::now();
    let err = reg.get_manifest(&s.repo, "v1").unwrap_err().to_string();
    let took = start.elapsed();
    assert!(err.contains("500"), "{err}");
    assert!(err.contains("giving up after 5 tries"), "{err}");
    // The whole schedule, plus generous time for five local round trips.
    assert!(
        took < opts.backoff.worst_case() + std::time::Duration::from_secs(10),
        "{took:?}"
    );
    let tries = proxy
        .seen()
        .iter()
        .filter(|x| x.path.contains("/manifests/"))
        .count();
    assert_eq!(tries, 5);
}

#[test]
fn registry_fault_truncated_blob_is_resumed() {
    let upstream = TestRegistry::start(None, None);
    let s = seed(&upstream.addr, "faults/cut", None);
    let d = s.blob_digest.clone();
    let proxy = Proxy::start("127.0.0.1:0", &upstream.addr, move |seen, n| {
        if is_blob_get(seen, &d) && n == 0 {
            Action::Truncate(0.6)
        } else {
            Action::Forward
        }
    });
    let reg = Registry::connect(&proxy.addr, None, &Options::default()).unwrap();
    let (r, got) = download(&reg, &s);
    r.unwrap();
    assert_eq!(got, s.blob);
    let gets: Vec<Seen> = proxy
        .seen()
        .into_iter()
        .filter(|x| is_blob_get(x, &s.blob_digest))
        .collect();
    assert_eq!(gets.len(), 2, "{gets:#?}");
    let range = gets[1].header("range").unwrap_or_default().to_string();
    let start: u64 = range
        .strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(start > 0, "the second GET did not resume: {range:?}");
}

#[test]
fn registry_fault_flipped_byte_is_refused_and_nothing_kept() {
    let upstream = TestRegistry::start(None, None);
    let s = seed(&upstream.addr, "faults/flip", None);
    let d = s.blob_digest.clone();
    let proxy = Proxy::start("127.0.0.1:0", &upstream.addr, move |seen, _| {
        if is_blob_get(seen, &d) {
            Action::FlipByte
        } else {
            Action::Forward
        }
    });
    let reg = Registry::connect(&proxy.addr, None, &Options::default()).unwrap();
    let (r, got) = download(&reg, &s);
    let err = r.unwrap_err();
    assert!(
        matches!(&err, RegistryError::DigestMismatch(DigestMismatch { expected, .. }) if *expected == s.blob_digest),
        "{err}"
    );
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    assert!(got.is_empty(), "the bad bytes were kept");
}

#[test]
fn registry_fault_manifest_not_matching_its_digest_is_refused() {
    let upstream = TestRegistry::start(None, None);
    let s = seed(&upstream.addr, "faults/manifest", None);
    let proxy = Proxy::start("127.0.0.1:0", &upstream.addr, |seen, _| {
        if seen.path.contains("/manifests/") {
            Action::AppendByte
        } else {
            Action::Forward
        }
    });
    let reg = Registry::connect(&proxy.addr, None, &Options::default()).unwrap();
    let err = reg
        .get_manifest(&s.repo, &s.manifest_digest.to_string())
        .unwrap_err();
    assert!(
        matches!(&err, RegistryError::DigestMismatch(DigestMismatch { expected, .. }) if *expected == s.manifest_digest),
        "{err}"
    );
    // Untouched, the same manifest is accepted.
    let direct = Registry::connect(&upstream.addr, None, &Options::default()).unwrap();
    let m = direct
        .get_manifest(&s.repo, &s.manifest_digest.to_string())
        .unwrap();
    assert_eq!(m.digest, s.manifest_digest);
}

#[test]
fn registry_fault_redirect_to_another_host_drops_authorization() {
    let upstream = TestRegistry::start(Some(("tester", "pw")), None);
    let cred = || Credential {
        username: "tester".into(),
        secret: Secret::new("pw"),
    };
    let s = seed(&upstream.addr, "faults/redirect", Some(cred()));
    // The other host: another loopback address, forwarding what it gets.
    let other = Proxy::start("127.0.0.2:0", &upstream.addr, |_, _| Action::Forward);
    let other_base = format!("http://{}", other.addr);
    let d = s.blob_digest.clone();
    let front = Proxy::start("127.0.0.1:0", &upstream.addr, move |seen, _| {
        if is_blob_get(seen, &d) {
            Action::RedirectTo(other_base.clone())
        } else {
            Action::Forward
        }
    });
    let reg = Registry::connect(&front.addr, Some(cred()), &Options::default()).unwrap();
    let (r, _) = download(&reg, &s);
    // The other host forwards without credentials, so the registry
    // refuses it: the result does not matter, what that host was sent does.
    drop(r);
    let to_front: Vec<Seen> = front
        .seen()
        .into_iter()
        .filter(|x| is_blob_get(x, &s.blob_digest))
        .collect();
    assert!(
        to_front.iter().any(|x| x.header("authorization").is_some()),
        "the registry itself got no credentials: {to_front:#?}"
    );
    let to_other = other.seen();
    assert!(!to_other.is_empty(), "the redirect was not followed");
    for x in &to_other {
        assert!(
            x.header("authorization").is_none(),
            "Authorization was sent to {}: {x:#?}",
            other.addr
        );
    }
}

#[test]
fn registry_fault_cut_blob_restarts_when_range_is_ignored() {
    let upstream = TestRegistry::start(None, None);
    let s = seed(&upstream.addr, "faults/restart", None);
    let d = s.blob_digest.clone();
    let proxy = Proxy::start("127.0.0.1:0", &upstream.addr, move |seen, n| {
        match (is_blob_get(seen, &d), n) {
            (true, 0) => Action::Truncate(0.6),
            (true, _) => Action::IgnoreRange,
            _ => Action::Forward,
        }
    });
    let reg = Registry::connect(&proxy.addr, None, &Options::default()).unwrap();
    let (r, got) = download(&reg, &s);
    r.unwrap();
    assert_eq!(got, s.blob);
}

#[test]
fn registry_schema1_manifest_is_refused_clearly() {
    let upstream = TestRegistry::start(None, None);
    let s = seed(&upstream.addr, "faults/schema1", None);
    let proxy = Proxy::start("127.0.0.1:0", &upstream.addr, |seen, _| {
        if seen.path.contains("/manifests/") {
            let body = br#"{"schemaVersion":1,"name":"faults/schema1","tag":"v1","fsLayers":[]}"#;
            Action::Respond(
                200,
                vec![(
                    "Content-Type".into(),
                    "application/vnd.docker.distribution.manifest.v1+prettyjws".into(),
                )],
                body.to_vec(),
            )
        } else {
            Action::Forward
        }
    });
    let reg = Registry::connect(&proxy.addr, None, &Options::default()).unwrap();
    let err = reg.get_manifest(&s.repo, "v1").unwrap_err().to_string();
    assert!(err.contains("schema 1"), "{err}");
    assert!(err.contains("faults/schema1"), "{err}");
}

/// Options whose reads give up after `secs` without a byte.
fn impatient(secs: u64) -> Options {
    Options {
        read_timeout: Some(std::time::Duration::from_secs(secs)),
        ..Options::default()
    }
}

/// The 3 MiB layer of the mock's image.
fn mock_layer() -> Vec<u8> {
    let data = registry_support::seed::blob_bytes(7);
    common::tarspec::tar(&[common::tarspec::T::File("big", &data)])
}

/// A mock serving one image with a 3 MiB layer; the layer's digest.
fn mock_image(mock: &MockRegistry) -> (Digest, Vec<u8>) {
    let layer = mock_layer();
    mock.push_image("faults/stall", "v1", &[plain_layer(layer.clone())]);
    (Digest::of(&layer), layer)
}

fn download_from(
    reg: &Registry,
    digest: &Digest,
    len: usize,
) -> (Result<(), RegistryError>, Vec<u8>) {
    download_into(reg, "faults/stall", digest, len)
}

/// The byte a ranged GET asked to start at (0 for a plain GET).
fn range_start(s: &Seen) -> u64 {
    s.header("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn registry_fault_stalled_blob_times_out_and_resumes() {
    let mock = MockRegistry::start(|seen, n| match (seen.is_blob_get(), n) {
        (true, 0) => Fault::Stall(0.5),
        _ => Fault::None,
    });
    let (digest, layer) = mock_image(&mock);
    let reg = Registry::connect(&mock.addr, None, &impatient(1)).unwrap();
    let start = Instant::now();
    let (r, got) = download_from(&reg, &digest, layer.len());
    r.unwrap();
    assert!(got == layer, "the resumed blob differs");
    assert!(
        start.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    let gets = mock.blob_gets();
    assert_eq!(gets.len(), 2, "{gets:#?}");
    assert_eq!(range_start(&gets[1]), layer.len() as u64 / 2, "{gets:#?}");
}

#[test]
fn registry_fault_blob_that_always_stalls_fails_in_bounded_time() {
    let mock = MockRegistry::start(|seen, _| match seen.is_blob_get() {
        true => Fault::Stall(0.25),
        false => Fault::None,
    });
    let (digest, layer) = mock_image(&mock);
    let opts = impatient(1);
    let reg = Registry::connect(&mock.addr, None, &opts).unwrap();
    let start = Instant::now();
    let (r, _) = download_from(&reg, &digest, layer.len());
    let took = start.elapsed();
    let err = r.unwrap_err().to_string();
    assert!(
        err.contains("stopped sending") && err.contains("giving up after 5 tries"),
        "{err}"
    );
    // Five stalls of one second each, the back-off between them, slack.
    let bound = opts.backoff.worst_case() + std::time::Duration::from_secs(5 + 10);
    assert!(took < bound, "{took:?}");
    // Every retry resumed where the last one had got to (nothing new came).
    let gets = mock.blob_gets();
    assert_eq!(gets.len(), 5, "{gets:#?}");
    assert!(gets[1..].iter().all(|g| range_start(g) > 0), "{gets:#?}");
}

/// A download killed half way (its writer gone with its process) is
/// resumed by the next writer on the ref, from the bytes already there,
/// with one ranged GET: the store's ingest keeps its offset.
#[test]
fn registry_fault_download_resumes_from_a_dead_writer() {
    let mock = MockRegistry::start(|_, _| Fault::None);
    let (digest, layer) = mock_image(&mock);
    let reg = Registry::connect(&mock.addr, None, &Options::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let half = layer.len() / 2;
    let expected = Some((layer.len() as u64, digest.clone()));
    {
        let mut dead = store.writer("pull", expected.clone()).unwrap();
        std::io::Write::write_all(&mut dead, &layer[..half]).unwrap();
    }
    let mut w = store.writer("pull", expected).unwrap();
    assert_eq!(w.offset(), half as u64);
    reg.download_blob(
        "faults/stall",
        &digest,
        layer.len() as u64,
        &mut w,
        &mut |_| {},
    )
    .unwrap();
    let gets = mock.blob_gets();
    assert_eq!(gets.len(), 1, "{gets:#?}");
    assert_eq!(range_start(&gets[0]), half as u64, "{gets:#?}");
    w.commit(layer.len() as u64, &digest).unwrap();
    assert_eq!(store.read_blob(&digest).unwrap(), layer);
}

#[test]
fn registry_fault_reset_mid_blob_resumes() {
    let mock = MockRegistry::start(|seen, n| match (seen.is_blob_get(), n) {
        (true, 0) => Fault::Reset(0.6),
        _ => Fault::None,
    });
    let (digest, layer) = mock_image(&mock);
    let reg = Registry::connect(&mock.addr, None, &Options::default()).unwrap();
    let (r, got) = download_from(&reg, &digest, layer.len());
    r.unwrap();
    assert!(got == layer, "the resumed blob differs");
    let gets = mock.blob_gets();
    assert_eq!(gets.len(), 2, "{gets:#?}");
    assert!(range_start(&gets[1]) > 0, "{gets:#?}");
}

#[test]
fn registry_fault_pull_of_a_stalling_registry_resumes() {
    let mock = MockRegistry::start(|seen, n| match (seen.is_blob_get(), n) {
        (true, 0) => Fault::Stall(0.5),
        _ => Fault::None,
    });
    let (_, layer) = mock_image(&mock);
    let s = common::Strata::new();
    let config = s.root.path().join("config.json");
    fs_err::write(&config, r#"{"read-timeout": "2s"}"#).unwrap();
    let start = Instant::now();
    let out = s
        .cmd()
        .env("STRATA_CONFIG", &config)
        .args(["pull", &format!("{}/faults/stall:v1", mock.addr)])
        .output()
        .unwrap();
    common::Run::of(out).success();
    assert!(
        start.elapsed() < std::time::Duration::from_secs(60),
        "{:?}",
        start.elapsed()
    );
    let gets: Vec<Seen> = mock
        .blob_gets()
        .into_iter()
        .filter(|g| g.path.ends_with(&Digest::of(&layer).to_string()))
        .collect();
    assert_eq!(gets.len(), 2, "{gets:#?}");
    assert!(range_start(&gets[1]) > 0, "{gets:#?}");
    s.run(&["system", "check"]).success();
}

/// The entries of a store's `tmp/`.
fn temp_entries(s: &common::Strata) -> Vec<String> {
    fs_err::read_dir(s.root.path().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn registry_fault_killed_pull_leaves_no_temp_dir() {
    use std::os::unix::process::CommandExt;
    let digest = Digest::of(&mock_layer());
    let layer_get = digest.clone();
    let mock = MockRegistry::start(move |seen, _| match is_blob_get(seen, &layer_get) {
        true => Fault::Stall(0.5),
        false => Fault::None,
    });
    mock_image(&mock);
    let s = common::Strata::new();
    let mut pull = s
        .cmd()
        .args(["pull", &format!("{}/faults/stall:v1", mock.addr)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    // Killed while the layer is half downloaded into its staging dir.
    let start = Instant::now();
    while !mock.blob_gets().iter().any(|g| is_blob_get(g, &digest)) {
        assert!(
            start.elapsed().as_secs() < 60,
            "the pull never asked for the layer"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pgid = nix::unistd::Pid::from_raw(pull.id() as i32);
    nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL).unwrap();
    pull.wait().unwrap();
    assert!(
        !temp_entries(&s).is_empty(),
        "the kill left nothing to test"
    );
    // The next command (any that opens the store) removes the leftovers.
    s.run(&["images"]).success();
    assert!(temp_entries(&s).is_empty(), "{:?}", temp_entries(&s));
    let check = s.run(&["system", "check"]).success();
    assert!(!check.stdout.contains("note:"), "{check:#?}");
}

#[test]
fn registry_fault_401_and_404_are_not_tried_again() {
    for status in [401, 403, 404] {
        let mock = MockRegistry::start(move |seen, _| match seen.is_blob_get() {
            true => Fault::Status(status),
            false => Fault::None,
        });
        let (digest, layer) = mock_image(&mock);
        let reg = Registry::connect(&mock.addr, None, &Options::default()).unwrap();
        let start = Instant::now();
        let (r, _) = download_from(&reg, &digest, layer.len());
        assert!(r.is_err(), "{status}");
        // One try, no back-off (the default schedule sleeps seconds).
        assert_eq!(
            mock.blob_gets().len(),
            1,
            "{status}: {:#?}",
            mock.blob_gets()
        );
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "{status}"
        );
    }
}

/// A layer large enough to be uploaded while its blob is made (16 MiB of
/// content or more): when the registry refuses that session midway, the
/// blob the store made and kept goes up again in a new session, and the
/// push succeeds with the same bytes.
#[test]
fn registry_fault_push_whose_streamed_upload_fails_sends_the_kept_blob() {
    let refused = std::sync::atomic::AtomicBool::new(false);
    let mock = MockRegistry::start(move |seen, _| {
        let first_patch =
            seen.method == "PATCH" && !refused.swap(true, std::sync::atomic::Ordering::SeqCst);
        match first_patch {
            true => Fault::Status(500),
            false => Fault::None,
        }
    });
    let s = common::Strata::new();
    s.import_busybox("bb");
    let ctx = tempfile::tempdir().unwrap();
    fs_err::write(ctx.path().join("Dockerfile"), "FROM bb\nCOPY big /big\n").unwrap();
    let big = common::noise(20 << 20, 42);
    fs_err::write(ctx.path().join("big"), &big).unwrap();
    s.build(ctx.path(), &["-q", "-t", "app"]).success();
    let image = format!("{}/faults/push:v1", mock.addr);
    let out = s.run(&["push", "app", &image]).success();
    assert!(out.stdout.contains("Pushed"), "{out:#?}");
    let seen = mock.seen();
    let count = |m: &str| seen.iter().filter(|r| r.method == m).count();
    // The refused session (its one PATCH, never closed) and the one that
    // sent the kept blob, and one each for busybox's layer and the config
    // (made before they went up).
    assert_eq!(count("POST"), 4, "{seen:#?}");
    let first: Vec<_> = seen
        .iter()
        .filter(|r| r.path.contains("/uploads/u0"))
        .collect();
    assert_eq!(first.len(), 1, "{seen:#?}");
    assert_eq!(first[0].method, "PATCH", "{seen:#?}");
    // What the registry holds is the image: pulled into another store, the
    // file is whole.
    let t = common::Strata::new();
    t.run(&["pull", &image]).success();
    let sum = t.sh(&image, "sha256sum /big").success();
    let want = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&big));
    assert!(sum.stdout.contains(&want), "{sum:#?}");
}
