//! Shell glob patterns for `${V#p}`, `${V%p}` and `${V/p/r}`: `*`, `?`,
//! `[...]` classes (with `!` or `^` to negate, and ranges) and escaped
//! literals.
//!
//! Matching simulates the pattern as a small automaton over the set of
//! pattern positions, so a match costs O(value × pattern) with no
//! backtracking blow-up. Replacement tries every start position, which is
//! quadratic; a step budget turns pathological cases into an error instead of
//! a hang.

/// How many automaton steps one expansion may spend on pattern matching.
/// Real Dockerfiles use a few hundred; this allows values of several
/// kilobytes against any pattern while keeping the worst case well under a
/// second.
const STEP_BUDGET: u64 = 50_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    Any,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    fn matches(&self, c: char) -> bool {
        match self {
            Token::Literal(l) => *l == c,
            Token::Any => true,
            Token::Star => false,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
        }
    }
}

/// The budget ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooExpensive;

/// A compiled glob pattern.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    /// Compiles `text`; `escape` makes the next character literal. A `[`
    /// without a closing `]` is a literal `[`, as in the shell.
    pub(crate) fn new(text: &str, escape: char) -> Self {
        let chars: Vec<char> = text.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match c {
                '*' => {
                    // Consecutive stars are one star.
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                }
                '?' => tokens.push(Token::Any),
                '[' => match parse_class(&chars[i..], escape) {
                    Some((token, used)) => {
                        tokens.push(token);
                        i += used;
                    }
                    None => tokens.push(Token::Literal('[')),
                },
                c if c == escape => match chars.get(i) {
                    Some(&next) => {
                        tokens.push(Token::Literal(next));
                        i += 1;
                    }
                    None => tokens.push(Token::Literal(c)),
                },
                c => tokens.push(Token::Literal(c)),
            }
        }
        Self { tokens }
    }

    fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    fn reversed(&self) -> Self {
        Self {
            tokens: self.tokens.iter().rev().cloned().collect(),
        }
    }
}

/// Parses a class after its `[`; returns the token and the characters used
/// (including the closing `]`).
fn parse_class(chars: &[char], escape: char) -> Option<(Token, usize)> {
    let mut i = 0;
    let negated = matches!(chars.first(), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let mut c = *chars.get(i)?;
        i += 1;
        // A `]` right after `[` or `[!` is a member, not the end.
        if c == ']' && !first {
            return Some((Token::Class { negated, ranges }, i));
        }
        first = false;
        if c == escape {
            c = *chars.get(i)?;
            i += 1;
        }
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&h| h != ']') {
            let mut hi = chars[i + 1];
            i += 2;
            if hi == escape {
                hi = *chars.get(i)?;
                i += 1;
            }
            ranges.push((c, hi));
        } else {
            ranges.push((c, c));
        }
    }
}

/// The automaton run: the set of pattern positions still alive.
struct Run<'p> {
    tokens: &'p [Token],
    live: Vec<bool>,
    next: Vec<bool>,
}

impl<'p> Run<'p> {
    fn new(pattern: &'p Pattern) -> Self {
        let n = pattern.tokens.len() + 1;
        let mut run = Self {
            tokens: &pattern.tokens,
            live: vec![false; n],
            next: vec![false; n],
        };
        run.live[0] = true;
        close(run.tokens, &mut run.live);
        run
    }

    fn accepting(&self) -> bool {
        self.live[self.tokens.len()]
    }

    /// Consumes `c`; returns false when no position is alive any more.
    fn step(&mut self, c: char, budget: &mut u64) -> Result<bool, TooExpensive> {
        *budget = budget
            .checked_sub(self.live.len() as u64)
            .ok_or(TooExpensive)?;
        self.next.iter_mut().for_each(|b| *b = false);
        let mut any = false;
        for (i, token) in self.tokens.iter().enumerate() {
            if !self.live[i] {
                continue;
            }
            if *token == Token::Star {
                self.next[i] = true;
                any = true;
            } else if token.matches(c) {
                self.next[i + 1] = true;
                any = true;
            }
        }
        std::mem::swap(&mut self.live, &mut self.next);
        close(self.tokens, &mut self.live);
        Ok(any)
    }
}

/// A star may match nothing: a live star also makes the position after it live.
fn close(tokens: &[Token], live: &mut [bool]) {
    for i in 0..tokens.len() {
        if live[i] && tokens[i] == Token::Star {
            live[i + 1] = true;
        }
    }
}

/// Lengths (in chars) of the shortest and longest prefixes of `chars`
/// matched by `pattern`.
fn prefix_matches(
    pattern: &Pattern,
    chars: impl Iterator<Item = char>,
    longest: bool,
    budget: &mut u64,
) -> Result<Option<usize>, TooExpensive> {
    let mut run = Run::new(pattern);
    let mut found = run.accepting().then_some(0);
    if found.is_some() && !longest {
        return Ok(found);
    }
    for (i, c) in chars.enumerate() {
        if !run.step(c, budget)? {
            break;
        }
        if run.accepting() {
            found = Some(i + 1);
            if !longest {
                break;
            }
        }
    }
    Ok(found)
}

