//! `--explain-cache`: why a step missed the cache, as what changed since
//! the last build of the same target: the files of a COPY/ADD (path, and
//! content, mode, owner, added or removed), a build arg a RUN sees (old →
//! new, a secret's value masked), the base image, the `--from` image, or
//! the instruction itself.
//!
//! Every build that ends well records, per step, the inputs it saw
//! ([`StepInputs`]) in `<store>/cache/explain/<target>.json`, where the
//! target is the context, the Dockerfile and `--target`. The record is
//! bounded: at most [`MAX_FILES`] files a step, [`MAX_STEPS`] steps, and the
//! [`MAX_TARGETS`] targets built last. A secret-looking build arg (the
//! lint's SecretsUsedInArgOrEnv test) is kept as a digest of its value,
//! never the value: the step's cache key is such a digest already.
//!
//! The executors tell what they read through [`note_files`] and
//! [`note_source`]: a stage runs wholly on one thread, so notes are per
//! thread and belong to the step under way until [`take_notes`].

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::store::Store;

/// Files a step's record keeps (the rest are counted).
pub const MAX_FILES: usize = 10_000;
/// Steps a target's record keeps.
pub const MAX_STEPS: usize = 2_000;
/// Targets kept: the oldest record goes when a new one would pass this.
pub const MAX_TARGETS: usize = 64;
/// Files an explanation names before it says how many more.
const SHOWN: usize = 10;
/// Bumped when a record's meaning changes; another version is ignored.
const VERSION: u32 = 1;

/// What a copied file was, as the step's cache key saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    /// `sha256:…` of a file, `dir`, or `-> target` of a symlink.
    pub content: String,
    pub mode: u32,
    /// `uid:gid`.
    pub owner: String,
}

/// A COPY's files by path (in its context), and whether there were more
/// than [`MAX_FILES`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Files {
    pub files: BTreeMap<String, FileState>,
    pub truncated: bool,
}

impl Files {
    /// Adds a file, unless the record is full.
    pub fn add(&mut self, path: &Path, state: FileState) {
        match self.files.len() < MAX_FILES {
            true => {
                self.files
                    .insert(path.to_string_lossy().into_owned(), state);
            }
            false => self.truncated = true,
        }
    }
}

/// What one step read, as far as its cache key goes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepInputs {
    /// The instruction as written.
    pub instruction: String,
    /// A FROM: the image the stage starts from (`scratch`).
    pub base: Option<String>,
    /// A `--from` image of a COPY.
    pub source: Option<String>,
    /// A COPY's files.
    pub files: Option<Files>,
    /// A RUN's build args (secret-looking values as digests).
    pub args: BTreeMap<String, String>,
    /// A RUN's `--mount from=`: the stage or image named -> its image id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mounts: BTreeMap<String, String>,
}

/// Where a step is: its stage's index and its place in the stage (0 for
/// the FROM).
pub type At = (usize, usize);

#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    version: u32,
    steps: BTreeMap<String, StepInputs>,
}

fn at_key((stage, index): At) -> String {
    format!("{stage}/{index}")
}

#[derive(Default)]
struct Notes {
    files: Option<Files>,
    source: Option<String>,
    mounts: BTreeMap<String, String>,
}

thread_local! {
    static NOTES: RefCell<Notes> = RefCell::default();
}

/// The files the step under way on this thread read.
pub fn note_files(files: Files) {
    NOTES.with(|n| n.borrow_mut().files = Some(files));
}

/// The `--from` image of the step under way on this thread.
pub fn note_source(image: &str) {
    NOTES.with(|n| n.borrow_mut().source = Some(image.to_string()));
}

/// The image a `RUN --mount from=FROM` of the step under way on this
/// thread mounts.
pub fn note_mount(from: &str, image: &str) {
    NOTES.with(|n| {
        let mounts = &mut n.borrow_mut().mounts;
        mounts.insert(from.to_string(), image.to_string())
    });
}

