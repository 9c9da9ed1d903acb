//! BuildKit's Dockerfile parser and shell-lexer test data, read in place from
//! the shared conformance folder (see its README for the formats).
//!
//! The folder is `$STRATA_CONFORMANCE_DIR`, or `../../shared/conformance`
//! from this crate. When it is missing the tests fail under `CI=true` and
//! print a note otherwise.

use std::collections::HashMap;
use std::fs;
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
    eprintln!(
        "note: conformance data missing at {}; skipped outside CI",
        dir.display()
    );
    None
}

fn case_dirs(dir: PathBuf) -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = fs::read_dir(dir)
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
    let mut failures = Vec::new();
    for case in &cases {
        let text = fs::read_to_string(case.join("Dockerfile")).expect("Dockerfile");
        let want = fs::read_to_string(case.join("result")).expect("result");
        match parse_raw(&text) {
            Ok(tree) => {
                let got = dump(&tree);
                if got != want {
                    failures.push(format!(
                        "{}:\n--- want\n{want}--- got\n{got}",
                        case.display()
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: error {e}", case.display())),
        }
    }
    eprintln!(
        "testfiles: {} passed, {} failed",
        cases.len() - failures.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn testfiles_negative_are_errors() {
    let Some(dir) = buildkit_dir() else { return };
    let cases = case_dirs(dir.join("testfiles-negative"));
    assert!(!cases.is_empty(), "no negative cases found");
    let mut failures = Vec::new();
    for case in &cases {
        let text = fs::read_to_string(case.join("Dockerfile")).expect("Dockerfile");
        if parse(&text).is_ok() || parse_raw(&text).is_ok() {
            failures.push(case.display().to_string());
        }
    }
    eprintln!(
        "testfiles-negative: {} passed, {} failed",
        cases.len() - failures.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "parsed without error: {failures:?}");
}

#[test]
fn env_var_test_lines() {
    let Some(dir) = buildkit_dir() else { return };
    let text = fs::read_to_string(dir.join("envVarTest")).expect("envVarTest");
    let env: HashMap<String, String> = [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let (mut run, mut failures) = (0, Vec::new());
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
        run += 1;
        let got = expand_word(input, &env, '\\');
        let ok = match &got {
            Ok(s) => want != "error" && s == want,
            Err(_) => want == "error",
        };
        if !ok {
            failures.push(format!("{input:?}: want {want:?}, got {got:?}"));
        }
    }
    eprintln!(
        "envVarTest: {} passed, {} failed",
        run - failures.len(),
        failures.len()
    );
    assert!(run > 100, "too few cases read: {run}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn words_test_lines() {
    let Some(dir) = buildkit_dir() else { return };
    let text = fs::read_to_string(dir.join("wordsTest")).expect("wordsTest");
    let mut env: Vec<(String, String)> = Vec::new();
    let (mut run, mut failures) = (0, Vec::new());
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
        run += 1;
        let got = expand_words(input, &env, '\\');
        let ok = match &got {
            Ok(words) => want != ["error"] && *words == want,
            Err(_) => want == ["error"],
        };
        if !ok {
            failures.push(format!("{input:?}: want {want:?}, got {got:?}"));
        }
    }
    eprintln!(
        "wordsTest: {} passed, {} failed",
        run - failures.len(),
        failures.len()
    );
    assert!(run > 20, "too few cases read: {run}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
