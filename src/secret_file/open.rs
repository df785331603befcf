//! Private files opened in place, for what gobuildkey keeps open or appends to rather than
//! replaces (the action log, the policy's lock file, the audit file): created with mode
//! 0600, never through a symbolic link, never blocking on a FIFO. And private folders,
//! created with mode 0700.

use std::fs::{self, File};
use std::io;
use std::path::Path;

#[cfg(unix)]
use super::{DIR_MODE, FILE_MODE};

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
pub(super) fn create_private_dirs(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

#[cfg(not(unix))]
pub(super) fn create_private_dirs(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}
