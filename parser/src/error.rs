//! Positions, the top-level [`ParseError`], warnings, and the renderer that
//! shows an error with its source line and a caret.
//!
//! Every stage of the parser (raw tree, typed instructions, stages) has its own
//! error enum; [`ParseError`] wraps whichever one fired together with the
//! 1-based line and column it points at, so callers get one `line:col: message`
//! value whatever went wrong.

use std::fmt;

use thiserror::Error;

use crate::instructions::InstructionError;
use crate::raw::RawError;
use crate::stages::StageError;

/// An inclusive range of 1-based physical lines an instruction came from
/// (a continued instruction or one with heredocs spans several).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    /// First line of the instruction (its keyword).
    pub start_line: usize,
    /// Last line, including continuation lines and heredoc bodies.
    pub end_line: usize,
}

/// Why parsing failed, and where. `Display` gives `line:col: message`;
/// [`ParseError::render`] adds the source line and a caret.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{line}:{col}: {}", clip(&kind.to_string()))]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub col: usize,
    /// What went wrong.
    pub kind: ParseErrorKind,
}

/// The stage-specific cause of a [`ParseError`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseErrorKind {
    /// The input bytes are not UTF-8; `offset` is the byte offset of the
    /// first bad byte in the whole input.
    #[error("invalid UTF-8 at byte offset {offset}")]
    InvalidUtf8 {
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// The input holds a NUL byte (text never does); `offset` is the byte
    /// offset of the first.
    #[error("NUL byte at byte offset {offset}: a Dockerfile is text")]
    NulByte {
        /// Byte offset of the first NUL.
        offset: usize,
    },
    /// Building the raw syntax tree failed.
    #[error(transparent)]
    Raw(#[from] RawError),
    /// An instruction is malformed.
    #[error(transparent)]
    Instruction(#[from] InstructionError),
    /// The stage structure is wrong (duplicate names, instructions before FROM).
    #[error(transparent)]
    Stage(#[from] StageError),
}

impl ParseError {
    /// An error at `line:col`.
    pub fn new(line: usize, col: usize, kind: impl Into<ParseErrorKind>) -> Self {
        Self {
            line,
            col,
            kind: kind.into(),
        }
    }

    /// `line:col: message`, then the offending source line and a caret under
    /// the column. `source` must be the text that was parsed; if the line is
    /// not in it (or the error has no line), only the first line is returned.
    pub fn render(&self, source: &str) -> String {
        render_at(self.line, self.col, &self.to_string(), source)
    }
}

/// Longest message shown in full; messages quote user text, which may be a
/// whole 1 MiB line.
const MAX_MESSAGE: usize = 400;

/// Shortens `text` past [`MAX_MESSAGE`] characters, keeping its start and
/// its end (where messages say what was expected).
pub(crate) fn clip(text: &str) -> String {
    let count = text.chars().count();
    if count <= MAX_MESSAGE {
        return text.to_string();
    }
    let head: String = text.chars().take(MAX_MESSAGE / 2).collect();
    let tail: String = text.chars().skip(count - MAX_MESSAGE / 4).collect();
    format!("{head} … {tail}")
}

/// The 1-based column of `needle` on line `line` of `text`, or `fallback`
/// when it is not on that line. An occurrence standing as its own word
/// (blank or line start before it; blank, `=` or line end after it) is
/// preferred over one inside a longer word; `last` picks the last one.
pub(crate) fn column_of(
    text: &str,
    line: usize,
    needle: &str,
    last: bool,
    fallback: usize,
) -> usize {
    let Some(src) = line.checked_sub(1).and_then(|i| text.split('\n').nth(i)) else {
        return fallback;
    };
    if needle.is_empty() {
        return fallback;
    }
    let standalone = |&(at, _): &(usize, &str)| {
        let before = src[..at].chars().next_back();
        let after = src[at + needle.len()..].chars().next();
        before.is_none_or(char::is_whitespace)
            && after.is_none_or(|c| c.is_whitespace() || c == '=')
    };
    let mut hits = src.match_indices(needle);
    let found = if last {
        src.rmatch_indices(needle)
            .find(standalone)
            .or_else(|| src.rmatch_indices(needle).next())
    } else {
        hits.clone().find(standalone).or_else(|| hits.next())
    };
    found.map_or(fallback, |(at, _)| src[..at].chars().count() + 1)
}

/// Renders `message` followed by line `line` of `source` and a caret at `col`.
/// Shared by errors and warnings so both look the same.
pub(crate) fn render_at(line: usize, col: usize, message: &str, source: &str) -> String {
    let mut out = String::from(message);
    let Some(text) = line
        .checked_sub(1)
        .and_then(|idx| source.split('\n').nth(idx))
    else {
        return out;
    };
    let text = text.strip_suffix('\r').unwrap_or(text);
    // Long lines are cut so a 1 MiB line does not become a 1 MiB message.
    const MAX_SHOWN: usize = 200;
    let shown: String = text.chars().take(MAX_SHOWN).collect();
    let cut = if text.chars().nth(MAX_SHOWN).is_some() {
        "…"
    } else {
        ""
    };
    let gutter = line.to_string();
    let pad = " ".repeat(gutter.len());
    // Keep tabs in the caret line so the caret lines up under tab-indented text.
    let caret_pad: String = shown
        .chars()
        .take(col.saturating_sub(1))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    out.push_str(&format!(
        "\n{pad} |\n{gutter} | {}{cut}\n{pad} | {caret_pad}^",
        printable(&shown)
    ));
    out
}

/// Replaces control characters (NUL and friends) so rendering never writes
/// raw control bytes to a terminal.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                char::REPLACEMENT_CHARACTER
            } else {
                c
            }
        })
        .collect()
}

/// Something worth telling the user that does not stop the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// 1-based line the warning is about.
    pub line: usize,
    /// What it is.
    pub kind: WarningKind,
}

/// The kinds of [`Warning`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarningKind {
    /// An instruction was continued over an empty line (the warning's line).
    /// Docker accepts this but has deprecated it.
    EmptyContinuationLine {
        /// The joined instruction text.
        instruction: String,
    },
    /// The arguments started with `[` but were not a valid JSON array, so
    /// they were taken as shell form.
    JsonFallback {
        /// The instruction keyword.
        instruction: String,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.line)?;
        match &self.kind {
            WarningKind::EmptyContinuationLine { instruction } => write!(
                f,
                "empty continuation line in: {} (empty continuation lines will become errors in a future release)",
                clip(instruction)
            ),
            WarningKind::JsonFallback { instruction } => write!(
                f,
                "{instruction} arguments look like JSON but are not valid JSON: taken as shell form"
            ),
        }
    }
}

impl Warning {
    /// The warning, then its source line and a caret at the line start.
    pub fn render(&self, source: &str) -> String {
        render_at(self.line, 1, &self.to_string(), source)
    }
}
