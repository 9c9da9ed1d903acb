//! The COPY/ADD executor: resolve the sources ([`sources`]), key the step,
//! and only on a miss write them into a working container whose upper dir
//! becomes the layer.
//!
//! Keys, in the order they are tried, none of them needing a container:
//! - `--from` an image or stage: its id stands for its content, so a
//!   rebuild from an unchanged stage reads nothing and mounts nothing;
//! - the digest of the selected files, when the metadata cache knows most
//!   of them (a rebuild): the little it lacks is read first.
//!
//! So that a COPY reads each source file once, when most of the content is
//! unknown and the cache never saw the step in any version (a first build,
//! any step after a miss), the copy hashes the files as it reads them and
//! the content key is made after it; a hit then still reuses the earlier
//! layer.

mod sources;

pub(super) use sources::image_of_from;

use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use strata_parser::instructions::{Deferred, FileCopy, UserGroup};
use strata_parser::{Instruction, Step};

use super::container::WorkingContainer;
use super::stage::StageState;
use super::{Build, Done, Stages};
use crate::build::cache::Entry;
use crate::build::config_steps::join_workdir;
use crate::build::context::digest::KnownSums;
use crate::build::context::{self, Context, Source};
use crate::build::copy::{self as write, CopyOptions, CopyStats};
use crate::build::error::StepFailure;
use crate::build::key::{self, CacheKey, Op, Sources};
use crate::digest::{Digest, ImageId};
use crate::progress::{ByteMeter, Meter, StepWork};
use crate::sandbox::user::UserError;
use sources::{Origin, Resolved};

/// One COPY/ADD's settled inputs.
struct Job<'a> {
    fc: &'a FileCopy,
    keyword: &'static str,
    /// The destination, absolute; a directory when it ends with `/`.
    dest: String,
    options: CopyOptions,
    /// Destination, flags and downloads as the key holds them.
    params: String,
    created_by: String,
}

/// Sources read from one context.
struct Group<'c> {
    ctx: &'c Context,
    selected: Vec<Source>,
    /// ADD unpacks local archives, never inline files or downloads.
    unpack: bool,
}

pub(super) fn execute(
    b: &Build,
    state: &StageState,
    step: &Step,
    instruction: &Instruction,
    stage: usize,
    done: &Stages,
) -> Result<Done, StepFailure> {
    let (fc, add) = match instruction {
        Instruction::Copy(fc) => (fc, false),
        Instruction::Add(fc) => (fc, true),
        other => return Err(StepFailure::NotHere(other.keyword())),
    };
    let resolved = sources::resolve(b, state, fc, add, stage, done)?;
    let job = Job::new(state, step, fc, add, &resolved)?;
    match &resolved.from {
        Some(image) => from_image(b, state, &job, &resolved, image),
        None => from_contexts(b, state, &job, &resolved, add),
    }
}

impl<'a> Job<'a> {
    fn new(
        state: &StageState,
        step: &Step,
        fc: &'a FileCopy,
        add: bool,
        resolved: &Resolved,
    ) -> Result<Job<'a>, StepFailure> {
        let workdir = state
            .config()
            .config
            .as_ref()
            .and_then(|c| c.working_dir.as_deref())
            .unwrap_or("/");
        let mut dest = match fc.dest.starts_with('/') {
            true => fc.dest.clone(),
            false => join_workdir(workdir, &fc.dest),
        };
        // Several sources always go into a directory, whichever contexts
        // they come from.
        let count: usize = resolved.runs.iter().map(|(_, list)| list.len()).sum();
        if (write::names_dir(&fc.dest) || count > 1) && !dest.ends_with('/') {
            dest.push('/');
        }
        let chmod = match &fc.chmod {
            None => None,
            Some(Deferred::Value(m)) => Some(*m),
            Some(Deferred::Unexpanded(t)) => return Err(StepFailure::Chmod(t.clone())),
        };
        // The key holds the --chown as written: with the parent image in
        // the key, names resolve to the same ids, and a hit needs no look
        // into the image's /etc/passwd.
        let params = serde_json::json!({
            "dest": dest, "chown": fc.chown.as_ref().map(ToString::to_string),
            "chmod": chmod, "parents": fc.parents, "exclude": fc.exclude,
            "downloads": resolved.downloads,
        })
        .to_string();
        Ok(Job {
            fc,
            keyword: if add { "ADD" } else { "COPY" },
            dest,
            options: CopyOptions {
                chown: None,
                chmod,
                parents: fc.parents,
                link: fc.link,
                ..CopyOptions::default()
            },
            params,
            created_by: format!("/bin/sh -c #(nop) {}", step.raw.original.trim()),
        })
    }

    fn op<'s>(&'s self, sources: Sources<'s>) -> Op<'s> {
        Op::Copy {
            keyword: self.keyword,
            params: &self.params,
            sources,
        }
    }

    fn key(&self, state: &StageState, sources: Sources) -> CacheKey {
        key::key(state.parent(), &self.op(sources))
    }

    /// The step's key without its sources' digests.
    fn site(&self, state: &StageState) -> CacheKey {
        key::site(state.parent(), &self.op(Sources::Content(&[])))
    }
}

