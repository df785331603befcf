//! Expiring tokens: a key that carries the moment it stops being valid (`mint
//! --expires-in`).
//!
//! # Format
//!
//! `gbk1_` followed by lowercase hex digits of three fields, nothing between them:
//!
//! | field | bytes | hex digits |
//! | --- | --- | --- |
//! | the expiry, seconds since 1970-01-01 UTC, big endian | 8 | 16 |
//! | the MAC (HMAC-SHA256: 32, HMAC-MD5: 16) | 32 or 16 | 64 or 32 |
//! | the checksum: the first 4 bytes of SHA-256 of every character before it (the prefix included) | 4 | 8 |
//!
//! So a token is 93 characters (HMAC-SHA256) or 61 (HMAC-MD5), and its length tells the
//! algorithm as a plain key's does. The checksum is public and keyless: a secret scanner
//! recognises a token by the prefix and the checksum without the master (no false
//! positives), and a mistyped or truncated token is refused before any MAC is computed.
//!
//! What the MAC covers is in [`crate::derive`]'s documentation ("Messages"): the principal,
//! its generation, the expiry and the machine if the token is bound to one, tagged so that
//! it equals no other key's message. A token is refused from one second after its expiry
//! (allowing the verifier's clock skew, [`DEFAULT_CLOCK_SKEW`]), and like every key when its
//! principal is revoked or rotated past its generation.

use std::time::Duration;

use jiff::Timestamp;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::key::{Algorithm, TOKEN_PREFIX};

/// Bytes of the expiry field.
const EXPIRY_LEN: usize = 8;
/// Bytes of the checksum field.
const CHECKSUM_LEN: usize = 4;

/// The longest a token may live: one minted to expire later is refused by `mint`, and one
/// that claims to expire later than this from now (more the clock skew) is refused as
/// malformed by every verifier. A key that lives longer is a plain key.
pub const MAX_LIFETIME: Duration = Duration::from_secs(366 * 24 * 60 * 60);

/// How far the verifier's clock may be behind the minter's: a token is still accepted this
/// long after its expiry (`--clock-skew`).
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// The most clock skew a verifier allows ([`crate::verifier::Verifier::with_clock_skew`]
/// takes no more; `--clock-skew` refuses more): a clock further off is broken, and a token
/// would live that much longer than its admin said.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60 * 60);

/// How many characters a token of `alg` has: 93 (HMAC-SHA256) or 61 (HMAC-MD5).
///
/// ```
/// use gobuildkey::key::Algorithm;
/// use gobuildkey::token::token_len;
///
/// assert_eq!(token_len(Algorithm::HmacSha256), 93);
/// assert_eq!(token_len(Algorithm::HmacMd5), 61);
/// ```
#[must_use]
pub const fn token_len(alg: Algorithm) -> usize {
    TOKEN_PREFIX.len() + 2 * (EXPIRY_LEN + alg.mac_len() + CHECKSUM_LEN)
}

/// Whether `text` starts as a token does (`gbk1_`): what is then refused is refused as a
/// token, with [`TokenFormatError`]'s reasons.
#[must_use]
pub fn is_token(text: &[u8]) -> bool {
    text.starts_with(TOKEN_PREFIX.as_bytes())
}

/// A well-formed token's public fields: its algorithm, its expiry and where its MAC is.
#[derive(Clone, Copy)]
pub(crate) struct Fields<'a> {
    pub(crate) alg: Algorithm,
    /// Seconds since the epoch; always a moment [`Timestamp`] can hold.
    pub(crate) expires: i64,
    /// The MAC's lowercase hex digits.
    pub(crate) mac_hex: &'a [u8],
}

impl Fields<'_> {
    /// The expiry as a moment.
    pub(crate) fn expires_at(&self) -> Timestamp {
        // `parse` admits only seconds that Timestamp holds.
        Timestamp::from_second(self.expires).unwrap_or(Timestamp::MAX)
    }
}

/// Why a text that starts with `gbk1_` is not a well-formed token. Never carries the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    /// Neither 93 nor 61 characters: truncated, padded or glued to something.
    #[error(
        "the token has {found} characters: a gbk1_ token is 93 (hmac-sha256) or 61 (hmac-md5); copy it again whole"
    )]
    Length {
        /// How many characters were found.
        found: usize,
    },
    /// A character other than `0-9` and `a-f` after the prefix.
    #[error(
        "the token has characters other than 0-9 and a-f after gbk1_; copy it again as it was minted"
    )]
    NotLowercaseHex,
    /// The checksum does not match: a character was changed.
    #[error(
        "the token's checksum does not match: a character was changed or lost; copy it again as it was minted"
    )]
    Checksum,
    /// The expiry field names a moment no clock reaches (after 9999-12-31).
    #[error("the token's expiry is out of range: it was not minted by gobuildkey")]
    ExpiryOutOfRange,
}

