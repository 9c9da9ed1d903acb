//! Every Dockerfile under testdata/build/ built by strata and by buildah
//! (rootless, chroot isolation, docker format) from the same base gives the
//! same root file system and config, compared after `umoci unpack`.
#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::Strata;

/// Files buildah leaves in an image that Docker (and strata) do not: its
/// mount points for the name files and /run.
const BUILDAH_ARTIFACTS: [&str; 4] = ["etc/hostname", "etc/hosts", "etc/resolv.conf", "run"];

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

/// path -> type, permissions, owner, content or link target.
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let mode = m.permissions().mode() & 0o7777;
            // An image's mode (e.g. COPY --chmod 0640 on a directory) may
            // lock out the unpacking user, who owns everything here.
            if !m.file_type().is_symlink() {
                let needed = if m.is_dir() { 0o700 } else { 0o400 };
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode | needed))
                    .unwrap();
            }
            let what = if m.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                stack.push(p.clone());
                "dir".into()
            } else if m.is_file() {
                format!(
                    "file {}",
                    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                        std::fs::read(&p).unwrap()
                    ))
                )
            } else {
                format!("other {:o}", m.mode() & 0o170000)
            };
            out.insert(
                rel,
                format!(
                    "{what} {:o} {:?}",
                    m.permissions().mode() & 0o7777,
                    owner(&p)
                ),
            );
        }
    }
    out
}

fn config(layout: &Path) -> serde_json::Value {
    let text = common::tool(
        "skopeo",
        &[
            "inspect",
            "--config",
            &format!("oci:{}:latest", layout.display()),
        ],
    );
    let mut c: serde_json::Value = serde_json::from_str(&text).unwrap();
    let history = c["history"].as_array().map_or(0, |h| h.len());
    let mut cfg = c["config"].take();
    if let Some(labels) = cfg.get_mut("Labels").and_then(|l| l.as_object_mut()) {
        labels.remove("io.buildah.version");
        if labels.is_empty() {
            // Only buildah's own label was there.
            cfg["Labels"] = serde_json::Value::Null;
        }
    }
    let keep = [
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
    let mut out = serde_json::Map::new();
    for k in keep {
        out.insert(
            k.into(),
            cfg.get(k).cloned().unwrap_or(serde_json::Value::Null),
        );
    }
    out.insert("history".into(), history.into());
    serde_json::Value::Object(out)
}

#[test]
fn interop_build_matches_buildah() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let archive = w.join("busybox.tar");
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
    let cases = common::project_dir().join("testdata/build");
    let mut names: Vec<_> = std::fs::read_dir(&cases)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert!(names.len() >= 3, "the test cases are missing");
    for name in names {
        let name = name.to_string_lossy().into_owned();
        let ctx = cases.join(&name);
        let (sl, bl) = (w.join(format!("{name}-s")), w.join(format!("{name}-b")));
        s.run(&[
            "build",
            "-q",
            "-t",
            &format!("{name}-s"),
            ctx.to_str().unwrap(),
        ])
        .success();
        s.run(&[
            "push",
            &format!("{name}-s"),
            &format!("oci:{}:latest", sl.display()),
        ])
        .success();
        let tag = format!("strata-interop-{name}-{}", std::process::id());
        common::tool(
            "buildah",
            &[
                "bud",
                "-q",
                "--layers",
                "--isolation",
                "chroot",
                "--format",
                "docker",
                "-t",
                &tag,
                ctx.to_str().unwrap(),
            ],
        );
        common::tool(
            "buildah",
            &["push", "-q", &tag, &format!("oci:{}:latest", bl.display())],
        );
        let _ = Command::new("buildah").args(["rmi", "-f", &tag]).output();
        for (layout, dir) in [
            (&sl, w.join(format!("{name}-su"))),
            (&bl, w.join(format!("{name}-bu"))),
        ] {
            common::tool(
                "umoci",
                &[
                    "unpack",
                    "--rootless",
                    "--image",
                    &format!("{}:latest", layout.display()),
                    dir.to_str().unwrap(),
                ],
            );
        }
        let ours = tree(&w.join(format!("{name}-su/rootfs")));
        let mut theirs = tree(&w.join(format!("{name}-bu/rootfs")));
        for a in BUILDAH_ARTIFACTS {
            if !ours.contains_key(a) {
                theirs.remove(a);
            }
        }
        let differ: Vec<String> = ours
            .iter()
            .filter(|(k, v)| theirs.get(*k) != Some(v))
            .map(|(k, v)| format!("{k}: strata {v} / buildah {:?}", theirs.get(k)))
            .chain(
                theirs
                    .keys()
                    .filter(|k| !ours.contains_key(*k))
                    .map(|k| format!("{k}: only in buildah's")),
            )
            .collect();
        assert!(
            differ.is_empty(),
            "{name}: trees differ:\n{}",
            differ.join("\n")
        );
        assert_eq!(config(&sl), config(&bl), "{name}: configs differ");
    }
}
