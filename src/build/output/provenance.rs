//! `--provenance[=mode=min|max]`: an in-toto statement with a SLSA v1
//! provenance predicate, as BuildKit attaches one (see
//! `registry::push::push_attested` for where it goes in a registry, and
//! `export` for the file beside a `type=oci` output).
//!
//! What it says: strata and its version, the Dockerfile's digest, the git
//! commit when the context is a git checkout (else the digest of its
//! files, `externalParameters.context.digest`), each FROM image with its
//! digest (the manifest's when the store knows the registry's, else the
//! image id), the build args (never one whose name says it holds a secret,
//! by the lint's SecretsUsedInArgOrEnv words), `--target`, and when the
//! build ran (clamped to the source date epoch, as the image's times are).
//! `mode=max` adds the Dockerfile's instructions as written (unexpanded,
//! so no build arg's value). Nothing else from the build's environment.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::{Built, OutputError};
use crate::build::context::digest::digest_sources;
use crate::build::context::Context;
use crate::build::copy::CopyOptions;
use crate::build::BuildOptions;
use crate::digest::Digest;
use crate::reference::Reference;
use crate::store::Store;

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
pub const BUILD_TYPE: &str = "urn:strata:build:v1";

/// How much the statement says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Min,
    Max,
}

/// `--provenance`'s value as buildx reads it: nothing (or `true`, `1`) is
/// `mode=min`; `false`/`0` none; `mode=min|max` (other keys refused).
pub fn parse_mode(text: &str) -> Result<Option<Mode>, BadMode> {
    match text {
        "" | "true" | "1" | "mode=min" => Ok(Some(Mode::Min)),
        "false" | "0" => Ok(None),
        "mode=max" => Ok(Some(Mode::Max)),
        other => Err(BadMode(other.to_string())),
    }
}

/// A `--provenance` value that is none of buildx's.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("--provenance={0}: expected mode=min, mode=max, true or false")]
pub struct BadMode(pub String);

/// The predicate of one build; each output makes a statement of it about
/// the manifest it wrote.
#[derive(Debug, Clone)]
pub struct Provenance {
    predicate: Value,
    /// The platform built for (`linux/arm64`), in the subject's purl.
    platform: String,
}

/// When the build ran, as RFC 3339 times.
pub struct Times {
    pub started: String,
    pub finished: String,
}

impl Provenance {
    pub fn new(
        store: &Store,
        opts: &BuildOptions,
        built: &Built,
        mode: Mode,
        times: Times,
    ) -> Result<Provenance, OutputError> {
        let mut external = Map::new();
        external.insert("configSource".into(), config_source(opts));
        external.insert("request".into(), request(opts));
        if let Some(context) = context(store, opts)? {
            external.insert("context".into(), context);
        }
        let mut internal = json!({"builderPlatform": host_platform()});
        if mode == Mode::Max {
            internal["buildConfig"] = json!({"steps": steps(&opts.dockerfile)});
        }
        let predicate = json!({
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": internal,
                "resolvedDependencies": dependencies(store, built)?,
            },
            "runDetails": {
                "builder": {
                    "id": "urn:strata:builder",
                    "version": {"strata": env!("CARGO_PKG_VERSION")},
                },
                "metadata": {"startedOn": times.started, "finishedOn": times.finished},
            },
        });
        Ok(Provenance {
            predicate,
            platform: crate::platform::show(&opts.platform),
        })
    }

    /// The statement about the manifest `digest` that went out as `name`.
    pub fn statement(&self, name: &str, digest: &Digest) -> Vec<u8> {
        let statement = json!({
            "_type": STATEMENT_TYPE,
            "subject": [{"name": purl(name, &self.platform), "digest": {"sha256": digest.hex()}}],
            "predicateType": PREDICATE_TYPE,
            "predicate": self.predicate,
        });
        serde_json::to_vec(&statement).unwrap_or_default()
    }
}

/// `linux/<arch>` of this machine: what strata runs on.
fn host_platform() -> String {
    format!("linux/{}", crate::store::config::go_arch())
}

/// A package URL for an image name of `platform`, as BuildKit writes
/// subjects.
fn purl(name: &str, platform: &str) -> String {
    let platform = platform.replace('/', "%2F");
    match Reference::parse(name) {
        Ok(r) => {
            let version = r.tag().unwrap_or(crate::reference::DEFAULT_TAG);
            format!(
                "pkg:docker/{}@{version}?platform={platform}",
                r.familiar_repository()
            )
        }
        Err(_) => format!("pkg:docker/{name}?platform={platform}"),
    }
}

fn config_source(opts: &BuildOptions) -> Value {
    let digest = Digest::of(opts.dockerfile.as_bytes());
    let path = opts.dockerfile_path.as_deref().map(|p| {
        let inside = opts.context.as_deref().and_then(|c| p.strip_prefix(c).ok());
        let shown = inside.or(p.file_name().map(Path::new)).unwrap_or(p);
        shown.display().to_string()
    });
    json!({"path": path.unwrap_or_else(|| "-".into()), "digest": {"sha256": digest.hex()}})
}

