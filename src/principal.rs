//! The names keys are minted for: [`Principal`], its rule, and its [`Kind`].

use std::fmt;
use std::str::FromStr;

use crate::text::escape_for_terminal;

/// The name a key is minted for: a host type (`host-linux-arm-aws`), a person's token
/// (`user-relui`) or a bare builder name (`linux-amd64`).
///
/// A principal is 1 to 128 characters of `a-z`, `0-9`, `.`, `_` and `-`, starting with a
/// letter or digit, with no `..`. The rule keeps principals safe as file-name parts
/// (`~/.gobuildkey-PRINCIPAL`) and leaves `#` free as a separator.
///
/// ```
/// use gobuildkey::principal::Principal;
///
/// let p: Principal = "host-darwin-amd64-12_0".parse()?;
/// assert_eq!(p.as_str(), "host-darwin-amd64-12_0");
/// assert!("Host-Linux".parse::<Principal>().is_err());
/// assert!("host/../../etc".parse::<Principal>().is_err());
/// # Ok::<(), gobuildkey::principal::PrincipalError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal(String);

impl Principal {
    /// The longest principal accepted, in characters.
    pub const MAX_LEN: usize = 128;

    /// The rule, in words, as error messages state it.
    pub const RULE: &'static str = "a principal is 1 to 128 characters of a-z, 0-9, '.', '_' and '-', \
         starting with a letter or digit, with no '..'";

    /// Checks `name` against the rule.
    ///
    /// # Errors
    /// [`PrincipalError`] when `name` breaks the rule; its message shows the name escaped,
    /// so control characters cannot reach a terminal.
    pub fn new(name: &str) -> Result<Self, PrincipalError> {
        if Self::follows_rule(name) {
            Ok(Self(name.to_owned()))
        } else {
            Err(PrincipalError::new(name))
        }
    }

    /// Makes this principal `name`, reusing its memory (for loops over many names);
    /// on error it is left as it was.
    pub(crate) fn set(&mut self, name: &str) -> bool {
        let ok = Self::follows_rule(name);
        if ok {
            self.0.clear();
            self.0.push_str(name);
        }
        ok
    }

    /// The rule, [`Principal::RULE`], in code: the one place it is checked.
    fn follows_rule(name: &str) -> bool {
        let bytes = name.as_bytes();
        let allowed = |b: u8| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-');
        // Folds with no early exit: loops the compiler vectorises, for `verify --batch`
        // checks a principal on every line (docs/performance.md).
        let dots = |(&a, &b): (&u8, &u8)| (a == b'.') & (b == b'.');
        !bytes.is_empty()
            && bytes.len() <= Self::MAX_LEN
            && bytes[0].is_ascii_lowercase() | bytes[0].is_ascii_digit()
            && bytes.iter().fold(true, |ok, &b| ok & allowed(b))
            && !bytes
                .iter()
                .zip(&bytes[1..])
                .fold(false, |found, pair| found | dots(pair))
    }

    /// The principal's text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Principal {
    type Err = PrincipalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Principal {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// What a principal names, by its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `host-…`: a host type, what builders register as.
    Host,
    /// `user-…`: a person's token.
    User,
    /// Anything else, e.g. a bare builder name such as `linux-amd64`.
    Other,
}

impl Kind {
    /// The kind's name: `host`, `user`, `other`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::User => "user",
            Self::Other => "other",
        }
    }
}

impl Principal {
    /// The principal's kind, by its prefix.
    ///
    /// ```
    /// use gobuildkey::principal::{Kind, Principal};
    ///
    /// assert_eq!("host-linux-arm-aws".parse::<Principal>()?.kind(), Kind::Host);
    /// assert_eq!("user-relui".parse::<Principal>()?.kind(), Kind::User);
    /// assert_eq!("linux-amd64".parse::<Principal>()?.kind(), Kind::Other);
    /// # Ok::<(), gobuildkey::principal::PrincipalError>(())
    /// ```
    #[must_use]
    pub fn kind(&self) -> Kind {
        if self.0.starts_with("host-") {
            Kind::Host
        } else if self.0.starts_with("user-") {
            Kind::User
        } else {
            Kind::Other
        }
    }
}

/// A name that breaks the principal rule ([`Principal::RULE`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid principal {shown}: {rule}", rule = Principal::RULE)]
pub struct PrincipalError {
    shown: String,
}

impl PrincipalError {
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
    fn real_principals_are_accepted() {
        for name in [
            "host-linux-ppc64le-power9-osu",
            "host-darwin-amd64-12_0",
            "host-windows11-arm64-azure",
            "host-plan9-386-0intro",
            "user-relui",
            "linux-amd64",
            "h",
            "0",
            "a.b",
            &"a".repeat(128),
        ] {
            assert!(Principal::new(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn principals_breaking_the_rule_are_refused() {
        for name in [
            "",
            "Host-linux",
            "host linux",
            "host/linux",
            "../etc",
            "a..b",
            "-host",
            ".host",
            "_host",
            "host#1",
            "host\n",
            "host\0",
            "hóst",
            "host\u{1b}[2J",
            &"a".repeat(129),
        ] {
            assert!(Principal::new(name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn principal_errors_escape_and_cut_the_name() {
        let msg = PrincipalError::new("a\u{1b}[31mb\nc").to_string();
        assert!(!msg.contains('\u{1b}') && !msg.contains('\n'), "{msg}");
        assert!(msg.contains(Principal::RULE));
        let long = PrincipalError::new(&"X".repeat(1000)).to_string();
        assert!(long.len() < 300, "{long}");
    }
}
