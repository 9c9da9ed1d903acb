//! Table tests for typed instructions: each instruction and flag, and a
//! snapshot of every error message.

use std::time::Duration;

use super::*;
use crate::raw::parse_raw;

fn typed(line: &str) -> Result<Instruction, String> {
    let tree = parse_raw(line).map_err(|e| e.to_string())?;
    let raw = tree.instructions().next().ok_or("no instruction")?;
    Instruction::from_raw(raw).map_err(|e| e.to_string())
}

fn ok(line: &str) -> Instruction {
    typed(line).unwrap_or_else(|e| panic!("{line}: {e}"))
}

fn copy(line: &str) -> FileCopy {
    match ok(line) {
        Instruction::Copy(c) | Instruction::Add(c) => c,
        other => panic!("not a copy: {other:?}"),
    }
}

fn s(v: &str) -> String {
    v.to_string()
}

#[test]
fn from_forms() {
    assert_eq!(
        ok("FROM --platform=$BUILDPLATFORM golang:1.22 AS Build"),
        Instruction::From {
            image: s("golang:1.22"),
            platform: Some(s("$BUILDPLATFORM")),
            name: Some(s("build")),
        }
    );
    assert_eq!(
        ok("from scratch"),
        Instruction::From {
            image: s("scratch"),
            platform: None,
            name: None
        }
    );
}

#[test]
fn run_forms_and_flags() {
    let Instruction::Run {
        command,
        mounts,
        network,
        security,
        heredocs,
    } = ok("RUN --mount=type=cache,target=/c --mount=type=secret,id=s --network=none --security=insecure make")
    else {
        panic!("not RUN")
    };
    assert_eq!(command, Command::Shell(s("make")));
    assert_eq!(mounts.len(), 2);
    assert_eq!(network, Some(Network::None));
    assert_eq!(security, Some(Security::Insecure));
    assert!(heredocs.is_empty());
    assert!(
        matches!(ok("RUN [\"a\", \"b\"]"), Instruction::Run { command: Command::Exec(v), .. } if v == ["a", "b"])
    );
    assert!(matches!(
        ok("RUN --network=host x"),
        Instruction::Run {
            network: Some(Network::Host),
            ..
        }
    ));
    assert!(matches!(
        ok("RUN --network=default x"),
        Instruction::Run {
            network: Some(Network::Default),
            ..
        }
    ));
    assert!(matches!(
        ok("RUN --security=sandbox x"),
        Instruction::Run {
            security: Some(Security::Sandbox),
            ..
        }
    ));
    let Instruction::Run {
        heredocs, command, ..
    } = ok("RUN <<EOF\nset -e\nEOF")
    else {
        panic!("not RUN")
    };
    assert_eq!(command, Command::Shell(s("<<EOF")));
    assert_eq!(heredocs[0].content, "set -e\n");
}

#[test]
fn cmd_entrypoint_shell() {
    assert_eq!(
        ok("CMD [\"a\"]"),
        Instruction::Cmd(Command::Exec(vec![s("a")]))
    );
    assert_eq!(ok("CMD a b"), Instruction::Cmd(Command::Shell(s("a b"))));
    assert_eq!(ok("CMD []"), Instruction::Cmd(Command::Exec(vec![])));
    assert_eq!(
        ok("ENTRYPOINT x y"),
        Instruction::Entrypoint(Command::Shell(s("x y")))
    );
    assert_eq!(
        ok("SHELL [\"bash\", \"-c\"]"),
        Instruction::Shell(vec![s("bash"), s("-c")])
    );
}

