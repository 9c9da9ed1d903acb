//! Shapes the text after an instruction keyword into the raw argument list,
//! one rule per instruction family, the way Docker's raw parser does:
//! whitespace-separated words (FROM, EXPOSE), the whole rest as one string
//! (USER, WORKDIR), JSON-or-shell form (RUN, CMD, ...), JSON-or-words (COPY,
//! ADD, VOLUME), key/value pairs (ENV, LABEL), name[=value] words (ARG),
//! HEALTHCHECK's type word plus command, and ONBUILD's nested instruction.
//!
//! Also home of the `--flag` extraction that runs before any of them.

use super::json::{parse_json_array, JsonArray};
use super::RawError;

/// Docker's word separator for the keyword split and whitespace-delimited
/// arguments: `[\t\v\f\r ]+` (not newline, not Unicode spaces).
pub(crate) fn is_sep(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// Splits a logical line into (keyword, flags, rest). The keyword keeps its
/// case; `rest` is trimmed.
pub(crate) fn split_command(line: &str) -> (&str, Vec<String>, &str) {
    let line = line.trim();
    match line.find(is_sep) {
        None => (line, Vec::new(), ""),
        Some(at) => {
            let keyword = &line[..at];
            let after = line[at..].trim_start_matches(is_sep);
            let (flags, rest) = extract_flags(after);
            (keyword, flags, rest.trim())
        }
    }
}

/// Reads leading `--name[=value]` words. Quotes inside a flag are removed and
/// `\` escapes the next character (always `\`, whatever the escape directive
/// says, as in Docker). A bare `--` ends the flags. Returns the flags and the
/// untouched rest of the line.
pub(crate) fn extract_flags(line: &str) -> (Vec<String>, &str) {
    let mut flags = Vec::new();
    let mut rest = line;
    loop {
        rest = rest.trim_start();
        if !rest.starts_with("--") {
            return (flags, rest);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut chars = rest.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match quote {
                None if c.is_whitespace() => {
                    end = Some(i);
                    break;
                }
                None if c == '\'' || c == '"' => quote = Some(c),
                Some(q) if c == q => quote = None,
                _ if c == '\\' => {
                    // A trailing backslash is dropped.
                    if let Some((_, next)) = chars.next() {
                        word.push(next);
                    }
                }
                _ => word.push(c),
            }
        }
        let Some(end) = end else {
            // The flags ran to the end of the line; a final `--` is dropped.
            if word != "--" {
                flags.push(word);
            }
            return (flags, "");
        };
        rest = &rest[end..];
        if word == "--" {
            return (flags, rest);
        }
        flags.push(word);
    }
}

/// What the argument shaper produced for one instruction.
#[derive(Debug, Default)]
pub(crate) struct Shaped {
    pub args: Vec<String>,
    pub json: bool,
    /// The arguments began with `[` but were not JSON; shell form was used.
    pub json_fallback: bool,
}

/// Shapes `rest` for the instruction `keyword` (lower case).
pub(crate) fn shape(keyword: &str, rest: &str, escape: char) -> Result<Shaped, RawError> {
    let words = |args| Shaped {
        args,
        ..Shaped::default()
    };
    Ok(match keyword {
        "add" | "copy" | "volume" => maybe_json(rest, keyword, true)?,
        "cmd" | "entrypoint" | "run" | "shell" => maybe_json(rest, keyword, false)?,
        "arg" => words(parse_words(rest, escape)),
        "env" | "label" => words(parse_name_val(rest, keyword, escape)?),
        "expose" | "from" => words(split_whitespace(rest)),
        "maintainer" | "stopsignal" | "user" | "workdir" => words(whole(rest)),
        "healthcheck" => health(rest, escape)?,
        // Unknown instructions are kept as words so the typed stage can name
        // them in its error.
        _ => words(split_whitespace(rest)),
    })
}

fn whole(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        Vec::new()
    } else {
        vec![rest.to_string()]
    }
}

