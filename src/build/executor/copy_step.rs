//! COPY and ADD steps: select the sources (build context, another stage,
//! or an image), key the step by their digest, and write them into a fresh
//! container's root file system, whose upper dir becomes the layer.

use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use strata_parser::instructions::{Deferred, FileCopy, Source as ParsedSource, UserGroup};
use strata_parser::{StageRef, Step};

use super::{BuildError, Executor, StageState};
use crate::build::cache::CacheKey;
use crate::build::config_steps::join_workdir;
use crate::build::context::digest::KnownSums;
use crate::build::context::{self, Context};
use crate::build::copy::{self, CopyOptions};
use crate::build::fetch;
use crate::container::{self, NewContainer};
use crate::digest::{Digest, ImageId};

/// Reads a file of the image through the mounted rootfs without leaving it
/// (an image's /etc/passwd may be a symlink to anywhere).
fn read_in_root(root: &Path, path: &str) -> String {
    let Ok(dir) = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return String::new();
    };
    let fd = rustix::fs::openat2(
        &dir,
        path.trim_start_matches('/'),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    );
    let Ok(fd) = fd else { return String::new() };
    let mut text = String::new();
    // A file that cannot be read counts as missing: numeric ids still work.
    let _ = std::io::Read::read_to_string(&mut std::fs::File::from(fd), &mut text);
    text
}

/// `--chown=user[:group]` to ids, names looked up in the image; a user with
/// no group takes the same number as its gid (Docker's rule).
fn resolve_chown(root: &Path, ug: &UserGroup) -> Result<(u32, u32), String> {
    let passwd = read_in_root(root, "/etc/passwd");
    let groups = read_in_root(root, "/etc/group");
    let uid = match ug.user.parse::<u32>() {
        Ok(n) => n,
        Err(_) => {
            crate::sandbox::user::resolve(&ug.user, &passwd, &groups)
                .map_err(|e| e.to_string())?
                .uid
        }
    };
    let gid = match &ug.group {
        None => uid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                crate::sandbox::user::resolve(&format!("0:{g}"), &passwd, &groups)
                    .map_err(|e| e.to_string())?
                    .gid
            }
        },
    };
    Ok((uid, gid))
}

/// One COPY/ADD step's settled inputs, whatever the source contexts.
#[derive(Clone, Copy)]
struct CopyJob<'a> {
    step: &'a Step,
    fc: &'a FileCopy,
    dest: &'a str,
    chmod: Option<u32>,
    keyword: &'a str,
    /// What an ADD of URLs fetched (never unpacked, Docker's rule).
    downloads: &'a [fetch::Download],
    container: &'a container::Container,
    cache_dir: &'a Path,
}

/// Where a source is read from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// The build context, or with `--from` an image's root file system.
    Context,
    /// The step's own temporary context: inline files and downloads.
    Inline,
}

/// Consecutive sources that share a context, in the Dockerfile's order.
struct Group<'c> {
    ctx: &'c Context,
    sources: Vec<String>,
    /// ADD unpacks local archives, never inline files or downloads.
    unpack: bool,
}

/// `sources` cut into runs of the same origin.
fn runs(sources: &[(Origin, String)]) -> Vec<(Origin, Vec<String>)> {
    let mut out: Vec<(Origin, Vec<String>)> = Vec::new();
    for (origin, s) in sources {
        match out.last_mut() {
            Some((o, list)) if o == origin => list.push(s.clone()),
            _ => out.push((*origin, vec![s.clone()])),
        }
    }
    out
}

