//! Stage one: the raw syntax tree.
//!
//! Turns Dockerfile text into a list of nodes (directives, comments, blank
//! lines, instructions) without expanding variables or validating
//! instructions. It follows Docker's raw parser line for line: the escape
//! character at the end of a line continues the instruction, even across
//! comment and blank lines; leading whitespace is stripped from the first
//! line only; `--flags` are split off; the arguments are shaped per
//! instruction (see the `args` module); RUN, COPY and ADD (also under ONBUILD) read
//! heredoc bodies after their line.

mod args;
mod heredoc;
mod json;

use thiserror::Error;

use crate::directives::{Directive, DirectiveError, Directives};
use crate::error::{column_of, ParseError, Span, Warning, WarningKind};
use crate::expand::ExpandError;

pub use heredoc::Heredoc;

/// How many ONBUILD levels the raw parser nests before giving up. Docker
/// itself rejects `ONBUILD ONBUILD` later; the cap keeps a line of 100,000
/// ONBUILD words from recursing 100,000 deep.
const MAX_ONBUILD_DEPTH: usize = 8;

/// Errors raised while building the raw tree.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RawError {
    /// A bad parser directive.
    #[error(transparent)]
    Directive(#[from] DirectiveError),
    /// No instruction at all (empty file, only comments).
    #[error("file with no instructions")]
    NoInstructions,
    /// A heredoc body ran to the end of the file.
    #[error("unterminated heredoc {name:?}: no line {name:?} before the end of the file")]
    UnterminatedHeredoc {
        /// The delimiter that never came.
        name: String,
    },
    /// The heredoc delimiter could not be read.
    #[error("invalid heredoc delimiter {word:?}: {source}")]
    HeredocName {
        /// The marker word.
        word: String,
        /// The lexing problem.
        source: ExpandError,
    },
    /// JSON form with something other than strings in the array.
    #[error(
        "{instruction}: when using JSON array syntax, arrays must be comprised of strings only"
    )]
    NotStringArray {
        /// The instruction keyword.
        instruction: String,
    },
    /// `ENV key` with no value.
    #[error("{instruction} must have two arguments")]
    MissingValue {
        /// ENV or LABEL.
        instruction: String,
    },
    /// `ENV a=1 b` mixes the two forms.
    #[error("Syntax error - can't find = in {word:?}. Must be of the form: name=value")]
    MissingEquals {
        /// ENV or LABEL.
        instruction: String,
        /// The word without `=`.
        word: String,
    },
    /// `ENV =value`.
    #[error("{instruction} names can not be blank")]
    BlankName {
        /// ENV or LABEL.
        instruction: String,
    },
    /// ONBUILD nested too deep.
    #[error("ONBUILD nested more than {limit} levels deep")]
    OnbuildTooDeep {
        /// The limit.
        limit: usize,
    },
}

/// One instruction as written, before typing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawInstruction {
    /// The keyword with its original case (`copy`, `COPY`).
    pub keyword: String,
    /// `--flags` as written before the arguments, quotes removed.
    pub flags: Vec<String>,
    /// The arguments, shaped per instruction (see the crate docs).
    pub args: Vec<String>,
    /// Whether the arguments were given in JSON (exec) form.
    pub json: bool,
    /// ONBUILD's instruction.
    pub onbuild: Option<Box<RawInstruction>>,
    /// Heredocs read after the line (RUN, COPY, ADD).
    pub heredocs: Vec<Heredoc>,
    /// Lines the instruction covers.
    pub span: Span,
    /// 1-based column of the keyword on its first line.
    pub col: usize,
    /// The logical line: continuation lines joined, comments dropped.
    pub original: String,
    /// The arguments began with `[` but were not JSON (shell form was used).
    json_fallback: bool,
}

impl RawInstruction {
    /// The keyword in upper case, as used in messages.
    pub fn name(&self) -> String {
        self.keyword.to_ascii_uppercase()
    }
}

/// A node of the raw tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawNode {
    /// A parser directive at the top of the file.
    Directive(Directive),
    /// A comment line (outside an instruction), text after `#` trimmed.
    Comment {
        /// 1-based line.
        line: usize,
        /// The text.
        text: String,
    },
    /// An empty or all-blank line outside an instruction.
    Blank {
        /// 1-based line.
        line: usize,
    },
    /// An instruction.
    Instruction(RawInstruction),
}

