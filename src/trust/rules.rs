//! The rules, judged on every step of a walk: who may own a file, folder or link, and which
//! write bits are refused (a sticky folder and a read-only filesystem excused).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::walk::{Step, Walk};
use super::{PathKind, TrustError, on_read_only_fs};

/// The write bits of a file's group and of others.
const GROUP_OTHER_WRITE: u32 = 0o022;
/// The sticky bit: in such a folder, only an entry's owner can rename or remove it.
const STICKY: u32 = 0o1000;

/// What is wrong with one step, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Owned by someone other than root and the effective uid.
    Owner,
    /// Writable by group or others.
    Mode,
}

/// The rules, on the facts about one step: its owner, its mode, and whether it is on a
/// read-only filesystem (only asked for when it has write bits for group or others).
fn fault(kind: PathKind, uid: u32, mode: u32, euid: u32, read_only: bool) -> Option<Fault> {
    if uid != 0 && uid != euid {
        return Some(Fault::Owner);
    }
    let sticky_folder = kind == PathKind::Folder && mode & STICKY != 0;
    let writable = mode & GROUP_OTHER_WRITE != 0;
    if kind != PathKind::Link && writable && !sticky_folder && !read_only {
        return Some(Fault::Mode);
    }
    None
}

/// Judges one step by [`fault`], and words the refusal.
fn judge(step: &Step, what: &str, euid: u32, in_volume: bool) -> Result<(), TrustError> {
    let uid = step.meta.uid();
    let mode = step.meta.mode() & 0o7777;
    // A link's own filesystem is its folder's (statvfs would follow it).
    let fs_path = match step.kind {
        PathKind::Link => step.path.parent().unwrap_or(Path::new("/")),
        PathKind::File | PathKind::Folder => &step.path,
    };
    let read_only =
        step.kind != PathKind::Link && mode & GROUP_OTHER_WRITE != 0 && on_read_only_fs(fs_path);
    let Some(fault) = fault(step.kind, uid, mode, euid, read_only) else {
        return Ok(());
    };
    let kubernetes = in_volume || read_only || on_read_only_fs(fs_path);
    let path = step.path.clone();
    let what = what.to_owned();
    Err(match fault {
        Fault::Owner => TrustError::Owner {
            path,
            kind: step.kind,
            what,
            uid,
            euid,
            kubernetes,
        },
        Fault::Mode => TrustError::Mode {
            path,
            kind: step.kind,
            what,
            mode,
            kubernetes,
        },
    })
}

pub(super) fn check_file(path: &Path, what: &str) -> Result<(), TrustError> {
    let abs = std::path::absolute(path).map_err(|error| TrustError::Io {
        path: path.to_owned(),
        what: what.to_owned(),
        error,
        kubernetes: false,
    })?;
    let mut walk = Walk::default();
    let stopped = walk.run(&abs).err();
    let euid = rustix::process::geteuid().as_raw();
    // The file first, then the folders and links above it, nearest first.
    for step in walk.steps.iter().rev() {
        judge(step, what, euid, walk.in_kubernetes_volume(&step.path))?;
    }
    match stopped {
        None => Ok(()),
        Some((path, error)) => {
            let kubernetes =
                walk.in_kubernetes_volume(&path) || path.parent().is_some_and(on_read_only_fs);
            Err(TrustError::Io {
                path,
                what: what.to_owned(),
                error,
                kubernetes,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_rules_on_owner_mode_and_read_only_filesystems() {
        use PathKind::{File, Folder, Link};
        // Root's and ours are fine; anyone else's is not, read-only or not.
        assert_eq!(fault(File, 0, 0o600, 1000, false), None);
        assert_eq!(fault(File, 1000, 0o600, 1000, false), None);
        assert_eq!(fault(File, 1001, 0o600, 1000, false), Some(Fault::Owner));
        assert_eq!(fault(File, 1001, 0o400, 1000, true), Some(Fault::Owner));
        assert_eq!(fault(Folder, 1001, 0o755, 1000, true), Some(Fault::Owner));
        assert_eq!(fault(Link, 1001, 0o777, 1000, false), Some(Fault::Owner));
        // Write bits for group or others, unless read-only.
        assert_eq!(fault(File, 0, 0o644, 0, false), None);
        assert_eq!(fault(File, 0, 0o664, 0, false), Some(Fault::Mode));
        assert_eq!(fault(File, 0, 0o646, 0, false), Some(Fault::Mode));
        assert_eq!(fault(File, 0, 0o664, 0, true), None);
        assert_eq!(fault(Folder, 0, 0o775, 0, false), Some(Fault::Mode));
        assert_eq!(fault(Folder, 0, 0o2775, 0, true), None);
        // Sticky folders are fine; a sticky bit on a file means nothing.
        assert_eq!(fault(Folder, 0, 0o1777, 0, false), None);
        assert_eq!(fault(Folder, 0, 0o777, 0, false), Some(Fault::Mode));
        assert_eq!(fault(File, 0, 0o1666, 0, false), Some(Fault::Mode));
        // A link's mode means nothing.
        assert_eq!(fault(Link, 0, 0o777, 0, false), None);
    }
}