/// `${V#p}` (shortest) and `${V##p}` (longest): removes a matching prefix.
pub(crate) fn trim_prefix(
    value: &str,
    pattern: &Pattern,
    longest: bool,
) -> Result<String, TooExpensive> {
    let mut budget = STEP_BUDGET;
    Ok(
        match prefix_matches(pattern, value.chars(), longest, &mut budget)? {
            Some(n) => value.chars().skip(n).collect(),
            None => value.to_string(),
        },
    )
}

/// `${V%p}` (shortest) and `${V%%p}` (longest): removes a matching suffix.
/// A suffix match is a prefix match of the reversed pattern on the reversed
/// value, since every token matches one character or a run of them.
pub(crate) fn trim_suffix(
    value: &str,
    pattern: &Pattern,
    longest: bool,
) -> Result<String, TooExpensive> {
    let mut budget = STEP_BUDGET;
    let reversed = pattern.reversed();
    Ok(
        match prefix_matches(&reversed, value.chars().rev(), longest, &mut budget)? {
            Some(n) => {
                let keep = value.chars().count() - n;
                value.chars().take(keep).collect()
            }
            None => value.to_string(),
        },
    )
}

/// `${V/p/r}` and `${V//p/r}`: replaces the first (or every) longest,
/// non-empty match of `pattern` with `replacement`. A result longer than
/// `max_len` bytes is refused too.
pub(crate) fn replace(
    value: &str,
    pattern: &Pattern,
    replacement: &str,
    all: bool,
    max_len: usize,
) -> Result<String, TooExpensive> {
    if pattern.is_empty() {
        return Ok(value.to_string());
    }
    let chars: Vec<char> = value.chars().collect();
    let mut budget = STEP_BUDGET;
    let mut out = String::with_capacity(value.len());
    let mut start = 0;
    let mut replaced = false;
    while start < chars.len() {
        if replaced && !all {
            break;
        }
        let longest = prefix_matches(pattern, chars[start..].iter().copied(), true, &mut budget)?;
        match longest {
            Some(len) if len > 0 => {
                if out.len() + replacement.len() > max_len {
                    return Err(TooExpensive);
                }
                out.push_str(replacement);
                start += len;
                replaced = true;
            }
            _ => {
                out.push(chars[start]);
                start += 1;
            }
        }
    }
    out.extend(&chars[start..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::new(s, '\\')
    }

    #[test]
    fn prefix_and_suffix_table() {
        let cases = [
            ("a/b/c", "*/", false, true, "b/c"),
            ("a/b/c", "*/", true, true, "c"),
            ("a/b/c", "/*", false, false, "a/b"),
            ("a/b/c", "/*", true, false, "a"),
            ("file.tar.gz", ".*", false, false, "file.tar"),
            ("file.tar.gz", ".*", true, false, "file"),
            ("abc", "x", false, true, "abc"),
            ("abc", "[ab]", false, true, "bc"),
            ("abc", "[!b]?", false, true, "c"),
            ("a*c", "a\\*", false, true, "c"),
            ("linux/amd64", "*/", true, true, "amd64"),
        ];
        for (value, pat, longest, prefix, want) in cases {
            let got = if prefix {
                trim_prefix(value, &p(pat), longest)
            } else {
                trim_suffix(value, &p(pat), longest)
            };
            assert_eq!(
                got,
                Ok(want.to_string()),
                "{value} {pat} {longest} {prefix}"
            );
        }
    }

    #[test]
    fn replace_table() {
        let cases = [
            ("aXbXc", "X", "-", false, "a-bXc"),
            ("aXbXc", "X", "-", true, "a-b-c"),
            ("abc", "*", "z", true, "z"),
            ("abc", "", "z", true, "abc"),
            ("hello", "l*", "L", false, "heL"),
            ("a.b.c", "[.]", "/", true, "a/b/c"),
        ];
        for (value, pat, rep, all, want) in cases {
            assert_eq!(
                replace(value, &p(pat), rep, all, usize::MAX),
                Ok(want.to_string())
            );
        }
    }

    #[test]
    fn unclosed_class_is_literal() {
        assert_eq!(trim_prefix("[ab", &p("[a"), false), Ok("b".to_string()));
    }

    #[test]
    fn budget_stops_pathological_replace() {
        let value = "a".repeat(20_000);
        let pattern = p(&format!("{}b", "*a".repeat(50)));
        assert_eq!(
            replace(&value, &pattern, "x", true, usize::MAX),
            Err(TooExpensive)
        );
    }

    #[test]
    fn replace_output_is_capped() {
        let value = "a".repeat(1000);
        let pattern = Pattern::new("a", '\\');
        assert_eq!(
            replace(&value, &pattern, "bbbb", true, 1000),
            Err(TooExpensive)
        );
    }
}
