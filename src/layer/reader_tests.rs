//! The reader against GNU tar on the same bytes: every archive GNU tar
//! lists cleanly must list the same here (names, types, sizes); where GNU
//! tar complains, this reader must refuse.

use super::*;
use crate::layer::tarspec::{gnu_tar_list, smuggling_tar, tar, T};

/// (type char as `tar tv` prints it, name, size) of every member.
fn ours(bytes: &[u8]) -> Result<Vec<(char, String, u64)>, TarError> {
    let mut r = TarReader::new(bytes);
    let mut out = Vec::new();
    while let Some(e) = r.next_entry()? {
        let c = match e.kind {
            Kind::File => '-',
            Kind::HardLink => 'h',
            Kind::Symlink => 'l',
            Kind::Char => 'c',
            Kind::Block => 'b',
            Kind::Dir => 'd',
            Kind::Fifo => 'p',
            Kind::Other(_) => '?',
        };
        // GNU tar prints a symlink's or fifo's size field; it has no data
        // either way, so compare what it says.
        out.push((c, String::from_utf8_lossy(&e.path).into_owned(), e.size));
    }
    Ok(out)
}

fn agree(name: &str, bytes: &[u8]) {
    let gnu = gnu_tar_list(bytes);
    let mine = ours(bytes);
    match (&gnu, &mine) {
        (Some(g), Ok(m)) => assert_eq!(m, g, "{name}: entry list differs from GNU tar"),
        (None, Err(_)) => {}
        (Some(g), Err(e)) => panic!("{name}: GNU tar lists {g:?}, we fail: {e}"),
        (None, Ok(m)) => panic!("{name}: GNU tar fails, we list {m:?}"),
    }
}

#[test]
fn hostile_pax_headers_read_as_gnu_tar_reads_them() {
    let hidden = tar(&[T::File("pwn22_v2_fake", b"smuggled")]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // size=0 then size=1024: the last wins, so the fake header inside
        // the data is data, never a member.
        ("repeated size", smuggling_tar()),
        (
            "repeated path",
            tar(&[
                T::Pax(&[("path", "first"), ("path", "second")]),
                T::File("a", b"x"),
            ]),
        ),
        (
            "two x headers merge",
            tar(&[
                T::Pax(&[("path", "p1")]),
                T::Pax(&[("path", "p2")]),
                T::File("a", b"x"),
            ]),
        ),
        (
            "pax path beats a GNU long name",
            tar(&[
                T::LongName("gnu-name"),
                T::Pax(&[("path", "pax-name")]),
                T::File("a", b"x"),
            ]),
        ),
        (
            "GNU long name after pax",
            tar(&[
                T::Pax(&[("path", "pax-name")]),
                T::LongName("gnu-name"),
                T::File("a", b"x"),
            ]),
        ),
        (
            "global path applies to all",
            tar(&[
                T::Global(&[("path", "g")]),
                T::File("a", b"x"),
                T::File("b", b"y"),
            ]),
        ),
        (
            "pax size smaller than ustar size",
            tar(&[
                T::Pax(&[("size", "0")]),
                T::Raw {
                    name: "carrier",
                    flag: b'0',
                    size: 1024,
                    data: &hidden[..1024],
                },
            ]),
        ),
        (
            "symlink with data",
            tar(&[
                T::Raw {
                    name: "s",
                    flag: b'2',
                    size: 512,
                    data: &hidden[..512],
                },
                T::File("after", b"x"),
            ]),
        ),
        (
            "directory with a size",
            tar(&[
                T::Raw {
                    name: "d/",
                    flag: b'5',
                    size: 512,
                    data: &hidden[..512],
                },
                T::File("after", b"x"),
            ]),
        ),
        (
            "old-style directory",
            tar(&[
                T::Raw {
                    name: "d/",
                    flag: 0,
                    size: 0,
                    data: b"",
                },
                T::File("d/f", b"x"),
            ]),
        ),
        (
            "bad pax size",
            tar(&[T::Pax(&[("size", "12x")]), T::File("a", b"x")]),
        ),
        (
            "empty pax size",
            tar(&[T::Pax(&[("size", "")]), T::File("a", b"x")]),
        ),
        (
            "bad pax uid",
            tar(&[T::Pax(&[("uid", "zz")]), T::File("a", b"x")]),
        ),
    ];
    for (name, bytes) in &cases {
        agree(name, bytes);
    }
    // Spelled out, so the agreement above is about the right thing.
    let list = ours(&cases[0].1).unwrap();
    assert_eq!(list[0], ('-', "carrier".to_string(), 1024));
    assert!(
        list.iter().all(|(_, n, _)| n != "pwn22_v2_fake"),
        "{list:?}"
    );
    assert_eq!(ours(&cases[1].1).unwrap()[0].1, "second");
}

