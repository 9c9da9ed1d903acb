//! A container's changes: its upper dir normalised to the one
//! overlay-native form the store uses, listed as `docker diff` does, and
//! turned into a layer.
//!
//! Drivers spell deletions differently: kernel overlayfs writes 0:0
//! character devices and `user.overlay.opaque`; fuse-overlayfs writes 0:0
//! devices too but marks opaque directories with `.wh..wh..opq` files, a
//! `.wh..opq` device and its own xattrs. After [`normalise`] every driver's
//! upper dir reads the same: whiteout = char 0:0, opaque = `user.overlay.opaque=y`,
//! no other overlay xattrs.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::layer::whiteout::{OPAQUE_MARKER, OPAQUE_VALUE, OPAQUE_XATTR, WHITEOUT_PREFIX};

/// fuse-overlayfs' own opaque marker: a 0:0 device of this name.
const FUSE_OPAQUE_DEVICE: &str = ".wh..opq";
/// Xattrs that mean "opaque" in some driver's spelling.
const OPAQUE_XATTRS: [&str; 3] = [
    OPAQUE_XATTR,
    "trusted.overlay.opaque",
    "user.fuseoverlayfs.opaque",
];
/// Xattr namespaces that belong to a driver, never to the layer.
const DRIVER_XATTR_PREFIXES: [&str; 3] =
    ["user.overlay.", "trusted.overlay.", "user.fuseoverlayfs."];

#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct ChangesError {
    op: &'static str,
    path: PathBuf,
    source: io::Error,
}

fn err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ChangesError + 'a {
    move |source| ChangesError {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn rustix_err(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

use super::lowers::is_whiteout;

/// Rewrites `upper` in place into the store's overlay-native form.
pub fn normalise(upper: &Path) -> Result<(), ChangesError> {
    let mut stack = vec![upper.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut opaque = false;
        // Removing a driver's marker must not change the directory's times.
        let before = fs_err::symlink_metadata(&dir).map_err(err("stat", &dir))?;
        let mut touched = false;
        let entries = fs_err::read_dir(&dir).map_err(err("read directory", &dir))?;
        for entry in entries {
            let entry = entry.map_err(err("read directory", &dir))?;
            let path = entry.path();
            let name = entry.file_name();
            let meta = fs_err::symlink_metadata(&path).map_err(err("stat", &path))?;
            if name == OPAQUE_MARKER || (name == FUSE_OPAQUE_DEVICE && is_whiteout(&meta)) {
                fs_err::remove_file(&path).map_err(err("remove", &path))?;
                opaque = true;
                touched = true;
                continue;
            }
            if let Some(target) = name.as_bytes().strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
                // A `.wh.NAME` file is what a tar would turn into a whiteout
                // anyway: make it one now, so every driver agrees.
                if meta.file_type().is_file() && !target.is_empty() {
                    fs_err::remove_file(&path).map_err(err("remove", &path))?;
                    let real = dir.join(OsStr::from_bytes(target));
                    make_whiteout(&real)?;
                    touched = true;
                    continue;
                }
            }
            if is_whiteout(&meta) {
                settle_whiteout(&path, &meta)?;
            } else if !meta.file_type().is_symlink() {
                strip_driver_xattrs(&path, meta.is_dir(), &mut stack)?;
            }
        }
        let own = strip_driver_xattrs_of(&dir)?;
        if opaque || own {
            rustix::fs::lsetxattr(
                &dir,
                OPAQUE_XATTR,
                OPAQUE_VALUE,
                rustix::fs::XattrFlags::empty(),
            )
            .map_err(|e| err("set opaque xattr on", &dir)(rustix_err(e)))?;
        }
        if touched {
            restore_times(&dir, &before)?;
        }
    }
    Ok(())
}

fn restore_times(path: &Path, meta: &fs::Metadata) -> Result<(), ChangesError> {
    super::times::copy_times(path, meta).map_err(err("set times of", path))
}

/// Drivers make whiteouts with different modes, owners and times; they
/// mean only "deleted", so all get the same: mode 0, root, time 0.
fn settle_whiteout(path: &Path, meta: &fs::Metadata) -> Result<(), ChangesError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if meta.mode() & 0o7777 != 0 {
        fs_err::set_permissions(path, fs::Permissions::from_mode(0o0))
            .map_err(err("chmod", path))?;
    }
    if meta.uid() != 0 || meta.gid() != 0 {
        rustix::fs::chownat(
            rustix::fs::CWD,
            path,
            Some(rustix::fs::Uid::ROOT),
            Some(rustix::fs::Gid::ROOT),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| err("chown", path)(rustix_err(e)))?;
    }
    super::times::zero_times(path).map_err(err("set times of", path))
}