fn split_whitespace(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    rest.split(is_sep)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// JSON array if `rest` is one; otherwise the whole rest as one shell-form
/// string (`list == false`) or whitespace-separated words (`list == true`).
fn maybe_json(rest: &str, keyword: &str, list: bool) -> Result<Shaped, RawError> {
    if rest.is_empty() {
        return Ok(Shaped::default());
    }
    match parse_json_array(rest) {
        JsonArray::Strings(args) => Ok(Shaped {
            args,
            json: true,
            json_fallback: false,
        }),
        JsonArray::NotStrings => Err(RawError::NotStringArray {
            instruction: keyword.to_ascii_uppercase(),
        }),
        JsonArray::NotJson => Ok(Shaped {
            args: if list {
                split_whitespace(rest)
            } else {
                whole(rest)
            },
            json: false,
            json_fallback: looks_like_json(rest),
        }),
    }
}

/// Whether shell-form text was probably meant as JSON: `[` followed by a
/// quote or `]`. A shell test such as `[ -f x ] && y` is not.
fn looks_like_json(rest: &str) -> bool {
    rest.strip_prefix('[')
        .map(|r| r.trim_start())
        .is_some_and(|r| r.is_empty() || r.starts_with(['"', '\'', ']']))
}

/// `HEALTHCHECK TYPE command...`: the first word, then the command in JSON
/// or shell form.
fn health(rest: &str, _escape: char) -> Result<Shaped, RawError> {
    let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if sep == 0 {
        return Ok(Shaped::default());
    }
    let kind = &rest[..sep];
    let cmd = rest[sep..].trim_start();
    let mut shaped = maybe_json(cmd, "healthcheck", false)?;
    shaped.args.insert(0, kind.to_string());
    Ok(shaped)
}

/// ENV and LABEL: either the legacy `KEY value with spaces` or a list of
/// `key=value` words. Each pair becomes three strings: key, value and the
/// separator as written (`=` or empty for the legacy form).
fn parse_name_val(rest: &str, keyword: &str, escape: char) -> Result<Vec<String>, RawError> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    let instruction = || keyword.to_ascii_uppercase();
    if !first.contains('=') {
        let Some(at) = rest.find(is_sep) else {
            return Err(RawError::MissingValue {
                instruction: instruction(),
            });
        };
        let value = rest[at..].trim_start_matches(is_sep);
        return Ok(vec![
            rest[..at].to_string(),
            value.to_string(),
            String::new(),
        ]);
    }
    let mut out = Vec::with_capacity(words.len() * 3);
    for word in words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(RawError::MissingEquals {
                instruction: instruction(),
                word,
            });
        };
        if key.is_empty() {
            return Err(RawError::BlankName {
                instruction: instruction(),
            });
        }
        out.push(key.to_string());
        out.push(value.to_string());
        out.push("=".to_string());
    }
    Ok(out)
}

/// Splits on unquoted whitespace, keeping quotes and escapes in the words
/// (they are removed later by variable expansion). An escape character at
/// the very end of the text is dropped.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    // Quotes make an empty word (`""`) count as a word.
    let mut blank_ok = false;
    let mut quote: Option<char> = None;
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            None if c.is_whitespace() => {
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
            }
            None => {
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    blank_ok = true;
                }
                if c == escape {
                    // An escape outside quotes is kept with the character it
                    // protects, even a quote; one at the very end is dropped.
                    if let Some(next) = chars.next() {
                        word.push(c);
                        word.push(next);
                    }
                    continue;
                }
                word.push(c);
            }
            Some(q) => {
                if c == q {
                    quote = None;
                }
                // Single quotes cannot escape anything.
                if c == escape && q != '\'' {
                    match chars.next() {
                        Some(next) => {
                            word.push(c);
                            word.push(next);
                        }
                        None => quote = None,
                    }
                    continue;
                }
                word.push(c);
            }
        }
    }
    if blank_ok || !word.is_empty() {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_stop_at_first_non_flag() {
        let (flags, rest) = extract_flags("--a=1 --b \"x y\" --c");
        assert_eq!(flags, ["--a=1", "--b"]);
        assert_eq!(rest, "\"x y\" --c");
    }

    #[test]
    fn flags_quotes_removed_and_double_dash_ends() {
        let (flags, rest) = extract_flags("--x=\"a b\" -- --y z");
        assert_eq!(flags, ["--x=a b"]);
        assert_eq!(rest.trim(), "--y z");
    }

    #[test]
    fn split_command_trims() {
        let (k, f, r) = split_command("  copy\t --from=a  x  y  ");
        assert_eq!((k, f, r), ("copy", vec!["--from=a".to_string()], "x  y"));
    }

    #[test]
    fn words_keep_quotes_and_escapes() {
        assert_eq!(
            parse_words(r#"a "b c" d\ e 'f\'"#, '\\'),
            ["a", "\"b c\"", "d\\ e", "'f\\'"]
        );
        assert_eq!(parse_words("\"\" x", '\\'), ["\"\"", "x"]);
    }

    #[test]
    fn json_fallback_heuristic() {
        for (text, want) in [
            ("['a']", true),
            ("[\"a\"", true),
            ("[ ]x", true),
            ("[", true),
            ("[ -f x ] && y", false),
            ("echo [x]", false),
        ] {
            assert_eq!(looks_like_json(text), want, "{text}");
        }
    }

    #[test]
    fn name_val_forms() {
        assert_eq!(
            parse_name_val("a b c", "env", '\\').unwrap(),
            ["a", "b c", ""]
        );
        assert_eq!(
            parse_name_val("a=1 b=\"2 3\"", "env", '\\').unwrap(),
            ["a", "1", "=", "b", "\"2 3\"", "="]
        );
        assert!(matches!(
            parse_name_val("a", "env", '\\'),
            Err(RawError::MissingValue { .. })
        ));
        assert!(matches!(
            parse_name_val("a=1 b", "label", '\\'),
            Err(RawError::MissingEquals { .. })
        ));
        assert!(matches!(
            parse_name_val("=1", "env", '\\'),
            Err(RawError::BlankName { .. })
        ));
    }
}
