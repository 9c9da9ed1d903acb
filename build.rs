//! Build-time facts for `strata version`: the git commit of the checkout
//! (read from .git, no git program needed; "unknown" outside a checkout)
//! and the compiler's version.

// A build script talks to cargo through stdout: printing is its job.
#![allow(clippy::disallowed_macros)]

use std::path::{Path, PathBuf};

fn main() {
    let commit = git_commit(Path::new(".")).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=STRATA_GIT_COMMIT={commit}");
    // What cargo itself runs; its version line (`rustc 1.88.0 (...)`).
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=STRATA_RUSTC_VERSION={version}");
}

/// The commit HEAD names, short (12 digits). Follows a worktree's `.git`
/// file and a ref that lives in the common dir or in packed-refs; says
/// which files to watch so a new commit rebuilds.
fn git_commit(root: &Path) -> Option<String> {
    let dot_git = root.join(".git");
    let git_dir = match fs_err::read_to_string(&dot_git) {
        Ok(text) => PathBuf::from(text.strip_prefix("gitdir:")?.trim()),
        Err(_) => dot_git,
    };
    let head_path = git_dir.join("HEAD");
    println!("cargo:rerun-if-changed={}", head_path.display());
    let head = fs_err::read_to_string(&head_path).ok()?;
    let hex = match head.trim().strip_prefix("ref:") {
        None => head.trim().to_string(),
        Some(name) => {
            let name = name.trim();
            let common = fs_err::read_to_string(git_dir.join("commondir"))
                .map(|c| git_dir.join(c.trim()))
                .unwrap_or_else(|_| git_dir.clone());
            let loose = [git_dir.join(name), common.join(name)];
            match loose.iter().find(|p| p.exists()) {
                Some(path) => {
                    println!("cargo:rerun-if-changed={}", path.display());
                    fs_err::read_to_string(path).ok()?.trim().to_string()
                }
                None => {
                    let packed = common.join("packed-refs");
                    println!("cargo:rerun-if-changed={}", packed.display());
                    fs_err::read_to_string(packed)
                        .ok()?
                        .lines()
                        .find(|l| l.ends_with(&format!(" {name}")))?
                        .split(' ')
                        .next()?
                        .to_string()
                }
            }
        }
    };
    Some(hex.chars().take(12).collect())
}
