//! Splits typed instructions into build stages at each FROM.
//!
//! ARGs before the first FROM are global args (usable in FROM lines); any
//! other instruction there is an error. Stage names ignore case.
//! References to stages (`FROM name`, `COPY --from=name|index`,
//! `RUN --mount=from=...`) resolve to earlier stages only; a literal reference
//! to the current or a later stage is an error. A name given to two stages
//! is allowed, as in BuildKit (the lint's DuplicateStageName warns): a
//! reference means the latest earlier stage of that name, and `--target`
//! the last one.

use std::collections::HashMap;

use thiserror::Error;

use crate::directives::Directives;
use crate::error::{column_of, ParseError, Span, Warning};
use crate::expand::Env;
use crate::instructions::{expand_raw, Instruction, Mount};
use crate::raw::{RawInstruction, RawNode, RawTree};

/// Errors in the stage structure.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StageError {
    /// An instruction other than ARG before the first FROM.
    #[error("{instruction} before the first FROM: only ARG may come before FROM")]
    BeforeFrom {
        /// The instruction.
        instruction: String,
    },
    /// A reference to the current or a later stage.
    #[error(
        "stage {name:?} is referenced before it is complete (only earlier stages can be used)"
    )]
    ForwardReference {
        /// The name.
        name: String,
    },
    /// `--from=N` with no earlier stage N.
    #[error("stage index {index} does not name an earlier stage (this is stage {current})")]
    BadIndex {
        /// The index given.
        index: usize,
        /// The stage holding the reference.
        current: usize,
    },
    /// Variable expansion failed while expanding an instruction.
    #[error("cannot expand {instruction}: {source}")]
    Expand {
        /// The instruction.
        instruction: String,
        /// What went wrong.
        source: crate::expand::ExpandError,
    },
}

/// One instruction with its raw form (for spans, flags as written, and
/// re-typing after expansion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The typed instruction, unexpanded.
    pub instruction: Instruction,
    /// The raw instruction it came from.
    pub raw: RawInstruction,
}

impl Step {
    /// The lines the instruction covers.
    pub fn span(&self) -> Span {
        self.raw.span
    }

    /// The instruction with Docker's variable expansion applied over `env`
    /// and typed again, so values such as `--chown=$USER` or `EXPOSE $PORT`
    /// come out final. `escape` is [`Parsed::escape`].
    pub fn expanded(&self, env: &dyn Env, escape: char) -> Result<Instruction, ParseError> {
        let at = |kind: StageError| ParseError::new(self.raw.span.start_line, self.raw.col, kind);
        let raw = expand_raw(&self.raw, env, escape).map_err(|source| {
            at(StageError::Expand {
                instruction: self.raw.name(),
                source,
            })
        })?;
        Instruction::from_raw(&raw)
            .map_err(|e| ParseError::new(self.raw.span.start_line, self.raw.col, e))
    }
}

/// Where a stage or `--from` reference points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageRef {
    /// An earlier stage, by index.
    Stage(usize),
    /// An image reference.
    Image(String),
}

/// A build stage: a FROM and the instructions up to the next FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// 0-based position.
    pub index: usize,
    /// `AS name`, lower case.
    pub name: Option<String>,
    /// What the FROM names: an earlier stage or an image (possibly with
    /// unexpanded global args; see [`Parsed::resolve_from`]).
    pub base: StageRef,
    /// `--platform`, unexpanded.
    pub platform: Option<String>,
    /// The FROM instruction.
    pub from: Step,
    /// The instructions after FROM.
    pub steps: Vec<Step>,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Parser directives (escape character, syntax, check).
    pub directives: Directives,
    /// ARG instructions before the first FROM.
    pub global_args: Vec<Step>,
    /// The stages, in order.
    pub stages: Vec<Stage>,
    /// Warnings from both parsing stages.
    pub warnings: Vec<Warning>,
    /// Stage indices (ascending) by lower-case name, so lookups stay cheap
    /// with many stages.
    names: Names,
}

impl Parsed {
    /// The escape character to pass to the expansion functions.
    pub fn escape(&self) -> char {
        self.directives.escape
    }

    /// The stage named `name` (any case); the last one when several are.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.names
            .get(&name.to_lowercase())
            .and_then(|all| all.last())
            .and_then(|&i| self.stages.get(i))
    }

    /// What a (final, expanded) FROM image of stage `current` refers to: an
    /// earlier stage with that name, or an image.
    pub fn resolve_from(&self, image: &str, current: usize) -> StageRef {
        resolve_name(&self.names, image, current)
            .unwrap_or_else(|| StageRef::Image(image.to_string()))
    }

    /// What a (final, expanded) `--from` of stage `current` refers to: an
    /// earlier stage by name or index, or an image.
    pub fn resolve_copy_from(
        &self,
        reference: &str,
        current: usize,
    ) -> Result<StageRef, StageError> {
        resolve_reference(&self.names, reference, current)
    }
}

