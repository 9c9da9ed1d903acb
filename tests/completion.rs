//! `strata completion SHELL` and the man pages, both generated from the CLI
//! definition: the scripts and pages name the real commands and flags.
#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

mod common;

use common::Strata;

#[test]
fn completion_scripts_know_the_commands_and_flags() {
    let s = Strata::new();
    let bash = s.run(&["completion", "bash"]).success().stdout;
    assert!(bash.contains("complete -F _strata"), "{bash}");
    assert!(bash.contains("build") && bash.contains("--tag"), "{bash}");
    assert!(bash.contains("--check"), "{bash}");
    // Internal commands are not offered.
    assert!(!bash.contains("container-init"), "{bash}");
    // bash itself completes with it.
    let script = tempfile::NamedTempFile::new().unwrap();
    fs_err::write(script.path(), &bash).unwrap();
    let complete = |words: &str, cword: usize| {
        let shell = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; _strata strata \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; echo \"${{COMPREPLY[@]}}\"",
            script.path().display()
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &shell])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(complete("strata bu", 1), "build");
    assert_eq!(complete("strata build --ta", 2), "--tag --target");
    let zsh = s.run(&["completion", "zsh"]).success().stdout;
    assert!(zsh.starts_with("#compdef strata"), "{zsh}");
    assert!(zsh.contains("--tag"), "{zsh}");
    let fish = s.run(&["completion", "fish"]).success().stdout;
    assert!(fish.contains("complete -c strata"), "{fish}");
    assert!(fish.contains("-l tag"), "{fish}");
    let bad = s.run(&["completion", "powershell"]);
    assert_eq!(bad.code, Some(125), "{bad:#?}");
}

#[test]
fn man_pages_are_written_per_command() {
    let s = Strata::new();
    let dir = tempfile::tempdir().unwrap();
    s.run(&["man-pages", dir.path().to_str().unwrap()])
        .success();
    let build = fs_err::read_to_string(dir.path().join("strata-build.1")).unwrap();
    assert!(build.contains(".TH strata-build 1"), "{build}");
    assert!(
        build.contains("\\-\\-check") && build.contains("\\-\\-tag"),
        "{build}"
    );
    for page in ["strata.1", "strata-run.1", "strata-system-df.1"] {
        assert!(dir.path().join(page).is_file(), "{page}");
    }
    for hidden in [
        "strata-container-init.1",
        "strata-man-pages.1",
        "strata-help.1",
    ] {
        assert!(!dir.path().join(hidden).exists(), "{hidden}");
    }
}