fn make_whiteout(path: &Path) -> Result<(), ChangesError> {
    match fs_err::symlink_metadata(path) {
        Ok(m) if is_whiteout(&m) => return Ok(()),
        Ok(_) => crate::layer::apply::remove_tree(path).map_err(err("remove", path))?,
        Err(_) => {}
    }
    // Unprivileged 0:0 device creation is allowed since Linux 5.8, for
    // exactly this purpose.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .map_err(|e| err("create whiteout", path)(rustix_err(e)))?;
    let meta = fs_err::symlink_metadata(path).map_err(err("stat", path))?;
    settle_whiteout(path, &meta)
}

fn strip_driver_xattrs(
    path: &Path,
    is_dir: bool,
    stack: &mut Vec<PathBuf>,
) -> Result<(), ChangesError> {
    if is_dir {
        // Directories are handled (and their own xattrs read) when popped.
        stack.push(path.to_path_buf());
        Ok(())
    } else {
        strip_driver_xattrs_of(path).map(|_| ())
    }
}

/// Removes driver xattrs from `path`; returns whether one said "opaque".
fn strip_driver_xattrs_of(path: &Path) -> Result<bool, ChangesError> {
    let mut opaque = false;
    let xattrs = crate::layer::diff::xattrs_of(path).map_err(err("read xattrs of", path))?;
    for (name, value) in xattrs {
        let name = OsString::from_vec(name);
        let text = name.to_string_lossy();
        if !DRIVER_XATTR_PREFIXES.iter().any(|p| text.starts_with(p)) {
            continue;
        }
        if OPAQUE_XATTRS.contains(&text.as_ref()) && value == OPAQUE_VALUE {
            opaque = true;
        }
        rustix::fs::lremovexattr(path, name.as_os_str())
            .map_err(|e| err("remove xattr from", path)(rustix_err(e)))?;
    }
    Ok(opaque)
}

/// One line of `docker diff`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub path: String,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    Changed,
    Added,
    Deleted,
}

impl ChangeKind {
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Changed => 'C',
            ChangeKind::Added => 'A',
            ChangeKind::Deleted => 'D',
        }
    }
}

/// The changes in a normalised `upper` over `lowers` (top-most first),
/// sorted by path.
pub fn list(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>, ChangesError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = upper.join(&rel);
        for entry in fs_err::read_dir(&dir).map_err(err("read directory", &dir))? {
            let entry = entry.map_err(err("read directory", &dir))?;
            let rel_child = rel.join(entry.file_name());
            let meta =
                fs_err::symlink_metadata(entry.path()).map_err(err("stat", &entry.path()))?;
            let path = format!("/{}", rel_child.display());
            let kind = if is_whiteout(&meta) {
                ChangeKind::Deleted
            } else if super::lowers::lookup(lowers, &rel_child).is_some() {
                ChangeKind::Changed
            } else {
                ChangeKind::Added
            };
            out.push(Change { path, kind });
            // Below an added or opaque directory everything is new: Docker
            // lists it all as added, which the recursion does too.
            if meta.is_dir() {
                stack.push(rel_child);
            }
        }
    }
    out.sort();
    Ok(out)
}
