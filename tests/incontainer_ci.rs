//! The in-container tier (issue #14): strata's own image in Debian's
//! dockerd, run the way CI jobs run it: a default `docker run` as root, as
//! user 1000, with seccomp and AppArmor unconfined, with CAP_SYS_ADMIN.
//!
//! scripts/test.sh runs this tier as root: it starts a private dockerd
//! (DOCKER_HOST), loads the strata image made by scripts/strata-image.sh
//! (STRATA_TEST_IMAGE), and pushes the local Debian base to the test
//! registry (STRATA_TEST_BASE, its reference there). Containers use
//! `--network host`, which reaches that registry on 127.0.0.1.
#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use common::{registry_addr, Run, Strata};

/// Multi-stage, on the Debian base: RUN making a user and files, RUN
/// reading /proc and running ps, COPY --chown, USER, WORKDIR, files of the
/// base deleted. SOURCE_DATE_EPOCH reaches useradd, whose /etc/shadow dates
/// the password change otherwise.
const DOCKERFILE: &str = r#"ARG BASE=debian:bookworm
FROM ${BASE} AS builder
ARG SOURCE_DATE_EPOCH
RUN useradd --uid 1234 --create-home app \
 && mkdir -p /out/bin && echo built >/out/artifact && ln -s artifact /out/link \
 && chown -R app:app /out && chmod 640 /out/artifact \
 && grep -q '^Pid:' /proc/self/status && test -c /dev/null \
 && ps -e -o pid=,comm= | grep -qw ps && echo "proc ok"

FROM ${BASE}
ARG SOURCE_DATE_EPOCH
RUN useradd --uid 1234 --create-home app \
 && rm -rf /usr/share/doc /usr/share/man /etc/motd
COPY --from=builder --chown=app:app /out /opt/app
COPY --chown=1234:1234 note.txt /opt/app/note.txt
USER app
WORKDIR /home/app/work
RUN id -u >uid.txt && touch made-by-app && grep -q '^Uid:.*1234' /proc/self/status \
 && ps -o comm= -p $$ >/dev/null
"#;

struct Setup {
    image: String,
    base: String,
    registry: String,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let var = |name: &str| match std::env::var(name) {
            Ok(v) if !v.is_empty() => v,
            _ => panic!("{name} is not set: run the incontainer tier through scripts/test.sh"),
        };
        assert!(
            std::env::var_os("DOCKER_HOST").is_some(),
            "DOCKER_HOST is not set: run the incontainer tier through scripts/test.sh"
        );
        Setup {
            image: var("STRATA_TEST_IMAGE"),
            base: var("STRATA_TEST_BASE"),
            registry: registry_addr(),
        }
    })
}

/// A build context the container's user 1000 can read and write.
fn context() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("strata-incontainer-")
        .tempdir()
        .unwrap();
    fs_err::write(dir.path().join("Dockerfile"), DOCKERFILE).unwrap();
    fs_err::write(dir.path().join("note.txt"), "from the context\n").unwrap();
    fs_err::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

/// The build's flags, the same on the host and in containers.
fn build_args(tag: &str) -> Vec<String> {
    let base = &setup().base;
    [
        "build",
        "--timestamp",
        "0",
        "--build-arg",
        &format!("BASE={base}"),
        "--build-arg",
        "SOURCE_DATE_EPOCH=0",
        "-t",
        tag,
        ".",
    ]
    .map(String::from)
    .to_vec()
}

/// What "the same image" means here: the flattened root file system
/// (every path's type, mode, owner, size, content and link target, times
/// aside) and the config. Layers may be cut differently: overlayfs copies up
/// a file opened for writing and left as it was (useradd's /etc/.pwd.lock),
/// the vfs driver, comparing, leaves it out; the tree is the same.
#[derive(Debug, PartialEq, Eq)]
struct Image {
    config: String,
    tree: BTreeMap<String, String>,
}

