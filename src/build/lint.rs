//! The lint of a build's Dockerfile (`build --check`, and the warnings of
//! every build): the parser's pure [`strata_parser::lint`], fed with what
//! the build knows. Base images come from the store as they are (a lint
//! never pulls; an image not pulled yet leaves its stage's variables
//! unjudged), `.dockerignore` is the one the build would read, the platform
//! args and `--build-arg` values are the build's.

use strata_parser::{BaseImage, CheckConfig, Ignore, Inputs, LintError, Report};

use super::context::read_ignore_file;
use super::dockerignore::Matcher;
use super::engine::args::{given, platform_args};
use super::engine::{dockerfile_name, BuildOptions};
use super::error::BuildError;
use crate::reference::Reference;
use crate::store::Store;

/// What the lint found in one Dockerfile.
#[derive(Debug)]
pub struct Lint {
    /// The Dockerfile's name, for `file:line:col`.
    pub file: String,
    pub report: Report,
}

impl Lint {
    /// Err when `# check=error=true` and there are findings.
    pub fn violation(&self) -> Result<(), BuildError> {
        match self.report.violation() {
            Some(message) => Err(BuildError::LintViolation {
                file: self.file.clone(),
                message,
            }),
            None => Ok(()),
        }
    }
}

/// The `# check=` configuration of the Dockerfile of `opts`, read from its
/// directives alone (cheap: a build asks it before starting).
pub fn file_config(opts: &BuildOptions) -> Result<CheckConfig, BuildError> {
    strata_parser::file_config(&opts.dockerfile).map_err(|e| lint_error(opts, e))
}

/// Lints the Dockerfile of `opts`. A Dockerfile that does not parse is the
/// same error a build gives.
pub fn lint(store: &Store, opts: &BuildOptions) -> Result<Lint, BuildError> {
    let file = dockerfile_name(opts);
    let ignore = opts
        .context
        .as_deref()
        .and_then(|root| {
            read_ignore_file(
                root,
                opts.dockerfile_path.as_deref(),
                opts.ignorefile.as_deref(),
            )
            .ok()
        })
        .flatten();
    let inputs = BuildInputs {
        store,
        opts,
        ignore,
    };
    let report = strata_parser::lint(&opts.dockerfile, &inputs).map_err(|e| lint_error(opts, e))?;
    Ok(Lint { file, report })
}

/// A lint that could not run, as the build's error.
fn lint_error(opts: &BuildOptions, error: LintError) -> BuildError {
    let file = dockerfile_name(opts);
    match error {
        LintError::Parse(error) => BuildError::Parse {
            file,
            rendered: error.render(&opts.dockerfile),
            error: Box::new(error),
        },
        LintError::Check { line, source } => BuildError::CheckDirective {
            file,
            line,
            problem: source,
        },
    }
}

struct BuildInputs<'a> {
    store: &'a Store,
    opts: &'a BuildOptions,
    /// The context's `.dockerignore`; an unreadable one fails the build,
    /// not the lint.
    ignore: Option<Matcher>,
}

impl Inputs for BuildInputs<'_> {
    fn platform_args(&self) -> Vec<(String, String)> {
        platform_args()
    }

    fn build_arg(&self, name: &str) -> Option<String> {
        self.opts.build_args.get(name).map(|v| given(name, v))
    }

    fn base_image(&self, name: &str) -> Option<BaseImage> {
        // Not in the store (or unreadable): unknown, which only makes the
        // lint say less.
        let id = self.store.resolve(name).ok()?;
        let config = self.store.config(&id).ok()?.config.unwrap_or_default();
        let env = config
            .env
            .unwrap_or_default()
            .iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.clone(), String::new()),
            })
            .collect();
        Some(BaseImage {
            env,
            shell: config.shell.is_some_and(|s| !s.is_empty()),
        })
    }

    fn valid_reference(&self, name: &str) -> bool {
        Reference::parse(name).is_ok()
    }

    fn dockerignore(&self) -> Option<&dyn Ignore> {
        self.ignore.as_ref().map(|m| m as &dyn Ignore)
    }
}

impl Ignore for Matcher {
    fn excludes(&self, path: &str) -> bool {
        self.is_excluded(path)
    }

    fn has_exceptions(&self) -> bool {
        self.patterns().iter().any(|p| p.is_exclusion())
    }

    fn patterns(&self) -> Vec<String> {
        Matcher::patterns(self)
            .iter()
            .map(|p| p.text().to_string())
            .collect()
    }
}
