//! A COPY/ADD's sources, resolved before any container exists: runs of
//! build-context paths, inline files (heredocs) and ADD downloads (both
//! written to a staging dir of the store), and the `--from` image.

use std::path::Path;

use strata_parser::instructions::{FileCopy, Source as ParsedSource};
use strata_parser::StageRef;

use super::super::stage::StageState;
use super::super::{Build, Stages};
use crate::build::context::Context;
use crate::build::error::StepFailure;
use crate::build::fetch::{self, Download, Fetcher};
use crate::build::git;
use crate::build::named_context::NamedContext;
use crate::digest::{Digest, ImageId};
use crate::store::Staging;

/// Where a run of sources is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// The build context, or with `--from` an image's root file system.
    Context,
    /// The step's own staging dir: inline files and downloads.
    Inline,
}

/// Inline files and downloads of one step, in a staging dir of the store.
pub(super) struct Inline {
    /// Holds the files until the step is done.
    _staging: Staging,
    pub context: Context,
}

/// One COPY/ADD's sources.
pub(super) struct Resolved {
    /// Sources in the Dockerfile's order, cut into runs of one origin.
    pub runs: Vec<(Origin, Vec<String>)>,
    pub inline: Option<Inline>,
    pub downloads: Vec<Download>,
    /// `--from`: the image the sources are read from.
    pub from: Option<ImageId>,
    /// `--from` a `--build-context NAME=DIR`: read instead of the build
    /// context.
    pub named: Option<Context>,
}

pub(super) fn resolve(
    b: &Build,
    state: &StageState,
    fc: &FileCopy,
    add: bool,
    stage: usize,
    done: &Stages,
) -> Result<Resolved, StepFailure> {
    let named = match fc.from.as_deref().and_then(|f| named_dir(b, f, stage)) {
        Some(dir) => Some(Context::open(dir, None)?),
        None => None,
    };
    let from = match &fc.from {
        Some(f) if named.is_none() => Some(image_of_from(b, f, stage, done)?),
        _ => None,
    };
    let checksum = checksum_of(fc)?;
    let mut fetcher: Option<Fetcher> = None;
    let mut staging: Option<Staging> = None;
    let mut sources = Vec::new();
    let mut downloads = Vec::new();
    for (index, s) in fc.sources.iter().enumerate() {
        match s {
            ParsedSource::Path(p) if add && fetch::is_git(p) => {
                let dir = staging_dir(b, &mut staging)?;
                let checksum = fc.checksum.as_deref();
                let download = git::add_source(p, &dir, index, fc.keep_git_dir, checksum)?;
                sources.push((Origin::Inline, download.path.to_string_lossy().into_owned()));
                downloads.push(download);
            }
            ParsedSource::Path(p) if add && fetch::is_url(p) => {
                let dir = staging_dir(b, &mut staging)?;
                let to_dir = fc.dest.ends_with('/');
                let fetcher = match fetcher.take() {
                    Some(f) => fetcher.insert(f),
                    None => fetcher.insert(Fetcher::new()?),
                };
                let download = fetcher.fetch(p, &dir, index, to_dir, checksum.as_ref())?;
                sources.push((Origin::Inline, download.path.to_string_lossy().into_owned()));
                downloads.push(download);
            }
            ParsedSource::Path(p) => sources.push((Origin::Context, p.clone())),
            ParsedSource::Heredoc(h) => {
                let dir = staging_dir(b, &mut staging)?;
                let body = h.expanded_body(state, b.parsed.escape())?;
                write_inline(&dir.join(&h.name), &body)?;
                sources.push((Origin::Inline, h.name.clone()));
            }
        }
    }
    let inline = match staging {
        Some(staging) => Some(Inline {
            context: Context::open(staging.path(), None)?,
            _staging: staging,
        }),
        None => None,
    };
    Ok(Resolved {
        runs: runs(&sources),
        inline,
        downloads,
        from,
        named,
    })
}

