//! A case's context made from its description: the case directory copied,
//! and what git cannot hold (tar archives in every compression, hardlinks)
//! written from its `fixtures.txt`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// Copies a case directory, keeping symlinks as they are and modes.
pub fn copy_tree(from: &Path, to: &Path) {
    fs_err::create_dir(to).unwrap();
    for e in fs_err::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let m = fs_err::symlink_metadata(&src).unwrap();
        if m.file_type().is_symlink() {
            fs_err::os::unix::fs::symlink(fs_err::read_link(&src).unwrap(), &dst).unwrap();
        } else if m.is_dir() {
            copy_tree(&src, &dst);
            fs_err::set_permissions(&dst, m.permissions()).unwrap();
        } else {
            fs_err::copy(&src, &dst).unwrap();
        }
    }
}

/// Writes the files a `fixtures.txt` describes into `ctx`. One item a line,
/// `#` comments; entry lines of an archive are indented under it:
///
/// ```text
/// hardlink PATH EXISTING          a hardlink in the context
/// gzip NAME TEXT                  NAME: TEXT and a newline, gzipped, no tar
/// archive NAME[=COMPRESSION]...   one tar with the entries below, written
///                                 once per NAME, compressed as its suffix
///                                 says (.gz .bz2 .xz .zst; else none) or as
///                                 COMPRESSION (gzip bzip2 xz zstd none)
///   dir PATH MODE UID:GID
///   file PATH MODE UID:GID TEXT   TEXT and a newline
///   hardlink PATH TARGET [MODE UID:GID]   by default TARGET's, as tar
///                                         writes it
///   symlink PATH TARGET
/// ```
pub fn write_fixtures(ctx: &Path, text: &str) {
    // The archive being written: its names, its builder, and the mode and
    // owner of each entry so far (a hardlink entry repeats its target's, as
    // tar writes it).
    type Open = (
        Vec<String>,
        tar::Builder<Vec<u8>>,
        BTreeMap<String, [String; 2]>,
    );
    let mut archive: Option<Open> = None;
    let lines = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    for line in lines.chain(std::iter::once("end")) {
        let entry = line.starts_with(' ');
        let words: Vec<&str> = line.split_whitespace().collect();
        if entry {
            let (_, builder, seen) = archive.as_mut().expect("an entry line outside an archive");
            tar_entry(builder, seen, &words);
            continue;
        }
        if let Some((names, builder, _)) = archive.take() {
            let tar = builder.into_inner().unwrap();
            for name in names {
                let (file, how) = match name.split_once('=') {
                    Some((f, how)) => (f.to_string(), how.to_string()),
                    None => (name.clone(), compression_of(&name).into()),
                };
                fs_err::write(ctx.join(file), compress(&tar, &how)).unwrap();
            }
        }
        match words[..] {
            ["end"] => {}
            ["hardlink", path, existing] => {
                fs_err::hard_link(ctx.join(existing), ctx.join(path)).unwrap();
            }
            ["gzip", name, ref text @ ..] => {
                let data = compress(format!("{}\n", text.join(" ")).as_bytes(), "gzip");
                fs_err::write(ctx.join(name), data).unwrap();
            }
            ["archive", ref names @ ..] => {
                let names = names.iter().map(|n| n.to_string()).collect();
                archive = Some((names, tar::Builder::new(Vec::new()), BTreeMap::new()));
            }
            _ => panic!("fixtures.txt: cannot read {line:?}"),
        }
    }
}

