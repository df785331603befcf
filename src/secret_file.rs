//! Reading and writing files that hold secrets (master secrets, build keys).
//!
//! Reads are bounded and refuse anything but a regular file, so a FIFO, a device or a
//! huge file can neither hang the tool nor fill its memory. Writes create the file with
//! mode 0600 whatever the umask, replace it atomically (a temporary file in the same
//! folder, fsync, rename, fsync of the folder), never write through a symbolic link, and
//! never replace an existing file unless asked to.
//!
//! On Windows there are no mode bits: a key file there is protected by the ACLs of the
//! folder it is in (a user's profile folder is readable by that user and administrators).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// The mode of every file gobuildkey writes a secret to.
pub const FILE_MODE: u32 = 0o600;
/// The mode of every folder gobuildkey creates to hold a secret.
pub const DIR_MODE: u32 = 0o700;

/// How the temporary files of an atomic write are named, beside their target: this prefix
/// and random characters. No key file can be named so: per-host files are
/// `.gobuildkey-PRINCIPAL`. The writer holds an exclusive `flock` on its temporary file
/// until it is renamed; one nobody holds was left by a writer that was killed.
pub const TEMP_PREFIX: &str = ".gobuildkey.tmp-";

/// Keeps the secrets this process holds out of core files: no core file at all
/// (`RLIMIT_CORE` 0), and the process not dumpable (`PR_SET_DUMPABLE` 0, which also keeps
/// other processes of the same user from reading its memory through `/proc` or ptrace).
/// A crash would otherwise write the master's keyed HMAC state — as good as the master — to
/// disk. Every command calls it first.
///
/// # Errors
/// What the system said; the caller decides whether to go on.
#[cfg(target_os = "linux")]
pub fn forbid_core_dumps() -> io::Result<()> {
    use rustix::process::{DumpableBehavior, set_dumpable_behavior};
    set_dumpable_behavior(DumpableBehavior::NotDumpable)?;
    no_core_files()
}

/// Keeps the secrets this process holds out of core files: no core file (`RLIMIT_CORE` 0).
///
/// # Errors
/// What the system said.
#[cfg(all(unix, not(target_os = "linux")))]
pub fn forbid_core_dumps() -> io::Result<()> {
    no_core_files()
}

/// `RLIMIT_CORE` 0, soft and hard, so not even a child can raise it again.
#[cfg(unix)]
fn no_core_files() -> io::Result<()> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let none = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    Ok(setrlimit(Resource::Core, none)?)
}

/// Nothing to do where there are no core files of this kind.
///
/// # Errors
/// None.
#[cfg(not(unix))]
pub fn forbid_core_dumps() -> io::Result<()> {
    Ok(())
}

/// Whether a file's permission bits let anyone but its owner read or write it: the rule
/// by which a master or key file is "too open".
///
/// ```
/// use gobuildkey::secret_file::is_too_open;
///
/// assert!(!is_too_open(0o100600));
/// assert!(!is_too_open(0o400));
/// assert!(is_too_open(0o644));
/// assert!(is_too_open(0o602));
/// ```
#[must_use]
pub fn is_too_open(mode: u32) -> bool {
    mode & 0o077 != 0
}

/// A secret as a file holds it: the secret and a newline, in memory wiped on drop.
///
/// ```
/// assert_eq!(&gobuildkey::secret_file::secret_line(b"abc")[..], b"abc\n");
/// ```
#[must_use]
pub fn secret_line(secret: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut line = Zeroizing::new(Vec::with_capacity(secret.len() + 1));
    line.extend_from_slice(secret);
    line.push(b'\n');
    line
}

/// Reads at most `limit` bytes from `reader` into memory that is wiped on drop.
///
/// Returns `None` when the input is longer than `limit`: the rest is not read.
///
/// # Errors
/// Whatever reading fails with.
pub fn read_bounded(reader: impl Read, limit: usize) -> io::Result<Option<Zeroizing<Vec<u8>>>> {
    read_bounded_sized(reader, limit, 4096)
}