/// The inputs of the step under way on this thread: what the executors
/// noted, with its instruction, base image and RUN args; the notes are
/// cleared for the next step.
pub fn take_notes(
    instruction: &str,
    base: Option<String>,
    args: Option<&BTreeMap<String, String>>,
) -> StepInputs {
    let notes = NOTES.with(|n| std::mem::take(&mut *n.borrow_mut()));
    StepInputs {
        instruction: instruction.to_string(),
        base,
        source: notes.source,
        files: notes.files,
        args: args.map(masked).unwrap_or_default(),
        mounts: notes.mounts,
    }
}

/// Build args as a record keeps them: a secret-looking one's value as a
/// digest of it.
fn masked(args: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    args.iter()
        .map(|(k, v)| match strata_parser::lint::looks_secret(k) {
            true => (
                k.clone(),
                format!("sha256:{:x}", Sha256::digest(v.as_bytes())),
            ),
            false => (k.clone(), v.clone()),
        })
        .collect()
}

/// The last build's record of a target and this build's, as it goes.
pub struct Explainer {
    dir: PathBuf,
    name: String,
    last: Option<Record>,
    now: Mutex<Record>,
}

impl Explainer {
    /// The record of the target `identity` (its context, Dockerfile and
    /// `--target`, as the caller spells them) in `store`.
    pub fn load(store: &Store, identity: &str) -> Explainer {
        let dir = records_dir(store);
        let name = format!("{:x}.json", Sha256::digest(identity.as_bytes()));
        let last = fs_err::read(dir.join(&name))
            .ok()
            // A missing or damaged record only means nothing to compare.
            .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
            .filter(|r| r.version == VERSION);
        Explainer {
            dir,
            name,
            last,
            now: Mutex::new(Record {
                version: VERSION,
                steps: BTreeMap::new(),
            }),
        }
    }

    fn now(&self) -> std::sync::MutexGuard<'_, Record> {
        self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a step's inputs for the record.
    pub fn step(&self, at: At, inputs: StepInputs) {
        let mut now = self.now();
        if now.steps.len() < MAX_STEPS {
            now.steps.insert(at_key(at), inputs);
        }
    }

    /// What changed for the step at `at` since the last build, as this
    /// build recorded it, and its stage's base; `None` when there is no
    /// last build to compare with.
    pub fn why(&self, at: At) -> Option<String> {
        let last = self.last.as_ref()?;
        let now = self.now();
        let base = (at.0, 0);
        let before = |a: At| last.steps.get(&at_key(a));
        let current = |a: At| now.steps.get(&at_key(a));
        if let (Some(old), Some(new)) = (before(base), current(base)) {
            if old.base != new.base {
                return Some(changed_image("the base image", &old.base, &new.base));
            }
        }
        let new = current(at)?;
        let Some(old) = before(at) else {
            return Some("a new step: the last build had none here".into());
        };
        Some(difference(old, new))
    }

    /// Writes this build's record, and drops the oldest targets' beyond
    /// [`MAX_TARGETS`]. A record that cannot be written only leaves the
    /// next explanation without a comparison.
    pub fn save(&self) -> std::io::Result<()> {
        fs_err::create_dir_all(&self.dir)?;
        let bytes = serde_json::to_vec(&*self.now()).map_err(std::io::Error::from)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        std::io::Write::write_all(&mut tmp, &bytes)?;
        tmp.persist(self.dir.join(&self.name))
            .map_err(|e| e.error)?;
        prune(&self.dir, MAX_TARGETS)
    }
}

/// Keeps the `keep` records written last.
fn prune(dir: &Path, keep: usize) -> std::io::Result<()> {
    let records = listed(dir)?;
    let extra = records.len().saturating_sub(keep);
    for r in &records[..extra] {
        fs_err::remove_file(&r.path)?;
    }
    Ok(())
}

/// A target's record, for housekeeping.
struct Listed {
    written: std::time::SystemTime,
    path: PathBuf,
    bytes: u64,
}

