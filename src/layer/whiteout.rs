//! The two spellings of a deletion: tar (`.wh.name`, `.wh..wh..opq`) and
//! overlay-native (a 0:0 character device, an `overlay.opaque` xattr).
//! Pure functions, so the mapping is tested as a table.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// Prefix of a whiteout entry in a layer tar (OCI image spec).
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The entry that makes its directory opaque (OCI image spec).
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The xattr strata sets on an opaque directory: rootless overlayfs mounts
/// with `userxattr` read `user.overlay.*`.
pub const OPAQUE_XATTR: &str = "user.overlay.opaque";
/// Overlay xattr namespaces. Never copied from a tar, never written to one:
/// they steer the kernel's overlay and must only come from strata itself.
pub const OVERLAY_XATTR_PREFIXES: [&str; 2] = ["user.overlay.", "trusted.overlay."];
/// The value overlayfs writes for "opaque".
pub const OPAQUE_VALUE: &[u8] = b"y";

/// What a tar entry's file name means for the layer.
#[derive(Debug, PartialEq, Eq)]
pub enum TarName<'a> {
    /// An ordinary file or directory name.
    Plain,
    /// `.wh.NAME`: NAME is deleted from the lower layers.
    Whiteout(&'a OsStr),
    /// `.wh..wh..opq`: the parent directory hides the lower layers' content.
    Opaque,
    /// `.wh.` followed by nothing, or another `.wh..wh.` meta name we do not
    /// know: refused rather than guessed at.
    Invalid,
}

/// Classify the last component of a tar path.
pub fn classify(name: &OsStr) -> TarName<'_> {
    let bytes = name.as_bytes();
    if bytes == OPAQUE_MARKER.as_bytes() {
        return TarName::Opaque;
    }
    match bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
        None => TarName::Plain,
        Some(rest) if rest.is_empty() || rest.starts_with(WHITEOUT_PREFIX.as_bytes()) => {
            TarName::Invalid
        }
        Some(rest) if rest == b"." || rest == b".." || rest.contains(&b'/') => TarName::Invalid,
        Some(rest) => TarName::Whiteout(OsStr::from_bytes(rest)),
    }
}

/// `.wh.NAME` for a deleted NAME.
pub fn whiteout_name(name: &OsStr) -> Vec<u8> {
    let mut v = WHITEOUT_PREFIX.as_bytes().to_vec();
    v.extend_from_slice(name.as_bytes());
    v
}

/// Whether an xattr belongs to overlayfs (and so is never taken from or put
/// into a tar as such).
pub fn is_overlay_xattr(name: &[u8]) -> bool {
    OVERLAY_XATTR_PREFIXES
        .iter()
        .any(|p| name.starts_with(p.as_bytes()))
}

/// Whether an xattr name/value pair marks an opaque directory.
pub fn is_opaque_xattr(name: &[u8], value: &[u8]) -> bool {
    (name == b"user.overlay.opaque" || name == b"trusted.overlay.opaque") && value == OPAQUE_VALUE
}

/// Whether the directory at `dir` carries strata's opaque marker.
pub fn is_opaque_dir(dir: &std::path::Path) -> bool {
    let mut value = [0u8; 4];
    matches!(rustix::fs::lgetxattr(dir, OPAQUE_XATTR, &mut value), Ok(n) if value[..n] == *OPAQUE_VALUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_table() {
        let cases: &[(&str, TarName<'_>)] = &[
            ("file", TarName::Plain),
            (".wh", TarName::Plain),
            (".whx", TarName::Plain),
            (".wh.file", TarName::Whiteout(OsStr::new("file"))),
            (".wh..hidden", TarName::Whiteout(OsStr::new(".hidden"))),
            (".wh..wh..opq", TarName::Opaque),
            (".wh.", TarName::Invalid),
            (".wh..", TarName::Invalid),
            (".wh...", TarName::Invalid),
            (".wh..wh.other", TarName::Invalid),
        ];
        for (name, want) in cases {
            assert_eq!(&classify(OsStr::new(name)), want, "{name}");
        }
    }

    #[test]
    fn xattr_table() {
        assert!(is_overlay_xattr(b"user.overlay.opaque"));
        assert!(is_overlay_xattr(b"trusted.overlay.redirect"));
        assert!(!is_overlay_xattr(b"user.overlayx"));
        assert!(!is_overlay_xattr(b"security.capability"));
        assert!(is_opaque_xattr(b"trusted.overlay.opaque", b"y"));
        assert!(is_opaque_xattr(b"user.overlay.opaque", b"y"));
        assert!(!is_opaque_xattr(b"user.overlay.opaque", b"n"));
        assert_eq!(whiteout_name(OsStr::new("a")), b".wh.a");
    }
}
