//! The files a build reads from the context directory before the walk: the
//! Dockerfile and the ignore file. BuildKit sends the context without
//! following symlinks, so a Dockerfile or `.dockerignore` in the context
//! that is a symlink to a file outside it is never read there; strata
//! refuses it with what it points to, instead of reading the host file. A
//! symlink to another file of the context works, and so does a Dockerfile
//! named with `-f` outside the context (Docker reads that one as given).

use std::io;
use std::path::{Component, Path, PathBuf};

use super::ContextError;

/// Read `path`, a file beside or in the context directory `dir`. If `path`
/// is in the context (as written), where it leads must be too.
pub fn read_beside(dir: &Path, path: &Path) -> Result<Vec<u8>, ContextError> {
    let read = |p: &Path| fs_err::read(p).map_err(ContextError::io("read", path));
    let (Ok(lexical_dir), Ok(lexical)) = (absolute(dir), absolute(path)) else {
        return read(path);
    };
    if !lexical.starts_with(&lexical_dir) {
        return read(path);
    }
    let root = fs_err::canonicalize(dir).map_err(ContextError::io("open context", dir))?;
    let real = fs_err::canonicalize(path).map_err(ContextError::io("read", path))?;
    if !real.starts_with(&root) {
        return Err(ContextError::LinkLeaves {
            path: path.to_path_buf(),
            target: real,
        });
    }
    read(&real)
}

/// Whether `e` says the file is not there (a missing ignore file is none).
pub(crate) fn is_not_found(e: &ContextError) -> bool {
    matches!(e, ContextError::Io { cause, .. } if cause.kind() == io::ErrorKind::NotFound)
}

/// `path` made absolute and rid of `.` and `..` without touching the file
/// system (what the user named, before any symlink).
fn absolute(path: &Path) -> io::Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in std::path::absolute(path)?.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_may_not_leave_the_context() {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        fs_err::write(&secret, "RUN echo OUTSIDE").unwrap();
        let ctx = tempfile::tempdir().unwrap();
        let dir = ctx.path();
        fs_err::write(dir.join("real.Dockerfile"), "FROM a").unwrap();
        fs_err::os::unix::fs::symlink("real.Dockerfile", dir.join("Dockerfile")).unwrap();
        fs_err::os::unix::fs::symlink(&secret, dir.join("out.Dockerfile")).unwrap();
        fs_err::os::unix::fs::symlink(outside.path(), dir.join("sub")).unwrap();
        // In the context, through a link that stays: read.
        assert_eq!(
            read_beside(dir, &dir.join("Dockerfile")).unwrap(),
            b"FROM a"
        );
        // In the context, leading out (directly, or through a linked dir).
        for p in [dir.join("out.Dockerfile"), dir.join("sub/secret")] {
            let err = read_beside(dir, &p).unwrap_err();
            assert!(matches!(err, ContextError::LinkLeaves { .. }), "{err}");
            assert!(
                err.to_string().contains("outside the build context"),
                "{err}"
            );
        }
        // Named outside the context (`-f`): read as given.
        assert_eq!(read_beside(dir, &secret).unwrap(), b"RUN echo OUTSIDE");
        // Missing: a not-found error.
        assert!(is_not_found(
            &read_beside(dir, &dir.join("none")).unwrap_err()
        ));
        fs_err::create_dir(dir.join("x")).unwrap();
        let dotdot = dir.join("x/../real.Dockerfile");
        assert_eq!(read_beside(dir, &dotdot).unwrap(), b"FROM a");
    }
}
