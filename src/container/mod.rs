//! Working containers: an image's read-only layers plus one writable layer.
//!
//! ```text
//! containers/<id>/
//! ├── state.json    ContainerState (the store reads `image` from it)
//! ├── running.lock  flock'ed by the strata process running it: a held lock
//! │                 is the only proof of "running" (survives no crash)
//! ├── owner.lock    only in a container that lives as long as the process
//! │                 that made it (a build's, `run --rm`'s): flock'ed by that
//! │                 process; once free, the store sweeps the container
//! ├── upper/        the writable layer, in overlay-native form
//! ├── work/         overlayfs' work dir
//! ├── merged/       mount point of the root file system while in use
//! ├── rootfs/       the vfs driver's copy of the image (vfs only), with
//! │                 vfs-dirs.json, what the copy was made as
//! ├── empty/        the lower dir of an image with no layers
//! ├── init/         mount points the image lacks, a lower layer of its own
//! └── hosts, resolv.conf   the copies bound at /etc/hosts, /etc/resolv.conf
//! ```
//! Nothing stays mounted between commands: each strata process mounts the
//! root file system in its own mount namespace when it needs it.

pub mod changes;
pub mod initlayer;
pub mod lowers;
pub mod names;
pub mod run;
pub mod times;
pub mod vfs;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::digest::ImageId;
use crate::sandbox::driver::DriverKind;
use crate::store::{FileLock, Store, StoreError, OWNER_LOCK, RUNNING_LOCK};

/// Docker's short form of an id.
pub const SHORT_ID: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("No such container: {0}")]
    NotFound(String),
    #[error("the container name \"{name}\" is already in use by container \"{id}\"")]
    NameInUse { name: String, id: String },
    #[error("invalid container name \"{0}\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    BadName(String),
    #[error("container {0} is running: stop it first or use --force")]
    Running(String),
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ContainerError + 'a {
    move |source| ContainerError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// How a container ended, if it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Status {
    Created,
    Running { started: String },
    Exited { code: i32, finished: String },
}

/// `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerState {
    pub id: String,
    pub name: String,
    pub image: ImageId,
    /// The image as the user named it, for `ps`.
    pub image_name: String,
    pub command: Vec<String>,
    pub created: String,
    pub driver: DriverKind,
    #[serde(flatten)]
    pub status: Status,
}

/// A container on disk.
#[derive(Debug, Clone)]
pub struct Container {
    pub dir: PathBuf,
    pub state: ContainerState,
}

impl Container {
    pub fn short_id(&self) -> &str {
        &self.state.id[..SHORT_ID.min(self.state.id.len())]
    }

    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    pub fn merged(&self) -> PathBuf {
        self.dir.join("merged")
    }

    pub fn empty(&self) -> PathBuf {
        self.dir.join("empty")
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn init(&self) -> PathBuf {
        self.dir.join("init")
    }

    /// Brings the upper dir up to date with the container's changes, in the
    /// store's overlay-native form, whatever the driver.
    pub fn sync_upper(&self, store: &Store) -> Result<PathBuf, ContainerError> {
        let upper = self.upper();
        if self.state.driver == DriverKind::Vfs {
            let lowers = store.lowerdirs(&self.state.image)?;
            crate::layer::apply::remove_tree(&upper).map_err(io_err("remove", &upper))?;
            fs_err::create_dir(&upper).map_err(io_err("create", &upper))?;
            vfs::diff(&self.dir, &self.rootfs(), &lowers, &self.init(), &upper).map_err(|e| {
                ContainerError::Io {
                    op: "compare",
                    path: self.rootfs(),
                    source: io::Error::other(e.to_string()),
                }
            })?;
        }
        changes::normalise(&upper).map_err(|e| ContainerError::Io {
            op: "normalise",
            path: upper.clone(),
            source: io::Error::other(e.to_string()),
        })?;
        Ok(upper)
    }

    /// Whether a strata process is running it now.
    pub fn is_running(&self) -> bool {
        let lock = self.dir.join(RUNNING_LOCK);
        // A lock we could take (or none at all) means nobody holds it.
        lock.exists() && !matches!(FileLock::try_exclusive(&lock), Ok(Some(_)))
    }

    /// Writes state.json atomically.
    pub fn save(&self) -> Result<(), ContainerError> {
        let path = self.dir.join("state.json");
        let tmp = self.dir.join("state.json.tmp");
        let bytes =
            serde_json::to_vec_pretty(&self.state).map_err(|source| ContainerError::Json {
                path: path.clone(),
                source,
            })?;
        fs_err::write(&tmp, bytes).map_err(io_err("write", &tmp))?;
        fs_err::rename(&tmp, &path).map_err(io_err("rename", &path))
    }

    fn load(dir: PathBuf) -> Result<Option<Container>, ContainerError> {
        let path = dir.join("state.json");
        let bytes = match fs_err::read(&path) {
            Ok(b) => b,
            // Being created, or half removed: not a container (yet).
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let state = serde_json::from_slice(&bytes)
            .map_err(|source| ContainerError::Json { path, source })?;
        Ok(Some(Container { dir, state }))
    }
}

fn containers_dir(store: &Store) -> PathBuf {
    store.root().join("containers")
}

/// Every container, oldest first.
pub fn list(store: &Store) -> Result<Vec<Container>, ContainerError> {
    let dir = containers_dir(store);
    let entries = match fs_err::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("read directory", &dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("read directory", &dir))?;
        if let Some(c) = Container::load(entry.path())? {
            out.push(c);
        }
    }
    out.sort_by(|a, b| {
        a.state
            .created
            .cmp(&b.state.created)
            .then(a.state.id.cmp(&b.state.id))
    });
    Ok(out)
}

/// A container by name, full id, or unique id prefix (as Docker).
pub fn find(store: &Store, key: &str) -> Result<Container, ContainerError> {
    let all = list(store)?;
    if let Some(c) = all
        .iter()
        .find(|c| c.state.name == key || c.state.id == key)
    {
        return Ok(c.clone());
    }
    let mut by_prefix = all
        .into_iter()
        .filter(|c| !key.is_empty() && c.state.id.starts_with(key));
    match (by_prefix.next(), by_prefix.next()) {
        (Some(c), None) => Ok(c),
        _ => Err(ContainerError::NotFound(key.into())),
    }
}

/// What a new container is made from.
pub struct NewContainer<'a> {
    pub image: ImageId,
    pub image_name: &'a str,
    pub name: Option<&'a str>,
    pub command: Vec<String>,
    pub driver: DriverKind,
    /// Removed when this process ends, however it ends: by the caller, or,
    /// if the process is killed, by the next strata command (a build's
    /// working container, `run --rm`'s).
    pub owned: bool,
}

