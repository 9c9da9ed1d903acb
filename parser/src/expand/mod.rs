//! Variable expansion as Docker does it for the arguments of shell-less
//! instructions (COPY, ENV, WORKDIR, ...): quote and escape removal, `$V`,
//! `${V}`, `${V:-w}`, `${V-w}`, `${V:+w}`, `${V+w}`, `${V:?msg}`, `${V?msg}`,
//! `${V#p}`, `${V##p}`, `${V%p}`, `${V%%p}`, `${V/p/r}`, `${V//p/r}`.
//!
//! Values come from an [`Env`] the caller passes in, never from the process
//! environment. [`expand_word`] gives one string (what ENV values and WORKDIR
//! use); [`expand_words`] also splits on unquoted whitespace, including
//! whitespace that a substitution brought in (what Docker does for words
//! lists). Unset variables expand to nothing; positional and special
//! parameters (`$1`, `$@`, `$$`, ...) are never set.

mod lexer;
mod pattern;

use std::collections::{BTreeMap, HashMap};

use thiserror::Error;

pub(crate) use lexer::Options;
pub use lexer::{MAX_EXPANDED_LEN, MAX_NESTING};

/// Where variable values come from.
pub trait Env {
    /// The value of `name`, or `None` when it is unset. An empty value is set.
    fn get(&self, name: &str) -> Option<&str>;
}

impl Env for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name).map(String::as_str)
    }
}

impl Env for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

/// Ordered pairs; the first pair with a name wins.
impl Env for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Ordered pairs; the first pair with a name wins.
impl<const N: usize> Env for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }
}

/// An environment with nothing set.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyEnv;

impl Env for EmptyEnv {
    fn get(&self, _name: &str) -> Option<&str> {
        None
    }
}

/// Why an expansion failed and at which character of the word.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("column {column}: {}", crate::error::clip(&kind.to_string()))]
pub struct ExpandError {
    /// 1-based character column within the expanded word.
    pub column: usize,
    /// What went wrong.
    pub kind: ExpandErrorKind,
}

/// The causes of an [`ExpandError`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExpandErrorKind {
    /// A quote or `${...}` operand was not closed.
    #[error("unexpected end of statement while looking for matching {expected}")]
    Unterminated {
        /// The character that was expected.
        expected: char,
    },
    /// `${` without its `}`.
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    /// `${V/pattern` without the `/` before the replacement.
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    /// `${}`, `${:...}`, `${{...}`.
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    /// `${V:=w}` and other operators Docker does not support.
    #[error("unsupported modifier ({modifier}) in substitution")]
    UnsupportedModifier {
        /// The operator as written.
        modifier: String,
    },
    /// `${V?msg}` / `${V:?msg}` with `V` unset (or empty).
    #[error("{name}: {message}")]
    Required {
        /// The variable.
        name: String,
        /// The message given, or Docker's default.
        message: String,
    },
    /// Nested `${...}` deeper than [`MAX_NESTING`].
    #[error("variable substitutions nested deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// A `#`, `%` or `/` pattern needed too much work to match.
    #[error("pattern matching in substitution is too expensive")]
    TooExpensive,
    /// The result grew past [`MAX_EXPANDED_LEN`] bytes.
    #[error("expanded text longer than {limit} bytes")]
    TooLong {
        /// The limit.
        limit: usize,
    },
}

/// Expands `word` into one string with escape character `escape`.
///
/// ```
/// use std::collections::HashMap;
/// let env = HashMap::from([("DIR".to_string(), "/srv".to_string())]);
/// assert_eq!(
///     strata_parser::expand_word("\"${DIR}/a b\"", &env, '\\').unwrap(),
///     "/srv/a b"
/// );
/// ```
pub fn expand_word(word: &str, env: &dyn Env, escape: char) -> Result<String, ExpandError> {
    lexer::Lexer::new(word, env, escape, Options::default())
        .run()
        .map(|(word, _)| word)
}

/// Expands `word` and splits the result into words on unquoted whitespace.
///
/// ```
/// let env = [("V", "a b")];
/// assert_eq!(
///     strata_parser::expand_words("x${V} \"${V}\"", &env, '\\').unwrap(),
///     ["xa", "b", "a b"]
/// );
/// ```
pub fn expand_words(word: &str, env: &dyn Env, escape: char) -> Result<Vec<String>, ExpandError> {
    lexer::Lexer::new(word, env, escape, Options::default())
        .run()
        .map(|(_, words)| words)
}

/// Splits `line` into words with quotes, escapes and unset variables kept as
/// written; used to find heredoc markers. Fails when the line does not lex
/// (an unclosed quote, substitutions nested too deep).
pub(crate) fn raw_words(line: &str) -> Result<Vec<String>, ExpandError> {
    let opts = Options {
        raw_quotes: true,
        raw_escapes: true,
        skip_unset: true,
        heredoc: false,
    };
    lexer::Lexer::new(line, &EmptyEnv, '\\', opts)
        .run()
        .map(|(_, words)| words)
}

/// Substitutes variables in a heredoc body: quotes stay as they are, and the
/// escape character only escapes `$` and itself.
pub(crate) fn expand_heredoc(
    body: &str,
    env: &dyn Env,
    escape: char,
) -> Result<String, ExpandError> {
    let opts = Options {
        heredoc: true,
        ..Options::default()
    };
    lexer::Lexer::new(body, env, escape, opts)
        .run()
        .map(|(text, _)| text)
}

/// Expands `word` with quote removal only (no variables known, unset ones
/// kept as written); used to read a heredoc delimiter.
pub(crate) fn unquote_words(word: &str, raw_quotes: bool) -> Result<Vec<String>, ExpandError> {
    let opts = Options {
        raw_quotes,
        raw_escapes: false,
        skip_unset: true,
        heredoc: false,
    };
    lexer::Lexer::new(word, &EmptyEnv, '\\', opts)
        .run()
        .map(|(_, words)| words)
}

#[cfg(test)]
mod tests;
