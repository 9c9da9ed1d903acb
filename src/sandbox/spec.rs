//! What a container process is to be: handed from strata to the
//! `container-init` process as JSON over a pipe.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Docker's PATH when the image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// The host's network (Docker's `--network host`)
    #[default]
    Host,
    /// A private network namespace with only a loopback interface
    None,
}

/// A mount made in the container before its process starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Mount {
    Bind(Bind),
    Tmpfs(Tmpfs),
}

impl Mount {
    /// Absolute path inside the container.
    pub fn target(&self) -> &str {
        match self {
            Mount::Bind(b) => &b.target,
            Mount::Tmpfs(t) => &t.target,
        }
    }
}

/// A host path bound into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    pub source: PathBuf,
    /// When set, `source` is a path inside this directory and is resolved
    /// there as in a chroot (openat2 RESOLVE_IN_ROOT, when the mount is
    /// made): a symlink in it can never lead outside, however it changes.
    #[serde(default)]
    pub within: Option<PathBuf>,
    /// Absolute path inside the container.
    pub target: String,
    pub readonly: bool,
    /// Left out (rather than failing the run) when the image has no place
    /// for it, e.g. /etc/resolv.conf as a dangling symlink.
    #[serde(default)]
    pub optional: bool,
}

/// A fresh tmpfs (`RUN --mount=type=tmpfs`), gone with the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tmpfs {
    /// Absolute path inside the container.
    pub target: String,
    /// Bytes; the kernel's default (half the memory) when `None`.
    pub size: Option<u64>,
    pub readonly: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessSpec {
    /// The merged root file system, already mounted.
    pub rootfs: PathBuf,
    /// argv; args[0] is looked up in the container's PATH.
    pub args: Vec<String>,
    /// `K=V` pairs.
    pub env: Vec<String>,
    /// As USER / `run -u`; empty for root.
    pub user: String,
    /// Absolute; created if missing.
    pub workdir: String,
    /// Missing workdir directories are made owned by the user (a build's
    /// RUN, as BuildKit and buildah do), not by root (`run -w`, as Docker).
    #[serde(default)]
    pub workdir_for_user: bool,
    pub hostname: String,
    pub network: Network,
    /// Made in order: /etc/hosts, /etc/resolv.conf copies, then `-v` binds
    /// or a RUN step's mounts (a mount below another comes after it).
    pub mounts: Vec<Mount>,
    /// Give the process a new pseudo-terminal as its stdio.
    pub tty: bool,
    /// `--add-host`, `--shm-size`, `--ulimit`.
    #[serde(default)]
    pub extras: super::extras::Extras,
}

impl ProcessSpec {
    /// The value of `key` in the environment, if set.
    pub fn env_get(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    }
}

/// How container-init confines the process: from the rung strata entered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confinement {
    /// `None`: namespaces, as strata itself runs in them.
    pub isolation: Option<super::ladder::Isolation>,
    /// The container's /proc is bound in rather than a new one mounted.
    pub bind_proc: bool,
}

impl Confinement {
    /// What the rung this process entered calls for.
    pub fn current() -> Confinement {
        match super::userns::current() {
            Some(choice) => Confinement {
                isolation: Some(choice.isolation),
                bind_proc: choice.bind_proc,
            },
            None => Confinement::default(),
        }
    }
}

/// What strata sends container-init.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitMessage {
    pub spec: ProcessSpec,
    pub confinement: Confinement,
}
