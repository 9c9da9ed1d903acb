//! The Dockerfile lint: BuildKit's build checks (`docker build --check`),
//! as pure functions of the Dockerfile text and what the caller knows of
//! its surroundings ([`Inputs`]: the base images' environment, the
//! `.dockerignore`, the platform args). No I/O.
//!
//! [`lint`] parses the text, reads the `# check=` directive ([`CheckConfig`])
//! and runs three passes, each over what it needs:
//! - `syntax`: what the text alone shows (keyword casing, stage names,
//!   MAINTAINER, legacy `ENV k v`, empty continuation lines, comments that
//!   do not describe the FROM or ARG below them);
//! - `from`: the FROM lines against the global ARGs (undeclared args,
//!   defaults that make no valid image name, `--platform` values);
//! - `flow`: each stage in order with its environment as the build would
//!   have it (undefined variables, the first WORKDIR, repeated CMD, shell
//!   form without SHELL, secrets in ARG/ENV names, ignored COPY sources).
//!
//! A finding belongs to the instruction on its line; a `# check=` comment
//! right above that instruction adds its skips to the file's.

mod config;
mod flow;
mod from;
mod rules;
mod syntax;

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fmt;

use thiserror::Error;

pub use config::{CheckConfig, CheckError};
pub use flow::looks_secret;
pub use rules::Rule;

use crate::directives::match_directive;
use crate::error::ParseError;
use crate::expand::Env;
use crate::raw::{parse_raw, RawNode, RawTree};

/// What the lint needs to know beyond the Dockerfile text.
pub trait Inputs {
    /// TARGETPLATFORM, BUILDARCH, ...: the args BuildKit defines for FROM
    /// lines, with this build's values.
    fn platform_args(&self) -> Vec<(String, String)>;

    /// The `--build-arg` value of `name`, if one was given.
    fn build_arg(&self, _name: &str) -> Option<String> {
        None
    }

    /// The environment and shell of base image `name` (as the FROM line
    /// names it, global args expanded); `None` when unknown (not pulled
    /// yet): its stage's variables are then not judged.
    fn base_image(&self, _name: &str) -> Option<BaseImage> {
        None
    }

    /// Whether `name` is a valid image reference (`busybox:` is not).
    fn valid_reference(&self, name: &str) -> bool;

    /// The context's `.dockerignore`, if it has one.
    fn dockerignore(&self) -> Option<&dyn Ignore> {
        None
    }
}

/// The `.dockerignore` rules, as CopyIgnoredFile asks about them.
pub trait Ignore {
    /// Whether `path` (clean, relative to the context root) or one of its
    /// parent directories is excluded.
    fn excludes(&self, path: &str) -> bool;

    /// Whether any rule is an exception (`!pattern`): then what is excluded
    /// cannot be told without the files, and the rule stays silent.
    fn has_exceptions(&self) -> bool;

    /// The patterns, cleaned, in order.
    fn patterns(&self) -> Vec<String>;
}

/// What the lint needs of a base image's config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BaseImage {
    /// Its `Env`, as name and value.
    pub env: Vec<(String, String)>,
    /// Whether it sets a `Shell`.
    pub shell: bool,
}

/// One finding: `line:col: Rule: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule.
    pub rule: Rule,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// BuildKit's message.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.line, self.col, self.rule, self.message
        )
    }
}

/// What [`lint`] found, and whether findings should fail the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The findings, by line.
    pub findings: Vec<Finding>,
    /// The file's `# check=` configuration.
    pub config: CheckConfig,
}

impl Report {
    /// BuildKit's error when `error=true` and there are findings:
    /// `lint violation found for rules: A, B`.
    pub fn violation(&self) -> Option<String> {
        if !self.config.error || self.findings.is_empty() {
            return None;
        }
        let rules: BTreeSet<&str> = self.findings.iter().map(|f| f.rule.name()).collect();
        let rules: Vec<&str> = rules.into_iter().collect();
        Some(format!(
            "lint violation found for rules: {}",
            rules.join(", ")
        ))
    }
}

/// Why the lint could not run.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LintError {
    /// The Dockerfile does not parse (the build reports the same error).
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The `# check=` directive cannot be read.
    #[error("{line}:1: {source}")]
    Check {
        /// Its line.
        line: usize,
        /// What is wrong.
        source: CheckError,
    },
}

