//! A container's init layer: the mount points its image lacks (/proc,
//! /dev, /etc/hosts, a `-v` target), as a lower layer of its own above the
//! image's, the way Docker's `-init` layer works. Nothing the sandbox needs
//! to create then ever lands in the writable layer, so it never shows up in
//! `diff` or a commit.
//!
//! Parent directories that exist in the image are mirrored with their
//! mode, owner and times, so the merged view of them is unchanged.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use super::lowers::lookup;

#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct InitLayerError {
    op: &'static str,
    path: PathBuf,
    source: io::Error,
}

fn err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> InitLayerError + 'a {
    move |source| InitLayerError {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A mount point the sandbox needs: an absolute path, and whether it is a
/// directory (else an empty file).
pub struct MountPoint<'a> {
    pub path: &'a str,
    pub is_dir: bool,
}

/// Rebuilds `init` for `points` over `lowers` (top-most first).
pub fn build(init: &Path, lowers: &[PathBuf], points: &[MountPoint]) -> Result<(), InitLayerError> {
    if init.exists() {
        crate::layer::apply::remove_tree(init).map_err(err("remove", init))?;
    }
    fs_err::create_dir(init).map_err(err("create", init))?;
    let mut mirrored: Vec<(PathBuf, fs::Metadata)> = Vec::new();
    'points: for point in points {
        let resolved = resolve(lowers, Path::new(point.path));
        let parts: Vec<&std::ffi::OsStr> = resolved
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect();
        let mut rel = PathBuf::new();
        for (i, part) in parts.iter().enumerate() {
            rel.push(part);
            let last = i + 1 == parts.len();
            let here = init.join(&rel);
            match lookup(lowers, &rel) {
                // The image has it already; nothing to add.
                Some(_) if last => continue 'points,
                Some((_, meta)) if meta.is_dir() => {
                    if !here.exists() {
                        mkdir(&here, meta.mode() & 0o7777)?;
                        rustix::fs::chown(
                            &here,
                            Some(rustix::fs::Uid::from_raw(meta.uid())),
                            Some(rustix::fs::Gid::from_raw(meta.gid())),
                        )
                        .map_err(|e| {
                            err("chown", &here)(io::Error::from_raw_os_error(e.raw_os_error()))
                        })?;
                        mirrored.push((here, meta));
                    }
                }
                // A symlink or file in the way: the sandbox resolves (or
                // skips) this mount point inside the image itself.
                Some(_) => continue 'points,
                None if last && !point.is_dir => {
                    fs_err::write(&here, b"").map_err(err("create", &here))?;
                }
                None => {
                    if !here.exists() {
                        mkdir(&here, 0o755)?;
                    }
                }
            }
        }
    }
    // Times last, deepest first: creating children changed them.
    mirrored.sort_by(|a, b| b.0.cmp(&a.0));
    for (path, meta) in mirrored {
        super::times::copy_times(&path, &meta).map_err(err("set times of", &path))?;
    }
    Ok(())
}

/// How many symlinks a path may go through (the kernel's limit).
const MAX_HOPS: usize = 40;

/// `path` (absolute) with the image's symlinks on the way followed inside
/// the image, as the sandbox's openat2 `RESOLVE_IN_ROOT` will follow them:
/// a mount point behind `/a -> /inside` is made at `/inside/...`, in this
/// layer, never in the container's writable one. Relative to the root.
fn resolve(lowers: &[PathBuf], path: &Path) -> PathBuf {
    let mut todo: std::collections::VecDeque<std::ffi::OsString> =
        path.iter().map(|p| p.to_os_string()).collect();
    let mut out = PathBuf::new();
    let mut hops = 0;
    while let Some(part) = todo.pop_front() {
        match part.to_str() {
            Some("/" | ".") => continue,
            Some("..") => {
                out.pop();
                continue;
            }
            _ => out.push(&part),
        }
        let link = match lookup(lowers, &out) {
            Some((p, meta)) if meta.file_type().is_symlink() => fs_err::read_link(p),
            _ => continue,
        };
        hops += 1;
        // Past the limit, or unreadable: left as it is; the sandbox fails.
        let Ok(target) = link else { return out };
        if hops > MAX_HOPS {
            return out;
        }
        out.pop();
        if target.is_absolute() {
            out = PathBuf::new();
        }
        for (i, p) in target.iter().enumerate() {
            todo.insert(i, p.to_os_string());
        }
    }
    out
}

fn mkdir(path: &Path, mode: u32) -> Result<(), InitLayerError> {
    fs::DirBuilder::new()
        .mode(mode)
        .create(path)
        .map_err(err("create", path))?;
    // The umask may have cut bits the image's directory has.
    fs_err::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(err("chmod", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_only_what_is_missing_and_mirrors_parents() {
        let t = tempfile::tempdir().unwrap();
        let image = t.path().join("image");
        fs_err::create_dir_all(image.join("etc")).unwrap();
        fs_err::create_dir_all(image.join("proc")).unwrap();
        fs_err::set_permissions(image.join("etc"), fs::Permissions::from_mode(0o751)).unwrap();
        let init = t.path().join("init");
        let points = [
            MountPoint {
                path: "/proc",
                is_dir: true,
            },
            MountPoint {
                path: "/dev",
                is_dir: true,
            },
            MountPoint {
                path: "/etc/hosts",
                is_dir: false,
            },
            MountPoint {
                path: "/data/deep",
                is_dir: true,
            },
        ];
        fs_err::os::unix::fs::symlink("/inside", image.join("link")).unwrap();
        fs_err::os::unix::fs::symlink("../../inside", image.join("rel")).unwrap();
        fs_err::create_dir(image.join("inside")).unwrap();
        assert_eq!(
            resolve(std::slice::from_ref(&image), Path::new("/link/a/b")),
            Path::new("inside/a/b")
        );
        assert_eq!(
            resolve(std::slice::from_ref(&image), Path::new("/rel/a")),
            Path::new("inside/a")
        );
        assert_eq!(
            resolve(std::slice::from_ref(&image), Path::new("/x/../link")),
            Path::new("inside")
        );
        build(&init, std::slice::from_ref(&image), &points).unwrap();
        assert!(!init.join("proc").exists(), "the image has /proc");
        assert!(init.join("dev").is_dir());
        assert!(init.join("etc/hosts").is_file());
        assert_eq!(
            fs_err::metadata(init.join("etc")).unwrap().mode() & 0o7777,
            0o751
        );
        assert_eq!(
            fs_err::metadata(init.join("etc")).unwrap().mtime(),
            fs_err::metadata(image.join("etc")).unwrap().mtime()
        );
        assert!(init.join("data/deep").is_dir());
        // Rebuilding starts clean.
        build(&init, &[image], &points[..1]).unwrap();
        assert!(!init.join("dev").exists());
    }
}
