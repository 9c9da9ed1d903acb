//! The store under concurrent strata processes and under SIGKILL (rootless
//! tier): whatever happens, `system check` finds no damage and the images
//! that were there stay intact.

// A test crate: a panic is how a failure is reported.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Strata;

/// A rootfs tarball of `files` files of `size` bytes, content seeded by `seed`.
fn rootfs(path: &Path, files: usize, size: usize, seed: u64) {
    let mut b = tar::Builder::new(fs_err::File::create(path).unwrap());
    let noise = common::noise(files * size, seed);
    for (i, data) in noise.chunks(size).enumerate() {
        let mut h = tar::Header::new_ustar();
        h.set_path(format!("data/d{}/f{i}", i % 10)).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap();
}

fn assert_clean(strata: &Strata, context: &str) {
    let check = strata.run(&["system", "check"]);
    assert_eq!(
        check.code,
        Some(0),
        "{context}: system check found damage: {check:#?}"
    );
}

#[test]
fn rootless_store_concurrent_import_tag_rmi_prune() {
    const WORKERS: usize = 4;
    const ROUNDS: usize = 6;
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new();
    let keep = work.path().join("keep.tar");
    rootfs(&keep, 5, 1000, 99);
    strata
        .run(&["import", keep.to_str().unwrap(), "keep:1"])
        .success();
    // Workers share layer content round by round, so deduplication and
    // garbage collection race on the same layers.
    for round in 0..ROUNDS {
        rootfs(
            &work.path().join(format!("r{round}.tar")),
            20,
            2000,
            round as u64 + 1,
        );
    }
    // A docker-archive with layers of its own, loaded and removed in a loop
    // beside the imports.
    let shared = work.path().join("shared.tar");
    let maker = Strata::new();
    maker
        .run(&[
            "import",
            work.path().join("r0.tar").to_str().unwrap(),
            "shared:1",
        ])
        .success();
    maker
        .run(&["save", "-o", shared.to_str().unwrap(), "shared:1"])
        .success();
    std::thread::scope(|s| {
        let strata_ref = &strata;
        let shared = &shared;
        s.spawn(move || {
            for _ in 0..ROUNDS {
                strata_ref
                    .run(&["load", "-i", shared.to_str().unwrap()])
                    .success();
                strata_ref.run(&["rmi", "shared:1"]).success();
            }
        });
        for w in 0..WORKERS {
            let strata = &strata;
            let dir = work.path();
            s.spawn(move || {
                for round in 0..ROUNDS {
                    let tar = dir.join(format!("r{round}.tar"));
                    let name = format!("w{w}:{round}");
                    strata
                        .run(&["import", tar.to_str().unwrap(), &name])
                        .success();
                    strata
                        .run(&["tag", &name, &format!("w{w}:latest")])
                        .success();
                    strata.run(&["rmi", &name]).success();
                    if (round + w) % 2 == 0 {
                        strata.run(&["system", "prune"]).success();
                    }
                }
            });
        }
    });
    assert_clean(&strata, "after the workers");
    for w in 0..WORKERS {
        strata.run(&["inspect", &format!("w{w}:latest")]).success();
    }
    strata.run(&["inspect", "keep:1"]).success();
    strata.run(&["system", "prune"]).success();
    assert_clean(&strata, "after a final prune");
}

/// Start strata in its own process group, so the whole tree (it re-executes
/// itself inside a user namespace) can be killed at once.
fn spawn_killable(strata: &Strata, args: &[&str]) -> std::process::Child {
    strata
        .cmd()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap()
}

fn kill_group(child: &mut std::process::Child) {
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    // The group may already be gone if the command finished first.
    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
    child.wait().unwrap();
}

#[test]
fn rootless_store_survives_sigkill_during_import_and_load() {
    const KILLS: u64 = 20;
    let work = tempfile::tempdir().unwrap();
    let strata = Strata::new();
    let base = work.path().join("base.tar");
    rootfs(&base, 10, 1000, 7);
    strata
        .run(&["import", base.to_str().unwrap(), "base:1"])
        .success();
    let before = strata.run(&["inspect", "base:1"]).success().stdout;

    let big = work.path().join("big.tar");
    rootfs(&big, 300, 20_000, 11);
    // A docker-archive to load, made by a second store.
    let other = Strata::new();
    other
        .run(&["import", big.to_str().unwrap(), "big:1"])
        .success();
    let archive = work.path().join("big-archive.tar");
    other
        .run(&["save", "-o", archive.to_str().unwrap(), "big:1"])
        .success();

    let import_args = ["import", big.to_str().unwrap(), "big:1"];
    let load_args = ["load", "-i", archive.to_str().unwrap()];
    let timed = |args: &[&str]| {
        let t = Instant::now();
        let scratch = Strata::new();
        scratch.run(args).success();
        t.elapsed()
    };
    let spans = [timed(&import_args), timed(&load_args)];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..KILLS {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let which = (i % 2) as usize;
        let span = spans[which].as_micros() as u64 + 1;
        let at = Duration::from_micros((seed >> 33) % span);
        let args: &[&str] = if which == 0 { &import_args } else { &load_args };
        let mut child = spawn_killable(&strata, args);
        std::thread::sleep(at);
        kill_group(&mut child);
        assert_clean(&strata, &format!("kill {i} of {args:?} after {at:?}"));
        let now = strata.run(&["inspect", "base:1"]).success().stdout;
        assert_eq!(now, before, "the earlier image changed");
    }
    // The store goes on working, and prune removes what the kills left.
    strata.run(&["system", "prune"]).success();
    let check = strata.run(&["system", "check"]).success();
    assert!(
        !check.stdout.contains("note:"),
        "garbage left after prune: {check:#?}"
    );
    strata
        .run(&["import", big.to_str().unwrap(), "big:2"])
        .success();
    strata
        .run(&["load", "-i", archive.to_str().unwrap()])
        .success();
    assert_clean(&strata, "after the kills");
}

mod registry_support;

#[test]
fn rootless_store_prune_and_rmi_during_builds_and_pulls() {
    // Checklist case 37 and issue #12: `system prune -a` and `rmi` loop
    // while builds (FROM an image pulled when missing, RUN, COPY) and pulls
    // of images sharing a layer run on the same store. Every build and
    // pull succeeds: what they use is held against GC. The store stays
    // consistent.
    use registry_support::mock::{plain_layer, MockRegistry};
    use std::sync::atomic::{AtomicBool, Ordering};
    const BUILDERS: usize = 3;
    const PULLERS: usize = 2;
    const ROUNDS: usize = 3;
    let mock = MockRegistry::serving();
    let base = plain_layer(fs_err::read(common::busybox_tar()).unwrap());
    let extra = {
        let work = tempfile::tempdir().unwrap();
        let tar = work.path().join("extra.tar");
        rootfs(&tar, 20, 2000, 7);
        plain_layer(fs_err::read(&tar).unwrap())
    };
    let busybox = mock.push_image("gc/busybox", "1", std::slice::from_ref(&base));
    let plus = mock.push_image("gc/plus", "1", &[base, extra]);
    let strata = Strata::new();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let pruner = s.spawn(|| {
            let mut loops = 0;
            while !stop.load(Ordering::Relaxed) {
                strata.run(&["system", "prune", "-a", "-f"]).success();
                // Absent half the time: only a failure of another kind counts.
                let rmi = strata.run(&["rmi", "-f", &busybox]);
                assert!(
                    rmi.code == Some(0) || rmi.stderr.contains("No such image"),
                    "{rmi:#?}"
                );
                loops += 1;
            }
            loops
        });
        let mut workers = Vec::new();
        for w in 0..BUILDERS {
            let (strata, busybox) = (&strata, &busybox);
            workers.push(s.spawn(move || {
                for round in 0..ROUNDS {
                    let df = format!(
                        "FROM {busybox}\nRUN echo {w}-{round} > /made\nCOPY a /a\nRUN cat /made /a\n"
                    );
                    let ctx = common::context(&[("Dockerfile", &df), ("a", "a")]);
                    let run = strata.run(&["build", "-q", ctx.path().to_str().unwrap()]);
                    assert_eq!(run.code, Some(0), "build {w}/{round}: {run:#?}");
                }
            }));
        }
        for p in 0..PULLERS {
            let (strata, busybox, plus) = (&strata, &busybox, &plus);
            workers.push(s.spawn(move || {
                for round in 0..ROUNDS {
                    for image in [plus, busybox] {
                        let run = strata.run(&["pull", "-q", image]);
                        assert_eq!(run.code, Some(0), "pull {p}/{round} {image}: {run:#?}");
                    }
                }
            }));
        }
        // Every worker's end is awaited, and the pruner stopped, before a
        // failure is reported: a panic here would leave it looping.
        let ends: Vec<_> = workers.into_iter().map(|w| w.join()).collect();
        stop.store(true, Ordering::Relaxed);
        let loops = pruner.join().unwrap();
        for end in ends {
            if let Err(panic) = end {
                std::panic::resume_unwind(panic);
            }
        }
        assert!(loops >= 2, "prune ran {loops} times only: nothing raced");
    });
    assert_clean(&strata, "after the builds and pulls");
    let check = strata.run(&["system", "check"]).success();
    assert!(!check.stdout.contains("missing"), "{check:#?}");
    // What is left works.
    strata.run(&["pull", "-q", &busybox]).success();
    strata.run(&["run", "--rm", &busybox, "true"]).success();
}

