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
//!
//! Where each part lives: the modes and what makes a file too open, in this file
//! ([`FILE_MODE`], [`DIR_MODE`], [`is_too_open`]), with the line a secret file holds
//! ([`secret_line`]); `read` (bounded reads: [`read_bounded`], [`read_secret_file`]);
//! `write` (atomic private writes: [`write_secret_file`], [`write_secret_file_as`] keeping
//! the owner and mode, [`inspect_target`], the temporary files); `open` (files kept open or
//! appended to, and private folders: [`open_private`], [`create_private_dir`]); `error`
//! ([`ReadError`], [`WriteError`]). Keeping secrets out of core files is
//! [`crate::process`]'s ([`forbid_core_dumps`], re-exported here).

mod error;
mod open;
mod read;
mod write;

use std::fs;

use zeroize::Zeroizing;

pub use error::{ReadError, WriteError};
pub use open::{Access, create_private_dir, open_private};
pub use read::{SecretFile, read_bounded, read_secret_file};
pub use write::{
    Existing, Ownership, TEMP_PREFIX, Target, inspect_target, write_secret_file,
    write_secret_file_as,
};

/// Process hardening lived here before it had a module of its own ([`crate::process`]);
/// this path keeps working.
pub use crate::process::forbid_core_dumps;

/// The mode of every file gobuildkey writes a secret to.
pub const FILE_MODE: u32 = 0o600;
/// The mode of every folder gobuildkey creates to hold a secret.
pub const DIR_MODE: u32 = 0o700;

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

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

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
