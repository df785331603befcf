//! The checks on real files, folders and links: what passes, what is refused, and the words.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::{self, Permissions};
use std::os::unix::fs::{PermissionsExt, chown, lchown, symlink};
use std::path::{Path, PathBuf};

use super::{PathKind, TrustError, check_file, on_read_only_fs};

/// Another user, for the files and folders these tests hand over.
const OTHER: u32 = 65534;

/// Whether files can be handed to another user; tests that need it say so and pass
/// when not run as root.
fn can_chown() -> bool {
    let root = rustix::process::geteuid().is_root();
    if !root {
        eprintln!("skipped: needs root to chown");
    }
    root
}

fn folder(path: &Path, mode: u32) -> PathBuf {
    fs::create_dir(path).unwrap();
    fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
    path.to_owned()
}

fn file(path: &Path, mode: u32) -> PathBuf {
    fs::write(path, "command = \"true\"\n").unwrap();
    fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
    path.to_owned()
}

fn give_away(path: &Path) {
    chown(path, Some(OTHER), None).unwrap();
}

/// A private folder (0700) in a fresh temporary folder, and in it a good policy.
fn good_layout() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = folder(&tmp.path().join("farm"), 0o700);
    let policy = file(&dir.join("gobuildkey.toml"), 0o600);
    (tmp, dir, policy)
}

/// `err` says the folder `at` is too open, with `mode`.
fn assert_too_open_folder(err: &TrustError, mode: u32, at: &Path) {
    assert!(
        matches!(
            err,
            TrustError::Mode {
                kind: PathKind::Folder,
                mode: m,
                ..
            } if *m == mode
        ),
        "{err:?}"
    );
    assert_eq!(err.path(), at);
}

#[test]
fn a_private_file_in_a_private_folder_passes() {
    let (_tmp, _dir, policy) = good_layout();
    check_file(&policy, "the policy").unwrap();
}

#[test]
fn a_readable_file_passes() {
    // Who may read it is for other checks.
    let (_tmp, _dir, policy) = good_layout();
    fs::set_permissions(&policy, Permissions::from_mode(0o644)).unwrap();
    check_file(&policy, "the policy").unwrap();
}

