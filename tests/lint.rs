//! The lint end to end: `build --check` prints findings as
//! `file:line:col: Rule: message (docs page)` and builds nothing;
//! `# check=error=true` makes it (and a build) exit 1; `skip=` silences
//! rules; a normal build prints the same warnings and still succeeds; under
//! GITHUB_ACTIONS=true findings and errors are also annotations.
#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

mod common;

use std::path::Path;

use common::{busybox_tar, context, Run, Strata};

/// One or more failing cases of every kind of rule: what the text shows,
/// stage names, FROM lines against global ARGs, a stage's environment
/// (with the base image's variables read from the store) and the
/// `.dockerignore`.
const DOCKERFILE: &str = "\
ARG tag=latest
FROM base:${tag}${version} as Build
WORKDIR app
ENV API_TOKEN=x PATH=$PAHT:/bin
COPY $SITE/index.html secret.key ./
CMD [\"one\"]
CMD serve
MAINTAINER me
FROM --platform=linux/amd64 scratch AS scratch
Run true
";

fn findings(path: &Path) -> Vec<String> {
    let f = path.display();
    [
        format!("{f}:2:1: StageNameCasing: Stage name 'Build' should be lowercase (docs/lint/stage-name-casing.md)"),
        format!("{f}:2:1: FromAsCasing: 'as' and 'FROM' keywords' casing do not match (docs/lint/from-as-casing.md)"),
        format!("{f}:2:1: UndefinedArgInFrom: FROM argument 'version' is not declared (docs/lint/undefined-arg-in-from.md)"),
        format!("{f}:3:1: WorkdirRelativePath: Relative workdir \"app\" can have unexpected results if the base image changes (docs/lint/workdir-relative-path.md)"),
        format!("{f}:4:1: UndefinedVar: Usage of undefined variable '$PAHT' (did you mean $PATH?) (docs/lint/undefined-var.md)"),
        format!("{f}:4:1: SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ENV \"API_TOKEN\") (docs/lint/secrets-used-in-arg-or-env.md)"),
        format!("{f}:5:1: CopyIgnoredFile: Attempting to Copy file \"secret.key\" that is excluded by .dockerignore (docs/lint/copy-ignored-file.md)"),
        format!("{f}:6:1: MultipleInstructionsDisallowed: Multiple CMD instructions should not be used in the same stage because only the last one will be used (docs/lint/multiple-instructions-disallowed.md)"),
        format!("{f}:7:1: JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (docs/lint/json-args-recommended.md)"),
        format!("{f}:8:1: MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label (docs/lint/maintainer-deprecated.md)"),
        format!("{f}:9:1: ReservedStageName: Stage name should not use the same name as reserved stage \"scratch\" (docs/lint/reserved-stage-name.md)"),
        format!("{f}:9:1: FromPlatformFlagConstDisallowed: FROM --platform flag should not use constant value \"linux/amd64\" (docs/lint/from-platform-flag-const-disallowed.md)"),
        format!("{f}:10:1: ConsistentInstructionCasing: Command 'Run' should match the case of the command majority (uppercase) (docs/lint/consistent-instruction-casing.md)"),
    ]
    .into()
}

/// A store holding `base:latest`: busybox with SITE in its environment, so
/// `$SITE` is defined by the image and not reported.
fn store_with_base() -> Strata {
    let s = Strata::new();
    let tar = busybox_tar();
    s.run(&[
        "import",
        "--change",
        "ENV SITE=/srv",
        tar.to_str().unwrap(),
        "base:latest",
    ])
    .success();
    s
}

fn check(s: &Strata, dir: &Path, dockerfile: &str) -> Run {
    fs_err::write(dir.join("Dockerfile"), dockerfile).unwrap();
    s.run(&["build", "--check", dir.to_str().unwrap()])
}

#[test]
fn rootless_lint_check_prints_every_finding_and_builds_nothing() {
    let s = store_with_base();
    let ctx = context(&[(".dockerignore", "*.key\n"), ("secret.key", "k")]);
    let before = s.run(&["images", "-q"]).success().stdout;
    let run = check(&s, ctx.path(), DOCKERFILE).success();
    let lines: Vec<&str> = run.stdout.lines().collect();
    let want = findings(&ctx.path().join("Dockerfile"));
    assert_eq!(lines[..lines.len() - 1], want, "{run:#?}");
    assert_eq!(lines.last(), Some(&"Check complete, 13 warnings found."));
    assert_eq!(s.run(&["images", "-q"]).success().stdout, before);

    let clean = check(&s, ctx.path(), "FROM base\nCOPY $SITE /srv\nCMD [\"x\"]\n").success();
    assert_eq!(clean.stdout, "Check complete, no warnings found.\n");
}

#[test]
fn rootless_lint_error_true_exits_1_and_skip_silences() {
    let s = Strata::new();
    let ctx = context(&[]);
    let strict = check(&s, ctx.path(), "# check=error=true\nFROM scratch as base\n");
    assert_eq!(strict.code, Some(1), "{strict:#?}");
    assert!(
        strict
            .stderr
            .contains("lint violation found for rules: FromAsCasing"),
        "{strict:#?}"
    );
    let skipped = check(
        &s,
        ctx.path(),
        "# check=skip=FromAsCasing,StageNameCasing;error=true\nFROM scratch as Base\n",
    )
    .success();
    assert_eq!(skipped.stdout, "Check complete, no warnings found.\n");
    let all = check(
        &s,
        ctx.path(),
        "# check=skip=all\nFROM scratch as Base\nCMD x\n",
    )
    .success();
    assert_eq!(all.stdout, "Check complete, no warnings found.\n");
    let local = check(
        &s,
        ctx.path(),
        "FROM scratch\n# check=skip=JSONArgsRecommended\nCMD x\n",
    )
    .success();
    assert_eq!(local.stdout, "Check complete, no warnings found.\n");
    let bad = check(
        &s,
        ctx.path(),
        "# check=skip=all;colour=red\nFROM scratch\n",
    );
    assert_eq!(bad.code, Some(1), "{bad:#?}");
    assert!(
        bad.stderr.contains(":1:1: invalid check option \"colour\""),
        "{bad:#?}"
    );
}

#[test]
fn rootless_lint_warnings_in_a_build_leave_its_result_alone() {
    let s = Strata::new();
    let ctx = context(&[("hello", "hi\n")]);
    let path = ctx.path().join("Dockerfile");
    let text = "FROM scratch as base\nCOPY hello /hello\nMAINTAINER me\n";
    fs_err::write(&path, text).unwrap();
    let dir = ctx.path().to_str().unwrap();
    let run = s.run(&["build", "-t", "warned", dir]).success();
    let f = path.display();
    assert!(
        run.stderr.contains(&format!(
            "2 warnings found:\n{f}:1:1: FromAsCasing: 'as' and 'FROM' keywords' casing do not match (docs/lint/from-as-casing.md)\n\
             {f}:3:1: MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label (docs/lint/maintainer-deprecated.md)\n"
        )),
        "{run:#?}"
    );
    assert!(
        run.stdout.contains("Successfully tagged warned:latest"),
        "{run:#?}"
    );
    let inspect = s.run(&["inspect", "warned"]).success().stdout;
    assert!(inspect.contains("\"Author\": \"me\""), "{inspect}");

    // A failing build still shows them, and fails for its own reason.
    fs_err::write(&path, "FROM scratch as base\nCOPY missing /m\n").unwrap();
    let failed = s.run(&["build", dir]);
    assert_eq!(failed.code, Some(1), "{failed:#?}");
    assert!(failed.stderr.contains("FromAsCasing"), "{failed:#?}");
    assert!(failed.stderr.contains("COPY missing /m"), "{failed:#?}");

    // error=true: the build does not start.
    fs_err::write(&path, format!("# check=error=true\n{text}")).unwrap();
    let strict = s.run(&["build", "-t", "strict", dir]);
    assert_eq!(strict.code, Some(1), "{strict:#?}");
    assert!(!strict.stdout.contains("Step 1/"), "{strict:#?}");
    assert!(
        strict
            .stderr
            .contains("lint violation found for rules: FromAsCasing, MaintainerDeprecated"),
        "{strict:#?}"
    );
    assert_ne!(s.run(&["inspect", "strict"]).code, Some(0));

    // A `# check=` it cannot read stops a build too, as in BuildKit.
    fs_err::write(&path, format!("# check=error=maybe\n{text}")).unwrap();
    let bad = s.run(&["build", dir]);
    assert_eq!(bad.code, Some(1), "{bad:#?}");
    assert!(
        bad.stderr.contains(":1:1: invalid check option"),
        "{bad:#?}"
    );
    assert!(!bad.stdout.contains("Step 1/"), "{bad:#?}");
}

#[test]
fn rootless_lint_github_actions_annotations() {
    let s = Strata::new();
    let ctx = context(&[]);
    let path = ctx.path().join("Dockerfile");
    fs_err::write(&path, "FROM scratch as base\n").unwrap();
    let dir = ctx.path().to_str().unwrap();
    let run = Run::of(
        s.cmd()
            .env("GITHUB_ACTIONS", "true")
            .args(["build", "--check", dir])
            .output()
            .unwrap(),
    )
    .success();
    let f = path
        .display()
        .to_string()
        .replace(':', "%3A")
        .replace(',', "%2C");
    assert!(
        run.stderr.contains(&format!(
            "::warning file={f},line=1,col=1::FromAsCasing: 'as' and 'FROM' keywords' casing do not match\n"
        )),
        "{run:#?}"
    );

    fs_err::write(&path, "FROM scratch\n  COPPY a b\n").unwrap();
    let failed = Run::of(
        s.cmd()
            .env("GITHUB_ACTIONS", "true")
            .args(["build", dir])
            .output()
            .unwrap(),
    );
    assert_eq!(failed.code, Some(1), "{failed:#?}");
    assert!(
        failed
            .stderr
            .contains(&format!("::error file={f},line=2,col=3::")),
        "{failed:#?}"
    );
    // Outside GitHub Actions there are no workflow commands.
    let plain = s.run(&["build", dir]);
    assert!(!plain.stderr.contains("::error"), "{plain:#?}");
}