pub fn tar_entry(
    builder: &mut tar::Builder<Vec<u8>>,
    seen: &mut BTreeMap<String, [String; 2]>,
    words: &[&str],
) {
    let mut h = tar::Header::new_gnu();
    h.set_mtime(1_000_000_000);
    h.set_size(0);
    let owner = |h: &mut tar::Header, mode: &str, ids: &str| {
        h.set_mode(u32::from_str_radix(mode, 8).unwrap());
        let (u, g) = ids.split_once(':').unwrap();
        h.set_uid(u.parse().unwrap());
        h.set_gid(g.parse().unwrap());
        [mode.to_string(), ids.to_string()]
    };
    let (path, meta) = match words {
        ["dir", path, mode, ids] => {
            h.set_entry_type(tar::EntryType::Directory);
            let meta = owner(&mut h, mode, ids);
            builder.append_data(&mut h, path, &[][..]).unwrap();
            (path, meta)
        }
        ["file", path, mode, ids, text @ ..] => {
            let data = format!("{}\n", text.join(" "));
            h.set_entry_type(tar::EntryType::Regular);
            let meta = owner(&mut h, mode, ids);
            h.set_size(data.len() as u64);
            builder.append_data(&mut h, path, data.as_bytes()).unwrap();
            (path, meta)
        }
        ["hardlink", path, target, rest @ ..] => {
            let [mode, ids] = match rest {
                [mode, ids] => [mode.to_string(), ids.to_string()],
                _ => seen
                    .get(*target)
                    .expect("a hardlink to an earlier file")
                    .clone(),
            };
            h.set_entry_type(tar::EntryType::Link);
            let meta = owner(&mut h, &mode, &ids);
            builder.append_link(&mut h, path, target).unwrap();
            (path, meta)
        }
        ["symlink", path, target] => {
            h.set_entry_type(tar::EntryType::Symlink);
            let meta = owner(&mut h, "777", "0:0");
            builder.append_link(&mut h, path, target).unwrap();
            (path, meta)
        }
        _ => panic!("fixtures.txt: cannot read archive entry {words:?}"),
    };
    seen.insert(path.to_string(), meta);
}

pub fn compression_of(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("gz" | "tgz") => "gzip",
        Some("bz2") => "bzip2",
        Some("xz") => "xz",
        Some("zst") => "zstd",
        _ => "none",
    }
}

pub fn compress(data: &[u8], how: &str) -> Vec<u8> {
    match how {
        "none" => data.to_vec(),
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "bzip2" => {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "xz" => xz(data),
        "zstd" => zstd::encode_all(data, 0).unwrap(),
        _ => panic!("fixtures.txt: unknown compression {how}"),
    }
}

/// An xz stream of one LZMA2 block with a CRC32 check. lzma-rs's own
/// xz_compress writes check type None, which buildah 1.28 does not take for
/// xz (it copies such an archive unextracted; Docker runs `xz -d`, which
/// takes it), so the container is written here around lzma-rs's LZMA2 data.
pub fn xz(data: &[u8]) -> Vec<u8> {
    let crc = |b: &[u8]| {
        let mut c = flate2::Crc::new();
        c.update(b);
        c.sum().to_le_bytes()
    };
    let pad = |v: &mut Vec<u8>| v.resize(v.len().next_multiple_of(4), 0);
    let varint = |v: &mut Vec<u8>, mut n: usize| {
        while n >= 0x80 {
            v.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        v.push(n as u8);
    };
    let mut lzma2 = Vec::new();
    lzma_rs::lzma2_compress(&mut &data[..], &mut lzma2).unwrap();
    let flags = [0u8, 0x01]; // check: CRC32
    let mut out = b"\xfd7zXZ\0".to_vec();
    out.extend(flags);
    out.extend(crc(&flags));
    // Block header: 12 bytes ((2 + 1) * 4), one filter, LZMA2 (0x21) with
    // a one-byte dictionary size property, as lzma-rs's own writer.
    let header = [2u8, 0, 0x21, 1, 22, 0, 0, 0];
    out.extend(header);
    out.extend(crc(&header));
    out.extend(&lzma2);
    pad(&mut out); // the stream header is 12 bytes: 4-aligned as the block
    out.extend(crc(data));
    let mut index = vec![0u8];
    varint(&mut index, 1);
    varint(&mut index, 12 + lzma2.len() + 4);
    varint(&mut index, data.len());
    pad(&mut index);
    let index_crc = crc(&index);
    index.extend(index_crc);
    out.extend(&index);
    let mut footer = ((index.len() / 4 - 1) as u32).to_le_bytes().to_vec();
    footer.extend(flags);
    out.extend(crc(&footer));
    out.extend(footer);
    out.extend(b"YZ");
    out
}
