//! Helpers shared by the whole-binary tests: where the strata binary and the
//! project files are, a throwaway store, and the test registry.
//!
//! scripts/test.sh runs these tests from a staged copy as unprivileged
//! users, and says where things are through STRATA_BIN and
//! STRATA_PROJECT_DIR; a plain `cargo test` falls back to the build tree.
#![allow(dead_code)]

pub mod fstree;
pub mod githttp;
pub mod http;
pub mod tarspec;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn strata_bin() -> PathBuf {
    std::env::var_os("STRATA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_strata")))
}

pub fn project_dir() -> PathBuf {
    std::env::var_os("STRATA_PROJECT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// A strata with its own empty store, removed when dropped.
pub struct Strata {
    pub root: tempfile::TempDir,
}

impl Strata {
    pub fn new() -> Strata {
        Strata {
            root: tempfile::Builder::new()
                .prefix("strata-store-")
                .tempdir()
                .expect("temp store"),
        }
    }

    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(strata_bin());
        cmd.env("STRATA_ROOT", self.root.path());
        cmd.env_remove("STRATA_STORAGE_DRIVER");
        cmd
    }

    /// Runs strata with `args` and returns what it did.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::of(self.cmd().args(args).output().expect("running strata"))
    }
}

impl Drop for Strata {
    fn drop(&mut self) {
        // Files a container made belong to subordinate ids, and overlayfs
        // leaves `work/work` mode 000: only inside the user namespace can
        // the test user remove them, so TempDir's own removal would leave
        // the store in /tmp.
        let _ = self
            .cmd()
            .args(["unshare", "rm", "-rf", "--"])
            .arg(self.root.path())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The end of one strata invocation, with its output as text.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn of(out: Output) -> Run {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Panics with the whole output unless the command exited 0.
    pub fn success(self) -> Run {
        assert_eq!(self.code, Some(0), "strata failed: {self:#?}");
        self
    }
}

/// An empty credentials file for the tools. Left to find one, they read
/// /run/containers/$UID/auth.json, which fails outright where root has run
/// podman or buildah (/run/containers is then root's, mode 0700); buildah
/// wants the file to exist.
fn empty_auth_file() -> &'static std::path::Path {
    static FILE: std::sync::OnceLock<tempfile::TempPath> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let mut file = tempfile::Builder::new()
            .prefix("strata-tests-auth-")
            .suffix(".json")
            .tempfile()
            .expect("temp auth file");
        std::io::Write::write_all(&mut file, b"{\"auths\": {}}").expect("write auth file");
        file.into_temp_path()
    })
}

/// `umoci unpack --rootless` of `image` (`LAYOUT:TAG`) into `bundle`;
/// returns the bundle's rootfs.
pub fn umoci_unpack(image: &str, bundle: &Path) -> PathBuf {
    tool(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            image,
            bundle.to_str().unwrap(),
        ],
    );
    bundle.join("rootfs")
}

/// Runs a tool (skopeo, umoci, buildah) and returns its stdout; panics with
/// its output unless it succeeds.
pub fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env("REGISTRY_AUTH_FILE", empty_auth_file())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The address of the registry scripts/test.sh started for the registry tier.
pub fn registry_addr() -> String {
    match std::env::var("STRATA_TEST_REGISTRY") {
        Ok(addr) if !addr.is_empty() => addr,
        _ => {
            panic!("STRATA_TEST_REGISTRY is not set: run the registry tier through scripts/test.sh")
        }
    }
}

/// The current user's name and ids, as the host sees them.
pub fn whoami() -> (String, u32, u32) {
    let uid = nix::unistd::Uid::current();
    let name = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_default();
    (name, uid.as_raw(), nix::unistd::Gid::current().as_raw())
}

/// The `start count` ranges of `user` in a subordinate id file.
pub fn subid_ranges(file: &str, user: &str, uid: u32) -> Vec<(u64, u64)> {
    fs_err::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split(':').collect();
            let owner_matches =
                f.first() == Some(&user) || f.first() == Some(&uid.to_string().as_str());
            if f.len() != 3 || !owner_matches {
                return None;
            }
            Some((f[1].parse().ok()?, f[2].parse().ok()?))
        })
        .collect()
}

/// The busybox rootfs tarball of scripts/busybox-rootfs.sh: the one
/// scripts/test.sh makes per run (`STRATA_TEST_BUSYBOX_TAR`), else one kept
/// in cargo's target/tmp, named by the script's hash so an edited script
/// makes a new one. Never a directory per test process: nothing would
/// remove it (statics are not dropped).
pub fn busybox_tar() -> PathBuf {
    static TAR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    TAR.get_or_init(|| {
        if let Some(tar) = std::env::var_os("STRATA_TEST_BUSYBOX_TAR") {
            return PathBuf::from(tar);
        }
        let script = project_dir().join("scripts/busybox-rootfs.sh");
        let hash = tarspec::sha256_hex(&fs_err::read(&script).expect("busybox-rootfs.sh"));
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let out = dir.join(format!("busybox-{}.tar", &hash[..16]));
        if !out.is_file() {
            // Made under a temp name and renamed: concurrent test
            // processes never see half a tarball.
            let tmp = tempfile::NamedTempFile::new_in(dir).expect("temp tar");
            let status = Command::new("bash")
                .arg(&script)
                .arg(tmp.path())
                .status()
                .expect("running busybox-rootfs.sh");
            assert!(status.success(), "busybox-rootfs.sh failed");
            tmp.persist(&out).expect("keeping busybox.tar");
        }
        out
    })
    .clone()
}

