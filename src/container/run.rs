//! Running a process in a container: mount its root file system with its
//! driver, bind the host's name files, run, record how it ended.

use std::path::{Path, PathBuf};

use super::initlayer::{self, MountPoint};
use super::vfs;
use super::{Container, ContainerError, Status};
use crate::sandbox::driver::DriverKind;
use crate::sandbox::driver::{self, Layout, MountError};
use crate::sandbox::extras::Extras;
use crate::sandbox::spawn::{self, Input, Output, SpawnError};
use crate::sandbox::spec::{Bind, Mount, Network, ProcessSpec};
use crate::store::{FileLock, Store};

/// The host files a container sees its own copies of (Docker does the same:
/// a process writing them must not change the host's).
const NAME_FILES: [(&str, &str); 2] =
    [("/etc/hosts", "hosts"), ("/etc/resolv.conf", "resolv.conf")];

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error(transparent)]
    InitLayer(#[from] initlayer::InitLayerError),
    #[error(transparent)]
    Vfs(#[from] super::vfs::VfsError),
    #[error("container {0} is already running")]
    AlreadyRunning(String),
}

/// How to run the process; the image's config has been applied already.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub user: String,
    pub workdir: String,
    /// See [`ProcessSpec::workdir_for_user`].
    pub workdir_for_user: bool,
    pub network: Network,
    /// `-v` binds, or a RUN step's mounts, after the name files.
    pub mounts: Vec<Mount>,
    pub tty: bool,
    /// `--add-host`, `--shm-size`, `--ulimit`.
    pub extras: Extras,
    pub input: Input,
    /// Where the process's stdout and stderr go.
    pub output: Output,
}

/// Runs `opts` in `container` and returns the exit code.
pub fn run(store: &Store, container: &mut Container, opts: RunOptions) -> Result<i32, RunError> {
    let lock_path = container.dir.join(crate::store::RUNNING_LOCK);
    let _running = FileLock::try_exclusive(&lock_path)
        .map_err(ContainerError::from)?
        .ok_or_else(|| RunError::AlreadyRunning(container.state.name.clone()))?;
    let image_lowers = store
        .lowerdirs(&container.state.image)
        .map_err(ContainerError::from)?;
    let mut mounts = name_file_binds(container, &opts.extras)?;
    mounts.extend(opts.mounts);
    let init = container.dir.join("init");
    let mut points = vec![
        MountPoint {
            path: "/proc",
            is_dir: true,
        },
        MountPoint {
            path: "/dev",
            is_dir: true,
        },
    ];
    points.extend(mounts.iter().map(|m| MountPoint {
        path: m.target(),
        is_dir: m.is_dir(),
    }));
    initlayer::build(&init, &image_lowers, &points)?;
    let lowers: Vec<PathBuf> = std::iter::once(init.clone()).chain(image_lowers).collect();
    let (root, mounted) = mount_root(container, &lowers, &init)?;
    let spec = ProcessSpec {
        rootfs: root,
        args: opts.args,
        env: opts.env,
        user: opts.user,
        workdir: opts.workdir,
        workdir_for_user: opts.workdir_for_user,
        hostname: container.short_id().to_string(),
        network: opts.network,
        mounts,
        tty: opts.tty,
        extras: opts.extras,
    };
    container.state.status = Status::Running {
        started: crate::store::now_rfc3339(),
    };
    container.save()?;
    let outcome = spawn::run(&spec, opts.input, opts.output);
    drop(mounted);
    let code = outcome?;
    container.state.status = Status::Exited {
        code,
        finished: crate::store::now_rfc3339(),
    };
    container.save()?;
    Ok(code)
}

/// Mounts the root file system over `lowers` (`init` first) with the
/// container's driver; returns where it is and the mount to drop.
fn mount_root(
    container: &Container,
    lowers: &[PathBuf],
    init: &Path,
) -> Result<(PathBuf, Option<driver::Mounted>), RunError> {
    crate::log::debug(&format!(
        "mounting {} with {} over {} layer(s)",
        container.short_id(),
        container.state.driver,
        lowers.len()
    ));
    if container.state.driver == DriverKind::Vfs {
        let rootfs = container.rootfs();
        vfs::populate(&container.dir, &rootfs, &lowers[1..], init)?;
        return Ok((rootfs, None));
    }
    let (upper, work, empty, merged) = (
        container.upper(),
        container.work(),
        container.empty(),
        container.merged(),
    );
    let m = driver::mount(
        container.state.driver,
        &Layout {
            lowers,
            upper: &upper,
            work: &work,
            empty: &empty,
            target: &merged,
            volatile: super::is_owned(&container.state.id),
        },
    )?;
    Ok((m.path().to_path_buf(), Some(m)))
}

/// A container's root file system mounted for strata itself to work in
/// (COPY), unmounted when dropped.
pub struct MountedRoot {
    root: PathBuf,
    _mounted: Option<driver::Mounted>,
}

impl MountedRoot {
    pub fn path(&self) -> &Path {
        &self.root
    }
}

/// Mounts the container's root file system (with an empty init layer) until
/// the returned guard is dropped.
pub fn mount_rootfs(store: &Store, container: &Container) -> Result<MountedRoot, RunError> {
    let image_lowers = store
        .lowerdirs(&container.state.image)
        .map_err(ContainerError::from)?;
    let init = container.init();
    initlayer::build(&init, &image_lowers, &[])?;
    let lowers: Vec<PathBuf> = std::iter::once(init.clone()).chain(image_lowers).collect();
    let (root, mounted) = mount_root(container, &lowers, &init)?;
    Ok(MountedRoot {
        root,
        _mounted: mounted,
    })
}

/// Copies of the host's /etc/hosts (with `--add-host`'s lines) and
/// /etc/resolv.conf, for binding.
fn name_file_binds(container: &Container, extras: &Extras) -> Result<Vec<Mount>, ContainerError> {
    let mut binds = Vec::new();
    for (host, name) in NAME_FILES {
        let copy: PathBuf = container.dir.join(name);
        match fs_err::read(host) {
            Ok(mut bytes) => {
                if name == "hosts" {
                    if !bytes.is_empty() && !bytes.ends_with(b"\n") {
                        bytes.push(b'\n');
                    }
                    bytes.extend(extras.hosts_lines().into_bytes());
                }
                fs_err::write(&copy, bytes).map_err(super::io_err("write", &copy))?
            }
            // A host without the file gives the container none either.
            Err(_) => continue,
        }
        binds.push(Mount::Bind(Bind {
            source: copy,
            within: None,
            target: host.to_string(),
            readonly: false,
            optional: true,
        }));
    }
    Ok(binds)
}
