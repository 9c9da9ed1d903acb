//! The union of a stack of layer directories (top first), as overlayfs
//! shows it, looked up by path without mounting anything: whiteouts (char
//! 0:0) delete, an opaque directory hides what is below it, a non-directory
//! hides everything below it, and an opaque layer root hides the layers
//! under it.
//!
//! Used so a later layer's paths resolve through an earlier layer's
//! symlinks (`var/run -> /run` in one layer, `var/run/x/f` in the next lands
//! in `/run/x/f`, as a flat unpack onto the image does), confined to the
//! rootfs: a link's `..` stops at the root, an absolute target starts there.

use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use super::whiteout::{OPAQUE_VALUE, OPAQUE_XATTR};

/// Symlinks followed while resolving one path (Linux's limit).
const MAX_HOPS: usize = 40;

/// What the union holds at a path.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    Missing,
    /// A directory, with the indexes of the layers that hold a piece of it
    /// (top first).
    Dir(Vec<usize>),
    /// A symlink at component `at` of the path, whatever follows it.
    Symlink {
        at: usize,
        target: Vec<u8>,
    },
    /// Another kind of file (at the end of the path or in the way).
    Other,
}

/// Open layer directories, top first.
pub struct Union {
    layers: Vec<OwnedFd>,
}

impl Union {
    /// The union of `dirs` (top first); layers under one whose root is
    /// opaque are left out.
    pub fn new(dirs: Vec<OwnedFd>) -> Union {
        let mut layers = Vec::new();
        for fd in dirs {
            let opaque = is_opaque(&fd, b".");
            layers.push(fd);
            if opaque {
                break;
            }
        }
        Union { layers }
    }

