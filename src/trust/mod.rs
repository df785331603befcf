//! Who may have planted or changed a file: the checks gobuildkey makes before it trusts the
//! master secret or the policy (whose `command` it runs), in the manner of OpenSSH's
//! `StrictModes`.
//!
//! [`check_file`] refuses a file that anyone but root and the user running gobuildkey (its
//! effective uid) could have written, or could replace:
//!
//! 1. The file (what the path leads to once every symbolic link is followed) must be owned
//!    by root or by the effective uid, and must not be writable by its group or by others
//!    (no bit of 0o022). Who may *read* it is not checked here.
//! 2. Every folder on the way to it, from `/` down, must be owned by root or by the
//!    effective uid, and must not be writable by its group or by others. A sticky folder
//!    (mode 1777, like `/tmp`) is accepted although anyone can write it, since nobody can
//!    rename or remove what others made in it; only that one folder is excused: the
//!    folders above it are checked, and what is in it must still be owned by root or by
//!    the effective uid.
//! 3. The path is resolved one name at a time, as the kernel does. Every symbolic link met
//!    must itself be owned by root or by the effective uid (its mode means nothing), and
//!    the folders of each link's own location and of where it leads are all checked. So
//!    the Kubernetes layout of a Secret or ConfigMap volume (`policy.toml ->
//!    ..data/policy.toml`, `..data -> ..2026_11_29_...`) is checked all the way through. A
//!    `..` goes up from wherever the kernel would be (after a link, from the folder the
//!    link led to), so a path with `..` in it is checked where it really leads.
//! 4. On a read-only filesystem ([`on_read_only_fs`]) nobody can write, so write bits are
//!    accepted there, for the file and for each folder that is itself on a read-only
//!    filesystem. The owner rules still hold.
//!
//! When a refusal is about something in a Kubernetes volume (at or below a folder holding
//! `..data`) or on a read-only filesystem, its message names the Kubernetes settings to
//! change (`defaultMode`, `fsGroup`, `runAsUser`, `readOnly`) rather than `chmod` or `chown`,
//! which do not last there. Messages name paths, uids and modes, never a file's content.
//!
//! Not checked: access control lists, and what a read-only mount hides (a read-only bind
//! mount of a folder that others can write elsewhere is accepted as read-only).
//!
//! On platforms other than unix there are no owners or mode bits to check: [`check_file`]
//! accepts every path and [`on_read_only_fs`] answers `false`.
//!
//! Where each part lives: the entry points, in this file ([`check_file`], [`on_read_only_fs`],
//! [`in_mounted_volume`]); `walk` (resolving a path as the kernel does), `rules` (the rules
//! on each step, and judging a walk by them), `error` ([`TrustError`] and the words of each
//! refusal).

mod error;
#[cfg(unix)]
mod rules;
#[cfg(all(test, unix))]
mod tests;
#[cfg(unix)]
mod walk;

use std::path::Path;

pub use error::{PathKind, TrustError};

/// Checks that nobody but root and the current effective user could have written `path`
/// or could replace it.
///
/// `what` names the file in messages, as a noun with its article: `"the master"`,
/// `"the policy"`. The rules are those of the [module](self): the file and every folder and
/// link on the way to it must be owned by root or by the effective uid, and the file and
/// the folders must not be writable by group or others, except a sticky folder such as
/// `/tmp` and anything on a read-only filesystem.
///
/// On platforms other than unix this accepts every path.
///
/// ```
/// use gobuildkey::trust::check_file;
///
/// let dir = tempfile::tempdir()?;
/// let policy = dir.path().join("gobuildkey.toml");
/// std::fs::write(&policy, "")?;
/// # #[cfg(unix)] {
/// use std::fs::{Permissions, set_permissions};
/// use std::os::unix::fs::PermissionsExt;
///
/// set_permissions(&policy, Permissions::from_mode(0o644))?;
/// check_file(&policy, "the policy")?;
///
/// // Writable by its group: anyone in that group could change the policy's `command`.
/// set_permissions(&policy, Permissions::from_mode(0o664))?;
/// let refusal = check_file(&policy, "the policy").unwrap_err();
/// assert_eq!(refusal.path(), policy);
/// assert!(refusal.to_string().contains(&format!("run `chmod go-w {}`", policy.display())));
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`TrustError`] naming the file, folder or link refused and the command (or Kubernetes
/// setting) that fixes it, or what failed when a path on the way could not be looked at.
pub fn check_file(path: &Path, what: &str) -> Result<(), TrustError> {
    #[cfg(unix)]
    {
        rules::check_file(path, what)
    }
    #[cfg(not(unix))]
    {
        let _ = (path, what);
        Ok(())
    }
}

/// Whether what `path` leads to is on a filesystem mounted read-only, as Kubernetes mounts
/// Secret and ConfigMap volumes into containers: nobody can write anything there, whatever
/// the mode bits say.
///
/// Answers `false` when it cannot tell (e.g. the path does not exist), and on platforms
/// other than unix.
///
/// ```
/// use std::path::Path;
/// use gobuildkey::trust::on_read_only_fs;
///
/// assert!(!on_read_only_fs(Path::new("/no/such/gobuildkey/path")));
/// ```
#[must_use]
pub fn on_read_only_fs(path: &Path) -> bool {
    #[cfg(unix)]
    {
        rustix::fs::statvfs(path)
            .is_ok_and(|fs| fs.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// Whether `path` is a file of a mounted volume whose modes are set by its mount, not by
/// `chmod`: on a read-only filesystem, or in a Kubernetes Secret or ConfigMap volume (a
/// `..data` link beside it, or a timestamped `..2026_…` folder on the way to it). Refusals
/// of such a file name the volume's `defaultMode` and `fsGroup` instead of `chmod`.
///
/// ```
/// use std::path::Path;
/// use gobuildkey::trust::in_mounted_volume;
///
/// assert!(!in_mounted_volume(Path::new("/no/such/gobuildkey/path")));
/// ```
#[must_use]
pub fn in_mounted_volume(path: &Path) -> bool {
    let beside_data = path
        .parent()
        .is_some_and(|dir| std::fs::symlink_metadata(dir.join("..data")).is_ok());
    let through_timestamp = std::fs::canonicalize(path).is_ok_and(|real| {
        real.components().any(|c| {
            c.as_os_str()
                .to_str()
                .is_some_and(|name| name.starts_with("..") && name.len() > 2)
        })
    });
    beside_data || through_timestamp || on_read_only_fs(path)
}
