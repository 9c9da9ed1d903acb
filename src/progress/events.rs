//! What library code has to say, as data: the printer decides how (and
//! whether) it is shown, so a later mode (a JSON line per event, a report
//! file) is one more renderer, not another set of print calls.

use serde::Serialize;

/// Everything strata shows while it works.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A build step begins (`Step 2/5 : ENV A=1`).
    StepStarted {
        number: usize,
        total: usize,
        text: String,
    },
    /// The step's image came from the cache (` ---> Using cache`).
    StepCached { number: usize },
    /// The step runs in a container (` ---> Running in 3f2a9c1d2e4b`).
    StepRunning { number: usize, container: String },
    /// The image a step (or a stage's FROM) ended with (` ---> 3f2a9c1d2e4b`).
    StepImage { number: usize, image: String },
    /// Any other line of a build's own output (`# Executing 1 build
    /// trigger`, `Successfully built …`, `Successfully tagged …`).
    BuildLine { text: String },
    /// A line of a pull or push of its own (`latest: Pulling from …`,
    /// `Digest: …`, `Status: …`).
    TransferLine { text: String },
    /// The status of one layer of a pull or push (`a1b2c3d4e5f6: Pull complete`).
    LayerStatus { layer: String, status: String },
    /// Bytes of a layer moved so far (`verb` is `Downloading`, `Pushing`,
    /// `Compressing`).
    LayerBytes {
        layer: String,
        verb: String,
        done: u64,
        total: u64,
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
