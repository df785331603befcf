//! Atomic private writes: the content goes to a temporary file (mode 0600, locked while it
//! is written) in the target's folder, is flushed, and is renamed over the target, then the
//! folder is flushed; never through a symbolic link, an existing file replaced only when
//! asked, its owner, group and mode kept when asked ([`write_secret_file_as`]), and the
//! temporary files of writers that were killed removed.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

#[cfg(unix)]
use super::FILE_MODE;
use super::WriteError;
use super::open::create_private_dirs;

/// How the temporary files of an atomic write are named, beside their target: this prefix
/// and random characters. No key file can be named so: per-host files are
/// `.gobuildkey-PRINCIPAL`. The writer holds an exclusive `flock` on its temporary file
/// until it is renamed; one nobody holds was left by a writer that was killed.
pub const TEMP_PREFIX: &str = ".gobuildkey.tmp-";

/// What to do when the target of [`write_secret_file`] already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Leave it and fail with [`WriteError::Exists`].
    Refuse,
    /// Replace it atomically (the command line's `--force`).
    Replace,
}

/// Writes `contents` to `path` as a secret file.
///
/// Missing parent folders are created with mode 0700. The content goes to a temporary
/// file (mode 0600) in the target's folder, is flushed to disk, and is renamed over the
/// target; then the folder is flushed too. A crash leaves either the old file or the new
/// one, never a mix. A symbolic link or anything but a regular file at `path` is refused,
/// and so is an existing file unless `existing` is [`Existing::Replace`].
///
/// ```
/// use gobuildkey::secret_file::{write_secret_file, Existing, WriteError};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("keys/secret");
/// write_secret_file(&path, b"s3cret\n", Existing::Refuse)?;
/// assert!(matches!(
///     write_secret_file(&path, b"other\n", Existing::Refuse),
///     Err(WriteError::Exists { .. })
/// ));
/// write_secret_file(&path, b"other\n", Existing::Replace)?;
/// assert_eq!(std::fs::read(&path)?, b"other\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`WriteError`]; on any error the target is unchanged and no temporary file is left.
pub fn write_secret_file(
    path: &Path,
    contents: &[u8],
    existing: Existing,
) -> Result<(), WriteError> {
    write_secret_file_as(path, contents, existing, None)
}

/// The owner, group and permission bits a rewritten file keeps (unix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ownership {
    /// Permission bits (the low 12 bits of `st_mode`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

impl Ownership {
    /// What `meta` says of a file.
    #[cfg(unix)]
    #[must_use]
    pub fn of(meta: &fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        }
    }
}

/// [`write_secret_file`], with the new file given `keep`'s owner, group and mode instead of
/// the writer's own and 0600: a file that a service account reads through its group stays
/// readable by it after an admin rewrote it. The temporary file gets them before any content
/// is written and before it replaces the target; when they cannot be given (a user who is
/// not root giving the file to someone else), nothing is changed and the error says so.
///
/// # Errors
/// As [`write_secret_file`]; [`WriteError::Ownership`] when `keep` cannot be applied.
pub fn write_secret_file_as(
    path: &Path,
    contents: &[u8],
    existing: Existing,
    keep: Option<Ownership>,
) -> Result<(), WriteError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    // Errors name the target, not the temporary file, which the user never asked for.
    let io_err = |error| WriteError::Io {
        path: path.to_owned(),
        error,
    };
    create_private_dirs(dir).map_err(|error| WriteError::CreateDir {
        path: dir.to_owned(),
        error,
    })?;
    if inspect_target(path)? == Target::File && existing == Existing::Refuse {
        return Err(WriteError::Exists {
            path: path.to_owned(),
        });
    }
    remove_stale_temps(dir);

    let mut tmp = locked_temp_file(dir).map_err(io_err)?;
    if let Some(keep) = keep {
        apply_ownership(tmp.as_file(), keep).map_err(|error| WriteError::Ownership {
            path: path.to_owned(),
            keep,
            error,
        })?;
    }
    tmp.write_all(contents).map_err(io_err)?;
    tmp.as_file().sync_all().map_err(io_err)?;
    let persisted = match existing {
        Existing::Refuse => tmp.persist_noclobber(path),
        Existing::Replace => tmp.persist(path),
    };
    // On failure the temporary file is dropped with the error, which deletes it.
    persisted.map_err(|e| match e.error.kind() {
        io::ErrorKind::AlreadyExists => WriteError::Exists {
            path: path.to_owned(),
        },
        _ => WriteError::Io {
            path: path.to_owned(),
            error: e.error,
        },
    })?;
    sync_dir(dir).map_err(io_err)
}