/// The image a `--from` (of COPY, or of a RUN mount) names: an earlier
/// stage's result or an image.
pub(in crate::build::engine) fn image_of_from(
    b: &Build,
    from: &str,
    stage: usize,
    done: &Stages,
) -> Result<ImageId, StepFailure> {
    match b.parsed.resolve_copy_from(from, stage)? {
        StageRef::Stage(i) => done
            .get(&i)
            .cloned()
            .flatten()
            .ok_or_else(|| StepFailure::EmptyStage(from.to_string())),
        StageRef::Image(name) => match b.opts.build_contexts.get(&name) {
            Some(named) => b.named_image(&name, named, &b.opts.platform),
            None if b.opts.dry_run => Ok(b.store.resolve(&name)?),
            None => Ok(b.store.resolve_held(&name)?),
        },
    }
}

/// The directory a `--from` names through `--build-context NAME=DIR`
/// (unless a stage has that name).
fn named_dir<'b>(b: &'b Build, from: &str, stage: usize) -> Option<&'b Path> {
    match b.parsed.resolve_copy_from(from, stage) {
        Ok(StageRef::Image(name)) => match b.opts.build_contexts.get(&name) {
            Some(NamedContext::Dir(dir)) => Some(dir),
            _ => None,
        },
        _ => None,
    }
}

/// The `--checksum` an ADD's download must match. Refuses what BuildKit
/// refuses (a checksum for several or local sources).
fn checksum_of(fc: &FileCopy) -> Result<Option<Digest>, StepFailure> {
    let is_url = |s: &ParsedSource| matches!(s, ParsedSource::Path(p) if fetch::is_url(p));
    let is_git = |s: &ParsedSource| matches!(s, ParsedSource::Path(p) if fetch::is_git(p));
    let urls = fc.sources.iter().filter(|s| is_url(s)).count();
    match &fc.checksum {
        None => Ok(None),
        Some(_) if fc.sources.len() != 1 => Err(StepFailure::ChecksumPlace("multiple sources")),
        // A commit id, checked by the git fetch.
        Some(_) if is_git(&fc.sources[0]) => Ok(None),
        Some(_) if urls == 0 => Err(StepFailure::ChecksumPlace("non-HTTP(S) sources")),
        Some(c) => Ok(Some(c.parse::<Digest>().map_err(StepFailure::Checksum)?)),
    }
}

/// The step's staging dir, made on first use.
fn staging_dir(b: &Build, slot: &mut Option<Staging>) -> Result<std::path::PathBuf, StepFailure> {
    if slot.is_none() {
        *slot = Some(b.store.staging()?);
    }
    Ok(slot
        .as_ref()
        .map(|s| s.path().to_path_buf())
        .unwrap_or_default())
}

/// An inline file, dated at the epoch: the same text gives the same layer.
fn write_inline(path: &Path, body: &str) -> Result<(), StepFailure> {
    let write = |path: &Path| -> std::io::Result<()> {
        fs_err::write(path, body)?;
        fs_err::File::options()
            .write(true)
            .open(path)?
            .set_modified(std::time::UNIX_EPOCH)
    };
    write(path).map_err(|source| StepFailure::Write {
        path: path.to_path_buf(),
        source,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    type Case = (
        Vec<(Origin, &'static str)>,
        Vec<(Origin, Vec<&'static str>)>,
    );

    #[test]
    fn sources_cut_into_runs_in_order() {
        let (c, i) = (Origin::Context, Origin::Inline);
        let cases: Vec<Case> = vec![
            (vec![], vec![]),
            (vec![(c, "a"), (c, "b")], vec![(c, vec!["a", "b"])]),
            (
                vec![(c, "a"), (i, "EOF"), (c, "b")],
                vec![(c, vec!["a"]), (i, vec!["EOF"]), (c, vec!["b"])],
            ),
        ];
        for (input, want) in cases {
            let input: Vec<(Origin, String)> =
                input.into_iter().map(|(o, s)| (o, s.to_string())).collect();
            let want: Vec<(Origin, Vec<String>)> = want
                .into_iter()
                .map(|(o, v)| (o, v.into_iter().map(String::from).collect()))
                .collect();
            assert_eq!(runs(&input), want);
        }
    }
}
