//! Table tests for the raw tree: directives, comments, continuations,
//! spans, warnings, flags and forms, heredocs, and raw-stage errors.

use super::*;
use crate::dump::dump;

fn tree(text: &str) -> RawTree {
    parse_raw(text).unwrap()
}

fn dumped(text: &str) -> String {
    dump(&tree(text))
}

fn err(text: &str) -> String {
    parse_raw(text).unwrap_err().to_string()
}

fn first(text: &str) -> RawInstruction {
    tree(text).instructions().next().cloned().unwrap()
}

#[test]
fn directives_at_top_only() {
    let t = tree("# syntax=docker/dockerfile:1\n#escape=`\n# check=skip=all\nFROM a\n");
    assert_eq!(t.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(t.directives.escape, '`');
    assert_eq!(t.directives.check.as_deref(), Some("skip=all"));
    assert!(matches!(&t.nodes[0], RawNode::Directive(d) if d.name == "syntax" && d.line == 1));

    for late in [
        "FROM a\n# escape=`\n",
        "# comment\n# escape=`\nFROM a\n",
        "\n# escape=`\nFROM a\n",
        "# unknown=x\n# escape=`\nFROM a\n",
    ] {
        let t = tree(late);
        assert_eq!(t.directives.escape, '\\', "{late:?}");
        assert!(t
            .nodes
            .iter()
            .any(|n| matches!(n, RawNode::Comment { text, .. } if text.contains("escape"))));
    }
}

#[test]
fn directive_errors() {
    assert_eq!(
        err("# escape=\\\n# escape=`\nFROM a"),
        "2:1: only one escape parser directive can be used"
    );
    assert_eq!(
        err("# escape=x\nFROM a"),
        "1:1: invalid escape token 'x' does not match ` or \\"
    );
}

#[test]
fn comments_and_blank_lines_are_nodes() {
    let t = tree("# hello\n\n  \nFROM a # not a comment\n");
    assert!(matches!(&t.nodes[0], RawNode::Comment { line: 1, text } if text == "hello"));
    assert!(matches!(t.nodes[1], RawNode::Blank { line: 2 }));
    assert!(matches!(t.nodes[2], RawNode::Blank { line: 3 }));
    assert_eq!(dump(&t), "(from \"a\" \"#\" \"not\" \"a\" \"comment\")\n");
}

#[test]
fn continuation_table() {
    let cases = [
        ("RUN a \\\n b", "(run \"a  b\")\n"),
        ("RUN a\\\n# c\n b", "(run \"a b\")\n"),
        ("RUN a\\\n\n b", "(run \"a b\")\n"),
        ("RUN a \\\\\nRUN b", "(run \"a \\\\\\\\\")\n(run \"b\")\n"),
        ("RUN a \\  \t\n b", "(run \"a  b\")\n"),
        ("RUN a \\", "(run \"a\")\n"),
        ("# escape=`\nRUN a `\n b \\", "(run \"a  b \\\\\")\n"),
        ("RUN a\r\nRUN b\r\n", "(run \"a\")\n(run \"b\")\n"),
        ("\u{feff}FROM a", "(from \"a\")\n"),
    ];
    for (text, want) in cases {
        assert_eq!(dumped(text), want, "{text:?}");
    }
}

#[test]
fn spans_cover_continuations_and_heredocs() {
    let t = tree("FROM a\n\nRUN x \\\n  y\nRUN <<EOF\nbody\nEOF\nCMD z\n");
    let spans: Vec<(usize, usize)> = t
        .instructions()
        .map(|i| (i.span.start_line, i.span.end_line))
        .collect();
    assert_eq!(spans, [(1, 1), (3, 4), (5, 7), (8, 8)]);
}

#[test]
fn keyword_column_counts_leading_blanks() {
    assert_eq!(first("   FROM a").col, 4);
}

#[test]
fn warnings_are_returned() {
    let t = tree("FROM a\nRUN x \\\n\n y\nCMD [\"unclosed\"\n");
    let kinds: Vec<&WarningKind> = t.warnings.iter().map(|w| &w.kind).collect();
    assert!(
        matches!(kinds[0], WarningKind::EmptyContinuationLine { instruction } if instruction == "RUN x  y")
    );
    assert!(matches!(kinds[1], WarningKind::JsonFallback { instruction } if instruction == "CMD"));
    assert_eq!(t.warnings[1].line, 5);
}

#[test]
fn flags_and_forms() {
    let i = first("COPY --from=a --chown=\"u:g\" [\"x y\", \"/d\"]");
    assert_eq!(i.flags, ["--from=a", "--chown=u:g"]);
    assert_eq!(i.args, ["x y", "/d"]);
    assert!(i.json);
    // Text after the array is ignored: exec form, as Docker BuildKit
    // (docker.io 20.10 runs `RUN ["echo", "run-exec"] # comment` as exec).
    for text in [
        "RUN [\"a\", \"b\"] extra",
        "CMD [\"a\", \"b\"] # comment",
        "ENTRYPOINT [\"a\", \"b\"]]",
        "SHELL [\"a\", \"b\"] # c",
    ] {
        let i = first(text);
        assert!(i.json, "{text}");
        assert_eq!(i.args, ["a", "b"], "{text}");
    }
    let i = first("COPY [\"f\", \"/g\"] trailing");
    assert!(i.json);
    assert_eq!(i.args, ["f", "/g"]);
    assert_eq!(
        err("CMD [\"a\", 1]"),
        "1:1: CMD: when using JSON array syntax, arrays must be comprised of strings only"
    );
}

#[test]
fn heredoc_bodies() {
    let i = first("RUN <<EOF\necho $HOME\nEOF\n");
    assert_eq!(i.args, ["<<EOF"]);
    assert_eq!(i.heredocs.len(), 1);
    assert_eq!(i.heredocs[0].content, "echo $HOME\n");
    assert!(i.heredocs[0].expand);

    let i = first("COPY <<A <<-'B' /dst/\na\nA\n\t\tb\n\tB\n");
    let docs: Vec<(&str, &str, bool)> = i
        .heredocs
        .iter()
        .map(|h| (h.name.as_str(), h.content.as_str(), h.expand))
        .collect();
    assert_eq!(docs, [("A", "a\n", true), ("B", "\t\tb\n", false)]);
    assert_eq!(i.heredocs[1].body(), "b\n");

    let t = tree("ONBUILD RUN <<X\nhi\nX\nFROM a\n");
    let sub = t.instructions().next().unwrap().onbuild.as_deref().unwrap();
    assert_eq!(sub.heredocs[0].content, "hi\n");
    assert_eq!(t.instructions().count(), 2);

    // JSON form and other instructions take no heredocs.
    assert!(first("RUN [\"<<EOF\"]").heredocs.is_empty());
    assert_eq!(tree("ENV A <<EOF\nFROM a\n").instructions().count(), 2);
}

#[test]
fn heredoc_errors() {
    assert_eq!(
        err("FROM a\nRUN <<EOF\nno end\n"),
        "2:1: unterminated heredoc \"EOF\": no line \"EOF\" before the end of the file"
    );
}

#[test]
fn negative_table() {
    let cases = [
        ("", "1:1: file with no instructions"),
        ("# only\n\n", "2:1: file with no instructions"),
        ("FROM a\nENV A", "2:1: ENV must have two arguments"),
        (
            "FROM a\nLABEL ab=1 b",
            "2:12: Syntax error - can't find = in \"b\". Must be of the form: name=value",
        ),
        ("FROM a\nENV =x", "2:1: ENV names can not be blank"),
    ];
    for (text, want) in cases {
        assert_eq!(err(text), want, "{text:?}");
    }
}

#[test]
fn onbuild_nesting_is_capped() {
    let deep = format!("{}RUN x", "ONBUILD ".repeat(100));
    assert_eq!(err(&deep), "1:1: ONBUILD nested more than 8 levels deep");
    assert_eq!(
        dumped("ONBUILD ONBUILD RUN x"),
        "(onbuild (onbuild (run \"x\")))\n"
    );
}

#[test]
fn nul_bytes_are_plain_characters() {
    assert_eq!(
        dumped("FROM a\0b\nRUN \0"),
        "(from \"a\\x00b\")\n(run \"\\x00\")\n"
    );
}
