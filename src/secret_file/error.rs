//! Why a secret file could not be read ([`ReadError`]) or was not written ([`WriteError`]):
//! the path and what fixes it, never the file's content.

use std::io;
use std::path::PathBuf;

use super::Ownership;

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
