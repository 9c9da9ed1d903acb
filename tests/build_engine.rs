//! The build engine's promises, as an unprivileged user: a cache hit makes
//! no container and mounts nothing, metadata steps cost their own change,
//! and `commit --change` / `import --change` change a config as a
//! Dockerfile does.
#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

mod common;

use std::path::Path;

use common::{busybox_tar, context, Strata};

fn config(s: &Strata, image: &str) -> serde_json::Value {
    let out = s.run(&["inspect", image]).success().stdout;
    serde_json::from_str::<serde_json::Value>(&out).unwrap()[0]["Config"].clone()
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

fn keys(v: &serde_json::Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn rootless_build_config_changes_agree_with_dockerfile_steps() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let lines = [
        "ENV A=1 Z=0",
        "ENV B=2",
        "ENV A=3",
        "EXPOSE 80",
        "EXPOSE 53/udp",
    ];
    let ctx = context(&[(
        "Dockerfile",
        &format!("FROM busybox\n{}\n", lines.join("\n")),
    )]);
    s.run(&["build", "-q", "-t", "built", ctx.path().to_str().unwrap()])
        .success();
    let changes: Vec<&str> = lines.iter().flat_map(|l| ["-c", l]).collect();
    s.run(&["run", "--name", "c", "busybox", "true"]).success();
    let mut commit = vec!["commit"];
    commit.extend(&changes);
    commit.extend(["c", "committed"]);
    s.run(&commit).success();
    let tar = busybox_tar();
    let mut import = vec!["import"];
    import.extend(&changes);
    import.extend([tar.to_str().unwrap(), "imported"]);
    s.run(&import).success();

    let built = config(&s, "built");
    // A redefined key keeps its first place, as Docker's builder does; the
    // build adds the default PATH first (the base sets none).
    let env = strings(&built["Env"]);
    assert!(env[0].starts_with("PATH="), "{env:?}");
    assert_eq!(env[1..], ["A=3", "Z=0", "B=2"]);
    assert_eq!(keys(&built["ExposedPorts"]), ["53/udp", "80/tcp"]);
    for image in ["committed", "imported"] {
        let c = config(&s, image);
        assert_eq!(strings(&c["Env"]), env[1..], "{image}");
        assert_eq!(keys(&c["ExposedPorts"]), ["53/udp", "80/tcp"], "{image}");
    }
}

/// Everything but directories under `dir` (symlinks not followed).
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in fs_err::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        match fs_err::symlink_metadata(&path).unwrap().is_dir() {
            true => files.extend(walk(&path)),
            false => files.push(path),
        }
    }
    files
}

/// Files and bytes under `root`.
fn usage(root: &Path) -> (u64, u64) {
    let files = walk(root);
    let bytes = files
        .iter()
        .map(|f| fs_err::symlink_metadata(f).unwrap().len())
        .sum();
    (files.len() as u64, bytes)
}

/// What a build of `n` ENV steps adds to a store: (files, bytes).
fn growth_after_env_steps(n: usize) -> (u64, u64) {
    let s = Strata::new();
    s.import_busybox("busybox");
    let envs: String = (0..n).map(|i| format!("ENV VAR_{i}=value-{i}\n")).collect();
    let ctx = context(&[("Dockerfile", &format!("FROM busybox\n{envs}"))]);
    let before = usage(s.root.path());
    let out = s
        .run(&["build", "-t", "envs", ctx.path().to_str().unwrap()])
        .success()
        .stdout;
    let steps = out.lines().filter(|l| l.starts_with("Step ")).count();
    assert_eq!(steps, n + 1, "every step is shown");
    let after = usage(s.root.path());
    let config = config(&s, "envs");
    assert_eq!(strings(&config["Env"]).len(), n + 1, "PATH and every ENV");
    let history = s.run(&["history", "-q", "envs"]).success().stdout;
    assert_eq!(history.lines().count(), n + 1, "an entry per step");
    let again = s
        .run(&["build", "-t", "envs", ctx.path().to_str().unwrap()])
        .success()
        .stdout;
    assert_eq!(again.matches("Using cache").count(), n, "{again}");
    (after.0 - before.0, after.1 - before.1)
}

#[test]
fn rootless_build_metadata_steps_cost_their_own_change() {
    // Linear growth makes 4x the steps cost about 4x; a full config per
    // step (the config grows with each) would cost about 16x.
    let (small_files, small_bytes) = growth_after_env_steps(100);
    let (big_files, big_bytes) = growth_after_env_steps(400);
    assert!(
        big_bytes < 6 * small_bytes,
        "100 ENV steps added {small_bytes} bytes, 400 added {big_bytes}"
    );
    assert!(
        big_files < 6 * small_files,
        "100 ENV steps added {small_files} files, 400 added {big_files}"
    );
}

#[test]
fn rootless_build_cache_hits_make_no_container_and_mount_nothing() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let df = "FROM busybox AS one\nRUN echo made > /made\nFROM busybox\nCOPY tree /tree\nCOPY --from=one /made /made\n";
    let ctx = context(&[("Dockerfile", df)]);
    // A large context: many files and a big one.
    for i in 0..500 {
        let path = ctx.path().join(format!("tree/d{}/f{i}", i % 20));
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(path, format!("file {i}\n")).unwrap();
    }
    fs_err::write(ctx.path().join("tree/big"), vec![7u8; 16 << 20]).unwrap();
    // A file changed within the last second is never remembered by the
    // metadata cache (it could change again unseen in the same tick).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let dir = ctx.path().to_str().unwrap();
    let build = || {
        s.run(&["--log-level", "debug", "build", "-t", "hit", dir])
            .success()
    };
    let containers = |stderr: &str| stderr.matches("build container ").count();
    let mounts = |stderr: &str| stderr.matches(": debug: mounting ").count();
    let first = build();
    // What the rebuild must not do, seen done the first time.
    assert_eq!(containers(&first.stderr), 4, "{}", first.stderr);
    assert!(mounts(&first.stderr) >= 4, "{}", first.stderr);
    let again = build();
    assert_eq!(
        again.stdout.matches("Using cache").count(),
        3,
        "{}",
        again.stdout
    );
    assert_eq!(containers(&again.stderr), 0, "{}", again.stderr);
    assert_eq!(mounts(&again.stderr), 0, "{}", again.stderr);
    // A fresh checkout (new times, the same content, as a CI job sees it):
    // the files are read to key the step, and it still hits.
    let now = std::time::SystemTime::now();
    for entry in walk(&ctx.path().join("tree")) {
        fs_err::File::options()
            .write(true)
            .open(entry)
            .unwrap()
            .set_modified(now)
            .unwrap();
    }
    let touched = build();
    assert_eq!(
        touched.stdout.matches("Using cache").count(),
        3,
        "{}",
        touched.stdout
    );
    assert_eq!(containers(&touched.stderr), 0, "{}", touched.stderr);
    assert_eq!(mounts(&touched.stderr), 0, "{}", touched.stderr);
    assert_eq!(
        s.run(&[
            "run",
            "--rm",
            "hit",
            "sh",
            "-c",
            "cat /made; ls /tree | wc -l"
        ])
        .success()
        .stdout,
        "made\n21\n"
    );
}
