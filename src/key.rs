//! Build keys and their format: the [`Algorithm`]s, [`BuildKey`] and the one rule of a
//! well-formed key, a key as presented to a verifier ([`Presented`]), and what looks like a
//! key and so is never echoed ([`looks_like_key`], [`redact_keys`]).

use std::fmt;
use std::str::FromStr;

use zeroize::Zeroizing;

use crate::fingerprint::Fingerprint;
use crate::machine::Machine;
use crate::text::{Trim, trim_space};

/// The MAC a key is computed with.
///
/// ```
/// use gobuildkey::key::Algorithm;
///
/// assert_eq!("hmac-md5".parse::<Algorithm>(), Ok(Algorithm::HmacMd5));
/// assert_eq!(Algorithm::default().hex_len(), 64);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// HMAC-SHA256: 64 hex digits. The default.
    #[default]
    HmacSha256,
    /// HMAC-MD5: 32 hex digits, what Go's `genbuilderkey` mints, for farms that migrate.
    HmacMd5,
}

impl Algorithm {
    /// Every algorithm, default first.
    pub const ALL: [Self; 2] = [Self::HmacSha256, Self::HmacMd5];

    /// The name used on the command line and in documents: `hmac-sha256`, `hmac-md5`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::HmacSha256 => "hmac-sha256",
            Self::HmacMd5 => "hmac-md5",
        }
    }

    /// How many bytes the MAC has.
    #[must_use]
    pub const fn mac_len(self) -> usize {
        match self {
            Self::HmacSha256 => 32,
            Self::HmacMd5 => 16,
        }
    }

    /// How many hex digits a key of this algorithm has.
    #[must_use]
    pub const fn hex_len(self) -> usize {
        self.mac_len() * 2
    }

    fn from_hex_len(len: usize) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.hex_len() == len)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|alg| alg.name() == s)
            .ok_or(UnknownAlgorithm)
    }
}

/// A set of algorithms: those a principal's keys may be in, or a keyring master's keys were
/// minted with. Iterates in [`Algorithm::ALL`]'s order; shown as names joined by `, `.
///
/// ```
/// use gobuildkey::key::{Algorithm, AlgorithmSet};
///
/// let mut set = AlgorithmSet::only(Algorithm::HmacMd5);
/// set.insert(Algorithm::HmacSha256);
/// assert!(set.contains(Algorithm::HmacMd5));
/// assert_eq!(set.to_string(), "hmac-sha256, hmac-md5");
/// assert!(AlgorithmSet::default().is_empty());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AlgorithmSet(u8);

impl AlgorithmSet {
    /// Every algorithm.
    pub const ALL: Self = Self(0b11);

    /// The set of `alg` alone.
    #[must_use]
    pub const fn only(alg: Algorithm) -> Self {
        Self(Self::bit(alg))
    }

    const fn bit(alg: Algorithm) -> u8 {
        match alg {
            Algorithm::HmacSha256 => 1,
            Algorithm::HmacMd5 => 2,
        }
    }

    /// Whether `alg` is in the set.
    #[must_use]
    pub const fn contains(self, alg: Algorithm) -> bool {
        self.0 & Self::bit(alg) != 0
    }

    /// Adds `alg`.
    pub fn insert(&mut self, alg: Algorithm) {
        self.0 |= Self::bit(alg);
    }

    /// Removes `alg`.
    pub fn remove(&mut self, alg: Algorithm) {
        self.0 &= !Self::bit(alg);
    }

    /// Whether no algorithm is in the set.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Both sets together.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The algorithms in the set, in [`Algorithm::ALL`]'s order.
    pub fn iter(self) -> impl Iterator<Item = Algorithm> {
        Algorithm::ALL
            .into_iter()
            .filter(move |&alg| self.contains(alg))
    }
}

impl FromIterator<Algorithm> for AlgorithmSet {
    fn from_iter<I: IntoIterator<Item = Algorithm>>(iter: I) -> Self {
        let mut set = Self::default();
        for alg in iter {
            set.insert(alg);
        }
        set
    }
}

impl fmt::Display for AlgorithmSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Algorithm::name).collect();
        f.write_str(&names.join(", "))
    }
}

/// A name that is not `hmac-sha256` or `hmac-md5`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown algorithm: use hmac-sha256 or hmac-md5")]
pub struct UnknownAlgorithm;

/// The prefix of gobuildkey's own tokens; no principal or other word may start with it.
pub const TOKEN_PREFIX: &str = "gbk1_";

