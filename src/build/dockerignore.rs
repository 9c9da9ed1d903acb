//! `.dockerignore` rules and the path globs of COPY/ADD, as Docker reads them.
//!
//! Pure: text in, decisions out. An ignore file is read line by line: a line
//! whose first byte is `#` is a comment, surrounding white space is trimmed,
//! blank lines are skipped, a leading `!` makes the pattern an exception, and
//! the rest is cleaned like Go's `filepath.Clean` with a leading `/` dropped
//! (patterns are always relative to the context root).
//!
//! A pattern uses Go's `filepath.Match` syntax (`*` and `?` never cross a
//! `/`, `[a-z]` / `[^a-z]` classes, `\` escapes the next character) plus
//! `**`, which matches any number of directories, zero included. A path is
//! excluded when the last pattern that matches it, or matches one of its
//! parent directories, is not an exception. These are the semantics of
//! moby's `patternmatcher` (`MatchesOrParentMatches`), including its fast
//! paths: a pattern with no wildcard compares literally, `prefix**` is a
//! prefix test and `**suffix` a suffix test. One departure: a pattern with
//! a `\` escape is always matched as a pattern (Docker's literal fast path
//! compares the backslash itself, so `\*.txt` could never match `*.txt`).
//!
//! [`Glob`] is plain `filepath.Match` for one path component, used for the
//! wildcards in COPY/ADD sources.

use std::fmt;

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    #[error("{}syntax error in pattern {pattern:?}: {reason}", line_prefix(*.line))]
    BadPattern {
        /// 1-based line in the ignore file, when the pattern came from one.
        line: Option<usize>,
        pattern: String,
        reason: &'static str,
    },
    #[error("{}illegal exclusion pattern: \"!\"", line_prefix(*.line))]
    IllegalExclusion { line: Option<usize> },
}

fn line_prefix(line: Option<usize>) -> String {
    line.map(|l| format!("line {l}: ")).unwrap_or_default()
}

/// One line of an ignore file after Docker's normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreLine {
    pub line: usize,
    /// The pattern, `!` first for an exception.
    pub pattern: String,
}

/// The UTF-8 byte order mark some editors put first in a file.
const UTF8_BOM: char = '\u{feff}';

/// Read an ignore file's text into normalised patterns (Docker's
/// `ignorefile.ReadAll`).
pub fn read_patterns(text: &str) -> Vec<IgnoreLine> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let raw = if i == 0 {
            raw.trim_start_matches(UTF8_BOM)
        } else {
            raw
        };
        // The comment test comes before trimming: " #x" is a pattern.
        if raw.starts_with('#') {
            continue;
        }
        let mut pattern = raw.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        if invert {
            cleaned.insert(0, '!');
        }
        out.push(IgnoreLine {
            line: i + 1,
            pattern: cleaned,
        });
    }
    out
}

pub use strata_parser::path::clean;

/// One compiled element of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `*`: any run of characters without `/`.
    Star,
    /// `?`: one character other than `/`.
    Quest,
    /// `[...]`: one character in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**` followed by more pattern: nothing, or anything ending in `/`.
    AnyDirs,
    /// `**` at the end: anything at all.
    AnyTail,
}

/// How a pattern is tested; Docker's fast paths differ from its regular
/// expression at the edges (`**foo` matches `barfoo`), so keep them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exact,
    Prefix,
    Suffix,
    Tokens,
}

/// A compiled `.dockerignore` pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    exclusion: bool,
    kind: Kind,
    toks: Vec<Tok>,
}

