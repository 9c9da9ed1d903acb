//! The plan (pure): which stages a target needs and how they depend on
//! each other, and every step with its number (`Step N/M`), its place in
//! the Dockerfile, its kind and its declared inputs.
//!
//! FROM lines are expanded here (over the global args, all they can see),
//! so a stage's base, and through it the graph, is exact. Everything else
//! expands over a stage's own ARG/ENV while it runs: inputs whose text has
//! variables (`COPY --from=$STAGE`) are declared as [`Input::Deferred`] and
//! make the stage depend on every earlier stage.

use std::collections::{BTreeSet, HashMap};

use strata_parser::instructions::{Mount, Source};
use strata_parser::{Instruction, ParseError, Parsed, Stage, StageRef, Step};

use super::fetch;

/// What one build does, in order.
#[derive(Debug)]
pub struct Plan<'p> {
    /// The stages the target needs, each after the stages it depends on.
    pub stages: Vec<StagePlan<'p>>,
    /// The target stage's index in the Dockerfile.
    pub target: usize,
    /// Steps in all: each needed stage's FROM and its instructions.
    pub total: usize,
}

/// One stage of the plan.
#[derive(Debug)]
pub struct StagePlan<'p> {
    pub stage: &'p Stage,
    /// The FROM line expanded: what the stage starts from, or why that
    /// could not be known (reported when the stage runs).
    pub base: Result<Base, ParseError>,
    /// Earlier stages this one needs (its base, `COPY --from`).
    pub deps: BTreeSet<usize>,
    pub from: PlannedStep<'p>,
    pub steps: Vec<PlannedStep<'p>>,
}

/// A stage's expanded FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    pub reference: StageRef,
    pub platform: Option<String>,
}

/// One step of the plan.
#[derive(Debug)]
pub struct PlannedStep<'p> {
    /// 1-based, across the whole build.
    pub number: usize,
    pub step: &'p Step,
    pub kind: StepKind,
    pub inputs: Vec<Input>,
}

/// What executes a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    From,
    Run,
    Copy,
    Add,
    /// WORKDIR: a config change, and its directory made in a layer.
    Workdir,
    /// ARG: a value for later steps, no config change.
    Arg,
    /// ENV, LABEL, CMD, ...: a config change only.
    Config,
}

impl StepKind {
    /// A step that makes no layer (metadata steps in a row make one image).
    pub fn is_metadata(self) -> bool {
        matches!(self, StepKind::Arg | StepKind::Config)
    }

    pub fn of(instruction: &Instruction) -> StepKind {
        match instruction {
            Instruction::From { .. } => StepKind::From,
            Instruction::Run { .. } => StepKind::Run,
            Instruction::Copy(_) => StepKind::Copy,
            Instruction::Add(_) => StepKind::Add,
            Instruction::Arg(_) => StepKind::Arg,
            Instruction::Workdir(_) => StepKind::Workdir,
            _ => StepKind::Config,
        }
    }
}

/// A declared input of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// An image by name (a FROM, or a `--from` that names no stage).
    Image(String),
    /// An earlier stage's result.
    Stage(usize),
    /// A `--from` with variables, resolved when the step runs.
    Deferred(String),
    /// Build-context files, by source pattern as written.
    Context(String),
    /// An ADD download.
    Url(String),
    /// An inline file (`COPY <<EOF`), by name.
    Heredoc(String),
    /// A `RUN --mount` (its `from=` is declared too, as a stage or image).
    Mount(Mount),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("target stage \"{0}\" could not be found")]
    NoTarget(String),
}

impl StagePlan<'_> {
    /// Whether step `i` is a metadata step the next step does not continue
    /// (its run of metadata steps becomes an image there).
    pub fn ends_metadata_run(&self, i: usize) -> bool {
        let this = self.steps.get(i).is_some_and(|s| s.kind.is_metadata());
        let next = self.steps.get(i + 1).is_some_and(|s| s.kind.is_metadata());
        this && !next
    }
}