/// Splits a token into its fields, checking its length, its digits, its checksum and that
/// its expiry is a moment: before any MAC is computed.
pub(crate) fn parse(text: &[u8]) -> Result<Fields<'_>, TokenFormatError> {
    let body = text
        .strip_prefix(TOKEN_PREFIX.as_bytes())
        .ok_or(TokenFormatError::Length { found: text.len() })?;
    let alg = Algorithm::ALL
        .into_iter()
        .find(|&alg| token_len(alg) == text.len())
        .ok_or(TokenFormatError::Length { found: text.len() })?;
    let lower_hex = |b: &u8| b.is_ascii_digit() | (b'a'..=b'f').contains(b);
    if !body.iter().all(lower_hex) {
        return Err(TokenFormatError::NotLowercaseHex);
    }
    let (signed, checksum_hex) = text.split_at(text.len() - 2 * CHECKSUM_LEN);
    let mut checksum = [0u8; CHECKSUM_LEN];
    base16ct::lower::decode(checksum_hex, &mut checksum)
        .map_err(|_| TokenFormatError::NotLowercaseHex)?;
    if !bool::from(checksum_of(signed).ct_eq(&checksum)) {
        return Err(TokenFormatError::Checksum);
    }
    let (expiry_hex, mac_hex) = body[..body.len() - 2 * CHECKSUM_LEN].split_at(2 * EXPIRY_LEN);
    let mut expiry = [0u8; EXPIRY_LEN];
    base16ct::lower::decode(expiry_hex, &mut expiry)
        .map_err(|_| TokenFormatError::NotLowercaseHex)?;
    let expires = i64::try_from(u64::from_be_bytes(expiry))
        .ok()
        .filter(|&s| Timestamp::from_second(s).is_ok())
        .ok_or(TokenFormatError::ExpiryOutOfRange)?;
    Ok(Fields {
        alg,
        expires,
        mac_hex,
    })
}

/// The token of `mac` (computed with `alg` over a message naming `expires`).
pub(crate) fn encode(expires: i64, mac: &[u8]) -> Zeroizing<String> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(EXPIRY_LEN + mac.len()));
    bytes.extend_from_slice(&expires.to_be_bytes());
    bytes.extend_from_slice(mac);
    let mut text = Zeroizing::new(String::with_capacity(
        TOKEN_PREFIX.len() + 2 * (bytes.len() + CHECKSUM_LEN),
    ));
    text.push_str(TOKEN_PREFIX);
    text.push_str(&crate::key::hex_of(&bytes));
    let checksum = checksum_of(text.as_bytes());
    text.push_str(&crate::key::hex_of(&checksum));
    text
}

fn checksum_of(signed: &[u8]) -> [u8; CHECKSUM_LEN] {
    let digest = Sha256::digest(signed);
    std::array::from_fn(|i| digest[i])
}

/// Whether a token that expires at `expires` is refused at `now`, allowing `skew`: it is
/// accepted through the second of its expiry and `skew` more, refused from the second after.
/// The one rule of expiry, for verifiers and for a builder's `check` (with no skew).
///
/// ```
/// use std::time::Duration;
/// use gobuildkey::token::has_expired;
///
/// let expires: jiff::Timestamp = "2026-12-01T00:00:00Z".parse()?;
/// let later = |s| expires + jiff::SignedDuration::from_secs(s);
/// assert!(!has_expired(expires, later(0), Duration::ZERO));
/// assert!(has_expired(expires, later(1), Duration::ZERO));
/// assert!(!has_expired(expires, later(60), Duration::from_secs(60)));
/// assert!(has_expired(expires, later(61), Duration::from_secs(60)));
/// # Ok::<(), jiff::Error>(())
/// ```
#[must_use]
pub fn has_expired(expires: Timestamp, now: Timestamp, skew: Duration) -> bool {
    !unexpired(expires.as_second(), now, skew)
}

fn unexpired(expires: i64, now: Timestamp, skew: Duration) -> bool {
    let skew = i64::try_from(skew.as_secs()).unwrap_or(i64::MAX);
    now.as_second() <= expires.saturating_add(skew)
}

/// Whether a token that expires at `expires` would live longer than a token may: further
/// from `now` than [`MAX_LIFETIME`] and `skew`. The one rule of the longest life: `mint`
/// refuses to make such a token (no skew), every verifier refuses one as malformed.
///
/// ```
/// use std::time::Duration;
/// use gobuildkey::token::{MAX_LIFETIME, lives_too_long};
///
/// let now: jiff::Timestamp = "2026-12-01T00:00:00Z".parse()?;
/// let longest = now + jiff::SignedDuration::try_from(MAX_LIFETIME)?;
/// assert!(!lives_too_long(longest, now, Duration::ZERO));
/// assert!(lives_too_long(longest + jiff::SignedDuration::from_secs(1), now, Duration::ZERO));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub fn lives_too_long(expires: Timestamp, now: Timestamp, skew: Duration) -> bool {
    too_far(expires.as_second(), now, skew)
}