/// `--from`: keyed by the image first; on a miss its root file system is
/// mounted (in a container of its own) and read like a context.
fn from_image(
    b: &Build,
    state: &StageState,
    job: &Job,
    resolved: &Resolved,
    image: &ImageId,
) -> Result<Done, StepFailure> {
    crate::build::explain::note_source(&image.to_string());
    let image_key = job.key(state, Sources::Image(image));
    if let Some(id) = b.lookup_image(&image_key) {
        return Ok(Done::Cached(id));
    }
    b.may_execute()?;
    let source = WorkingContainer::create(b.store, image.clone(), Vec::new(), b.driver())?;
    let root = source.mount()?;
    let ctx = Context::rootfs(root.path())?;
    let names: Vec<String> = resolved.runs.iter().flat_map(|(_, l)| l.clone()).collect();
    let groups = vec![group(&ctx, &names, job, false)?];
    copy_groups(b, state, job, &groups, Some(image_key))
}

/// The build context and the step's inline files, in runs.
fn from_contexts(
    b: &Build,
    state: &StageState,
    job: &Job,
    resolved: &Resolved,
    add: bool,
) -> Result<Done, StepFailure> {
    let mut groups = Vec::new();
    for (origin, names) in &resolved.runs {
        let ctx = match (origin, &resolved.inline) {
            (Origin::Context, _) => match &resolved.named {
                Some(named) => named,
                None => b.context()?,
            },
            (Origin::Inline, Some(inline)) => &inline.context,
            (Origin::Inline, None) => return Err(StepFailure::NotHere("an inline source")),
        };
        let unpack = add && *origin == Origin::Context;
        groups.push(group(ctx, names, job, unpack)?);
    }
    copy_groups(b, state, job, &groups, None)
}

fn group<'c>(
    ctx: &'c Context,
    names: &[String],
    job: &Job,
    unpack: bool,
) -> Result<Group<'c>, StepFailure> {
    let selected = if job.fc.parents {
        ctx.select_parents(names, &job.fc.exclude)?
    } else {
        ctx.select(names, &job.fc.exclude)?
    };
    Ok(Group {
        ctx,
        selected,
        unpack,
    })
}

/// Keys the groups by content (before the copy when that reads little),
/// and on a miss copies them into a working container and commits it.
fn copy_groups(
    b: &Build,
    state: &StageState,
    job: &Job,
    groups: &[Group],
    image_key: Option<CacheKey>,
) -> Result<Done, StepFailure> {
    // A dry run reads every file rather than write the metadata cache.
    let cache_dir = (!b.opts.dry_run).then(|| b.store.root().join("cache"));
    let mut digester = context::Digester::load(cache_dir.as_deref());
    let (unread, total) = groups
        .iter()
        .map(|g| digester.unread_bytes(g.ctx, &g.selected))
        .fold((0u64, 0u64), |(u, t), (gu, gt)| {
            (u.saturating_add(gu), t.saturating_add(gt))
        });
    // Keyed first when that reads little, or when the cache may hold the
    // step (a hit then makes no container): a step the cache never saw in
    // any version, or under --no-cache, cannot hit.
    let site = job.site(state);
    let key_first =
        unread == 0 || unread.saturating_mul(2) < total || b.may_hit(&site) || b.opts.dry_run;
    let none = KnownSums::new();
    let early = match key_first {
        true => Some(content_key(
            state,
            job,
            groups,
            &mut digester,
            &vec![&none; groups.len()],
            meter(state, StepWork::Read, unread),
        )?),
        false => None,
    };
    if let Some(done) = early.as_ref().and_then(|k| hit(b, k, image_key.as_ref())) {
        return Ok(done);
    }
    b.may_execute()?;
    let dest = WorkingContainer::create(
        b.store,
        b.stand_on(state)?,
        vec![job.keyword.into()],
        b.driver(),
    )?;
    // ADDed archives are unpacked, not copied: not on the bar.
    let copied = groups.iter().filter(|g| !g.unpack);
    let copied = copied
        .map(|g| digester.unread_bytes(g.ctx, &g.selected).1)
        .sum();
    let meter = meter(state, StepWork::Copy, copied);
    let stats = write_groups(&dest, job, groups, !key_first, meter)?;
    let key = match early {
        Some(key) => key,
        None => {
            let sums: Vec<&KnownSums> = stats.iter().map(|s| &s.sums).collect();
            let key = content_key(state, job, groups, &mut digester, &sums, Meter::default())?;
            // The same content was copied before (from another image, or a
            // context whose metadata cache was lost): that layer.
            if let Some(done) = hit(b, &key, image_key.as_ref()) {
                return Ok(done);
            }
            key
        }
    };
    let done = b.commit_layer(state, &dest, job.created_by.clone())?;
    if let Done::Built { id, .. } = &done {
        for k in std::iter::once(&key).chain(&image_key) {
            b.record(k, &Entry::Image(id.clone()));
        }
        b.record_site(&site);
    }
    Ok(done)
}

