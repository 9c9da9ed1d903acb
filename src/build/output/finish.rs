//! The image transforms between the last step and the tag: `--unsetlabel`,
//! `--squash` (this build's new layers as one, as podman), `--squash-all`
//! (one layer), and a source date epoch (`--timestamp`, `SOURCE_DATE_EPOCH`):
//! the config's and history's `created` at most the epoch, and in the new
//! layers every mtime later than the epoch set to it (BuildKit's
//! rewrite-timestamp), so two builds of the same inputs give the same image
//! whenever they run.
//!
//! The steps' images stay as they were built (with their real times), so the
//! cache is the same with or without these options; the result is one more
//! image whose parent is the build's.

use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::OutputError;
use crate::build::commit::layer_from_tar;
use crate::digest::{DiffId, ImageId};
use crate::layer::diff::{write_merged_tar, TarOptions};
use crate::store::config::{to_canonical_json, History};
use crate::store::{now_rfc3339, ImageConfig, Store};

/// `--squash` / `--squash-all`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Squash {
    #[default]
    No,
    /// The layers this build made, as one, above the base image's.
    New,
    /// Every layer as one.
    All,
}

/// The transforms asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finish {
    pub squash: Squash,
    /// Seconds since 1970 (`--timestamp`, `SOURCE_DATE_EPOCH`).
    pub epoch: Option<u64>,
    /// Labels removed from the image (`--unsetlabel`), inherited or not.
    pub unset_labels: Vec<String>,
}

impl Finish {
    fn is_noop(&self) -> bool {
        self.squash == Squash::No && self.epoch.is_none() && self.unset_labels.is_empty()
    }
}

/// How one layer of the result is made from the build's layers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// The build's layer at this index, as it is.
    Keep(usize),
    /// These layers merged into one (with options), as a layer above the
    /// ones before them.
    Merge(Range<usize>, TarOptions),
}

/// The result's layers from `count` layers of which the first `base` are
/// the base image's (pure).
fn parts(count: usize, base: usize, f: &Finish) -> Vec<Part> {
    let base = base.min(count);
    let new = TarOptions {
        clamp_mtime: f.epoch,
        reset_owners: false,
    };
    match f.squash {
        Squash::All if count > 0 => vec![Part::Merge(0..count, new)],
        Squash::All => Vec::new(),
        Squash::New => {
            let mut p: Vec<Part> = (0..base).map(Part::Keep).collect();
            if base < count {
                p.push(Part::Merge(base..count, new));
            }
            p
        }
        Squash::No => (0..count)
            .map(|i| match (i >= base, f.epoch) {
                (true, Some(_)) => Part::Merge(i..i + 1, new),
                _ => Part::Keep(i),
            })
            .collect(),
    }
}

/// `id` with the transforms of `f` applied, as a new image in the store
/// (`id` itself when there are none). `base` is how many of its layers
/// the base image has.
pub fn finish(
    store: &Store,
    id: &ImageId,
    base: usize,
    f: &Finish,
) -> Result<ImageId, OutputError> {
    if f.is_noop() {
        return Ok(id.clone());
    }
    let mut config = store.config(id)?;
    if let Some(labels) = config.config.as_mut().and_then(|c| c.labels.as_mut()) {
        labels.retain(|k, _| !f.unset_labels.contains(k));
    }
    let old: Vec<DiffId> = config.rootfs.diff_ids.clone();
    let staging = store.staging()?;
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for part in parts(old.len(), base, f) {
        match part {
            Part::Keep(i) => diff_ids.push(old[i].clone()),
            Part::Merge(range, opts) => {
                let dir = |d: &DiffId| store.layer_dir(d);
                let below: Vec<_> = old[..range.start].iter().map(dir).collect();
                let dirs: Vec<_> = old[range].iter().map(dir).collect();
                let name = format!("image {}", id.short());
                let layer = layer_from_tar(store, &staging, &name, move |w| {
                    write_merged_tar(&dirs, &below, &opts, w)
                })?;
                diff_ids.push(layer.diff_id().clone());
                layers.push(layer);
            }
        }
    }
    config.rootfs.diff_ids = diff_ids;
    squash_history(&mut config, base, f);
    if let Some(epoch) = f.epoch {
        clamp_times(&mut config, epoch);
    }
    let bytes = to_canonical_json(&config).map_err(|source| OutputError::Json {
        what: "the image config",
        source,
    })?;
    Ok(store.commit_image(layers, &bytes, &[], Some(id.clone()))?)
}

