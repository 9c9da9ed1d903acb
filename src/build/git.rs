//! ADD of a git repository, as BuildKit does it: `ADD <remote>#<ref>:<subdir>
//! <dest>` copies the tree of the commit `ref` names (a branch, a tag or a
//! full commit id; the remote's HEAD without one), or of its `subdir`, into
//! the destination like a directory source.
//!
//! - The fetch is gix's (in process, no git program): one commit, shallow
//!   unless it is named by id, with no user or system git configuration
//!   (no credential helpers, no hooks, no `insteadOf`), connect and stall
//!   timeouts as for a URL download. Remotes: `http(s)://…`, `git://…`,
//!   `ssh://…` and `git@host:path` (gix runs `ssh` for those, as git does).
//! - The tree is written by [`write_tree`], not checked out by git: files
//!   0644 or 0755 as git records them, symlinks as symlinks, directories
//!   0755, no `.gitattributes` filters. A submodule, or a name git itself
//!   refuses (`.git`, `..`), fails the step. Every entry is dated at the
//!   commit's time (BuildKit leaves checkout times; a date from the commit
//!   gives the same layer on every machine).
//! - `--keep-git-dir` (only without a subdir, as BuildKit) keeps a `.git`:
//!   the fetched repository with `HEAD` detached at the commit and an index
//!   of its tree, `origin` without credentials.
//! - `--checksum=<hex>` must be a prefix of the commit id (or of an
//!   annotated tag's id), BuildKit's check.

use fs_err::os::unix::fs::OpenOptionsExt;
use std::io::Write;
use std::num::NonZeroU32;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::bstr::ByteSlice;

use crate::build::fetch::Download;
use crate::registry::http::chain;
use gix::objs::tree::EntryKind;

/// How long connecting may take, and how long the server may stall (the
/// download's bounds, in gix's config terms).
const CONNECT_TIMEOUT_MS: u64 = 30_000;
const STALL_SECS: u64 = 120;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("invalid git source {src}: {reason}")]
    BadSource { src: String, reason: String },
    #[error("fetching {remote}: {cause}")]
    Fetch { remote: String, cause: String },
    #[error("{remote}: {what}")]
    Repo { remote: String, what: String },
    #[error("expected checksum to match {want}, got {got}")]
    Checksum { want: String, got: String },
    #[error("{remote}: submodule {path} is not supported yet")]
    Submodule { remote: String, path: String },
    #[error("{remote}: refusing the tree entry {path:?}")]
    UnsafeName { remote: String, path: String },
    #[error("{op} {path}: {cause}")]
    Io {
        op: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },
}

/// A git source as written: `remote#ref:subdir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSource {
    pub remote: String,
    /// Branch, tag or commit id; `None`: the remote's HEAD.
    pub reference: Option<String>,
    /// A directory of the tree, cleaned, without leading `/`; `None`: all.
    pub subdir: Option<String>,
}

impl GitSource {
    pub fn parse(src: &str) -> Result<GitSource, GitError> {
        let (remote, fragment) = src.split_once('#').unwrap_or((src, ""));
        let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
        let bad = |reason: &str| GitError::BadSource {
            src: src.to_string(),
            reason: reason.to_string(),
        };
        if remote.is_empty() {
            return Err(bad("no remote"));
        }
        if reference.starts_with('-') || reference.contains("..") {
            return Err(bad("invalid ref"));
        }
        if subdir.split('/').any(|c| c == "..") {
            return Err(bad("the subdirectory leaves the repository"));
        }
        let subdir = crate::build::dockerignore::clean(&format!("/{subdir}"));
        let subdir = subdir.trim_start_matches('/');
        Ok(GitSource {
            remote: remote.to_string(),
            reference: (!reference.is_empty()).then(|| reference.to_string()),
            subdir: (!subdir.is_empty()).then(|| subdir.to_string()),
        })
    }
}

/// What was fetched.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The commit's id, hex.
    pub commit: String,
}

