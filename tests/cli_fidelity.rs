//! Docker CLI habits: one-line usage errors with exit 125, `--format`
//! templates, aliases, `version`, `rmi` of untagged parents. Expected
//! values were taken from Docker (Debian's docker.io 20.10.24) on the same
//! images.
#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

mod common;

use sha2::Digest as _;

use common::{busybox_tar, context, Strata};

#[test]
fn rootless_cli_unsupported_flags_are_one_line_exit_125() {
    let s = Strata::new();
    let dir = context(&[("Dockerfile", "FROM scratch\n")]);
    let ctx = dir.path().to_str().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (
            &["build", "--cgroup-parent", "x", ctx],
            "build --cgroup-parent is not supported yet",
        ),
        (
            &["build", "--cpuset-cpus", "0", ctx],
            "build --cpuset-cpus is not supported yet",
        ),
        (
            &["run", "-d", "busybox"],
            "run -d is not supported: strata runs containers in the foreground only",
        ),
        (
            &["exec", "c1", "sh"],
            "'exec' is not supported: strata runs containers in the foreground only",
        ),
        (
            &["images", "--filter", "dangling=true"],
            "images --filter is not supported yet",
        ),
        (
            &["build", "--no-such-flag", ctx],
            "unknown flag: --no-such-flag (see 'strata build --help')",
        ),
    ];
    for (args, want) in cases {
        let run = s.run(args);
        assert_eq!(run.code, Some(125), "{args:?}: {run:#?}");
        assert_eq!(run.stderr, format!("strata: {want}\n"), "{args:?}");
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
}

/// A docker-archive of busybox with a fixed config: the same image (the
/// same id) in Docker and in strata. Returns the archive and the config's
/// digest (the image id).
fn same_image(dir: &std::path::Path) -> (std::path::PathBuf, String) {
    let layer = fs_err::read(busybox_tar()).unwrap();
    let diff_id = hex::encode(sha2::Sha256::digest(&layer));
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z","config":{{"Env":["PATH=/usr/bin:/bin","A=1"],"Cmd":["sh"],"Labels":{{"k":"v"}}}},"rootfs":{{"type":"layers","diff_ids":["sha256:{diff_id}"]}},"history":[{{"created":"2024-01-01T00:00:00Z","created_by":"test"}}]}}"#
    );
    let id = hex::encode(sha2::Sha256::digest(config.as_bytes()));
    let manifest =
        format!(r#"[{{"Config":"{id}.json","RepoTags":["fid/same:v1"],"Layers":["layer.tar"]}}]"#);
    let path = dir.join("same.tar");
    let mut tar = tar::Builder::new(fs_err::File::create(&path).unwrap());
    for (name, bytes) in [
        (format!("{id}.json"), config.as_bytes()),
        ("layer.tar".to_string(), &layer[..]),
        ("manifest.json".to_string(), manifest.as_bytes()),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, name, bytes).unwrap();
    }
    tar.finish().unwrap();
    (path, id)
}

