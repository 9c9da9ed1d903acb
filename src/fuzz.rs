//! Fuzz bodies for the parsers of untrusted input outside the Dockerfile
//! parser: layer tars (the reader and the whole apply path) and image
//! references and digests. The only rule: errors are fine, panics are bugs,
//! and nothing is ever written outside the layer directory.
//!
//! Each body is driven twice: by cargo-fuzz (`fuzz/`, nightly, unbounded)
//! and by bounded proptest runs in the unit tests below, which
//! `scripts/test.sh` runs on the stable toolchain.

use std::io::Read;

use crate::layer::reader::TarReader;

/// Read every member of `data` as a tar, data included.
pub fn tar_reader(data: &[u8]) {
    let mut reader = TarReader::new(data);
    while let Ok(Some(_)) = reader.next_entry() {
        // A short read is an error the reader reports; here only a panic
        // would matter.
        let _read = reader.data().read_to_end(&mut Vec::new());
    }
}

/// Apply `data` as a layer in a fresh directory next to a canary file, and
/// check the canary and the directory's neighbourhood are untouched.
pub fn layer_apply(data: &[u8]) {
    let Ok(tmp) = tempfile::tempdir() else {
        return;
    };
    let canary = tmp.path().join("canary");
    let layer = tmp.path().join("layer");
    if fs_err::write(&canary, "canary").is_err() || fs_err::create_dir(&layer).is_err() {
        return;
    }
    // Errors are fine: only what happened outside the layer matters.
    let _applied = crate::layer::apply::apply(data, &layer);
    let mut names: Vec<_> = fs_err::read_dir(tmp.path())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["canary", "layer"], "something was written outside");
    let kept = fs_err::read_to_string(&canary).ok();
    assert_eq!(kept.as_deref(), Some("canary"), "the canary changed");
    // The tree may hold anything the kernel refuses to remove as a user
    // (nothing, in practice); a leftover temp dir is not a bug here.
    let _removed = crate::layer::apply::remove_tree(&layer);
}

/// Parse `text` as a reference and as a digest; whatever parses must print
/// back to something that parses to the same value.
pub fn reference_and_digest(text: &str) {
    if let Ok(r) = crate::reference::Reference::parse(text) {
        let again = crate::reference::Reference::parse(&r.to_string());
        assert_eq!(again.as_ref().ok(), Some(&r), "{text:?} -> {r}");
        let _familiar = r.familiar();
    }
    if let Ok(d) = text.parse::<crate::digest::Digest>() {
        assert_eq!(d.to_string().parse::<crate::digest::Digest>().ok(), Some(d));
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::layer::tarspec::{self, T};

    /// Names drawn from the edge cases of tar paths.
    fn name() -> impl Strategy<Value = String> {
        let part = prop::sample::select(vec![
            "a",
            "b",
            "..",
            ".",
            "",
            "/",
            ".wh.a",
            ".wh..wh..opq",
            ".wh.",
            "etc",
            "x y",
        ]);
        prop::collection::vec(part, 1..4).prop_map(|p| p.join("/"))
    }

    /// Link targets, inside and out.
    fn target() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "/", "..", "../..", "/etc", "a", "a/b", "/a/../..", "b/../a", "",
        ])
        .prop_map(String::from)
    }

    #[derive(Debug, Clone)]
    enum Item {
        Dir(String),
        File(String, Vec<u8>),
        Sym(String, String),
        Hard(String, String),
        Fifo(String),
        Pax(String, String),
    }

    fn item() -> impl Strategy<Value = Item> {
        let key = prop::sample::select(vec![
            "path",
            "size",
            "linkpath",
            "uid",
            "SCHILY.xattr.user.x",
        ]);
        let value = prop::sample::select(vec![
            "0",
            "1024",
            "a",
            "..",
            "/etc",
            "-1",
            "99999999999999999999",
            "",
        ]);
        prop_oneof![
            name().prop_map(Item::Dir),
            (name(), prop::collection::vec(any::<u8>(), 0..600))
                .prop_map(|(n, d)| Item::File(n, d)),
            (name(), target()).prop_map(|(n, t)| Item::Sym(n, t)),
            (name(), target()).prop_map(|(n, t)| Item::Hard(n, t)),
            name().prop_map(Item::Fifo),
            (key, value).prop_map(|(k, v)| Item::Pax(k.into(), v.into())),
        ]
    }

    fn build(items: &[Item]) -> Vec<u8> {
        let mut out = Vec::new();
        for i in items {
            let t = match i {
                Item::Dir(n) => T::Dir(n),
                Item::File(n, d) => T::File(n, d),
                Item::Sym(n, t) => T::Sym(n, t),
                Item::Hard(n, t) => T::Hard(n, t),
                Item::Fifo(n) => T::Fifo(n),
                Item::Pax(k, v) => {
                    tarspec::push(&mut out, &T::Pax(&[(k, v)]));
                    continue;
                }
            };
            tarspec::push(&mut out, &t);
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic_the_reader(data in prop::collection::vec(any::<u8>(), 0..4096)) {
            tar_reader(&data);
            layer_apply(&data);
        }

        #[test]
        fn hostile_layers_stay_inside(items in prop::collection::vec(item(), 0..12), flip in any::<(u16, u8)>()) {
            let mut data = build(&items);
            layer_apply(&data);
            // And a damaged copy: one byte changed somewhere.
            if !data.is_empty() {
                let at = usize::from(flip.0) % data.len();
                data[at] ^= flip.1 | 1;
                tar_reader(&data);
                layer_apply(&data);
            }
        }

        #[test]
        fn references_and_digests_never_panic(text in "[a-zA-Z0-9:/@._+-]{0,80}") {
            reference_and_digest(&text);
        }

        #[test]
        fn arbitrary_text_never_panics_the_reference_parser(text in any::<String>()) {
            reference_and_digest(&text);
        }
    }
}
