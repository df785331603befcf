//! How long a principal's previous generation stays valid after a rotation ([`Grace`]),
//! and the moments a grace period ends at: TOML dates in the policy, `--keep-previous-until`
//! on the command line ([`parse_moment`]), read by one rule.

use std::fmt;

use jiff::Timestamp;

/// How long a principal's previous generation stays valid after a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Grace {
    /// Not at all: the previous key stopped verifying at the rotation.
    #[default]
    None,
    /// Until the admin ends it (`gobuildkey end-grace`).
    Open,
    /// Until this moment.
    Until(Timestamp),
}

impl Grace {
    /// Whether the previous generation is accepted at `now`.
    #[must_use]
    pub fn active_at(self, now: Timestamp) -> bool {
        match self {
            Self::None => false,
            Self::Open => true,
            Self::Until(end) => now < end,
        }
    }
}

impl fmt::Display for Grace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("-"),
            Self::Open => f.write_str("until ended"),
            Self::Until(end) => write!(f, "until {end}"),
        }
    }
}

/// Parses a `--keep-previous-until` value: an RFC 3339 date-time with an offset, or a date
/// (00:00 UTC of that day).
///
/// ```
/// use gobuildkey::policy::parse_moment;
///
/// assert_eq!(parse_moment("2026-12-01")?.to_string(), "2026-12-01T00:00:00Z");
/// assert!(parse_moment("2026-12-01T10:00:00+02:00").is_ok());
/// assert!(parse_moment("next tuesday").is_err());
/// # Ok::<(), String>(())
/// ```
///
/// # Errors
/// A message saying what is accepted.
pub fn parse_moment(text: &str) -> Result<Timestamp, String> {
    let as_toml = text
        .parse::<toml_edit::Datetime>()
        .ok()
        .and_then(|dt| timestamp_of(&dt));
    as_toml.ok_or_else(|| {
        format!("`{text}` is not a date (2026-12-01) or a date and time with an offset (2026-12-01T12:00:00Z)")
    })
}

/// A TOML date or date-time as a moment: a date alone is 00:00 UTC of that day; a time
/// without an offset is refused (whose midnight?).
pub(super) fn timestamp_of(dt: &toml_edit::Datetime) -> Option<Timestamp> {
    match (dt.date, dt.time, dt.offset) {
        (Some(_), Some(_), Some(_)) => dt.to_string().parse().ok(),
        (Some(date), None, None) => format!("{date}T00:00:00Z").parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn grace_is_active_until_its_end() {
        let now: Timestamp = "2026-11-24T00:00:00Z".parse().unwrap();
        assert!(!Grace::None.active_at(now));
        assert!(Grace::Open.active_at(now));
        assert!(Grace::Until("2026-11-25T00:00:00Z".parse().unwrap()).active_at(now));
        assert!(!Grace::Until(now).active_at(now));
    }
}