/// [`lives_too_long`], of an expiry in seconds since the epoch.
pub(crate) fn too_far(expires: i64, now: Timestamp, skew: Duration) -> bool {
    let most = MAX_LIFETIME.saturating_add(skew).as_secs();
    expires.saturating_sub(now.as_second()) > i64::try_from(most).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn token(alg: Algorithm, expires: i64) -> Zeroizing<String> {
        encode(expires, &vec![0xab; alg.mac_len()])
    }

    #[test]
    fn a_token_has_the_documented_layout() {
        let text = token(Algorithm::HmacSha256, 1_700_000_000);
        assert_eq!(text.len(), 93);
        assert!(text.starts_with("gbk1_000000006553f100abab"));
        let digest = Sha256::digest(&text.as_bytes()[..85]);
        assert_eq!(&text[85..], hex::encode(&digest[..4]));
        let fields = parse(text.as_bytes()).unwrap();
        assert_eq!(fields.alg, Algorithm::HmacSha256);
        assert_eq!(fields.expires, 1_700_000_000);
        assert_eq!(fields.mac_hex, "ab".repeat(32).as_bytes());
        assert_eq!(fields.expires_at().to_string(), "2023-11-14T22:13:20Z");
        let md5 = token(Algorithm::HmacMd5, 0);
        assert_eq!(md5.len(), 61);
        assert_eq!(parse(md5.as_bytes()).unwrap().alg, Algorithm::HmacMd5);
    }

    #[test]
    fn every_changed_character_is_caught_by_the_checksum() {
        let text = token(Algorithm::HmacSha256, 1_700_000_000);
        for at in TOKEN_PREFIX.len()..text.len() {
            for digit in b"0123456789abcdef" {
                let mut bytes = text.as_bytes().to_vec();
                if bytes[at] == *digit {
                    continue;
                }
                bytes[at] = *digit;
                assert_eq!(
                    parse(&bytes).err(),
                    Some(TokenFormatError::Checksum),
                    "{at}"
                );
            }
        }
    }

    #[test]
    fn truncated_padded_and_uppercase_tokens_are_refused() {
        let text = token(Algorithm::HmacSha256, 1_700_000_000);
        let bytes = text.as_bytes();
        assert_eq!(
            parse(&bytes[..92]).err(),
            Some(TokenFormatError::Length { found: 92 })
        );
        assert_eq!(
            parse(&[bytes, b"0"].concat()).err(),
            Some(TokenFormatError::Length { found: 94 })
        );
        assert_eq!(
            parse(text.to_uppercase().replace("GBK1_", "gbk1_").as_bytes()).err(),
            Some(TokenFormatError::NotLowercaseHex)
        );
        assert_eq!(
            parse(b"gbk1").err(),
            Some(TokenFormatError::Length { found: 4 })
        );
    }

    #[test]
    fn an_expiry_no_clock_reaches_is_refused() {
        for seconds in [u64::MAX, 1 << 63, 253_402_300_800] {
            let mut text = String::from(TOKEN_PREFIX);
            text.push_str(&hex::encode(seconds.to_be_bytes()));
            text.push_str(&"ab".repeat(32));
            let checksum = checksum_of(text.as_bytes());
            text.push_str(&hex::encode(checksum));
            assert_eq!(
                parse(text.as_bytes()).err(),
                Some(TokenFormatError::ExpiryOutOfRange),
                "{seconds}"
            );
        }
    }

    #[test]
    fn expiry_allows_the_skew_and_not_a_second_more() {
        let expires = 1_700_000_000;
        let at = |s| Timestamp::from_second(s).unwrap();
        let skew = Duration::from_secs(60);
        assert!(unexpired(expires, at(expires), Duration::ZERO));
        assert!(!unexpired(expires, at(expires + 1), Duration::ZERO));
        assert!(unexpired(expires, at(expires + 60), skew));
        assert!(!unexpired(expires, at(expires + 61), skew));
        assert!(unexpired(i64::MAX, at(expires), Duration::MAX));
    }

    #[test]
    fn a_lifetime_beyond_the_longest_is_too_far() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let most = i64::try_from(MAX_LIFETIME.as_secs()).unwrap();
        let skew = Duration::from_secs(60);
        assert!(!too_far(now.as_second() + most + 60, now, skew));
        assert!(too_far(now.as_second() + most + 61, now, skew));
        assert!(!too_far(0, now, skew));
    }
}
