//! Tars written from a readable description, for tests. Hostile archives
//! (PAX records repeated, header sizes that lie, links out of the root) are
//! made here at test time, never committed as binaries. Shared by the unit
//! tests (`src/layer`, through `#[path]`) and the whole-binary tests.
#![allow(dead_code)]

/// Size of a tar block.
pub const BLOCK: usize = 512;

/// One member (or raw block) of a test tar. Owner 0:0, mtime 1000000.
pub enum T<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    /// A regular file with a mode (setuid bits and all).
    Mode(&'a str, u32, &'a [u8]),
    Sym(&'a str, &'a str),
    Hard(&'a str, &'a str),
    Fifo(&'a str),
    /// A local PAX header (`x`) for the next member; keys may repeat.
    Pax(&'a [(&'a str, &'a str)]),
    /// A global PAX header (`g`).
    Global(&'a [(&'a str, &'a str)]),
    /// A GNU long name (`L`) for the next member.
    LongName(&'a str),
    /// A header whose size field says `size` while `data` follows (padded):
    /// how a member hides bytes from a reader that trusts the wrong size.
    Raw {
        name: &'a str,
        flag: u8,
        size: u64,
        data: &'a [u8],
    },
}

/// A ustar header block.
pub fn header(name: &[u8], flag: u8, size: u64, link: &[u8], mode: u32) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    let put = |h: &mut [u8; BLOCK], at: usize, v: &[u8]| h[at..at + v.len()].copy_from_slice(v);
    put(&mut h, 0, &name[..name.len().min(100)]);
    put(&mut h, 100, format!("{mode:07o}\0").as_bytes());
    put(&mut h, 108, b"0000000\0");
    put(&mut h, 116, b"0000000\0");
    put(&mut h, 124, format!("{size:011o}\0").as_bytes());
    put(&mut h, 136, format!("{:011o}\0", 1_000_000).as_bytes());
    h[156] = flag;
    put(&mut h, 157, &link[..link.len().min(100)]);
    put(&mut h, 257, b"ustar\x0000");
    put(&mut h, 148, b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    put(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
    h
}

fn pad(out: &mut Vec<u8>) {
    out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
}

fn member(out: &mut Vec<u8>, name: &str, flag: u8, link: &str, mode: u32, data: &[u8]) {
    out.extend_from_slice(&header(
        name.as_bytes(),
        flag,
        data.len() as u64,
        link.as_bytes(),
        mode,
    ));
    out.extend_from_slice(data);
    pad(out);
}

/// PAX records, each `LEN key=value\n`.
pub fn pax_records(records: &[(&str, &str)]) -> Vec<u8> {
    let mut data = Vec::new();
    for (k, v) in records {
        let body = format!("{k}={v}\n");
        let mut len = body.len() + 2;
        while format!("{len} {body}").len() != len {
            len += 1;
        }
        data.extend_from_slice(format!("{len} {body}").as_bytes());
    }
    data
}

/// Append one description item.
pub fn push(out: &mut Vec<u8>, t: &T<'_>) {
    match *t {
        T::Dir(p) => member(out, p, b'5', "", 0o755, b""),
        T::File(p, data) => member(out, p, b'0', "", 0o644, data),
        T::Mode(p, mode, data) => member(out, p, b'0', "", mode, data),
        T::Sym(p, target) => member(out, p, b'2', target, 0o777, b""),
        T::Hard(p, target) => member(out, p, b'1', target, 0o644, b""),
        T::Fifo(p) => member(out, p, b'6', "", 0o644, b""),
        T::Pax(recs) => member(out, "PaxHeaders/x", b'x', "", 0o644, &pax_records(recs)),
        T::Global(recs) => member(out, "PaxHeaders/g", b'g', "", 0o644, &pax_records(recs)),
        T::LongName(n) => {
            let mut data = n.as_bytes().to_vec();
            data.push(0);
            member(out, "././@LongLink", b'L', "", 0o644, &data)
        }
        T::Raw {
            name,
            flag,
            size,
            data,
        } => {
            out.extend_from_slice(&header(name.as_bytes(), flag, size, b"", 0o644));
            out.extend_from_slice(data);
            pad(out);
        }
    }
}

/// The tar of `items`, with its two end blocks.
pub fn tar(items: &[T<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in items {
        push(&mut out, t);
    }
    out.extend_from_slice(&[0u8; 2 * BLOCK]);
    out
}

/// What GNU tar lists for `bytes` (`tar tvf`): (type char, name, size)
/// per member, or None when tar fails. The reference every reader of
/// strata must agree with.
pub fn gnu_tar_list(bytes: &[u8]) -> Option<Vec<(char, String, u64)>> {
    use std::io::Write;
    let mut f = tempfile::NamedTempFile::new().ok()?;
    f.write_all(bytes).ok()?;
    let out = std::process::Command::new("tar")
        .args(["--quoting-style=literal", "-tvf"])
        .arg(f.path())
        .env("LC_ALL", "C")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    Some(text.lines().filter_map(parse_tv_line).collect())
}

/// `-rw-r--r-- 0/0   5 1970-01-12 13:46 name` -> ('-', "name", 5); a link's
/// ` -> target` / ` link to target` tail is dropped.
fn parse_tv_line(line: &str) -> Option<(char, String, u64)> {
    let kind = line.chars().next()?;
    let mut rest = line;
    let mut fields = Vec::new();
    for _ in 0..5 {
        rest = rest.trim_start();
        let end = rest.find(' ')?;
        fields.push(&rest[..end]);
        rest = &rest[end..];
    }
    let name = rest.strip_prefix(' ')?;
    let name = match kind {
        'l' => name.split(" -> ").next()?,
        'h' => name.split(" link to ").next()?,
        _ => name,
    };
    let size = fields[2].parse().ok()?;
    Some((kind, name.to_string(), size))
}

/// `base` (a whole tar) with `items` appended before its end blocks.
pub fn append(base: &[u8], items: &[T<'_>]) -> Vec<u8> {
    let mut out = base.to_vec();
    while out.len() >= BLOCK && out[out.len() - BLOCK..].iter().all(|&b| b == 0) {
        out.truncate(out.len() - BLOCK);
    }
    for t in items {
        push(&mut out, t);
    }
    out.extend_from_slice(&[0u8; 2 * BLOCK]);
    out
}

/// The CVE-2025-62518 shape: PAX says `size` twice (0, then 1024; GNU
/// tar takes the last), and the 1024 bytes of `carrier` hold a whole tar
/// header for `pwn22_v2_fake`, which a reader taking the first value
/// unpacks as a file. GNU tar lists `carrier` (1024 bytes), then `after`.
pub fn smuggling_tar() -> Vec<u8> {
    let hidden = tar(&[T::File("pwn22_v2_fake", b"smuggled")]);
    tar(&[
        T::Pax(&[("size", "0"), ("size", "1024")]),
        T::Raw {
            name: "carrier",
            flag: b'0',
            size: 0,
            data: &hidden[..1024],
        },
        T::File("after", b"after"),
    ])
}

/// Plain layer tars with their diff ids, as [`docker_archive`] takes them.
pub fn plain_layers(layers: Vec<Vec<u8>>) -> Vec<(Vec<u8>, String)> {
    layers
        .into_iter()
        .map(|l| {
            let d = sha256_hex(&l);
            (l, d)
        })
        .collect()
}

/// The hex sha256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// A `docker save` archive at `out` of one image tagged `tag`, whose
/// layers are `layers` (each a blob: plain or compressed) with the given
/// uncompressed sha256 (the diff ids).
pub fn docker_archive(out: &std::path::Path, tag: &str, layers: &[(Vec<u8>, String)]) {
    let members = docker_archive_members(tag, layers);
    let items: Vec<T<'_>> = members.iter().map(|(n, d)| T::File(n, d)).collect();
    fs_err::write(out, tar(&items)).expect("write archive");
}

/// The members of [`docker_archive`], manifest.json last.
pub fn docker_archive_members(tag: &str, layers: &[(Vec<u8>, String)]) -> Vec<(String, Vec<u8>)> {
    let diff_ids: Vec<String> = layers.iter().map(|(_, d)| format!("sha256:{d}")).collect();
    let history: Vec<String> = diff_ids
        .iter()
        .map(|_| r#"{"created_by":"test"}"#.to_string())
        .collect();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["/bin/sh"]}},"rootfs":{{"type":"layers","diff_ids":{}}},"history":[{}]}}"#,
        serde_json::to_string(&diff_ids).expect("json"),
        history.join(",")
    );
    let config_name = format!("{}.json", sha256_hex(config.as_bytes()));
    let names: Vec<String> = (0..layers.len()).map(|i| format!("l{i}.tar")).collect();
    let manifest = format!(
        r#"[{{"Config":"{config_name}","RepoTags":["{tag}"],"Layers":{}}}]"#,
        serde_json::to_string(&names).expect("json")
    );
    let mut members = vec![(config_name, config.into_bytes())];
    for (name, (blob, _)) in names.into_iter().zip(layers) {
        members.push((name, blob.clone()));
    }
    members.push(("manifest.json".to_string(), manifest.into_bytes()));
    members
}

/// A compressed tar holding one file of `size` zero bytes, built from many
/// small gzip members (or zstd frames), which decoders read as one stream:
/// a decompression bomb made in milliseconds. Returns (blob, diff id hex).
pub fn bomb(zstd: bool, size: u64) -> (Vec<u8>, String) {
    use sha2::Digest;
    use std::io::Write;
    const CHUNK: usize = 1 << 20;
    let compress = |data: &[u8]| -> Vec<u8> {
        match zstd {
            true => zstd::stream::encode_all(data, 19).expect("zstd"),
            false => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                e.write_all(data).expect("gzip");
                e.finish().expect("gzip")
            }
        }
    };
    let head = header(b"bomb", b'0', size, b"", 0o644);
    let zeros = vec![0u8; CHUNK];
    let member = compress(&zeros);
    let mut hash = sha2::Sha256::new();
    let mut blob = compress(&head);
    hash.update(head);
    let mut left = size;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        match n == CHUNK {
            true => blob.extend_from_slice(&member),
            false => blob.extend_from_slice(&compress(&zeros[..n])),
        }
        hash.update(&zeros[..n]);
        left -= n as u64;
    }
    let pad = (BLOCK - (size % BLOCK as u64) as usize) % BLOCK;
    let tail = vec![0u8; pad + 2 * BLOCK];
    blob.extend_from_slice(&compress(&tail));
    hash.update(&tail);
    (blob, hex::encode(hash.finalize()))
}