impl Pattern {
    /// Compile one pattern (already normalised, `!` first for an exception).
    pub fn new(pattern: &str, line: Option<usize>) -> Result<Option<Pattern>, IgnoreError> {
        let p = pattern.trim();
        if p.is_empty() {
            return Ok(None);
        }
        let p = clean(p);
        let (exclusion, p) = match p.strip_prefix('!') {
            Some("") => return Err(IgnoreError::IllegalExclusion { line }),
            Some(rest) => (true, rest.to_string()),
            None => (false, p),
        };
        let bad = |reason| IgnoreError::BadPattern {
            line,
            pattern: pattern.to_string(),
            reason,
        };
        // Docker validates with filepath.Match, whose rules are stricter
        // than the regular expression it then matches with.
        Glob::new(&p).map_err(bad)?;
        let (kind, toks) = compile_ignore(&p).map_err(bad)?;
        Ok(Some(Pattern {
            text: p,
            exclusion,
            kind,
            toks,
        }))
    }

    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    /// The pattern as cleaned (without its `!`).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Could the pattern match a path strictly below the directory `dir`?
    /// Conservative: `**` or an odd pattern says yes. Used to skip walking
    /// an ignored directory that no exception can reach into.
    pub fn could_match_under(&self, dir: &str) -> bool {
        if self
            .toks
            .iter()
            .any(|t| matches!(t, Tok::AnyDirs | Tok::AnyTail))
            || matches!(self.kind, Kind::Prefix | Kind::Suffix)
        {
            return true;
        }
        let pattern_comps: Vec<&str> = self.text.split('/').collect();
        let dir_comps: Vec<&str> = dir.split('/').collect();
        if pattern_comps.len() <= dir_comps.len() {
            return false;
        }
        pattern_comps
            .iter()
            .zip(&dir_comps)
            .all(|(p, d)| Glob::new(p).map_or(true, |g| g.matches(d)))
    }

    /// Does the pattern match exactly this path (no parent rule)?
    pub fn matches(&self, path: &str) -> bool {
        match self.kind {
            Kind::Exact => path == self.text,
            Kind::Prefix => path.starts_with(&self.text[..self.text.len() - 2]),
            Kind::Suffix => {
                let suffix = &self.text[2..];
                path.ends_with(suffix)
                    || suffix
                        .strip_prefix('/')
                        .is_some_and(|s| !s.is_empty() && path == s)
            }
            Kind::Tokens => {
                let chars: Vec<char> = path.chars().collect();
                match_toks(&self.toks, &chars)
            }
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.exclusion {
            f.write_str("!")?;
        }
        f.write_str(&self.text)
    }
}

/// Turn a cleaned pattern into tokens and the way Docker tests it.
fn compile_ignore(p: &str) -> Result<(Kind, Vec<Tok>), &'static str> {
    let chars: Vec<char> = p.chars().collect();
    let mut toks = Vec::new();
    let mut kind = Kind::Exact;
    let mut i = 0;
    let mut first = true;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                // `**/` is `**`: the slash is part of "any directories".
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        kind = Kind::Tokens;
                    }
                    toks.push(Tok::AnyTail);
                } else {
                    kind = Kind::Tokens;
                    toks.push(Tok::AnyDirs);
                }
                if first {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                kind = Kind::Tokens;
                toks.push(Tok::Star);
            }
            '?' => {
                kind = Kind::Tokens;
                toks.push(Tok::Quest);
            }
            // Docker's literal fast path would compare the backslash itself,
            // so `\*.txt` could never match `*.txt`; match it as an escape.
            '\\' => match chars.get(i) {
                Some(&c) => {
                    kind = Kind::Tokens;
                    i += 1;
                    toks.push(Tok::Lit(c));
                }
                None => toks.push(Tok::Lit('\\')),
            },
            '[' => {
                kind = Kind::Tokens;
                let (tok, next) = parse_class(&chars, i)?;
                toks.push(tok);
                i = next;
            }
            c => toks.push(Tok::Lit(c)),
        }
        first = false;
    }
    Ok((kind, toks))
}

/// Parse a class whose `[` is just before `start`; returns the token and
/// the index after its `]`.
fn parse_class(chars: &[char], start: usize) -> Result<(Tok, usize), &'static str> {
    const UNCLOSED: &str = "unclosed character class";
    let mut i = start;
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let esc = |i: &mut usize| -> Result<char, &'static str> {
        let c = *chars.get(*i).ok_or(UNCLOSED)?;
        if c == '-' || c == ']' {
            return Err("bad range in character class");
        }
        *i += 1;
        if c == '\\' {
            let e = *chars.get(*i).ok_or("trailing backslash")?;
            *i += 1;
            return Ok(e);
        }
        Ok(c)
    };
    loop {
        if chars.get(i) == Some(&']') && !ranges.is_empty() {
            return Ok((Tok::Class { negated, ranges }, i + 1));
        }
        let lo = esc(&mut i)?;
        let mut hi = lo;
        if chars.get(i) == Some(&'-') {
            i += 1;
            hi = esc(&mut i)?;
        }
        ranges.push((lo, hi));
    }
}

