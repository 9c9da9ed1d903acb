use super::*;

#[test]
fn sources_parse_as_buildkit_writes_them() {
    let s = |remote: &str, r: Option<&str>, sub: Option<&str>| GitSource {
        remote: remote.into(),
        reference: r.map(String::from),
        subdir: sub.map(String::from),
    };
    for (src, want) in [
        ("https://h/o/r.git", s("https://h/o/r.git", None, None)),
        (
            "https://h/o/r.git#v1",
            s("https://h/o/r.git", Some("v1"), None),
        ),
        (
            "https://h/o/r.git#main:docs/",
            s("https://h/o/r.git", Some("main"), Some("docs")),
        ),
        (
            "git@h:o/r.git#:sub//x/.",
            s("git@h:o/r.git", None, Some("sub/x")),
        ),
        ("git://h/r#v1:/", s("git://h/r", Some("v1"), None)),
    ] {
        assert_eq!(GitSource::parse(src).unwrap(), want, "{src}");
    }
    for bad in [
        "#v1",
        "https://h/r.git#--upload-pack=x",
        "https://h/r.git#a..b",
        "https://h/r.git#v1:../x",
    ] {
        assert!(GitSource::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn credentials_never_show() {
    for (remote, want) in [
        ("https://u:tok@h/o/r.git", "https://h/o/r.git"),
        ("https://tok@h:8443/r.git", "https://h:8443/r.git"),
        ("https://h/r.git", "https://h/r.git"),
        ("git@h:o/r.git", "git@h:o/r.git"),
        ("https://u:p@h", "https://h"),
    ] {
        assert_eq!(shown(remote), want);
    }
}

#[test]
fn names_git_refuses_are_refused() {
    for (name, ok) in [
        ("a", true),
        (".gitignore", true),
        ("..a", true),
        (".git", false),
        (".GIT", false),
        ("..", false),
        (".", false),
        ("", false),
        ("a/b", false),
    ] {
        assert_eq!(safe_name(name), ok, "{name:?}");
    }
}

#[test]
fn commit_ids_are_40_lowercase_hex_digits() {
    assert!(is_commit_id("fe1a23e2b4d8f47d5f26cde15c37330e376b25df"));
    assert!(!is_commit_id("fe1a23e2"));
    assert!(!is_commit_id("FE1A23E2B4D8F47D5F26CDE15C37330E376B25DF"));
}
