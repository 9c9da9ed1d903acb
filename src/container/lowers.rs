//! Looking a path up through an image's layers the way overlayfs merges
//! them: the top-most layer that has it wins, a whiteout deletes it, an
//! opaque directory hides everything below it in lower layers.

use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::layer::whiteout::{OPAQUE_VALUE, OPAQUE_XATTR};

pub fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn is_opaque(path: &Path) -> bool {
    let mut value = [0u8; 8];
    matches!(rustix::fs::lgetxattr(path, OPAQUE_XATTR, &mut value), Ok(n) if value[..n] == *OPAQUE_VALUE)
}

/// Where `rel` (relative, no `..`) is in the merged `lowers` (top-most
/// first), with its metadata; `None` if the merged view has no such path.
/// Symlinks in `rel`'s parents are not followed: a path below one is
/// reported missing.
pub fn lookup(lowers: &[PathBuf], rel: &Path) -> Option<(PathBuf, Metadata)> {
    'layers: for lower in lowers {
        let mut hidden_below = false;
        let mut prefix = lower.clone();
        for part in rel.parent().into_iter().flat_map(|p| p.components()) {
            prefix.push(part);
            match fs_err::symlink_metadata(&prefix) {
                // A deleted ancestor deletes everything under it, in every
                // layer beneath.
                Ok(m) if is_whiteout(&m) => return None,
                Ok(m) if !m.is_dir() => return None,
                Ok(_) if is_opaque(&prefix) => hidden_below = true,
                Ok(_) => {}
                Err(_) => continue 'layers,
            }
        }
        let path = lower.join(rel);
        match fs_err::symlink_metadata(&path) {
            Ok(m) if is_whiteout(&m) => return None,
            Ok(m) => return Some((path, m)),
            Err(_) if hidden_below => return None,
            Err(_) => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_layer_wins_and_whiteouts_delete() {
        let t = tempfile::tempdir().unwrap();
        let (top, bottom) = (t.path().join("top"), t.path().join("bottom"));
        fs_err::create_dir_all(bottom.join("etc/sub")).unwrap();
        fs_err::write(bottom.join("etc/a"), "bottom").unwrap();
        fs_err::write(bottom.join("etc/sub/x"), "").unwrap();
        fs_err::create_dir_all(top.join("etc")).unwrap();
        fs_err::write(top.join("etc/a"), "top").unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            top.join("etc/sub"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
        let lowers = [top.clone(), bottom.clone()];
        let found = |p: &str| lookup(&lowers, Path::new(p)).map(|(path, _)| path);
        assert_eq!(found("etc/a"), Some(top.join("etc/a")));
        assert_eq!(found("etc/sub"), None);
        assert_eq!(found("etc/sub/x"), None);
        assert_eq!(found("etc"), Some(top.join("etc")));
        assert_eq!(found("nope"), None);
    }
}
