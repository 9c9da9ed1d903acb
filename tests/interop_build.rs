//! Every case under testdata/build/ built by strata and by buildah 1.28
//! (rootless, chroot isolation, docker format, `--layers`) from the same
//! busybox base gives the same root file system (paths, types, modes,
//! owners, content, link targets, which files are hardlinked together) and
//! the same config (the fields in [`CONFIG_KEYS`], the history length and
//! which history entries made a layer), compared after `umoci unpack` of
//! both. One test per case, named `interop_build::<case>`.
//!
//! A case is a directory holding a Dockerfile. Each builder builds a copy of
//! it, in which these optional files are acted on and then removed:
//! - `fixtures.txt`: what git cannot hold (tar archives, hardlinks), written
//!   into the copy first; the format is described at [`write_fixtures`].
//! - `build-args`: `KEY=VALUE` lines, given to both builders as
//!   `--build-arg`. The value of a predefined proxy arg must appear nowhere
//!   in either image's config or history: Docker keeps them out.
//! - `http/`: files served on 127.0.0.1 while the case builds; both builders
//!   get the server's base URL as the build arg `SERVER`, for `ADD <url>`.
//! - `base/`: a Dockerfile and its context, built first by each builder;
//!   the case's build gets that image's tag as the build arg `BASE`, for
//!   `FROM $BASE` (ONBUILD triggers, an inherited CMD).
//! - `Dockerfile.buildah`: what buildah builds instead of `Dockerfile`, for
//!   the features buildah 1.28 lacks (heredocs, `COPY --parents`,
//!   `COPY --exclude`, `ADD --checksum`). It must do the same with the same number of history
//!   entries; the comparison is then against buildah building an
//!   equivalent, not the same text.
//!
//! Where buildah departs from Docker, its side is normalised here, with what
//! Docker does. Not compared, because buildah 1.28 cannot build them:
//! `.wh.` entries in an ADDed tar (buildah's vfs storage applies them as
//! whiteouts while its layer record still lists them, so it cannot even
//! push the image); failing builds are tested in tests/build.rs.

// Tests report what they checked on stderr.
#![allow(clippy::disallowed_macros)]
#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use serde_json::json;

use common::Strata;

/// One test per directory under testdata/build/;
/// `interop_build_every_case_has_a_test` keeps the two in step.
macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        const CASES: &[&str] = &[$(stringify!($name)),*];
        mod interop_build {
            $(#[test]
            fn $name() {
                super::compare(stringify!($name));
            })*
        }
    };
}

cases!(
    add_tar_hardlink_mode,
    add_tars,
    add_url,
    args,
    basic,
    copy_dot,
    copy_from,
    copy_sources,
    copyflags,
    dockerignore,
    entrypoint,
    heredoc,
    metadata,
    multistage,
    onbuild,
    parents_exclude,
    parents_globstar,
    sources_one_inode,
    whiteouts,
    workdir_env,
    workdir_user,
);

#[test]
fn interop_build_every_case_has_a_test() {
    let mut names: Vec<String> = fs_err::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, CASES, "testdata/build/ and the cases! list differ");
}

fn cases_dir() -> PathBuf {
    common::project_dir().join("testdata/build")
}

/// buildah's image store is shared by every test in this process: one
/// buildah at a time, as a concurrent `rmi` broke another build's cache
/// lookup ("getting top layer info: layer not known").
static BUILDAH: Mutex<()> = Mutex::new(());

/// Files buildah leaves in an image that Docker (and strata) do not: its
/// mount points for the name files and /run.
const BUILDAH_ARTIFACTS: [&str; 4] = ["etc/hostname", "etc/hosts", "etc/resolv.conf", "run"];

/// The config fields compared.
const CONFIG_KEYS: [&str; 12] = [
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "StopSignal",
    "Healthcheck",
    "OnBuild",
    "Shell",
];

/// A case's context, made ready to build: see the module doc.
struct Case {
    ctx: PathBuf,
    /// `--build-arg`s for both builders.
    args: Vec<(String, String)>,
    /// What buildah builds instead of ctx/Dockerfile.
    buildah_file: Option<PathBuf>,
    /// The context of the base image to build first.
    base: Option<PathBuf>,
}

