//! The two builders' images read for comparing: their unpacked trees
//! (paths, types, modes, owners, content, link targets, hardlink groups)
//! and their configs, buildah's departures from Docker normalised.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use serde_json::json;

use super::common;
use super::{BUILDAH_ARTIFACTS, CONFIG_KEYS};

/// `umoci unpack`s an OCI layout into a fresh dir under `w` and reads its
/// tree.
pub fn unpacked_tree(layout: &Path, w: &Path) -> BTreeMap<String, String> {
    let dir = w.join(format!(
        "{}-unpacked",
        layout.file_name().unwrap().to_string_lossy()
    ));
    tree(&common::umoci_unpack(
        &format!("{}:latest", layout.display()),
        &dir,
    ))
}

pub fn compare_trees(
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
pub fn owner(path: &Path) -> (u64, u64) {
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
pub fn tree(root: &Path) -> BTreeMap<String, String> {
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
pub fn raw_config(layout: &Path) -> serde_json::Value {
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
pub fn normalise_buildah(
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
pub fn config(mut c: serde_json::Value) -> BTreeMap<String, serde_json::Value> {
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