/// The plan for `target` (default: the last stage); `globals` are the
/// values of the global args, which FROM lines expand over.
pub fn plan<'p>(
    parsed: &'p Parsed,
    target: Option<&str>,
    globals: &HashMap<String, String>,
) -> Result<Plan<'p>, PlanError> {
    let target = match target {
        Some(name) => parsed
            .stage(name)
            .map(|s| s.index)
            .ok_or_else(|| PlanError::NoTarget(name.to_string()))?,
        None => parsed.stages.len().saturating_sub(1),
    };
    let all: Vec<(Result<Base, ParseError>, BTreeSet<usize>)> = parsed
        .stages
        .iter()
        .map(|stage| {
            let base = base_of(parsed, stage, globals);
            let deps = deps_of(parsed, stage, &base);
            (base, deps)
        })
        .collect();
    let needed = needed(&all, target);
    let mut number = 0;
    let mut stages = Vec::new();
    for (index, (base, deps)) in all.into_iter().enumerate() {
        if !needed.contains(&index) {
            continue;
        }
        let stage = &parsed.stages[index];
        let mut next = |step: &'p Step| {
            number += 1;
            planned(parsed, stage.index, step, number)
        };
        let from = next(&stage.from);
        let steps = stage.steps.iter().map(&mut next).collect();
        stages.push(StagePlan {
            stage,
            base,
            deps,
            from,
            steps,
        });
    }
    Ok(Plan {
        stages,
        target,
        total: number,
    })
}

fn base_of(
    parsed: &Parsed,
    stage: &Stage,
    globals: &HashMap<String, String>,
) -> Result<Base, ParseError> {
    match stage.from.expanded(globals, parsed.escape())? {
        Instruction::From {
            image, platform, ..
        } => Ok(Base {
            reference: parsed.resolve_from(&image, stage.index),
            platform,
        }),
        // The parser starts every stage with a FROM.
        _ => Ok(Base {
            reference: stage.base.clone(),
            platform: None,
        }),
    }
}

fn deps_of(parsed: &Parsed, stage: &Stage, base: &Result<Base, ParseError>) -> BTreeSet<usize> {
    let mut deps = BTreeSet::new();
    if let Ok(Base {
        reference: StageRef::Stage(i),
        ..
    }) = base
    {
        deps.insert(*i);
    }
    for step in &stage.steps {
        for input in inputs(parsed, stage.index, step) {
            match input {
                Input::Stage(i) => {
                    deps.insert(i);
                }
                // An expanded --from may name any earlier stage.
                Input::Deferred(_) => deps.extend(0..stage.index),
                _ => {}
            }
        }
    }
    deps
}

/// The target and every stage it needs, transitively.
fn needed(all: &[(Result<Base, ParseError>, BTreeSet<usize>)], target: usize) -> BTreeSet<usize> {
    let mut needed = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if i < all.len() && needed.insert(i) {
            todo.extend(all[i].1.iter().copied());
        }
    }
    needed
}

fn planned<'p>(parsed: &Parsed, stage: usize, step: &'p Step, number: usize) -> PlannedStep<'p> {
    PlannedStep {
        number,
        step,
        kind: StepKind::of(&step.instruction),
        inputs: inputs(parsed, stage, step),
    }
}