/// Fetches `src` and writes its tree into `out` (created, must not exist);
/// `work` is a scratch directory for the repository.
pub fn fetch(
    src: &GitSource,
    out: &Path,
    work: &Path,
    keep_git_dir: bool,
    checksum: Option<&str>,
) -> Result<Fetched, GitError> {
    let remote = shown(&src.remote);
    let repo_err = |what: String| GitError::Repo {
        remote: remote.clone(),
        what,
    };
    let git_dir = work.join("repo.git");
    let repo = clone_bare(src, &git_dir)?;
    let commit = repo
        .head_commit()
        .map_err(|e| repo_err(format!("resolving {}: {e}", ref_shown(src))))?;
    let commit_id = commit.id.to_string();
    check_checksum(&repo, src, &commit_id, checksum)?;
    let time = commit.time().map_err(|e| repo_err(e.to_string()))?.seconds;
    let mut tree = commit.tree().map_err(|e| repo_err(e.to_string()))?;
    if let Some(sub) = &src.subdir {
        tree = subtree(&repo, &remote, tree, sub)?;
    }
    let writer = TreeWriter {
        repo: &repo,
        remote: &remote,
    };
    make_dir(out)?;
    writer.write(tree.id, out, "")?;
    if keep_git_dir && src.subdir.is_none() {
        let dest = out.join(".git");
        keep_repository(&repo, &remote, &git_dir, &dest, &commit_id, tree.id)?;
    }
    date_tree(out, time)?;
    Ok(Fetched { commit: commit_id })
}

/// ADD's `index`th source `src`, a git source: its tree written to
/// `dir/<index>` (a directory source whose content goes to the
/// destination); the repository is fetched beside it and removed after,
/// unless kept as its `.git`.
pub fn add_source(
    src: &str,
    dir: &Path,
    index: usize,
    keep_git_dir: bool,
    checksum: Option<&str>,
) -> Result<Download, GitError> {
    let parsed = GitSource::parse(src)?;
    let out = PathBuf::from(index.to_string());
    let work = dir.join(format!(".git-fetch-{index}"));
    make_dir(&work)?;
    let fetched = fetch(&parsed, &dir.join(&out), &work, keep_git_dir, checksum);
    fs_err::remove_dir_all(&work).map_err(io_err("remove", &work))?;
    let fetched = fetched?;
    Ok(Download {
        path: out,
        url: format!("{}#{}", shown(&parsed.remote), fetched.commit),
        modified: 0,
    })
}

/// The remote, shallow where a name is given, into a bare repository.
fn clone_bare(src: &GitSource, git_dir: &Path) -> Result<gix::Repository, GitError> {
    let fetch_err = |cause: String| GitError::Fetch {
        remote: shown(&src.remote),
        cause,
    };
    let overrides = [
        format!("gitoxide.http.connectTimeout={CONNECT_TIMEOUT_MS}"),
        "http.lowSpeedLimit=1".to_string(),
        format!("http.lowSpeedTime={STALL_SECS}"),
    ];
    // gix builds its reqwest client with the project's rustls features.
    crate::registry::http::install_tls_provider();
    let open = gix::open::Options::isolated().config_overrides(overrides);
    let mut prepare = gix::clone::PrepareFetch::new(
        src.remote.as_str(),
        git_dir,
        gix::create::Kind::Bare,
        gix::create::Options::default(),
        open,
    )
    .map_err(|e| fetch_err(chain(&e)))?;
    prepare = match src.reference.as_deref() {
        Some(r) if is_commit_id(r) => prepare.with_revision(Some(r)),
        Some(r) => prepare.with_ref_name(Some(r)),
        None => Ok(prepare),
    }
    .map_err(|e| fetch_err(chain(&e)))?;
    let depth = NonZeroU32::MIN;
    prepare = prepare.with_shallow(gix::remote::fetch::Shallow::DepthAtRemote(depth));
    let never = AtomicBool::new(false);
    let (repo, _) = prepare
        .fetch_only(gix::progress::Discard, &never)
        .map_err(|e| fetch_err(chain(&e)))?;
    Ok(repo)
}