#[test]
fn a_file_owned_by_another_uid_is_refused() {
    if !can_chown() {
        return;
    }
    let (_tmp, _dir, policy) = good_layout();
    give_away(&policy);
    let err = check_file(&policy, "the policy").unwrap_err();
    assert!(
        matches!(
            err,
            TrustError::Owner {
                kind: PathKind::File,
                uid: OTHER,
                kubernetes: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.path(), policy);
    let p = policy.display();
    assert_eq!(
        err.to_string(),
        format!(
            "the policy {p} is owned by uid 65534, not by root or you (uid 0): whoever \
             owns it can change it: run `chown 0 {p}` (or run gobuildkey as uid 65534)"
        )
    );
}

#[test]
fn a_group_writable_file_is_refused() {
    let (_tmp, _dir, policy) = good_layout();
    fs::set_permissions(&policy, Permissions::from_mode(0o620)).unwrap();
    let err = check_file(&policy, "the policy").unwrap_err();
    assert!(
        matches!(
            err,
            TrustError::Mode {
                kind: PathKind::File,
                mode: 0o620,
                kubernetes: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.path(), policy);
    let p = policy.display();
    assert_eq!(
        err.to_string(),
        format!(
            "the policy {p} is writable by group or others (mode 0620): whoever can \
             write it can change the policy: run `chmod go-w {p}`"
        )
    );
}

#[test]
fn an_other_writable_file_is_refused() {
    let (_tmp, _dir, master) = good_layout();
    fs::set_permissions(&master, Permissions::from_mode(0o602)).unwrap();
    let err = check_file(&master, "the master").unwrap_err();
    assert!(err.to_string().starts_with("the master "), "{err}");
    assert!(err.to_string().contains("(mode 0602)"), "{err}");
}

#[test]
fn a_group_writable_folder_is_refused() {
    let (_tmp, dir, policy) = good_layout();
    fs::set_permissions(&dir, Permissions::from_mode(0o770)).unwrap();
    let err = check_file(&policy, "the policy").unwrap_err();
    assert_too_open_folder(&err, 0o770, &dir);
    let d = dir.display();
    assert_eq!(
        err.to_string(),
        format!(
            "the folder {d} above the policy is writable by group or others (mode \
             0770): whoever can write it can replace the policy: run `chmod go-w {d}`"
        )
    );
}

#[test]
fn a_folder_owned_by_another_uid_is_refused() {
    if !can_chown() {
        return;
    }
    let (_tmp, dir, policy) = good_layout();
    give_away(&dir);
    let err = check_file(&policy, "the policy").unwrap_err();
    assert!(
        matches!(
            err,
            TrustError::Owner {
                kind: PathKind::Folder,
                uid: OTHER,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.path(), dir);
    let d = dir.display();
    assert_eq!(
        err.to_string(),
        format!(
            "the folder {d} above the policy is owned by uid 65534, not by root or you \
             (uid 0): whoever owns it can replace the policy: run `chown 0 {d}` (or run \
             gobuildkey as uid 65534)"
        )
    );
}

#[test]
fn a_folder_high_above_is_checked_too() {
    let tmp = tempfile::tempdir().unwrap();
    let top = folder(&tmp.path().join("top"), 0o777);
    let mid = folder(&top.join("mid"), 0o700);
    let policy = file(&mid.join("gobuildkey.toml"), 0o600);
    let err = check_file(&policy, "the policy").unwrap_err();
    assert_eq!(err.path(), top);
}

#[test]
fn a_sticky_folder_is_accepted_but_a_world_writable_one_is_not() {
    let tmp = tempfile::tempdir().unwrap();
    let sticky = folder(&tmp.path().join("sticky"), 0o1777);
    let inner = folder(&sticky.join("farm"), 0o700);
    let policy = file(&inner.join("gobuildkey.toml"), 0o600);
    check_file(&policy, "the policy").unwrap();
    let direct = file(&sticky.join("direct.toml"), 0o600);
    check_file(&direct, "the policy").unwrap();

    let open = folder(&tmp.path().join("open"), 0o777);
    let inner = folder(&open.join("farm"), 0o700);
    let policy = file(&inner.join("gobuildkey.toml"), 0o600);
    let err = check_file(&policy, "the policy").unwrap_err();
    assert_too_open_folder(&err, 0o777, &open);
}

#[test]
fn a_sticky_folder_excuses_only_itself() {
    if !can_chown() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sticky = folder(&tmp.path().join("sticky"), 0o1777);
    let planted = file(&sticky.join("gobuildkey.toml"), 0o600);
    give_away(&planted);
    let err = check_file(&planted, "the policy").unwrap_err();
    assert_eq!(err.path(), planted);

    let above = folder(&tmp.path().join("above"), 0o770);
    let sticky = folder(&above.join("sticky"), 0o1777);
    let policy = file(&sticky.join("gobuildkey.toml"), 0o600);
    let err = check_file(&policy, "the policy").unwrap_err();
    assert_eq!(err.path(), above);
}

#[test]
fn a_link_into_a_bad_folder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let good = folder(&tmp.path().join("good"), 0o700);
    let bad = folder(&tmp.path().join("bad"), 0o770);
    let real = file(&bad.join("gobuildkey.toml"), 0o600);
    let link = good.join("gobuildkey.toml");
    symlink(&real, &link).unwrap();
    let err = check_file(&link, "the policy").unwrap_err();
    assert!(
        matches!(
            err,
            TrustError::Mode {
                kind: PathKind::Folder,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.path(), bad);

    // The same, by a relative link.
    let relative = good.join("relative.toml");
    symlink("../bad/gobuildkey.toml", &relative).unwrap();
    assert_eq!(check_file(&relative, "the policy").unwrap_err().path(), bad);

    // And a good target is fine.
    fs::set_permissions(&bad, Permissions::from_mode(0o755)).unwrap();
    check_file(&link, "the policy").unwrap();
    check_file(&relative, "the policy").unwrap();
}

#[test]
fn a_link_in_a_world_writable_folder_is_refused_though_its_target_is_good() {
    let tmp = tempfile::tempdir().unwrap();
    let good = folder(&tmp.path().join("good"), 0o700);
    let real = file(&good.join("gobuildkey.toml"), 0o600);
    let open = folder(&tmp.path().join("open"), 0o777);
    let link = open.join("gobuildkey.toml");
    symlink(&real, &link).unwrap();
    let err = check_file(&link, "the policy").unwrap_err();
    assert_too_open_folder(&err, 0o777, &open);
}

#[test]
fn a_link_planted_in_a_sticky_folder_by_another_uid_is_refused() {
    if !can_chown() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let good = folder(&tmp.path().join("good"), 0o700);
    let real = file(&good.join("gobuildkey.toml"), 0o600);
    let sticky = folder(&tmp.path().join("sticky"), 0o1777);
    let link = sticky.join("gobuildkey.toml");
    symlink(&real, &link).unwrap();
    check_file(&link, "the policy").unwrap();

    lchown(&link, Some(OTHER), None).unwrap();
    let err = check_file(&link, "the policy").unwrap_err();
    assert!(
        matches!(
            err,
            TrustError::Owner {
                kind: PathKind::Link,
                uid: OTHER,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.path(), link);
    let l = link.display();
    assert_eq!(
        err.to_string(),
        format!(
            "the link {l} on the way to the policy is owned by uid 65534, not by root or \
             you (uid 0): whoever owns it may have planted it: check where it leads, then \
             run `chown -h 0 {l}` (or run gobuildkey as uid 65534)"
        )
    );
}

/// A Kubernetes Secret or ConfigMap volume as the kubelet lays it out, in `dir`.
fn kubernetes_volume(dir: &Path) -> PathBuf {
    let data = folder(&dir.join("..2026_11_29_10_00_00.123456789"), 0o755);
    file(&data.join("policy.toml"), 0o644);
    symlink("..2026_11_29_10_00_00.123456789", dir.join("..data")).unwrap();
    let policy = dir.join("policy.toml");
    symlink("..data/policy.toml", &policy).unwrap();
    policy
}

#[test]
fn a_kubernetes_volume_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = folder(&tmp.path().join("config"), 0o755);
    let policy = kubernetes_volume(&dir);
    check_file(&policy, "the policy").unwrap();
}

#[test]
fn a_group_writable_kubernetes_folder_is_refused_in_kubernetes_terms() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = folder(&tmp.path().join("config"), 0o755);
    let policy = kubernetes_volume(&dir);
    let data = dir.join("..2026_11_29_10_00_00.123456789");
    fs::set_permissions(&data, Permissions::from_mode(0o2775)).unwrap();
    let err = check_file(&policy, "the policy").unwrap_err();
    assert!(
        matches!(
            err,
            TrustError::Mode {
                kind: PathKind::Folder,
                mode: 0o2775,
                kubernetes: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.path(), data);
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "the folder {} above the policy is writable by group or others (mode 2775)",
            data.display()
        )),
        "{message}"
    );
    assert!(message.contains("Kubernetes volume"), "{message}");
    assert!(message.contains("`readOnly: true`"), "{message}");
    assert!(message.contains("`fsGroup`"), "{message}");
    assert!(!message.contains("chmod go-w"), "{message}");
}

#[test]
fn a_group_writable_kubernetes_file_is_refused_in_kubernetes_terms() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = folder(&tmp.path().join("config"), 0o755);
    let policy = kubernetes_volume(&dir);
    let real = dir.join("..2026_11_29_10_00_00.123456789/policy.toml");
    fs::set_permissions(&real, Permissions::from_mode(0o664)).unwrap();
    let err = check_file(&policy, "the policy").unwrap_err();
    assert_eq!(err.path(), real);
    let message = err.to_string();
    assert!(message.contains("`defaultMode`"), "{message}");
    assert!(message.contains("`securityContext.fsGroup`"), "{message}");
    assert!(!message.contains("chmod go-w"), "{message}");
}

#[test]
fn a_folder_above_a_kubernetes_volume_gets_the_usual_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let above = folder(&tmp.path().join("etc"), 0o775);
    let dir = folder(&above.join("config"), 0o755);
    let policy = kubernetes_volume(&dir);
    let err = check_file(&policy, "the policy").unwrap_err();
    assert_eq!(err.path(), above);
    assert!(
        err.to_string()
            .ends_with(&format!("run `chmod go-w {}`", above.display())),
        "{err}"
    );
}

#[test]
fn dot_dot_after_a_link_is_checked_where_it_really_leads() {
    let tmp = tempfile::tempdir().unwrap();
    let good = folder(&tmp.path().join("good"), 0o700);
    file(&good.join("gobuildkey.toml"), 0o600);
    let elsewhere = folder(&tmp.path().join("elsewhere"), 0o777);
    let sub = folder(&elsewhere.join("sub"), 0o700);
    let real = file(&elsewhere.join("gobuildkey.toml"), 0o600);
    symlink(&sub, good.join("link")).unwrap();
    // As the kernel reads it: good/link/.. is elsewhere, not good.
    let path = good.join("link/../gobuildkey.toml");
    assert_eq!(fs::canonicalize(&path).unwrap(), real);
    let err = check_file(&path, "the policy").unwrap_err();
    assert_eq!(err.path(), elsewhere);

    fs::set_permissions(&elsewhere, Permissions::from_mode(0o755)).unwrap();
    check_file(&path, "the policy").unwrap();
    check_file(
        &good.join("./link/../../good/gobuildkey.toml"),
        "the policy",
    )
    .unwrap();
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let (_tmp, dir, _policy) = good_layout();
    let missing = dir.join("missing.toml");
    let err = check_file(&missing, "the policy").unwrap_err();
    assert!(matches!(err, TrustError::Io { .. }), "{err:?}");
    assert_eq!(err.path(), missing);
    assert!(
        err.to_string().starts_with(&format!(
            "cannot look at {} to check who can change the policy: ",
            missing.display()
        )),
        "{err}"
    );
}

#[test]
fn a_bad_folder_is_reported_before_a_missing_file() {
    let (_tmp, dir, _policy) = good_layout();
    fs::set_permissions(&dir, Permissions::from_mode(0o777)).unwrap();
    let err = check_file(&dir.join("missing.toml"), "the policy").unwrap_err();
    assert!(matches!(err, TrustError::Mode { .. }), "{err:?}");
    assert_eq!(err.path(), dir);
}

#[test]
fn links_in_a_loop_are_an_io_error() {
    let (_tmp, dir, _policy) = good_layout();
    symlink("b", dir.join("a")).unwrap();
    symlink("a", dir.join("b")).unwrap();
    let err = check_file(&dir.join("a"), "the policy").unwrap_err();
    assert!(matches!(err, TrustError::Io { .. }), "{err:?}");
}

#[test]
fn a_file_used_as_a_folder_is_an_io_error() {
    let (_tmp, _dir, policy) = good_layout();
    let err = check_file(&policy.join("x"), "the policy").unwrap_err();
    assert!(matches!(err, TrustError::Io { .. }), "{err:?}");
    // What is named is the file that is not a folder.
    assert_eq!(err.path(), policy);
}

#[test]
fn a_temporary_folder_is_not_read_only() {
    let (tmp, _dir, policy) = good_layout();
    assert!(!on_read_only_fs(tmp.path()));
    assert!(!on_read_only_fs(&policy));
    assert!(!on_read_only_fs(&tmp.path().join("missing")));
}

#[test]
fn a_relative_path_is_checked_from_the_working_folder() {
    // The working folder of tests is the crate's; a missing relative file there
    // is reported by its absolute path.
    let err = check_file(Path::new("no-such-gobuildkey.toml"), "the policy").unwrap_err();
    assert!(err.path().is_absolute(), "{err:?}");
}
