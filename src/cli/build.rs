//! `strata build`: a Dockerfile into an image.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use super::build_output::{build_or_verify, OutputFlags, Resolved, SOURCE_DATE_EPOCH};
use super::images::{human_size, open_store};
use super::settings::Settings;
use crate::build::error::EXIT_BUILD_FAILED;
use crate::build::mounts::{SecretSource, SshAgent};
use crate::build::output::finish::rfc3339;
use crate::build::output::provenance::{Provenance, Times};
use crate::build::output::Built;
use crate::build::remote::spec::{self, CacheSpec, Direction};
use crate::build::{report, BuildError, BuildOptions, PullPolicy};
use crate::digest::ImageId;
use crate::progress::Progress;
use crate::reference::Reference;
use crate::sandbox::spec::Network;
use crate::store::config::ManifestFormat;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Name and optionally a tag (name:tag)
    #[arg(short, long = "tag", value_name = "NAME[:TAG]")]
    tag: Vec<String>,
    /// Name of the Dockerfile (default: CONTEXT/Dockerfile; - reads stdin)
    #[arg(short, long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Set build-time variables (KEY=VALUE, or KEY to take it from the environment)
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    build_arg: Vec<String>,
    /// Read build-time variables from FILE: a KEY=VALUE a line, # comments (buildah's flag; --build-arg wins)
    #[arg(long = "build-arg-file", value_name = "FILE")]
    build_arg_file: Vec<PathBuf>,
    /// A named context for FROM NAME and --from=NAME: NAME=DIR, NAME=docker-image://REF or NAME=oci-layout://DIR[:TAG]
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    build_context: Vec<String>,
    /// Read the context's ignore rules from FILE instead of .dockerignore (buildah's flag)
    #[arg(long, value_name = "FILE")]
    ignorefile: Option<PathBuf>,
    /// Set the target build stage to build
    #[arg(long)]
    target: Option<String>,
    /// Build for OS/ARCH[/VARIANT] (foreign ones emulated); a comma-separated list builds each and makes an image index
    #[arg(long, value_name = "OS/ARCH[/VARIANT][,...]")]
    platform: Option<crate::platform::PlatformList>,
    /// Add the built image (every platform's) to the manifest list NAME, made if missing (buildah's flag)
    #[arg(long, value_name = "NAME")]
    manifest: Option<String>,
    /// Do not use cache when building the image
    #[arg(long)]
    no_cache: bool,
    /// Do not use cache for the named stages (names or indices, comma-separated)
    #[arg(long, value_name = "STAGE", value_delimiter = ',')]
    no_cache_filter: Vec<String>,
    /// Set metadata for the image (KEY=VALUE)
    #[arg(long, value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Write the image ID to the file
    #[arg(long, value_name = "FILE")]
    iidfile: Option<PathBuf>,
    /// Suppress the build output and print image ID on success
    #[arg(short, long)]
    quiet: bool,
    /// Pull FROM images: missing (default), always, never; --pull alone is always
    #[arg(long, value_enum, default_value_t = PullPolicy::Missing, num_args = 0..=1, default_missing_value = "always", require_equals = true)]
    pull: PullPolicy,
    /// Network for RUN instructions: the host's, or none
    #[arg(long, value_enum, default_value_t = Network::Host)]
    network: Network,
    /// Isolation for RUN: default (the best that works here; see strata info), or a rung: rootless, root, nested, chroot
    #[arg(long, value_enum, env = "STRATA_ISOLATION")]
    pub(super) isolation: Option<crate::sandbox::ladder::IsolationFlag>,
    /// Manifest type the image is pushed as (recorded with it; `push
    /// --format` overrides). BUILDAH_FORMAT is buildah's variable for it.
    #[arg(long, value_enum, env = "BUILDAH_FORMAT", default_value_t = ManifestFormat::Oci)]
    format: ManifestFormat,
    /// How many independent stages may build at once (default: the number
    /// of CPUs; 1 builds them one after the other, in the Dockerfile's order)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    jobs: Option<u32>,
    /// Type of progress output: auto, tty, plain, quiet, rawjson
    #[arg(long, value_enum, value_name = "TYPE", env = "STRATA_PROGRESS", default_value_t = Progress::Auto, hide_env = true)]
    progress: Progress,
    /// Write what the build did (every step, cache hits and misses, totals) as JSON to FILE
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Check the Dockerfile against the lint rules and print what they find; build nothing
    #[arg(long)]
    check: bool,
    /// Say which steps would run and which are cached; execute nothing, write nothing to the store
    #[arg(long)]
    dry_run: bool,
    /// Say, for a step that misses the cache, what changed since the last build of the same target
    #[arg(long)]
    explain_cache: bool,
    /// Use only cached steps whose images were made less than DURATION ago (e.g. 30m, 24h; 0 uses none)
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    cache_ttl: Option<std::time::Duration>,
    #[command(flatten)]
    outputs: OutputFlags,
    #[command(flatten)]
    extras: super::extras_flags::ExtrasFlags,
    /// External cache sources (type=registry,ref=REF | type=local,src=DIR | REF); the first hit wins
    #[arg(long = "cache-from", value_name = "SPEC")]
    cache_from: Vec<String>,
    /// Cache export destinations (type=registry,ref=REF[,mode=min|max] | type=local,dest=DIR | type=inline)
    #[arg(long = "cache-to", value_name = "SPEC")]
    cache_to: Vec<String>,
    /// Secret to expose to RUN --mount=type=secret (id=ID[,src=FILE|,env=VAR])
    #[arg(long, value_name = "id=ID[,src=FILE]")]
    secret: Vec<String>,
    /// SSH agent socket or keys to expose to RUN --mount=type=ssh (default|ID[=SOCKET|KEY[,KEY...]])
    #[arg(long, value_name = "default|ID[=SOCKET|KEY]")]
    ssh: Vec<String>,
    /// Allow an extra privilege for the build: network.host (RUN --network=host)
    #[arg(long, value_name = "ENTITLEMENT", value_parser = ["network.host", "security.insecure"])]
    allow: Vec<String>,
    /// The build context directory, or - for a Dockerfile on stdin and no context
    #[arg(value_name = "CONTEXT")]
    context: String,
}

