//! `strata build`: a Dockerfile into an image.
//!
//! The way of a step, from the parser's output to the store:
//! - [`plan`] (pure): the stages a target needs, as a graph, and each step
//!   with its number, location, kind and declared inputs;
//! - [`key`] (pure): a step's cache key from its parent and its inputs;
//! - [`cache`]: the [`cache::StepCache`] trait a key is looked up in (the
//!   store's, [`cache::LocalCache`]), and [`remote`]: `--cache-from` /
//!   `--cache-to`, caches that follow a build to other machines;
//! - [`engine`]: runs the plan; one executor per kind (RUN, COPY/ADD,
//!   config-only) on a miss; [`scheduler`] runs independent stages at once;
//! - [`commit`]: the one way changes become an image (also `strata commit`);
//! - [`error`]: what a failed build says ([`BuildError`], [`StepError`]);
//! - [`explain`]: each step's inputs kept per target, and what changed
//!   since the last build when a step misses (`--explain-cache`).
//!
//! And what the executors use: [`config_steps`] (the one config applier,
//! also for `commit --change` and `import --change`), [`context`] (the
//! build context and the sources one COPY selects), [`copy`] (writing them
//! into a root file system), [`dockerignore`] (Docker's pattern matching),
//! [`fetch`] (ADD's downloads), [`mounts`] (RUN's `--mount`s).
//!
//! Beside the build, [`cache_gc`] keeps the cache's size in check
//! (`system df`, `system prune --build-cache`), and [`lint`] checks its Dockerfile (BuildKit's build
//! checks) with what the store and the context know.

pub mod cache;
pub mod cache_gc;
pub mod commit;
pub mod config_steps;
pub mod context;
pub mod copy;
pub mod dockerignore;
pub mod engine;
pub mod error;
pub mod explain;
pub mod fetch;
pub mod git;
pub mod key;
pub mod lint;
pub mod mounts;
pub mod named_context;
pub mod output;
pub mod plan;
pub mod remote;
pub mod report;
pub mod scheduler;
pub mod siblings;

pub use engine::{build, dry_run, BuildOptions, DryRun, PullPolicy};
pub use error::{BuildError, StepError};