/// What a step declares it reads, before expansion.
fn inputs(parsed: &Parsed, stage: usize, step: &Step) -> Vec<Input> {
    let (fc, add) = match &step.instruction {
        Instruction::From { image, .. } => {
            return vec![match parsed.resolve_from(image, stage) {
                StageRef::Stage(i) => Input::Stage(i),
                StageRef::Image(name) => Input::Image(name),
            }]
        }
        Instruction::Run { mounts, .. } => {
            return mounts
                .iter()
                .flat_map(|m| mount_inputs(parsed, stage, m))
                .collect()
        }
        Instruction::Copy(fc) => (fc, false),
        Instruction::Add(fc) => (fc, true),
        _ => return Vec::new(),
    };
    let mut out: Vec<Input> = fc
        .from
        .as_deref()
        .map(|f| from_input(parsed, stage, f))
        .into_iter()
        .collect();
    let from_rootfs = fc.from.is_some();
    for source in &fc.sources {
        out.push(match source {
            Source::Heredoc(h) => Input::Heredoc(h.name.clone()),
            Source::Path(p) if add && !from_rootfs && fetch::is_url(p) => Input::Url(p.clone()),
            // With --from, paths name files of that stage or image.
            Source::Path(_) if from_rootfs => continue,
            Source::Path(p) => Input::Context(p.clone()),
        });
    }
    out
}

/// What a `--from` (of COPY or a mount) names.
fn from_input(parsed: &Parsed, stage: usize, from: &str) -> Input {
    if from.contains('$') {
        return Input::Deferred(from.to_string());
    }
    match parsed.resolve_copy_from(from, stage) {
        Ok(StageRef::Stage(i)) => Input::Stage(i),
        Ok(StageRef::Image(name)) => Input::Image(name),
        // The parser refused bad literal references already.
        Err(_) => Input::Deferred(from.to_string()),
    }
}