/// The containers/storage (and Docker pkg/archive) breakout matrix, as
/// layer tars: each tries to read, write, chmod or remove the directory
/// `victim` (an absolute host path holding `hello`) or its file, by `..`,
/// absolute names, hard links, symlinks and chains of them. Unpacked
/// anywhere, every one must leave the victim as it was (testBreakout).
/// The relative cases (`../victim`) assume the victim sits next to the
/// unpacking directory, as in those tests; a store's layer directory is
/// deeper, which the absolute cases cover.
pub fn breakout_matrix(victim: &str) -> Vec<(&'static str, Vec<u8>)> {
    let hello = format!("{victim}/hello");
    let through_root = format!("r{hello}");
    vec![
        ("file ../victim", tar(&[T::File("../victim/dotdot", b"x")])),
        (
            "file /../victim",
            tar(&[T::File("/../victim/slash-dotdot", b"x")]),
        ),
        (
            "hardlink ../victim/hello",
            tar(&[T::Hard("dotdot", "../victim/hello")]),
        ),
        (
            "hardlink /../victim/hello",
            tar(&[T::Hard("slash-dotdot", "/../victim/hello")]),
        ),
        ("hardlink to the host file", tar(&[T::Hard("h", &hello)])),
        (
            "hardlink loophole, then symlink through it",
            tar(&[
                T::Hard("loophole-victim", "../victim"),
                T::Sym("symlink", "loophole-victim/hello"),
            ]),
        ),
        (
            "hardlink loophole, then hardlink through it",
            tar(&[
                T::Hard("loophole-victim", "../victim"),
                T::Hard("hardlink", "loophole-victim/hello"),
            ]),
        ),
        (
            "hardlink loophole, then replace it",
            tar(&[
                T::Hard("loophole-victim", "../victim"),
                T::Mode("loophole-victim", 0o755, b"x"),
            ]),
        ),
        (
            "symlink ../victim/hello",
            tar(&[T::Sym("dotdot", "../victim/hello"), T::File("dotdot", b"x")]),
        ),
        (
            "symlink /../victim/hello",
            tar(&[
                T::Sym("slash-dotdot", "/../victim/hello"),
                T::File("slash-dotdot", b"x"),
            ]),
        ),
        (
            "symlink loophole, then hardlink through it",
            tar(&[
                T::Sym("loophole-victim", "../victim"),
                T::Hard("symlink", "loophole-victim/hello"),
            ]),
        ),
        (
            "symlink loophole, then symlink through it",
            tar(&[
                T::Sym("loophole-victim", "../victim"),
                T::Sym("symlink", "loophole-victim/hello"),
                T::File("symlink", b"x"),
            ]),
        ),
        (
            "symlink loophole, then replace it",
            tar(&[
                T::Sym("loophole-victim", "../victim"),
                T::Mode("loophole-victim", 0o755, b"x"),
            ]),
        ),
        (
            "symlink to the host dir, write through it",
            tar(&[
                T::Sym("loophole", victim),
                T::File("loophole/hello", b"pwned"),
                T::File("loophole/new", b"x"),
            ]),
        ),
        (
            "symlink to the host dir, then a dir 0777 over it",
            tar(&[T::Sym("d", victim), T::Dir("d/")]),
        ),
        (
            "symlink to the host file, then a file 04777 over it",
            tar(&[T::Sym("f", &hello), T::Mode("f", 0o4777, b"x")]),
        ),
        (
            "dir/loophole -> ../../victim, then dir/loophole/newdir/newfile",
            tar(&[
                T::Dir("dir/"),
                T::Sym("dir/loophole", "../../victim"),
                T::File("dir/loophole/newdir/newfile", b"x"),
            ]),
        ),
        (
            "symlink to /, then the host path through it",
            tar(&[T::Sym("r", "/"), T::File(&through_root, b"pwned")]),
        ),
    ]
}

