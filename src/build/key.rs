//! Step keys: what a step's cache entry is looked up by (pure).
//!
//! A key is sha256 over the step's parent and its operation. The parent is
//! the image the step starts from (its id is its config digest, so it is
//! content-derived), or, for a metadata step in a run of them, the key of
//! the step before it (such steps make no image of their own). The
//! operation holds the expanded instruction and the digests of its inputs:
//! never a store path, a local id or a time, so two machines with the same
//! inputs compute the same key and a registry can carry the cache.

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

use crate::digest::{Digest, ImageId};

/// A step's cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(String);

impl CacheKey {
    pub fn hex(&self) -> &str {
        &self.0
    }

    /// A key read back from where it was stored (64 lower-case hex digits).
    pub fn from_hex(hex: &str) -> Option<CacheKey> {
        let ok = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| CacheKey(hex.to_string()))
    }
}

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a step starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parent<'a> {
    /// FROM scratch, nothing built yet.
    Scratch,
    /// An image (its id is the digest of its config).
    Image(&'a ImageId),
    /// The metadata step before this one, whose change is not an image yet.
    Step(&'a CacheKey),
}

/// Where a COPY/ADD's sources come from, as the key sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sources<'a> {
    /// The digest of each run of sources read from one context (the build
    /// context, a root file system, the step's inline files and downloads).
    Content(&'a [Digest]),
    /// Everything from one image (`COPY --from`): its content is fixed by
    /// its id, so the key needs no reading.
    Image(&'a ImageId),
}

/// A step's operation: everything besides the parent that decides what it
/// makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    Run {
        argv: &'a [String],
        /// The build args in its environment, `NAME=value`, sorted.
        args: &'a [String],
        network: &'a str,
        /// One line per `--mount`: its definition and, for a bind, the
        /// digest of what it shows (never a secret's value).
        mounts: &'a [String],
        /// `--add-host`, `--shm-size`, `--ulimit` (`Extras::key_lines`).
        extras: &'a [String],
    },
    Copy {
        /// `COPY` or `ADD`.
        keyword: &'a str,
        /// Destination, flags and downloads, canonical JSON.
        params: &'a str,
        sources: Sources<'a>,
    },
    /// A metadata instruction after expansion, normalised
    /// ([`crate::build::config_steps::normalised`]).
    Config { instruction: &'a str },
    /// A WORKDIR that makes its directory: the path as the config takes it
    /// (the USER it is made for and the image's passwd are the parent's).
    Workdir { path: &'a str },
    /// `build --label`s on the final image.
    Labels(&'a BTreeMap<String, String>),
}

/// A step's key without the digests of what it reads (a COPY's sources):
/// whether any version of the step was recorded, so that reading its
/// inputs to make its key can end in a hit.
pub fn site(parent: Parent, op: &Op) -> CacheKey {
    let mut h = Hasher(Sha256::new());
    h.field("site");
    h.parent(parent);
    match op {
        Op::Copy {
            keyword, params, ..
        } => h.fields(&[keyword, params]),
        other => h.field(key(Parent::Scratch, other).hex()),
    }
    CacheKey(hex::encode(h.0.finalize()))
}

/// The key of `op` on `parent`. Every field is length-prefixed, so no two
/// different field lists hash alike.
pub fn key(parent: Parent, op: &Op) -> CacheKey {
    let mut h = Hasher(Sha256::new());
    h.parent(parent);
    match op {
        Op::Run {
            argv,
            args,
            network,
            mounts,
            extras,
        } => {
            h.field("RUN");
            h.list(argv);
            h.list(args);
            h.field(network);
            // No mounts hash as before mounts were keyed: existing caches
            // stay valid.
            if !mounts.is_empty() {
                h.list(mounts);
            }
            // Nor do none of these.
            if !extras.is_empty() {
                h.field("extras");
                h.list(extras);
            }
        }
        Op::Copy {
            keyword,
            params,
            sources,
        } => {
            h.fields(&[keyword, params]);
            match sources {
                Sources::Content(digests) => {
                    h.field("content");
                    let digests: Vec<String> = digests.iter().map(ToString::to_string).collect();
                    h.list(&digests);
                }
                Sources::Image(id) => h.fields(&["image", &id.to_string()]),
            }
        }
        Op::Config { instruction } => h.fields(&["CONFIG", instruction]),
        Op::Workdir { path } => h.fields(&["WORKDIR", path]),
        Op::Labels(labels) => {
            h.field("LABELS");
            for (k, v) in *labels {
                h.fields(&[k, v]);
            }
        }
    }
    CacheKey(hex::encode(h.0.finalize()))
}

struct Hasher(Sha256);

impl Hasher {
    fn parent(&mut self, parent: Parent) {
        match parent {
            Parent::Scratch => self.field("scratch"),
            Parent::Image(id) => self.fields(&["image", &id.to_string()]),
            Parent::Step(k) => self.fields(&["step", k.hex()]),
        }
    }

    fn field(&mut self, s: &str) {
        self.0.update((s.len() as u64).to_le_bytes());
        self.0.update(s.as_bytes());
    }

    fn fields(&mut self, list: &[&str]) {
        for s in list {
            self.field(s);
        }
    }

    /// A list with its length first, so `[a, b] + []` differs from `[a] + [b]`.
    fn list(&mut self, list: &[String]) {
        self.0.update((list.len() as u64).to_le_bytes());
        for s in list {
            self.field(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(c: char) -> ImageId {
        format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .unwrap()
    }

    fn digest(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .unwrap()
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    /// A name, two (parent, op) pairs, and whether their keys must be equal.
    type Case<'a> = (&'a str, (Parent<'a>, Op<'a>), (Parent<'a>, Op<'a>), bool);

    #[test]
    fn what_changes_a_key_and_what_must_not() {
        let (a, b) = (id('a'), id('b'));
        let (da, db) = (digest('1'), digest('2'));
        let argv = s(&["/bin/sh", "-c", "make"]);
        let argv2 = s(&["/bin/sh", "-c", "make test"]);
        let args = s(&["V=1"]);
        let args2 = s(&["V=2"]);
        let split = s(&["/bin/sh", "-c make"]);
        let mount = s(&[r#"{"type":"tmpfs","target":"/t"}"#]);
        let extra = s(&["add-host db=10.0.0.1"]);
        let run = |argv, args| Op::Run {
            argv,
            args,
            network: "Host",
            mounts: &[],
            extras: &[],
        };
        let copy = |params, sources| Op::Copy {
            keyword: "COPY",
            params,
            sources,
        };
        let step_key = key(Parent::Image(&a), &Op::Config { instruction: "x" });
        let one = [da.clone()];
        let two = [db.clone()];
        let both = [da.clone(), db.clone()];
        let labels1 = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let labels2 = BTreeMap::from([("k".to_string(), "w".to_string())]);
        let cases: Vec<Case> = vec![
            (
                "same inputs, same key",
                (Parent::Image(&a), run(&argv, &args)),
                (Parent::Image(&a), run(&argv, &args)),
                true,
            ),
            (
                "the parent image",
                (Parent::Image(&a), run(&argv, &args)),
                (Parent::Image(&b), run(&argv, &args)),
                false,
            ),
            (
                "scratch is not an image",
                (Parent::Scratch, run(&argv, &args)),
                (Parent::Image(&a), run(&argv, &args)),
                false,
            ),
            (
                "a step parent is not an image parent",
                (Parent::Step(&step_key), run(&argv, &args)),
                (Parent::Image(&a), run(&argv, &args)),
                false,
            ),
            (
                "the command",
                (Parent::Image(&a), run(&argv, &args)),
                (Parent::Image(&a), run(&argv2, &args)),
                false,
            ),
            (
                "argv boundaries",
                (Parent::Image(&a), run(&argv, &args)),
                (Parent::Image(&a), run(&split, &args)),
                false,
            ),
            (
                "a build arg value",
                (Parent::Image(&a), run(&argv, &args)),
                (Parent::Image(&a), run(&argv, &args2)),
                false,
            ),
            (
                "the network",
                (Parent::Image(&a), run(&argv, &args)),
                (
                    Parent::Image(&a),
                    Op::Run {
                        argv: &argv,
                        args: &args,
                        network: "None",
                        mounts: &[],
                        extras: &[],
                    },
                ),
                false,
            ),
            (
                "a mount",
                (Parent::Image(&a), run(&argv, &args)),
                (
                    Parent::Image(&a),
                    Op::Run {
                        argv: &argv,
                        args: &args,
                        network: "Host",
                        mounts: &mount,
                        extras: &[],
                    },
                ),
                false,
            ),
            (
                "an --add-host",
                (Parent::Image(&a), run(&argv, &args)),
                (
                    Parent::Image(&a),
                    Op::Run {
                        argv: &argv,
                        args: &args,
                        network: "Host",
                        mounts: &[],
                        extras: &extra,
                    },
                ),
                false,
            ),
            (
                "a mount is not an argument",
                (
                    Parent::Image(&a),
                    Op::Run {
                        argv: &argv,
                        args: &mount,
                        network: "Host",
                        mounts: &[],
                        extras: &[],
                    },
                ),
                (
                    Parent::Image(&a),
                    Op::Run {
                        argv: &argv,
                        args: &[],
                        network: "Host",
                        mounts: &mount,
                        extras: &[],
                    },
                ),
                false,
            ),
            (
                "source content",
                (Parent::Image(&a), copy("{}", Sources::Content(&one))),
                (Parent::Image(&a), copy("{}", Sources::Content(&two))),
                false,
            ),
            (
                "source runs",
                (Parent::Image(&a), copy("{}", Sources::Content(&both))),
                (Parent::Image(&a), copy("{}", Sources::Content(&one))),
                false,
            ),
            (
                "copy flags",
                (Parent::Image(&a), copy("{}", Sources::Content(&one))),
                (
                    Parent::Image(&a),
                    copy(r#"{"chmod":420}"#, Sources::Content(&one)),
                ),
                false,
            ),
            (
                "COPY is not ADD",
                (Parent::Image(&a), copy("{}", Sources::Content(&one))),
                (
                    Parent::Image(&a),
                    Op::Copy {
                        keyword: "ADD",
                        params: "{}",
                        sources: Sources::Content(&one),
                    },
                ),
                false,
            ),
            (
                "the --from image",
                (Parent::Image(&a), copy("{}", Sources::Image(&a))),
                (Parent::Image(&a), copy("{}", Sources::Image(&b))),
                false,
            ),
            (
                "a metadata instruction",
                (Parent::Image(&a), Op::Config { instruction: "A=1" }),
                (Parent::Image(&a), Op::Config { instruction: "A=2" }),
                false,
            ),
            (
                "a metadata step on the step before it",
                (Parent::Step(&step_key), Op::Config { instruction: "x" }),
                (Parent::Step(&step_key), Op::Config { instruction: "x" }),
                true,
            ),
            (
                "labels",
                (Parent::Image(&a), Op::Labels(&labels1)),
                (Parent::Image(&a), Op::Labels(&labels2)),
                false,
            ),
        ];
        for (name, (p1, o1), (p2, o2), equal) in cases {
            assert_eq!(key(p1, &o1) == key(p2, &o2), equal, "{name}");
        }
    }

    #[test]
    fn keys_are_stable_across_processes_and_stores() {
        // Nothing of the machine, the store or the time goes in: the value
        // is the same everywhere (the remote cache depends on it). Worked
        // out by hand: sha256 over the length-prefixed (u64 LE) fields
        // "image", the id, "CONFIG", "ENV".
        let a = id('a');
        let k = key(Parent::Image(&a), &Op::Config { instruction: "ENV" });
        assert_eq!(
            k.hex(),
            "2470bea562e3ecc7b6c75266180881c9fa0cdfad89560af803a8b3fe55422a5c"
        );
        assert_eq!(CacheKey::from_hex(k.hex()), Some(k.clone()));
        // A site is the key without the sources' digests.
        let (d1, d2) = (digest('1'), digest('2'));
        let copy = |params, digests| Op::Copy {
            keyword: "COPY",
            params,
            sources: Sources::Content(digests),
        };
        let (one, two) = ([d1], [d2]);
        let p = Parent::Image(&a);
        assert_eq!(site(p, &copy("{}", &one)), site(p, &copy("{}", &two)));
        assert_ne!(
            site(p, &copy("{}", &one)),
            site(p, &copy("{\"dest\":1}", &one))
        );
        assert_ne!(
            site(p, &copy("{}", &one)),
            site(Parent::Scratch, &copy("{}", &one))
        );
        assert_ne!(site(p, &copy("{}", &one)), key(p, &copy("{}", &one)));
        assert_eq!(CacheKey::from_hex("../x"), None);
    }
}