    pub fn open(paths: &[std::path::PathBuf]) -> Result<Union, Errno> {
        let mut fds = Vec::new();
        for p in paths {
            fds.push(rustix::fs::open(
                p,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?);
        }
        Ok(Union::new(fds))
    }

    /// The layers' descriptors, top first.
    pub fn into_fds(self) -> Vec<OwnedFd> {
        self.layers
    }

    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// What is at `comps`, following no symlink.
    pub fn lookup(&self, comps: &[&[u8]]) -> Result<Found, Errno> {
        let mut stack: Vec<usize> = (0..self.layers.len()).collect();
        let mut path = Vec::new();
        for (at, c) in comps.iter().enumerate() {
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(c);
            let mut next = Vec::new();
            for &i in &stack {
                let st = match stat(&self.layers[i], &path) {
                    Ok(st) => st,
                    Err(Errno::NOENT | Errno::NOTDIR) => continue,
                    Err(e) => return Err(e),
                };
                let ft = FileType::from_raw_mode(st.st_mode);
                let whiteout = ft == FileType::CharacterDevice && st.st_rdev == 0;
                match ft {
                    _ if whiteout => break,
                    FileType::Directory => {
                        next.push(i);
                        if is_opaque(&self.layers[i], &path) {
                            break;
                        }
                    }
                    // A non-directory under a directory of a higher layer
                    // is hidden by it.
                    _ if !next.is_empty() => break,
                    FileType::Symlink => {
                        let target =
                            rustix::fs::readlinkat(&self.layers[i], os(&path), Vec::new())?;
                        return Ok(Found::Symlink {
                            at,
                            target: target.into_bytes(),
                        });
                    }
                    _ => return Ok(Found::Other),
                }
            }
            if next.is_empty() {
                return Ok(Found::Missing);
            }
            stack = next;
        }
        Ok(Found::Dir(stack))
    }

    /// `comps` with every symlink in the union followed, the last component
    /// included, confined to the root.
    pub fn resolve(&self, comps: &[&[u8]]) -> Result<Vec<Vec<u8>>, Errno> {
        let mut path: Vec<Vec<u8>> = comps.iter().map(|c| c.to_vec()).collect();
        for _ in 0..MAX_HOPS {
            let refs: Vec<&[u8]> = path.iter().map(|c| c.as_slice()).collect();
            let Found::Symlink { at, target } = self.lookup(&refs)? else {
                return Ok(path);
            };
            let mut joined = match target.first() {
                Some(b'/') => Vec::new(),
                _ => path[..at].to_vec(),
            };
            for c in target.split(|&b| b == b'/') {
                match c {
                    b"" | b"." => {}
                    // `..` at the root stays at the root, as in the image.
                    b".." => {
                        joined.pop();
                    }
                    c => joined.push(c.to_vec()),
                }
            }
            joined.extend(path.drain(at + 1..));
            path = joined;
        }
        Err(Errno::LOOP)
    }

    /// The metadata of the topmost piece of the directory at `comps`.
    pub fn dir_stat(&self, comps: &[&[u8]]) -> Option<Stat> {
        let Ok(Found::Dir(stack)) = self.lookup(comps) else {
            return None;
        };
        let top = *stack.first()?;
        stat(&self.layers[top], &comps.join(&b'/')).ok()
    }
}

fn os(b: &[u8]) -> &std::ffi::OsStr {
    std::ffi::OsStr::from_bytes(b)
}

fn stat(layer: &OwnedFd, path: &[u8]) -> Result<Stat, Errno> {
    let path: &[u8] = if path.is_empty() { b"." } else { path };
    rustix::fs::statat(layer, os(path), AtFlags::SYMLINK_NOFOLLOW)
}

/// Whether the directory `path` in `layer` is opaque.
fn is_opaque(layer: &OwnedFd, path: &[u8]) -> bool {
    let Ok(dir) = rustix::fs::openat(
        layer,
        os(path),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    let mut value = [0u8; 4];
    matches!(rustix::fs::fgetxattr(&dir, OPAQUE_XATTR, &mut value), Ok(n) if value[..n] == *OPAQUE_VALUE)
}

#[cfg(test)]
mod tests {

    use super::*;

    fn layers(n: usize) -> (tempfile::TempDir, Vec<std::path::PathBuf>) {
        let tmp = tempfile::tempdir().unwrap();
        let dirs: Vec<_> = (0..n).map(|i| tmp.path().join(format!("l{i}"))).collect();
        for d in &dirs {
            fs_err::create_dir(d).unwrap();
        }
        (tmp, dirs)
    }

    fn comps(p: &str) -> Vec<&[u8]> {
        p.split('/').map(str::as_bytes).collect()
    }

    #[test]
    fn lookup_and_resolve_table() {
        // l0 is the top layer.
        let (_tmp, d) = layers(2);
        fs_err::create_dir_all(d[1].join("var")).unwrap();
        fs_err::create_dir_all(d[1].join("run/x")).unwrap();
        fs_err::os::unix::fs::symlink("/run", d[1].join("var/run")).unwrap();
        fs_err::os::unix::fs::symlink("../../..", d[1].join("var/up")).unwrap();
        fs_err::os::unix::fs::symlink("loop", d[1].join("loop")).unwrap();
        fs_err::create_dir_all(d[1].join("gone/sub")).unwrap();
        fs_err::create_dir_all(d[0].join("var")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            d[0].join("gone"),
            FileType::CharacterDevice,
            Mode::empty(),
            0,
        )
        .unwrap();
        let u = Union::open(&d).unwrap();
        assert_eq!(u.lookup(&comps("var")).unwrap(), Found::Dir(vec![0, 1]));
        assert_eq!(
            u.lookup(&comps("var/run/x")).unwrap(),
            Found::Symlink {
                at: 1,
                target: b"/run".to_vec()
            }
        );
        assert_eq!(u.lookup(&comps("gone/sub")).unwrap(), Found::Missing);
        let r = |p| {
            u.resolve(&comps(p))
                .map(|v| String::from_utf8(v.join(&b'/')).unwrap())
        };
        assert_eq!(r("var/run/x/f").unwrap(), "run/x/f");
        assert_eq!(r("var/up/run").unwrap(), "run");
        assert_eq!(r("var/other").unwrap(), "var/other");
        assert_eq!(r("loop/a"), Err(Errno::LOOP));
        assert_eq!(
            u.dir_stat(&comps("run")).map(|s| s.st_mode & 0o777),
            Some(0o755)
        );
    }
}