#[test]
fn key_value_instructions() {
    let kv = |k: &str, v: &str| KeyValue {
        key: s(k),
        value: s(v),
    };
    assert_eq!(ok("ENV A 1 2"), Instruction::Env(vec![kv("A", "1 2")]));
    assert_eq!(
        ok("ENV A=1 B=\"2 3\""),
        Instruction::Env(vec![kv("A", "1"), kv("B", "\"2 3\"")])
    );
    assert_eq!(
        ok("LABEL a=b c=d"),
        Instruction::Label(vec![kv("a", "b"), kv("c", "d")])
    );
    assert_eq!(
        ok("ARG A B=2 C="),
        Instruction::Arg(vec![
            ArgDecl {
                name: s("A"),
                default: None
            },
            ArgDecl {
                name: s("B"),
                default: Some(s("2"))
            },
            ArgDecl {
                name: s("C"),
                default: Some(s(""))
            },
        ])
    );
    assert_eq!(
        ok("MAINTAINER me <m@e>"),
        Instruction::Maintainer(s("me <m@e>"))
    );
}

#[test]
fn expose_ports() {
    let Instruction::Expose(ports) = ok("EXPOSE 80 53/udp 8000-8010/tcp $P") else {
        panic!("not EXPOSE")
    };
    assert_eq!(
        ports[0].value(),
        Some(&PortRange {
            start: 80,
            end: 80,
            protocol: Protocol::Tcp
        })
    );
    assert_eq!(ports[1].value().map(|p| p.protocol), Some(Protocol::Udp));
    assert_eq!(
        ports[2].value().map(|p| (p.start, p.end)),
        Some((8000, 8010))
    );
    assert_eq!(ports[3], Deferred::Unexpanded(s("$P")));
}

#[test]
fn copy_and_add_flags() {
    let c = copy("COPY --from=build --chown=app:staff --chmod=0640 --link --parents --exclude=*.md --exclude=.git a b /dst/");
    assert_eq!(c.from.as_deref(), Some("build"));
    assert_eq!(
        c.chown,
        Some(UserGroup {
            user: s("app"),
            group: Some(s("staff"))
        })
    );
    assert_eq!(c.chmod, Some(Deferred::Value(0o640)));
    assert!(c.link && c.parents);
    assert_eq!(c.exclude, ["*.md", ".git"]);
    assert_eq!(c.sources, [Source::Path(s("a")), Source::Path(s("b"))]);
    assert_eq!(c.dest, "/dst/");

    let a = copy("ADD --checksum=sha256:abc --keep-git-dir=true --chown=1000 https://x/y.git /src");
    assert_eq!(a.checksum.as_deref(), Some("sha256:abc"));
    assert!(a.keep_git_dir);
    assert_eq!(
        a.chown,
        Some(UserGroup {
            user: s("1000"),
            group: None
        })
    );

    let j = copy("COPY [\"a b\", \"/c d/\"]");
    assert!(j.json);
    assert_eq!(j.sources, [Source::Path(s("a b"))]);

    let h = copy("COPY <<one x <<two /dst/\n1\none\n2\ntwo");
    assert!(matches!(&h.sources[0], Source::Heredoc(d) if d.name == "one" && d.content == "1\n"));
    assert_eq!(h.sources[1], Source::Path(s("x")));
    assert!(matches!(&h.sources[2], Source::Heredoc(d) if d.name == "two" && d.content == "2\n"));
    assert_eq!(
        copy("COPY --chmod=$M a b").chmod,
        Some(Deferred::Unexpanded(s("$M")))
    );
    let spaced = copy("COPY << 'EOF' /dst\n$x\nEOF");
    assert!(matches!(&spaced.sources[..], [Source::Heredoc(d)] if d.name == "EOF" && !d.expand));
    assert_eq!(spaced.dest, "/dst");
}

#[test]
fn simple_instructions() {
    assert_eq!(
        ok("VOLUME [\"/a\", \"/b\"]"),
        Instruction::Volume(vec![s("/a"), s("/b")])
    );
    assert_eq!(
        ok("VOLUME /a /b"),
        Instruction::Volume(vec![s("/a"), s("/b")])
    );
    assert_eq!(
        ok("USER app:staff"),
        Instruction::User(UserGroup {
            user: s("app"),
            group: Some(s("staff"))
        })
    );
    assert_eq!(
        ok("USER 1000"),
        Instruction::User(UserGroup {
            user: s("1000"),
            group: None
        })
    );
    assert_eq!(ok("WORKDIR /a b"), Instruction::Workdir(s("/a b")));
    assert_eq!(
        ok("STOPSIGNAL SIGKILL"),
        Instruction::Stopsignal(s("SIGKILL"))
    );
    assert_eq!(
        ok("ONBUILD RUN make"),
        Instruction::Onbuild(Box::new(ok("RUN make")))
    );
}