/// [`read_bounded`], starting with room for `expected` bytes: the buffer grows by copying
/// into a larger wiped buffer (a `Vec` growing in place would leave copies behind), and a
/// large `limit` costs nothing unless the input is that large.
fn read_bounded_sized(
    mut reader: impl Read,
    limit: usize,
    expected: usize,
) -> io::Result<Option<Zeroizing<Vec<u8>>>> {
    let cap = limit.saturating_add(1);
    let mut buf = Zeroizing::new(vec![0u8; expected.saturating_add(1).clamp(1, cap)]);
    let mut len = 0;
    loop {
        if len == buf.len() {
            if buf.len() == cap {
                break;
            }
            let mut bigger = Zeroizing::new(vec![0u8; buf.len().saturating_mul(2).min(cap)]);
            bigger[..len].copy_from_slice(&buf[..len]);
            buf = bigger;
        }
        match reader.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if len > limit {
        return Ok(None);
    }
    buf.truncate(len);
    Ok(Some(buf))
}

/// What [`read_secret_file`] found.
pub struct SecretFile {
    /// The file's content, or `None` when it is longer than the limit.
    pub contents: Option<Zeroizing<Vec<u8>>>,
    /// The file's permission bits (unix only).
    pub mode: Option<u32>,
}

/// Reads a file that holds a secret, at most `limit` bytes of it.
///
/// A symbolic link is followed (secret managers and Kubernetes mount secrets through
/// links), but what it leads to must be a regular file.
///
/// # Errors
/// [`ReadError`] when the file is missing, is not a regular file, or cannot be read.
pub fn read_secret_file(path: &Path, limit: usize) -> Result<SecretFile, ReadError> {
    let io_err = |error| ReadError::Io {
        path: path.to_owned(),
        error,
    };
    // Look before opening: opening a FIFO would block until someone writes to it.
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ReadError::Missing {
            path: path.to_owned(),
        },
        _ => io_err(e),
    })?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile {
            path: path.to_owned(),
        });
    }
    let file = File::open(path).map_err(io_err)?;
    // And look again at what was opened, in case the path changed in between.
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile {
            path: path.to_owned(),
        });
    }
    let expected = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    let contents = read_bounded_sized(&file, limit, expected).map_err(io_err)?;
    Ok(SecretFile {
        contents,
        mode: mode_of(&meta),
    })
}

/// A file's permission bits (unix only): what [`is_too_open`] is asked about.
#[cfg(unix)]
pub(crate) fn mode_of(meta: &fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    Some(meta.permissions().mode())
}

#[cfg(not(unix))]
pub(crate) fn mode_of(_: &fs::Metadata) -> Option<u32> {
    None
}

/// Why a secret file could not be read. Never carries the file's content.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Nothing at the path.
    #[error("{} does not exist", path.display())]
    Missing {
        /// The path looked at.
        path: PathBuf,
    },
    /// A folder, FIFO, device or socket.
    #[error("{} is not a regular file", path.display())]
    NotAFile {
        /// The path looked at.
        path: PathBuf,
    },
    /// Any other failure, e.g. permission denied.
    #[error("cannot read {}: {error}", path.display())]
    Io {
        /// The path looked at.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
    },
}

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

/// How [`open_private`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// For appending (a log).
    Append,
    /// For appending, and reading what is there (a log whose last line is checked).
    ReadAppend,
    /// For reading and writing in place (a lock file).
    ReadWrite,
}

/// Opens the private file at `path` for `access`, creating it with mode 0600: never through
/// a symbolic link, never blocking on what is there (a FIFO), and refusing anything but a
/// regular file. For the files gobuildkey keeps open or appends to — the action log, the
/// policy's lock file, the audit file — rather than replaces.
///
/// # Errors
/// What the system said; a link at the path fails (`ELOOP`), anything but a regular file
/// (a FIFO, a socket, a folder, a device) is "not a regular file", without blocking.
#[cfg(unix)]
pub fn open_private(path: &Path, access: Access) -> io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let access = match access {
        Access::Append => OFlags::WRONLY | OFlags::APPEND,
        Access::ReadAppend => OFlags::RDWR | OFlags::APPEND,
        Access::ReadWrite => OFlags::RDWR,
    };
    let fd = rustix::fs::open(
        path,
        access | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::from_raw_mode(FILE_MODE),
    )
    .map_err(|e| match e {
        // A FIFO nobody reads, opened for writing without blocking.
        rustix::io::Errno::NXIO => io::Error::other("not a regular file"),
        rustix::io::Errno::ISDIR => io::Error::other("not a regular file but a folder"),
        e => e.into(),
    })?;
    let file = File::from(fd);
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(file)
}