/// A build context directory holding `files` (path, content).
pub fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp context");
    for (name, content) in files {
        let path = dir.path().join(name);
        fs_err::create_dir_all(path.parent().expect("a parent")).expect("context dir");
        fs_err::write(path, content).expect("context file");
    }
    dir
}

/// `len` bytes of xorshift noise from `seed`: incompressible (gzip has
/// work to do), and unlike anything else in a store for distinct seeds.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    // An odd multiplier maps distinct seeds to distinct nonzero states
    // (xorshift stays at 0 from 0).
    let mut x = seed
        .wrapping_add(1)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .max(1);
    let mut data = vec![0u8; len];
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    data
}

/// The storage drivers, each of which must give the same images.
pub const DRIVERS: [&str; 3] = ["overlay", "fuse-overlayfs", "vfs"];

impl Strata {
    /// `strata --storage-driver DRIVER build EXTRA… CTX`.
    pub fn build_on(&self, driver: &str, ctx: &Path, extra: &[&str]) -> Run {
        let mut args = vec!["--storage-driver", driver, "build"];
        args.extend(extra);
        args.push(ctx.to_str().unwrap());
        self.run(&args)
    }

    /// `strata build EXTRA… CTX`.
    pub fn build(&self, ctx: &Path, extra: &[&str]) -> Run {
        let mut args = vec!["build"];
        args.extend(extra);
        args.push(ctx.to_str().unwrap());
        self.run(&args)
    }

    /// `strata run --rm IMAGE sh -c SCRIPT`.
    pub fn sh(&self, image: &str, script: &str) -> Run {
        self.run(&["run", "--rm", image, "sh", "-c", script])
    }

    /// The entry names of an image's last layer (from `strata save`),
    /// sorted, without `./` or a trailing `/`.
    pub fn top_layer(&self, image: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("img.tar");
        self.run(&["save", "-o", out.to_str().unwrap(), image])
            .success();
        let mut files = std::collections::BTreeMap::new();
        let mut archive = tar::Archive::new(fs_err::File::open(&out).unwrap());
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            files.insert(name, bytes);
        }
        let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
        let layers = manifest[0]["Layers"].as_array().unwrap();
        let top = layers.last().unwrap().as_str().unwrap();
        let mut layer = tar::Archive::new(files[top].as_slice());
        let mut names: Vec<String> = layer
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = e.path().unwrap().to_string_lossy().into_owned();
                name.trim_start_matches("./")
                    .trim_end_matches('/')
                    .to_string()
            })
            .filter(|n| !n.is_empty() && n != ".")
            .collect();
        names.sort();
        names
    }

    /// Imports the busybox rootfs as `name`.
    pub fn import_busybox(&self, name: &str) {
        let tar = busybox_tar();
        self.run(&["import", tar.to_str().unwrap(), name]).success();
    }
}

// Image fixtures and process checks shared by the container tests.

/// busybox's rootfs with entries dropped and others added, as a new tarball.
pub fn busybox_variant(
    dir: &std::path::Path,
    drop: &[&str],
    add: impl FnOnce(&mut tar::Builder<std::fs::File>),
) -> PathBuf {
    let out = dir.join("variant.tar");
    let mut builder = tar::Builder::new(fs_err::File::create(&out).unwrap().into_file());
    let mut archive = tar::Archive::new(fs_err::File::open(busybox_tar()).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        if drop
            .iter()
            .any(|d| path.trim_start_matches("./").trim_end_matches('/') == *d)
        {
            continue;
        }
        let header = entry.header().clone();
        builder.append(&header, &mut entry).unwrap();
    }
    add(&mut builder);
    builder.finish().unwrap();
    out
}

pub fn symlink_entry(builder: &mut tar::Builder<std::fs::File>, path: &str, target: &str) {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    builder.append_link(&mut h, path, target).unwrap();
}

/// Processes whose command line is exactly `argv` (a container's process,
/// not the strata processes whose own arguments mention it).
pub fn processes_running(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    pids_where(|cmdline| cmdline == want.as_slice())
}

fn pids_where(pred: impl Fn(&[u8]) -> bool) -> Vec<u32> {
    fs_err::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| fs_err::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| pred(&c)))
        .collect()
}

/// Processes with `arg` among their arguments.
pub fn processes_with_arg(arg: &str) -> Vec<u32> {
    pids_where(|c| c.split(|b| *b == 0).any(|a| a == arg.as_bytes()))
}

pub fn file_entry(builder: &mut tar::Builder<std::fs::File>, path: &str, data: &[u8], mode: u32) {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(if path.ends_with('/') {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_000_000_000);
    builder.append_data(&mut h, path, data).unwrap();
}

/// Every file under `dir` (not following links) holding `needle`.
pub fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = fs_err::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = fs_err::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                todo.push(path);
            } else if meta.is_file() {
                let bytes = fs_err::read(&path).unwrap_or_default();
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(path.display().to_string());
                }
            }
        }
    }
    found
}