/// Copies case `name` into `w` and acts on its optional files.
fn prepare(name: &str, w: &Path) -> Case {
    let ctx = w.join("ctx");
    copy_tree(&cases_dir().join(name), &ctx);
    // Moves `file` out of the context, if there, to `w`.
    let take = |file: &str| {
        let (from, to) = (ctx.join(file), w.join(file));
        fs_err::symlink_metadata(&from).is_ok().then(|| {
            fs_err::rename(&from, &to).unwrap();
            to
        })
    };
    if ctx.join("fixtures.txt").exists() {
        let text = fs_err::read_to_string(ctx.join("fixtures.txt")).unwrap();
        write_fixtures(&ctx, &text);
    }
    take("fixtures.txt");
    let mut args: Vec<(String, String)> = Vec::new();
    if let Some(file) = take("build-args") {
        let text = fs_err::read_to_string(file).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (k, v) = line.split_once('=').expect("build-args: KEY=VALUE");
            args.push((k.into(), v.into()));
        }
    }
    if let Some(dir) = take("http") {
        args.push(("SERVER".into(), common::http::serve_dir(&dir)));
    }
    Case {
        buildah_file: take("Dockerfile.buildah"),
        base: take("base"),
        ctx,
        args,
    }
}

/// Builds, unpacks and compares one case; panics with every difference.
fn compare(name: &str) {
    buildah_has_busybox();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let mut case = prepare(name, w);
    let tag = format!("strata-interop-{name}-{}", std::process::id());
    let base = format!("{tag}-base");
    if case.base.is_some() {
        case.args.push(("BASE".into(), base.clone()));
    }

    let s = Strata::new();
    s.import_busybox("busybox");
    if let Some(base_ctx) = &case.base {
        strata_build(&s, base_ctx, &base, &[]);
    }
    strata_build(&s, &case.ctx, &tag, &case.args);
    let ours = w.join("s");
    s.run(&["push", &tag, &format!("oci:{}:latest", ours.display())])
        .success();

    let theirs = w.join("b");
    let mut their_config = {
        let _one_at_a_time = BUILDAH.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(base_ctx) = &case.base {
            buildah_build(base_ctx, None, &base, &[]);
        }
        buildah_build(&case.ctx, case.buildah_file.as_deref(), &tag, &case.args);
        common::tool(
            "buildah",
            &[
                "push",
                "-q",
                &tag,
                &format!("oci:{}:latest", theirs.display()),
            ],
        );
        // The Docker-format config as built: pushing to an OCI layout
        // drops Healthcheck, OnBuild and Shell.
        let inspect = common::tool("buildah", &["inspect", "--type", "image", &tag]);
        for t in [&tag, &base] {
            // Only tidies buildah's store; a leftover tag harms no later run.
            let _ = Command::new("buildah").args(["rmi", "-f", t]).output();
        }
        let mut inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
        inspect["Docker"].take()
    };
    let our_config = raw_config(&ours);

    let mut differ = Vec::new();
    for (k, v) in &case.args {
        // Docker's predefined proxy args: usable without ARG, never recorded.
        let proxies = [
            "http_proxy",
            "https_proxy",
            "ftp_proxy",
            "no_proxy",
            "all_proxy",
        ];
        if proxies.contains(&k.to_ascii_lowercase().as_str()) {
            for (who, c) in [("strata", &our_config), ("buildah", &their_config)] {
                if c.to_string().contains(v.as_str()) {
                    differ.push(format!("{who}'s config or history records {k}={v}"));
                }
            }
        }
    }
    let our_tree = unpacked_tree(&ours, w);
    let mut their_tree = unpacked_tree(&theirs, w);
    normalise_buildah(&mut their_config, &mut their_tree, &our_tree);
    for dir in workdirs(&s, &tag) {
        // Docker (BuildKit) makes every WORKDIR's directory; buildah only
        // the ones a later step needs.
        let mut path = Path::new(dir.trim_start_matches('/'));
        while let (Some(p), Some(ours)) = (path.to_str(), our_tree.get(path.to_str().unwrap())) {
            their_tree
                .entry(p.to_string())
                .or_insert_with(|| ours.clone());
            path = match path.parent() {
                Some(up) if !up.as_os_str().is_empty() => up,
                _ => break,
            };
        }
    }
    compare_trees(&our_tree, &their_tree, &mut differ);
    let (ours, theirs) = (config(our_config), config(their_config));
    for (k, v) in &ours {
        if theirs.get(k) != Some(v) {
            differ.push(format!(
                "config {k}: strata {v} / buildah {}",
                theirs.get(k).unwrap_or(&serde_json::Value::Null)
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "{name}: strata and buildah differ:\n{}",
        differ.join("\n")
    );
}

/// The directories strata's WORKDIR steps made for `tag`, cleaned: the
/// WorkingDir of each WORKDIR step's image.
fn workdirs(s: &Strata, tag: &str) -> Vec<String> {
    let format = "{{.ID}} {{.CreatedBy}}";
    let history = s.run(&["history", "--no-trunc", "--format", format, tag]);
    let mut dirs = Vec::new();
    for line in history.success().stdout.lines() {
        // A heredoc's CreatedBy goes on over several lines: only the
        // first of them starts with an id.
        let Some((id, by)) = line.split_once(' ') else {
            continue;
        };
        if id != "<missing>" && by.contains("#(nop) WORKDIR ") {
            let out = s.run(&["inspect", "-f", "{{.Config.WorkingDir}}", id]);
            let dir = out.success().stdout.trim().to_string();
            let mut clean: Vec<&str> = Vec::new();
            for c in dir.split('/') {
                match c {
                    "" | "." => {}
                    ".." => {
                        clean.pop();
                    }
                    c => clean.push(c),
                }
            }
            dirs.push(format!("/{}", clean.join("/")));
        }
    }
    dirs
}

fn strata_build(s: &Strata, ctx: &Path, tag: &str, args: &[(String, String)]) {
    let mut argv = vec!["build".to_string(), "-q".into(), "-t".into(), tag.into()];
    for (k, v) in args {
        argv.extend(["--build-arg".into(), format!("{k}={v}")]);
    }
    argv.push(ctx.to_str().unwrap().into());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    s.run(&argv).success();
}

fn buildah_build(ctx: &Path, file: Option<&Path>, tag: &str, args: &[(String, String)]) {
    let mut argv: Vec<String> = [
        "bud",
        "-q",
        "--layers",
        "--isolation",
        "chroot",
        "--format",
        "docker",
        "-t",
        tag,
    ]
    .map(String::from)
    .into();
    if let Some(f) = file {
        argv.extend(["-f".into(), f.to_str().unwrap().into()]);
    }
    for (k, v) in args {
        argv.extend(["--build-arg".into(), format!("{k}={v}")]);
    }
    argv.push(ctx.to_str().unwrap().into());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    common::tool("buildah", &argv);
}

/// Gives buildah's store the same busybox image strata imports, once per
/// test process (buildah's store outlives it, so a second pull is cheap).
fn buildah_has_busybox() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let s = Strata::new();
        s.import_busybox("busybox");
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("busybox.tar");
        s.run(&["save", "-o", archive.to_str().unwrap(), "busybox"])
            .success();
        common::tool(
            "buildah",
            &[
                "pull",
                "-q",
                &format!("docker-archive:{}", archive.display()),
            ],
        );
    });
}