fn image(strata: &Strata, reference: &str) -> Image {
    let config = strata
        .run(&["inspect", "-f", "{{json .Config}}", reference])
        .success()
        .stdout;
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("image.tar");
    let archive_arg = archive.to_str().unwrap();
    strata
        .run(&["save", "-o", archive_arg, reference])
        .success();
    tar::Archive::new(fs_err::File::open(&archive).unwrap())
        .unpack(dir.path())
        .unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs_err::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    let mut tree = BTreeMap::new();
    for layer in manifest[0]["Layers"].as_array().unwrap() {
        let file = fs_err::File::open(dir.path().join(layer.as_str().unwrap()))
            .unwrap()
            .into_file();
        apply_layer(&mut tree, tar::Archive::new(file));
    }
    Image { config, tree }
}

/// Applies one layer tar to `tree` as a container runtime would, whiteouts
/// included.
fn apply_layer(tree: &mut BTreeMap<String, String>, mut layer: tar::Archive<std::fs::File>) {
    use sha2::Digest;
    use std::io::Read;
    let below = |tree: &mut BTreeMap<String, String>, dir: &str| {
        let prefix = format!("{dir}/");
        tree.retain(|p, _| !p.starts_with(&prefix));
    };
    for entry in layer.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let path = path
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", &path));
        if name == ".wh..wh..opq" {
            below(tree, dir);
            continue;
        }
        if let Some(gone) = name.strip_prefix(".wh.") {
            let gone = if dir.is_empty() {
                gone.to_string()
            } else {
                format!("{dir}/{gone}")
            };
            tree.remove(&gone);
            below(tree, &gone);
            continue;
        }
        let h = entry.header().clone();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        let link = entry
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        let line = format!(
            "{:?} {:o} {}:{} {} {:x} {link}",
            h.entry_type(),
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            content.len(),
            sha2::Sha256::digest(&content),
        );
        if !h.entry_type().is_dir() {
            below(tree, &path);
        }
        tree.insert(path, line);
    }
}

/// The same build on the host (as root: rung 2, overlay), made once for
/// every test; its store goes once the image is read.
fn host_image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let strata = Strata::new();
        let ctx = context();
        let args = build_args("host-build");
        let run = Run::of(
            strata
                .cmd()
                .current_dir(ctx.path())
                .args(&args)
                .output()
                .unwrap(),
        );
        run.success();
        image(&strata, "host-build")
    })
}

/// Pulls `reference` into a fresh store and checks it is the host's image.
fn pulled_is_the_hosts(reference: &str, what: &str) {
    let host = Strata::new();
    host.run(&["pull", reference]).success();
    let got = image(&host, reference);
    let want = host_image();
    assert_eq!(got.config, want.config, "{what}: config");
    let differ: Vec<String> = got
        .tree
        .iter()
        .filter(|(p, l)| want.tree.get(*p) != Some(l))
        .map(|(p, l)| format!("{p}: {l} (host: {:?})", want.tree.get(p)))
        .chain(
            want.tree
                .keys()
                .filter(|p| !got.tree.contains_key(*p))
                .map(|p| format!("{p}: only on the host")),
        )
        .collect();
    assert!(
        differ.is_empty(),
        "{what}: the trees differ:\n{}",
        differ.join("\n")
    );
}

/// `docker run --rm --network host OPTS IMAGE sh -euc SCRIPT`, the context
/// bind-mounted at /workspace (and nothing else).
fn docker_run(opts: &[&str], ctx: &Path, script: &str) -> Run {
    let mount = format!("{}:/workspace", ctx.display());
    let out = Command::new("docker")
        .args(["run", "--rm", "--network", "host", "-v", &mount])
        .args(opts)
        .arg(&setup().image)
        .args(["sh", "-euc", script])
        .output()
        .expect("running docker");
    Run::of(out)
}