/// The raw syntax tree of a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawTree {
    /// Directives found at the top.
    pub directives: Directives,
    /// Every node in source order.
    pub nodes: Vec<RawNode>,
    /// Warnings found while reading.
    pub warnings: Vec<Warning>,
}

impl RawTree {
    /// The instructions, in order.
    pub fn instructions(&self) -> impl Iterator<Item = &RawInstruction> {
        self.nodes.iter().filter_map(|n| match n {
            RawNode::Instruction(i) => Some(i),
            _ => None,
        })
    }
}

/// The physical line without its line terminator(s).
fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    trim_newline(line).trim_start().starts_with('#')
}

/// Removes a trailing escape character (plus blanks after it) that continues
/// the line. An escape preceded by another escape is not a continuation.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    let Some(before) = body.strip_suffix(escape) else {
        return (line, true);
    };
    if before.ends_with(escape) {
        return (line, true);
    }
    (before, false)
}

pub(crate) use heredoc::join_split_markers;

/// Whether `word` is a heredoc marker such as `<<EOF` or `<<-"EOF"`.
pub(crate) fn is_heredoc_marker(word: &str) -> bool {
    matches!(heredoc::marker(word), Ok(Some(_)))
}

/// Builds the raw tree of `text`.
pub fn parse_raw(text: &str) -> Result<RawTree, ParseError> {
    Builder::new(text).run()
}

struct Builder<'t> {
    text: &'t str,
    lines: std::iter::Peekable<std::str::SplitInclusive<'t, char>>,
    line_no: usize,
    directives: Directives,
    nodes: Vec<RawNode>,
    warnings: Vec<Warning>,
}

