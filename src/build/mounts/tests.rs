use strata_parser::Instruction;

use super::*;

/// A build with no context and no stages: enough for caches and tmpfs.
struct Fake {
    _dir: tempfile::TempDir,
    store: Store,
}

impl Fake {
    fn new() -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        Fake { _dir: dir, store }
    }
}

impl Host for Fake {
    fn store(&self) -> &Store {
        &self.store
    }
    fn image(&self, _: &str) -> Result<ImageId, StepFailure> {
        Err(StepFailure::NotHere("an image"))
    }
    fn context(&self) -> Result<&Context, StepFailure> {
        Err(StepFailure::NotHere("a context"))
    }
    fn mount_image(&self, _: &ImageId) -> Result<Box<dyn MountedImage + '_>, StepFailure> {
        Err(StepFailure::NotHere("an image"))
    }
    fn secrets(&self) -> &[SecretSource] {
        &[]
    }
    fn agents(&self) -> &[SshAgent] {
        &[]
    }
    fn waiting(&self, _: &str) {}
}

fn planned(text: &str, workdir: &str) -> Result<StepMounts, StepFailure> {
    let parsed = strata_parser::parse(&format!("FROM scratch\nRUN --mount={text} true\n")).unwrap();
    let Instruction::Run { mounts, .. } = &parsed.stages[0].steps[0].instruction else {
        panic!("not a RUN");
    };
    plan(&Fake::new(), mounts, workdir)
}

#[test]
fn targets_are_absolute_and_clean_under_the_workdir() {
    assert_eq!(absolute("c", "/w").unwrap(), "/w/c");
    assert_eq!(absolute("c", "").unwrap(), "/c");
    assert_eq!(absolute("../../c/./d", "/w").unwrap(), "/c/d");
    assert!(absolute("/", "/w").is_err());
    assert!(absolute("..", "/").is_err());
}

#[test]
fn sources_never_leave_their_root() {
    assert_eq!(inside(Some("../../..")), "/");
    assert_eq!(inside(Some("a/../../b")), "/b");
    assert_eq!(inside(None), "/");
}

#[test]
fn a_cache_id_names_a_hex_key_never_a_path() {
    let m = planned("type=cache,id=../../../../home,target=/c", "/").unwrap();
    let Some(Planned::Cache { key, source, .. }) = m.planned.first() else {
        panic!("{m:?}");
    };
    assert_eq!(key.len(), 64);
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
    assert_eq!(source, "/");
    // The id defaults to the target, so two targets are two caches.
    let a = planned("type=cache,target=/a", "/").unwrap();
    let b = planned("type=cache,target=b", "/").unwrap();
    let key_of = |m: &StepMounts| match m.planned.first() {
        Some(Planned::Cache { key, .. }) => key.clone(),
        other => panic!("{other:?}"),
    };
    assert_ne!(key_of(&a), key_of(&b));
    assert_eq!(
        key_of(&b),
        key_of(&planned("type=cache,target=/b", "/").unwrap())
    );
}

#[test]
fn each_mount_is_one_line_of_the_key() {
    let m = planned("type=tmpfs,target=t,size=1k", "/w").unwrap();
    assert_eq!(m.key().len(), 1);
    assert!(
        m.key()[0].contains("\"/w/t\"") && m.key()[0].contains("1024"),
        "{:?}",
        m.key()
    );
    let shared = planned("type=cache,target=/c", "/").unwrap();
    let locked = planned("type=cache,target=/c,sharing=locked", "/").unwrap();
    assert_ne!(shared.key(), locked.key());
}

#[test]
fn a_missing_secret_is_an_error_only_when_required() {
    let e = planned("type=secret,id=tok,required=true", "/").unwrap_err();
    assert!(e.to_string().contains("secret tok is required"), "{e}");
    let m = planned("type=secret,id=tok", "/").unwrap();
    assert!(
        m.planned.is_empty(),
        "an optional missing secret mounts nothing"
    );
    assert_eq!(m.key().len(), 1, "but it is keyed by its definition");
}

#[test]
fn an_ssh_mount_takes_buildkits_defaults_and_is_left_out_unless_required() {
    let m = planned("type=ssh", "/").unwrap();
    assert!(m.planned.is_empty(), "no --ssh default given");
    let line = &m.key()[0];
    for want in [
        "\"id\":\"default\"",
        "/run/buildkit/ssh_agent.0",
        "\"mode\":384",
    ] {
        assert!(line.contains(want), "{want} in {line}");
    }
    let e = planned("type=ssh,id=gh,required=true", "/").unwrap_err();
    assert!(e.to_string().contains("ssh agent gh is required"), "{e}");
}

#[test]
fn a_secret_id_defaults_to_the_target_name() {
    let m = planned("type=secret,target=/etc/tok,required=false", "/").unwrap();
    assert!(m.key()[0].contains("\"id\":\"tok\""), "{:?}", m.key());
    let m = planned("type=secret,id=a", "/").unwrap();
    assert!(m.key()[0].contains("/run/secrets/a"), "{:?}", m.key());
}
