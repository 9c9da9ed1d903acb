//! Store unit tests on a temporary root.

use fs_err::PathExt as _;

use super::*;
use crate::layer::compress::Compression;

/// A one-file layer tar, built in memory.
pub(crate) fn layer_tar(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        b.append(&h, data.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

/// Import `files` as a one-layer image tagged `tag`.
pub(crate) fn import(store: &Store, files: &[(&str, &str)], tag: &str) -> ImageId {
    let staging = store.staging().unwrap();
    let (layer, _) = store
        .prepare_layer_tar(&staging, &layer_tar(files)[..], None)
        .unwrap();
    let mut config = ImageConfig::new("2024-01-01T00:00:00Z".into());
    config.rootfs.diff_ids.push(layer.diff_id().clone());
    let bytes = config::to_canonical_json(&config).unwrap();
    let tags: Vec<Reference> = if tag.is_empty() {
        vec![]
    } else {
        vec![Reference::parse(tag).unwrap()]
    };
    store
        .commit_image(vec![layer], &bytes, &tags, None)
        .unwrap()
}

fn store() -> (tempfile::TempDir, Store) {
    let tmp = tempfile::tempdir().unwrap();
    let s = Store::open(&tmp.path().join("root")).unwrap();
    (tmp, s)
}

#[test]
fn import_tag_list_remove() {
    let (_t, s) = store();
    let a = import(&s, &[("bin/sh", "shell")], "app:1");
    assert_eq!(s.resolve("app:1").unwrap(), a);
    assert_eq!(s.resolve(&a.short()[..6]).unwrap(), a);
    assert_eq!(s.resolve(&a.to_string()).unwrap(), a);
    s.tag("app:1", &Reference::parse("other").unwrap()).unwrap();
    let list = s.list_images().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].tags.len(), 2);
    assert_eq!(list[0].size, 5);
    let dirs = s.lowerdirs(&a).unwrap();
    assert_eq!(
        fs_err::read_to_string(dirs[0].join("bin/sh")).unwrap(),
        "shell"
    );

    // Two tags: removing one only untags.
    let ev = s.remove_image("other", false, true).unwrap();
    assert_eq!(ev, vec![RemoveEvent::Untagged("other:latest".into())]);
    // By id with one tag: untag and delete, layers go too (once this
    // process no longer holds the image it committed).
    s.release();
    let ev = s.remove_image(a.short(), false, true).unwrap();
    assert_eq!(ev[0], RemoveEvent::Untagged("app:1".into()));
    assert_eq!(ev[1], RemoveEvent::Deleted(a.0.clone()));
    assert!(dirs[0].fs_err_symlink_metadata().is_err());
    assert!(matches!(
        s.resolve("app:1"),
        Err(StoreError::ImageNotFound { .. })
    ));
    let rep = s.check().unwrap();
    assert!(rep.problems.is_empty() && rep.garbage.is_empty(), "{rep:?}");
}

#[test]
fn shared_layers_survive_and_containers_block_rmi() {
    let (_t, s) = store();
    let a = import(&s, &[("f", "same")], "a");
    let b = import(&s, &[("f", "same")], "b");
    // Same content, same config: same image.
    assert_eq!(a, b);
    s.remove_image("a", false, true).unwrap();
    assert!(s.resolve("b").is_ok());
    let c = s.root().join("containers/c1");
    fs_err::create_dir_all(&c).unwrap();
    fs_err::write(c.join("state.json"), format!("{{\"image\":\"{b}\"}}")).unwrap();
    assert!(matches!(
        s.remove_image("b", false, true),
        Err(StoreError::InUse { .. })
    ));
    s.remove_image("b", true, true).unwrap();
    // The container still has its layers.
    let config = s.config(&b).unwrap();
    assert!(s.has_layer(&config.rootfs.diff_ids[0]));
}

#[test]
fn blobs_are_made_once_and_deterministic() {
    let (_t, s) = store();
    let a = import(&s, &[("x", "hello"), ("y", "world")], "x");
    let d = s.config(&a).unwrap().rootfs.diff_ids[0].clone();
    for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let b1 = s.layer_blob(&d, c).unwrap();
        let b2 = s.layer_blob(&d, c).unwrap();
        assert_eq!(b1, b2);
        let data = s.read_blob(&b1.digest).unwrap();
        assert_eq!(data.len() as u64, b1.size);
    }
    assert_eq!(s.layer_blob(&d, Compression::None).unwrap().digest, d.0);
    assert!(s.check().unwrap().problems.is_empty());
}