#[test]
fn healthcheck_forms() {
    assert_eq!(
        ok("HEALTHCHECK NONE"),
        Instruction::Healthcheck(Healthcheck::None)
    );
    assert_eq!(
        ok("HEALTHCHECK --interval=5s --timeout=1m30s --start-period=0s --start-interval=100ms --retries=3 CMD curl -f x"),
        Instruction::Healthcheck(Healthcheck::Check {
            test: Command::Shell(s("curl -f x")),
            interval: Some(Duration::from_secs(5)),
            timeout: Some(Duration::from_secs(90)),
            start_period: Some(Duration::ZERO),
            start_interval: Some(Duration::from_millis(100)),
            retries: Some(3),
        })
    );
    assert!(matches!(
        ok("HEALTHCHECK CMD [\"true\"]"),
        Instruction::Healthcheck(Healthcheck::Check { test: Command::Exec(v), .. }) if v == ["true"]
    ));
}

#[test]
fn takes_expansion_follows_docker() {
    let yes = [
        "ADD a b",
        "COPY a b",
        "ENV a=b",
        "EXPOSE 1",
        "FROM a",
        "LABEL a=b",
        "STOPSIGNAL 9",
        "USER a",
        "VOLUME a",
        "WORKDIR a",
        "ARG a",
        "ONBUILD COPY a b",
    ];
    let no = [
        "RUN a",
        "CMD a",
        "ENTRYPOINT a",
        "SHELL [\"a\"]",
        "MAINTAINER a",
        "HEALTHCHECK NONE",
        "ONBUILD RUN a",
    ];
    for line in yes {
        assert!(ok(line).takes_expansion(), "{line}");
    }
    for line in no {
        assert!(!ok(line).takes_expansion(), "{line}");
    }
    assert_eq!(ok("ONBUILD RUN a").keyword(), "ONBUILD");
}

#[test]
fn every_keyword_is_typed() {
    for k in KEYWORDS {
        let line = match *k {
            "SHELL" => "SHELL [\"sh\"]".to_string(),
            "ONBUILD" => "ONBUILD RUN x".to_string(),
            "HEALTHCHECK" => "HEALTHCHECK NONE".to_string(),
            "ADD" | "COPY" => format!("{k} a b"),
            "EXPOSE" => "EXPOSE 80".to_string(),
            "ENV" | "LABEL" => format!("{k} x=1"),
            _ => format!("{k} x"),
        };
        assert_eq!(ok(&line).keyword(), *k);
    }
}

