//! BuildKit's Dockerfile parser and shell-lexer test data, read in place from
//! the shared conformance folder (see its README for the formats).
//!
//! The folder is `$STRATA_CONFORMANCE_DIR`, or `../../shared/conformance`
//! from this crate. When it is missing the tests fail under `CI=true` and
//! print a note otherwise.

// Tests report what they checked on stderr.
#![allow(clippy::disallowed_macros)]

use std::collections::HashMap;
use std::path::PathBuf;

use strata_parser::{dump, expand_word, expand_words, parse, parse_raw};

/// The buildkit data folder, or `None` (after the CI check) when absent.
fn buildkit_dir() -> Option<PathBuf> {
    let root = std::env::var_os("STRATA_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance")
        });
    let dir = root.join("buildkit");
    if dir.is_dir() {
        return Some(dir);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        !ci,
        "conformance data missing at {} (CI=true)",
        dir.display()
    );
    static NOTE: std::sync::Once = std::sync::Once::new();
    NOTE.call_once(|| {
        eprintln!(
            "note: the parser's conformance data is missing at {}; these tests did \
             not run. Put the project's shared/ folder beside the checkout (the layout \
             the repository is developed in), or point STRATA_CONFORMANCE_DIR at a copy \
             of shared/conformance. Under CI=true this is a failure.",
            dir.display()
        )
    });
    None
}

/// Counts cases, collects failures, and reports `NAME: N passed, M failed`.
#[derive(Default)]
struct Tally {
    run: usize,
    failures: Vec<String>,
}

impl Tally {
    fn record(&mut self, ok: bool, failure: impl FnOnce() -> String) {
        self.run += 1;
        if !ok {
            self.failures.push(failure());
        }
    }

    /// Checks an expansion result against an expected value (`None`: an error).
    fn expect<T: PartialEq + std::fmt::Debug, E: std::fmt::Debug>(
        &mut self,
        input: &str,
        got: Result<T, E>,
        want: Option<T>,
    ) {
        let ok = match (&got, &want) {
            (Ok(g), Some(w)) => g == w,
            (Err(_), None) => true,
            _ => false,
        };
        self.record(ok, || format!("{input:?}: want {want:?}, got {got:?}"));
    }

    fn finish(self, name: &str, at_least: usize) {
        let failed = self.failures.len();
        eprintln!("{name}: {} passed, {failed} failed", self.run - failed);
        assert!(self.run >= at_least, "{name}: only {} cases read", self.run);
        assert!(self.failures.is_empty(), "{}", self.failures.join("\n"));
    }
}

fn case_dirs(dir: PathBuf) -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = fs_err::read_dir(dir)
        .expect("read case folder")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    cases
}

#[test]
fn testfiles_dump_matches_result() {
    let Some(dir) = buildkit_dir() else { return };
    let cases = case_dirs(dir.join("testfiles"));
    assert!(!cases.is_empty(), "no testfiles cases found");
    let mut tally = Tally::default();
    for case in &cases {
        let text = fs_err::read_to_string(case.join("Dockerfile")).expect("Dockerfile");
        let want = fs_err::read_to_string(case.join("result")).expect("result");
        let got = parse_raw(&text)
            .map(|tree| dump(&tree))
            .map_err(|e| e.to_string());
        tally.record(got.as_ref() == Ok(&want), || {
            format!("{}:\n--- want\n{want}--- got\n{got:?}", case.display())
        });
    }
    tally.finish("testfiles", cases.len());
}

#[test]
fn testfiles_negative_are_errors() {
    let Some(dir) = buildkit_dir() else { return };
    let cases = case_dirs(dir.join("testfiles-negative"));
    assert!(!cases.is_empty(), "no negative cases found");
    let mut tally = Tally::default();
    for case in &cases {
        let text = fs_err::read_to_string(case.join("Dockerfile")).expect("Dockerfile");
        let rejected = parse(&text).is_err() && parse_raw(&text).is_err();
        tally.record(rejected, || {
            format!("{}: parsed without error", case.display())
        });
    }
    tally.finish("testfiles-negative", cases.len());
}

#[test]
fn env_var_test_lines() {
    let Some(dir) = buildkit_dir() else { return };
    let text = fs_err::read_to_string(dir.join("envVarTest")).expect("envVarTest");
    let env: HashMap<String, String> = [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut tally = Tally::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(fields.len(), 3, "bad line {line:?}");
        let (platform, input, want) = (fields[0].trim(), fields[1].trim(), fields[2].trim());
        if platform == "W" {
            continue;
        }
        let want = (want != "error").then(|| want.to_string());
        tally.expect(input, expand_word(input, &env, '\\'), want);
    }
    tally.finish("envVarTest", 100);
}

#[test]
fn words_test_lines() {
    let Some(dir) = buildkit_dir() else { return };
    let text = fs_err::read_to_string(dir.join("wordsTest")).expect("wordsTest");
    let mut env: Vec<(String, String)> = Vec::new();
    let mut tally = Tally::default();
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(assign) = line.strip_prefix("ENV ") {
            let (k, v) = assign.trim_start().split_once('=').expect("ENV k=v");
            // Later values shadow earlier ones.
            env.insert(0, (k.to_string(), v.to_string()));
            continue;
        }
        let (input, want) = line.split_once('|').expect("input | words");
        let input = input.trim();
        let want: Vec<&str> = want.trim_start().split(',').collect();
        let want =
            (want != ["error"]).then(|| want.iter().map(|w| w.to_string()).collect::<Vec<_>>());
        tally.expect(input, expand_words(input, &env, '\\'), want);
    }
    tally.finish("wordsTest", 20);
}
