//! The rules the text alone decides: keyword casing (ConsistentInstructionCasing,
//! FromAsCasing), stage names (StageNameCasing, DuplicateStageName,
//! ReservedStageName), MaintainerDeprecated, LegacyKeyValueFormat,
//! NoEmptyContinuation and InvalidDefinitionDescription.

use std::collections::HashSet;

use super::{at, Comments, Finding, Rule};
use crate::error::WarningKind;
use crate::instructions::Instruction;
use crate::raw::{RawInstruction, RawTree};
use crate::stages::Parsed;

/// Stage names BuildKit reserves: `scratch` (the empty image) and
/// `context` (the build context in `--from`).
const RESERVED_STAGE_NAMES: [&str; 2] = ["context", "scratch"];

pub(super) fn check(tree: &RawTree, parsed: &Parsed, comments: &Comments, out: &mut Vec<Finding>) {
    for w in &tree.warnings {
        if let WarningKind::EmptyContinuationLine { .. } = w.kind {
            out.push(at(
                w.line,
                1,
                Rule::NoEmptyContinuation,
                "Empty continuation line".into(),
            ));
        }
    }
    stage_names(parsed, out);
    casing(parsed, out);
    for step in parsed.stages.iter().flat_map(|s| &s.steps) {
        let raw = &step.raw;
        let here = |rule, message| at(raw.span.start_line, raw.col, rule, message);
        match &step.instruction {
            Instruction::Maintainer(_) => out.push(here(
                Rule::MaintainerDeprecated,
                "Maintainer instruction is deprecated in favor of using label".into(),
            )),
            Instruction::Env(_) | Instruction::Label(_) if legacy_pairs(raw) => {
                let name = &raw.keyword;
                out.push(here(
                    Rule::LegacyKeyValueFormat,
                    format!("\"{name} key=value\" should be used instead of legacy \"{name} key value\" format"),
                ))
            }
            _ => {}
        }
    }
    descriptions(parsed, comments, out);
}

/// ENV and LABEL arguments come as (key, value, separator) triples; the
/// legacy `key value` form has an empty separator.
fn legacy_pairs(raw: &RawInstruction) -> bool {
    raw.args
        .chunks(3)
        .any(|pair| pair.get(2).is_some_and(String::is_empty))
}

/// The name as written after AS.
fn written_name(raw: &RawInstruction) -> Option<&str> {
    match raw.args.as_slice() {
        [_, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => Some(name),
        _ => None,
    }
}

fn stage_names(parsed: &Parsed, out: &mut Vec<Finding>) {
    let mut seen = HashSet::new();
    for stage in &parsed.stages {
        let raw = &stage.from.raw;
        let here = |rule, message| at(raw.span.start_line, raw.col, rule, message);
        if let (Some(written), [_, as_kw, _]) = (written_name(raw), raw.args.as_slice()) {
            if written.to_lowercase() != written {
                out.push(here(
                    Rule::StageNameCasing,
                    format!("Stage name '{written}' should be lowercase"),
                ));
            }
            if !as_matches_from(&raw.keyword, as_kw) {
                out.push(here(
                    Rule::FromAsCasing,
                    format!(
                        "'{as_kw}' and '{}' keywords' casing do not match",
                        raw.keyword
                    ),
                ));
            }
        }
        let Some(name) = &stage.name else { continue };
        if RESERVED_STAGE_NAMES.contains(&name.as_str()) {
            out.push(here(
                Rule::ReservedStageName,
                format!("Stage name should not use the same name as reserved stage {name:?}"),
            ));
        }
        if !seen.insert(name.clone()) {
            out.push(here(
                Rule::DuplicateStageName,
                format!("Duplicate stage name {name:?}, stage names should be unique"),
            ));
        }
    }
}

/// `AS` must follow FROM's case; a FROM of mixed case is left to
/// ConsistentInstructionCasing.
fn as_matches_from(from: &str, as_kw: &str) -> bool {
    if from == from.to_lowercase() {
        as_kw == as_kw.to_lowercase()
    } else if from == from.to_uppercase() {
        as_kw == as_kw.to_uppercase()
    } else {
        true
    }
}

/// Keywords all upper or all lower case: the majority decides (upper on a
/// tie); mixed-case keywords (`From`) count for neither. Global ARGs are
/// not counted, as in BuildKit.
fn casing(parsed: &Parsed, out: &mut Vec<Finding>) {
    let raws: Vec<&RawInstruction> = parsed
        .stages
        .iter()
        .flat_map(|s| std::iter::once(&s.from).chain(&s.steps))
        .map(|step| &step.raw)
        .collect();
    let is_lower = |k: &str| k == k.to_lowercase();
    let is_upper = |k: &str| k == k.to_uppercase();
    let lower = raws.iter().filter(|r| is_lower(&r.keyword)).count();
    let upper = raws
        .iter()
        .filter(|r| is_upper(&r.keyword) && !is_lower(&r.keyword))
        .count();
    let (fits, want): (&dyn Fn(&str) -> bool, &str) = if lower > upper {
        (&is_lower, "lowercase")
    } else {
        (&is_upper, "uppercase")
    };
    for raw in raws.into_iter().filter(|r| !fits(&r.keyword)) {
        out.push(at(
            raw.span.start_line,
            raw.col,
            Rule::ConsistentInstructionCasing,
            format!(
                "Command '{}' should match the case of the command majority ({want})",
                raw.keyword
            ),
        ));
    }
}

/// A comment right above `FROM ... AS name` or `ARG name` should start with
/// that name (BuildKit reads it as the description of the stage or arg).
fn descriptions(parsed: &Parsed, comments: &Comments, out: &mut Vec<Finding>) {
    let defined = parsed.global_args.iter().chain(
        parsed
            .stages
            .iter()
            .flat_map(|s| std::iter::once(&s.from).chain(&s.steps)),
    );
    for step in defined {
        let (instruction, keys): (&str, Vec<&str>) = match &step.instruction {
            Instruction::From { name: Some(n), .. } => ("FROM", vec![n]),
            Instruction::Arg(decls) => ("ARG", decls.iter().map(|d| d.name.as_str()).collect()),
            _ => continue,
        };
        let raw = &step.raw;
        let Some(last) = comments.get(&raw.span.start_line).and_then(|c| c.last()) else {
            continue;
        };
        let first_word = last.split(' ').next().unwrap_or_default();
        if keys.is_empty() || keys.contains(&first_word) {
            continue;
        }
        let example = if keys.len() > 1 { "<arg_key>" } else { keys[0] };
        out.push(at(
            raw.span.start_line,
            raw.col,
            Rule::InvalidDefinitionDescription,
            format!(
                "Comment for {instruction} should follow the format: `# {example} <description>`"
            ),
        ));
    }
}