/// Whether `text` holds what looks like a key: a run of exactly 32, or of 64 or more, hex
/// digits (either case) — whatever surrounds it: a space, a `\r`, quotes, `--option=`, a
/// stray hex digit glued to a key — or a gobuildkey token. (Runs of 33 to 63 digits, such
/// as a 40-digit git commit named in a `--reason`, are not keys.) The one rule of what is never echoed: a
/// word on the command line, a reload's error.
///
/// ```
/// use gobuildkey::key::looks_like_key;
///
/// assert!(looks_like_key(&b"--key=\"0123456789abcdef0123456789ABCDEF\""[..]));
/// assert!(!looks_like_key(b"host-linux-arm-aws"));
/// ```
#[must_use]
pub fn looks_like_key(text: &[u8]) -> bool {
    let token = TOKEN_PREFIX.as_bytes();
    text.windows(token.len()).any(|w| w == token) || key_runs(text).next().is_some()
}

/// The byte ranges of `text` that look like keys ([`looks_like_key`]).
fn key_runs(text: &[u8]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut start = 0;
    text.split(|b| !b.is_ascii_hexdigit())
        .filter_map(move |run| {
            let range = start..start + run.len();
            start += run.len() + 1;
            (run.len() == 32 || run.len() >= 64).then_some(range)
        })
}

/// `text` with what looks like a key ([`looks_like_key`]) replaced by `[key]`: a token from
/// its prefix to the end of its word. For messages that may hold a pasted key and go where
/// others read them (a service's health answer, its log).
///
/// ```
/// use gobuildkey::key::redact_keys;
///
/// let key = "91845ce35fee606a271e60bef0d1ce1b4a2ccec5d17171e3113f809168cd7b9d";
/// assert_eq!(redact_keys(&format!("unknown field \"{key}\"")), "unknown field \"[key]\"");
/// assert_eq!(redact_keys("token gbk1_abc-9 here"), "token [key] here");
/// // A key with a hex digit glued to it is still a key.
/// assert_eq!(redact_keys(&format!("principal f{key}")), "principal [key]");
/// ```
#[must_use]
pub fn redact_keys(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut kept = 0;
    // Hex runs and tokens are ASCII, so every cut is at a character boundary.
    let mut cuts: Vec<std::ops::Range<usize>> = key_runs(bytes).collect();
    let mut from = 0;
    while let Some(at) = text[from..].find(TOKEN_PREFIX) {
        let start = from + at;
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .map_or(text.len(), |n| start + n);
        cuts.push(start..end);
        from = end;
    }
    cuts.sort_by_key(|r| r.start);
    for cut in cuts {
        if cut.start < kept {
            continue;
        }
        out.push_str(&text[kept..cut.start]);
        out.push_str("[key]");
        kept = cut.end;
    }
    out.push_str(&text[kept..]);
    out
}

/// The most bytes of a presented key that are read (from a file, standard input, a
/// line): a key is 64 characters, so anything longer than this is refused unread.
pub const MAX_KEY_INPUT: usize = 4096;

/// A key as presented to [`crate::verifier::Verifier::verify_at`]: its bytes as received
/// and the rule they are trimmed by. A byte slice (anything `AsRef<[u8]>`) converts into one
/// trimmed by [`Trim::Space`], as a key file is; [`Presented::header`] is a header's value.
///
/// Its [`Debug`] shows only the length and the rule, never the bytes.
#[derive(Clone, Copy)]
pub struct Presented<'a> {
    raw: &'a [u8],
    trim: Trim,
    machine: Option<&'a Machine>,
}

impl<'a> Presented<'a> {
    /// `raw`, to be trimmed by `trim`.
    #[must_use]
    pub fn new(raw: &'a [u8], trim: Trim) -> Self {
        Self {
            raw,
            trim,
            machine: None,
        }
    }

    /// The same key, presented from `machine` (the agent's `X-Go-Builder-Hostname`): a key
    /// bound to that machine ([`crate::derive::Deriver::derive_machine`]) verifies too, as
    /// well as the principal's shared key.
    ///
    /// ```
    /// use gobuildkey::derive::Deriver;
    /// use gobuildkey::key::{Algorithm, Presented};
    /// use gobuildkey::master::MasterSecret;
    /// use gobuildkey::verifier::Verifier;
    ///
    /// let master = MasterSecret::from_text(b"an example master, 32 bytes long")?;
    /// let (host, machine) = ("host-a".parse()?, "builder-1".parse()?);
    /// let key = Deriver::new(&master, Algorithm::HmacSha256).derive_machine(&host, 0, &machine, 0);
    /// let verifier = Verifier::new(&master, Algorithm::HmacSha256);
    /// let bytes = key.expose_secret().as_bytes();
    ///
    /// assert!(verifier.verify(&host, Presented::from(bytes).from_machine(&machine)).verdict.is_valid());
    /// // Not from another machine, nor without saying which machine.
    /// let other: gobuildkey::machine::Machine = "builder-2".parse()?;
    /// assert!(!verifier.verify(&host, Presented::from(bytes).from_machine(&other)).verdict.is_valid());
    /// assert!(!verifier.verify(&host, bytes).verdict.is_valid());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    /// `None` (the machine unknown) leaves it presented from no machine in particular.
    pub fn from_machine(mut self, machine: impl Into<Option<&'a Machine>>) -> Self {
        self.machine = machine.into();
        self
    }

