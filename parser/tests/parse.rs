//! The public API end to end: stages, references, expansion of steps,
//! warnings, byte input, and rendered errors (snapshotted).

use std::collections::HashMap;

use strata_parser::instructions::{Deferred, PortRange, Protocol, UserGroup};
use strata_parser::{
    parse, parse_bytes, Instruction, ParseErrorKind, StageError, StageRef, WarningKind,
};

const MULTI: &str = "\
# syntax=docker/dockerfile:1
ARG BASE=alpine
ARG VERSION
FROM ${BASE}:3 AS Build
RUN make
FROM build AS test
COPY --from=0 /a /b
COPY --from=BUILD /c /d
RUN --mount=type=bind,from=build,target=/x true
FROM scratch
COPY --from=test /e /f
";

#[test]
fn stages_and_global_args() {
    let parsed = parse(MULTI).unwrap();
    assert_eq!(
        parsed.directives.syntax.as_deref(),
        Some("docker/dockerfile:1")
    );
    assert_eq!(parsed.global_args.len(), 2);
    let names: Vec<Option<&str>> = parsed.stages.iter().map(|s| s.name.as_deref()).collect();
    assert_eq!(names, [Some("build"), Some("test"), None]);
    assert_eq!(
        parsed.stages[0].base,
        StageRef::Image("${BASE}:3".to_string())
    );
    assert_eq!(parsed.stages[1].base, StageRef::Stage(0));
    assert_eq!(parsed.stages[1].steps.len(), 3);
    assert_eq!(parsed.stages[2].steps[0].span().start_line, 11);
    assert_eq!(parsed.stage("BUILD").map(|s| s.index), Some(0));
}

#[test]
fn references_resolve_by_name_or_index() {
    let parsed = parse(MULTI).unwrap();
    assert_eq!(parsed.resolve_copy_from("0", 1), Ok(StageRef::Stage(0)));
    assert_eq!(parsed.resolve_copy_from("Build", 2), Ok(StageRef::Stage(0)));
    assert_eq!(parsed.resolve_copy_from("test", 2), Ok(StageRef::Stage(1)));
    assert_eq!(
        parsed.resolve_copy_from("alpine:3", 1),
        Ok(StageRef::Image("alpine:3".to_string()))
    );
    assert_eq!(
        parsed.resolve_copy_from("2", 1),
        Err(StageError::BadIndex {
            index: 2,
            current: 1
        })
    );
    assert_eq!(
        parsed.resolve_copy_from("test", 1),
        Err(StageError::ForwardReference {
            name: "test".to_string()
        })
    );
    assert_eq!(parsed.resolve_from("build", 1), StageRef::Stage(0));
    assert_eq!(
        parsed.resolve_from("build", 0),
        StageRef::Image("build".to_string())
    );
}