/// The owner locks of the containers this process owns, by id: held until
/// the container is removed or the process ends.
static OWNED: Mutex<Option<HashMap<String, FileLock>>> = Mutex::new(None);

/// Creates the container's directories and state, under the store lock so
/// two processes cannot take the same name.
pub fn create(store: &Store, new: NewContainer) -> Result<Container, ContainerError> {
    if let Some(name) = new.name {
        if !names::is_valid(name) {
            return Err(ContainerError::BadName(name.into()));
        }
    }
    let _lock = store.lock()?;
    let existing = list(store)?;
    let name = match new.name {
        Some(name) => {
            if let Some(c) = existing.iter().find(|c| c.state.name == name) {
                return Err(ContainerError::NameInUse {
                    name: name.into(),
                    id: c.state.id.clone(),
                });
            }
            name.to_string()
        }
        None => names::generate(|n| existing.iter().any(|c| c.state.name == n)),
    };
    let id = names::random_id();
    let root = containers_dir(store);
    let staging = root.join(format!(".{id}.new"));
    for sub in ["upper", "work", "merged", "empty"] {
        let d = staging.join(sub);
        fs_err::create_dir_all(&d).map_err(io_err("create", &d))?;
    }
    let container = Container {
        dir: root.join(&id),
        state: ContainerState {
            id: id.clone(),
            name,
            image: new.image,
            image_name: new.image_name.to_string(),
            command: new.command,
            created: crate::store::now_rfc3339(),
            driver: new.driver,
            status: Status::Created,
        },
    };
    let staged = Container {
        dir: staging.clone(),
        state: container.state.clone(),
    };
    staged.save()?;
    let lock = staging.join(RUNNING_LOCK);
    fs_err::write(&lock, b"").map_err(io_err("create", &lock))?;
    // Taken before the container is visible, so no sweep finds it free.
    let owner = match new.owned {
        true => Some(FileLock::exclusive(&staging.join(OWNER_LOCK))?),
        false => None,
    };
    // The rename publishes the container whole: list() never sees a half.
    fs_err::rename(&staging, &container.dir).map_err(io_err("rename", &container.dir))?;
    if let Some(owner) = owner {
        owned_locks(|locks| locks.insert(id, owner));
    }
    Ok(container)
}

/// Deletes a container; a running one only with `force` (its process is
/// killed by the death of the strata process running it, not by us).
pub fn remove(store: &Store, key: &str, force: bool) -> Result<Container, ContainerError> {
    let container = find(store, key)?;
    if container.is_running() && !force {
        return Err(ContainerError::Running(container.state.name.clone()));
    }
    let _lock = store.lock()?;
    let doomed = containers_dir(store).join(format!(".{}.rm", container.state.id));
    // Renamed away first, so a crash mid-delete leaves no half container.
    fs_err::rename(&container.dir, &doomed).map_err(io_err("rename", &container.dir))?;
    crate::layer::apply::remove_tree(&doomed).map_err(io_err("remove", &doomed))?;
    owned_locks(|locks| locks.remove(&container.state.id));
    Ok(container)
}

/// Whether this process owns (and will remove) the container `id`.
pub(crate) fn is_owned(id: &str) -> bool {
    owned_locks(|locks| locks.contains_key(id))
}

fn owned_locks<T>(f: impl FnOnce(&mut HashMap<String, FileLock>) -> T) -> T {
    let mut guard = OWNED.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(HashMap::new))
}
