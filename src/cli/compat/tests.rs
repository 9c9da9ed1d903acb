use clap::Parser;

use super::*;

/// The one-line error for `strata ARGS`, which must fail to parse.
fn error_line(args: &str) -> String {
    let args: Vec<String> = args.split(' ').map(String::from).collect();
    let argv = std::iter::once("strata".to_string()).chain(args.iter().cloned());
    let err = crate::cli::Cli::try_parse_from(argv).expect_err("a usage error");
    usage_error(&err, &args)
}

#[test]
fn usage_errors_are_one_line_naming_the_flag() {
    let cases = [
        ("build --cgroup-parent x .", "build --cgroup-parent is not supported yet"),
        ("build --memory-swap x .", "build --memory-swap is not supported yet"),
        (
            "--root /tmp/x build --cpuset-cpus=0-1 .",
            "build --cpuset-cpus is not supported yet",
        ),
        ("build -m 1g .", "build -m is not supported yet"),
        (
            "run -d busybox",
            "run -d is not supported: strata runs containers in the foreground only",
        ),
        (
            "run -dit busybox",
            "run -d is not supported: strata runs containers in the foreground only",
        ),
        (
            "exec c1 sh",
            "'exec' is not supported: strata runs containers in the foreground only",
        ),
        (
            "build --frobnicate .",
            "unknown flag: --frobnicate (see 'strata build --help')",
        ),
        (
            "frobnicate",
            "'frobnicate' is not a strata command (see 'strata --help')",
        ),
        (
            "build",
            "the following required arguments were not provided: <CONTEXT> (see 'strata build --help')",
        ),
        ("system df -v", "system df -v is not supported yet"),
    ];
    for (args, want) in cases {
        assert_eq!(error_line(args), want, "{args}");
    }
}

/// Every flag listed as missing must really be unknown to the parser:
/// whoever adds one removes it from MISSING_FLAGS and docs/compat.md.
#[test]
fn missing_flags_are_unknown_to_the_parser() {
    for m in MISSING_FLAGS {
        let mut args: Vec<String> = m.command.split(' ').map(String::from).collect();
        args.push(format!("--{}", m.long));
        let argv = std::iter::once("strata".to_string()).chain(args.iter().cloned());
        let err = crate::cli::Cli::try_parse_from(argv).expect_err(m.long);
        assert_eq!(
            err.kind(),
            ErrorKind::UnknownArgument,
            "strata {} --{} is accepted now: drop it from cli/compat.rs and mark it yes in docs/compat.md",
            m.command,
            m.long
        );
        if let Some(short) = m.short {
            let line = error_line(&format!("{} -{short}", m.command));
            assert!(line.contains("is not supported"), "{line}");
        }
    }
}

/// docs/compat.md's flag tables say what the parser and MISSING_FLAGS
/// say: `yes` for each flag strata takes, `no` for each it lacks.
#[test]
fn docs_compat_md_agrees_with_the_parser() {
    let doc = fs_err::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/compat.md"))
        .expect("docs/compat.md");
    let mut checked = 0;
    for section in doc.split("\n### ").skip(1) {
        let Some(command) = section
            .lines()
            .next()
            .and_then(|h| h.strip_prefix("`strata "))
            .and_then(|h| h.split('`').next())
        else {
            continue;
        };
        let mut rows: Vec<(String, bool)> = section
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let flag = cells
                    .get(1)?
                    .strip_prefix("`--")?
                    .split(['`', ',', ' '])
                    .next()?;
                let status = cells.get(2)?;
                Some((format!("--{flag}"), status.starts_with("yes")))
            })
            .collect();
        rows.sort();
        assert_eq!(rows, flag_rows(command), "docs/compat.md, strata {command}");
        checked += 1;
    }
    assert!(
        checked >= 8,
        "only {checked} flag tables found in docs/compat.md"
    );
}

#[test]
fn missing_commands_are_not_commands() {
    use clap::CommandFactory;
    let cli = crate::cli::Cli::command();
    for (name, _) in MISSING_COMMANDS {
        assert!(cli.find_subcommand(name).is_none(), "{name} exists now");
    }
}
