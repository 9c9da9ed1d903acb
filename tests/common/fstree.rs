//! A directory tree as comparable lines, for tests that check two tools
//! unpacked the same thing.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// path, type, permission bits, link target and size of every entry,
/// sorted: what "the same tree" means across tools (owners differ by
/// design: umoci --rootless and strata's `type=local` unpack as the caller).
pub fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in fs_err::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = fs_err::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let link = fs_err::read_link(&p)
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        let kind = match (m.is_dir(), m.is_symlink()) {
            (true, _) => "d",
            (_, true) => "l",
            _ => "f",
        };
        let size = if m.is_file() { m.len() } else { 0 };
        out.push(format!(
            "{rel} {kind} {:o} {link} {size}",
            m.permissions().mode() & 0o7777
        ));
        if m.is_dir() {
            walk(root, &p, out);
        }
    }
}