/// The records in `dir`, oldest first (none if it is missing).
fn listed(dir: &Path) -> std::io::Result<Vec<Listed>> {
    let entries = match fs_err::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        entries => entries?,
    };
    let mut records: Vec<Listed> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            let (written, bytes) = (meta.modified().ok()?, meta.len());
            Some(Listed {
                written,
                path: e.path(),
                bytes,
            })
        })
        .collect();
    records.sort_by_key(|r| r.written);
    Ok(records)
}

fn records_dir(store: &Store) -> PathBuf {
    store.root().join("cache").join("explain")
}

/// The bytes of the targets' records in `store` (the build cache's, in
/// `system df`).
pub fn usage(store: &Store) -> std::io::Result<u64> {
    Ok(listed(&records_dir(store))?.iter().map(|r| r.bytes).sum())
}

/// Removes the records last written before `before` (all with `None`), as
/// `system prune --build-cache` does; the bytes freed.
pub fn forget(store: &Store, before: Option<std::time::SystemTime>) -> std::io::Result<u64> {
    let mut freed = 0;
    for r in listed(&records_dir(store))? {
        if before.is_none_or(|t| r.written < t) {
            fs_err::remove_file(&r.path)?;
            freed += r.bytes;
        }
    }
    Ok(freed)
}

/// `what changed: old → new`, ids shortened.
fn changed_image(what: &str, old: &Option<String>, new: &Option<String>) -> String {
    let short = |id: &Option<String>| match id.as_deref() {
        None => "none".to_string(),
        Some(id) => id
            .strip_prefix("sha256:")
            .unwrap_or(id)
            .chars()
            .take(12)
            .collect(),
    };
    format!("{what} changed: {} → {}", short(old), short(new))
}

/// The first difference that makes a step's key new, in words.
fn difference(old: &StepInputs, new: &StepInputs) -> String {
    if old.instruction != new.instruction {
        return format!("the instruction changed (was: {})", old.instruction.trim());
    }
    if old.source != new.source {
        return changed_image("the --from image", &old.source, &new.source);
    }
    let mounted = |m: &BTreeMap<String, String>, from: &str| m.get(from).cloned();
    let mut froms = old.mounts.keys().chain(new.mounts.keys());
    if let Some(from) = froms.find(|f| mounted(&old.mounts, f) != mounted(&new.mounts, f)) {
        let (was, now) = (mounted(&old.mounts, from), mounted(&new.mounts, from));
        return changed_image(&format!("the --mount from={from} image"), &was, &now);
    }
    if let (Some(a), Some(b)) = (&old.files, &new.files) {
        if let Some(files) = changed_files(a, b) {
            return files;
        }
    }
    if let Some(args) = changed_args(&old.args, &new.args) {
        return args;
    }
    "not in the cache: its inputs are as in the last build (the entry was pruned, expired or never recorded)".into()
}

/// `files changed: a.txt (content), b (mode 644 → 755), c (added)`.
fn changed_files(old: &Files, new: &Files) -> Option<String> {
    let mut changes: Vec<String> = Vec::new();
    for (path, state) in &new.files {
        match old.files.get(path) {
            None => changes.push(format!("{path} (added)")),
            Some(was) if was.content != state.content => {
                changes.push(format!("{path} (content)"));
            }
            Some(was) if was.mode != state.mode => {
                changes.push(format!("{path} (mode {:o} → {:o})", was.mode, state.mode));
            }
            Some(was) if was.owner != state.owner => {
                changes.push(format!("{path} (owner {} → {})", was.owner, state.owner));
            }
            Some(_) => {}
        }
    }
    for path in old.files.keys().filter(|p| !new.files.contains_key(*p)) {
        changes.push(format!("{path} (removed)"));
    }
    if changes.is_empty() {
        return (old.truncated || new.truncated)
            .then(|| format!("files changed beyond the first {MAX_FILES} the record keeps"));
    }
    let more = changes.len().saturating_sub(SHOWN);
    changes.truncate(SHOWN);
    let mut text = format!("files changed: {}", changes.join(", "));
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    Some(text)
}