/// Does `toks` match all of `s`? Memoised so `*` runs stay linear-ish.
fn match_toks(toks: &[Tok], s: &[char]) -> bool {
    let width = s.len() + 1;
    // 0 = unknown, 1 = false, 2 = true, per (token index, char index).
    let mut memo = vec![0u8; (toks.len() + 1) * width];
    fn go(toks: &[Tok], s: &[char], t: usize, i: usize, memo: &mut [u8], width: usize) -> bool {
        let key = t * width + i;
        if memo[key] != 0 {
            return memo[key] == 2;
        }
        let result = match toks.get(t) {
            None => i == s.len(),
            Some(Tok::Lit(c)) => s.get(i) == Some(c) && go(toks, s, t + 1, i + 1, memo, width),
            Some(Tok::Quest) => {
                s.get(i).is_some_and(|&c| c != '/') && go(toks, s, t + 1, i + 1, memo, width)
            }
            Some(Tok::Class { negated, ranges }) => {
                s.get(i)
                    .is_some_and(|&c| ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated)
                    && go(toks, s, t + 1, i + 1, memo, width)
            }
            Some(Tok::Star) => {
                let mut j = i;
                loop {
                    if go(toks, s, t + 1, j, memo, width) {
                        break true;
                    }
                    if j == s.len() || s[j] == '/' {
                        break false;
                    }
                    j += 1;
                }
            }
            Some(Tok::AnyTail) => true,
            Some(Tok::AnyDirs) => {
                go(toks, s, t + 1, i, memo, width)
                    || (i..s.len()).any(|j| s[j] == '/' && go(toks, s, t + 1, j + 1, memo, width))
            }
        };
        memo[key] = if result { 2 } else { 1 };
        result
    }
    go(toks, s, 0, 0, &mut memo, width)
}

/// The rules of one ignore file (or one COPY's `--exclude` list).
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
}

impl Matcher {
    /// Patterns as given (COPY --exclude values, already normalised or not).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Matcher, IgnoreError> {
        let mut out = Vec::new();
        for p in patterns {
            let p = p.as_ref().trim();
            // Excludes are relative to the context root like ignore lines.
            let normalised = read_patterns(p)
                .pop()
                .map(|l| l.pattern)
                .unwrap_or_default();
            out.extend(Pattern::new(&normalised, None)?);
        }
        Ok(Matcher { patterns: out })
    }

    /// The text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Result<Matcher, IgnoreError> {
        let mut out = Vec::new();
        for line in read_patterns(text) {
            out.extend(Pattern::new(&line.pattern, Some(line.line))?);
        }
        Ok(Matcher { patterns: out })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Could an exception (`!`) bring back something below `dir`?
    pub fn may_reinclude_under(&self, dir: &str) -> bool {
        self.patterns
            .iter()
            .any(|p| p.exclusion && p.could_match_under(dir))
    }

    /// Is `path` (relative, `/`-separated, clean) excluded? The last
    /// pattern matching the path or one of its parents decides.
    pub fn is_excluded(&self, path: &str) -> bool {
        let parents: Vec<&str> = match path.rfind('/') {
            Some(end) => path[..end].split('/').collect(),
            None => Vec::new(),
        };
        let mut excluded = false;
        for pattern in &self.patterns {
            // An include cannot change an excluded path, nor an exception
            // an included one.
            if pattern.exclusion != excluded {
                continue;
            }
            let mut hit = pattern.matches(path);
            if !hit {
                let mut prefix_len = 0;
                for (n, dir) in parents.iter().enumerate() {
                    prefix_len += dir.len() + usize::from(n > 0);
                    if pattern.matches(&path[..prefix_len]) {
                        hit = true;
                        break;
                    }
                }
            }
            if hit {
                excluded = !pattern.exclusion;
            }
        }
        excluded
    }
}

