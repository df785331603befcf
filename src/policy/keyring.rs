//! The keyring: the previous masters the policy names ([`KeyringEntry`]), and loading them
//! (reading their files, running their commands), failing closed.

use super::{Policy, PolicyError};
use crate::key::AlgorithmSet;
use crate::master::{MasterSecret, MasterSource};

/// A previous master named in the keyring, and where in the file it is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyringEntry {
    /// The master's file (resolved against the policy's folder) or command.
    pub source: MasterSource,
    /// The algorithms keys were minted with under it; `None`: any.
    pub algorithms: Option<AlgorithmSet>,
    /// Where the entry is: 1-based line and column.
    pub at: (usize, usize),
}

impl Policy {
    /// The previous masters, in the file's order.
    #[must_use]
    pub fn keyring(&self) -> &[KeyringEntry] {
        &self.keyring
    }

    /// Loads every previous master of the keyring, in order. Fails closed: an entry that
    /// cannot be loaded is an error naming its line and column, and so is a master that two
    /// entries lead to (through two files or commands): retiring one would leave the other.
    ///
    /// A keyring `command` has [`crate::master::DEFAULT_COMMAND_TIMEOUT`] to finish.
    ///
    /// # Errors
    /// [`PolicyError::Master`], [`PolicyError::Invalid`].
    pub fn load_keyring(&self) -> Result<Vec<(&KeyringEntry, MasterSecret)>, PolicyError> {
        self.load_keyring_within(crate::master::DEFAULT_COMMAND_TIMEOUT)
    }

    /// [`Policy::load_keyring`], giving each keyring `command` `timeout` to finish
    /// ([`MasterSource::load_within`]).
    ///
    /// # Errors
    /// [`PolicyError::Master`], [`PolicyError::Invalid`].
    pub fn load_keyring_within(
        &self,
        timeout: std::time::Duration,
    ) -> Result<Vec<(&KeyringEntry, MasterSecret)>, PolicyError> {
        let mut loaded: Vec<(&KeyringEntry, MasterSecret)> = Vec::with_capacity(self.keyring.len());
        for entry in &self.keyring {
            let master =
                entry
                    .source
                    .load_within(timeout)
                    .map_err(|error| PolicyError::Master {
                        path: self.shown_path(),
                        at: entry.at,
                        source_shown: entry.source.to_string(),
                        error,
                    })?;
            let fingerprint = master.fingerprint();
            if let Some((first, _)) = loaded.iter().find(|(_, m)| m.fingerprint() == fingerprint) {
                return Err(PolicyError::Invalid {
                    path: self.shown_path(),
                    at: entry.at,
                    message: format!(
                        "the keyring names the master {fingerprint} twice (first on line {}): \
                         remove one entry",
                        first.at.0
                    ),
                });
            }
            loaded.push((entry, master));
        }
        Ok(loaded)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::Path;

    use super::*;

    #[test]
    fn a_keyring_entry_named_twice_is_an_error() {
        for text in [
            "[keyring]\nprevious = [{ file = \"a.key\" }, { command = \"x\" }, { file = \"a.key\" }]\n",
            "[[keyring.previous]]\ncommand = \"x\"\n[[keyring.previous]]\ncommand = \"x\"\n",
        ] {
            let err = Policy::parse(text, Some(Path::new("/farm/p.toml"))).unwrap_err();
            assert!(err.to_string().contains("twice (first on line"), "{err}");
        }
        // The same master through two sources.
        let policy = Policy::parse(
            "[keyring]\nprevious = [\n  { command = \"echo 0123456789abcdef0123456789abcdef\" },\n  { command = \"echo  0123456789abcdef0123456789abcdef\" },\n]\n",
            None,
        )
        .unwrap();
        let err = policy.load_keyring().unwrap_err();
        let PolicyError::Invalid { at, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(at.0, 4, "{err}");
        assert!(err.to_string().contains("first on line 3"), "{err}");
    }
}