/// What is at the target of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Nothing.
    Absent,
    /// A regular file (not a link to one).
    File,
}

/// Looks at the target of a write without following links: a link (even a dangling one),
/// a folder, a FIFO or a device is an error; nothing or a regular file is an answer.
///
/// # Errors
/// [`WriteError::Symlink`], [`WriteError::NotAFile`], or [`WriteError::Io`] when the
/// target cannot be examined.
pub fn inspect_target(path: &Path) -> Result<Target, WriteError> {
    let at = || path.to_owned();
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(WriteError::Symlink { path: at() }),
        Ok(meta) if !meta.is_file() => Err(WriteError::NotAFile { path: at() }),
        Ok(_) => Ok(Target::File),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Target::Absent),
        Err(error) => Err(WriteError::Io { path: at(), error }),
    }
}

/// A new temporary file in `dir`, locked by this writer. Another writer's clean-up may find
/// the file between its creation and the lock, take it for a dead writer's and remove it;
/// so once locked, the file must still be the one at its name, or a new one is made.
fn locked_temp_file(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    let mut attempts = 0;
    loop {
        // tempfile's error repeats the temporary path; keep only what went wrong.
        let tmp = temp_builder(TEMP_PREFIX)
            .tempfile_in(dir)
            .map_err(|e| io::Error::from(e.kind()))?;
        if lock_while_writing(tmp.as_file()).is_ok() && still_at_its_name(&tmp) {
            return Ok(tmp);
        }
        attempts += 1;
        if attempts == 16 {
            return Err(io::Error::other(
                "temporary files keep disappearing: another process is removing files in this folder",
            ));
        }
    }
}

#[cfg(unix)]
fn still_at_its_name(tmp: &tempfile::NamedTempFile) -> bool {
    same_file(tmp.as_file(), tmp.path())
}

/// Whether `path` names the open `file` (not following a link).
#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::symlink_metadata(path)) {
        (Ok(open), Ok(named)) => open.ino() == named.ino() && open.dev() == named.dev(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn still_at_its_name(_: &tempfile::NamedTempFile) -> bool {
    true
}

#[cfg(unix)]
fn apply_ownership(file: &File, keep: Ownership) -> io::Result<()> {
    use rustix::fs::{Gid, Mode, Uid, fchmod, fchown};
    use std::os::unix::fs::MetadataExt;
    let now = file.metadata()?;
    if (now.uid(), now.gid()) != (keep.uid, keep.gid) {
        fchown(
            file,
            Some(Uid::from_raw(keep.uid)),
            Some(Gid::from_raw(keep.gid)),
        )?;
    }
    // After chown, which may clear set-id bits.
    fchmod(file, Mode::from_raw_mode(keep.mode))?;
    Ok(())
}

#[cfg(not(unix))]
fn apply_ownership(_: &File, _: Ownership) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn temp_builder(prefix: &str) -> tempfile::Builder<'_, 'static> {
    use std::os::unix::fs::PermissionsExt;
    let mut builder = tempfile::Builder::new();
    builder
        .prefix(prefix)
        .permissions(fs::Permissions::from_mode(FILE_MODE));
    builder
}

#[cfg(not(unix))]
fn temp_builder(prefix: &str) -> tempfile::Builder<'_, 'static> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    builder
}

