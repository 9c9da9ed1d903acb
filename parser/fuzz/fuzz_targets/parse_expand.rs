//! Fuzzes the whole parser (bytes in: UTF-8 check, raw tree, typed
//! instructions, stages, dump, error rendering, per-step and heredoc-body
//! expansion), the lint, and the expander on the same input. The only rule: errors are fine, panics are
//! bugs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_parser::{expand_word, expand_words, parse_bytes, parse_raw};

/// Inputs that know every base image (as empty), so the lint judges every
/// variable. (parser/tests/property.rs also gives it a `.dockerignore`.)
struct Inputs;

impl strata_parser::Inputs for Inputs {
    fn platform_args(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    fn base_image(&self, _name: &str) -> Option<strata_parser::BaseImage> {
        Some(strata_parser::BaseImage::default())
    }
    fn valid_reference(&self, _name: &str) -> bool {
        true
    }
}

fuzz_target!(|data: &[u8]| {
    let env = [("A", "a b"), ("EMPTY", ""), ("PWD", "/home"), ("P", "80/tcp")];
    match parse_bytes(data) {
        Ok(parsed) => {
            for stage in &parsed.stages {
                for step in std::iter::once(&stage.from).chain(&stage.steps) {
                    let _ = step.expanded(&env, parsed.escape());
                    for doc in &step.raw.heredocs {
                        let _ = doc.expanded_body(&env, parsed.escape());
                    }
                }
            }
            let _ = format!("{parsed:?}");
        }
        Err(e) => {
            let _ = e.render(&String::from_utf8_lossy(data));
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        for escape in ['\\', '`'] {
            let _ = expand_word(text, &env, escape);
            let _ = expand_words(text, &env, escape);
        }
        if let Ok(report) = strata_parser::lint(text, &Inputs) {
            let _ = report.violation();
        }
        if let Ok(tree) = parse_raw(text) {
            let _ = strata_parser::dump(&tree);
            for w in &tree.warnings {
                let _ = w.render(text);
            }
        }
    }
});