#[test]
fn check_finds_damage_and_prune_cleans_garbage() {
    let (_t, s) = store();
    let a = import(&s, &[("x", "hello")], "x");
    let d = s.config(&a).unwrap().rootfs.diff_ids[0].clone();
    // Garbage: a dead process's staging and an unreferenced blob.
    let st = s.staging().unwrap();
    let leftover = st.path().to_path_buf();
    std::mem::forget(st);
    fs_err::write(leftover.join("partial"), "x").unwrap();
    let lock = s.lock().unwrap();
    let staging = s.staging().unwrap();
    s.put_blob(&lock, &staging, b"orphan").unwrap();
    drop((lock, staging));
    let rep = s.check().unwrap();
    assert!(rep.problems.is_empty(), "{rep:?}");
    assert_eq!(rep.garbage.len(), 1, "{rep:?}");
    // The forgotten staging's lock is still held by this process, so prune
    // leaves it; the orphan blob goes.
    let pr = s.prune(false).unwrap();
    assert_eq!(pr.blobs, 1);
    assert!(leftover.exists());
    // Damage: a changed file in a layer, a corrupt blob.
    fs_err::write(s.layer_dir(&d).join("x"), "HELLO").unwrap();
    let rep = s.check().unwrap();
    assert_eq!(rep.problems.len(), 1, "{rep:?}");
    fs_err::write(s.blob_path(a.digest()), "garbage").unwrap();
    let rep = s.check().unwrap();
    assert!(
        rep.problems.iter().any(|p| p.contains("content digest")),
        "{rep:?}"
    );
}

#[test]
fn tar_with_wrong_diff_id_leaves_nothing() {
    let (_t, s) = store();
    let staging = s.staging().unwrap();
    let tar = layer_tar(&[("a", "b")]);
    let wrong = crate::digest::DiffId(Digest::of(b"nope"));
    let err = s
        .prepare_layer_tar(&staging, &tar[..], Some(&wrong))
        .unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch(_)), "{err}");
    drop(staging);
    assert_eq!(fs_err::read_dir(s.root().join("tmp")).unwrap().count(), 0);
    assert_eq!(
        fs_err::read_dir(s.root().join("layers")).unwrap().count(),
        0
    );
}

/// The names in `dir`, sorted.
fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = fs_err::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn open_removes_what_killed_processes_left() {
    let (_t, s) = store();
    let tmp = s.root().join("tmp");
    fs_err::write(tmp.join("999-dead.lock"), "").unwrap();
    fs_err::create_dir_all(tmp.join("999-dead/layer/sub")).unwrap();
    fs_err::create_dir(tmp.join("998-orphan")).unwrap();
    let live = s.staging().unwrap();
    fs_err::write(live.file("part"), "x").unwrap();
    Store::open(s.root()).unwrap();
    let name = live.path().file_name().unwrap().to_string_lossy();
    assert_eq!(names(&tmp), [name.to_string(), format!("{name}.lock")]);
    drop(live);
    Store::open(s.root()).unwrap();
    assert!(names(&tmp).is_empty(), "{:?}", names(&tmp));
}

#[test]
fn sweeps_at_once_remove_each_dead_staging_once_and_spare_live_ones() {
    let (_t, s) = store();
    let tmp = s.root().join("tmp");
    for i in 0..40 {
        fs_err::create_dir_all(tmp.join(format!("9{i}-dead/a/b"))).unwrap();
        if i % 4 != 0 {
            fs_err::write(tmp.join(format!("9{i}-dead.lock")), "").unwrap();
        }
    }
    let freed: Vec<(u64, u64)> = std::thread::scope(|sc| {
        let sweeps: Vec<_> = (0..4)
            .map(|_| sc.spawn(|| fsutil::prune_staging(&tmp).unwrap()))
            .collect();
        // Stagings made while the sweeps run stay.
        let live: Vec<Staging> = (0..8).map(|_| s.staging().unwrap()).collect();
        let freed = sweeps.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(names(&tmp).len(), 16, "{:?}", names(&tmp));
        assert!(live.iter().all(|l| l.path().is_dir()));
        freed
    });
    assert_eq!(freed.iter().map(|f| f.1).sum::<u64>(), 40, "{freed:?}");
    assert!(names(&tmp).is_empty(), "{:?}", names(&tmp));
}

