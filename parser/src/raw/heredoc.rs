//! Heredoc markers on RUN, COPY and ADD lines: `<<EOF`, `<<-EOF` (strip
//! leading tabs), `<<"EOF"` / `<<'EOF'` (quoted: no expansion in the body),
//! `3<<EOF` (file descriptor), several on one line.
//!
//! Markers are found the way Docker finds them: the line is split into words
//! with quotes and escapes kept, and each word shaped `N<<-?NAME` (with no
//! further `<`; blanks after the operator allowed, `<< EOF`) is a marker.
//! The bodies are read by the raw-tree builder.

use crate::expand::{expand_heredoc, raw_words, unquote_words, Env, ExpandError, ExpandErrorKind};

use super::RawError;

/// A heredoc attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, quotes removed.
    pub name: String,
    /// File descriptor the body is fed to (`0` unless written as `3<<EOF`).
    pub fd: u32,
    /// Whether variables in the body are expanded (the delimiter was unquoted).
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from the body lines and the delimiter.
    pub chomp: bool,
    /// The body as written: every line up to the delimiter line, newlines kept.
    pub content: String,
}

impl Heredoc {
    /// The body with leading tabs removed from each line when `chomp` is set.
    pub fn body(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        self.content
            .split_inclusive('\n')
            .map(|line| line.trim_start_matches('\t'))
            .collect()
    }

    /// The body as a COPY/ADD source gets it: chomped, and with variables
    /// substituted from `env` when the delimiter was unquoted. As in Docker,
    /// quotes in the body are left alone (it is file content, not Dockerfile
    /// syntax). RUN heredocs are handed to the shell, which expands them.
    pub fn expanded_body(&self, env: &dyn Env, escape: char) -> Result<String, ExpandError> {
        let body = self.body();
        if !self.expand {
            return Ok(body);
        }
        expand_heredoc(&body, env, escape)
    }
}

/// Parses one word as a heredoc marker, if it is one.
pub(crate) fn marker(word: &str) -> Result<Option<Heredoc>, RawError> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let Some(after) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match after.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, after),
    };
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let lex_err = |e| RawError::HeredocName {
        word: word.to_string(),
        source: e,
    };
    let words = unquote_words(rest, false).map_err(lex_err)?;
    let [name] = words.as_slice() else {
        return Ok(None);
    };
    let raw = unquote_words(rest, true).map_err(lex_err)?;
    let quotes = |s: &str| s.chars().filter(|&c| c == '\'' || c == '"').count();
    let expand = raw.first().is_some_and(|r| quotes(r) == quotes(name));
    Ok(Some(Heredoc {
        name: name.clone(),
        // Docker ignores an fd that does not fit, leaving 0.
        fd: word[..digits].parse().unwrap_or(0),
        expand,
        chomp,
        content: String::new(),
    }))
}

/// Docker reads `<< EOF` (blanks after the operator) as one marker: joins an
/// operator word (`<<`, `<<-`, `3<<`) with the word after it when the two
/// make a marker.
pub(crate) fn join_split_markers(words: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(words.len());
    let mut iter = words.iter().peekable();
    while let Some(word) = iter.next() {
        let op = word.trim_start_matches(|c: char| c.is_ascii_digit());
        if op == "<<" || op == "<<-" {
            if let Some(next) = iter.peek() {
                let joined = format!("{word} {next}");
                if matches!(marker(&joined), Ok(Some(_))) {
                    iter.next();
                    out.push(joined);
                    continue;
                }
            }
        }
        out.push(word.clone());
    }
    out
}