    /// The machine it was presented from, if that is known.
    #[must_use]
    pub fn machine(&self) -> Option<&'a Machine> {
        self.machine
    }

    /// The value of an HTTP header: trimmed by [`Trim::Header`], as Go's coordinator gets it.
    #[must_use]
    pub fn header(raw: &'a [u8]) -> Self {
        Self::new(raw, Trim::Header)
    }

    /// The text that must be a key: the bytes trimmed by their rule.
    #[must_use]
    pub fn text(&self) -> &'a [u8] {
        self.trim.apply(self.raw)
    }

    /// The rule the bytes are trimmed by.
    #[must_use]
    pub fn trim(&self) -> Trim {
        self.trim
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> From<&'a T> for Presented<'a> {
    fn from(raw: &'a T) -> Self {
        Self::new(raw.as_ref(), Trim::Space)
    }
}

impl fmt::Debug for Presented<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Presented")
            .field("len", &self.raw.len())
            .field("trim", &self.trim)
            .field("machine", &self.machine)
            .finish()
    }
}

/// A build key: lowercase hex digits, held in memory that is wiped on drop.
///
/// Its [`Debug`] shows only the fingerprint. Get one from
/// [`crate::derive::Deriver::derive`] or by parsing a key someone handed over with
/// [`BuildKey::parse`].
pub struct BuildKey {
    text: Zeroizing<String>,
    alg: Algorithm,
    /// When it stops being valid, for an expiring token ([`crate::token`]).
    expires: Option<jiff::Timestamp>,
}

impl BuildKey {
    /// Parses a key as found in a key file or on standard input: surrounding whitespace is
    /// trimmed ([`trim_space`]); what remains must be 64 (HMAC-SHA256) or 32 (HMAC-MD5)
    /// lowercase hex digits.
    ///
    /// ```
    /// use gobuildkey::key::{Algorithm, BuildKey};
    ///
    /// let key = BuildKey::parse(b"1b9d4aa92ead7780b92e7de703aed11c\n")?;
    /// assert_eq!(key.algorithm(), Algorithm::HmacMd5);
    /// assert!(BuildKey::parse(b"1B9D4AA92EAD7780B92E7DE703AED11C").is_err());
    /// # Ok::<(), gobuildkey::key::KeyFormatError>(())
    /// ```
    ///
    /// # Errors
    /// [`KeyFormatError`] when the text is not a well-formed key. The error never contains
    /// the text.
    pub fn parse(raw: &[u8]) -> Result<Self, KeyFormatError> {
        let (text, alg, expires) = key_text(raw)?;
        let mut owned = Zeroizing::new(String::with_capacity(text.len()));
        // `key_text` admits only ASCII (hex digits, a token's prefix), so every byte is a char.
        owned.extend(text.iter().map(|&b| char::from(b)));
        Ok(Self {
            text: owned,
            alg,
            expires,
        })
    }

    /// The key whose MAC is `mac` (computed with `alg`): its lowercase hex.
    pub(crate) fn from_mac(mac: &[u8], alg: Algorithm) -> Self {
        Self {
            text: hex_of(mac),
            alg,
            expires: None,
        }
    }

    /// The expiring token `text` (made by [`crate::token`]), valid until `expires`.
    pub(crate) fn from_token(
        text: Zeroizing<String>,
        alg: Algorithm,
        expires: jiff::Timestamp,
    ) -> Self {
        Self {
            text,
            alg,
            expires: Some(expires),
        }
    }

    /// When the key stops being valid: `Some` for an expiring token ([`crate::token`]),
    /// `None` for a plain key.
    #[must_use]
    pub fn expires(&self) -> Option<jiff::Timestamp> {
        self.expires
    }