#[test]
fn rootless_cli_format_prints_what_docker_prints() {
    let s = Strata::new();
    let dir = tempfile::tempdir().unwrap();
    let (archive, id) = same_image(dir.path());
    s.run(&["load", "-i", archive.to_str().unwrap()]).success();
    let short = &id[..12];
    // `docker images --format '{{.Repository}}:{{.Tag}} {{.ID}}' fid/same`
    // after `docker load` of the same archive: `fid/same:v1 4c2f334fa1d7`
    // (the id is the config's digest, computed here).
    let out = s.run(&[
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
        "fid/same",
    ]);
    assert_eq!(out.success().stdout, format!("fid/same:v1 {short}\n"));
    let out = s.run(&[
        "images",
        "--format",
        "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.CreatedAt}}",
        "fid/same",
    ]);
    assert_eq!(
        out.success().stdout,
        format!(
            "REPOSITORY   TAG       IMAGE ID       CREATED AT\nfid/same     v1        {short}   2024-01-01 00:00:00 +0000 UTC\n"
        )
    );
    // `docker inspect -f '{{.Id}} {{.Config.Env}}' fid/same:v1`.
    let out = s.run(&["inspect", "-f", "{{.Id}} {{.Config.Env}}", "fid/same:v1"]);
    assert_eq!(
        out.success().stdout,
        format!("sha256:{id} [PATH=/usr/bin:/bin A=1]\n")
    );
    // Docker: `map[k:v] [sh] [] {"k":"v"} linux [fid/same:v1]`.
    let out = s.run(&[
        "image",
        "inspect",
        "-f",
        "{{.Config.Labels}} {{.Config.Cmd}} {{.Config.Entrypoint}} {{json .Config.Labels}} {{.Os}} {{.RepoTags}}",
        "fid/same:v1",
    ]);
    assert_eq!(
        out.success().stdout,
        "map[k:v] [sh] [] {\"k\":\"v\"} linux [fid/same:v1]\n"
    );
    // Docker: `{"Comment":"","CreatedAt":"2024-01-01T00:00:00Z",
    // "CreatedBy":"test","CreatedSince":...,"ID":"4c2f334fa1d7",...}`.
    let out = s.run(&[
        "history",
        "--format",
        "{{.ID}} {{.CreatedAt}} {{.CreatedBy}}",
        "fid/same:v1",
    ]);
    assert_eq!(
        out.success().stdout,
        format!("{short} 2024-01-01T00:00:00Z test\n")
    );
    // A missing field fails as in Docker (`map has no entry for key`), exit 1.
    let out = s.run(&["inspect", "-f", "{{.Nope}}", "fid/same:v1"]);
    assert_eq!(out.code, Some(1), "{out:#?}");
    // The aliases list the same.
    let ls = s
        .run(&["image", "ls", "--format", "{{.ID}}"])
        .success()
        .stdout;
    assert_eq!(ls, format!("{short}\n"));
    let ps = s.run(&["container", "ls", "-a", "--format", "{{json .}}"]);
    assert_eq!(ps.success().stdout, "");
}

#[test]
fn rootless_cli_rmi_deletes_untagged_parents() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let dir = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN echo 1 > /one\nRUN echo 2 > /two\n",
    )]);
    s.run(&["build", "-q", "-t", "two", dir.path().to_str().unwrap()])
        .success();
    let all = |s: &Strata| s.run(&["images", "-a", "-q"]).success().stdout;
    // busybox, the RUN one step and the tagged top.
    assert_eq!(all(&s).lines().count(), 3, "{}", all(&s));
    let out = s.run(&["rmi", "two"]).success().stdout;
    // Docker (classic builder images): `Untagged: two:latest`, then a
    // `Deleted:` line for the image and each untagged parent it leaves.
    assert!(
        out.starts_with("Untagged: two:latest\nDeleted: sha256:"),
        "{out}"
    );
    assert!(out.matches("Deleted: sha256:").count() >= 2, "{out}");
    assert_eq!(all(&s).lines().count(), 1, "{}", all(&s));

    // --no-prune keeps them.
    s.run(&[
        "build",
        "-q",
        "--no-cache",
        "-t",
        "two",
        dir.path().to_str().unwrap(),
    ])
    .success();
    s.run(&["rmi", "--no-prune", "two"]).success();
    assert_eq!(all(&s).lines().count(), 2, "{}", all(&s));
}

#[test]
fn rootless_cli_version_names_its_parts() {
    let out = Strata::new().run(&["version"]).success().stdout;
    for key in [
        "Version:",
        "Git commit:",
        "Rust version:",
        "Storage driver:",
        "Isolation:",
        "Kernel:",
    ] {
        assert!(out.contains(key), "{key} missing in {out}");
    }
    assert!(out.contains("rootless"), "{out}");
}

#[test]
fn rootless_cli_system_prune_and_df() {
    let s = Strata::new();
    s.import_busybox("busybox");
    // The steps of a stage no tagged image stands on are a dangling chain.
    let dir = context(&[(
        "Dockerfile",
        "FROM busybox AS tools\nRUN echo 1 > /one\nRUN echo 2 > /two\nFROM busybox\nCOPY --from=tools /two /\n",
    )]);
    s.run(&["build", "-q", "-t", "app", dir.path().to_str().unwrap()])
        .success();
    let all = |s: &Strata| s.run(&["images", "-a", "-q"]).success().stdout;
    assert_eq!(all(&s).lines().count(), 4, "{}", all(&s));
    let out = s.run(&["system", "prune", "-f"]).success().stdout;
    assert_eq!(out.matches("deleted: sha256:").count(), 2, "{out}");
    // busybox and app are left.
    assert_eq!(all(&s).lines().count(), 2, "{}", all(&s));

    // A container that has exited is not active (Docker counts running ones).
    s.run(&["run", "busybox", "true"]).success();
    let df = s
        .run(&[
            "system",
            "df",
            "--format",
            "{{.Type}} {{.TotalCount}} {{.Active}}",
        ])
        .success()
        .stdout;
    assert!(df.contains("Containers 1 0\n"), "{df}");
    assert!(df.contains("Images 2 1\n"), "{df}");
}