/// Copies a case directory, keeping symlinks as they are and modes.
fn copy_tree(from: &Path, to: &Path) {
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
fn write_fixtures(ctx: &Path, text: &str) {
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

fn tar_entry(
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

fn compression_of(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("gz" | "tgz") => "gzip",
        Some("bz2") => "bzip2",
        Some("xz") => "xz",
        Some("zst") => "zstd",
        _ => "none",
    }
}

fn compress(data: &[u8], how: &str) -> Vec<u8> {
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
fn xz(data: &[u8]) -> Vec<u8> {
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

/// `umoci unpack`s an OCI layout into a fresh dir under `w` and reads its
/// tree.
fn unpacked_tree(layout: &Path, w: &Path) -> BTreeMap<String, String> {
    let dir = w.join(format!(
        "{}-unpacked",
        layout.file_name().unwrap().to_string_lossy()
    ));
    tree(&common::umoci_unpack(
        &format!("{}:latest", layout.display()),
        &dir,
    ))
}

fn compare_trees(
    ours: &BTreeMap<String, String>,
    theirs: &BTreeMap<String, String>,
    differ: &mut Vec<String>,
) {
    for (k, v) in ours {
        match theirs.get(k) {
            Some(t) if t == v => {}
            Some(t) => differ.push(format!("{k}: strata {v} / buildah {t}")),
            None => differ.push(format!("{k}: only in strata's ({v})")),
        }
    }
    for (k, v) in theirs {
        if !ours.contains_key(k) {
            differ.push(format!("{k}: only in buildah's ({v})"));
        }
    }
}

/// The owner umoci --rootless recorded (user.rootlesscontainers: protobuf
/// fields 1 uid, 2 gid), or root when none was needed.
fn owner(path: &Path) -> (u64, u64) {
    let mut buf = [0u8; 64];
    let Ok(n) = rustix::fs::lgetxattr(path, "user.rootlesscontainers", &mut buf) else {
        return (0, 0);
    };
    let (mut ids, mut i) = ([0u64; 3], 0);
    while i < n {
        let field = (buf[i] >> 3) as usize;
        i += 1;
        let (mut v, mut shift) = (0u64, 0);
        while i < n {
            v |= u64::from(buf[i] & 0x7f) << shift;
            shift += 7;
            i += 1;
            if buf[i - 1] & 0x80 == 0 {
                break;
            }
        }
        if field < 3 {
            ids[field] = v;
        }
    }
    (ids[1], ids[2])
}

/// path -> type, permissions, owner, content or link target, and for a
/// file with other hardlinks in the tree, the first path of its group.
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs_err::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let m = fs_err::symlink_metadata(&p).unwrap();
            let mode = m.permissions().mode() & 0o7777;
            // An image's mode (e.g. COPY --chmod 0640 on a directory) may
            // lock out the unpacking user, who owns everything here.
            if !m.file_type().is_symlink() {
                let needed = if m.is_dir() { 0o700 } else { 0o400 };
                fs_err::set_permissions(&p, std::fs::Permissions::from_mode(mode | needed))
                    .unwrap();
            }
            let what = if m.file_type().is_symlink() {
                format!("link {}", fs_err::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                stack.push(p.clone());
                "dir".into()
            } else if m.is_file() {
                if m.nlink() > 1 {
                    inodes.entry(m.ino()).or_default().push(rel.clone());
                }
                let data = fs_err::read(&p).unwrap();
                match std::str::from_utf8(&data) {
                    // Short text as itself, so a difference reads at once.
                    Ok(text) if text.len() <= 200 => format!("file {text:?}"),
                    _ => format!(
                        "file {}",
                        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data))
                    ),
                }
            } else {
                format!("other {:o}", m.mode() & 0o170000)
            };
            out.insert(rel, format!("{what} {mode:o} {:?}", owner(&p)));
        }
    }
    for group in inodes.values().filter(|g| g.len() > 1) {
        let first = group.iter().min().unwrap();
        for path in group {
            out.get_mut(path)
                .unwrap()
                .push_str(&format!(" linked {first}"));
        }
    }
    out
}

