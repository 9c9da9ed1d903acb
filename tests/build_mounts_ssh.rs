//! `RUN --mount=type=ssh` with `strata build --ssh`, as the unprivileged
//! user, against a real ssh-agent the test starts (openssh-client): the
//! step reaches the agent at its socket and the host's `ssh-add` lists and
//! uses the key there; a key file is served by strata's own agent; neither
//! the socket nor the key reaches a layer, the store or the output.
#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use common::{files_holding, Run, Strata};

/// An `ssh-agent -D` of the test's, holding one new key; killed (by its
/// pid) when dropped.
struct Agent {
    dir: tempfile::TempDir,
    child: Child,
}

impl Agent {
    fn start() -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id");
        ok(Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "strata-test-key",
                "-f",
            ])
            .arg(&key));
        let sock = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let agent = Agent { dir, child };
        // The socket exists before the agent listens on it: wait until
        // `ssh-add -l` gets an answer (1: no identities) rather than 2.
        for _ in 0..200 {
            let status = agent.ssh_add().arg("-l").output().unwrap().status;
            if status.code() != Some(2) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        ok(agent.ssh_add().arg(&key));
        agent
    }

    fn sock(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("id")
    }

    fn ssh_add(&self) -> Command {
        let mut cmd = Command::new("ssh-add");
        cmd.env("SSH_AUTH_SOCK", self.sock());
        cmd
    }

    /// The key's fingerprint, as `ssh-add -l` prints it.
    fn fingerprint(&self) -> String {
        let out = ok(Command::new("ssh-keygen")
            .arg("-lf")
            .arg(self.dir.path().join("id.pub")));
        out.split_whitespace().nth(1).unwrap().to_string()
    }

    /// The private key's base64 body (what must never be copied anywhere).
    fn secret_line(&self) -> String {
        let text = fs_err::read_to_string(self.key()).unwrap();
        text.lines().nth(2).unwrap().to_string()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A context with the host's `ssh-add`, its libraries and loader (bound
/// into the step, so the busybox image needs no ssh of its own) and the
/// agent's public key.
fn context_with_ssh_add(agent: &Agent, dockerfile: &str) -> tempfile::TempDir {
    let ctx = tempfile::tempdir().unwrap();
    let host = ctx.path().join("host");
    fs_err::create_dir_all(host.join("lib")).unwrap();
    fs_err::copy("/usr/bin/ssh-add", host.join("ssh-add")).unwrap();
    fs_err::copy(agent.dir.path().join("id.pub"), host.join("id.pub")).unwrap();
    let ldd = ok(Command::new("ldd").arg("/usr/bin/ssh-add"));
    for path in ldd.split_whitespace().filter(|w| w.starts_with('/')) {
        let path = Path::new(path);
        let to = match path.starts_with("/lib64") {
            true => host.join("ld.so"),
            false => host.join("lib").join(path.file_name().unwrap()),
        };
        fs_err::copy(path, to).unwrap();
    }
    fs_err::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    ctx
}

/// `ssh-add ARGS` of the bound host tools, in a step.
const SSH_ADD: &str = "/h/ld.so --library-path /h/lib /h/ssh-add";

fn build(s: &Strata, driver: &str, ctx: &Path, agent: &Agent, extra: &[&str]) -> Run {
    Run::of(
        s.cmd()
            .env("SSH_AUTH_SOCK", agent.sock())
            .args(["--storage-driver", driver, "build", "--progress", "plain"])
            .args(extra)
            .arg(ctx)
            .output()
            .unwrap(),
    )
}

/// `--ssh default`: the agent of `$SSH_AUTH_SOCK`, relayed to a socket at
/// BuildKit's default target; `test -S`, `ssh-add -l` (lists the key) and
/// `ssh-add -T` (a signature made by the host's agent) succeed in the step,
/// and the step's layer holds only what it wrote; on the three drivers.
#[test]
fn rootless_mount_ssh_default_forwards_the_agent() {
    let agent = Agent::start();
    let df = format!(
        "FROM busybox\n\
         RUN --mount=type=bind,source=host,target=/h --mount=type=ssh \
         sh -c 'test -S \"$SSH_AUTH_SOCK\" && echo \"sock=$SSH_AUTH_SOCK\" && {SSH_ADD} -l && {SSH_ADD} -T /h/id.pub && echo signed > /done'\n"
    );
    let ctx = context_with_ssh_add(&agent, &df);
    for driver in ["overlay", "fuse-overlayfs", "vfs"] {
        let s = Strata::new();
        s.import_busybox("busybox");
        let run = build(
            &s,
            driver,
            ctx.path(),
            &agent,
            &["--ssh", "default", "-t", "ssh"],
        );
        let output = format!("{}{}", run.stdout, run.stderr);
        run.success();
        assert!(
            output.contains("sock=/run/buildkit/ssh_agent.0"),
            "{driver}: {output}"
        );
        assert!(output.contains(&agent.fingerprint()), "{driver}: {output}");
        let layer = s.run(&["run", "--rm", "ssh", "cat", "/done"]);
        assert_eq!(layer.success().stdout, "signed\n");
        let leftover = s.run(&["run", "--rm", "ssh", "test", "-e", "/run/buildkit"]);
        assert_eq!(
            leftover.code,
            Some(1),
            "{driver}: the mount point strata made is gone"
        );
        let sock = agent.sock().display().to_string();
        for needle in [agent.secret_line(), sock] {
            assert!(
                !output.contains(&needle),
                "{driver}: {needle} in the output"
            );
            let found = files_holding(s.root.path(), needle.as_bytes());
            assert!(
                found.is_empty(),
                "{driver}: {needle} in the store: {found:?}"
            );
        }
    }
}

/// `--ssh ID=KEYFILE`: strata serves the key itself, at the mount's own
/// target, owner and mode; a client signs with it. The agent's id decides
/// which mount gets it; a `required` mount of an id not given fails naming
/// the id and the line, an optional one is left out.
#[test]
fn rootless_mount_ssh_key_file_is_served_by_strata() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let agent = Agent::start();
    let df = format!(
        "FROM busybox\n\
         RUN --mount=type=bind,source=host,target=/h \
         --mount=type=ssh,id=deploy,target=/tmp/agent,mode=0660,uid=1,gid=2 \
         --mount=type=ssh,id=absent \
         sh -c 'stat -c \"%a %u %g\" /tmp/agent > /perm && test \"$SSH_AUTH_SOCK\" = /tmp/agent && test ! -e /run/buildkit/ssh_agent.1 && {SSH_ADD} -l && {SSH_ADD} -T /h/id.pub'\n"
    );
    let ctx = context_with_ssh_add(&agent, &df);
    let key = format!("deploy={}", agent.key().display());
    let run = Run::of(
        s.cmd()
            .env_remove("SSH_AUTH_SOCK")
            .args(["build", "--progress", "plain", "--ssh", &key, "-t", "k"])
            .arg(ctx.path())
            .output()
            .unwrap(),
    )
    .success();
    let output = format!("{}{}", run.stdout, run.stderr);
    assert!(output.contains(&agent.fingerprint()), "{output}");
    let perm = s.run(&["run", "--rm", "k", "cat", "/perm"]).success();
    assert_eq!(perm.stdout, "660 1 2\n");
    let found = files_holding(s.root.path(), agent.secret_line().as_bytes());
    assert!(found.is_empty(), "the key in the store: {found:?}");

    let df = "FROM busybox\nRUN --mount=type=ssh,id=gh,required=true true\n";
    let ctx = context_with_ssh_add(&agent, df);
    let run = build(&s, "overlay", ctx.path(), &agent, &["--ssh", "default"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("ssh agent gh is required") && run.stderr.contains("Dockerfile:2:1"),
        "{}",
        run.stderr
    );
    let bad = build(
        &s,
        "overlay",
        ctx.path(),
        &agent,
        &["--ssh", "x=/nonexistent/key"],
    );
    assert_ne!(bad.code, Some(0), "{bad:?}");
    assert!(
        bad.stderr.contains("--ssh x: /nonexistent/key"),
        "{}",
        bad.stderr
    );
}
