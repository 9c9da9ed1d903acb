//! What library code has to say, as data: the printer decides how (and
//! whether) it is shown, so a later mode (a JSON line per event, a report
//! file) is one more renderer, not another set of print calls.

use serde::Serialize;

use crate::digest::Digest;

/// The step an event is about: its stage (the stage's index in the
/// Dockerfile, 0 for the first FROM) and its number (1-based, across the
/// build, as in `Step 2/7`). Stages built at once tell their events apart
/// by it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub struct StepId {
    pub stage: usize,
    pub number: usize,
    /// The platform's place in `build --platform A,B` (0, and not
    /// serialised, otherwise).
    #[serde(skip_serializing_if = "is_zero")]
    pub platform: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The layer a step added to its image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepLayer {
    pub diff_id: String,
    /// Bytes of regular file content (Docker's layer size).
    pub size: u64,
}

/// Everything strata shows while it works.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A build is about to run its first step: its Dockerfile (as named
    /// in errors), how many steps (0 for a `--platform A,B` build, said
    /// once for all: each step's event has its platform's), and whether
    /// stages may run at once (then lines say which stage they are of).
    BuildStarted {
        dockerfile: String,
        total: usize,
        parallel: bool,
    },
    /// A build step begins (`Step 2/5 : ENV A=1`): `step.number` of
    /// `total` in the build; `stage_step` of `stage_steps` in the stage
    /// named `stage_name` (its FROM is 1), as BuildKit's `[name 2/3]`.
    StepStarted {
        step: StepId,
        /// The platform built for, when one of several or not the host's
        /// (BuildKit's `[linux/arm64 builder 1/3]`).
        #[serde(skip_serializing_if = "Option::is_none")]
        platform: Option<String>,
        total: usize,
        stage_name: String,
        stage_step: usize,
        stage_steps: usize,
        text: String,
        /// Where the instruction is in the Dockerfile (1-based).
        line: usize,
        column: usize,
    },
    /// A line the step's process wrote (stdout and stderr), when the
    /// printer shows it rather than the terminal getting it directly.
    StepOutput { step: StepId, line: String },
    /// The step is over (cached, built, or applied to the config):
    /// `cached` and how long it took; the image the stage is at after it
    /// (`None` while metadata steps wait to become one), the layer it
    /// added, and why it missed the cache (`None` when it hit, and for a
    /// FROM).
    StepDone {
        step: StepId,
        cached: bool,
        millis: u64,
        image: Option<String>,
        layer: Option<StepLayer>,
        miss: Option<String>,
    },
    /// A dry run's step that the cache does not hold, and why
    /// (` ---> Would run: not in the cache`).
    StepWouldRun { step: StepId, reason: String },
    /// `--explain-cache`: why the step missed the cache (` ---> Cache
    /// miss: files changed: a.txt (content)`).
    StepMissed { step: StepId, reason: String },
    /// Bytes a step has read or written so far of `total` (a COPY reading
    /// a large context to key it, then copying it), for a step that moves
    /// enough of them to be worth a bar on a terminal.
    StepBytes {
        step: StepId,
        work: StepWork,
        done: u64,
        total: u64,
    },
    /// The step's image came from the cache (` ---> Using cache`).
    StepCached { step: StepId },
    /// The step's image came from a remote cache (` ---> Using cache
    /// (registry REG/REPO)`).
    StepCachedFrom { step: StepId, origin: String },
    /// The step runs in a container (` ---> Running in 3f2a9c1d2e4b`).
    StepRunning { step: StepId, container: String },
    /// The image a step (or a stage's FROM) ended with (` ---> 3f2a9c1d2e4b`).
    StepImage { step: StepId, image: String },
    /// The build is over (built or failed): a live view stops drawing.
    BuildDone,
    /// Any other line of a build's own output (`# Executing 1 build
    /// trigger`, `Successfully built …`, `Successfully tagged …`).
    BuildLine { text: String },
    /// A line of a pull or push of its own (`latest: Pulling from …`,
    /// `Digest: …`, `Status: …`).
    TransferLine { text: String },
    /// The status of one layer of a pull or push (`a1b2c3d4e5f6: Pull
    /// complete`). `layer` is the digest Docker shows the layer by: the
    /// blob's on a pull, the diff id on a push.
    LayerStatus { layer: Digest, status: LayerStatus },
    /// Bytes of a layer moved so far; `total` is `None` where the size is
    /// known only at the end (a blob being compressed).
    LayerBytes {
        layer: Digest,
        action: Transfer,
        done: u64,
        total: Option<u64>,
    },
    /// A pull or push is over: its lines stay as they are.
    TransfersDone,
    /// A line for the user on stderr, shown as it is, even when quiet
    /// (`Unable to find image 'x' locally`, Docker's `[Warning] …`).
    Notice { text: String },
    /// Something went wrong but the command goes on (`strata: warning: …`).
    Warning { message: String },
    /// `--log-level info|debug` detail (`strata: info: …`).
    Log { level: LogLevel, message: String },
    /// An error of a process that has no command line to report it (the
    /// container's init process): `strata: …`.
    Error { message: String },
}

/// The levels of [`Event::Log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Info,
    Debug,
}

/// Where one layer of a pull or push is, in Docker's words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerStatus {
    /// Pull: the store has the layer.
    AlreadyExists,
    PullingFsLayer,
    Downloading,
    DownloadComplete,
    Extracting,
    PullComplete,
    /// Push: listed before anything is sent.
    Preparing,
    /// Push: the blob is being made (compressed) from the layer.
    Compressing,
    /// Push: the registry has the blob.
    LayerAlreadyExists,
    MountedFrom {
        repository: String,
    },
    Pushing,
    Pushed,
}

impl std::fmt::Display for LayerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LayerStatus::AlreadyExists => "Already exists",
            LayerStatus::PullingFsLayer => "Pulling fs layer",
            LayerStatus::Downloading => "Downloading",
            LayerStatus::DownloadComplete => "Download complete",
            LayerStatus::Extracting => "Extracting",
            LayerStatus::PullComplete => "Pull complete",
            LayerStatus::Preparing => "Preparing",
            LayerStatus::Compressing => "Compressing",
            LayerStatus::LayerAlreadyExists => "Layer already exists",
            LayerStatus::MountedFrom { repository } => {
                return write!(f, "Mounted from {repository}")
            }
            LayerStatus::Pushing => "Pushing",
            LayerStatus::Pushed => "Pushed",
        })
    }
}

/// What a step's bytes are going through ([`Event::StepBytes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepWork {
    /// Read from the build context for the step's cache key.
    Read,
    /// Copied into the image.
    Copy,
}

impl StepWork {
    /// The words a progress bar shows.
    pub fn verb(self) -> &'static str {
        match self {
            StepWork::Read => "Reading context",
            StepWork::Copy => "Copying",
        }
    }
}

/// What moves a layer's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transfer {
    Download,
    Upload,
    Compress,
}

impl Transfer {
    /// The word a progress bar shows.
    pub fn verb(self) -> &'static str {
        match self {
            Transfer::Download => "Downloading",
            Transfer::Upload => "Pushing",
            Transfer::Compress => "Compressing",
        }
    }
}