/// Marks a temporary file as being written: the lock goes away with the process, however
/// it ends.
#[cfg(unix)]
fn lock_while_writing(file: &File) -> io::Result<()> {
    rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive)?;
    Ok(())
}

#[cfg(not(unix))]
fn lock_while_writing(_: &File) -> io::Result<()> {
    Ok(())
}

/// Removes the temporary files that writers killed mid-write left in `dir`: regular files
/// named [`TEMP_PREFIX`]… that nobody holds a lock on. A live writer's file is locked and
/// left alone. Best effort: nothing here can fail a write.
#[cfg(unix)]
fn remove_stale_temps(dir: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let ours = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with(TEMP_PREFIX));
        if !ours || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        let Ok(file) = fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path)
        else {
            continue;
        };
        // Unlocked: its writer died, or has only just created it (that writer sees its file
        // gone once it holds the lock, and makes another). Removed only if the name still
        // leads to the file locked here.
        if lock_while_writing(&file).is_ok() && same_file(&file, &path) {
            let _ = fs::remove_file(&path);
        }
    }
}

#[cfg(not(unix))]
fn remove_stale_temps(_: &Path) {}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_: &Path) -> io::Result<()> {
    // Windows cannot open a folder as a file; NTFS journals the rename itself.
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn creates_private_file_and_folders() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("a/b/secret");
        write_secret_file(&path, b"x\n", Existing::Refuse).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"x\n");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&root.path().join("a")), 0o700);
        assert_eq!(mode(&root.path().join("a/b")), 0o700);
        assert_eq!(entries(&root.path().join("a/b")), ["secret"]);
    }

    #[test]
    fn replace_makes_an_open_file_private() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("secret");
        fs::write(&path, b"old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_secret_file(&path, b"new", Existing::Replace).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(entries(root.path()), ["secret"]);
    }

    #[test]
    fn refuses_existing_file_without_replace() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("secret");
        fs::write(&path, b"old").unwrap();
        let err = write_secret_file(&path, b"new", Existing::Refuse).unwrap_err();
        assert!(matches!(err, WriteError::Exists { .. }), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(entries(root.path()), ["secret"]);
    }

    #[test]
    fn refuses_links_even_with_replace() {
        let root = tempfile::tempdir().unwrap();
        let victim = root.path().join("victim");
        fs::write(&victim, b"victim").unwrap();
        let link = root.path().join("link");
        symlink(&victim, &link).unwrap();
        let dangling = root.path().join("dangling");
        symlink(root.path().join("nowhere"), &dangling).unwrap();
        for path in [&link, &dangling] {
            for existing in [Existing::Refuse, Existing::Replace] {
                let err = write_secret_file(path, b"new", existing).unwrap_err();
                assert!(matches!(err, WriteError::Symlink { .. }), "{err}");
            }
        }
        assert_eq!(fs::read(&victim).unwrap(), b"victim");
        assert!(!root.path().join("nowhere").exists());
    }

    #[test]
    fn temporary_files_of_dead_writers_are_removed() {
        let root = tempfile::tempdir().unwrap();
        let stale = root.path().join(format!("{TEMP_PREFIX}abc123"));
        let live = root.path().join(format!("{TEMP_PREFIX}xyz789"));
        let other = root.path().join(".gobuildkey-host-x");
        for path in [&stale, &live, &other] {
            fs::write(path, b"x").unwrap();
        }
        // A writer at work holds its lock (here, on another open file description).
        let held = File::open(&live).unwrap();
        lock_while_writing(&held).unwrap();
        write_secret_file(&root.path().join("secret"), b"new", Existing::Refuse).unwrap();
        assert!(!stale.exists(), "an unlocked leftover is removed");
        assert!(live.exists(), "a live writer's file is kept");
        assert!(other.exists());
        drop(held);
    }

    #[test]
    fn refuses_a_folder_at_the_target() {
        let root = tempfile::tempdir().unwrap();
        let err = write_secret_file(root.path(), b"new", Existing::Replace).unwrap_err();
        assert!(matches!(err, WriteError::NotAFile { .. }), "{err}");
    }
}