/// A RUN mount, and the stage or image its `from=` names.
fn mount_inputs(parsed: &Parsed, stage: usize, mount: &Mount) -> Vec<Input> {
    let from = match mount {
        Mount::Bind { from, .. } | Mount::Cache { from, .. } => from.as_deref(),
        _ => None,
    };
    let from = from.map(|f| from_input(parsed, stage, f));
    from.into_iter()
        .chain([Input::Mount(mount.clone())])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn globals(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// (Dockerfile, target, stages built in order, total steps)
    #[test]
    fn stages_needed_and_numbered() {
        let cases: &[(&str, Option<&str>, &[usize], usize)] = &[
            ("FROM a\nRUN x\n", None, &[0], 2),
            (
                "FROM a AS one\nRUN x\nFROM b AS two\nRUN y\nFROM one\nRUN z\n",
                None,
                &[0, 2],
                4,
            ),
            (
                "FROM a AS one\nRUN x\nFROM b AS two\nRUN y\nFROM one\nRUN z\n",
                Some("two"),
                &[1],
                2,
            ),
            (
                "FROM a AS one\nFROM b AS two\nFROM c\nCOPY --from=two /x /x\n",
                None,
                &[1, 2],
                3,
            ),
            (
                "FROM a AS one\nFROM b AS two\nFROM c\nARG S=one\nCOPY --from=$S /x /x\n",
                None,
                &[0, 1, 2],
                5,
            ),
            (
                "ARG B=one\nFROM a AS one\nFROM b AS two\nFROM ${B}\n",
                None,
                &[0, 2],
                2,
            ),
            (
                "FROM a AS one\nFROM b\nCOPY --from=0 /x /\n",
                None,
                &[0, 1],
                3,
            ),
            (
                "FROM a AS one\nFROM b\nRUN --mount=from=one,target=/x true\n",
                None,
                &[0, 1],
                3,
            ),
        ];
        for (df, target, want, total) in cases {
            let parsed = strata_parser::parse(df).unwrap();
            let g = globals(&[("B", "one")]);
            let p = plan(&parsed, *target, &g).unwrap();
            let got: Vec<usize> = p.stages.iter().map(|s| s.stage.index).collect();
            assert_eq!(&got, want, "{df}");
            assert_eq!(p.total, *total, "{df}");
            let numbers: Vec<usize> = p
                .stages
                .iter()
                .flat_map(|s| std::iter::once(&s.from).chain(&s.steps))
                .map(|s| s.number)
                .collect();
            assert_eq!(numbers, (1..=*total).collect::<Vec<_>>(), "{df}");
        }
    }

    #[test]
    fn a_missing_target_is_an_error() {
        let parsed = strata_parser::parse("FROM a AS one\n").unwrap();
        assert_eq!(
            plan(&parsed, Some("two"), &HashMap::new()).unwrap_err(),
            PlanError::NoTarget("two".into())
        );
    }

    /// (instruction, its kind, its declared inputs)
    #[test]
    fn steps_declare_kind_and_inputs() {
        let cases: Vec<(&str, StepKind, Vec<Input>)> = vec![
            ("RUN make", StepKind::Run, vec![]),
            ("ENV A=1", StepKind::Config, vec![]),
            ("ARG A", StepKind::Arg, vec![]),
            (
                "COPY a b* /d/",
                StepKind::Copy,
                vec![Input::Context("a".into()), Input::Context("b*".into())],
            ),
            (
                "COPY --from=one /x /y",
                StepKind::Copy,
                vec![Input::Stage(0)],
            ),
            (
                "COPY --from=alpine:3 /x /y",
                StepKind::Copy,
                vec![Input::Image("alpine:3".into())],
            ),
            (
                "COPY --from=$S /x /y",
                StepKind::Copy,
                vec![Input::Deferred("$S".into())],
            ),
            (
                "ADD http://h/f local /d/",
                StepKind::Add,
                vec![
                    Input::Url("http://h/f".into()),
                    Input::Context("local".into()),
                ],
            ),
            (
                "COPY http://h/f /d",
                StepKind::Copy,
                vec![Input::Context("http://h/f".into())],
            ),
            (
                "RUN --mount=type=cache,target=/c --mount=from=one,target=/o true",
                StepKind::Run,
                vec![
                    Input::Mount(strata_parser::instructions::Mount::Cache {
                        target: "/c".into(),
                        id: None,
                        sharing: strata_parser::instructions::Sharing::Shared,
                        from: None,
                        source: None,
                        readonly: false,
                        ownership: Default::default(),
                    }),
                    Input::Stage(0),
                    Input::Mount(strata_parser::instructions::Mount::Bind {
                        target: "/o".into(),
                        source: None,
                        from: Some("one".into()),
                        readwrite: false,
                    }),
                ],
            ),
            (
                "COPY <<EOF /d\nhi\nEOF",
                StepKind::Copy,
                vec![Input::Heredoc("EOF".into())],
            ),
        ];
        for (line, kind, inputs) in cases {
            let df = format!("FROM a AS one\nFROM b\n{line}\n");
            let parsed = strata_parser::parse(&df).unwrap();
            let p = plan(&parsed, None, &HashMap::new()).unwrap();
            let last = p.stages.last().unwrap();
            let step = &last.steps[0];
            assert_eq!(step.kind, kind, "{line}");
            assert_eq!(step.inputs, inputs, "{line}");
        }
    }

    #[test]
    fn metadata_runs_end_before_a_layer_step() {
        let parsed =
            strata_parser::parse("FROM a\nENV A=1\nLABEL b=2\nRUN x\nARG C\nCMD y\n").unwrap();
        let p = plan(&parsed, None, &HashMap::new()).unwrap();
        let s = &p.stages[0];
        let ends: Vec<bool> = (0..s.steps.len()).map(|i| s.ends_metadata_run(i)).collect();
        assert_eq!(ends, [false, true, false, false, true]);
    }

    #[test]
    fn from_lines_expand_over_the_globals() {
        let parsed =
            strata_parser::parse("ARG V=3\nFROM --platform=linux/amd64 alpine:$V\n").unwrap();
        let p = plan(&parsed, None, &globals(&[("V", "3.19")])).unwrap();
        assert_eq!(
            p.stages[0].base,
            Ok(Base {
                reference: StageRef::Image("alpine:3.19".into()),
                platform: Some("linux/amd64".into()),
            })
        );
    }
}