/// History to match squashed layers: the entries of the merged layers
/// become empty-layer entries and one entry for the merged layer follows,
/// so the non-empty entries still pair with the layers one to one.
fn squash_history(config: &mut ImageConfig, base: usize, f: &Finish) {
    let (keep_layers, flag) = match f.squash {
        Squash::No => return,
        Squash::New => (base, "--squash"),
        Squash::All => (0, "--squash-all"),
    };
    // Nothing was merged: no new layer (or none at all).
    if keep_layers >= config.rootfs.diff_ids.len() {
        return;
    }
    let mut seen = 0;
    for h in &mut config.history {
        if !h.empty_layer {
            seen += 1;
            if seen > keep_layers {
                h.empty_layer = true;
            }
        }
    }
    config.history.push(History {
        created: Some(now_rfc3339()),
        created_by: Some(format!("strata build {flag}")),
        ..History::default()
    });
}

/// `created` of the config and of every history entry at most `epoch`.
fn clamp_times(config: &mut ImageConfig, epoch: u64) {
    let limit = UNIX_EPOCH + Duration::from_secs(epoch);
    let stamp = rfc3339(epoch);
    let clamp = |created: &mut Option<String>| {
        let later = match created.as_deref().map(humantime::parse_rfc3339_weak) {
            Some(Ok(t)) => t > limit,
            _ => true,
        };
        if later {
            *created = Some(stamp.clone());
        }
    };
    for h in &mut config.history {
        clamp(&mut h.created);
    }
    config.created = Some(stamp.clone());
}

/// Seconds since 1970 as configs write times.
pub fn rfc3339(epoch: u64) -> String {
    let t: SystemTime = UNIX_EPOCH + Duration::from_secs(epoch);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(squash: Squash, epoch: Option<u64>) -> Finish {
        Finish {
            squash,
            epoch,
            unset_labels: Vec::new(),
        }
    }

    #[test]
    fn parts_table() {
        let keep = TarOptions::default();
        let clamp = TarOptions {
            clamp_mtime: Some(5),
            ..keep
        };
        assert_eq!(
            parts(3, 1, &with(Squash::No, None)),
            vec![Part::Keep(0), Part::Keep(1), Part::Keep(2)]
        );
        assert_eq!(
            parts(3, 1, &with(Squash::No, Some(5))),
            vec![
                Part::Keep(0),
                Part::Merge(1..2, clamp),
                Part::Merge(2..3, clamp)
            ]
        );
        assert_eq!(
            parts(3, 1, &with(Squash::New, None)),
            vec![Part::Keep(0), Part::Merge(1..3, keep)]
        );
        assert_eq!(parts(1, 1, &with(Squash::New, None)), vec![Part::Keep(0)]);
        assert_eq!(
            parts(3, 1, &with(Squash::All, None)),
            vec![Part::Merge(0..3, keep)]
        );
        assert_eq!(parts(0, 0, &with(Squash::All, None)), vec![]);
    }

    #[test]
    fn times_are_clamped_not_raised() {
        let mut c = ImageConfig::new("2030-01-01T00:00:00Z".into());
        c.history = vec![
            History {
                created: Some("1990-01-01T00:00:00Z".into()),
                ..History::default()
            },
            History {
                created: Some("2030-01-01T00:00:00Z".into()),
                ..History::default()
            },
            History::default(),
        ];
        clamp_times(&mut c, 1_700_000_000);
        let created: Vec<_> = c
            .history
            .iter()
            .map(|h| h.created.clone().unwrap())
            .collect();
        assert_eq!(
            created,
            [
                "1990-01-01T00:00:00Z",
                "2023-11-14T22:13:20Z",
                "2023-11-14T22:13:20Z"
            ]
        );
        assert_eq!(c.created.as_deref(), Some("2023-11-14T22:13:20Z"));
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn squashed_history_pairs_with_layers() {
        let layer = |by: &str| History {
            created_by: Some(by.into()),
            ..History::default()
        };
        let mut c = ImageConfig::new("x".into());
        let d = DiffId(crate::digest::Digest::of(b"a"));
        c.rootfs.diff_ids = vec![d.clone(), d];
        c.history = vec![layer("base"), layer("run 1"), layer("run 2")];
        squash_history(&mut c, 1, &with(Squash::New, None));
        let empty: Vec<bool> = c.history.iter().map(|h| h.empty_layer).collect();
        assert_eq!(empty, [false, true, true, false]);
        assert_eq!(
            c.history[3].created_by.as_deref(),
            Some("strata build --squash")
        );
    }
}
