//! Each executor on its own, over a store in a temporary directory and an
//! in-memory cache: what it keys, what a hit does (no container), what a
//! metadata step changes.

use fs_err::PathExt as _;
use std::collections::HashMap;

use super::*;
use crate::build::cache::Entry;
use crate::build::config_steps::ConfigEditor;
use crate::build::key::CacheKey;

/// A cache in memory; `hit_all` answers every lookup with that image.
#[derive(Default)]
struct MemCache {
    entries: Mutex<HashMap<CacheKey, Entry>>,
    hit_all: Option<ImageId>,
}

impl StepCache for MemCache {
    fn lookup(&self, key: &CacheKey) -> Option<Entry> {
        match &self.hit_all {
            Some(id) => Some(Entry::Image(id.clone())),
            None => self.entries.lock().unwrap().get(key).cloned(),
        }
    }

    fn record(&self, key: &CacheKey, entry: &Entry) -> std::io::Result<()> {
        self.entries
            .lock()
            .unwrap()
            .insert(key.clone(), entry.clone());
        Ok(())
    }

    fn has_site(&self, _: &CacheKey) -> bool {
        self.hit_all.is_some()
    }

    fn record_site(&self, _: &CacheKey) -> std::io::Result<()> {
        Ok(())
    }
}

fn id(c: char) -> ImageId {
    format!("sha256:{}", c.to_string().repeat(64))
        .parse()
        .unwrap()
}

fn options(context: Option<PathBuf>, dockerfile: &str) -> BuildOptions {
    BuildOptions {
        secrets: Vec::new(),
        ssh: Vec::new(),
        allow_network_host: false,
        context,
        dockerfile_path: None,
        dockerfile: dockerfile.to_string(),
        tags: Vec::new(),
        build_args: BTreeMap::from([("V".to_string(), Some("given".to_string()))]),
        target: None,
        no_cache: false,
        no_cache_filter: Vec::new(),
        labels: BTreeMap::new(),
        quiet: true,
        network: Network::Host,
        driver: None,
        pull: PullPolicy::Never,
        format: ManifestFormat::Oci,
        log_to_stderr: false,
        finish: Default::default(),
        cache_from: Vec::new(),
        cache_to: Vec::new(),
        bases_from: None,
        jobs: 1,
        dry_run: false,
        explain_cache: false,
        cache_ttl: None,
        platform: crate::platform::Platform::host(),
        ignorefile: None,
        build_contexts: Default::default(),
        extras: Default::default(),
        sibling: None,
    }
}

/// Runs `f` with a Build over a fresh store and `cache`.
fn with_build<T>(
    context: Option<PathBuf>,
    dockerfile: &str,
    cache: &dyn StepCache,
    f: impl FnOnce(&Build, &Store) -> T,
) -> T {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let opts = options(context, dockerfile);
    let parsed = strata_parser::parse(dockerfile).unwrap();
    let b = Build {
        store: &store,
        opts: &opts,
        parsed: &parsed,
        cache,
        out: Printer::new(true, None),
        args: BuildArgs::new(&opts.build_args, &opts.platform),
        driver: Mutex::new(DriverKind::Overlay),
        context: OnceLock::new(),
        opening: Mutex::new(()),
        cancel: Cancel::default(),
        bases: Default::default(),
        roots: Default::default(),
        would_run: Default::default(),
        dry_steps: Default::default(),
        explain: super::explained::explainer(&store, &opts),
    };
    f(&b, &store)
}

fn state_on(image: Option<ImageId>) -> StageState {
    let mut editor = ConfigEditor::new(ImageConfig::new("2024-01-01T00:00:00Z".into()));
    editor.ensure_path();
    StageState::new(image, editor)
}

/// Runs every step of the last stage of `b`'s Dockerfile through the
/// engine's dispatch; what each returned.
fn run_steps(b: &Build, state: &mut StageState) -> Vec<Result<Done, StepFailure>> {
    let stage = b.parsed.stages.last().unwrap();
    let done = Stages::from([(0, Some(id('5')))]);
    let mut out = Vec::new();
    for step in &stage.steps {
        let kind = StepKind::of(&step.instruction);
        let r = b.step(state, step, kind, stage.index, &HashMap::new(), &done);
        out.push(r);
    }
    out
}

/// Makes creating a container fail: a file where their directory goes.
fn forbid_containers(store: &Store) {
    let dir = store.root().join("containers");
    fs_err::remove_dir_all(&dir).unwrap();
    fs_err::write(&dir, "").unwrap();
}

#[test]
fn metadata_steps_change_the_config_and_chain_their_keys() {
    let df = "FROM scratch\nENV A=1 Z=0\nARG V\nENV B=$V\nENV A=3\nLABEL l=$A\n";
    let cache = MemCache::default();
    let changed = "FROM scratch\nENV A=2 Z=0\nARG V\nENV B=$V\nENV A=3\nLABEL l=$A\n";
    // (Dockerfile, which steps hit): the same steps hit; a changed first
    // step changes every key after it.
    for (dockerfile, hits) in [(df, [false; 5]), (df, [true; 5]), (changed, [false; 5])] {
        with_build(None, dockerfile, &cache, |b, store| {
            let mut state = state_on(Some(id('1')));
            let cached: Vec<bool> = run_steps(b, &mut state)
                .into_iter()
                .map(|r| match r.unwrap() {
                    Done::Meta { cached } => cached,
                    _ => panic!("not a metadata step"),
                })
                .collect();
            assert_eq!(cached, hits, "{dockerfile}");
            let env = state.editor.env().to_vec();
            assert_eq!(env[1..], ["A=3", "Z=0", "B=given"], "{dockerfile}");
            let rc = state.config().config.clone().unwrap();
            assert_eq!(rc.labels.unwrap()["l"], "3");
            assert_eq!(state.config().history.len(), 5, "an entry per step");
            assert!(state.config().history.iter().all(|h| h.empty_layer));
            assert!(state.pending.is_some(), "no image made yet");
            assert_eq!(state.image, Some(id('1')));
            assert_eq!(
                store
                    .root()
                    .join("blobs/sha256")
                    .fs_err_read_dir()
                    .unwrap()
                    .count(),
                0
            );
        });
    }
}

