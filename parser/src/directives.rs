//! Parser directives: `# syntax=`, `# escape=` and `# check=` comments.
//!
//! Directives are only recognised at the very top of the file. The first line
//! that is not a directive (an instruction, a blank line, any other comment, or
//! an unknown directive name) ends the directive section for good, exactly as
//! Docker does. Each directive may appear once.

use thiserror::Error;

/// Errors raised while reading directives.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DirectiveError {
    /// A directive was given twice.
    #[error("only one {name} parser directive can be used")]
    Duplicate {
        /// Directive name, lower case.
        name: String,
    },
    /// `# escape=` named something other than `\` or `` ` ``.
    #[error("invalid escape token '{found}' does not match ` or \\")]
    InvalidEscape {
        /// The value given.
        found: String,
    },
}

/// The directives found at the top of a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// `# syntax=` value (a frontend image reference), if any.
    pub syntax: Option<String>,
    /// The escape character: `\` unless `# escape=` chose `` ` ``.
    pub escape: char,
    /// `# check=` value (lint configuration), if any.
    pub check: Option<String>,
    /// Whether the directive section is over.
    done: bool,
    /// Whether `# escape=` was given (`escape` itself always has a value).
    escape_seen: bool,
}

impl Default for Directives {
    fn default() -> Self {
        Self {
            syntax: None,
            escape: '\\',
            check: None,
            done: false,
            escape_seen: false,
        }
    }
}

/// One directive recognised on a line, for the raw tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// 1-based line.
    pub line: usize,
    /// Name, lower case (`syntax`, `escape`, `check`).
    pub name: String,
    /// Value, trimmed.
    pub value: String,
}

/// Go's `\s` in regular expressions: ASCII space, tab, newline, form feed,
/// carriage return (not vertical tab).
fn is_re_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0c' | '\r')
}

/// Splits `#  name = value ` into (name, value) when the line has that shape.
pub(crate) fn match_directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start_matches(is_re_space);
    let name_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let (name, rest) = rest.split_at(name_len);
    let after_eq = rest.trim_start_matches(is_re_space).strip_prefix('=')?;
    if after_eq.is_empty() {
        return None;
    }
    let value = after_eq.trim_matches(is_re_space);
    // The value needs at least one character; an all-blank value keeps its
    // first blank, which then fails validation like Docker's does.
    let value = if value.is_empty() {
        &after_eq[..1]
    } else {
        value
    };
    Some((name, value))
}

impl Directives {
    /// Looks at one physical line (newline removed). Returns the directive if
    /// the line is one; once a line is not a directive, never looks again.
    pub(crate) fn observe(
        &mut self,
        line: &str,
        line_no: usize,
    ) -> Result<Option<Directive>, DirectiveError> {
        if self.done {
            return Ok(None);
        }
        let Some((name, value)) = match_directive(line) else {
            self.done = true;
            return Ok(None);
        };
        let name = name.to_ascii_lowercase();
        let slot_taken = match name.as_str() {
            "escape" => self.escape_seen,
            "syntax" => self.syntax.is_some(),
            "check" => self.check.is_some(),
            _ => {
                self.done = true;
                return Ok(None);
            }
        };
        if slot_taken {
            return Err(DirectiveError::Duplicate { name });
        }
        match name.as_str() {
            "escape" => {
                self.escape = match value {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(DirectiveError::InvalidEscape {
                            found: value.to_string(),
                        })
                    }
                };
                self.escape_seen = true;
            }
            "syntax" => self.syntax = Some(value.to_string()),
            _ => self.check = Some(value.to_string()),
        }
        Ok(Some(Directive {
            line: line_no,
            name,
            value: value.to_string(),
        }))
    }
}
