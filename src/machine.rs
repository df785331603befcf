//! The machines a key can be bound to: [`Machine`], a builder's host name as its agent
//! reports it (`X-Go-Builder-Hostname`), and its rule.

use std::fmt;
use std::str::FromStr;

use crate::text::escape_for_terminal;

/// One machine's name: what the builder agent sends as `X-Go-Builder-Hostname` (its
/// `-hostname` flag, else the operating system's host name).
///
/// A machine name is 1 to 253 characters of ASCII letters, digits, `.`, `_` and `-`,
/// starting with a letter or digit — a host name, or a DNS name. Host names do not tell
/// case apart, so neither does a machine name: it is kept, compared and MACed in lowercase.
/// Anything else — a separator such as a space, `#`, `:` or `/`, a control character,
/// non-ASCII text — is refused, so that a name can never change meaning between the header,
/// a batch line and the MAC.
///
/// ```
/// use gobuildkey::machine::Machine;
///
/// let m: Machine = "Builder-07.Farm.example".parse()?;
/// assert_eq!(m.as_str(), "builder-07.farm.example");
/// assert!("builder 07".parse::<Machine>().is_err());
/// assert!("bûilder".parse::<Machine>().is_err());
/// # Ok::<(), gobuildkey::machine::MachineError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Machine(String);

impl Machine {
    /// The longest machine name accepted, in characters (a DNS name's limit).
    pub const MAX_LEN: usize = 253;

    /// The rule, in words, as error messages state it.
    pub const RULE: &'static str = "a machine name is 1 to 253 characters of ASCII letters, \
         digits, '.', '_' and '-', starting with a letter or digit";

    /// Checks `name` against the rule; the name is kept in lowercase.
    ///
    /// # Errors
    /// [`MachineError`] when `name` breaks the rule; its message shows the name escaped.
    pub fn new(name: &str) -> Result<Self, MachineError> {
        let bytes = name.as_bytes();
        let allowed = |b: u8| b.is_ascii_alphanumeric() | matches!(b, b'.' | b'_' | b'-');
        let follows = !bytes.is_empty()
            && bytes.len() <= Self::MAX_LEN
            && bytes[0].is_ascii_alphanumeric()
            && bytes.iter().all(|&b| allowed(b));
        if follows {
            Ok(Self(name.to_ascii_lowercase()))
        } else {
            Err(MachineError::new(name))
        }
    }

    /// The name, in lowercase.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Machine {
    type Err = MachineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A name that breaks the machine rule ([`Machine::RULE`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid machine name {shown}: {rule}", rule = Machine::RULE)]
pub struct MachineError {
    shown: String,
}

impl MachineError {
    /// An error for `name`, which is shown escaped and cut to 64 characters.
    #[must_use]
    pub fn new(name: &str) -> Self {
        Self {
            shown: escape_for_terminal(name, 64),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn host_names_are_accepted_in_lowercase() {
        for (name, kept) in [
            ("gce-buildlet-0a1b2c", "gce-buildlet-0a1b2c"),
            ("Johns-MacBook-Pro.local", "johns-macbook-pro.local"),
            ("b", "b"),
            ("7", "7"),
            ("under_score", "under_score"),
        ] {
            assert_eq!(Machine::new(name).unwrap().as_str(), kept);
        }
        assert!(Machine::new(&"a".repeat(253)).is_ok());
    }

    #[test]
    fn separators_controls_and_non_ascii_are_refused() {
        for name in [
            "",
            "a b",
            "a\tb",
            "a#b",
            "a:b",
            "a/b",
            "a,b",
            "-a",
            ".a",
            "a\n",
            "a\0",
            "bûilder",
            "a\u{1b}[2J",
            &"a".repeat(254),
        ] {
            assert!(Machine::new(name).is_err(), "{name:?}");
        }
        let msg = MachineError::new("a\u{1b}[31m\n").to_string();
        assert!(!msg.contains('\u{1b}') && !msg.contains('\n'), "{msg}");
    }
}
