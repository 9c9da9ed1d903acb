//! Heredoc markers on RUN, COPY and ADD lines: `<<EOF`, `<<-EOF` (strip
//! leading tabs), `<<"EOF"` / `<<'EOF'` (quoted: no expansion in the body),
//! `3<<EOF` (file descriptor), several on one line.
//!
//! Markers are found the way Docker finds them: the line is split into words
//! with quotes and escapes kept, and each word shaped `N<<-?NAME` (with no
//! further `<`) is a marker. The bodies are read by the raw-tree builder.

use crate::expand::{raw_words, unquote_words};

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

/// All heredoc markers on a logical line, in order, with empty bodies.
pub(crate) fn markers(line: &str) -> Result<Vec<Heredoc>, RawError> {
    if !line.contains("<<") {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    // Docker finds no markers on a line its lexer rejects; plain word
    // splitting still finds them when only the nesting cap was hit.
    let words = raw_words(line).unwrap_or_else(|| super::args::parse_words(line, '\\'));
    for word in words {
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
        assert!(names("RUN a << b").is_empty());
        assert!(names("RUN a <<<b").is_empty());
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