/// Every error message of this module, rendered; reviewed as a snapshot.
#[test]
fn error_messages() {
    let cases = [
        "COPPY a b",
        "FRUM x",
        "FROBNICATE x",
        "FROM",
        "FROM a b",
        "FROM a AS 1stage",
        "FROM --plat=x a",
        "RUN",
        "RUN --network=bridge x",
        "RUN --security=root x",
        "RUN --mount x",
        "RUN --mount=type=nfs,target=/x x",
        "RUN --mount=type=cache x",
        "RUN --privileged x",
        "CMD --x a",
        "SHELL sh -c",
        "SHELL []",
        "ENV",
        "LABEL",
        "MAINTAINER",
        "EXPOSE",
        "EXPOSE 80/icmp",
        "EXPOSE 99999",
        "EXPOSE 90-80",
        "ARG",
        "ARG =x",
        "COPY a",
        "COPY --from a b",
        "COPY --from= a b",
        "COPY --from=a --from=b c d",
        "COPY --link=maybe a b",
        "COPY --chmod=999 a b",
        "COPY --checksum=sha256:x a b",
        "ADD --from=x a b",
        "ADD --parents a b",
        "VOLUME",
        "VOLUME [\"\"]",
        "USER",
        "WORKDIR",
        "STOPSIGNAL",
        "ONBUILD",
        "ONBUILD ONBUILD RUN x",
        "ONBUILD FROM x",
        "ONBUILD MAINTAINER x",
        "ONBUILD COPPY a b",
        "HEALTHCHECK",
        "HEALTHCHECK NONE x",
        "HEALTHCHECK --retries=1 NONE",
        "HEALTHCHECK CMD",
        "HEALTHCHECK PING x",
        "HEALTHCHECK --interval=5 CMD x",
        "HEALTHCHECK --timeout=1ns CMD x",
        "HEALTHCHECK --retries=-1 CMD x",
        "HEALTHCHECK --every=1s CMD x",
    ];
    let mut out = String::new();
    for line in cases {
        let message = match typed(line) {
            Ok(i) => format!("unexpectedly parsed: {i:?}"),
            Err(e) => e,
        };
        out.push_str(&format!("{line}\n  => {message}\n"));
    }
    insta::assert_snapshot!(out);
}

/// What `expand_raw` touches, instruction by instruction: expanded args and
/// flags after expansion, as (line, flags, args).
#[test]
fn expansion_table() {
    let env = [("V", "v"), ("S", "a b"), ("Q", "\"q\"")];
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "FROM --platform=$V img:$V AS $V",
            &["--platform=v"],
            &["img:v", "AS", "$V"],
        ),
        (
            "COPY --from=$V --chown=$V --chmod=$V --exclude=$V --link $V \"$S\" /$V",
            &[
                "--from=v",
                "--chown=v",
                "--chmod=v",
                "--exclude=v",
                "--link",
            ],
            &["v", "a b", "/v"],
        ),
        (
            "ADD --checksum=$V --keep-git-dir $V /d",
            &["--checksum=v", "--keep-git-dir"],
            &["v", "/d"],
        ),
        ("COPY <<$V /$V\nx\n$V", &[], &["<<$V", "/v"]),
        (
            "ENV $V=$S K=\"x $V\"",
            &[],
            &["v", "a b", "=", "K", "x v", "="],
        ),
        ("ENV K ${S} \"$V\"", &[], &["K", "a b v", ""]),
        ("LABEL \"$V\"=$Q", &[], &["v", "\"q\"", "="]),
        ("ARG A=$V B", &[], &["A=v", "B"]),
        ("EXPOSE $S", &[], &["a", "b"]),
        ("VOLUME $S", &[], &["a b"]),
        ("USER $V:$V", &[], &["v:v"]),
        ("WORKDIR /$V", &[], &["/v"]),
        ("STOPSIGNAL $V", &[], &["v"]),
        (
            "RUN --mount=type=bind,from=$V,target=/$V echo $V",
            &["--mount=type=bind,from=v,target=/v"],
            &["echo $V"],
        ),
        ("CMD echo $V", &[], &["echo $V"]),
        ("ENTRYPOINT [\"$V\"]", &[], &["$V"]),
        ("SHELL [\"$V\"]", &[], &["$V"]),
        (
            "HEALTHCHECK --interval=$V CMD $V",
            &["--interval=$V"],
            &["CMD", "$V"],
        ),
        ("MAINTAINER $V", &[], &["$V"]),
    ];
    for (line, flags, args) in cases {
        let tree = parse_raw(line).unwrap();
        let raw = tree.instructions().next().unwrap();
        let out = expand_raw(raw, &env, '\\').unwrap();
        assert_eq!(out.flags, *flags, "{line}");
        assert_eq!(out.args, *args, "{line}");
    }
    let onbuild = parse_raw("ONBUILD COPY $V /").unwrap();
    let raw = onbuild.instructions().next().unwrap();
    assert_eq!(&expand_raw(raw, &env, '\\').unwrap(), raw);
}
