//! `build --report FILE`: what a build did, as one JSON document (fields in
//! docs/build-report.md; stable names). The report is one more renderer of
//! the progress events ([`Collector`] is a [`Sink`] beside the printer),
//! plus the counters that are not events: context bytes read, the remote
//! cache's totals, wall time and peak memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use crate::digest::Digest;
use crate::progress::{Event, Sink, StepId, StepLayer, Transfer};

/// The format's version: a change that is not an added field bumps it.
pub const VERSION: u32 = 1;

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub version: u32,
    pub dockerfile: String,
    /// `built`, `failed` or `dry_run`.
    pub result: Outcome,
    /// The error that ended a failed build, as strata printed it.
    pub error: Option<String>,
    /// The built image (`None` when the build failed).
    pub image: Option<ImageReport>,
    /// Every step that started, in the order they started.
    pub steps: Vec<StepReport>,
    pub totals: Totals,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Built,
    Failed,
    /// `--dry-run`: nothing was built.
    DryRun,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageReport {
    /// The image id (`sha256:` and the config digest).
    pub id: String,
    pub tags: Vec<String>,
}

/// One step.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// The stage's index in the Dockerfile (0 for the first FROM).
    pub stage: usize,
    /// Its `AS` name, or `stage-N`.
    pub stage_name: String,
    /// The platform the step built for (`linux/arm64`): each platform of a
    /// `--platform A,B` build has its own steps.
    pub platform: String,
    /// The step's number in the build (`Step N/M`).
    pub number: usize,
    /// The instruction as written.
    pub instruction: String,
    pub location: Location,
    pub status: Status,
    /// Where a cache hit came from when not the local cache
    /// (`registry HOST/REPO`, `local DIR`).
    pub cache_source: Option<String>,
    /// Why the step missed the cache (`None` when it hit, for a FROM, and
    /// for a step that did not end).
    pub miss_reason: Option<String>,
    /// How long the step took (`None` if it did not end).
    pub duration_ms: Option<u64>,
    /// The image the stage stood at after the step.
    pub image: Option<String>,
    /// The layer the step added.
    pub layer: Option<StepLayer>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A FROM: the stage's base image.
    Base,
    Cached,
    Run,
    /// The step whose failure ended the build.
    Failed,
    /// Started, and stopped by another stage's failure or a signal.
    Stopped,
    /// A dry run's step the cache does not hold.
    WouldRun,
}

/// What the build did in all.
#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    pub steps: usize,
    pub steps_cached: usize,
    pub steps_run: usize,
    /// Bytes of context files read (hashed or copied).
    pub context_bytes_read: u64,
    /// Bytes of blobs downloaded from registries (base images and remote
    /// caches).
    pub bytes_downloaded: u64,
    /// Bytes of blobs uploaded to registries (`--push`, `--cache-to`).
    pub bytes_uploaded: u64,
    /// Steps whose cache hit came from a `--cache-from` cache.
    pub remote_cache_hits: usize,
    /// The remote cache's own counters (records and layers).
    pub remote_cache: crate::build::remote::stats::Totals,
    pub wall_ms: u64,
    /// The peak resident memory of strata itself, and of the largest of
    /// the processes it waited for (the steps' containers).
    pub peak_memory_bytes: u64,
    pub peak_memory_children_bytes: u64,
}

/// Gathers a build's events for its report.
pub struct Collector {
    started: Instant,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    dockerfile: String,
    steps: Vec<StepReport>,
    index: HashMap<StepId, usize>,
    /// Per blob, the bytes moved so far (events report running totals).
    downloads: HashMap<Digest, u64>,
    uploads: HashMap<Digest, u64>,
}

impl Default for Collector {
    fn default() -> Collector {
        Collector {
            started: Instant::now(),
            state: Mutex::default(),
        }
    }
}

impl Sink for Collector {
    fn emit(&self, event: &Event) {
        // A poisoned lock holds records that are each whole.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.take(event);
    }
}