/// A full commit id (BuildKit's test: 40 lowercase hex digits).
fn is_commit_id(r: &str) -> bool {
    r.len() == 40 && r.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `--checksum`: a prefix of the commit id, or of the annotated tag's id.
fn check_checksum(
    repo: &gix::Repository,
    src: &GitSource,
    commit: &str,
    checksum: Option<&str>,
) -> Result<(), GitError> {
    let Some(want) = checksum else {
        return Ok(());
    };
    let want = want.to_ascii_lowercase();
    let tag = src.reference.as_deref().and_then(|r| {
        let reference = repo.try_find_reference(&format!("refs/tags/{r}")).ok()??;
        let id = reference.target().try_id()?.to_owned();
        let is_tag = repo.find_object(id).ok()?.kind == gix::object::Kind::Tag;
        is_tag.then(|| id.to_string())
    });
    let matches = |id: &str| !want.is_empty() && id.starts_with(&want);
    if matches(commit) || tag.as_deref().is_some_and(matches) {
        return Ok(());
    }
    let got = match tag {
        Some(tag) => format!("{tag} or {commit}"),
        None => commit.to_string(),
    };
    Err(GitError::Checksum { want, got })
}

/// The tree at `path` of `tree`: every component a directory (a symlink on
/// the way is refused, as BuildKit's subdir check does).
fn subtree<'r>(
    repo: &'r gix::Repository,
    remote: &str,
    tree: gix::Tree<'r>,
    path: &str,
) -> Result<gix::Tree<'r>, GitError> {
    let err = |what: String| GitError::Repo {
        remote: remote.to_string(),
        what,
    };
    let mut tree = tree;
    for name in path.split('/') {
        let entry = tree
            .find_entry(name)
            .ok_or_else(|| err(format!("no directory {path} in the tree")))?;
        if entry.mode().kind() != EntryKind::Tree {
            return Err(err(format!("{path} is not a directory")));
        }
        let id = entry.object_id();
        tree = repo.find_tree(id).map_err(|e| err(e.to_string()))?;
    }
    Ok(tree)
}

/// Writes a git tree into a new directory, entry by entry.
struct TreeWriter<'r> {
    repo: &'r gix::Repository,
    remote: &'r str,
}

impl TreeWriter<'_> {
    fn write(&self, tree: gix::ObjectId, dir: &Path, at: &str) -> Result<(), GitError> {
        let tree = self
            .repo
            .find_tree(tree)
            .map_err(|e| self.err(e.to_string()))?;
        for entry in tree.iter() {
            let entry = entry.map_err(|e| self.err(e.to_string()))?;
            let name = entry.filename().to_str_lossy().into_owned();
            let rel = format!("{at}{name}");
            if !safe_name(&name) {
                return Err(GitError::UnsafeName {
                    remote: self.remote.to_string(),
                    path: rel,
                });
            }
            let path = dir.join(&name);
            match entry.mode().kind() {
                EntryKind::Tree => {
                    make_dir(&path)?;
                    self.write(entry.object_id(), &path, &format!("{rel}/"))?;
                }
                EntryKind::Blob => self.file(entry.object_id(), &path, 0o644)?,
                EntryKind::BlobExecutable => self.file(entry.object_id(), &path, 0o755)?,
                EntryKind::Link => {
                    let target = self.blob(entry.object_id())?;
                    let target = std::ffi::OsStr::from_bytes(&target);
                    fs_err::os::unix::fs::symlink(target, &path)
                        .map_err(io_err("symlink", &path))?;
                }
                EntryKind::Commit => {
                    return Err(GitError::Submodule {
                        remote: self.remote.to_string(),
                        path: rel,
                    })
                }
            }
        }
        Ok(())
    }

    fn blob(&self, id: gix::ObjectId) -> Result<Vec<u8>, GitError> {
        let blob = self
            .repo
            .find_blob(id)
            .map_err(|e| self.err(e.to_string()))?;
        Ok(blob.data.clone())
    }

    fn file(&self, id: gix::ObjectId, path: &Path, mode: u32) -> Result<(), GitError> {
        let data = self.blob(id)?;
        let mut f = fs_err::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(mode)
            .open(path)
            .map_err(io_err("create", path))?;
        f.write_all(&data).map_err(io_err("write", path))?;
        // Explicitly: the umask applied to the open.
        f.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io_err("chmod", path))
    }

    fn err(&self, what: String) -> GitError {
        GitError::Repo {
            remote: self.remote.to_string(),
            what,
        }
    }
}