#[test]
fn steps_expand_to_final_values() {
    let text = "FROM a\nCOPY --chown=${U}:${G} --chmod=$M src \"$D\"\nEXPOSE $P\nENV X=\"$D\" Y=${U:-x}\nWORKDIR ${D}/w\nRUN echo $U\nONBUILD COPY $D /\n";
    let parsed = parse(text).unwrap();
    let env: HashMap<String, String> = [
        ("U", "app"),
        ("G", "staff"),
        ("M", "0750"),
        ("D", "/srv dir"),
        ("P", "53/udp 80"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let steps = &parsed.stages[0].steps;
    let expanded: Vec<Instruction> = steps
        .iter()
        .map(|s| s.expanded(&env, parsed.escape()).unwrap())
        .collect();
    let Instruction::Copy(copy) = &expanded[0] else {
        panic!("not COPY")
    };
    assert_eq!(
        copy.chown,
        Some(UserGroup {
            user: "app".into(),
            group: Some("staff".into())
        })
    );
    assert_eq!(copy.chmod, Some(Deferred::Value(0o750)));
    assert_eq!(copy.dest, "/srv dir");
    assert_eq!(
        expanded[1],
        Instruction::Expose(vec![
            Deferred::Value(PortRange {
                start: 53,
                end: 53,
                protocol: Protocol::Udp
            }),
            Deferred::Value(PortRange {
                start: 80,
                end: 80,
                protocol: Protocol::Tcp
            }),
        ])
    );
    let Instruction::Env(pairs) = &expanded[2] else {
        panic!("not ENV")
    };
    assert_eq!(
        (pairs[0].value.as_str(), pairs[1].value.as_str()),
        ("/srv dir", "app")
    );
    assert_eq!(expanded[3], Instruction::Workdir("/srv dir/w".into()));
    // Left to the shell, and to the child build.
    assert_eq!(expanded[4], steps[4].instruction);
    assert_eq!(expanded[5], steps[5].instruction);
    assert!(!steps[4].instruction.takes_expansion());

    let bad = parse("FROM a\nWORKDIR ${X:?set X}\n").unwrap();
    let err = bad.stages[0].steps[0]
        .expanded(&HashMap::new(), '\\')
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "2:1: cannot expand WORKDIR: column 1: X: set X"
    );
}

#[test]
fn warnings_are_values() {
    let parsed = parse("FROM a\nMAINTAINER me\nRUN a \\\n\n b\nCMD [\"oops\"\n").unwrap();
    let kinds: Vec<&WarningKind> = parsed.warnings.iter().map(|w| &w.kind).collect();
    assert_eq!(kinds.len(), 2);
    assert!(matches!(
        kinds[0],
        WarningKind::EmptyContinuationLine { .. }
    ));
    let rendered: Vec<String> = parsed.warnings.iter().map(|w| w.to_string()).collect();
    insta::assert_snapshot!(rendered.join("\n"));
}

#[test]
fn bytes_in() {
    assert!(parse_bytes(b"FROM a\n").is_ok());
    let err = parse_bytes(b"FROM a\nRUN \xe2\x82 x\n").unwrap_err();
    assert_eq!(err.kind, ParseErrorKind::InvalidUtf8 { offset: 11 });
    assert_eq!((err.line, err.col), (2, 5));
    assert_eq!(err.to_string(), "2:5: invalid UTF-8 at byte offset 11");
}

/// A name given twice is allowed (BuildKit warns, DuplicateStageName): a
/// reference means the latest earlier stage of that name, --target the last.
#[test]
fn duplicate_stage_names_resolve_to_the_latest() {
    let parsed =
        parse("FROM a AS one\nFROM one AS two\nFROM b AS ONE\nFROM one\nCOPY --from=one x y\n")
            .unwrap();
    assert_eq!(parsed.stages[1].base, StageRef::Stage(0));
    assert_eq!(parsed.stages[3].base, StageRef::Stage(2));
    assert_eq!(parsed.resolve_copy_from("one", 3), Ok(StageRef::Stage(2)));
    assert_eq!(parsed.resolve_copy_from("one", 1), Ok(StageRef::Stage(0)));
    assert_eq!(parsed.stage("One").map(|s| s.index), Some(2));
}

/// Errors rendered with their source line and caret.
#[test]
fn rendered_errors() {
    let cases = [
        "FROM alpine\nCOPPY . /app\n",
        "FROM alpine\n\tRUN --nope x\n",
        "RUN x\nFROM a\n",
        "FROM a AS one\nCOPY --from=two x y\nFROM b AS two\n",
        "FROM a\nCOPY --from=3 x y\n",
        "FROM a\nRUN <<EOF\nnever closed\n",
        "FROM a\nENV A\n",
        "# escape=x\nFROM a\n",
        "FROM a\nCMD [\"a\", 1]\n",
        "FROM a\nONBUILD FROM b\n",
        "FROM a\nRUN --mount=type=cache,dst=/c,sharing=sometimes make\n",
        "FROM a\nEXPOSE 80 8o/tcp\n",
        "FROM a AS Stage_1 AS\n",
        "FROM a AS 1st\n",
        "FROM a\nHEALTHCHECK --interval=5s PING x\n",
        "FROM a\nLABEL version=1 beta\n",
        "FROM a\nCOPY --link --link x y\n",
        "",
    ];
    let mut out = String::new();
    for text in cases {
        let rendered = match parse(text) {
            Ok(_) => "unexpectedly parsed".to_string(),
            Err(e) => e.render(text),
        };
        out.push_str(&format!("--- {text:?}\n{rendered}\n"));
    }
    let bytes = b"FROM a\nRUN \xff\n";
    let err = parse_bytes(bytes).unwrap_err();
    out.push_str(&format!(
        "--- invalid UTF-8\n{}\n",
        err.render(&String::from_utf8_lossy(bytes))
    ));
    insta::assert_snapshot!(out);
}
