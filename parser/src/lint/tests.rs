//! One failing and one passing Dockerfile per rule (BuildKit's own cases
//! where it has them), then the `# check=` directive.

use std::collections::HashMap;

use super::*;

/// Inputs for tests: base images by name, a literal `.dockerignore`, and
/// build args.
#[derive(Default)]
struct Fake {
    bases: HashMap<String, BaseImage>,
    ignore: Option<FakeIgnore>,
    build_args: HashMap<String, String>,
}

/// Patterns that match a path exactly or one of its parents; `*` matches
/// every top-level entry. Enough to exercise the rule; the real matcher has
/// its own tests.
struct FakeIgnore(Vec<String>);

impl Ignore for FakeIgnore {
    fn excludes(&self, path: &str) -> bool {
        self.0.iter().any(|p| {
            p == "*" && !path.contains('/') || path == p || path.starts_with(&format!("{p}/"))
        })
    }
    fn has_exceptions(&self) -> bool {
        self.0.iter().any(|p| p.starts_with('!'))
    }
    fn patterns(&self) -> Vec<String> {
        self.0.clone()
    }
}

impl Inputs for Fake {
    fn platform_args(&self) -> Vec<(String, String)> {
        [
            ("TARGETPLATFORM", "linux/amd64"),
            ("TARGETOS", "linux"),
            ("TARGETARCH", "amd64"),
            ("TARGETVARIANT", ""),
            ("BUILDPLATFORM", "linux/amd64"),
            ("BUILDOS", "linux"),
            ("BUILDARCH", "amd64"),
            ("BUILDVARIANT", ""),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
    fn build_arg(&self, name: &str) -> Option<String> {
        self.build_args.get(name).cloned()
    }
    fn base_image(&self, name: &str) -> Option<BaseImage> {
        self.bases.get(name).cloned()
    }
    /// Roughly Docker's grammar: no blanks, no empty tag, lower-case
    /// repository.
    fn valid_reference(&self, name: &str) -> bool {
        let repo = name.split([':', '@']).next().unwrap_or_default();
        !name.is_empty()
            && !name.ends_with([':', '@'])
            && !name.contains(char::is_whitespace)
            && repo == repo.to_lowercase()
    }
    fn dockerignore(&self) -> Option<&dyn Ignore> {
        self.ignore.as_ref().map(|i| i as &dyn Ignore)
    }
}

/// Alpine and golang are known base images; anything else is not.
fn known() -> Fake {
    let env = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let mut fake = Fake::default();
    fake.bases.insert(
        "alpine".into(),
        BaseImage {
            env: env(&[("PATH", "/usr/bin:/bin")]),
            shell: false,
        },
    );
    fake.bases.insert(
        "golang".into(),
        BaseImage {
            env: env(&[("PATH", "/go/bin:/usr/bin"), ("GOPATH", "/go")]),
            shell: false,
        },
    );
    fake
}

/// `line: Rule: message` for each finding.
fn run_with(text: &str, inputs: &Fake) -> Vec<String> {
    lint(text, inputs)
        .unwrap()
        .findings
        .iter()
        .map(|f| format!("{}: {}: {}", f.line, f.rule, f.message))
        .collect()
}

fn run(text: &str) -> Vec<String> {
    run_with(text, &known())
}

/// The findings of `rule` only.
fn only(rule: Rule, text: &str) -> Vec<String> {
    only_with(rule, text, &known())
}

fn only_with(rule: Rule, text: &str, inputs: &Fake) -> Vec<String> {
    let prefix = format!(": {rule}: ");
    run_with(text, inputs)
        .into_iter()
        .filter(|f| f.contains(&prefix))
        .collect()
}

#[test]
fn clean_dockerfile_has_no_findings() {
    let text = "FROM alpine AS build\nWORKDIR /src\nCOPY . .\nRUN make\n\
                FROM scratch\nCOPY --from=build /src/app /app\nENTRYPOINT [\"/app\"]\n";
    assert_eq!(run(text), Vec::<String>::new());
}

#[test]
fn stage_name_casing() {
    assert_eq!(
        only(Rule::StageNameCasing, "FROM alpine AS BadStageName\n"),
        ["1: StageNameCasing: Stage name 'BadStageName' should be lowercase"]
    );
    assert!(only(Rule::StageNameCasing, "FROM alpine AS good-name\n").is_empty());
}

#[test]
fn from_as_casing() {
    assert_eq!(
        only(Rule::FromAsCasing, "FROM alpine as base\n"),
        ["1: FromAsCasing: 'as' and 'FROM' keywords' casing do not match"]
    );
    assert_eq!(
        only(Rule::FromAsCasing, "from alpine AS base\nrun true\n"),
        ["1: FromAsCasing: 'AS' and 'from' keywords' casing do not match"]
    );
    assert!(only(Rule::FromAsCasing, "from alpine as base\n").is_empty());
    // A FROM of mixed case is ConsistentInstructionCasing's business.
    assert!(only(Rule::FromAsCasing, "From alpine as base\n").is_empty());
}

#[test]
fn no_empty_continuation() {
    let text = "FROM alpine\n# a comment\nCOPY Dockerfile \\\n\n.\nCOPY Dockerfile \\\n.\n";
    assert_eq!(
        only(Rule::NoEmptyContinuation, text),
        ["4: NoEmptyContinuation: Empty continuation line"]
    );
    assert!(only(Rule::NoEmptyContinuation, "FROM alpine\nRUN a \\\n  b\n").is_empty());
}

#[test]
fn consistent_instruction_casing() {
    assert_eq!(
        only(Rule::ConsistentInstructionCasing, "From alpine AS a\nFROM alpine AS b\n"),
        ["1: ConsistentInstructionCasing: Command 'From' should match the case of the command majority (uppercase)"]
    );
    assert_eq!(
        only(
            Rule::ConsistentInstructionCasing,
            "FROM alpine\ncopy a /a\ncopy b /b\ncopy c /c\n"
        ),
        ["1: ConsistentInstructionCasing: Command 'FROM' should match the case of the command majority (lowercase)"]
    );
    assert!(only(
        Rule::ConsistentInstructionCasing,
        "from alpine\ncopy a /a\n"
    )
    .is_empty());
    assert!(only(
        Rule::ConsistentInstructionCasing,
        "FROM alpine\nCOPY a /a\n"
    )
    .is_empty());
}

#[test]
fn duplicate_stage_name() {
    assert_eq!(
        only(
            Rule::DuplicateStageName,
            "FROM alpine AS b\nFROM alpine AS B\n"
        ),
        ["2: DuplicateStageName: Duplicate stage name \"b\", stage names should be unique"]
    );
    assert!(only(
        Rule::DuplicateStageName,
        "FROM alpine AS b1\nFROM alpine AS b2\n"
    )
    .is_empty());
}

#[test]
fn reserved_stage_name() {
    assert_eq!(
        only(Rule::ReservedStageName, "FROM alpine AS scratch\nFROM alpine AS context\n"),
        [
            "1: ReservedStageName: Stage name should not use the same name as reserved stage \"scratch\"",
            "2: ReservedStageName: Stage name should not use the same name as reserved stage \"context\""
        ]
    );
    assert!(only(Rule::ReservedStageName, "FROM scratch\nFROM scratch AS a\n").is_empty());
}

#[test]
fn json_args_recommended() {
    assert_eq!(
        only(Rule::JsonArgsRecommended, "FROM alpine\nCMD mycommand\n"),
        ["2: JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals"]
    );
    assert_eq!(
        only(
            Rule::JsonArgsRecommended,
            "FROM alpine\nENTRYPOINT my-program start\n"
        )
        .len(),
        1
    );
    assert!(only(
        Rule::JsonArgsRecommended,
        "FROM alpine\nCMD [\"mycommand\"]\n"
    )
    .is_empty());
    // A SHELL, here or in the stage built on, says the shell is meant.
    let inherited =
        "FROM alpine AS base\nSHELL [\"/bin/bash\", \"-c\"]\nFROM base\nCMD mycommand\n";
    assert!(only(Rule::JsonArgsRecommended, inherited).is_empty());
    let mut fake = known();
    fake.bases.insert(
        "shelly".into(),
        BaseImage {
            env: Vec::new(),
            shell: true,
        },
    );
    assert!(only_with(Rule::JsonArgsRecommended, "FROM shelly\nCMD x\n", &fake).is_empty());
}

#[test]
fn maintainer_deprecated() {
    assert_eq!(
        only(
            Rule::MaintainerDeprecated,
            "FROM alpine\nMAINTAINER me@example.org\n"
        ),
        ["2: MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label"]
    );
    let label = "FROM alpine\nLABEL org.opencontainers.image.authors=\"me@example.org\"\n";
    assert!(only(Rule::MaintainerDeprecated, label).is_empty());
}

#[test]
fn undefined_arg_in_from() {
    assert_eq!(
        only(Rule::UndefinedArgInFrom, "FROM --platform=$BULIDPLATFORM alpine\n"),
        ["1: UndefinedArgInFrom: FROM argument 'BULIDPLATFORM' is not declared (did you mean BUILDPLATFORM?)"]
    );
    assert_eq!(
        only(
            Rule::UndefinedArgInFrom,
            "ARG tag=latest\nFROM alpine:${tag}${version} AS b\n"
        ),
        ["2: UndefinedArgInFrom: FROM argument 'version' is not declared"]
    );
    for ok in [
        "ARG base=alpine\nFROM $base\n",
        "FROM --platform=$BUILDPLATFORM alpine\n",
        "ARG DEBUG\nFROM alpine${DEBUG}\n",
        "ARG DEBUG\nFROM alp${DEBUG:-ine}\n",
    ] {
        assert!(only(Rule::UndefinedArgInFrom, ok).is_empty(), "{ok}");
    }
}

#[test]
fn workdir_relative_path() {
    assert_eq!(
        only(Rule::WorkdirRelativePath, "FROM alpine\nWORKDIR app/\n"),
        ["2: WorkdirRelativePath: Relative workdir \"app/\" can have unexpected results if the base image changes"]
    );
    // Only the first WORKDIR of a stage (or the stages it builds on) counts.
    let after_absolute = "FROM alpine AS a\nWORKDIR /app\nFROM a AS b\nWORKDIR subdir/\n";
    assert!(only(Rule::WorkdirRelativePath, after_absolute).is_empty());
}

#[test]
fn undefined_var() {
    assert_eq!(
        only(
            Rule::UndefinedVar,
            "FROM alpine\nCOPY $foo .\nARG foo=bar\nRUN echo $foo\n"
        ),
        ["2: UndefinedVar: Usage of undefined variable '$foo'"]
    );
    assert_eq!(
        only(
            Rule::UndefinedVar,
            "FROM alpine\nARG DIR_BINARIES=binaries/\nARG DIR_ASSETS=assets/\nCOPY $DIR_ASSET .\n"
        ),
        ["4: UndefinedVar: Usage of undefined variable '$DIR_ASSET' (did you mean $DIR_ASSETS?)"]
    );
    assert_eq!(
        only(
            Rule::UndefinedVar,
            "FROM scratch\nENV PATH=$PAHT:/tmp/bin\n"
        ),
        ["2: UndefinedVar: Usage of undefined variable '$PAHT' (did you mean $PATH?)"]
    );
    for ok in [
        // Declared without a value: set by --build-arg, or empty.
        "FROM alpine\nARG foo\nCOPY Dockerfile${foo} .\n",
        // Inherited from the stage built on.
        "FROM alpine AS base\nARG foo=Dockerfile\nFROM base\nCOPY $foo .\n",
        // RUN is left to the shell.
        "FROM alpine\nRUN echo $HOME\n",
        // Set by the base image.
        "FROM golang\nENV PATH=$GOPATH/bin:$PATH\n",
        // An unknown base image could set anything.
        "FROM not-pulled\nENV PATH=$GOPATH/bin:$PATH\n",
    ] {
        assert!(only(Rule::UndefinedVar, ok).is_empty(), "{ok}");
    }
}

#[test]
fn multiple_instructions_disallowed() {
    let text = "FROM alpine\nENTRYPOINT [\"/a\"]\nENTRYPOINT [\"/b\"]\nCMD [\"/a\"]\nCOPY x /x\n\
                CMD [\"/b\"]\nHEALTHCHECK CMD [\"/a\"]\nHEALTHCHECK NONE\n";
    let want = |kw: &str, line: usize| {
        format!("{line}: MultipleInstructionsDisallowed: Multiple {kw} instructions should not be used in the same stage because only the last one will be used")
    };
    assert_eq!(
        only(Rule::MultipleInstructionsDisallowed, text),
        [
            want("ENTRYPOINT", 2),
            want("CMD", 4),
            want("HEALTHCHECK", 7)
        ]
    );
    let stages = "FROM alpine AS a\nCMD [\"/a\"]\nFROM a AS b\nCMD [\"/b\"]\n";
    assert!(only(Rule::MultipleInstructionsDisallowed, stages).is_empty());
}

#[test]
fn legacy_key_value_format() {
    assert_eq!(
        only(Rule::LegacyKeyValueFormat, "FROM alpine\nENV testkey value\nLABEL key value\n"),
        [
            "2: LegacyKeyValueFormat: \"ENV key=value\" should be used instead of legacy \"ENV key value\" format",
            "3: LegacyKeyValueFormat: \"LABEL key=value\" should be used instead of legacy \"LABEL key value\" format"
        ]
    );
    assert!(only(
        Rule::LegacyKeyValueFormat,
        "FROM alpine\nENV k=v\nLABEL k=\"v w\"\n"
    )
    .is_empty());
}

#[test]
fn redundant_target_platform() {
    assert_eq!(
        only(Rule::RedundantTargetPlatform, "FROM --platform=$TARGETPLATFORM alpine\n"),
        ["1: RedundantTargetPlatform: Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior"]
    );
    assert_eq!(
        only(
            Rule::RedundantTargetPlatform,
            "FROM --platform=${TARGETPLATFORM} alpine\n"
        )
        .len(),
        1
    );
    let build = "FROM --platform=$BUILDPLATFORM alpine\n";
    assert!(only(Rule::RedundantTargetPlatform, build).is_empty());
}

#[test]
fn secrets_used_in_arg_or_env() {
    let text = "FROM alpine\nARG SECRET_PASSPHRASE\nENV SUPER_Secret=foo\n\
                ENV password=bar secret=baz\nARG super_duper_secret_token=foo auth=bar\n\
                ENV apikey=bar sunflower=foo\nENV git_key=\n";
    let found = only(Rule::SecretsUsedInArgOrEnv, text);
    let keys: Vec<&str> = found
        .iter()
        .map(|f| {
            f.split_once('(')
                .map_or("", |(_, k)| k.trim_end_matches(')'))
        })
        .collect();
    assert_eq!(
        keys,
        [
            "ARG \"SECRET_PASSPHRASE\"",
            "ENV \"SUPER_Secret\"",
            "ENV \"password\"",
            "ENV \"secret\"",
            "ARG \"super_duper_secret_token\"",
            "ARG \"auth\"",
            "ENV \"apikey\"",
            "ENV \"git_key\""
        ]
    );
    assert!(found[0].ends_with(
        "Do not use ARG or ENV instructions for sensitive data (ARG \"SECRET_PASSPHRASE\")"
    ));
    let allowed = "FROM alpine\nENV PUBLIC_KEY=\nARG public_token\nARG SECRET_PASSPHRASE_FILE\n\
                   ENV password_file=bar secret_File=baz\nARG AUTH_MODULE_VERSION\n";
    assert!(only(Rule::SecretsUsedInArgOrEnv, allowed).is_empty());
}

#[test]
fn invalid_default_arg_in_from() {
    let mut given = known();
    given.build_args.insert("VERSION".into(), "latest".into());
    assert_eq!(
        only_with(Rule::InvalidDefaultArgInFrom, "ARG VERSION\nFROM busybox:$VERSION\n", &given),
        ["2: InvalidDefaultArgInFrom: Default value for ARG busybox:$VERSION results in empty or invalid base image name"]
    );
    assert_eq!(
        only(Rule::InvalidDefaultArgInFrom, "ARG IMAGE\nFROM $IMAGE\n").len(),
        1
    );
    for ok in [
        "ARG VERSION=latest\nFROM busybox:${VERSION}\n",
        "ARG VARIANT\nFROM busybox:stable${VARIANT}\n",
        "ARG TAG\nFROM alpine:${TAG:-3.14}\n",
    ] {
        assert!(only(Rule::InvalidDefaultArgInFrom, ok).is_empty(), "{ok}");
    }
}

#[test]
fn from_platform_flag_const_disallowed() {
    assert_eq!(
        only(Rule::FromPlatformFlagConstDisallowed, "FROM --platform=linux/amd64 alpine\n"),
        ["1: FromPlatformFlagConstDisallowed: FROM --platform flag should not use constant value \"linux/amd64\""]
    );
    for ok in [
        "FROM --platform=linux/amd64 alpine AS build_amd64\n",
        "FROM --platform=linux/amd64 alpine AS linux\n",
        "FROM --platform=$BUILDPLATFORM alpine\n",
    ] {
        assert!(
            only(Rule::FromPlatformFlagConstDisallowed, ok).is_empty(),
            "{ok}"
        );
    }
}

#[test]
fn copy_ignored_file() {
    let mut fake = known();
    fake.ignore = Some(FakeIgnore(vec!["Dockerfile".into(), "secrets".into()]));
    let text = "FROM alpine\nCOPY Dockerfile .\nADD ./secrets/key /windy\n";
    assert_eq!(
        only_with(Rule::CopyIgnoredFile, text, &fake),
        [
            "2: CopyIgnoredFile: Attempting to Copy file \"Dockerfile\" that is excluded by .dockerignore",
            "3: CopyIgnoredFile: Attempting to Add file \"secrets/key\" that is excluded by .dockerignore"
        ]
    );
    for ok in [
        "FROM alpine\nCOPY app .\n",
        "FROM alpine AS base\nFROM alpine\nCOPY --from=base /Dockerfile .\n",
        "FROM alpine\nADD https://example.com/Dockerfile /\n",
        "FROM alpine\nCOPY . .\n",
    ] {
        assert!(
            only_with(Rule::CopyIgnoredFile, ok, &fake).is_empty(),
            "{ok}"
        );
    }
    // An exception makes the rules too hard to judge without the files.
    fake.ignore = Some(FakeIgnore(vec!["**".into(), "!Dockerfile".into()]));
    assert!(only_with(Rule::CopyIgnoredFile, text, &fake).is_empty());
    // `.` is flagged only when a pattern excludes every entry.
    fake.ignore = Some(FakeIgnore(vec!["*".into()]));
    assert_eq!(
        only_with(Rule::CopyIgnoredFile, "FROM alpine\nCOPY . .\n", &fake),
        ["2: CopyIgnoredFile: Attempting to Copy file \".\" that is excluded by .dockerignore"]
    );
}

#[test]
fn invalid_definition_description() {
    // Experimental: off unless asked for, even with skip=all.
    let good = "# check=skip=all;experimental=InvalidDefinitionDescription\n\
                # foo this is the foo\nARG foo=bar\n\n# base this is the base image\n\
                FROM scratch AS base\n\n# version this is the version number\nARG version=latest\n\n\
                # baz this is the baz\nARG foo=baz bar=qux baz=quux\n#\nARG bit=bat\n\n\
                # a non-descriptive comment\n\nARG spaced=1\n";
    assert!(run(good).is_empty());
    let bad = "# check=experimental=InvalidDefinitionDescription\n# bar this is the bar\n\
               ARG foo=bar\n# BasE this is the BasE image\nFROM scratch AS base\n\
               # definitely a bad comment\nARG version=latest\n# definitely a bad comment\n\
               ARG foo=baz bar=qux baz=quux\n";
    let want = |line: usize, what: &str, key: &str| {
        format!("{line}: InvalidDefinitionDescription: Comment for {what} should follow the format: `# {key} <description>`")
    };
    assert_eq!(
        run(bad),
        [
            want(3, "ARG", "foo"),
            want(5, "FROM", "base"),
            want(7, "ARG", "version"),
            want(9, "ARG", "<arg_key>")
        ]
    );
    let off = "# bar this is the bar\nARG foo=bar\nFROM scratch\n";
    assert!(run(off).is_empty());
}

#[test]
fn expose_proto_casing() {
    assert_eq!(
        only(Rule::ExposeProtoCasing, "FROM alpine\nEXPOSE 80/TcP 8080/TCP 8080/udp\n"),
        [
            "2: ExposeProtoCasing: Defined protocol '80/TcP' in EXPOSE instruction should be lowercase",
            "2: ExposeProtoCasing: Defined protocol '8080/TCP' in EXPOSE instruction should be lowercase"
        ]
    );
    assert!(only(
        Rule::ExposeProtoCasing,
        "FROM alpine\nEXPOSE 80/tcp 53/udp 443\n"
    )
    .is_empty());
}

#[test]
fn check_directive_skips_and_errors() {
    let text = "FROM alpine as base\ncopy Dockerfile .\n";
    assert_eq!(run(text).len(), 2);
    assert!(run(&format!("#check=skip=all\n{text}")).is_empty());
    let report = lint(
        &format!("#check=skip=ConsistentInstructionCasing;error=true\n{text}"),
        &known(),
    )
    .unwrap();
    assert_eq!(report.findings.len(), 1);
    assert_eq!(
        report.violation().as_deref(),
        Some("lint violation found for rules: FromAsCasing")
    );
    let clean = lint("# check=error=true\nFROM alpine\n", &known()).unwrap();
    assert_eq!(clean.violation(), None);
    let without_error = lint(text, &known()).unwrap();
    assert_eq!(without_error.violation(), None);
}

#[test]
fn file_config_reads_only_the_directives() {
    assert!(
        file_config("# syntax=x\n  # check=error=true\nFROM a as b\n")
            .unwrap()
            .error
    );
    assert!(!file_config("FROM a\n# check=error=true\n").unwrap().error);
    assert_eq!(
        file_config("# escape=`\n# check=colour=red\nFROM a\n")
            .unwrap_err()
            .to_string(),
        "2:1: invalid check option \"colour\""
    );
}

#[test]
fn check_comment_skips_for_one_instruction() {
    let text = "FROM alpine\n# check=skip=JSONArgsRecommended // shell form on purpose\n\
                CMD mycommand\nENTRYPOINT mycommand\n";
    assert_eq!(
        only(Rule::JsonArgsRecommended, text),
        ["4: JSONArgsRecommended: JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals"]
    );
}

#[test]
fn bad_check_directive_is_an_error() {
    let err = lint("# check=skip=all;colour=red\nFROM alpine\n", &known()).unwrap_err();
    assert_eq!(err.to_string(), "1:1: invalid check option \"colour\"");
    assert!(matches!(
        lint("FROM alpine\nRUN\n", &known()),
        Err(LintError::Parse(_))
    ));
}

#[test]
fn finding_displays_as_line_col_rule_message() {
    let report = lint("  FROM alpine as base\n", &known()).unwrap();
    assert_eq!(
        report.findings[0].to_string(),
        "1:3: FromAsCasing: 'as' and 'FROM' keywords' casing do not match"
    );
}