#[test]
fn rootless_store_parallel_identical_builds_agree() {
    // Checklist case 36 (buildah's parallel-commit race): 25 builds of one
    // context at once, with `--timestamp 0` and no cache, so each runs and
    // commits every step. All succeed with one image id; the store's JSON
    // stays whole.
    const BUILDS: usize = 25;
    let strata = Strata::new();
    strata.import_busybox("busybox");
    let ctx = common::context(&[
        (
            "Dockerfile",
            "FROM busybox\nCOPY a /a\nRUN echo made > /made\nENV K=v\n",
        ),
        ("a", "a"),
    ]);
    let ctx = ctx.path().to_str().unwrap();
    let ids: Vec<String> = std::thread::scope(|s| {
        let builds: Vec<_> = (0..BUILDS)
            .map(|i| {
                let strata = &strata;
                s.spawn(move || {
                    let tag = format!("same:{i}");
                    let args = [
                        "build",
                        "-q",
                        "--no-cache",
                        "--timestamp",
                        "0",
                        "-t",
                        &tag,
                        ctx,
                    ];
                    let run = strata.run(&args);
                    assert_eq!(run.code, Some(0), "build {i}: {run:#?}");
                    run.stdout.trim().to_string()
                })
            })
            .collect();
        builds.into_iter().map(|b| b.join().unwrap()).collect()
    });
    assert!(ids[0].starts_with("sha256:"), "{ids:?}");
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:#?}");
    assert_clean(&strata, "after the parallel builds");
    let images = strata
        .run(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])
        .success()
        .stdout;
    assert_eq!(
        images.lines().filter(|l| l.starts_with("same:")).count(),
        BUILDS,
        "{images}"
    );
    let out = strata.run(&["run", "--rm", "same:7", "cat", "/made", "/a"]);
    assert_eq!(out.success().stdout, "made\na");
}

