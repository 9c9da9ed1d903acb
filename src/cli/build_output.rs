//! `build`'s output flags, resolved into the engine's [`Finish`] and the
//! exporters' [`ExportSettings`] before anything is built (a bad `-o` fails
//! at once, not after an hour of RUN).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::compression::CompressionFlags;
use crate::build::output::export::{self, ExportSettings};
use crate::build::output::provenance::{parse_mode, Mode};
use crate::build::output::repro::{self, Verdict};
use crate::build::output::{AddAnnotation, Annotations, Built, Finish, OutputSpec, Squash};
use crate::build::{BuildError, BuildOptions};
use crate::reference::Reference;
use crate::store::Store;

/// The variable reproducible builds read (reproducible-builds.org).
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";

#[derive(Debug, clap::Args)]
pub struct OutputFlags {
    /// Output destination: type=local|tar|oci|docker|image|registry[,dest=..,name=..], DIR, or - (a tar on stdout)
    #[arg(short, long = "output", value_name = "SPEC")]
    output: Vec<String>,
    /// Push every tag after the build (type=registry)
    #[arg(long)]
    push: bool,
    /// Date the image and clamp its new files' times to this (seconds since 1970) [default: SOURCE_DATE_EPOCH]
    #[arg(long, value_name = "SECONDS")]
    timestamp: Option<u64>,
    /// Squash the layers this build makes into one
    #[arg(long, conflicts_with = "squash_all")]
    squash: bool,
    /// Squash all layers, the base image's too, into one
    #[arg(long)]
    squash_all: bool,
    #[command(flatten)]
    compression: CompressionFlags,
    /// Write the image digest, config digest and names as JSON to FILE
    #[arg(long, value_name = "FILE")]
    metadata_file: Option<PathBuf>,
    /// Add an annotation: [manifest:|index:|manifest-descriptor:]KEY=VALUE
    #[arg(long, value_name = "KEY=VALUE")]
    annotation: Vec<String>,
    /// Remove a label the image would have (inherited or set)
    #[arg(long, value_name = "KEY")]
    unsetlabel: Vec<String>,
    /// Attach SLSA provenance to pushed images and write it beside type=oci outputs: mode=min (default) or mode=max
    #[arg(long, value_name = "mode=min|max", num_args = 0..=1, require_equals = true, default_missing_value = "mode=min")]
    provenance: Option<String>,
    /// Build twice in isolated stores (the second without cache) and compare: reproducible, or the first difference (exit 1)
    #[arg(long)]
    verify_repro: bool,
}

/// What the flags resolve to.
pub struct Resolved {
    pub finish: Finish,
    pub export: ExportSettings,
    pub metadata_file: Option<PathBuf>,
    pub verify_repro: bool,
    pub provenance: Option<Mode>,
}

impl OutputFlags {
    /// `build_args` for SOURCE_DATE_EPOCH given as a build arg.
    pub fn resolve(&self, tags: &[Reference], build_arg: Option<Option<&str>>) -> Result<Resolved> {
        let mut outputs = Vec::new();
        for o in &self.output {
            outputs.push(OutputSpec::parse(o)?);
        }
        export::check(&outputs)?;
        let mut annotations = Annotations::default();
        for a in &self.annotation {
            annotations.add(a)?;
        }
        if self.push && tags.is_empty() {
            bail!("--push needs a name: give -t NAME");
        }
        let epoch = self.epoch(build_arg)?;
        if self.verify_repro && epoch.is_none() {
            bail!("--verify-repro needs --timestamp or {SOURCE_DATE_EPOCH}: without one each build is dated when it runs");
        }
        let log_to_stderr = export::uses_stdout(&outputs);
        Ok(Resolved {
            finish: Finish {
                squash: match (self.squash, self.squash_all) {
                    (_, true) => Squash::All,
                    (true, _) => Squash::New,
                    _ => Squash::No,
                },
                epoch,
                unset_labels: self.unsetlabel.clone(),
            },
            export: ExportSettings {
                outputs,
                push: self.push,
                tags: tags.to_vec(),
                compression: self.compression.choice(false)?,
                annotations,
                registry: Default::default(),
                epoch,
                log_to_stderr,
                provenance: None,
            },
            metadata_file: self.metadata_file.clone(),
            verify_repro: self.verify_repro,
            provenance: match &self.provenance {
                Some(text) => parse_mode(text)?,
                None => None,
            },
        })
    }

    /// `--timestamp`, else SOURCE_DATE_EPOCH as a build arg, else from the
    /// environment (as buildx passes it on).
    fn epoch(&self, build_arg: Option<Option<&str>>) -> Result<Option<u64>> {
        if self.timestamp.is_some() {
            return Ok(self.timestamp);
        }
        let env = std::env::var(SOURCE_DATE_EPOCH).ok();
        let text = match build_arg {
            Some(Some(v)) => Some(v.to_string()),
            // `--build-arg SOURCE_DATE_EPOCH`: the value from the environment.
            Some(None) => env,
            None => env,
        };
        match text.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(t) => t
                .parse()
                .map(Some)
                .with_context(|| format!("{SOURCE_DATE_EPOCH}={t:?}: expected seconds since 1970")),
        }
    }
}

/// The build, or with `--verify-repro` the two builds and their verdict:
/// `Ok(None)` when they differ (the difference is printed).
pub fn build_or_verify(
    store: &Store,
    options: &BuildOptions,
    verify: bool,
) -> Result<Option<Built>, BuildError> {
    let build = || crate::build::build(store, options);
    if !verify {
        return super::lint::around(store, options, build).map(Some);
    }
    let verdict = super::lint::around(store, options, || repro::verify(store, options))?;
    let (line, built) = match verdict {
        Verdict::Same(built) => (format!("reproducible: {}", built.id), Some(built)),
        Verdict::Differs(d) => (format!("not reproducible: {d}"), None),
    };
    // The verdict is the command's answer: stdout, unless an output is there.
    match options.log_to_stderr {
        true => eprintln!("{line}"),
        false => println!("{line}"),
    }
    Ok(built)
}
