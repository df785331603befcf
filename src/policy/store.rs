//! The one way the policy file changes: under an exclusive lock, re-read, edited, and
//! written atomically, keeping the file's owner, group and mode.
//!
//! Several admins and a running `serve` share one policy. Each edit (revoke, rotate, mint of
//! a new principal, `master add` …) takes an `flock` on a lock file beside the policy
//! (`gobuildkey.toml.lock`, mode 0600), reads the policy again *under the lock* — never a
//! copy read before it — applies its change, writes the new text to a temporary file in the
//! same folder, flushes it, renames it over the policy and flushes the folder, then lets the
//! lock go. So no edit is lost to another made at the same moment, and a reader, which never
//! takes the lock, sees the old file or the new one, never a mix.
//!
//! The kernel drops an `flock` when its holder dies, however it dies: a killed admin leaves
//! no stale lock to clear by hand, and the lock file itself can stay forever (its content is
//! only the pid of the last holder, for the "waiting for…" message).
//!
//! ```
//! use gobuildkey::policy::{Policy, PrincipalState, store::Store};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::new(dir.path().join("gobuildkey.toml"));
//! store.create(&Policy::template(store.path()))?;
//!
//! let host = "host-linux-arm-aws".parse()?;
//! let lock = store.lock(|_holder| {})?;
//! let mut policy = lock.read()?;
//! policy.set_state(&host, &PrincipalState { revoked: true, ..Default::default() })?;
//! lock.write(&policy)?;
//! drop(lock);
//!
//! assert!(store.read()?.state(&host).revoked);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Policy, PolicyError};
use crate::secret_file::{self, Existing, Ownership, WriteError};

/// What is added to the policy's file name to name its lock file.
pub const LOCK_SUFFIX: &str = ".lock";
/// How long an edit waits for another to finish, unless told otherwise.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// A policy file and the lock that guards its edits.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
    timeout: Duration,
}

impl Store {
    /// The store of the policy at `path`.
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            timeout: DEFAULT_LOCK_TIMEOUT,
        }
    }

    /// How long [`Store::lock`] waits for another holder before giving up.
    #[must_use]
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The policy file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lock file beside it: the policy's name and [`LOCK_SUFFIX`].
    #[must_use]
    pub fn lock_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_owned();
        name.push(LOCK_SUFFIX);
        self.path.with_file_name(name)
    }

    /// Reads the policy without the lock, as verifiers do: the file is only ever replaced
    /// whole, so what is read is one version or the other.
    ///
    /// # Errors
    /// As [`Policy::load`].
    pub fn read(&self) -> Result<Policy, PolicyError> {
        Policy::load(&self.path)
    }

    /// Takes the lock. When another process holds it, `on_wait` is called once with that
    /// process's id (when it left one), then the lock is tried until it is free or the
    /// store's timeout has passed.
    ///
    /// # Errors
    /// [`PolicyError::Locked`] after the timeout; [`PolicyError::Lock`] when the lock file
    /// cannot be opened or locked.
    pub fn lock(&self, on_wait: impl FnOnce(Option<u32>)) -> Result<Lock<'_>, PolicyError> {
        // A policy mounted through a link (a ConfigMap) is never edited here; say so before
        // trying to create a lock file beside it, which a read-only mount would refuse.
        if fs::symlink_metadata(&self.path).is_ok_and(|meta| meta.file_type().is_symlink()) {
            return Err(PolicyError::EditThroughLink {
                path: self.path.clone(),
            });
        }
        let lock_path = self.lock_path();
        let lock_err = |error| PolicyError::Lock {
            path: lock_path.clone(),
            error,
        };
        let file = secret_file::open_private(&lock_path, secret_file::Access::ReadWrite).map_err(
            |error| {
                if error.kind() == io::ErrorKind::NotFound {
                    // No folder for the lock file: no policy either.
                    PolicyError::Missing {
                        path: self.path.clone(),
                    }
                } else {
                    lock_err(error)
                }
            },
        )?;
        let started = Instant::now();
        let mut on_wait = Some(on_wait);
        let mut pause = Duration::from_millis(1);
        loop {
            match try_lock(&file) {
                Ok(true) => break,
                Ok(false) => {}
                Err(error) => return Err(lock_err(error)),
            }
            if let Some(on_wait) = on_wait.take() {
                on_wait(holder_of(&file));
            }
            if started.elapsed() >= self.timeout {
                return Err(PolicyError::Locked {
                    path: lock_path,
                    pid: holder_of(&file),
                    waited: self.timeout,
                });
            }
            std::thread::sleep(pause.min(self.timeout.saturating_sub(started.elapsed())));
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        record_holder(&file);
        Ok(Lock { store: self, file })
    }

    /// Creates the policy file (mode 0600) with `policy`'s text, under the lock. An existing
    /// file is never replaced.
    ///
    /// # Errors
    /// [`PolicyError::Write`] with [`WriteError::Exists`] when a policy is there; as
    /// [`Store::lock`].
    pub fn create(&self, policy: &Policy) -> Result<(), PolicyError> {
        let lock = self.lock(|_| {})?;
        lock.create(policy)
    }
}