impl<'t> Builder<'t> {
    fn new(text: &'t str) -> Self {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        Self {
            text,
            lines: text.split_inclusive('\n').peekable(),
            line_no: 0,
            directives: Directives::default(),
            nodes: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Feeds one physical line to the directive detector.
    fn directive(&mut self, token: &str, col: usize) -> Result<Option<Directive>, ParseError> {
        self.directives
            .observe(token, self.line_no + 1)
            .map_err(|e| ParseError::new(self.line_no + 1, col, RawError::from(e)))
    }

    fn run(mut self) -> Result<RawTree, ParseError> {
        while let Some(physical) = self.lines.next() {
            let token = trim_newline(physical);
            let trimmed = token.trim_start();
            let col = token[..token.len() - trimmed.len()].chars().count() + 1;
            let directive = self.directive(trimmed, col)?;
            self.line_no += 1;
            let start = self.line_no;
            let content = if trimmed.starts_with('#') {
                ""
            } else {
                trimmed
            };
            let (first, done) = trim_continuation(content, self.directives.escape);
            if done && first.is_empty() {
                self.nodes.push(match directive {
                    Some(d) => RawNode::Directive(d),
                    None if is_comment(physical) => RawNode::Comment {
                        line: start,
                        text: trimmed[1..].trim().to_string(),
                    },
                    None => RawNode::Blank { line: start },
                });
                continue;
            }
            let line = self.continued(first, done)?;
            self.instruction(&line, start, col)?;
        }
        if !self
            .nodes
            .iter()
            .any(|n| matches!(n, RawNode::Instruction(_)))
        {
            return Err(ParseError::new(
                self.line_no.max(1),
                1,
                RawError::NoInstructions,
            ));
        }
        Ok(RawTree {
            directives: self.directives,
            nodes: self.nodes,
            warnings: self.warnings,
        })
    }

    /// The logical line starting with `first` (from line `start`): the
    /// continuation lines joined, comments inside it dropped, and a warning
    /// for empty continuation lines.
    fn continued(&mut self, first: &str, mut done: bool) -> Result<String, ParseError> {
        let escape = self.directives.escape;
        let mut line = first.to_string();
        // The first empty line the instruction was continued over.
        let mut empty_continuation = None;
        while !done {
            let Some(next) = self.lines.next() else { break };
            let token = trim_newline(next);
            self.directive(token, 1)?;
            self.line_no += 1;
            if is_comment(next) {
                continue;
            }
            if token.trim_start().is_empty() {
                empty_continuation = empty_continuation.or(Some(self.line_no));
                continue;
            }
            let (part, end) = trim_continuation(token, escape);
            line.push_str(part);
            done = end;
        }
        if let Some(at) = empty_continuation {
            self.warnings.push(Warning {
                line: at,
                kind: WarningKind::EmptyContinuationLine {
                    instruction: line.clone(),
                },
            });
        }
        Ok(line)
    }

    /// The instruction of a logical line, with its heredocs read.
    fn instruction(&mut self, line: &str, start: usize, col: usize) -> Result<(), ParseError> {
        let text = self.text;
        let at = |kind: RawError| {
            // Point at the word without `=` when that is the problem.
            let col = match &kind {
                RawError::MissingEquals { word, .. } => column_of(text, start, word, false, col),
                _ => col,
            };
            ParseError::new(start, col, kind)
        };
        let mut inst = node_from_line(line, self.directives.escape, 0).map_err(at)?;
        inst.col = col;
        if inst.json_fallback_any() {
            self.warnings.push(Warning {
                line: start,
                kind: WarningKind::JsonFallback {
                    instruction: inst.name(),
                },
            });
        }
        self.read_heredocs(&mut inst, line).map_err(at)?;
        inst.span = Span {
            start_line: start,
            end_line: self.line_no,
        };
        self.nodes.push(RawNode::Instruction(inst));
        Ok(())
    }

    /// Reads the bodies of the heredocs marked on `line`, if the instruction
    /// takes heredocs (RUN, COPY, ADD, also under ONBUILD; not JSON form).
    fn read_heredocs(&mut self, inst: &mut RawInstruction, line: &str) -> Result<(), RawError> {
        let target = match inst.onbuild.as_deref_mut() {
            Some(sub) if inst.keyword.eq_ignore_ascii_case("onbuild") => sub,
            _ => inst,
        };
        let takes = ["run", "copy", "add"]
            .iter()
            .any(|k| target.keyword.eq_ignore_ascii_case(k));
        if !takes || target.json {
            return Ok(());
        }
        for mut doc in heredoc::markers(line)? {
            let mut terminated = false;
            for physical in self.lines.by_ref() {
                self.line_no += 1;
                let mut candidate = trim_newline(physical);
                if doc.chomp {
                    candidate = candidate.trim_start_matches('\t');
                }
                if candidate == doc.name {
                    terminated = true;
                    break;
                }
                doc.content.push_str(physical);
            }
            if !terminated {
                return Err(RawError::UnterminatedHeredoc { name: doc.name });
            }
            target.heredocs.push(doc);
        }
        Ok(())
    }
}

impl RawInstruction {
    fn json_fallback_any(&self) -> bool {
        self.json_fallback || self.onbuild.as_ref().is_some_and(|s| s.json_fallback_any())
    }
}

/// Splits a logical line into keyword, flags and shaped arguments.
fn node_from_line(line: &str, escape: char, depth: usize) -> Result<RawInstruction, RawError> {
    let (keyword, flags, rest) = args::split_command(line);
    let lower = keyword.to_ascii_lowercase();
    let mut inst = RawInstruction {
        keyword: keyword.to_string(),
        flags,
        args: Vec::new(),
        json: false,
        onbuild: None,
        heredocs: Vec::new(),
        span: Span {
            start_line: 0,
            end_line: 0,
        },
        col: 1,
        original: line.to_string(),
        json_fallback: false,
    };
    if lower == "onbuild" {
        if !rest.is_empty() {
            if depth >= MAX_ONBUILD_DEPTH {
                return Err(RawError::OnbuildTooDeep {
                    limit: MAX_ONBUILD_DEPTH,
                });
            }
            inst.onbuild = Some(Box::new(node_from_line(rest, escape, depth + 1)?));
        }
        return Ok(inst);
    }
    let shaped = args::shape(&lower, rest, escape)?;
    inst.args = shaped.args;
    inst.json = shaped.json;
    inst.json_fallback = shaped.json_fallback;
    Ok(inst)
}

#[cfg(test)]
mod tests;