impl State {
    fn take(&mut self, event: &Event) {
        match event {
            Event::BuildStarted { dockerfile, .. } => {
                // `--verify-repro` builds more than once: the last counts.
                *self = State {
                    dockerfile: dockerfile.clone(),
                    ..State::default()
                };
            }
            Event::StepStarted { .. } => self.started(event),
            Event::StepCachedFrom { step, origin } => {
                if let Some(s) = self.step(step) {
                    s.cache_source = Some(origin.clone());
                }
            }
            Event::StepDone { step, .. } => {
                if let Some(s) = self.step(step) {
                    done(s, event);
                }
            }
            Event::StepWouldRun { step, .. } => {
                if let Some(s) = self.step(step) {
                    s.status = Status::WouldRun;
                }
            }
            Event::LayerBytes {
                layer,
                action,
                done,
                ..
            } => {
                let moved = match action {
                    Transfer::Download => &mut self.downloads,
                    Transfer::Upload => &mut self.uploads,
                    Transfer::Compress => return,
                };
                let n = moved.entry(layer.clone()).or_default();
                *n = (*n).max(*done);
            }
            _ => {}
        }
    }

    fn started(&mut self, event: &Event) {
        let Event::StepStarted {
            step,
            platform,
            stage_name,
            text,
            line,
            column,
            ..
        } = event
        else {
            return;
        };
        self.index.insert(*step, self.steps.len());
        self.steps.push(StepReport {
            stage: step.stage,
            stage_name: stage_name.clone(),
            platform: platform
                .clone()
                .unwrap_or_else(|| crate::platform::show(&crate::platform::Platform::host())),
            number: step.number,
            instruction: text.clone(),
            location: Location {
                file: self.dockerfile.clone(),
                line: *line,
                column: *column,
            },
            status: Status::Stopped,
            cache_source: None,
            miss_reason: None,
            duration_ms: None,
            image: None,
            layer: None,
        });
    }

    fn step(&mut self, step: &StepId) -> Option<&mut StepReport> {
        self.index.get(step).map(|&i| &mut self.steps[i])
    }
}

/// Fills in what a [`Event::StepDone`] says.
fn done(s: &mut StepReport, event: &Event) {
    let Event::StepDone {
        cached,
        millis,
        image,
        layer,
        miss,
        ..
    } = event
    else {
        return;
    };
    s.status = match (s.instruction_is_from(), cached) {
        (true, _) => Status::Base,
        (false, true) => Status::Cached,
        (false, false) => Status::Run,
    };
    s.duration_ms = Some(*millis);
    s.image.clone_from(image);
    s.layer.clone_from(layer);
    s.miss_reason.clone_from(miss);
}

impl StepReport {
    fn instruction_is_from(&self) -> bool {
        self.instruction
            .split_whitespace()
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("FROM"))
    }
}

/// How the build ended, for [`Collector::finish`].
pub enum Ending {
    Built {
        id: String,
        tags: Vec<String>,
    },
    /// The error as printed, and the failed step's number if a step failed.
    Failed {
        error: String,
        step: Option<usize>,
    },
    /// `--dry-run`.
    DryRun,
}

impl Collector {
    /// The report of what was collected, now.
    pub fn finish(&self, ending: Ending) -> Report {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut steps = state.steps.clone();
        let (result, error, image) = match ending {
            Ending::Built { id, tags } => (Outcome::Built, None, Some(ImageReport { id, tags })),
            Ending::Failed { error, step } => {
                for s in steps.iter_mut() {
                    if s.duration_ms.is_none() && Some(s.number) == step {
                        s.status = Status::Failed;
                    }
                }
                (Outcome::Failed, Some(error), None)
            }
            Ending::DryRun => (Outcome::DryRun, None, None),
        };
        let totals = totals(&state, &steps, self.started);
        Report {
            version: VERSION,
            dockerfile: state.dockerfile.clone(),
            result,
            error,
            image,
            steps,
            totals,
        }
    }
}