/// A victim directory for [`breakout_matrix`]: `<parent>/victim/hello`
/// ("hello", 0644), the directory 0755. Returns its path.
pub fn make_victim(parent: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let victim = parent.join("victim");
    fs_err::create_dir(&victim).expect("victim");
    fs_err::write(victim.join("hello"), "hello").expect("hello");
    fs_err::set_permissions(victim.join("hello"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    fs_err::set_permissions(&victim, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    victim
}

/// testBreakout's check: the victim is exactly as [`make_victim`] left it.
pub fn assert_victim_intact(victim: &std::path::Path, case: &str) {
    use std::os::unix::fs::MetadataExt;
    let names: Vec<_> = fs_err::read_dir(victim)
        .expect("victim")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["hello"], "{case}: the victim directory changed");
    let hello = victim.join("hello");
    assert_eq!(
        fs_err::read_to_string(&hello).expect("hello"),
        "hello",
        "{case}"
    );
    let m = fs_err::symlink_metadata(&hello).expect("hello");
    assert_eq!(
        (m.mode() & 0o7777, m.nlink()),
        (0o644, 1),
        "{case}: hello's mode or links"
    );
    let d = fs_err::metadata(victim).expect("victim");
    assert_eq!(d.mode() & 0o7777, 0o755, "{case}: the victim's mode");
}