/// The held lock of a [`Store`]: edits happen while it lives; dropping it lets go.
#[derive(Debug)]
pub struct Lock<'a> {
    store: &'a Store,
    file: File,
}

impl Drop for Lock<'_> {
    /// Lets go explicitly: a child being started at this moment shares the lock file's open
    /// description (until it execs), and closing it here alone would leave the lock held.
    fn drop(&mut self) {
        unlock(&self.file);
    }
}

impl Lock<'_> {
    /// Reads the policy as it is now, under the lock: the only copy an edit may start from.
    ///
    /// # Errors
    /// As [`Policy::load`].
    pub fn read(&self) -> Result<Policy, PolicyError> {
        self.store.read()
    }

    /// Replaces the policy with `policy`'s text: atomically, keeping the file's owner, group
    /// and mode. Refused, with nothing changed, when the policy is a symbolic link (edit it
    /// where it comes from), or belongs to another user and this one is not root.
    ///
    /// # Errors
    /// [`PolicyError::EditThroughLink`], [`PolicyError::NotOwner`], [`PolicyError::Write`].
    pub fn write(&self, policy: &Policy) -> Result<(), PolicyError> {
        let keep = self.check_writable()?;
        secret_file::write_secret_file_as(
            self.store.path(),
            policy.as_text().as_bytes(),
            Existing::Replace,
            keep,
        )?;
        Ok(())
    }

    /// Whether [`Lock::write`] may replace the policy: it is a regular file, not a link, and
    /// this user is root or its owner. An edit checks this before it logs anything. Gives
    /// the owner, group and mode the new file will keep.
    ///
    /// # Errors
    /// As [`Lock::write`], but for failures of the write itself.
    pub fn check_writable(&self) -> Result<Option<Ownership>, PolicyError> {
        let path = self.store.path();
        let meta = match fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(PolicyError::Missing {
                    path: path.to_owned(),
                });
            }
            Err(error) => {
                return Err(PolicyError::Write(WriteError::Io {
                    path: path.to_owned(),
                    error,
                }));
            }
        };
        if meta.file_type().is_symlink() {
            return Err(PolicyError::EditThroughLink {
                path: path.to_owned(),
            });
        }
        let keep = keep_of(&meta);
        check_can_keep(path, keep)?;
        Ok(keep)
    }

    /// Creates the policy file, mode 0600; an existing one is left as it is.
    ///
    /// # Errors
    /// [`PolicyError::Write`].
    pub fn create(&self, policy: &Policy) -> Result<(), PolicyError> {
        let text = policy.as_text();
        debug_assert!(
            !text.is_empty(),
            "a policy gobuildkey writes is never empty"
        );
        secret_file::write_secret_file(self.store.path(), text.as_bytes(), Existing::Refuse)?;
        Ok(())
    }

    /// The store this lock guards.
    #[must_use]
    pub fn store(&self) -> &Store {
        self.store
    }
}

#[cfg(unix)]
fn keep_of(meta: &fs::Metadata) -> Option<Ownership> {
    let mut keep = Ownership::of(meta);
    // Never widen: a policy others may write is refused on reading anyway.
    keep.mode &= !0o022;
    Some(keep)
}

#[cfg(not(unix))]
fn keep_of(_: &fs::Metadata) -> Option<Ownership> {
    None
}

/// An edit by someone who is neither root nor the file's owner would leave the policy owned
/// by them: refused before anything is written.
#[cfg(unix)]
fn check_can_keep(path: &Path, keep: Option<Ownership>) -> Result<(), PolicyError> {
    let euid = rustix::process::geteuid();
    match keep {
        Some(keep) if !euid.is_root() && keep.uid != euid.as_raw() => Err(PolicyError::NotOwner {
            path: path.to_owned(),
            owner: keep.uid,
            uid: euid.as_raw(),
        }),
        _ => Ok(()),
    }
}

#[cfg(not(unix))]
fn check_can_keep(_: &Path, _: Option<Ownership>) -> Result<(), PolicyError> {
    Ok(())
}