fn totals(state: &State, steps: &[StepReport], started: Instant) -> Totals {
    let count = |status| steps.iter().filter(|s| s.status == status).count();
    let (me, children) = peak_memory();
    Totals {
        steps: steps.len(),
        steps_cached: count(Status::Cached),
        steps_run: count(Status::Run),
        context_bytes_read: crate::build::context::bytes_read(),
        bytes_downloaded: state.downloads.values().sum(),
        bytes_uploaded: state.uploads.values().sum(),
        remote_cache_hits: steps
            .iter()
            .filter(|s| s.status == Status::Cached && s.cache_source.is_some())
            .count(),
        remote_cache: crate::build::remote::stats::totals(),
        wall_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        peak_memory_bytes: me,
        peak_memory_children_bytes: children,
    }
}

/// Peak resident set sizes, of this process and of its largest waited-for
/// child, in bytes (0 where the kernel will not say).
fn peak_memory() -> (u64, u64) {
    use nix::sys::resource::{getrusage, UsageWho};
    // Linux reports ru_maxrss in KiB.
    let of = |who| getrusage(who).map_or(0, |u| u64::try_from(u.max_rss()).unwrap_or(0) * 1024);
    (of(UsageWho::RUSAGE_SELF), of(UsageWho::RUSAGE_CHILDREN))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(number: usize) -> StepId {
        StepId {
            stage: 0,
            number,
            platform: 0,
        }
    }

    fn started(number: usize, text: &str) -> Event {
        Event::StepStarted {
            step: id(number),
            platform: None,
            total: 3,
            stage_name: "stage-0".into(),
            stage_step: number,
            stage_steps: 3,
            text: text.into(),
            line: number,
            column: 1,
        }
    }

    fn done(number: usize, cached: bool, miss: Option<&str>) -> Event {
        Event::StepDone {
            step: id(number),
            cached,
            millis: 7,
            image: Some(format!("sha256:{number}")),
            layer: None,
            miss: miss.map(str::to_string),
        }
    }

    #[test]
    fn steps_are_told_apart_by_how_they_ended() {
        let c = Collector::default();
        let events = [
            Event::BuildStarted {
                dockerfile: "Dockerfile".into(),
                total: 3,
                parallel: false,
            },
            started(1, "FROM busybox"),
            done(1, false, None),
            started(2, "RUN a"),
            Event::StepCachedFrom {
                step: id(2),
                origin: "registry r/c".into(),
            },
            done(2, true, None),
            started(3, "RUN b"),
        ];
        for e in &events {
            c.emit(e);
        }
        let report = c.finish(Ending::Failed {
            error: "step 3/3: exit status 1".into(),
            step: Some(3),
        });
        let status: Vec<Status> = report.steps.iter().map(|s| s.status).collect();
        assert_eq!(status, [Status::Base, Status::Cached, Status::Failed]);
        assert_eq!(
            report.steps[1].cache_source.as_deref(),
            Some("registry r/c")
        );
        assert_eq!(report.steps[2].location.line, 3);
        assert_eq!(report.totals.steps_cached, 1);
        assert_eq!(report.totals.remote_cache_hits, 1);
        assert_eq!(report.result, Outcome::Failed);
    }

    #[test]
    fn bytes_moved_count_each_blob_once_at_its_largest() {
        let c = Collector::default();
        let layer = Digest::of(b"x");
        for done in [10, 60, 100] {
            c.emit(&Event::LayerBytes {
                layer: layer.clone(),
                action: Transfer::Download,
                done,
                total: Some(100),
            });
        }
        let report = c.finish(Ending::Built {
            id: "sha256:1".into(),
            tags: Vec::new(),
        });
        assert_eq!(report.totals.bytes_downloaded, 100);
        assert_eq!(report.totals.bytes_uploaded, 0);
    }
}