pub fn run(settings: &Settings, args: &BuildArgs) -> Result<ExitCode> {
    let tags = args
        .tag
        .iter()
        .map(|t| Reference::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    let build_args = build_args(args)?;
    let epoch_arg = build_args.get(SOURCE_DATE_EPOCH).map(|v| v.as_deref());
    let out = args.outputs.resolve(&tags, epoch_arg)?;
    let report = report_collector(args);
    let quiet = configure_printer(args, &out, report.as_ref().map(|r| r.1.clone()));
    let context = context_dir(&args.context)?;
    let (dockerfile_path, dockerfile) = read_dockerfile(args, context.as_deref())?;
    let store = open_store(settings)?;
    let options = BuildOptions {
        context,
        dockerfile_path,
        dockerfile,
        tags,
        build_args,
        target: args.target.clone(),
        no_cache: args.no_cache,
        no_cache_filter: args.no_cache_filter.clone(),
        labels: labels(args),
        quiet,
        network: args.network,
        driver: settings.storage_driver,
        pull: args.pull,
        format: args.format,
        log_to_stderr: out.export.log_to_stderr,
        finish: out.finish.clone(),
        cache_from: cache_specs(&args.cache_from, Direction::From)?,
        cache_to: cache_specs(&args.cache_to, Direction::To)?,
        bases_from: None,
        jobs: args.jobs.map_or_else(default_jobs, |n| n as usize),
        secrets: secrets(&args.secret)?,
        allow_network_host: args.allow.iter().any(|a| a == "network.host"),
        ssh: args
            .ssh
            .iter()
            .map(|s| SshAgent::parse(s))
            .collect::<Result<_, _>>()?,
        dry_run: false,
        explain_cache: args.explain_cache,
        cache_ttl: args.cache_ttl,
        platform: one_platform(args),
        ignorefile: args.ignorefile.clone(),
        build_contexts: build_contexts(&args.build_context)?,
        extras: args.extras.resolve()?,
        sibling: None,
    };
    if args.check {
        return super::lint::check(&store, &options);
    }
    if args.dry_run {
        return dry_run(&store, &options, &out, report);
    }
    if args.platform.as_ref().is_some_and(|p| p.0.len() > 1) || args.manifest.is_some() {
        return build_many(&store, args, &options, &out, quiet, report);
    }
    // The CLI's report path renders a build error (step, place, cause
    // chain, the last good image) and picks its exit code.
    let started = crate::store::now_rfc3339();
    let built = build_and_export(&store, &options, &out, started);
    write_report(
        report.as_ref(),
        built.as_ref().map(Option::as_ref),
        &options.tags,
    )?;
    let Some(built) = built? else {
        return Ok(ExitCode::from(EXIT_BUILD_FAILED));
    };
    if !(args.cache_from.is_empty() && args.cache_to.is_empty()) {
        // After the outputs: a layer they needed was fetched by then.
        emit_cache_totals();
    }
    report_id(args, quiet, &out, &built.id)?;
    Ok(ExitCode::SUCCESS)
}

/// `--build-arg-file` lines, then `--build-arg`s (which win).
fn build_args(args: &BuildArgs) -> Result<std::collections::BTreeMap<String, Option<String>>> {
    let from_files = arg_file_lines(&args.build_arg_file)?;
    Ok(key_values(&from_files)
        .chain(key_values(&args.build_arg))
        .map(|(k, v)| (k, v.map(str::to_string)))
        .collect())
}

/// `--jobs` unset: as many stages at once as there are CPUs to run them
/// (the affinity mask, as `nproc` counts), BuildKit's default.
fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// `--dry-run`: the steps that would run, nothing done (no output, no
/// tag); the report says `dry_run`.
fn dry_run(
    store: &Store,
    options: &BuildOptions,
    out: &Resolved,
    report: Option<(PathBuf, Arc<report::Collector>)>,
) -> Result<ExitCode> {
    if out.verify_repro {
        bail!("--dry-run builds nothing: it cannot be used with --verify-repro");
    }
    let found = crate::build::dry_run(store, options);
    crate::progress::emit(crate::progress::Event::BuildDone);
    if let Some((path, collector)) = &report {
        let json = serde_json::to_vec_pretty(&collector.finish(report::Ending::DryRun))?;
        fs_err::write(path, json)
            .with_context(|| format!("writing the report {}", path.display()))?;
    }
    found?;
    Ok(ExitCode::SUCCESS)
}

/// The `Build cache:` line, from the remote cache's counters.
fn emit_cache_totals() {
    let t = crate::build::remote::stats::totals();
    crate::progress::emit(crate::progress::Event::BuildLine {
        text: format!(
            "Build cache: {} downloaded ({}), {} uploaded ({})",
            human_size(t.downloaded),
            layers(t.layers_downloaded),
            human_size(t.uploaded),
            layers(t.layers_uploaded)
        ),
    });
}

/// The context directory, or None for `-` (a Dockerfile on stdin).
fn context_dir(arg: &str) -> Result<Option<PathBuf>> {
    let dir = (arg != "-").then(|| PathBuf::from(arg));
    if let Some(dir) = &dir {
        if !dir.is_dir() {
            bail!(
                "unable to prepare context: path {:?} not found",
                dir.display().to_string()
            );
        }
    }
    Ok(dir)
}

/// `1 layer`, `2 layers`.
fn layers(n: u64) -> String {
    match n {
        1 => "1 layer".into(),
        n => format!("{n} layers"),
    }
}

/// `--label K=V`s (a bare K is an empty value).
fn labels(args: &BuildArgs) -> std::collections::BTreeMap<String, String> {
    key_values(&args.label)
        .map(|(k, v)| (k, v.unwrap_or_default().to_string()))
        .collect()
}

/// `--platform P`'s P; the host's for none or several.
fn one_platform(args: &BuildArgs) -> crate::platform::Platform {
    match args.platform.as_ref().map(|p| p.0.as_slice()) {
        Some([one]) => one.clone(),
        _ => crate::platform::Platform::host(),
    }
}

/// `--platform A,B` or `--manifest NAME`: a build per platform and a list.
fn build_many(
    store: &Store,
    args: &BuildArgs,
    options: &BuildOptions,
    out: &Resolved,
    quiet: bool,
    report: Option<(PathBuf, Arc<report::Collector>)>,
) -> Result<ExitCode> {
    let platforms = match &args.platform {
        Some(list) => list.0.clone(),
        None => vec![options.platform.clone()],
    };
    let manifest = args.manifest.as_deref().map(Reference::parse).transpose()?;
    let built = super::build_platforms::build(store, options, &platforms, manifest.as_ref(), out);
    crate::progress::emit(crate::progress::Event::BuildDone);
    write_report(report.as_ref(), built.as_ref().map(Some), &options.tags)?;
    let built = built?;
    report_id(args, quiet, out, &built.id)?;
    Ok(ExitCode::SUCCESS)
}

/// `-q`'s id and `--iidfile`.
fn report_id(args: &BuildArgs, quiet: bool, out: &Resolved, id: &ImageId) -> Result<()> {
    if quiet {
        // With an output on stdout, the id goes to stderr.
        match out.export.log_to_stderr {
            true => eprintln!("{id}"),
            false => println!("{id}"),
        }
    }
    if let Some(path) = &args.iidfile {
        fs_err::write(path, id.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The outputs, `--push` and `--metadata-file`, with `--provenance` made
/// first (the build ran from `started` to now).
fn export(
    store: &Store,
    options: &BuildOptions,
    built: &Built,
    out: &Resolved,
    started: String,
) -> Result<()> {
    let mut settings = out.export.clone();
    if let Some(mode) = out.provenance {
        let times = match settings.epoch {
            // Clamped, as the image's times are.
            Some(epoch) => Times {
                started: rfc3339(epoch),
                finished: rfc3339(epoch),
            },
            None => Times {
                started,
                finished: crate::store::now_rfc3339(),
            },
        };
        settings.provenance = Some(Provenance::new(store, options, built, mode, times)?);
    }
    let exported = crate::build::output::export::export(store, built, &settings)?;
    if let Some(path) = &out.metadata_file {
        crate::build::output::metadata::write(path, &built.id, &exported)?;
    }
    Ok(())
}

/// Installs the printer in the `--progress` mode; whether the build is
/// quiet (`-q`, or `--progress=quiet` as in buildx).
fn configure_printer(
    args: &BuildArgs,
    out: &Resolved,
    report: Option<Arc<report::Collector>>,
) -> bool {
    let progress = progress_mode(args);
    let quiet = args.quiet || progress == Progress::Quiet;
    // Steps on stdout (stderr when stdout carries an output); FROM's
    // automatic pulls and a --push's lines on stderr, as Docker's.
    let config = crate::progress::Config {
        quiet,
        transfers: crate::progress::Stream::Stderr,
        stdout_to_stderr: out.export.log_to_stderr,
        progress,
    };
    match report {
        Some(collector) => crate::progress::configure_with(config, collector),
        None => crate::progress::configure(config),
    }
    quiet
}

/// The build and its outputs; `None` when `--verify-repro` found the two
/// builds differ.
fn build_and_export(
    store: &Store,
    options: &BuildOptions,
    out: &Resolved,
    started: String,
) -> Result<Option<Built>> {
    let built = build_or_verify(store, options, out.verify_repro);
    crate::progress::emit(crate::progress::Event::BuildDone);
    let Some(built) = built? else {
        return Ok(None);
    };
    export(store, options, &built, out, started)?;
    Ok(Some(built))
}

/// `--report FILE`: where, and what collects the build's events for it.
fn report_collector(args: &BuildArgs) -> Option<(PathBuf, Arc<report::Collector>)> {
    let path = args.report.clone()?;
    Some((path, Arc::new(report::Collector::default())))
}

/// `--report FILE`: what the build did, as JSON (docs/build-report.md).
fn write_report(
    report: Option<&(PathBuf, Arc<report::Collector>)>,
    built: Result<Option<&Built>, &anyhow::Error>,
    tags: &[Reference],
) -> Result<()> {
    let Some((path, collector)) = report else {
        return Ok(());
    };
    let ending = match built {
        Ok(Some(b)) => report::Ending::Built {
            id: b.id.to_string(),
            tags: tags.iter().map(|t| t.familiar()).collect(),
        },
        Ok(None) => report::Ending::Failed {
            error: "not reproducible".into(),
            step: None,
        },
        Err(e) => report::Ending::Failed {
            error: format!("{e:#}"),
            step: match e.downcast_ref::<BuildError>() {
                Some(BuildError::Step(s)) => Some(s.number),
                _ => None,
            },
        },
    };
    let json = serde_json::to_vec_pretty(&collector.finish(ending))?;
    fs_err::write(path, json).with_context(|| format!("writing the report {}", path.display()))
}

/// `--progress`, else `STRATA_PROGRESS` (clap reads it), else BuildKit's
/// `BUILDKIT_PROGRESS`, else auto.
fn progress_mode(args: &BuildArgs) -> Progress {
    use clap::ValueEnum;
    let given = args.progress != Progress::Auto || std::env::var_os("STRATA_PROGRESS").is_some();
    match std::env::var("BUILDKIT_PROGRESS") {
        Ok(v) if !given => Progress::from_str(&v, true).unwrap_or_else(|_| {
            crate::progress::warn(format!(
                "BUILDKIT_PROGRESS={v} is not a progress type; using auto"
            ));
            Progress::Auto
        }),
        _ => args.progress,
    }
}

/// The Dockerfile's path (none for stdin) and its text.
fn read_dockerfile(
    args: &BuildArgs,
    context: Option<&std::path::Path>,
) -> Result<(Option<PathBuf>, String)> {
    let stdin_dockerfile =
        args.context == "-" || args.file.as_deref() == Some(std::path::Path::new("-"));
    let (path, bytes) = if stdin_dockerfile {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading the Dockerfile from stdin")?;
        (None, bytes)
    } else {
        let path = match (&args.file, context) {
            (Some(f), _) => f.clone(),
            (None, Some(dir)) => dir.join("Dockerfile"),
            (None, None) => bail!("no Dockerfile: give -f FILE or a context directory"),
        };
        let bytes = match context {
            Some(dir) => crate::build::context::read_beside(dir, &path)?,
            None => fs_err::read(&path).with_context(|| format!("reading {}", path.display()))?,
        };
        (Some(path), bytes)
    };
    let name = path
        .as_ref()
        .map_or_else(|| "Dockerfile".into(), |p| p.display().to_string());
    match strata_parser::decode(&bytes) {
        Ok(text) => Ok((path, text.to_string())),
        Err(e) => bail!("{name}:{e}"),
    }
}

/// `--cache-from` / `--cache-to` values.
fn cache_specs(values: &[String], direction: Direction) -> Result<Vec<CacheSpec>> {
    Ok(values
        .iter()
        .map(|v| spec::parse(v, direction))
        .collect::<Result<_, _>>()?)
}

/// The lines of `--build-arg-file`s, as buildah reads them: blank lines
/// and lines starting with `#` skipped, each other line one `--build-arg`.
fn arg_file_lines(files: &[PathBuf]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        let text = fs_err::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        out.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    Ok(out)
}

/// `KEY=VALUE` (or `KEY`) pairs; a later key wins.
fn key_values(list: &[String]) -> impl Iterator<Item = (String, Option<&str>)> {
    list.iter().map(|kv| match kv.split_once('=') {
        Some((k, v)) => (k.to_string(), Some(v)),
        None => (kv.clone(), None),
    })
}

/// `--build-context`s, their directories checked before the build starts.
fn build_contexts(values: &[String]) -> Result<crate::build::named_context::NamedContexts> {
    let contexts = crate::build::named_context::NamedContexts::parse(values)?;
    contexts.check()?;
    Ok(contexts)
}

/// `--secret`s, each checked as Docker does before the build starts (the
/// file exists and is small enough); the values are read by the steps.
fn secrets(flags: &[String]) -> Result<Vec<SecretSource>> {
    flags
        .iter()
        .map(|s| {
            let secret = SecretSource::parse(s).with_context(|| format!("--secret {s:?}"))?;
            secret.check().with_context(|| format!("--secret {s:?}"))?;
            Ok(secret)
        })
        .collect()
}