/// `build arg V changed: 1 → 2` (a secret's values as `***`).
fn changed_args(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Option<String> {
    let names = old
        .keys()
        .chain(new.keys().filter(|k| !old.contains_key(*k)));
    let changes: Vec<String> = names
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| {
            let show = |v: Option<&String>| match (v, strata_parser::lint::looks_secret(k)) {
                (None, _) => "(unset)".to_string(),
                (Some(_), true) => "***".to_string(),
                (Some(v), false) => format!("{v:?}"),
            };
            format!("{k} {} → {}", show(old.get(k)), show(new.get(k)))
        })
        .collect();
    match changes.len() {
        0 => None,
        1 => Some(format!("build arg changed: {}", changes[0])),
        _ => Some(format!("build args changed: {}", changes.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(content: &str, mode: u32) -> FileState {
        FileState {
            content: content.into(),
            mode,
            owner: "0:0".into(),
        }
    }

    fn files(list: &[(&str, FileState)]) -> Files {
        let mut f = Files::default();
        for (p, s) in list {
            f.add(Path::new(p), s.clone());
        }
        f
    }

    #[test]
    fn files_say_what_changed_of_each() {
        let old = files(&[
            ("a", file("sha256:1", 0o644)),
            ("b", file("sha256:2", 0o644)),
            ("gone", file("sha256:3", 0o644)),
        ]);
        let new = files(&[
            ("a", file("sha256:9", 0o644)),
            ("b", file("sha256:2", 0o755)),
            ("new", file("sha256:4", 0o644)),
        ]);
        assert_eq!(
            changed_files(&old, &new).unwrap(),
            "files changed: a (content), b (mode 644 → 755), new (added), gone (removed)"
        );
        assert_eq!(changed_files(&old, &old), None);
    }

    #[test]
    fn args_say_old_and_new_and_mask_secrets() {
        let old: BTreeMap<_, _> = [("V".to_string(), "1".to_string())].into();
        let new: BTreeMap<_, _> = [("V".to_string(), "2".to_string())].into();
        assert_eq!(
            changed_args(&old, &new).unwrap(),
            "build arg changed: V \"1\" → \"2\""
        );
        let secret = |v: &str| masked(&[("API_TOKEN".to_string(), v.to_string())].into());
        let (a, b) = (secret("hunter2"), secret("hunter3"));
        assert!(!a["API_TOKEN"].contains("hunter2"));
        let said = changed_args(&a, &b).unwrap();
        assert_eq!(said, "build arg changed: API_TOKEN *** → ***");
    }

    #[test]
    fn a_step_is_compared_with_the_same_place_of_the_last_build() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let run = |v: &str| StepInputs {
            instruction: "RUN make".into(),
            args: [("V".to_string(), v.to_string())].into(),
            ..StepInputs::default()
        };
        let from = |id: &str| StepInputs {
            instruction: "FROM base".into(),
            base: Some(id.into()),
            ..StepInputs::default()
        };
        let first = Explainer::load(&store, "ctx");
        assert_eq!(first.why((0, 1)), None, "no last build");
        first.step((0, 0), from("sha256:aaa"));
        first.step((0, 1), run("1"));
        first.save().unwrap();

        let second = Explainer::load(&store, "ctx");
        second.step((0, 0), from("sha256:aaa"));
        second.step((0, 1), run("2"));
        assert_eq!(
            second.why((0, 1)).unwrap(),
            "build arg changed: V \"1\" → \"2\""
        );
        let third = Explainer::load(&store, "ctx");
        third.step((0, 0), from("sha256:bbb"));
        assert_eq!(
            third.why((0, 1)).unwrap(),
            "the base image changed: aaa → bbb"
        );
        assert!(Explainer::load(&store, "other").last.is_none());
    }

    #[test]
    fn only_the_last_targets_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for n in 0..5 {
            Explainer::load(&store, &n.to_string()).save().unwrap();
        }
        prune(&store.root().join("cache/explain"), 3).unwrap();
        let left = fs_err::read_dir(store.root().join("cache/explain")).unwrap();
        assert_eq!(left.count(), 3);
    }
}
