//! The expansion engine: one left-to-right pass over a word that removes
//! quotes and escapes, substitutes `$V` / `${V...}` from an [`Env`], and
//! tracks where unquoted whitespace splits the result into words.
//!
//! Recursion happens only through `${V:-word}`-style operands and is capped
//! at [`MAX_NESTING`], so hostile input gets an error, not a stack overflow.

use super::pattern::{self, Pattern};
use super::{Env, ExpandError, ExpandErrorKind};

/// How deep `${a:-${b:-...}}` may nest. Real Dockerfiles nest two or three
/// levels; each level costs a few stack frames, so this stays far from any
/// thread's stack limit.
pub const MAX_NESTING: usize = 128;

/// Longest text one expansion may produce. Substitution can multiply the
/// input (`$A$A$A...` with a long `A`); 16 MiB is far beyond any real
/// Dockerfile value and keeps memory bounded.
pub const MAX_EXPANDED_LEN: usize = 16 << 20;

/// Lexer switches used by the heredoc detector, which needs the words of a
/// line with quotes, escapes and unknown variables left in place.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Options {
    /// Keep quote characters in the result.
    pub raw_quotes: bool,
    /// Keep escape characters in the result.
    pub raw_escapes: bool,
    /// Leave references to unset variables as written.
    pub skip_unset: bool,
    /// Heredoc bodies: quotes are plain text, and the escape character only
    /// escapes `$` and itself (as in a shell heredoc).
    pub heredoc: bool,
}

/// Accumulates the word list: unquoted whitespace that came from the source
/// or from a substitution splits words; quoted or escaped text never does.
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }

    fn add_raw_char(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

pub(crate) struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    env: &'a dyn Env,
    escape: char,
    opts: Options,
    depth: usize,
}

type Out = Result<(String, Vec<String>), ExpandError>;

impl<'a> Lexer<'a> {
    pub(crate) fn new(word: &str, env: &'a dyn Env, escape: char, opts: Options) -> Self {
        Self {
            chars: word.chars().collect(),
            pos: 0,
            env,
            escape,
            opts,
            depth: 0,
        }
    }

