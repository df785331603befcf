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

use std::io;
use std::path::{Path, PathBuf};

/// The write bits of a file's group and of others.
#[cfg(unix)]
const GROUP_OTHER_WRITE: u32 = 0o022;
/// The sticky bit: in such a folder, only an entry's owner can rename or remove it.
#[cfg(unix)]
const STICKY: u32 = 0o1000;
/// How many symbolic links one path may go through, as Linux allows.
#[cfg(unix)]
const MAX_LINKS: usize = 40;

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
        unix::check_file(path, what)
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

/// What a path that [`check_file`] refused is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// The file itself: what the path leads to once every link is followed.
    File,
    /// A folder on the way to the file.
    Folder,
    /// A symbolic link on the way to the file (or the path itself, when it is a link).
    Link,
}

/// Why [`check_file`] refused a file. Never carries the file's content.
///
/// Each message says what was found and the command that fixes it; with `kubernetes` set
/// (the path is in a Kubernetes volume or on a read-only filesystem) it names the
/// Kubernetes settings to change instead.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The file, a folder on the way to it, or a link on the way is owned by someone other
    /// than root and the effective uid, who could change it or could have planted it.
    #[error("{}", owner_message(.path, *.kind, .what, *.uid, *.euid, *.kubernetes))]
    Owner {
        /// The file, folder or link with the wrong owner.
        path: PathBuf,
        /// Which of the three it is.
        kind: PathKind,
        /// What was being checked, e.g. "the policy".
        what: String,
        /// Its owner.
        uid: u32,
        /// The effective uid gobuildkey runs as.
        euid: u32,
        /// Whether it is in a Kubernetes volume or on a read-only filesystem.
        kubernetes: bool,
    },
    /// The file or a folder on the way to it is writable by its group or by others.
    #[error("{}", mode_message(.path, *.kind, .what, *.mode, *.kubernetes))]
    Mode {
        /// The file or folder that others can write.
        path: PathBuf,
        /// Which of the two it is ([`PathKind::File`] or [`PathKind::Folder`]).
        kind: PathKind,
        /// What was being checked, e.g. "the policy".
        what: String,
        /// Its permission bits (`0o7777` of its mode).
        mode: u32,
        /// Whether it is in a Kubernetes volume.
        kubernetes: bool,
    },
    /// A path on the way could not be looked at: it is missing, a folder cannot be
    /// searched, links go round in a loop, ...
    #[error("{}", io_message(.path, .what, .error, *.kubernetes))]
    Io {
        /// The path that could not be looked at.
        path: PathBuf,
        /// What was being checked, e.g. "the policy".
        what: String,
        /// What the system said.
        error: io::Error,
        /// Whether it is in a Kubernetes volume or on a read-only filesystem.
        kubernetes: bool,
    },
}

impl TrustError {
    /// The file, folder or link the refusal is about.
    ///
    /// ```
    /// use std::path::Path;
    /// use gobuildkey::trust::check_file;
    ///
    /// let missing = Path::new("/no/such/gobuildkey.toml");
    /// # #[cfg(unix)]
    /// assert_eq!(check_file(missing, "the policy").unwrap_err().path(), Path::new("/no"));
    /// ```
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            Self::Owner { path, .. } | Self::Mode { path, .. } | Self::Io { path, .. } => path,
        }
    }
}

/// How a message names what it is about: "the policy /etc/farm/gobuildkey.toml", "the
/// folder /etc/farm above the policy".
fn subject(path: &Path, kind: PathKind, what: &str) -> String {
    match kind {
        PathKind::File => format!("{what} {}", path.display()),
        PathKind::Folder => format!("the folder {} above {what}", path.display()),
        PathKind::Link => format!("the link {} on the way to {what}", path.display()),
    }
}