/// The shell words of `args`, quoted.
fn words(args: &[String]) -> String {
    args.iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// In a container run with `opts`: `strata info` names `rung`, the build
/// gives the host's image, and it pushes to the test registry.
fn builds_as_on_the_host(name: &str, opts: &[&str], rung: &str) {
    let ctx = context();
    let reference = format!("{}/incontainer/{name}:1", setup().registry);
    let script = format!(
        "strata info | grep '^isolation:'\n\
         strata {build}\n\
         strata push {reference}",
        build = words(&build_args(&reference)),
    );
    let run = docker_run(opts, ctx.path(), &script);
    assert_eq!(run.code, Some(0), "{name}: {run:#?}");
    let isolation = run
        .stdout
        .lines()
        .find(|l| l.starts_with("isolation:"))
        .unwrap_or_default();
    assert!(isolation.contains(rung), "{name}: {isolation}\n{run:#?}");
    pulled_is_the_hosts(&reference, name);
}

#[test]
fn incontainer_unconfined_as_root_uses_rung_3() {
    let opts = [
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "apparmor=unconfined",
    ];
    builds_as_on_the_host("root-unconfined", &opts, "rung 3 (nested)");
}

#[test]
fn incontainer_unconfined_as_user_1000_uses_rung_3() {
    let opts = [
        "--user",
        "1000",
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "apparmor=unconfined",
    ];
    builds_as_on_the_host("user-unconfined", &opts, "rung 3 (nested)");
}

#[test]
fn incontainer_cap_sys_admin_unconfined_as_root_uses_rung_2() {
    let opts = [
        "--cap-add",
        "SYS_ADMIN",
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "apparmor=unconfined",
    ];
    builds_as_on_the_host("root-sys-admin", &opts, "rung 2 (root)");
}

#[test]
fn incontainer_user_1000_under_dockers_defaults_is_told_the_fixes() {
    let ctx = context();
    let run = docker_run(&["--user", "1000"], ctx.path(), "strata build .");
    assert_eq!(run.code, Some(125), "{run:#?}");
    let err = &run.stderr;
    assert!(
        err.contains("no isolation works in a Docker container (uid 1000"),
        "{err}"
    );
    let fixes: Vec<&str> = err
        .lines()
        .filter_map(|l| {
            l.trim_start()
                .strip_prefix("fix: ")
                .or(l.trim_start().strip_prefix("or: "))
        })
        .collect();
    assert!(fixes.len() >= 3, "{err}");
    assert!(fixes[0].contains("as root"), "{err}");
    assert!(fixes[1].contains("seccomp=unconfined"), "{err}");
    assert!(fixes[1].contains("procMount: Unmasked"), "{err}");
    assert!(fixes[2].contains("VM runner"), "{err}");
    assert!(!err.contains("EPERM"), "no raw errno: {err}");
    // `strata info` there names the situation too.
    let info = docker_run(&["--user", "1000"], ctx.path(), "strata info");
    assert!(
        info.stdout.contains("isolation:") && info.stdout.contains("FAILED: none works"),
        "{info:#?}"
    );
}

/// A default `docker run` as root (rung 4), as docs/ci.md's recipes: login
/// with --password-stdin, two builds in a row (the first exporting a
/// registry cache). Both give the host's image, and strata's binary, the
/// workspace and the credentials file come out of them untouched.
#[test]
fn incontainer_default_docker_run_as_root_uses_rung_4_twice() {
    let ctx = context();
    let registry = &setup().registry;
    let cache = format!("type=registry,ref={registry}/incontainer/cache");
    let mut first = build_args("first");
    first.splice(1..1, ["--cache-to".into(), format!("{cache},mode=max")]);
    let mut second = build_args("second");
    second.insert(1, "--no-cache".into());
    let script = format!(
        "strata info | grep '^isolation:'\n\
         echo secret | strata login -u ci --password-stdin {registry} >/dev/null\n\
         sums() {{ sha256sum /usr/local/bin/strata /root/.docker/config.json; \
                   find /workspace -exec stat -c '%n %s %u %a %Y' {{}} + | sort; ls -a /; }}\n\
         sums >/tmp/before\n\
         strata {first}\n\
         strata {second}\n\
         sums >/tmp/after\n\
         diff /tmp/before /tmp/after\n\
         strata push first {registry}/incontainer/twice:1\n\
         strata push second {registry}/incontainer/twice:2",
        first = words(&first),
        second = words(&second),
    );
    let run = docker_run(&[], ctx.path(), &script);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(
        run.stdout
            .lines()
            .next()
            .unwrap_or_default()
            .contains("rung 4 (chroot)"),
        "{run:#?}"
    );
    for n in 1..=2 {
        pulled_is_the_hosts(&format!("{registry}/incontainer/twice:{n}"), "twice");
    }
}

/// `--isolation` forces a rung on build, run and info. On the host as root
/// the ladder picks rung 2, whose RUN has its own pid namespace; forced to
/// rung 4 (chroot), RUN shares the caller's and sees the host's pid 1.
#[test]
fn incontainer_isolation_flag_forces_the_rung_on_build_and_run() {
    let strata = Strata::new();
    strata.import_busybox("bb");
    let info = strata.run(&["info", "--isolation", "chroot"]).success();
    assert!(
        info.stdout.lines().any(|l| l.starts_with("isolation:")
            && l.contains("rung 4 (chroot)")
            && l.contains("(--isolation)")),
        "{info:#?}"
    );
    let host_init = fs_err::read_to_string("/proc/1/comm").unwrap();
    let ctx = common::context(&[("Dockerfile", "FROM bb\nRUN cat /proc/1/comm >/init\n")]);
    let build = Run::of(
        strata
            .cmd()
            .current_dir(ctx.path())
            .args(["build", "--isolation", "chroot", "-t", "forced", "."])
            .output()
            .unwrap(),
    );
    build.success();
    let run = |args: &[&str]| strata.run(args).success().stdout;
    assert_eq!(run(&["run", "--rm", "forced", "cat", "/init"]), host_init);
    let forced = ["run", "--rm", "--isolation", "chroot", "forced"];
    assert_eq!(
        run(&[&forced[..], &["cat", "/proc/1/comm"]].concat()),
        host_init
    );
    assert_ne!(
        run(&["run", "--rm", "forced", "cat", "/proc/1/comm"]),
        host_init
    );
}

/// `docker` with `args`, its output as a [`Run`].
fn docker(args: &[&str]) -> Run {
    Run::of(
        Command::new("docker")
            .args(args)
            .output()
            .expect("running docker"),
    )
}

/// `-o type=docker` (issue #16): `docker load` reads the archive under the
/// name given, with strata's image id, and a container of it runs the
/// image's CMD over the build's files.
#[test]
fn incontainer_build_output_docker_is_loaded_and_run_by_docker() {
    assert!(
        std::env::var_os("DOCKER_HOST").is_some(),
        "DOCKER_HOST is not set: run the incontainer tier through scripts/test.sh"
    );
    let strata = Strata::new();
    strata.import_busybox("busybox");
    let ctx = common::context(&[
        (
            "Dockerfile",
            "FROM busybox\nCOPY hello /hello\nRUN echo ran >> /hello\nCMD [\"cat\", \"/hello\"]\n",
        ),
        ("hello", "from the context\n"),
    ]);
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("docker.tar");
    let name = "strata-output/docker:1";
    let output = format!("type=docker,dest={},name={name}", archive.display());
    let build = Run::of(
        strata
            .cmd()
            .current_dir(ctx.path())
            .args(["build", "-t", "out:1", "-o", &output, "."])
            .output()
            .unwrap(),
    );
    build.success();
    let load = docker(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(load.code, Some(0), "{load:#?}");
    assert!(
        load.stdout.contains(&format!("Loaded image: {name}")),
        "{load:#?}"
    );
    let docker_id = docker(&["image", "inspect", "-f", "{{.Id}}", name]);
    let strata_id = strata.run(&["inspect", "-f", "{{.Id}}", "out:1"]).success();
    assert_eq!(
        docker_id.stdout.trim(),
        strata_id.stdout.trim(),
        "{docker_id:#?}"
    );
    let run = docker(&["run", "--rm", "--network", "host", name]);
    docker(&["rmi", name]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.stdout, "from the context\nran\n", "{run:#?}");
}