/// Go's `filepath.Match` for one path component (COPY/ADD wildcards).
#[derive(Debug, Clone)]
pub struct Glob {
    toks: Vec<Tok>,
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, &'static str> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut toks = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let ch = chars[i];
            i += 1;
            match ch {
                '*' => toks.push(Tok::Star),
                '?' => toks.push(Tok::Quest),
                '\\' => {
                    let c = *chars.get(i).ok_or("trailing backslash")?;
                    i += 1;
                    toks.push(Tok::Lit(c));
                }
                '[' => {
                    let (tok, next) = parse_class(&chars, i)?;
                    toks.push(tok);
                    i = next;
                }
                c => toks.push(Tok::Lit(c)),
            }
        }
        Ok(Glob { toks })
    }

    pub fn matches(&self, name: &str) -> bool {
        // One component: filepath.Match's classes never match a separator.
        if name.contains('/') {
            return false;
        }
        let chars: Vec<char> = name.chars().collect();
        match_toks(&self.toks, &chars)
    }
}

/// Does `s` contain a wildcard that makes it a glob (Docker's test)?
pub fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '\\'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_file_lines() {
        let text = "\u{feff}# comment\n\n  *.log  \n #not-a-comment\n!  /keep.log\n/abs/path/\n./dot\n!\nsub/../x\n/\n";
        let got: Vec<(usize, String)> = read_patterns(text)
            .into_iter()
            .map(|l| (l.line, l.pattern))
            .collect();
        let want = [
            (3, "*.log"),
            (4, "#not-a-comment"),
            (5, "!keep.log"),
            (6, "abs/path"),
            (7, "dot"),
            (8, "!"),
            (9, "x"),
            (10, "/"),
        ];
        let want: Vec<(usize, String)> = want.iter().map(|(n, p)| (*n, p.to_string())).collect();
        assert_eq!(got, want);
    }

    /// (patterns, path, excluded?) — Docker's documented examples and the
    /// edges of its matcher.
    #[test]
    fn exclusion_table() {
        let cases: &[(&[&str], &str, bool)] = &[
            // Plain names match only at the root.
            (&["foo"], "foo", true),
            (&["foo"], "foo/bar", true),
            (&["foo"], "a/foo", false),
            (&["foo"], "foobar", false),
            // Docker's README example.
            (&["*/temp*"], "somedir/temporary.txt", true),
            (&["*/temp*"], "somedir/temp", true),
            (&["*/temp*"], "temp", false),
            (&["*/temp*"], "a/b/temp", false),
            (&["*/*/temp*"], "somedir/subdir/temporary.txt", true),
            (&["temp?"], "tempa", true),
            (&["temp?"], "temp", false),
            (&["temp?"], "temp/", false),
            // `**` spans any number of directories, zero included.
            (&["**/*.go"], "main.go", true),
            (&["**/*.go"], "a/b/c.go", true),
            (&["**/*.go"], "a/b/c.gox", false),
            (&["a/**/b"], "a/b", true),
            (&["a/**/b"], "a/x/y/b", true),
            (&["a/**/b"], "a/xb", false),
            (&["a/**"], "a/x/y", true),
            (&["a/**"], "a", false),
            (&["**"], "anything/at/all", true),
            (&["**/"], "x", true),
            // Docker's fast paths: `**foo` is a suffix test, `foo**` a prefix one.
            (&["**foo"], "barfoo", true),
            (&["**/foo"], "foo", true),
            (&["**/foo"], "x/foo", true),
            (&["**/foo"], "xfoo", false),
            (&["foo**"], "foobar/baz", true),
            // `*` and `?` stop at `/`; classes and escapes.
            (&["*.md"], "README.md", true),
            (&["*.md"], "docs/a.md", false),
            (&["[a-c]at"], "bat", true),
            (&["[a-c]at"], "rat", false),
            (&["[^a-c]at"], "rat", true),
            (&["[^a-c]at"], "cat", false),
            (&["\\*.txt"], "*.txt", true),
            (&["\\*x.txt"], "ax.txt", false),
            (&["f\\?o"], "f?o", true),
            (&["*.txt"], "a.txt", true),
            (&["a.b"], "axb", false),
            // Exceptions: the last matching line wins.
            (&["*.md", "!README.md"], "README.md", false),
            (&["*.md", "!README.md"], "CHANGES.md", true),
            (
                &["*.md", "!README*.md", "README-secret.md"],
                "README-secret.md",
                true,
            ),
            (
                &["*.md", "README-secret.md", "!README*.md"],
                "README-secret.md",
                false,
            ),
            // A parent directory's match excludes its content...
            (&["docs"], "docs/a/b.txt", true),
            // ...and an exception can bring a file back.
            (&["docs", "!docs/keep.txt"], "docs/keep.txt", false),
            (&["docs", "!docs/keep.txt"], "docs/other.txt", true),
            (&["*", "!src"], "src/main.rs", false),
            (&["*", "!src"], "target/x", true),
            // Cleaning: leading slash, `./`, trailing slash.
            (&["/foo/"], "foo/x", true),
            (&["./foo"], "foo", true),
            (&["foo/./bar/../baz"], "foo/baz", true),
        ];
        for (patterns, path, want) in cases {
            let text = patterns.join("\n");
            let m = Matcher::parse(&text).expect("valid patterns");
            assert_eq!(
                m.is_excluded(path),
                *want,
                "patterns {patterns:?} on {path:?}"
            );
        }
    }

    #[test]
    fn exceptions_reaching_into_directories() {
        let cases = [
            ("!docs/keep.md", "docs", true),
            ("!docs/keep.md", "node_modules", false),
            ("!docs/keep.md", "docs/sub", false),
            ("!*/keep.md", "anything", true),
            ("!README.md", "node_modules", false),
            ("!**/keep", "node_modules/x", true),
            ("!a/b/c", "a/b", true),
            ("!a/[bc]/d", "a/x", false),
            ("ignored", "ignored", false),
        ];
        for (pattern, dir, want) in cases {
            let m = Matcher::parse(&format!("*\n{pattern}")).expect("valid");
            assert_eq!(m.may_reinclude_under(dir), want, "{pattern} under {dir}");
        }
    }

    #[test]
    fn bad_patterns() {
        let cases = [
            ("[", "unclosed character class"),
            ("a[]", "bad range in character class"),
            ("[a-]", "bad range in character class"),
            ("[-a]", "bad range in character class"),
            ("x\\", "trailing backslash"),
        ];
        for (p, reason) in cases {
            let err = Matcher::parse(&format!("ok\n{p}")).expect_err(p);
            assert_eq!(
                err,
                IgnoreError::BadPattern {
                    line: Some(2),
                    pattern: p.into(),
                    reason
                },
                "{p}"
            );
        }
        assert_eq!(
            Matcher::parse("!").expect_err("lone !"),
            IgnoreError::IllegalExclusion { line: Some(1) }
        );
        assert_eq!(
            Matcher::parse("#x\n!\n").expect_err("lone !").to_string(),
            "line 2: illegal exclusion pattern: \"!\""
        );
    }

    #[test]
    fn globs_like_filepath_match() {
        let cases = [
            ("*", "abc", true),
            ("*", "", true),
            ("a*", "abc", true),
            ("a*c", "abxyzc", true),
            ("a*c", "abxyzd", false),
            ("*.txt", "a.txt", true),
            ("*.txt", ".txt", true),
            ("?", "a", true),
            ("?", "ab", false),
            ("[abc]", "b", true),
            ("[a-z]x", "qx", true),
            ("[^a-z]x", "qx", false),
            ("[\\]]", "]", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("**", "deep", true),
            ("é?", "éa", true),
        ];
        for (p, name, want) in cases {
            let g = Glob::new(p).expect(p);
            assert_eq!(g.matches(name), want, "{p:?} on {name:?}");
        }
        for bad in ["[", "[]", "a\\", "[a-"] {
            assert!(Glob::new(bad).is_err(), "{bad:?}");
        }
        assert!(has_meta("a*"));
        assert!(has_meta("a[b]"));
        assert!(!has_meta("plain/path.txt"));
    }

    #[test]
    fn exclude_list_from_copy_flags() {
        let m = Matcher::new(&["*.tmp", "/cache/", "!keep.tmp"]).expect("valid");
        assert!(m.is_excluded("x.tmp"));
        assert!(!m.is_excluded("keep.tmp"));
        assert!(m.is_excluded("cache/a"));
        assert!(!m.is_excluded("src/a.rs"));
        assert!(Matcher::new::<&str>(&[]).expect("empty").is_empty());
    }
}