/// `Ok(false)` when someone else holds the lock.
#[cfg(unix)]
fn try_lock(file: &File) -> io::Result<bool> {
    use rustix::fs::{FlockOperation, flock};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(unix))]
fn try_lock(file: &File) -> io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(fs::TryLockError::WouldBlock) => Ok(false),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(unix)]
fn unlock(file: &File) {
    let _ = rustix::fs::flock(file, rustix::fs::FlockOperation::Unlock);
}

#[cfg(not(unix))]
fn unlock(file: &File) {
    let _ = file.unlock();
}

/// Leaves this process's id in the lock file, for those who wait. Best effort.
#[cfg(unix)]
fn record_holder(file: &File) {
    use std::os::unix::fs::FileExt;
    let pid = format!("{}\n", std::process::id());
    let _ = file
        .set_len(0)
        .and_then(|()| file.write_all_at(pid.as_bytes(), 0));
}

#[cfg(not(unix))]
fn record_holder(_: &File) {}

/// The pid the holder left, if any.
#[cfg(unix)]
fn holder_of(file: &File) -> Option<u32> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 16];
    let n = file.read_at(&mut buf, 0).ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
}

#[cfg(not(unix))]
fn holder_of(_: &File) -> Option<u32> {
    None
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::policy::PrincipalState;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("gobuildkey.toml"));
        store.create(&Policy::template(store.path())).unwrap();
        (dir, store)
    }

    #[test]
    fn a_held_lock_makes_others_wait_then_time_out() {
        let (_dir, store) = store();
        let held = store.lock(|_| panic!("nobody held it")).unwrap();
        let quick = store.clone().lock_timeout(Duration::from_millis(30));
        let mut told = None;
        let err = quick.lock(|pid| told = Some(pid)).unwrap_err();
        assert_eq!(told, Some(Some(std::process::id())));
        assert!(matches!(err, PolicyError::Locked { .. }), "{err}");
        assert!(
            err.to_string().contains(&std::process::id().to_string()),
            "{err}"
        );
        drop(held);
        quick.lock(|_| panic!("it was let go")).unwrap();
    }

    #[test]
    fn the_lock_file_is_private_and_never_a_link() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, store) = store();
        drop(store.lock(|_| {}).unwrap());
        let mode = fs::metadata(store.lock_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::remove_file(store.lock_path()).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), store.lock_path()).unwrap();
        assert!(matches!(
            store.lock(|_| {}).unwrap_err(),
            PolicyError::Lock { .. }
        ));
        assert!(!dir.path().join("elsewhere").exists());
    }

    #[test]
    fn writes_keep_owner_group_and_mode() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let (_dir, store) = store();
        fs::set_permissions(store.path(), fs::Permissions::from_mode(0o640)).unwrap();
        if rustix::process::geteuid().is_root() {
            std::os::unix::fs::chown(store.path(), Some(0), Some(65534)).unwrap();
        }
        let before = fs::metadata(store.path()).unwrap();
        let lock = store.lock(|_| {}).unwrap();
        let mut policy = lock.read().unwrap();
        let host = "host-a".parse().unwrap();
        policy
            .set_state(
                &host,
                &PrincipalState {
                    generation: 1,
                    ..Default::default()
                },
            )
            .unwrap();
        lock.write(&policy).unwrap();
        let after = fs::metadata(store.path()).unwrap();
        assert_ne!(
            before.ino(),
            after.ino(),
            "replaced, not rewritten in place"
        );
        assert_eq!(after.permissions().mode() & 0o7777, 0o640);
        assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
    }

    #[test]
    fn edits_never_go_through_a_link() {
        let (dir, store) = store();
        let real = dir.path().join("real.toml");
        fs::rename(store.path(), &real).unwrap();
        std::os::unix::fs::symlink(&real, store.path()).unwrap();
        fs::remove_file(store.lock_path()).unwrap();
        store.read().expect("reads follow the link");
        // Refused before a lock file is even made beside it (a read-only mount would
        // refuse that, with a less helpful error).
        let err = store.lock(|_| {}).unwrap_err();
        assert!(matches!(err, PolicyError::EditThroughLink { .. }), "{err}");
        assert!(!store.lock_path().exists());
        assert!(fs::symlink_metadata(store.path()).unwrap().is_symlink());
    }

    #[test]
    fn create_never_replaces() {
        let (_dir, store) = store();
        let err = store.create(&Policy::template(store.path())).unwrap_err();
        assert!(
            matches!(err, PolicyError::Write(WriteError::Exists { .. })),
            "{err}"
        );
    }
}