    /// Expands the whole input: the single-word result and the word list.
    pub(crate) fn run(mut self) -> Out {
        self.until(None, self.opts.raw_escapes)
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn err(&self, kind: ExpandErrorKind) -> ExpandError {
        ExpandError {
            column: self.pos + 1,
            kind,
        }
    }

    fn check_len(&self, len: usize) -> Result<(), ExpandError> {
        if len > MAX_EXPANDED_LEN {
            return Err(self.err(ExpandErrorKind::TooLong {
                limit: MAX_EXPANDED_LEN,
            }));
        }
        Ok(())
    }

    /// Processes until `stop` (consumed) or the end of input.
    fn until(&mut self, stop: Option<char>, raw_escapes: bool) -> Out {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.err(ExpandErrorKind::TooDeep { limit: MAX_NESTING }));
        }
        let out = self.until_inner(stop, raw_escapes);
        self.depth -= 1;
        out
    }

    fn until_inner(&mut self, stop: Option<char>, raw_escapes: bool) -> Out {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            match c {
                '\'' if !self.opts.heredoc => {
                    let s = self.single_quote()?;
                    result.push_str(&s);
                    words.add_raw_string(&s);
                }
                '"' if !self.opts.heredoc => {
                    let s = self.double_quote()?;
                    result.push_str(&s);
                    words.add_raw_string(&s);
                }
                '$' => {
                    let s = self.dollar()?;
                    self.check_len(result.len() + s.len())?;
                    result.push_str(&s);
                    words.add_string(&s);
                }
                _ => {
                    self.pos += 1;
                    let escapes_next = self.peek().is_some_and(|n| n == '$' || n == self.escape);
                    if c == self.escape && self.opts.heredoc && !escapes_next {
                        // Kept literally before anything but `$` and itself.
                        words.add_raw_char(c);
                        result.push(c);
                    } else if c == self.escape {
                        if raw_escapes {
                            words.add_raw_char(c);
                            result.push(c);
                        }
                        // An escape at the very end is dropped.
                        let Some(escaped) = self.next() else { break };
                        words.add_raw_char(escaped);
                        result.push(escaped);
                    } else {
                        words.add_char(c);
                        result.push(c);
                    }
                }
            }
        }
        match stop {
            Some(stop) => Err(self.err(ExpandErrorKind::Unterminated { expected: stop })),
            None => Ok((result, words.finish())),
        }
    }

    /// Quote characters stay in the result only in raw-quotes mode.
    fn keep_quote(&self, out: &mut String, quote: char) {
        if self.opts.raw_quotes {
            out.push(quote);
        }
    }

    /// `'...'`: everything literal, no escapes.
    fn single_quote(&mut self) -> Result<String, ExpandError> {
        self.pos += 1;
        let mut out = String::new();
        self.keep_quote(&mut out, '\'');
        loop {
            match self.next() {
                None => return Err(self.err(ExpandErrorKind::Unterminated { expected: '\'' })),
                Some('\'') => {
                    self.keep_quote(&mut out, '\'');
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    /// `"..."`: `$` expands; the escape character only escapes `"`, `$` and
    /// itself, and is kept literally before anything else.
    fn double_quote(&mut self) -> Result<String, ExpandError> {
        self.pos += 1;
        let mut out = String::new();
        self.keep_quote(&mut out, '"');
        loop {
            match self.peek() {
                None => return Err(self.err(ExpandErrorKind::Unterminated { expected: '"' })),
                Some('"') => {
                    self.pos += 1;
                    self.keep_quote(&mut out, '"');
                    return Ok(out);
                }
                Some('$') => {
                    let s = self.dollar()?;
                    self.check_len(out.len() + s.len())?;
                    out.push_str(&s);
                }
                Some(mut c) => {
                    self.pos += 1;
                    if c == self.escape {
                        if self.opts.raw_escapes {
                            out.push(c);
                        }
                        match self.peek() {
                            // Loops back to report the missing quote.
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.pos += 1;
                                c = n;
                            }
                            Some(_) => {
                                if self.opts.raw_escapes {
                                    continue;
                                }
                            }
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    /// Reads a variable name: a run of digits (positional), one special
    /// parameter character, or letters, digits and `_`.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && c.is_numeric() {
                while let Some(d) = self.peek().filter(|d| d.is_numeric()) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!') {
                self.pos += 1;
                name.push(c);
                return name;
            }
            if !(c.is_alphabetic() || c.is_numeric() || c == '_') {
                break;
            }
            self.pos += 1;
            name.push(c);
        }
        name
    }

    fn lookup(&self, name: &str) -> Option<String> {
        self.env.get(name).map(str::to_string)
    }

    /// `$...` at the cursor.
    fn dollar(&mut self) -> Result<String, ExpandError> {
        let start = self.pos;
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(match self.lookup(&name) {
                Some(v) => v,
                None if self.opts.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1;
        match self.peek() {
            None => return Err(self.err(ExpandErrorKind::MissingBrace)),
            Some('{' | '}' | ':') => return Err(self.err(ExpandErrorKind::BadSubstitution)),
            Some(_) => {}
        }
        let name = self.name();
        let Some(op) = self.next() else {
            return Err(self.err(ExpandErrorKind::MissingBrace));
        };
        match op {
            '}' => Ok(match self.lookup(&name) {
                Some(v) => v,
                None if self.opts.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' => {
                let Some(op) = self.next() else {
                    return Err(self.err(ExpandErrorKind::MissingBrace));
                };
                self.modifier(&name, op, true, start)
            }
            '+' | '-' | '?' | '#' | '%' => self.modifier(&name, op, false, start),
            '/' => self.substitute(&name),
            other => Err(ExpandError {
                column: self.pos,
                kind: ExpandErrorKind::UnsupportedModifier {
                    modifier: other.to_string(),
                },
            }),
        }
    }

    /// `${name<op>word}` and `${name:<op>word}` after the operator; `start`
    /// is the position of the `$`, where a failed `?` check points.
    fn modifier(
        &mut self,
        name: &str,
        op: char,
        colon: bool,
        start: usize,
    ) -> Result<String, ExpandError> {
        let spelled = if colon {
            format!(":{op}")
        } else {
            op.to_string()
        };
        let pattern_op = op == '#' || op == '%';
        let supported = matches!(op, '+' | '-' | '?') || (pattern_op && !colon);
        if !supported {
            // Points at the operator, which was just read.
            return Err(ExpandError {
                column: self.pos,
                kind: ExpandErrorKind::UnsupportedModifier { modifier: spelled },
            });
        }
        let (word, _) = self.operand('}', pattern_op)?;
        let value = self.lookup(name);
        if self.opts.skip_unset && value.is_none() {
            return Ok(format!("${{{name}{spelled}{word}}}"));
        }
        // With a colon, an empty value counts as unset.
        let unset = match value.as_deref() {
            None => true,
            Some(v) => colon && v.is_empty(),
        };
        match op {
            '-' => Ok(if unset {
                word
            } else {
                value.unwrap_or_default()
            }),
            '+' => Ok(if unset { String::new() } else { word }),
            '?' => match value {
                Some(v) if !unset => Ok(v),
                _ => {
                    let message = if !word.is_empty() {
                        word
                    } else if value.is_none() {
                        "is not allowed to be unset".to_string()
                    } else {
                        "is not allowed to be empty".to_string()
                    };
                    Err(ExpandError {
                        column: start + 1,
                        kind: ExpandErrorKind::Required {
                            name: name.to_string(),
                            message,
                        },
                    })
                }
            },
            _ => {
                let (longest, pat) = match word.strip_prefix(op) {
                    Some(rest) => (true, rest),
                    None => (false, word.as_str()),
                };
                let pattern = Pattern::new(pat, self.escape);
                let value = value.unwrap_or_default();
                let trimmed = if op == '#' {
                    pattern::trim_prefix(&value, &pattern, longest)
                } else {
                    pattern::trim_suffix(&value, &pattern, longest)
                };
                trimmed.map_err(|_| self.err(ExpandErrorKind::TooExpensive))
            }
        }
    }

    /// `${name/pattern/replacement}` and `${name//pattern/replacement}`.
    fn substitute(&mut self, name: &str) -> Result<String, ExpandError> {
        let all = self.peek() == Some('/');
        if all {
            self.pos += 1;
        }
        let (pat, _) = self.operand('/', true)?;
        let (replacement, _) = self.operand('}', false)?;
        let value = self.lookup(name);
        let Some(value) = value else {
            if self.opts.skip_unset {
                let slashes = if all { "//" } else { "/" };
                return Ok(format!("${{{name}{slashes}{pat}/{replacement}}}"));
            }
            return Ok(String::new());
        };
        let pattern = Pattern::new(&pat, self.escape);
        pattern::replace(&value, &pattern, &replacement, all, MAX_EXPANDED_LEN)
            .map_err(|_| self.err(ExpandErrorKind::TooExpensive))
    }

    /// Reads an operand up to `stop`, reporting a missing `}` when the input
    /// ends first.
    fn operand(&mut self, stop: char, raw_escapes: bool) -> Out {
        match self.until(Some(stop), raw_escapes) {
            Err(e)
                if matches!(e.kind, ExpandErrorKind::Unterminated { .. })
                    && self.peek().is_none() =>
            {
                Err(self.err(if stop == '}' {
                    ExpandErrorKind::MissingBrace
                } else {
                    ExpandErrorKind::MissingSlash
                }))
            }
            other => other,
        }
    }
}