/// A content-key hit, recorded under the image key too.
fn hit(b: &Build, key: &CacheKey, image_key: Option<&CacheKey>) -> Option<Done> {
    let id = b.lookup_image(key)?;
    if let Some(k) = image_key {
        b.record(k, &Entry::Image(id.clone()));
    }
    Some(Done::Cached(id))
}

/// The key of the groups' content: every group's digest (files read only
/// where neither the metadata cache nor `sums` knows them), the metadata
/// cache written back once.
fn content_key(
    state: &StageState,
    job: &Job,
    groups: &[Group],
    digester: &mut context::Digester,
    sums: &[&KnownSums],
    meter: Meter,
) -> Result<CacheKey, StepFailure> {
    let options = CopyOptions {
        meter,
        ..job.options.clone()
    };
    let mut digests: Vec<Digest> = Vec::new();
    for (g, known) in groups.iter().zip(sums) {
        digests.push(digester.digest(g.ctx, &g.selected, &options, known)?);
    }
    if let Some(m) = &options.meter.0 {
        m.finish();
    }
    digester.save()?;
    crate::build::explain::note_files(digester.take_seen());
    Ok(job.key(state, Sources::Content(&digests)))
}

/// Writes every group into the container's root file system (mounted for
/// the duration), with `--chown` names looked up in that image.
fn write_groups(
    dest: &WorkingContainer,
    job: &Job,
    groups: &[Group],
    hash_contents: bool,
    meter: Meter,
) -> Result<Vec<CopyStats>, StepFailure> {
    let root = dest.mount()?;
    let chown = match &job.fc.chown {
        Some(ug) => resolve_chown(root.path(), ug).map_err(|source| StepFailure::Chown {
            spec: ug.to_string(),
            source,
        })?,
        None => None,
    };
    let options = CopyOptions {
        chown,
        hash_contents,
        meter,
        ..job.options.clone()
    };
    let mut all = Vec::new();
    for g in groups {
        let stats = match g.unpack {
            true => write::add_sources(g.ctx, &g.selected, root.path(), &job.dest, &options),
            false => write::copy_sources(g.ctx, &g.selected, root.path(), &job.dest, &options),
        };
        all.push(stats?);
    }
    if let Some(m) = &options.meter.0 {
        m.finish();
    }
    Ok(all)
}

/// A progress meter of `total` bytes of the step's `work`, if that is
/// enough to show.
fn meter(state: &StageState, work: StepWork, total: u64) -> Meter {
    Meter(ByteMeter::start(state.step, work, total))
}

/// `--chown` (or the USER a WORKDIR is made for) to ids, names looked up
/// in the image.
pub(super) fn resolve_chown(root: &Path, ug: &UserGroup) -> Result<Option<(u32, u32)>, UserError> {
    let passwd = read_in_root(root, "/etc/passwd");
    let groups = read_in_root(root, "/etc/group");
    write::chown_ids(ug, &passwd, &groups)
}

/// Reads a file of the image through the mounted rootfs without leaving it
/// (an image's /etc/passwd may be a symlink to anywhere).
pub(super) fn read_in_root(root: &Path, path: &str) -> String {
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
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    );
    // A file that cannot be read counts as missing: numeric ids still work.
    let Ok(fd) = fd else { return String::new() };
    crate::sandbox::user::read_account(std::fs::File::from(fd))
}