    /// The algorithm the key's length says it was minted with.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The key's text. It is a secret: write it only where the user asked for it.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.text
    }

    /// The key's fingerprint, safe to show and compare.
    #[must_use]
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(self.text.as_bytes())
    }

    /// Whether two keys are the same, compared in constant time.
    ///
    /// ```
    /// use gobuildkey::key::BuildKey;
    ///
    /// let a = BuildKey::parse(b"1b9d4aa92ead7780b92e7de703aed11c")?;
    /// let b = BuildKey::parse(b" 1b9d4aa92ead7780b92e7de703aed11c\n")?;
    /// let c = BuildKey::parse(b"1b9d4aa92ead7780b92e7de703aed11d")?;
    /// assert!(a.ct_eq(&b) && !a.ct_eq(&c));
    /// # Ok::<(), gobuildkey::key::KeyFormatError>(())
    /// ```
    #[must_use]
    pub fn ct_eq(&self, other: &Self) -> bool {
        // Lengths are public (they name the algorithm); `subtle` compares the rest.
        subtle::ConstantTimeEq::ct_eq(self.text.as_bytes(), other.text.as_bytes()).into()
    }
}

impl fmt::Debug for BuildKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildKey")
            .field("alg", &self.alg)
            .field("fingerprint", &self.fingerprint().as_str())
            .finish_non_exhaustive()
    }
}

/// What a well-formed key text is: its algorithm and, for a token, its expiry.
type KeyText<'a> = (&'a [u8], Algorithm, Option<jiff::Timestamp>);

/// The one rule of what a well-formed key looks like: after trimming, 64 or 32 lowercase
/// hex digits, or an expiring token ([`crate::token`]). Returns the trimmed text, the
/// algorithm its length implies and a token's expiry.
fn key_text(raw: &[u8]) -> Result<KeyText<'_>, KeyFormatError> {
    let text = trim_space(raw);
    if text.is_empty() {
        return Err(KeyFormatError::Empty);
    }
    if crate::token::is_token(text) {
        let fields = crate::token::parse(text).map_err(KeyFormatError::Token)?;
        return Ok((text, fields.alg, Some(fields.expires_at())));
    }
    let alg =
        Algorithm::from_hex_len(text.len()).ok_or(KeyFormatError::Length { found: text.len() })?;
    if !text.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(KeyFormatError::NotLowercaseHex);
    }
    Ok((text, alg, None))
}

/// Why a text is not a well-formed build key. Never carries the text itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    /// Nothing but whitespace.
    #[error(
        "the key is empty: a build key is 64 (hmac-sha256) or 32 (hmac-md5) lowercase hex digits"
    )]
    Empty,
    /// Neither 64 nor 32 characters after trimming.
    #[error(
        "the key has {found} characters: a build key is 64 (hmac-sha256) or 32 (hmac-md5) lowercase hex digits"
    )]
    Length {
        /// How many characters were found after trimming.
        found: usize,
    },
    /// More than [`MAX_KEY_INPUT`] bytes of input: not read to the end.
    #[error(
        "the key input is longer than {MAX_KEY_INPUT} bytes: a build key is 64 (hmac-sha256) or 32 (hmac-md5) lowercase hex digits"
    )]
    TooLong,
    /// A character other than `0-9` and `a-f`.
    #[error("the key has characters other than 0-9 and a-f: a build key is lowercase hex digits")]
    NotLowercaseHex,
    /// It starts as an expiring token does (`gbk1_`) and is not a well-formed one.
    #[error(transparent)]
    Token(#[from] crate::token::TokenFormatError),
}

/// Lowercase hex of `bytes`, encoded in constant time (`base16ct`: no table indexed by the
/// secret) into a buffer of the final size, which becomes the string: no copy is left
/// behind.
pub(crate) fn hex_of(bytes: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(base16ct::lower::encode_string(bytes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn presented_keys_carry_their_rule_and_hide_their_bytes() {
        let raw = "\u{3000}abc\t".as_bytes();
        assert_eq!(Presented::from(raw).text(), b"abc");
        assert_eq!(Presented::header(raw).text(), "\u{3000}abc".as_bytes());
        let shown = format!("{:?}", Presented::header(b"secret-key"));
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn key_text_rule() {
        let sha = "ab".repeat(32);
        let md5 = "cd".repeat(16);
        assert_eq!(key_text(sha.as_bytes()).unwrap().1, Algorithm::HmacSha256);
        assert_eq!(
            key_text(format!("\n {md5}\r\n").as_bytes()).unwrap().1,
            Algorithm::HmacMd5
        );
        assert_eq!(key_text(b" \n"), Err(KeyFormatError::Empty));
        assert_eq!(
            key_text(&[b'a'; 63]),
            Err(KeyFormatError::Length { found: 63 })
        );
        assert_eq!(
            key_text("AB".repeat(32).as_bytes()),
            Err(KeyFormatError::NotLowercaseHex)
        );
        assert_eq!(
            key_text("g".repeat(32).as_bytes()),
            Err(KeyFormatError::NotLowercaseHex)
        );
    }
}