/// A path as a shell word, quoted when it has to be, for the commands messages suggest.
fn shell_word(path: &Path) -> String {
    let text = path.to_string_lossy();
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%=".contains(c));
    if plain {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The message of [`TrustError::Owner`].
fn owner_message(
    path: &Path,
    kind: PathKind,
    what: &str,
    uid: u32,
    euid: u32,
    kubernetes: bool,
) -> String {
    let subject = subject(path, kind, what);
    let harm = match kind {
        PathKind::File => "whoever owns it can change it".to_owned(),
        PathKind::Folder => format!("whoever owns it can replace {what}"),
        PathKind::Link => "whoever owns it may have planted it".to_owned(),
    };
    let found = format!("{subject} is owned by uid {uid}, not by root or you (uid {euid}): {harm}");
    if kubernetes {
        return format!(
            "{found}: it is in a Kubernetes volume (or on another read-only filesystem), where \
             `chown` does not help: run gobuildkey as uid {uid} (`securityContext.runAsUser: \
             {uid}`), or let the kubelet make the volume's files, owned by root (the pod's \
             `securityContext.fsGroup` sets who else may read them)"
        );
    }
    let word = shell_word(path);
    let fix = match kind {
        PathKind::Link => format!("check where it leads, then run `chown -h {euid} {word}`"),
        PathKind::File | PathKind::Folder => format!("run `chown {euid} {word}`"),
    };
    format!("{found}: {fix} (or run gobuildkey as uid {uid})")
}

/// The message of [`TrustError::Mode`].
fn mode_message(path: &Path, kind: PathKind, what: &str, mode: u32, kubernetes: bool) -> String {
    let subject = subject(path, kind, what);
    let harm = match kind {
        PathKind::Folder => format!("whoever can write it can replace {what}"),
        PathKind::File | PathKind::Link => format!("whoever can write it can change {what}"),
    };
    let found = format!(
        "{subject} is writable by group or others (mode {:04o}): {harm}",
        mode & 0o7777
    );
    if !kubernetes {
        return format!("{found}: run `chmod go-w {}`", shell_word(path));
    }
    match kind {
        PathKind::Folder => format!(
            "{found}: it is in a Kubernetes volume, where `chmod` does not last: mount the \
             volume read-only (`readOnly: true` in the container's `volumeMounts`), or drop \
             `fsGroup` from the pod's `securityContext` (on a writable volume it makes the \
             folders group-writable)"
        ),
        PathKind::File | PathKind::Link => format!(
            "{found}: it is in a Kubernetes volume, where `chmod` does not last: set the \
             volume's `defaultMode` (or the item's `mode`) to 0400, or to 0440 with the pod's \
             `securityContext.fsGroup` if another user must read it, and mount the volume \
             read-only (`readOnly: true` in the container's `volumeMounts`)"
        ),
    }
}

/// The message of [`TrustError::Io`].
fn io_message(path: &Path, what: &str, error: &io::Error, kubernetes: bool) -> String {
    let found = format!(
        "cannot look at {} to check who can change {what}: {error}",
        path.display()
    );
    if kubernetes {
        format!(
            "{found}: it is in a Kubernetes volume: check the volume's `defaultMode` and the \
             pod's `securityContext.runAsUser` and `securityContext.fsGroup`"
        )
    } else {
        found
    }
}

#[cfg(unix)]
mod unix {
    //! The checks themselves: resolve the path name by name, then judge every step.

    use std::collections::VecDeque;
    use std::ffi::OsString;
    use std::fs::{self, Metadata};
    use std::io;
    use std::os::unix::fs::MetadataExt;
    use std::path::{Component, Path, PathBuf};

    use super::{GROUP_OTHER_WRITE, MAX_LINKS, PathKind, STICKY, TrustError, on_read_only_fs};

    /// What is wrong with one step, if anything.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum Fault {
        /// Owned by someone other than root and the effective uid.
        Owner,
        /// Writable by group or others.
        Mode,
    }

    /// The rules, on the facts about one step: its owner, its mode, and whether it is on a
    /// read-only filesystem (only asked for when it has write bits for group or others).
    pub(super) fn fault(
        kind: PathKind,
        uid: u32,
        mode: u32,
        euid: u32,
        read_only: bool,
    ) -> Option<Fault> {
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

    /// One file, folder or link met while resolving the path, with its own metadata (not
    /// followed).
    struct Step {
        path: PathBuf,
        kind: PathKind,
        meta: Metadata,
    }

    /// Everything met while resolving a path, and where it stopped if it could not finish.
    #[derive(Default)]
    struct Walk {
        steps: Vec<Step>,
        /// The folders that hold a `..data` entry: the roots of Kubernetes volumes.
        kubernetes_roots: Vec<PathBuf>,
    }

    /// Puts the names of `path` in front of those still to resolve, `..` included; `/`
    /// and `.` name nothing.
    fn push_front(pending: &mut VecDeque<OsString>, path: &Path) {
        let names: Vec<OsString> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(name) => Some(name.to_owned()),
                Component::ParentDir => Some(OsString::from("..")),
                Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
            })
            .collect();
        for name in names.into_iter().rev() {
            pending.push_front(name);
        }
    }

    fn look(path: &Path) -> Result<Metadata, (PathBuf, io::Error)> {
        fs::symlink_metadata(path).map_err(|e| (path.to_owned(), e))
    }

    impl Walk {
        /// Resolves the absolute path `abs` as the kernel would, recording each folder
        /// searched, each link followed and the file it ends at.
        fn run(&mut self, abs: &Path) -> Result<(), (PathBuf, io::Error)> {
            let root = PathBuf::from("/");
            let meta = look(&root)?;
            self.steps.push(Step {
                path: root.clone(),
                kind: PathKind::Folder,
                meta,
            });
            let mut pending = VecDeque::new();
            push_front(&mut pending, abs);
            // Always a real folder, reached without links: its `..` is its parent.
            let mut current = root.clone();
            let mut links = 0;
            while let Some(name) = pending.pop_front() {
                if name == ".." {
                    current.pop();
                    continue;
                }
                let candidate = current.join(&name);
                let meta = look(&candidate)?;
                if name == "..data" {
                    self.kubernetes_roots.push(current.clone());
                }
                if meta.file_type().is_symlink() {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err((candidate, rustix::io::Errno::LOOP.into()));
                    }
                    let target = fs::read_link(&candidate).map_err(|e| (candidate.clone(), e))?;
                    if target.as_os_str().is_empty() {
                        return Err((candidate, io::ErrorKind::NotFound.into()));
                    }
                    self.steps.push(Step {
                        path: candidate,
                        kind: PathKind::Link,
                        meta,
                    });
                    if target.has_root() {
                        current.clone_from(&root);
                    }
                    push_front(&mut pending, &target);
                } else if pending.is_empty() {
                    self.steps.push(Step {
                        path: candidate,
                        kind: PathKind::File,
                        meta,
                    });
                    return Ok(());
                } else if meta.is_dir() {
                    self.steps.push(Step {
                        path: candidate.clone(),
                        kind: PathKind::Folder,
                        meta,
                    });
                    current = candidate;
                } else {
                    return Err((candidate, rustix::io::Errno::NOTDIR.into()));
                }
            }
            // The path (or the last link) ended in `..` or at `/`: it names the folder
            // reached, which is then judged as the file.
            let meta = look(&current)?;
            self.steps.push(Step {
                path: current,
                kind: PathKind::File,
                meta,
            });
            Ok(())
        }

        fn in_kubernetes_volume(&self, path: &Path) -> bool {
            self.kubernetes_roots
                .iter()
                .any(|root| path.starts_with(root))
        }
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
        let read_only = step.kind != PathKind::Link
            && mode & GROUP_OTHER_WRITE != 0
            && on_read_only_fs(fs_path);
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
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::fs::{self, Permissions};
    use std::os::unix::fs::{PermissionsExt, chown, lchown, symlink};
    use std::path::{Path, PathBuf};

    use super::unix::{Fault, fault};
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

    #[test]
    fn read_only_and_kubernetes_owner_messages_name_the_kubernetes_settings() {
        let err = TrustError::Owner {
            path: PathBuf::from("/etc/farm/..2026_11_29/master.key"),
            kind: PathKind::File,
            what: "the master".to_owned(),
            uid: 1001,
            euid: 1000,
            kubernetes: true,
        };
        let message = err.to_string();
        assert!(
            message.starts_with(
                "the master /etc/farm/..2026_11_29/master.key is owned by uid 1001, not by \
                 root or you (uid 1000): whoever owns it can change it: "
            ),
            "{message}"
        );
        assert!(
            message.contains("`securityContext.runAsUser: 1001`"),
            "{message}"
        );
        assert!(message.contains("`securityContext.fsGroup`"), "{message}");
        assert!(!message.contains("run `chown"), "{message}");
    }

    #[test]
    fn messages_quote_paths_the_shell_would_split() {
        let err = TrustError::Mode {
            path: PathBuf::from("/srv/my farm/it's.toml"),
            kind: PathKind::File,
            what: "the policy".to_owned(),
            mode: 0o666,
            kubernetes: false,
        };
        assert!(
            err.to_string()
                .ends_with(r"run `chmod go-w '/srv/my farm/it'\''s.toml'`"),
            "{err}"
        );
    }

    #[test]
    fn io_messages_in_kubernetes_name_the_settings() {
        let err = TrustError::Io {
            path: PathBuf::from("/etc/farm/..data"),
            what: "the master".to_owned(),
            error: std::io::ErrorKind::PermissionDenied.into(),
            kubernetes: true,
        };
        let message = err.to_string();
        assert!(
            message.starts_with(
                "cannot look at /etc/farm/..data to check who can change the master: "
            ),
            "{message}"
        );
        assert!(message.contains("`defaultMode`"), "{message}");
        assert!(message.contains("`securityContext.runAsUser`"), "{message}");
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
}