/// Stage indices by lower-case name, ascending.
type Names = HashMap<String, Vec<usize>>;

/// The latest stage before `current` named `name`.
fn earlier(names: &Names, name: &str, current: usize) -> Option<usize> {
    names
        .get(name)?
        .iter()
        .rev()
        .find(|&&i| i < current)
        .copied()
}

fn resolve_name(names: &Names, name: &str, current: usize) -> Option<StageRef> {
    earlier(names, &name.to_lowercase(), current).map(StageRef::Stage)
}

fn resolve_reference(
    names: &Names,
    reference: &str,
    current: usize,
) -> Result<StageRef, StageError> {
    let lower = reference.to_lowercase();
    if let Some(i) = earlier(names, &lower, current) {
        return Ok(StageRef::Stage(i));
    }
    if names.contains_key(&lower) {
        return Err(StageError::ForwardReference { name: lower });
    }
    if !reference.is_empty() && reference.chars().all(|c| c.is_ascii_digit()) {
        return match reference.parse::<usize>() {
            Ok(index) if index < current => Ok(StageRef::Stage(index)),
            Ok(index) => Err(StageError::BadIndex { index, current }),
            Err(_) => Err(StageError::BadIndex {
                index: usize::MAX,
                current,
            }),
        };
    }
    Ok(StageRef::Image(reference.to_string()))
}

/// Types every instruction of `tree` and groups them into stages. `text` is
/// the source, used to point errors at the flag they are about.
pub(crate) fn build(tree: RawTree, text: &str) -> Result<Parsed, ParseError> {
    let RawTree {
        directives,
        nodes,
        warnings,
    } = tree;
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut names = Names::new();
    for node in nodes {
        let RawNode::Instruction(raw) = node else {
            continue;
        };
        let line = raw.span.start_line;
        let col = raw.col;
        let err = |kind: crate::error::ParseErrorKind| ParseError::new(line, col, kind);
        let instruction = Instruction::from_raw(&raw).map_err(|e| {
            let col = match e.culprit() {
                Some((text_at_fault, last)) => column_of(text, line, text_at_fault, last, col),
                None => col,
            };
            ParseError::new(line, col, e)
        })?;
        let step = Step { instruction, raw };
        if matches!(step.instruction, Instruction::From { .. }) {
            let stage = new_stage(step, &stages, &names).map_err(|e| err(e.into()))?;
            if let Some(name) = &stage.name {
                names.entry(name.clone()).or_default().push(stage.index);
            }
            stages.push(stage);
            continue;
        }
        match stages.last_mut() {
            Some(stage) => stage.steps.push(step),
            None if matches!(step.instruction, Instruction::Arg(_)) => global_args.push(step),
            None => {
                return Err(err(StageError::BeforeFrom {
                    instruction: step.raw.name(),
                }
                .into()))
            }
        }
    }
    check_references(&stages, &names, text)?;
    Ok(Parsed {
        directives,
        global_args,
        stages,
        warnings,
        names,
    })
}

/// The stage a FROM step starts, after `stages`.
fn new_stage(from: Step, stages: &[Stage], names: &Names) -> Result<Stage, StageError> {
    let index = stages.len();
    let Instruction::From {
        image,
        platform,
        name,
    } = &from.instruction
    else {
        return Err(StageError::BeforeFrom {
            instruction: from.raw.name(),
        });
    };
    Ok(Stage {
        index,
        name: name.clone(),
        base: resolve_name(names, image, index).unwrap_or_else(|| StageRef::Image(image.clone())),
        platform: platform.clone(),
        steps: Vec::new(),
        from,
    })
}

/// Checks the literal (variable-free) `--from` references of each stage.
fn check_references(stages: &[Stage], names: &Names, text: &str) -> Result<(), ParseError> {
    for stage in stages {
        for step in &stage.steps {
            let (needle, refs): (&str, Vec<&str>) = match &step.instruction {
                Instruction::Copy(copy) => {
                    ("--from", copy.from.iter().map(String::as_str).collect())
                }
                Instruction::Run { mounts, .. } => (
                    "from=",
                    mounts
                        .iter()
                        .filter_map(|m| match m {
                            Mount::Bind { from, .. } | Mount::Cache { from, .. } => from.as_deref(),
                            _ => None,
                        })
                        .collect(),
                ),
                _ => continue,
            };
            let line = step.raw.span.start_line;
            for reference in refs.into_iter().filter(|r| !r.contains('$')) {
                resolve_reference(names, reference, stage.index).map_err(|e| {
                    ParseError::new(line, column_of(text, line, needle, false, step.raw.col), e)
                })?;
            }
        }
    }
    Ok(())
}