/// The backquoted words of a markdown table cell (`--memory`, `-m`).
fn quoted(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// Every command and flag docs/compat.md says strata refuses (`no`), as
/// the arguments that name it: (`["build", "--memory"]`, what the error
/// must name).
fn refused_in_compat_md() -> Vec<(Vec<String>, String)> {
    // Read at build time: the tests run from a copy without docs/.
    let doc = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/compat.md"));
    let mut refused = Vec::new();
    let mut command: Option<String> = None; // the flags' command, in a flag table
    for line in doc.lines() {
        if let Some(head) = line.strip_prefix("### ") {
            command = match quoted(head).first() {
                Some(_) if head.contains("buildah build") => Some("build".into()),
                Some(c) => c.strip_prefix("strata ").map(str::to_string),
                None => None,
            };
            continue;
        }
        if line.starts_with("## ") {
            command = None;
        }
        let cells: Vec<&str> = line.split(" | ").collect();
        let (Some(what), Some(status)) = (cells.first(), cells.get(1)) else {
            continue;
        };
        if !status.starts_with("no") {
            continue;
        }
        for word in quoted(what) {
            let named = match &command {
                Some(c) => {
                    let mut args: Vec<String> = c.split(' ').map(String::from).collect();
                    args.push(word.to_string());
                    (args, format!("{c} {word}"))
                }
                // A command of the command tables: `buildx (other than
                // build)` is the whole of buildx but build.
                None => (vec![word.to_string()], format!("'{word}'")),
            };
            refused.push(named);
        }
    }
    refused
}

#[test]
fn rootless_cli_everything_compat_md_refuses_is_one_line_exit_125() {
    let s = Strata::new();
    let refused = refused_in_compat_md();
    // The tables hold some 150 of them (Docker's and buildah's).
    assert!(refused.len() > 100, "{refused:?}");
    for (args, named) in refused {
        let mut argv: Vec<&str> = args.iter().map(String::as_str).collect();
        argv.extend(["x", "."]);
        let run = s.run(&argv);
        assert_eq!(run.code, Some(125), "{argv:?}: {run:#?}");
        assert!(run.stdout.is_empty(), "{argv:?}: {run:#?}");
        let line = run.stderr.strip_suffix('\n').unwrap_or("");
        assert!(
            line.starts_with("strata: ") && !line.contains('\n'),
            "{argv:?}: {run:#?}"
        );
        // A flag strata knows of from Docker says it is not supported; one
        // only buildah has is an unknown flag; either way it is named.
        let flag = named.rsplit(' ').next().unwrap();
        let said = line.contains(&format!("{named} is not supported"))
            || line.contains(&format!("unknown flag: {flag} "))
            || (named.starts_with('\'') && line.contains(&named));
        assert!(said, "{argv:?} must name {named}: {line}");
    }
}

/// A permission error names the path it met, in one line, exit 125. The
/// test user's own files are readable to strata whatever their mode (it is
/// root in its user namespace, as Docker's root would be), so the file is
/// one of root's that the test user may not read.
#[test]
fn rootless_cli_permission_errors_name_the_path() {
    let secret = "/etc/shadow";
    assert!(
        fs_err::File::open(secret).is_err(),
        "run as an unprivileged user"
    );
    let s = Strata::new();
    let dir = context(&[("Dockerfile", "FROM scratch\n")]);
    let ctx = dir.path().to_str().unwrap();
    let cases: [&[&str]; 3] = [
        &["build", "-f", secret, ctx],
        &["load", "-i", secret],
        &["import", secret, "x"],
    ];
    for args in cases {
        let run = s.run(args);
        assert_eq!(run.code, Some(125), "{args:?}: {run:#?}");
        assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(secret) && run.stderr.contains("Permission denied"),
            "{args:?}: {}",
            run.stderr
        );
    }
}
