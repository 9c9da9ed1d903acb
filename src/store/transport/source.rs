//! Where an import reads from: a directory, or a tar file indexed once so
//! each member can be read at its offset (manifest.json may be the last
//! member, and layers are read after it). The archive is indexed by the
//! one tar reader, so it holds what GNU tar lists.

use fs_err::File;
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use super::super::fsutil::io_err;
use super::super::StoreError;
use crate::layer::reader::{Kind, TarError, TarReader};

/// Largest JSON document (manifest, index, config) read into memory.
pub const JSON_LIMIT: u64 = 64 << 20;

pub enum Source {
    Dir(PathBuf),
    Tar {
        path: PathBuf,
        file: File,
        /// Member name (without `./`) -> (data offset, size).
        members: BTreeMap<String, (u64, u64)>,
    },
}

/// A member name with `./` and duplicate slashes removed.
pub fn clean(name: &str) -> String {
    name.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

impl Source {
    /// Index the members of a tar file.
    pub fn tar(path: &Path) -> Result<Source, StoreError> {
        let file = File::open(path).map_err(io_err("open", path))?;
        let mut members = BTreeMap::new();
        let mut links = Vec::new();
        let mut reader = TarReader::new(io::BufReader::new(&file));
        let read_err = |e: TarError| io_err("read archive", path)(io::Error::other(e));
        while let Some(entry) = reader.next_entry().map_err(read_err)? {
            let name = clean(&String::from_utf8_lossy(&entry.path));
            match entry.kind {
                Kind::File => {
                    members.insert(name, (reader.position(), entry.size));
                }
                Kind::Symlink | Kind::HardLink => {
                    let target = String::from_utf8_lossy(&entry.link).into_owned();
                    links.push((name, target, entry.kind == Kind::Symlink));
                }
                _ => {}
            }
        }
        // docker save links repeated layers to the first copy.
        for (name, target, relative) in links {
            let resolved = if relative {
                let base = Path::new(&name).parent().unwrap_or(Path::new(""));
                clean(&resolve_relative(base, &target))
            } else {
                clean(&target)
            };
            if let Some(&m) = members.get(&resolved) {
                members.insert(name, m);
            }
        }
        Ok(Source::Tar {
            path: path.to_path_buf(),
            file,
            members,
        })
    }

    pub fn dir(path: &Path) -> Source {
        Source::Dir(path.to_path_buf())
    }

    /// Where this source is, for messages.
    pub fn location(&self) -> &Path {
        match self {
            Source::Dir(p) | Source::Tar { path: p, .. } => p,
        }
    }

    fn dir_path(root: &Path, name: &str) -> Result<PathBuf, StoreError> {
        let p = Path::new(name);
        if p.components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(StoreError::Invalid {
                what: format!("{} in {}", name, root.display()),
                reason: "path leaves the image directory".into(),
            });
        }
        Ok(root.join(p))
    }

    pub fn exists(&self, name: &str) -> bool {
        match self {
            Source::Dir(root) => Source::dir_path(root, name).is_ok_and(|p| p.is_file()),
            Source::Tar { members, .. } => members.contains_key(&clean(name)),
        }
    }

    /// Open a member for reading, with its size.
    pub fn open(&self, name: &str) -> Result<(Box<dyn Read + Send + '_>, u64), StoreError> {
        match self {
            Source::Dir(root) => {
                let path = Source::dir_path(root, name)?;
                let f = File::open(&path).map_err(io_err("open", &path))?;
                let size = f.metadata().map_err(io_err("stat", &path))?.len();
                Ok((Box::new(io::BufReader::new(f)), size))
            }
            Source::Tar {
                path,
                file,
                members,
            } => {
                let &(offset, size) =
                    members
                        .get(&clean(name))
                        .ok_or_else(|| StoreError::Invalid {
                            what: path.display().to_string(),
                            reason: format!("archive has no member {name:?}"),
                        })?;
                let section = Section {
                    file,
                    pos: offset,
                    end: offset + size,
                };
                Ok((Box::new(io::BufReader::new(section)), size))
            }
        }
    }

    /// Read a small member (JSON) whole.
    pub fn read(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let (r, size) = self.open(name)?;
        if size > JSON_LIMIT {
            return Err(StoreError::Invalid {
                what: format!("{name} in {}", self.location().display()),
                reason: format!("{size} bytes is too large for a JSON document"),
            });
        }
        let mut buf = Vec::new();
        r.take(JSON_LIMIT)
            .read_to_end(&mut buf)
            .map_err(io_err("read", self.location().join(name)))?;
        Ok(buf)
    }
}

/// `base/target` with `..` applied lexically (member names, not files).
fn resolve_relative(base: &Path, target: &str) -> String {
    let mut parts: Vec<String> = base
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c.to_string()),
        }
    }
    parts.join("/")
}

/// A byte range of a file read with pread, so sections do not share a cursor.
struct Section<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for Section<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        if left == 0 {
            return Ok(0);
        }
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let got = self.file.file().read_at(&mut buf[..n], self.pos)?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive member is truncated",
            ));
        }
        self.pos += got as u64;
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_table() {
        assert_eq!(clean("./a//b/"), "a/b");
        assert_eq!(
            resolve_relative(Path::new("x"), "../y/layer.tar"),
            "y/layer.tar"
        );
        assert_eq!(resolve_relative(Path::new(""), "a"), "a");
    }
}
