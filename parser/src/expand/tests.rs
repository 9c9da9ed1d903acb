//! Table tests for the expander: every operator, every error, word
//! splitting, the nesting cap and the `Env` implementations.

use super::*;

fn env() -> HashMap<String, String> {
    [
        ("V", "value"),
        ("E", ""),
        ("P", "/usr/local/bin/tool.tar.gz"),
        ("S", "a b  c"),
        ("PLATFORM", "linux/arm64/v8"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn word(input: &str) -> Result<String, String> {
    expand_word(input, &env(), '\\').map_err(|e| e.to_string())
}

#[test]
fn operator_table() {
    let cases = [
        ("$V", "value"),
        ("${V}", "value"),
        ("${U}", ""),
        ("${U:-w}", "w"),
        ("${E:-w}", "w"),
        ("${E-w}", ""),
        ("${U-w}", "w"),
        ("${V:+w}", "w"),
        ("${E:+w}", ""),
        ("${E+w}", "w"),
        ("${U+w}", ""),
        ("${V:?msg}", "value"),
        ("${E?msg}", ""),
        ("${P#*/}", "usr/local/bin/tool.tar.gz"),
        ("${P##*/}", "tool.tar.gz"),
        ("${P%.*}", "/usr/local/bin/tool.tar"),
        ("${P%%.*}", "/usr/local/bin/tool"),
        ("${PLATFORM%/*}", "linux/arm64"),
        ("${PLATFORM##*/}", "v8"),
        ("${P/local/opt}", "/usr/opt/bin/tool.tar.gz"),
        ("${P//\\//:}", ":usr:local:bin:tool.tar.gz"),
        ("${S// /_}", "a_b__c"),
        ("${U/a/b}", ""),
        ("${U#x}", ""),
        ("${U:-${V:-x}}", "value"),
        ("${U:-\"a b\"}", "a b"),
        ("a${V}b", "avalueb"),
        ("'$V'\"$V\"\\$V", "$Vvalue$V"),
    ];
    for (input, want) in cases {
        assert_eq!(word(input), Ok(want.to_string()), "{input}");
    }
}

#[test]
fn backtick_escape() {
    assert_eq!(expand_word("a`$V`\"", &env(), '`'), Ok("a$V\"".to_string()));
    assert_eq!(expand_word("\\$V", &env(), '`'), Ok("\\value".to_string()));
}

#[test]
fn error_table() {
    let cases = [
        ("${U:?must be set}", "column 1: U: must be set"),
        ("${U?}", "column 1: U: is not allowed to be unset"),
        ("${E:?}", "column 1: E: is not allowed to be empty"),
        ("${V", "column 4: syntax error: missing '}'"),
        ("${V:-x", "column 7: syntax error: missing '}'"),
        ("${V/x", "column 6: syntax error: missing '/' in ${}"),
        ("${}", "column 3: syntax error: bad substitution"),
        (
            "${V:=x}",
            "column 5: unsupported modifier (:=) in substitution",
        ),
        (
            "${V:#x}",
            "column 5: unsupported modifier (:#) in substitution",
        ),
        (
            "${V!}",
            "column 4: unsupported modifier (!) in substitution",
        ),
        (
            "'open",
            "column 6: unexpected end of statement while looking for matching '",
        ),
        (
            "\"open",
            "column 6: unexpected end of statement while looking for matching \"",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(word(input), Err(want.to_string()), "{input}");
    }
}

#[test]
fn words_split_on_substituted_whitespace_only_outside_quotes() {
    let e = env();
    assert_eq!(
        expand_words("x $S \"$S\" '$S'", &e, '\\').unwrap(),
        ["x", "a", "b", "c", "a b  c", "$S"]
    );
    assert_eq!(expand_words("a\\ b", &e, '\\').unwrap(), ["a b"]);
    assert!(expand_words("", &e, '\\').unwrap().is_empty());
}

#[test]
fn nesting_is_capped_without_overflowing_the_stack() {
    let depth = 10_000;
    let nested = format!("{}x{}", "${a:-".repeat(depth), "}".repeat(depth));
    let err = expand_word(&nested, &EmptyEnv, '\\').unwrap_err();
    assert_eq!(err.kind, ExpandErrorKind::TooDeep { limit: MAX_NESTING });
    let ok = format!("{}x{}", "${a:-".repeat(100), "}".repeat(100));
    assert_eq!(expand_word(&ok, &EmptyEnv, '\\').unwrap(), "x");
}

#[test]
fn env_implementations_agree() {
    let pairs = vec![
        ("A".to_string(), "1".to_string()),
        ("A".to_string(), "2".to_string()),
    ];
    assert_eq!(expand_word("$A", &pairs, '\\').unwrap(), "1");
    let tree: BTreeMap<String, String> = [("A".to_string(), "3".to_string())].into();
    assert_eq!(expand_word("$A", &tree, '\\').unwrap(), "3");
    assert_eq!(expand_word("$A", &[("A", "4")], '\\').unwrap(), "4");
    assert_eq!(expand_word("$A", &EmptyEnv, '\\').unwrap(), "");
}

#[test]
fn raw_words_keep_quotes_escapes_and_unset_variables() {
    assert_eq!(
        raw_words("RUN <<'E' \\x $U ${U:-d}").unwrap(),
        ["RUN", "<<'E'", "\\x", "$U", "${U:-d}"]
    );
    assert!(raw_words("RUN 'open").is_err());
}