#[test]
fn malformed_pax_records_are_refused() {
    for data in [
        &b"junk\n\n"[..],
        b"5 a=b\n",
        b"x a=b\n",
        b"6 ab\n\n",
        b"5 =b\n",
    ] {
        let mut bytes = Vec::new();
        crate::layer::tarspec::push(
            &mut bytes,
            &T::Raw {
                name: "PaxHeaders/x",
                flag: b'x',
                size: data.len() as u64,
                data,
            },
        );
        crate::layer::tarspec::push(&mut bytes, &T::File("a", b"x"));
        bytes.extend_from_slice(&[0u8; 1024]);
        let err = ours(&bytes).unwrap_err();
        assert!(matches!(err, TarError::Pax { .. }), "{data:?}: {err}");
    }
}

#[test]
fn extension_headers_are_capped_and_must_describe_a_member() {
    let mut big = crate::layer::tarspec::header(b"L", b'L', MAX_EXTENSION + 1, b"", 0o644).to_vec();
    big.extend_from_slice(&[0u8; 1024]);
    assert!(matches!(ours(&big), Err(TarError::TooLarge { .. })));
    let mut dangling = tar(&[T::File("a", b"x")]);
    dangling.truncate(dangling.len() - 1024);
    crate::layer::tarspec::push(&mut dangling, &T::Pax(&[("path", "p")]));
    assert!(matches!(ours(&dangling), Err(TarError::DanglingExtension)));
}

#[test]
fn numeric_fields_table() {
    assert_eq!(number(b"0000644\0"), Some(0o644));
    assert_eq!(number(b"   644 \0"), Some(0o644));
    assert_eq!(number(b"\0\0\0\0\0\0\0\0"), Some(0));
    assert_eq!(number(b"        "), Some(0));
    assert_eq!(number(b"\x80\0\0\0\0\0\0\x01\x00"), Some(256));
    assert_eq!(number(b"\xff\xff\xff\xff"), None);
    assert_eq!(number(b"0009\0"), None);
    assert_eq!(number(b"12 34\0"), None);
    assert_eq!(pax_seconds(b"1234.5678"), Some(1234));
    assert_eq!(pax_seconds(b"-5"), Some(-5));
    assert_eq!(pax_seconds(b"1.2.3"), None);
    assert_eq!(pax_seconds(b""), None);
}

#[test]
fn data_is_bounded_and_truncation_is_an_error() {
    let bytes = tar(&[T::File("a", b"hello"), T::File("b", b"world")]);
    let mut r = TarReader::new(&bytes[..]);
    let a = r.next_entry().unwrap().unwrap();
    assert_eq!((a.path.as_slice(), a.size), (&b"a"[..], 5));
    let mut s = String::new();
    r.data().read_to_string(&mut s).unwrap();
    assert_eq!(s, "hello");
    // b's data is skipped unread.
    assert_eq!(r.next_entry().unwrap().unwrap().path, b"b");
    assert!(r.next_entry().unwrap().is_none());

    let cut = &bytes[..BLOCK + 3];
    let mut r = TarReader::new(cut);
    r.next_entry().unwrap().unwrap();
    assert!(r.next_entry().is_err());
    let mut r = TarReader::new(cut);
    r.next_entry().unwrap().unwrap();
    assert!(r.data().read_to_end(&mut Vec::new()).is_err());
}

#[test]
fn position_is_where_the_data_starts() {
    let bytes = tar(&[
        T::Pax(&[("path", "long-name")]),
        T::File("a", b"hello"),
        T::File("b", b"world"),
    ]);
    let mut r = TarReader::new(&bytes[..]);
    let a = r.next_entry().unwrap().unwrap();
    let at = r.position() as usize;
    assert_eq!(
        (a.path.as_slice(), &bytes[at..at + 5]),
        (&b"long-name"[..], &b"hello"[..])
    );
    r.next_entry().unwrap().unwrap();
    let at = r.position() as usize;
    assert_eq!(&bytes[at..at + 5], b"world");
}

#[test]
fn pax_sparse_members_are_refused() {
    let bytes = tar(&[
        T::Pax(&[
            ("GNU.sparse.major", "1"),
            ("GNU.sparse.minor", "0"),
            ("GNU.sparse.name", "f"),
        ]),
        T::File("GNUSparseFile.0/f", b"1\n0\n5\nhello"),
    ]);
    let err = ours(&bytes).unwrap_err();
    assert!(err.to_string().contains("sparse"), "{err}");
}