/// A container directory as the container module makes it, for `image`.
fn fake_container(s: &Store, name: &str, image: &ImageId) -> std::path::PathBuf {
    let dir = s.root().join("containers").join(name);
    fs_err::create_dir_all(dir.join("upper/etc")).unwrap();
    fs_err::write(dir.join("upper/etc/f"), "x").unwrap();
    fs_err::write(dir.join("state.json"), format!(r#"{{"image":"{image}"}}"#)).unwrap();
    fs_err::write(dir.join(RUNNING_LOCK), "").unwrap();
    dir
}

#[test]
fn open_removes_containers_whose_owner_died() {
    let (_t, s) = store();
    let id = import(&s, &[("x", "1")], "");
    let orphan = fake_container(&s, "orphan", &id);
    fs_err::write(orphan.join(OWNER_LOCK), "").unwrap();
    let owned = fake_container(&s, "owned", &id);
    let _owner = FileLock::exclusive(&owned.join(OWNER_LOCK)).unwrap();
    fake_container(&s, "kept", &id);
    let half_made = fake_container(&s, ".c1.new", &id);
    let half_gone = fake_container(&s, ".c2.rm", &id);
    let running = fake_container(&s, "running", &id);
    let _run = FileLock::exclusive(&running.join(RUNNING_LOCK)).unwrap();
    assert_eq!(s.sweep().unwrap(), ["orphan"]);
    assert_eq!(
        names(&s.root().join("containers")),
        ["kept", "owned", "running"]
    );
    assert!(!half_made.exists() && !half_gone.exists());
    // The image of the orphan is no longer held by it; the others hold it.
    assert_eq!(s.containers_by_image().unwrap()[&id].len(), 3);
    let du = s.disk_usage().unwrap();
    assert_eq!((du.containers.total, du.containers.active), (3, 1));
    assert!(du.containers.reclaimable > 0 && du.containers.reclaimable < du.containers.size);
}

#[test]
fn prune_removes_what_dead_processes_left_and_check_sees_links() {
    let (_t, s) = store();
    let a = import(&s, &[("x", "1")], "x");
    s.release();
    let tmp = s.root().join("tmp");
    // A dead process's staging: a lock file nobody holds, and its directory.
    fs_err::write(tmp.join("999-dead.lock"), "").unwrap();
    fs_err::create_dir_all(tmp.join("999-dead/layer/sub")).unwrap();
    fs_err::write(tmp.join("999-dead/layer/sub/f"), "partial").unwrap();
    // A directory whose lock file is gone.
    fs_err::create_dir(tmp.join("998-orphan")).unwrap();
    // A live staging stays.
    let live = s.staging().unwrap();
    let rep = s.check().unwrap();
    assert!(rep.problems.is_empty(), "{rep:?}");
    assert_eq!(rep.garbage.len(), 1, "{rep:?}");
    let pr = s.prune(false).unwrap();
    assert_eq!(pr.temp_entries, 2);
    let mut left: Vec<String> = fs_err::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(live.path().exists());
    // A broken short link is damage: overlay mounts go through it.
    let d = s.config(&a).unwrap().rootfs.diff_ids[0].clone();
    let link = s.root().join(s.short_link(&d));
    fs_err::remove_file(&link).unwrap();
    let rep = s.check().unwrap();
    assert_eq!(rep.problems.len(), 1, "{rep:?}");
}

#[test]
fn finish_image_records_the_format_and_old_records_default_to_oci() {
    use config::ManifestFormat;
    let (_t, s) = store();
    let a = import(&s, &[("f", "x")], "");
    let record = |s: &Store| s.index().unwrap().images[&a].clone();
    assert_eq!(record(&s).format, None);
    assert_eq!(record(&s).manifest_format(), ManifestFormat::Oci);
    let tag = Reference::parse("app:2").unwrap();
    s.finish_image(&a, ManifestFormat::Docker, std::slice::from_ref(&tag))
        .unwrap();
    assert_eq!(s.resolve("app:2").unwrap(), a);
    assert_eq!(record(&s).manifest_format(), ManifestFormat::Docker);
    let json = fs_err::read_to_string(s.root().join("images/index.json")).unwrap();
    assert!(json.contains(r#""format": "docker""#), "{json}");
    // The last build or commit of the same image id decides.
    s.finish_image(&a, ManifestFormat::Oci, &[]).unwrap();
    assert_eq!(record(&s).format, Some(ManifestFormat::Oci));
    // A record written before the field existed still reads.
    let old: ImageRecord =
        serde_json::from_str(r#"{"added":"2024-01-01T00:00:00Z","repo_digests":[]}"#).unwrap();
    assert_eq!(old.format, None);
    let missing = ImageId(crate::digest::Digest::of(b"none"));
    assert!(matches!(
        s.finish_image(&missing, ManifestFormat::Oci, &[]),
        Err(StoreError::ImageNotFound { .. })
    ));
}

/// An image tagged `child` on `base`, one layer more.
fn child_of(s: &Store, base: &ImageId) -> ImageId {
    let staging = s.staging().unwrap();
    let (layer, _) = s
        .prepare_layer_tar(&staging, &layer_tar(&[("app", "app")])[..], None)
        .unwrap();
    let mut config = s.config(base).unwrap();
    config.rootfs.diff_ids.push(layer.diff_id().clone());
    let bytes = config::to_canonical_json(&config).unwrap();
    s.commit_image(
        vec![layer],
        &bytes,
        &[Reference::parse("child").unwrap()],
        Some(base.clone()),
    )
    .unwrap()
}

#[test]
fn an_image_with_children_is_only_untagged() {
    let (_t, s) = store();
    let base = import(&s, &[("bin/sh", "shell")], "base");
    let child = child_of(&s, &base);
    // By id: refused, even forced.
    for force in [false, true] {
        assert!(matches!(
            s.remove_image(base.short(), force, true),
            Err(StoreError::HasChildren { .. })
        ));
    }
    // By its tag: untagged, kept.
    let ev = s.remove_image("base", false, true).unwrap();
    assert_eq!(ev, vec![RemoveEvent::Untagged("base:latest".into())]);
    assert_eq!(s.resolve(&base.to_string()).unwrap(), base);
    assert_eq!(s.lowerdirs(&child).unwrap().len(), 2);
    let rep = s.check().unwrap();
    assert!(rep.problems.is_empty(), "{rep:?}");
    // The child goes, and with it the parent it left untagged (Docker's
    // rmi: `Deleted:` for each); with --no-prune the parent stays.
    let ev = s.remove_image("child", false, true).unwrap();
    let deleted: Vec<&RemoveEvent> = ev
        .iter()
        .filter(|e| matches!(e, RemoveEvent::Deleted(_)))
        .collect();
    assert_eq!(deleted[0], &RemoveEvent::Deleted(child.0.clone()));
    assert_eq!(deleted[1], &RemoveEvent::Deleted(base.0.clone()));
    assert!(s.resolve(&base.to_string()).is_err());
    let rep = s.check().unwrap();
    assert!(rep.problems.is_empty(), "{rep:?}");
}

#[test]
fn rmi_no_prune_keeps_untagged_parents() {
    let (_t, s) = store();
    let base = import(&s, &[("bin/sh", "shell")], "base");
    child_of(&s, &base);
    s.remove_image("base", false, true).unwrap();
    s.remove_image("child", false, false).unwrap();
    assert_eq!(s.resolve(&base.to_string()).unwrap(), base);
}

#[test]
fn gc_keeps_what_a_live_process_holds_and_forgets_a_dead_ones() {
    let (_t, s) = store();
    let a = import(&s, &[("a", "1")], "a");
    let b = import(&s, &[("b", "2")], "b");
    let layer_of = |id: &ImageId| s.config(id).unwrap().rootfs.diff_ids[0].clone();
    let (la, lb) = (layer_of(&a), layer_of(&b));
    s.release();
    // Held: image `a` as a build's base, `b`'s layer as a pull's reuse.
    s.hold(std::slice::from_ref(&a), std::slice::from_ref(&lb))
        .unwrap();
    let pr = s.prune(true).unwrap();
    assert_eq!(pr.images, vec![b.clone()], "a held image was pruned");
    assert!(s.has_layer(&la) && s.has_blob(a.digest()));
    assert!(s.has_layer(&lb), "a held layer was collected");
    // rmi of the held image untags it; its config and layers stay.
    s.remove_image("a", true, true).unwrap();
    assert!(s.has_layer(&la) && s.has_blob(a.digest()));
    // A held image that is gone resolves as missing.
    assert!(matches!(
        s.resolve_held("b"),
        Err(StoreError::ImageNotFound { .. })
    ));
    // The process is gone (its hold released, as its death frees its
    // staging lock): the next GC takes all.
    s.release();
    s.prune(true).unwrap();
    assert!(!s.has_layer(&la) && !s.has_layer(&lb));
    let rep = s.check().unwrap();
    assert!(rep.problems.is_empty() && rep.garbage.is_empty(), "{rep:?}");
}