/// Opens the file at `path` for `access`, creating it (no modes on this platform).
///
/// # Errors
/// What the system said.
#[cfg(not(unix))]
pub fn open_private(path: &Path, access: Access) -> io::Result<File> {
    let mut options = fs::OpenOptions::new();
    match access {
        Access::Append => options.append(true),
        Access::ReadAppend => options.read(true).append(true),
        Access::ReadWrite => options.read(true).write(true),
    };
    options.create(true).open(path)
}

/// Creates `dir` and its missing parents with mode 0700 (folders that already exist are
/// left as they are).
///
/// # Errors
/// What the system said.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    create_private_dirs(dir)
}

#[cfg(unix)]
fn create_private_dirs(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dirs(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_: &Path) -> io::Result<()> {
    // Windows cannot open a folder as a file; NTFS journals the rename itself.
    Ok(())
}

/// Why a secret file was not written. Nothing was changed at the target.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A file is already there and replacing was not asked for.
    #[error("{} already exists: use --force to replace it", path.display())]
    Exists {
        /// The target.
        path: PathBuf,
    },
    /// A symbolic link is at the target.
    #[error(
        "{} is a symbolic link; refusing to write a secret through it: remove the link or choose another path",
        path.display()
    )]
    Symlink {
        /// The target.
        path: PathBuf,
    },
    /// A folder, FIFO, device or socket is at the target.
    #[error("{} is not a regular file: remove it or choose another path", path.display())]
    NotAFile {
        /// The target.
        path: PathBuf,
    },
    /// The target's folder could not be created.
    #[error("cannot create the folder {}: {error}", path.display())]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
    },
    /// The new file could not be given the owner, group or mode of the one it replaces.
    #[error(
        "cannot give the new {} the owner {}, group {} and mode {:04o} of the old one ({error}): \
         run the edit as root or as the file's owner, in its group",
        path.display(), keep.uid, keep.gid, keep.mode
    )]
    Ownership {
        /// The target.
        path: PathBuf,
        /// What it was to keep.
        keep: Ownership,
        /// What the system said.
        error: io::Error,
    },
    /// Writing, flushing or renaming failed.
    #[error("cannot write {}: {error}", path.display())]
    Io {
        /// The file or folder being written.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
    },
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

    #[test]
    fn read_grows_past_its_first_guess() {
        let data = vec![7u8; 10_000];
        let got = read_bounded_sized(&data[..], 20_000, 10).unwrap().unwrap();
        assert_eq!(&got[..], &data[..]);
        assert!(read_bounded_sized(&data[..], 9_999, 10).unwrap().is_none());
        assert_eq!(
            read_bounded_sized(&b""[..], 5, 0).unwrap().unwrap().len(),
            0
        );
    }

    #[test]
    fn read_is_bounded() {
        assert_eq!(
            read_bounded(&b"12345"[..], 5)
                .unwrap()
                .as_deref()
                .map(Vec::as_slice),
            Some(&b"12345"[..])
        );
        assert!(read_bounded(&b"123456"[..], 5).unwrap().is_none());
        assert!(read_bounded(io::repeat(0), 4096).unwrap().is_none());
    }

    #[test]
    fn read_refuses_non_files() {
        let root = tempfile::tempdir().unwrap();
        let err = read_secret_file(root.path(), 10).err().unwrap();
        assert!(matches!(err, ReadError::NotAFile { .. }), "{err}");
        let err = read_secret_file(&root.path().join("none"), 10)
            .err()
            .unwrap();
        assert!(matches!(err, ReadError::Missing { .. }), "{err}");
        let err = read_secret_file(Path::new("/dev/zero"), 10).err().unwrap();
        assert!(matches!(err, ReadError::NotAFile { .. }), "{err}");
    }

    #[test]
    fn is_too_open_checks_group_and_other_bits() {
        for open in [0o640, 0o604, 0o620, 0o602, 0o660, 0o777, 0o100644] {
            assert!(is_too_open(open), "{open:o}");
        }
        for private in [0o600, 0o400, 0o700, 0o100600, 0o000] {
            assert!(!is_too_open(private), "{private:o}");
        }
    }
}