/// The image config in an OCI layout, as written.
fn raw_config(layout: &Path) -> serde_json::Value {
    let text = common::tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--config",
            &format!("oci:{}:latest", layout.display()),
        ],
    );
    serde_json::from_str(&text).unwrap()
}

/// Where buildah 1.28 departs from Docker, makes its image read as
/// Docker's would, given strata's tree to tell what buildah added.
fn normalise_buildah(
    c: &mut serde_json::Value,
    tree: &mut BTreeMap<String, String>,
    ours: &BTreeMap<String, String>,
) {
    // buildah's mount points for the name files and /run.
    for a in BUILDAH_ARTIFACTS {
        if !ours.contains_key(a) {
            tree.remove(a);
        }
    }
    let cfg = &mut c["config"];
    if let Some(labels) = cfg.get_mut("Labels").and_then(|l| l.as_object_mut()) {
        labels.remove("io.buildah.version");
        if labels.is_empty() {
            // Only buildah's own label was there.
            cfg["Labels"] = serde_json::Value::Null;
        }
    }
    // buildah makes a VOLUME's directory in the image; Docker (and strata)
    // only record it in the config.
    if let Some(volumes) = cfg.get("Volumes").and_then(|v| v.as_object()) {
        for v in volumes.keys() {
            let mut path = Path::new(v.trim_start_matches('/'));
            while !ours.contains_key(path.to_str().unwrap())
                && tree
                    .get(path.to_str().unwrap())
                    .is_some_and(|e| e.starts_with("dir "))
            {
                tree.remove(path.to_str().unwrap());
                match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => path = p,
                    _ => break,
                }
            }
        }
    }
    // Docker (BuildKit) makes a WORKDIR's directory in a layer of its own
    // (any path but `/`); buildah records the step as an empty layer.
    if let Some(history) = c.get_mut("history").and_then(|h| h.as_array_mut()) {
        for h in history {
            let by = h["created_by"].as_str().unwrap_or_default();
            let dir = by.split_once("#(nop) WORKDIR ").map(|(_, d)| d.trim());
            if dir.is_some_and(|d| d != "/") {
                h["empty_layer"] = serde_json::Value::Null;
            }
        }
    }
    let cfg = &mut c["config"];
    // buildah writes "", [] and {} where Docker leaves a field out (null).
    if let Some(fields) = cfg.as_object_mut() {
        for v in fields.values_mut() {
            if v.as_str() == Some("")
                || v.as_array().is_some_and(|a| a.is_empty())
                || v.as_object().is_some_and(|o| o.is_empty())
            {
                *v = serde_json::Value::Null;
            }
        }
    }
    // buildah keeps `EXPOSE 8000-8002` as one range key; Docker (and
    // strata) list each port.
    if let Some(ports) = cfg.get_mut("ExposedPorts").and_then(|p| p.as_object_mut()) {
        let keys: Vec<String> = ports.keys().cloned().collect();
        for key in keys {
            let (range, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
            if let Some((a, b)) = range.split_once('-') {
                let (a, b): (u16, u16) = (a.parse().unwrap(), b.parse().unwrap());
                ports.remove(&key);
                for port in a..=b {
                    ports.insert(format!("{port}/{proto}"), serde_json::json!({}));
                }
            }
        }
    }
    // buildah runs a shell-form ENTRYPOINT or CMD through /bin/sh -c even
    // after SHELL; Docker uses the SHELL, as for RUN. (This reads any
    // `/bin/sh -c X` as shell form: the cases write no such exec form.)
    if let Some(shell) = cfg.get("Shell").and_then(|s| s.as_array()).cloned() {
        for key in ["Entrypoint", "Cmd"] {
            if let Some(argv) = cfg.get_mut(key).and_then(|a| a.as_array_mut()) {
                if argv.len() == 3 && argv[..2] == [json!("/bin/sh"), json!("-c")] {
                    let command = argv[2].clone();
                    *argv = shell.iter().cloned().chain([command]).collect();
                }
            }
        }
    }
}

/// The compared part of a config.
fn config(mut c: serde_json::Value) -> BTreeMap<String, serde_json::Value> {
    let history = c["history"].as_array().cloned().unwrap_or_default();
    let cfg = c["config"].take();
    let mut out: BTreeMap<String, serde_json::Value> = CONFIG_KEYS
        .iter()
        .map(|k| (k.to_string(), cfg.get(*k).cloned().unwrap_or_default()))
        .collect();
    out.insert("history length".into(), history.len().into());
    // L for an entry with a layer, - for an empty one.
    let layers: String = history
        .iter()
        .map(|h| match h["empty_layer"].as_bool() {
            Some(true) => '-',
            _ => 'L',
        })
        .collect();
    out.insert("history layers".into(), layers.into());
    out
}