/// All heredoc markers on a logical line, in order, with empty bodies.
pub(crate) fn markers(line: &str) -> Result<Vec<Heredoc>, RawError> {
    if !line.contains("<<") {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    // Docker finds no markers on a line its lexer rejects. Plain word
    // splitting still finds them when only our nesting cap was hit, which
    // Docker does not have.
    let words = match raw_words(line) {
        Ok(words) => words,
        Err(e) if matches!(e.kind, ExpandErrorKind::TooDeep { .. }) => {
            super::args::parse_words(line, '\\')
        }
        Err(_) => return Ok(Vec::new()),
    };
    for word in join_split_markers(&words) {
        if let Some(doc) = marker(&word)? {
            out.push(doc);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(line: &str) -> Vec<(String, u32, bool, bool)> {
        markers(line)
            .unwrap()
            .into_iter()
            .map(|h| (h.name, h.fd, h.expand, h.chomp))
            .collect()
    }

    #[test]
    fn marker_table() {
        let s = |n: &str, fd, e, c| (n.to_string(), fd, e, c);
        assert_eq!(names("RUN <<EOF"), [s("EOF", 0, true, false)]);
        assert_eq!(names("RUN <<-EOF"), [s("EOF", 0, true, true)]);
        assert_eq!(names("RUN <<'EOF'"), [s("EOF", 0, false, false)]);
        assert_eq!(names("RUN <<\"EOF\" x"), [s("EOF", 0, false, false)]);
        assert_eq!(
            names("RUN 3<<EOF cat /dev/fd/3"),
            [s("EOF", 3, true, false)]
        );
        assert_eq!(
            names("COPY <<A <<-B /dst/"),
            [s("A", 0, true, false), s("B", 0, true, true)]
        );
        assert!(names("RUN echo '<<EOF'").is_empty());
        assert!(names("RUN \"<<EOF\"").is_empty());
        assert_eq!(names("RUN a << b"), [s("b", 0, true, false)]);
        assert_eq!(names("RUN <<  EOF  > foo"), [s("EOF", 0, true, false)]);
        assert_eq!(names("RUN << -EOF"), [s("-EOF", 0, true, false)]);
        assert_eq!(names("RUN <<- 'EOF'"), [s("EOF", 0, false, true)]);
        assert_eq!(names("RUN <<eo'f'"), [s("eof", 0, false, false)]);
        assert_eq!(names("RUN <<eo\\'f"), [s("eo'f", 0, true, false)]);
        assert_eq!(names("RUN <<'e'o\\'f"), [s("eo'f", 0, false, false)]);
        assert_eq!(names("RUN <<'one two'"), [s("one two", 0, false, false)]);
        assert_eq!(names("RUN <<$EOF"), [s("$EOF", 0, true, false)]);
        assert!(names("RUN <<").is_empty());
        assert!(names("RUN <<EOF'").is_empty());
        assert!(names("RUN a <<<b").is_empty());
    }

    #[test]
    fn expanded_bodies() {
        let env = [("NAME", "me")];
        let doc = |content: &str, expand, chomp| Heredoc {
            name: "E".into(),
            fd: 0,
            expand,
            chomp,
            content: content.into(),
        };
        let cases = [
            (doc("hi $NAME\n", true, false), "hi me\n"),
            (doc("'$NAME' \"${NAME}\"\n", true, false), "'me' \"me\"\n"),
            (doc("\\$NAME \\n \\\\\n", true, false), "$NAME \\n \\\n"),
            (doc("\t$NAME\n", true, true), "me\n"),
            (doc("$NAME\n", false, false), "$NAME\n"),
            (doc("${UNSET:-x}'\n", true, false), "x'\n"),
        ];
        for (doc, want) in cases {
            assert_eq!(
                doc.expanded_body(&env, '\\').unwrap(),
                want,
                "{:?}",
                doc.content
            );
        }
        assert!(doc("${NAME", true, false)
            .expanded_body(&env, '\\')
            .is_err());
    }

    #[test]
    fn chomped_body() {
        let doc = Heredoc {
            name: "E".into(),
            fd: 0,
            expand: true,
            chomp: true,
            content: "\t\ta\n\tb\n c\n".into(),
        };
        assert_eq!(doc.body(), "a\nb\n c\n");
    }
}