/// Lints Dockerfile `text`.
pub fn lint(text: &str, inputs: &dyn Inputs) -> Result<Report, LintError> {
    let tree = parse_raw(text)?;
    let config = file_config(text)?;
    let comments = comment_blocks(&tree);
    let parsed = crate::stages::build(tree.clone(), text)?;
    let mut findings = Vec::new();
    syntax::check(&tree, &parsed, &comments, &mut findings);
    from::check(&parsed, inputs, &mut findings);
    flow::check(&parsed, inputs, &mut findings);
    let local = local_configs(&comments, &config);
    findings.retain(|f| local.get(&f.line).unwrap_or(&config).enabled(f.rule));
    findings.sort_by_key(|f| (f.line, f.col));
    findings.dedup();
    Ok(Report { findings, config })
}

/// The file's `# check=` configuration alone, read from the directives at
/// its top without parsing the rest (a build asks before it starts whether
/// findings should stop it). Other bad directives are left to the parser.
pub fn file_config(text: &str) -> Result<CheckConfig, LintError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut directives = crate::directives::Directives::default();
    for (i, line) in text.lines().enumerate() {
        match directives.observe(line.trim_start(), i + 1) {
            Ok(Some(d)) if d.name == "check" => {
                return CheckConfig::parse(&d.value).map_err(|source| LintError::Check {
                    line: d.line,
                    source,
                })
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    Ok(CheckConfig::default())
}

/// The comment lines right above each instruction (by its first line): the
/// block after the last blank line or empty `#`, as BuildKit documents
/// description comments.
pub(crate) type Comments = HashMap<usize, Vec<String>>;

fn comment_blocks(tree: &RawTree) -> Comments {
    let mut out = Comments::new();
    let mut block: Vec<String> = Vec::new();
    for node in &tree.nodes {
        match node {
            RawNode::Comment { text, .. } if text.is_empty() => block.clear(),
            RawNode::Comment { text, .. } => block.push(text.clone()),
            RawNode::Instruction(raw) => {
                if !block.is_empty() {
                    out.insert(raw.span.start_line, std::mem::take(&mut block));
                }
            }
            RawNode::Blank { .. } | RawNode::Directive(_) => block.clear(),
        }
    }
    out
}

/// The configuration of each instruction with a `# check=` comment above
/// it: the file's, plus the comment's skips. A comment that cannot be read
/// is ignored, as in BuildKit.
fn local_configs(comments: &Comments, file: &CheckConfig) -> HashMap<usize, CheckConfig> {
    let mut out = HashMap::new();
    for (&line, block) in comments {
        let found = block.iter().find_map(|text| {
            let line = format!("#{text}");
            let (name, value) = match_directive(&line)?;
            name.eq_ignore_ascii_case("check")
                .then(|| value.split(' ').next().unwrap_or_default().to_string())
        });
        if let Some(Ok(local)) = found.map(|v| CheckConfig::parse(&v)) {
            out.insert(line, file.merged(&local));
        }
    }
    out
}

/// An [`Env`] that remembers the names looked up and not found, and those
/// found, as BuildKit's `ProcessWordWithMatches` does.
pub(crate) struct Watch<'a> {
    env: &'a dyn Env,
    missed: RefCell<BTreeSet<String>>,
    found: RefCell<BTreeSet<String>>,
}

impl<'a> Watch<'a> {
    pub(crate) fn new(env: &'a dyn Env) -> Watch<'a> {
        Watch {
            env,
            missed: RefCell::new(BTreeSet::new()),
            found: RefCell::new(BTreeSet::new()),
        }
    }

    /// Names looked up and unset, in order.
    pub(crate) fn missed(&self) -> BTreeSet<String> {
        self.missed.borrow().clone()
    }

    /// Names looked up and set.
    pub(crate) fn found(&self) -> BTreeSet<String> {
        self.found.borrow().clone()
    }
}

impl Env for Watch<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        let value = self.env.get(name);
        let seen = if value.is_some() {
            &self.found
        } else {
            &self.missed
        };
        seen.borrow_mut().insert(name.to_string());
        value
    }
}

/// Records findings at an instruction.
pub(crate) fn at(line: usize, col: usize, rule: Rule, message: String) -> Finding {
    Finding {
        rule,
        line,
        col,
        message,
    }
}

#[cfg(test)]
mod tests;
