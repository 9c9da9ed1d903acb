//! The context walk: one pass over the directory, in sorted order, never
//! following a symlink, dropping ignored paths and skipping special files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;

pub(super) struct Walker<'a> {
    pub(super) ignore: Option<&'a Matcher>,
}

impl Walker<'_> {
    /// Walk the directory `rel`; returns whether anything below it is kept.
    pub(super) fn dir(&self, ctx: &mut Context, rel: &Path) -> Result<bool, ContextError> {
        let full = ctx.root.join(rel);
        let mut names: Vec<std::ffi::OsString> = match fs_err::read_dir(&full) {
            Ok(rd) => {
                let mut names = Vec::new();
                for ent in rd {
                    let ent = ent.map_err(ContextError::io("list", &full))?;
                    names.push(ent.file_name());
                }
                names
            }
            Err(e) => {
                // Not an error yet: only if a COPY selects it.
                if let Some(entry) = ctx.entries.get_mut(rel) {
                    entry.unreadable = Some(e.to_string());
                }
                return Ok(true);
            }
        };
        names.sort();
        let mut kept_any = false;
        for name in names {
            let child = rel.join(&name);
            let child_full = ctx.root.join(&child);
            let meta = match fs_err::symlink_metadata(&child_full) {
                Ok(m) => m,
                // Removed between listing and stat: as if never there.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(ContextError::io("stat", child_full)(e)),
            };
            let ignored = self
                .ignore
                .is_some_and(|m| m.is_excluded(&child.to_string_lossy()));
            let ft = meta.file_type();
            let kind = if ft.is_dir() {
                EntryKind::Dir
            } else if ft.is_file() {
                EntryKind::File
            } else if ft.is_symlink() {
                let target = fs_err::read_link(&child_full)
                    .map_err(ContextError::io("read symlink", &child_full))?;
                EntryKind::Symlink(target)
            } else {
                if !ignored {
                    ctx.warnings.push(format!(
                        "skipping {}: {} cannot be part of a build context",
                        child.display(),
                        special_name(&ft)
                    ));
                }
                continue;
            };
            let is_dir = kind == EntryKind::Dir;
            ctx.entries
                .insert(child.clone(), Entry::from_meta(kind, &meta));
            if is_dir {
                // An ignored directory is only worth walking when an
                // exception could bring something inside it back.
                let reachable = self
                    .ignore
                    .is_some_and(|m| m.may_reinclude_under(&child.to_string_lossy()));
                let kept_inside = if !ignored || reachable {
                    self.dir(ctx, &child)?
                } else {
                    false
                };
                if ignored && !kept_inside {
                    remove_tree(&mut ctx.entries, &child);
                    continue;
                }
            } else if ignored {
                ctx.entries.remove(&child);
                continue;
            }
            kept_any = true;
        }
        Ok(kept_any)
    }
}

/// Drop `dir` and everything under it from the map.
fn remove_tree(entries: &mut BTreeMap<PathBuf, Entry>, dir: &Path) {
    let doomed: Vec<PathBuf> = entries
        .range(dir.to_path_buf()..)
        .take_while(|(p, _)| p.starts_with(dir))
        .map(|(p, _)| p.clone())
        .collect();
    for p in doomed {
        entries.remove(&p);
    }
}

fn special_name(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "a fifo"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() || ft.is_char_device() {
        "a device"
    } else {
        "this file type"
    }
}