#[test]
fn a_metadata_run_becomes_one_image_where_it_ends() {
    let cache = MemCache::default();
    let df = "FROM scratch\nENV A=1\nENV B=2\n";
    let first = with_build(None, df, &cache, |b, store| {
        let mut state = state_on(None);
        for r in run_steps(b, &mut state) {
            r.unwrap();
        }
        b.materialize(&mut state).unwrap();
        assert!(state.pending.is_none());
        let image = state.image.clone().unwrap();
        let config = store.config(&image).unwrap();
        assert_eq!(config.config.unwrap().env.unwrap()[1..], ["A=1", "B=2"]);
        image
    });
    let cached: Vec<Entry> = cache.entries.lock().unwrap().values().cloned().collect();
    assert_eq!(
        cached.iter().filter(|e| matches!(e, Entry::Step)).count(),
        1,
        "the first step is recorded as seen, the last as the image"
    );
    assert!(cached.contains(&Entry::Image(first)));
}

#[test]
fn a_hit_makes_no_container() {
    let ctx = tempfile::tempdir().unwrap();
    fs_err::write(ctx.path().join("f"), "x").unwrap();
    let hit = id('9');
    let cache = MemCache {
        hit_all: Some(hit.clone()),
        ..MemCache::default()
    };
    // Each layer-making executor, on a cache that has everything.
    for line in [
        "RUN make",
        "RUN [\"/bin/true\"]",
        "COPY f /f",
        "COPY --chown=someone:staff f /f",
        "ADD f /d/",
        "COPY --from=one /etc/passwd /p",
        "COPY <<EOF /inline\nhi\nEOF",
    ] {
        let df = format!("FROM scratch AS one\nFROM scratch\n{line}\n");
        with_build(Some(ctx.path().to_path_buf()), &df, &cache, |b, store| {
            forbid_containers(store);
            let mut state = state_on(Some(id('1')));
            let done = run_steps(b, &mut state).pop().unwrap();
            assert!(matches!(&done, Ok(Done::Cached(i)) if *i == hit), "{line}");
        });
    }
}

#[test]
fn run_sees_args_env_and_proxies_but_keys_only_declared_args() {
    let cache = MemCache::default();
    let df = "FROM scratch\nARG V\nENV E=1 V=env\nRUN make\n";
    with_build(None, df, &cache, |b, _| {
        let mut state = state_on(Some(id('1')));
        let stage = &b.parsed.stages[0];
        for step in &stage.steps[..2] {
            let kind = StepKind::of(&step.instruction);
            let done = b.step(&mut state, step, kind, 0, &HashMap::new(), &Stages::new());
            assert!(matches!(done, Ok(Done::Meta { .. })));
        }
        let opts = run::options(b, &state, vec!["make".into()], Network::Host);
        // ENV wins over an ARG of the same name.
        assert!(opts.env.contains(&"V=env".to_string()), "{:?}", opts.env);
        assert!(!opts.env.contains(&"V=given".to_string()));
        assert_eq!(state.visible_args(), ["V=given"]);
    });
}

/// Logs every key looked up; says every COPY site was seen, so a COPY keys
/// its sources before it would make a container.
#[derive(Default)]
struct KeyLog {
    keys: Mutex<Vec<CacheKey>>,
}

impl StepCache for KeyLog {
    fn lookup(&self, key: &CacheKey) -> Option<Entry> {
        self.keys.lock().unwrap().push(key.clone());
        None
    }

    fn record(&self, _: &CacheKey, _: &Entry) -> std::io::Result<()> {
        Ok(())
    }

    fn has_site(&self, _: &CacheKey) -> bool {
        true
    }

    fn record_site(&self, _: &CacheKey) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn keys_agree_between_two_stores_at_different_times() {
    // No metadata step before a layer step: its image would be made here,
    // dated now (on a real second machine a cache hit gives the first
    // machine's image instead).
    let df = "FROM scratch\nCOPY f d/ /dst/\nRUN echo hi\nENV A=1\nLABEL l=$A\n";
    // Two machines: each its own store and checkout of the context, made
    // at another time (files an hour apart).
    let machine = |age: u64| {
        let ctx = tempfile::tempdir().unwrap();
        fs_err::create_dir(ctx.path().join("d")).unwrap();
        for (name, text) in [("f", "one"), ("d/g", "two")] {
            let path = ctx.path().join(name);
            fs_err::write(&path, text).unwrap();
            let when = std::time::SystemTime::now() - std::time::Duration::from_secs(age);
            fs_err::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(when)
                .unwrap();
        }
        let log = KeyLog::default();
        with_build(Some(ctx.path().to_path_buf()), df, &log, |b, store| {
            forbid_containers(store);
            let mut state = state_on(Some(id('1')));
            run_steps(b, &mut state);
        });
        log.keys.into_inner().unwrap()
    };
    let a = machine(0);
    let b = machine(3600);
    // COPY, RUN, ENV, LABEL.
    assert_eq!(a.len(), 4, "{a:?}");
    assert_eq!(a, b);
}