#[test]
fn rootless_store_sigkill_at_random_points_of_pull_and_build() {
    // Checklist case 38: kill -9 of a pull (from the mock registry) and of
    // a build with RUN and COPY at a point drawn from each seed. After
    // each, the next command finds a consistent store: the old image
    // intact, no container, no staging, no process of the killed tree.
    use registry_support::mock::{plain_layer, MockRegistry};
    const SEEDS: u64 = 50;
    let mock = MockRegistry::serving();
    let extra = {
        let work = tempfile::tempdir().unwrap();
        let tar = work.path().join("extra.tar");
        rootfs(&tar, 200, 20_000, 3);
        plain_layer(fs_err::read(&tar).unwrap())
    };
    let image = mock.push_image("kill/extra", "1", &[extra]);
    let strata = Strata::new();
    strata.import_busybox("busybox");
    let before = strata.run(&["inspect", "busybox"]).success().stdout;
    let ctx = common::context(&[
        (
            "Dockerfile",
            "FROM busybox\nRUN dd if=/dev/zero of=/z bs=1024 count=2048\nCOPY a /a\nRUN sleep 0.2\n",
        ),
        ("a", "a"),
    ]);
    let ctx = ctx.path().to_str().unwrap();
    for seed in 0..SEEDS {
        // xorshift of the seed: a delay up to 1.5 s, into any phase.
        let mut x = (seed + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let delay = Duration::from_millis(x % 1500);
        let args: Vec<&str> = match seed % 2 {
            0 => vec!["pull", "-q", &image],
            _ => vec!["build", "--no-cache", "-t", "killed", ctx],
        };
        let mut child = spawn_killable(&strata, &args);
        std::thread::sleep(delay);
        kill_group(&mut child);
        let what = format!("seed {seed}: {args:?} killed after {delay:?}");
        assert_clean(&strata, &what);
        let after = strata.run(&["inspect", "busybox"]).success().stdout;
        assert_eq!(after, before, "{what}");
        let ps = strata.run(&["ps", "-a", "-q"]).success().stdout;
        assert_eq!(ps, "", "{what}: containers left");
        let tmp: Vec<_> = fs_err::read_dir(strata.root.path().join("tmp"))
            .unwrap()
            .collect();
        assert!(tmp.is_empty(), "{what}: staging left: {tmp:?}");
        let left = common::processes_with_arg(ctx);
        assert!(left.is_empty(), "{what}: processes left: {left:?}");
    }
    // And the work, done whole, still works.
    strata.run(&["pull", "-q", &image]).success();
    strata.run(&["build", "-q", "-t", "whole", ctx]).success();
    strata.run(&["run", "--rm", "whole", "cat", "/a"]).success();
}