/// A name git would check out: not `.`, `..` or `.git` (any case), no `/`.
fn safe_name(name: &str) -> bool {
    !matches!(name, "" | "." | "..")
        && !name.eq_ignore_ascii_case(".git")
        && !name.contains(['/', '\0'])
}

fn make_dir(path: &Path) -> Result<(), GitError> {
    fs_err::create_dir(path).map_err(io_err("create directory", path))?;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(io_err("chmod", path))
}

/// The fetched repository as `dest` (the checkout's `.git`): not bare, HEAD
/// detached at the commit, an index of its tree, no credentials in the
/// remote's URL.
fn keep_repository(
    repo: &gix::Repository,
    remote: &str,
    git_dir: &Path,
    dest: &Path,
    commit: &str,
    tree: gix::ObjectId,
) -> Result<(), GitError> {
    let gix_err = |e: &dyn std::fmt::Display| GitError::Repo {
        remote: remote.to_string(),
        what: format!("keeping .git: {e}"),
    };
    let index = repo.index_from_tree(&tree).map_err(|e| gix_err(&e))?;
    fs_err::rename(git_dir, dest).map_err(io_err("rename", git_dir))?;
    let head = dest.join("HEAD");
    fs_err::write(&head, format!("{commit}\n")).map_err(io_err("write", &head))?;
    let config = dest.join("config");
    let text = fs_err::read_to_string(&config).map_err(io_err("read", &config))?;
    let text: String = text
        .lines()
        .map(|l| match l.trim_start().strip_prefix("url = ") {
            Some(url) => format!("\turl = {}\n", shown(url)),
            None if l.trim() == "bare = true" => "\tbare = false\n".to_string(),
            None => format!("{l}\n"),
        })
        .collect();
    fs_err::write(&config, text).map_err(io_err("write", &config))?;
    let path = dest.join("index");
    let out = fs_err::File::create(&path).map_err(io_err("create", &path))?;
    index
        .write_to(std::io::BufWriter::new(out), Default::default())
        .map(|_| ())
        .map_err(|e| gix_err(&e))
}

/// Dates every entry under `root` (itself included) at `secs`, deepest
/// first, symlinks themselves.
fn date_tree(root: &Path, secs: i64) -> Result<(), GitError> {
    let walk = fs_err::read_dir(root).map_err(io_err("read directory", root))?;
    for entry in walk {
        let entry = entry.map_err(io_err("read directory", root))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io_err("stat", &path))?;
        if kind.is_dir() {
            date_tree(&path, secs)?;
        } else {
            set_time(&path, secs)?;
        }
    }
    set_time(root, secs)
}

fn set_time(path: &Path, secs: i64) -> Result<(), GitError> {
    crate::container::times::date(path, secs).map_err(io_err("set times of", path))
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> GitError {
    let path = path.to_path_buf();
    move |cause| GitError::Io { op, path, cause }
}

/// The remote without credentials (`https://user:token@host/…` shows as
/// `https://host/…`), for messages and the kept `.git/config`.
pub fn shown(remote: &str) -> String {
    match remote.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            match rest.contains('/') {
                true => format!("{scheme}://{host}/{path}"),
                false => format!("{scheme}://{host}"),
            }
        }
        None => remote.to_string(),
    }
}

fn ref_shown(src: &GitSource) -> String {
    src.reference.clone().unwrap_or_else(|| "HEAD".into())
}

#[cfg(test)]
mod tests;