fn request(opts: &BuildOptions) -> Value {
    let mut args = Map::new();
    for (k, v) in &opts.build_args {
        if strata_parser::lint::looks_secret(k) {
            continue;
        }
        let value = match v {
            Some(v) => v.clone(),
            None => std::env::var(k).unwrap_or_default(),
        };
        args.insert(format!("build-arg:{k}"), Value::String(value));
    }
    if let Some(t) = &opts.target {
        args.insert("target".into(), Value::String(t.clone()));
    }
    json!({"frontend": "dockerfile.v0", "args": args})
}

/// Each FROM image: its manifest digest when the store has one for that
/// name, else its image id.
fn dependencies(store: &Store, built: &Built) -> Result<Vec<Value>, OutputError> {
    let index = store.index()?;
    let mut out = Vec::new();
    for (name, id) in &built.bases {
        let repo = Reference::parse(name)
            .ok()
            .map(|r| r.repository().to_string());
        let manifest = index.images.get(id).and_then(|r| {
            r.repo_digests.iter().find_map(|rd| {
                let (rrepo, d) = rd.rsplit_once('@')?;
                repo.as_deref()
                    .is_none_or(|want| want == rrepo)
                    .then(|| d.to_string())
            })
        });
        let digest = manifest.unwrap_or_else(|| id.to_string());
        let hex = digest.trim_start_matches("sha256:").to_string();
        // A base's platform is its own (a builder stage's is the host's).
        let platform = crate::platform::show(&crate::platform::of_config(&store.config(id)?));
        out.push(json!({
            "uri": purl(name, &platform),
            "digest": {"sha256": hex},
            "annotations": {"image.id": id.to_string()},
        }));
    }
    Ok(out)
}

/// The Dockerfile's instructions as written (`mode=max`).
fn steps(dockerfile: &str) -> Vec<Value> {
    let Ok(parsed) = strata_parser::parse(dockerfile) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for stage in &parsed.stages {
        for step in std::iter::once(&stage.from).chain(&stage.steps) {
            out.push(json!({
                "stage": stage.index,
                "instruction": step.raw.original.trim_end(),
            }));
        }
    }
    out
}

/// The commit checked out in `dir` when it is a git work tree (read from
/// `.git`, no git program): HEAD's ref resolved through the loose refs and
/// packed-refs.
/// The context: its git commit when it is a checkout, else the digest of
/// its files as the build sees them (`.dockerignore` applied; the digest a
/// `COPY . /` keys on, so the metadata cache spares reading them again).
fn context(store: &Store, opts: &BuildOptions) -> Result<Option<Value>, OutputError> {
    let Some(dir) = opts.context.as_deref() else {
        return Ok(None);
    };
    if let Some(commit) = git_commit(dir) {
        return Ok(Some(json!({"git": {"commit": commit}})));
    }
    let ctx = Context::open_ignoring(
        dir,
        opts.dockerfile_path.as_deref(),
        opts.ignorefile.as_deref(),
    )?;
    let all = ctx.select(&[".".to_string()], &[])?;
    let cache = store.root().join("cache");
    let digest = digest_sources(&ctx, &all, &CopyOptions::default(), Some(&cache))?;
    Ok(Some(json!({"digest": {"sha256": digest.hex()}})))
}

fn git_commit(dir: &Path) -> Option<String> {
    let git = dir.join(".git");
    let head = fs_err::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(name) = head.strip_prefix("ref: ") else {
        return is_hex_commit(head).then(|| head.to_string());
    };
    if let Ok(loose) = fs_err::read_to_string(git.join(name)) {
        let loose = loose.trim();
        return is_hex_commit(loose).then(|| loose.to_string());
    }
    let packed = fs_err::read_to_string(git.join("packed-refs")).ok()?;
    packed.lines().find_map(|l| {
        let (commit, r) = l.split_once(' ')?;
        (r == name && is_hex_commit(commit)).then(|| commit.to_string())
    })
}

fn is_hex_commit(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_as_buildx_reads_them() {
        assert_eq!(parse_mode(""), Ok(Some(Mode::Min)));
        assert_eq!(parse_mode("true"), Ok(Some(Mode::Min)));
        assert_eq!(parse_mode("mode=max"), Ok(Some(Mode::Max)));
        assert_eq!(parse_mode("false"), Ok(None));
        assert!(parse_mode("mode=huge").is_err());
    }

    #[test]
    fn git_commit_from_a_loose_ref_or_packed_refs() {
        let dir = tempfile::tempdir().unwrap();
        let git = dir.path().join(".git");
        fs_err::create_dir_all(git.join("refs/heads")).unwrap();
        fs_err::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        let commit = "0123456789abcdef0123456789abcdef01234567";
        fs_err::write(
            git.join("packed-refs"),
            format!("# pack\n{commit} refs/heads/main\n"),
        )
        .unwrap();
        assert_eq!(git_commit(dir.path()).as_deref(), Some(commit));
        let other = "89abcdef0123456789abcdef0123456789abcdef";
        fs_err::write(git.join("refs/heads/main"), format!("{other}\n")).unwrap();
        assert_eq!(git_commit(dir.path()).as_deref(), Some(other));
        assert_eq!(git_commit(&dir.path().join("nope")), None);
    }

    #[test]
    fn subjects_are_package_urls() {
        assert_eq!(
            purl("localhost:5000/ns/app:1", &host_platform()),
            format!(
                "pkg:docker/localhost:5000/ns/app@1?platform={}",
                host_platform().replace('/', "%2F")
            )
        );
    }
}