impl Executor<'_> {
    fn build_context(&mut self) -> Result<&Context, BuildError> {
        if self.context.is_none() {
            let ctx = match &self.opts.context {
                Some(dir) => Context::open(dir, self.opts.dockerfile_path.as_deref())
                    .map_err(|e| self.fail(e))?,
                None => Context::empty(),
            };
            for w in ctx.warnings() {
                eprintln!("strata: warning: {w}");
            }
            self.context = Some(ctx);
        }
        match &self.context {
            Some(ctx) => Ok(ctx),
            None => Err(self.fail("no build context")),
        }
    }

    /// The image a `--from` names: an earlier stage's result or an image.
    fn image_of_from(
        &self,
        from: &str,
        stage: usize,
        done: &std::collections::BTreeMap<usize, super::StageResult>,
    ) -> Result<Option<ImageId>, BuildError> {
        match self
            .parsed
            .resolve_copy_from(from, stage)
            .map_err(|e| self.fail(e))?
        {
            StageRef::Stage(i) => Ok(done.get(&i).and_then(|r| r.image.clone())),
            StageRef::Image(name) => self
                .store
                .resolve(&name)
                .map(Some)
                .map_err(|e| self.fail(e)),
        }
    }

    /// A temporary context for inline files and downloads, made on first use.
    fn temp_context(
        &self,
        slot: &mut Option<tempfile::TempDir>,
    ) -> Result<std::path::PathBuf, BuildError> {
        if slot.is_none() {
            let dir = tempfile::Builder::new()
                .prefix("strata-inline-")
                .tempdir_in(self.store.root().join("tmp"))
                .map_err(|e| self.fail(e))?;
            *slot = Some(dir);
        }
        Ok(slot
            .as_ref()
            .map(|d| d.path().to_path_buf())
            .unwrap_or_default())
    }

    /// For an ADD of URLs: the client to fetch them and the `--checksum`
    /// they must match. Refuses what BuildKit refuses (a checksum for
    /// several or local sources).
    fn url_sources(
        &self,
        fc: &FileCopy,
        is_add: bool,
    ) -> Result<(Option<fetch::Fetcher>, Option<Digest>), BuildError> {
        let is_url = |s: &ParsedSource| matches!(s, ParsedSource::Path(p) if fetch::is_url(p));
        let urls = fc.sources.iter().filter(|s| is_url(s)).count();
        let checksum = match &fc.checksum {
            None => None,
            Some(_) if fc.sources.len() != 1 => {
                return Err(self.fail("checksum can't be specified for multiple sources"))
            }
            Some(_) if urls == 0 => {
                return Err(self.fail("checksum can't be specified for non-HTTP(S) sources"))
            }
            Some(c) => Some(
                c.parse::<Digest>()
                    .map_err(|e| self.fail(format!("--checksum: {e}")))?,
            ),
        };
        if !is_add || urls == 0 {
            return Ok((None, checksum));
        }
        let fetcher = fetch::Fetcher::new().map_err(|e| self.fail(e))?;
        Ok((Some(fetcher), checksum))
    }

    pub(super) fn copy_step(
        &mut self,
        state: &mut StageState,
        step: &Step,
        fc: &FileCopy,
        is_add: bool,
        stage: usize,
        done: &std::collections::BTreeMap<usize, super::StageResult>,
    ) -> Result<(), BuildError> {
        let keyword = if is_add { "ADD" } else { "COPY" };
        let mut sources = Vec::new();
        // Inline files (`COPY <<EOF /dst`) and downloads (`ADD <url> /dst`)
        // become a small context of their own.
        let mut inline: Option<tempfile::TempDir> = None;
        let (fetcher, checksum) = self.url_sources(fc, is_add)?;
        let mut downloads = Vec::new();
        for (index, s) in fc.sources.iter().enumerate() {
            match s {
                ParsedSource::Path(p) if is_add && fetch::is_git(p) => {
                    return Err(self.fail("ADD of a git source is not supported yet"));
                }
                ParsedSource::Path(p) if is_add && fetch::is_url(p) => {
                    let dir = self.temp_context(&mut inline)?;
                    let to_dir = fc.dest.ends_with('/');
                    let download = fetcher
                        .as_ref()
                        .ok_or_else(|| self.fail("no HTTP client"))?
                        .fetch(p, &dir, index, to_dir, checksum.as_ref())
                        .map_err(|e| self.fail(format!("ADD failed: {e}")))?;
                    let path = download.path.to_string_lossy().into_owned();
                    sources.push((Origin::Inline, path));
                    downloads.push(download);
                }
                ParsedSource::Path(p) => sources.push((Origin::Context, p.clone())),
                ParsedSource::Heredoc(h) => {
                    let dir = self.temp_context(&mut inline)?;
                    let body = h
                        .expanded_body(&state.env(), self.parsed.escape())
                        .map_err(|e| self.fail(e))?;
                    let file = dir.join(&h.name);
                    std::fs::write(&file, body).map_err(|e| self.fail(e))?;
                    // A fixed time: the same text gives the same layer.
                    let epoch = std::fs::File::options()
                        .write(true)
                        .open(&file)
                        .and_then(|f| f.set_modified(std::time::UNIX_EPOCH));
                    epoch.map_err(|e| self.fail(e))?;
                    sources.push((Origin::Inline, h.name.clone()));
                }
            }
        }
        let workdir = state
            .config
            .config
            .as_ref()
            .and_then(|c| c.working_dir.clone())
            .unwrap_or_else(|| "/".into());
        let mut dest = if fc.dest.starts_with('/') {
            fc.dest.clone()
        } else {
            join_workdir(&workdir, &fc.dest)
        };
        // Several sources always go into a directory, whichever contexts
        // they come from.
        if (copy::names_dir(&fc.dest) || sources.len() > 1) && !dest.ends_with('/') {
            dest.push('/');
        }
        let chmod = match &fc.chmod {
            None => None,
            Some(Deferred::Value(m)) => Some(*m),
            Some(Deferred::Unexpanded(t)) => {
                return Err(self.fail(format!("--chmod {t}: not an octal mode")))
            }
        };
        let from_image = match &fc.from {
            Some(f) => Some(self.image_of_from(f, stage, done)?),
            None => None,
        };
        let dest_container = self.container(state, vec![keyword.to_string()])?;
        let store = self.store;
        let cache_dir = store.root().join("cache");
        let job = CopyJob {
            step,
            fc,
            dest: &dest,
            chmod,
            keyword,
            downloads: &downloads,
            container: &dest_container,
            cache_dir: &cache_dir,
        };
        let outcome = (|| -> Result<ImageId, BuildError> {
            // Source context: the build context, or another image mounted.
            let source_container = match &from_image {
                Some(Some(id)) => Some(
                    container::create(
                        store,
                        NewContainer {
                            image: id.clone(),
                            image_name: "strata-build",
                            name: None,
                            command: vec![],
                            driver: self.driver,
                        },
                    )
                    .map_err(|e| self.fail(e))?,
                ),
                Some(None) => {
                    return Err(self.fail(
                        "--from names a stage with no image (FROM scratch and nothing else)",
                    ))
                }
                None => None,
            };
            let result = match &source_container {
                Some(sc) => container::run::with_rootfs(store, sc, |src_root| {
                    let ctx = Context::rootfs(src_root).map_err(|e| self.fail(e))?;
                    let group = Group {
                        ctx: &ctx,
                        sources: sources.iter().map(|(_, s)| s.clone()).collect(),
                        unpack: false,
                    };
                    self.copy_into(
                        state,
                        &job,
                        &[group],
                        from_image.as_ref().and_then(|i| i.as_ref()),
                    )
                })
                .map_err(|e| self.fail(e))
                .and_then(|r| r),
                None => {
                    let inline_ctx = match &inline {
                        Some(dir) => {
                            Some(Context::open(dir.path(), None).map_err(|e| self.fail(e))?)
                        }
                        None => None,
                    };
                    if sources.iter().any(|(o, _)| *o == Origin::Context) {
                        self.build_context()?;
                    }
                    let mut groups = Vec::new();
                    for (origin, list) in runs(&sources) {
                        let ctx = match origin {
                            Origin::Context => self.context.as_ref(),
                            Origin::Inline => inline_ctx.as_ref(),
                        };
                        groups.push(Group {
                            ctx: ctx.ok_or_else(|| self.fail("no build context"))?,
                            sources: list,
                            unpack: is_add && origin == Origin::Context,
                        });
                    }
                    self.copy_into(state, &job, &groups, None)
                }
            };
            if let Some(sc) = &source_container {
                self.discard(sc);
            }
            result
        })();
        self.discard(&dest_container);
        let id = outcome?;
        self.advance(state, id)
    }

    fn copy_into(
        &self,
        state: &StageState,
        job: &CopyJob,
        groups: &[Group],
        from: Option<&ImageId>,
    ) -> Result<ImageId, BuildError> {
        let CopyJob {
            step,
            fc,
            dest,
            chmod,
            keyword,
            downloads,
            container: c,
            cache_dir,
        } = *job;
        let mut selected = Vec::new();
        for g in groups {
            let sel = g
                .ctx
                .select(&g.sources, &fc.exclude)
                .map_err(|e| self.fail(format!("{keyword} failed: {e}")))?;
            selected.push(sel);
        }
        // Names in --chown are looked up in the destination image.
        let chown = match &fc.chown {
            None => None,
            Some(ug) => Some(
                container::run::with_rootfs(self.store, c, |root| resolve_chown(root, ug))
                    .map_err(|e| self.fail(e))?
                    .map_err(|e| self.fail(format!("--chown: {e}")))?,
            ),
        };
        let opts = CopyOptions {
            chown,
            chmod,
            parents: fc.parents,
            link: fc.link,
            hash_contents: false,
        };
        let params = serde_json::json!({
            "dest": dest, "chown": chown, "chmod": chmod, "parents": fc.parents,
            "from": from.map(|i| i.to_string()), "exclude": fc.exclude,
            "downloads": downloads,
        });
        let params = params.to_string();
        let key_of = |digests: &[Digest]| {
            let digests: Vec<String> = digests.iter().map(ToString::to_string).collect();
            let parts: Vec<&str> = [keyword, params.as_str()]
                .into_iter()
                .chain(digests.iter().map(String::as_str))
                .collect();
            CacheKey::new(state.parent.as_ref(), &parts)
        };
        // So that each source file is read once: when most of the content
        // is unknown to the metadata cache (a first build, or any COPY
        // --from), the copy takes the sums as it reads and the key comes
        // after it; when little is unknown (a rebuild), reading that little
        // first can spare the copy.
        let mut digester = context::Digester::load(Some(cache_dir));
        // Every group's digest, the metadata cache written back once.
        let digest_groups = |digester: &mut context::Digester,
                             sums: &[&KnownSums]|
         -> Result<Vec<Digest>, BuildError> {
            let mut digests = Vec::new();
            for ((g, sel), known) in groups.iter().zip(&selected).zip(sums) {
                let d = digester
                    .digest(g.ctx, sel, &opts, known)
                    .map_err(|e| self.fail(e))?;
                digests.push(d);
            }
            digester.save().map_err(|e| self.fail(e))?;
            Ok(digests)
        };
        let (unread, total) = groups
            .iter()
            .zip(&selected)
            .map(|(g, sel)| digester.unread_bytes(g.ctx, sel))
            .fold((0u64, 0u64), |(u, t), (gu, gt)| {
                (u.saturating_add(gu), t.saturating_add(gt))
            });
        let key_first = unread == 0 || unread.saturating_mul(2) < total;
        // An image's content is fixed by its id: a copy from the same image
        // needs no reading to hit.
        let image_key = from.map(|id| {
            CacheKey::new(
                state.parent.as_ref(),
                &[keyword, &params, &format!("image {id}")],
            )
        });
        let early_key = if key_first {
            let none = KnownSums::new();
            let digests = digest_groups(&mut digester, &vec![&none; groups.len()])?;
            Some(key_of(&digests))
        } else {
            None
        };
        for key in early_key.iter().chain(image_key.iter()) {
            if let Some(id) = self.cached(key) {
                return Ok(id);
            }
        }
        let copy_opts = CopyOptions {
            hash_contents: early_key.is_none(),
            ..opts.clone()
        };
        let all_stats = container::run::with_rootfs(self.store, c, |root| {
            let mut all = Vec::new();
            for (g, sel) in groups.iter().zip(&selected) {
                let stats = if g.unpack {
                    copy::add_sources(g.ctx, sel, root, dest, &copy_opts)
                } else {
                    copy::copy_sources(g.ctx, sel, root, dest, &copy_opts)
                };
                all.push(stats?);
            }
            Ok::<_, copy::CopyError>(all)
        })
        .map_err(|e| self.fail(e))?
        .map_err(|e| self.fail(format!("{keyword} failed: {e}")))?;
        let key = match early_key {
            Some(key) => key,
            None => {
                let sums: Vec<&KnownSums> = all_stats.iter().map(|s| &s.sums).collect();
                let key = key_of(&digest_groups(&mut digester, &sums)?);
                // The same content was copied before (from another image,
                // or a context whose metadata cache was lost): that layer.
                if let Some(id) = self.cached(&key) {
                    if let Some(k) = &image_key {
                        self.remember(k, &id);
                    }
                    return Ok(id);
                }
                key
            }
        };
        let text = step.raw.original.trim();
        let id = self.commit_layer(state, c, format!("/bin/sh -c #(nop) {text}"))?;
        for key in std::iter::once(&key).chain(image_key.iter()) {
            self.remember(key, &id);
        }
        Ok(id)
    }
}
