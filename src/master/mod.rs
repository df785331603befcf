//! The master secret: its type, where it comes from, and the checks it must pass.
//!
//! The master is the content of its file (or of a command's standard output) with the
//! surrounding whitespace trimmed ([`crate::text::trim_space`]: Go's `bytes.TrimSpace`,
//! Unicode spaces included, invalid UTF-8 never), exactly as Go's `genbuilderkey` and
//! coordinator read `$HOME/keys/gobuilder-master.key`, so an existing master works
//! unchanged and gives Go's keys. Every way of getting it fails closed: missing, empty,
//! short, unreadable or too-open masters are errors, never a master that accepts anything.
//!
//! Where each part lives: the secret, in this file ([`MasterSecret`]: its lengths, its
//! generation, its fingerprint); `source` (where it comes from: [`MasterSource`] and
//! [`MasterSource::resolve`], flags › environment ([`ENV_COMMAND`], [`ENV_FILE`]) ›
//! [`default_path`], and loading it from there); `file` (reading and checking a master
//! file: its kind, its mode, who could have written it); `command` (running a master or
//! keyring command); `error` ([`MasterError`] and the words of each refusal).

mod command;
mod error;
mod file;
mod source;

use std::fmt;

use rand::TryRng;
use zeroize::Zeroizing;

use crate::fingerprint::Fingerprint;
use crate::key::hex_of;
use crate::secret_file;
use crate::text::trim_space;

pub use error::MasterError;
pub use source::{
    DEFAULT_COMMAND_TIMEOUT, DEFAULT_PATH_IN_HOME, ENV_COMMAND, ENV_COMMAND_TIMEOUT, ENV_FILE,
    MasterSource, default_path,
};

/// The fewest bytes a master may have after trimming.
pub const MIN_LEN: usize = 16;
/// The most bytes a master file or command output may have.
pub const MAX_LEN: usize = 4096;
/// How many random bytes `gobuildkey init` draws; the master is their hex, 64 characters.
pub const GENERATED_BYTES: usize = 32;

/// The master secret, held in memory that is wiped on drop. Its [`Debug`] shows only its
/// fingerprint.
///
/// ```
/// use gobuildkey::master::MasterSecret;
///
/// let master = MasterSecret::from_text(b"  correct horse battery staple, 2026\n")?;
/// assert_eq!(master.expose_secret(), b"correct horse battery staple, 2026");
/// assert!(MasterSecret::from_text(b"too short\n").is_err());
/// assert!(MasterSecret::from_text(b" \n").is_err());
/// # Ok::<(), gobuildkey::master::MasterError>(())
/// ```
pub struct MasterSecret {
    bytes: Zeroizing<Vec<u8>>,
}

impl MasterSecret {
    /// The master held by `raw`, the content of a master file: trimmed as Go trims it
    /// ([`crate::text::trim_space`]), then at least
    /// [`MIN_LEN`] and at most [`MAX_LEN`] bytes.
    ///
    /// # Errors
    /// [`MasterError::Empty`], [`MasterError::TooShort`] or [`MasterError::TooLong`].
    pub fn from_text(raw: &[u8]) -> Result<Self, MasterError> {
        let master = Self::from_text_allow_short(raw)?;
        if master.bytes.len() < MIN_LEN {
            return Err(MasterError::TooShort {
                len: master.bytes.len(),
            });
        }
        Ok(master)
    }

    /// Like [`MasterSecret::from_text`] but with no minimum length beyond one byte: for
    /// tests and for Go's well-known development master, `gophers rule`. Never for a
    /// farm's real master.
    ///
    /// # Errors
    /// [`MasterError::Empty`] or [`MasterError::TooLong`].
    pub fn from_text_allow_short(raw: &[u8]) -> Result<Self, MasterError> {
        let text = trim_space(raw);
        if text.is_empty() {
            return Err(MasterError::Empty);
        }
        if text.len() > MAX_LEN {
            return Err(MasterError::TooLong);
        }
        Ok(Self {
            bytes: Zeroizing::new(text.to_vec()),
        })
    }

    /// A new master: [`GENERATED_BYTES`] bytes from the operating system's CSPRNG, as
    /// lowercase hex.
    ///
    /// ```
    /// let master = gobuildkey::master::MasterSecret::generate()?;
    /// assert_eq!(master.expose_secret().len(), 64);
    /// # Ok::<(), gobuildkey::master::MasterError>(())
    /// ```
    ///
    /// # Errors
    /// [`MasterError::Random`] when the operating system gives no randomness.
    pub fn generate() -> Result<Self, MasterError> {
        let mut raw = Zeroizing::new([0u8; GENERATED_BYTES]);
        rand::rngs::SysRng
            .try_fill_bytes(&mut raw[..])
            .map_err(|e| MasterError::Random(e.to_string()))?;
        let mut text = hex_of(&raw[..]);
        Ok(Self {
            bytes: Zeroizing::new(std::mem::take(&mut *text).into_bytes()),
        })
    }

    /// The secret's bytes. Hand them only to a MAC or to the file the user asked for.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8] {
        &self.bytes
    }

    /// What a master file holding this secret contains: the secret and a newline.
    #[must_use]
    pub fn file_contents(&self) -> Zeroizing<Vec<u8>> {
        secret_file::secret_line(&self.bytes)
    }

    /// The master's fingerprint: shows which master is in use without showing it.
    #[must_use]
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.bytes)
    }
}

impl fmt::Debug for MasterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterSecret")
            .field("fingerprint", &self.fingerprint().as_str())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn sixteen_bytes_is_enough() {
        assert!(MasterSecret::from_text(b"sixteen bytes!!!").is_ok());
        assert!(matches!(
            MasterSecret::from_text(b"fifteen bytes!!"),
            Err(MasterError::TooShort { len: 15 })
        ));
    }

    #[test]
    fn generated_masters_are_hex_and_distinct() {
        let a = MasterSecret::generate().unwrap();
        let b = MasterSecret::generate().unwrap();
        assert_eq!(a.expose_secret().len(), 2 * GENERATED_BYTES);
        assert!(a.expose_secret().iter().all(u8::is_ascii_hexdigit));
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.file_contents().last(), Some(&b'\n'));
    }

    #[test]
    fn debug_shows_only_the_fingerprint() {
        let master = MasterSecret::from_text(b"a master of 24 bytes!!").unwrap();
        let shown = format!("{master:?}");
        assert!(!shown.contains("master of"), "{shown}");
        assert!(shown.contains(master.fingerprint().as_str()));
    }
}
