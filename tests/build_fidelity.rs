//! Build behaviours where strata follows Docker BuildKit. Every expected
//! value below was taken from Docker BuildKit (Debian's docker.io 20.10.24,
//! `DOCKER_BUILDKIT=1 docker build`) on the same Dockerfile and context,
//! with a busybox base imported from scripts/busybox-rootfs.sh.
#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

mod common;

use std::path::Path;

use common::{context, Run, Strata};

/// A store with busybox imported as `busybox:local`.
fn strata() -> Strata {
    let s = Strata::new();
    s.import_busybox("busybox:local");
    s
}

fn build(s: &Strata, dir: &Path, tag: &str) -> Run {
    s.run(&["build", "-t", tag, dir.to_str().unwrap()])
}

fn config(s: &Strata, image: &str) -> serde_json::Value {
    let out = s.run(&["inspect", image]).success().stdout;
    serde_json::from_str::<serde_json::Value>(&out).unwrap()[0]["Config"].clone()
}

#[test]
fn rootless_fidelity_json_array_followed_by_text_is_exec_form() {
    let s = strata();
    let dir = context(&[
        ("f", "hi\n"),
        (
            "Dockerfile",
            "FROM busybox:local
SHELL [\"/bin/sh\", \"-c\"] # a comment
RUN [\"sh\", \"-c\", \"echo x > /x\"]]
COPY [\"f\", \"/g\"] trailing
ENTRYPOINT [\"echo\", \"ep\"] extra
CMD [\"echo\",\"hi\"] # comment
",
        ),
    ]);
    build(&s, dir.path(), "json").success();
    let c = config(&s, "json");
    // Docker: "Cmd":["echo","hi"], "Entrypoint":["echo","ep"],
    // "Shell":["/bin/sh","-c"]; /x and /g exist.
    assert_eq!(c["Cmd"], serde_json::json!(["echo", "hi"]));
    assert_eq!(c["Entrypoint"], serde_json::json!(["echo", "ep"]));
    assert_eq!(c["Shell"], serde_json::json!(["/bin/sh", "-c"]));
    let out = s.run(&["run", "--rm", "--entrypoint", "cat", "json", "/x", "/g"]);
    assert_eq!(out.success().stdout, "x\nhi\n");
}

#[test]
fn rootless_fidelity_wildcards_are_filepath_match_and_may_match_nothing() {
    let s = strata();
    let dir = context(&[
        ("x/a.txt", "a\n"),
        ("x/y/b.txt", "b\n"),
        ("x/y/z/c.txt", "c\n"),
        ("w/d.txt", "d\n"),
        ("top.txt", "t\n"),
        ("file-a.txt", "fa\n"),
        ("subdir/s.txt", "s\n"),
        (
            "Dockerfile",
            "FROM busybox:local
COPY **/*.txt /g1/
COPY x/**/c.txt /g2/
COPY x/** /g3/
COPY file-a.txt missing* subdir/ /dst/
COPY missing* /none/
COPY missing* /none2
COPY m1* m2?.txt /none3/
ADD missing* /none4/
COPY --from=busybox:local /nothere* /none5/
",
        ),
    ]);
    build(&s, dir.path(), "globs").success();
    let found = s
        .sh("globs", "find /g1 /g2 /g3 /dst /none* 2>&1 | sort")
        .success()
        .stdout;
    // Docker's `find` output for the same image.
    let docker = "/dst
/dst/file-a.txt
/dst/s.txt
/g1
/g1/a.txt
/g1/d.txt
/g1/s.txt
/g3
/g3/a.txt
/g3/b.txt
/g3/z
/g3/z/c.txt
find: /g2: No such file or directory
find: /none*: No such file or directory
";
    assert_eq!(found, docker);

    // A plain name that is not there still fails.
    let bad = context(&[("Dockerfile", "FROM busybox:local\nCOPY missing /d/\n")]);
    let run = build(&s, bad.path(), "bad");
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("missing"), "{}", run.stderr);
}

#[test]
fn rootless_fidelity_chown_empty_parts_are_zero() {
    let s = strata();
    let dir = context(&[
        ("f", "x\n"),
        (
            "Dockerfile",
            "FROM busybox:local AS src
RUN echo y > /y && chown 5:6 /y
FROM busybox:local
RUN echo 'bob:x:1500:1600::/home/bob:/bin/sh' >> /etc/passwd && echo 'grp:x:1700:' >> /etc/group
COPY --chown=: f /c1
COPY --chown=1234: f /c2
COPY --chown=:5 f /c3
COPY --chown=$U:$G f /c4
COPY --chown=bob: f /c5
COPY --chown=bob f /c6
COPY --chown=:grp f /c7
COPY --chown=1500 f /c8
COPY --from=src --chown=$U /y /e1
COPY --from=src --chown=: /y /e2
",
        ),
    ]);
    build(&s, dir.path(), "chown").success();
    let got = s
        .sh("chown", "stat -c '%n %u:%g' /c* /e1 /e2")
        .success()
        .stdout;
    // Docker's `stat` output for the same image.
    let docker = "/c1 0:0
/c2 1234:0
/c3 0:5
/c4 0:0
/c5 1500:0
/c6 1500:1600
/c7 0:1700
/c8 1500:1500
/e1 5:6
/e2 0:0
";
    assert_eq!(got, docker);
}

#[test]
fn rootless_fidelity_chown_unknown_names_as_buildkit() {
    let s = strata();
    let dir = context(&[
        ("f", "x\n"),
        (
            "Dockerfile",
            "FROM busybox:local
COPY --chown=nosuchuser f /a
COPY --chown=nosuchuser:nosuchgroup f /b
COPY --chown=1234:nosuchgroup f /c
COPY --chown=nosuchuser:1234 f /d
COPY --chown=nobody:nosuchgroup f /e
ADD --chown=nosuchuser:nogroup f /g
",
        ),
    ]);
    build(&s, dir.path(), "unknown").success();
    // Docker BuildKit's `stat` output for the same image: an unknown user
    // is 0:0, an unknown group leaves the user's gid.
    let docker = "/a 0:0
/b 0:0
/c 1234:1234
/d 0:1234
/e 65534:65534
/g 0:65534
";
    let got = s
        .sh("unknown", "stat -c '%n %u:%g' /a /b /c /d /e /g")
        .success()
        .stdout;
    assert_eq!(got, docker);
    // Only where the image lacks the file a name needs does BuildKit fail
    // (`open .../etc/passwd: no such file or directory`), a COPY and a
    // WORKDIR for the USER alike; a number needs no file.
    for (lines, want) in [
        (
            "RUN rm /etc/passwd\nCOPY --chown=1234:nosuchgroup f /c",
            None,
        ),
        (
            "RUN rm /etc/passwd\nCOPY --chown=nosuchuser f /a",
            Some("--chown nosuchuser"),
        ),
        (
            "RUN rm /etc/group\nCOPY --chown=nobody:nosuchgroup f /d",
            Some("--chown nobody:nosuchgroup"),
        ),
        (
            "RUN rm /etc/group\nUSER 1000:nosuchgroup\nWORKDIR /w",
            Some("USER 1000:nosuchgroup"),
        ),
    ] {
        let df = format!("FROM busybox:local\n{lines}\n");
        fs_err::write(dir.path().join("Dockerfile"), &df).unwrap();
        let run = build(&s, dir.path(), "unknown2");
        match want {
            None => _ = run.success(),
            Some(want) => {
                assert_eq!(run.code, Some(1), "{lines}: {run:#?}");
                assert!(run.stderr.contains(want), "{lines}: {}", run.stderr);
                assert!(
                    run.stderr.contains("unable to find"),
                    "{lines}: {}",
                    run.stderr
                );
            }
        }
    }
}

#[test]
fn rootless_fidelity_symlinks_meeting_directories() {
    let s = strata();
    let base = context(&[(
        "Dockerfile",
        "FROM busybox:local
RUN mkdir -p /dst/x /elsewhere /real && echo keep > /dst/x/keep && ln -s /elsewhere /dst/sub && ln -s /real /link
",
    )]);
    build(&s, base.path(), "symbase").success();
    let dir = context(&[("b/sub/file", "f\n"), ("c/g", "g\n"), ("Dockerfile", "")]);
    fs_err::create_dir(dir.path().join("a")).unwrap();
    fs_err::os::unix::fs::symlink("target", dir.path().join("a/x")).unwrap();
    let df = dir.path().join("Dockerfile");
    // Docker: `ERROR: cannot replace to directory <rootfs>/dst/x with
    // file` and `ERROR: cannot copy to non-directory: <rootfs>/dst/sub`.
    for (copy, want) in [
        (
            "COPY a/ /dst/",
            "cannot replace to directory /dst/x with file",
        ),
        ("COPY b/ /dst/", "cannot copy to non-directory: /dst/sub"),
    ] {
        fs_err::write(&df, format!("FROM symbase\n{copy}\n")).unwrap();
        let run = build(&s, dir.path(), "sym");
        assert_eq!(run.code, Some(1), "{copy}: {run:#?}");
        assert!(run.stderr.contains(want), "{copy}: {}", run.stderr);
    }
    // The destination itself a symlink is followed (Docker: /real/g and
    // /elsewhere/file).
    fs_err::write(&df, "FROM symbase\nCOPY c/ /link/\nCOPY b/sub/ /dst/sub\n").unwrap();
    build(&s, dir.path(), "sym").success();
    assert_eq!(
        s.sh("sym", "cat /real/g /elsewhere/file").success().stdout,
        "g\nf\n"
    );
}

#[test]
fn rootless_fidelity_workdir_makes_its_directory_for_the_user() {
    let s = strata();
    let passwd = "root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
app:x:1000:300::/home/app:/bin/sh
";
    let dir = context(&[
        ("passwd", passwd),
        ("group", "root:x:0:\nnogroup:x:65534:\nstaff:x:300:\n"),
        (
            "Dockerfile",
            "FROM busybox:local
COPY passwd group /etc/
WORKDIR /tmp/
WORKDIR /a//b/../c/.
WORKDIR rel/x
USER 1000
WORKDIR /owned
WORKDIR sub
USER app
WORKDIR /named
USER app:nogroup
WORKDIR /named2
USER 1000:2000
WORKDIR /owned2/deep
USER ghost
WORKDIR /ghost
USER 1:ghostgrp
WORKDIR /ghostgrp
USER nobody
WORKDIR /tmp
WORKDIR /
",
        ),
    ]);
    build(&s, dir.path(), "wd").success();
    // No RUN follows any WORKDIR, yet each made its directory, for the USER
    // then in effect (1000 is uid:uid whatever passwd says; an unknown
    // user is root, an unknown group the user's gid). Docker's owners:
    let got = s
        .sh(
            "wd",
            "stat -c '%n %u:%g %a' /a/c /a/c/rel/x /owned /owned/sub /named /named2 \
             /owned2 /owned2/deep /ghost /ghostgrp; test -e /a/b || echo no /a/b",
        )
        .success()
        .stdout;
    let docker = "/a/c 0:0 755
/a/c/rel/x 0:0 755
/owned 1000:1000 755
/owned/sub 1000:1000 755
/named 1000:300 755
/named2 1000:65534 755
/owned2 1000:2000 755
/owned2/deep 1000:2000 755
/ghost 0:0 755
/ghostgrp 1:1 755
no /a/b
";
    assert_eq!(got, docker);
    // A layer for every WORKDIR but `/` (an empty one where the directory
    // was there already): Docker's image has 13 layers.
    let layers = s.run(&["inspect", "-f", "{{len .RootFS.Layers}}", "wd"]);
    assert_eq!(layers.success().stdout, "13\n");
    // The config keeps an absolute path as written; a relative one is
    // joined and cleaned (Docker's WorkingDir for each).
    for (lines, want) in [
        ("WORKDIR /tmp/", "/tmp/"),
        ("WORKDIR /a//b/../c/.", "/a//b/../c/."),
        ("WORKDIR /a//b/../c/.\nWORKDIR rel/x", "/a/c/rel/x"),
    ] {
        let dir = context(&[("Dockerfile", &format!("FROM busybox:local\n{lines}\n"))]);
        build(&s, dir.path(), "wd1").success();
        assert_eq!(config(&s, "wd1")["WorkingDir"], want, "{lines}");
    }
}

/// The stdout of `strata ARGS` run under a pseudo-terminal (`script`),
/// with the terminal's escapes and all.
fn on_terminal(s: &Strata, args: &str) -> String {
    let command = format!("{} {args}", common::strata_bin().display());
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("STRATA_ROOT", s.root.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    text
}

#[test]
fn rootless_fidelity_large_context_and_copy_show_progress_on_a_terminal() {
    let s = strata();
    let dir = context(&[("Dockerfile", "FROM busybox:local\nCOPY big /big\n")]);
    let big = fs_err::File::create(dir.path().join("big")).unwrap();
    big.set_len(64 << 20).unwrap();
    let build = format!("build -t big {}", dir.path().display());
    // The first build copies the file, reading it once (its sum taken on
    // the way): a bar for the copy, in the live view and in plain mode on
    // a terminal alike (Docker BuildKit: `transferring context: 67.11MB`).
    for mode in ["tty", "plain"] {
        let out = on_terminal(&s, &format!("{build} --no-cache --progress={mode}"));
        assert!(out.contains("Step 2: Copying"), "{mode}: {out}");
        assert!(out.contains("64.00 MiB"), "{mode}: {out}");
        assert!(!out.contains("Reading context"), "{mode}: {out}");
    }
    // A changed file under a step the cache has seen is read to key the
    // step first (BuildKit's context transfer), then copied.
    big.set_len(65 << 20).unwrap();
    let out = on_terminal(&s, &format!("{build} --progress=tty"));
    assert!(out.contains("Step 2: Reading context"), "{out}");
    assert!(out.contains("Step 2: Copying"), "{out}");
    // The same as events: from 0 to the whole, a few of them, not one per
    // read; nothing of the kind where a pipe is not a terminal.
    let path = dir.path().to_str().unwrap();
    let run = s.run(&[
        "build",
        "--no-cache",
        "--progress=rawjson",
        "-t",
        "big",
        path,
    ]);
    let bytes: Vec<serde_json::Value> = run
        .success()
        .stderr
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "step_bytes")
        .collect();
    let whole = 65u64 << 20;
    assert!((3..=102).contains(&bytes.len()), "{bytes:#?}");
    assert_eq!(bytes[0]["done"], 0);
    assert_eq!(bytes[bytes.len() - 1]["done"], whole);
    assert!(
        bytes
            .iter()
            .all(|e| e["total"] == whole && e["work"] == "copy" && e["step"]["number"] == 2),
        "{bytes:#?}"
    );
    let plain = s.run(&["build", "--no-cache", "-t", "big", path]).success();
    assert!(!format!("{plain:?}").contains("Copying"), "{plain:#?}");
    // A small COPY shows nothing.
    big.set_len(1 << 20).unwrap();
    let out = on_terminal(&s, &format!("{build} --no-cache --progress=tty"));
    assert!(!out.contains("Copying"), "{out}");
}

#[test]
fn rootless_fidelity_what_already_matched_docker_stays_so() {
    use std::os::unix::fs::PermissionsExt;
    let s = strata();
    let dir = context(&[
        ("ex/sub/a", "a\n"),
        ("keep/k", "k\n"),
        (".dockerignore", "ex\n"),
        ("su", ""),
        ("sg", ""),
        (
            "Dockerfile",
            "ARG B=busybox:local
ARG SET=1
FROM ${B:-nope}${UNSET:+bad}
ARG SET
ARG UNSET
COPY su sg /perm/
COPY keep ${UNSET:-/d1}${SET:+/plus}/
VOLUME /vol
EXPOSE 80 443/udp 8000-8001/tcp
",
        ),
    ]);
    let p = dir.path();
    fs_err::create_dir(p.join("keep/st")).unwrap();
    for (name, mode) in [("su", 0o4755), ("sg", 0o2711), ("keep/st", 0o1777)] {
        fs_err::set_permissions(p.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    build(&s, p, "kept").success();
    // Docker BuildKit's output of the same `stat`, `ls` and `test` in a RUN
    // after these steps: setuid, setgid and sticky bits kept, `${V:-x}` and
    // `${V:+x}` expanded in FROM and in a destination, no /vol made.
    let got = s
        .sh(
            "kept",
            "stat -c '%n %a' /perm/su /perm/sg /d1/plus/st; ls /d1/plus; test -e /vol || echo no /vol",
        )
        .success()
        .stdout;
    assert_eq!(
        got,
        "/perm/su 4755\n/perm/sg 2711\n/d1/plus/st 1777\nk\nst\nno /vol\n"
    );
    // Docker: {"443/udp":{},"80/tcp":{},"8000/tcp":{},"8001/tcp":{}} {"/vol":{}}
    let c = config(&s, "kept");
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"443/udp":{},"80/tcp":{},"8000/tcp":{},"8001/tcp":{}})
    );
    assert_eq!(c["Volumes"], serde_json::json!({"/vol":{}}));
    // A directory the ignore file drops whole cannot be copied (Docker:
    // `"/ex" not found: not found`).
    fs_err::write(p.join("Dockerfile"), "FROM busybox:local\nCOPY ex /ex/\n").unwrap();
    let run = build(&s, p, "kept2");
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.stderr.contains("excluded by .dockerignore"),
        "{}",
        run.stderr
    );
}
