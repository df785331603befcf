//! [`Fingerprint`]: the short name of a key or a master, safe to show and compare.

use std::fmt;

use sha2::{Digest, Sha256};

/// A short, non-secret name for a secret: `SHA256:` and the first 16 hex digits of the
/// SHA-256 of the secret's canonical text (for a key, its lowercase hex; for a master, its
/// trimmed content).
///
/// Two people can compare fingerprints to know they hold the same key without the key
/// travelling again. 64 bits of a hash of a 128- or 256-bit secret reveal nothing usable.
///
/// ```
/// use gobuildkey::fingerprint::Fingerprint;
///
/// let fp = Fingerprint::of(b"8421ea33f51fcab48011a06b390348dd7f542b628ffb0bf6b007ebbea45f1196");
/// assert!(fp.as_str().starts_with("SHA256:"));
/// assert_eq!(fp.as_str().len(), 7 + 16);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; Fingerprint::LEN]);

/// Chosen between two fingerprints in constant time (the verifier's "which master matched",
/// picked without reading memory by the answer).
impl subtle::ConditionallySelectable for Fingerprint {
    fn conditional_select(a: &Self, b: &Self, choice: subtle::Choice) -> Self {
        Self(std::array::from_fn(|i| {
            u8::conditional_select(&a.0[i], &b.0[i], choice)
        }))
    }
}

impl Fingerprint {
    /// How many hex digits of the hash a fingerprint shows.
    pub const HEX_DIGITS: usize = 16;
    const PREFIX: &'static [u8] = b"SHA256:";
    const LEN: usize = Self::PREFIX.len() + Self::HEX_DIGITS;

    /// The fingerprint of `canonical_text`.
    #[must_use]
    pub fn of(canonical_text: &[u8]) -> Self {
        let digest = Sha256::digest(canonical_text);
        // Each character is the prefix's, or a hex digit of a nibble of the digest (not a
        // secret: a table lookup is fine here).
        Self(std::array::from_fn(|i| {
            match i.checked_sub(Self::PREFIX.len()) {
                None => Self::PREFIX[i],
                Some(digit) => {
                    let byte = digest[digit / 2];
                    let nibble = if digit % 2 == 0 {
                        byte >> 4
                    } else {
                        byte & 0x0f
                    };
                    b"0123456789abcdef"[usize::from(nibble)]
                }
            }
        }))
    }

    /// The fingerprint as text, e.g. `SHA256:5d41402abc4b2a76`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.as_str())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn fingerprint_is_sha256_prefix() {
        // sha256("abc") = ba7816bf8f01cfea414140de5dae2223...
        assert_eq!(Fingerprint::of(b"abc").as_str(), "SHA256:ba7816bf8f01cfea");
    }
}
