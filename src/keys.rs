//! Principals, algorithms, key derivation, verification and fingerprints.
//!
//! A build key is the lowercase hex of HMAC(master, principal). [`Deriver`] holds the
//! master's precomputed HMAC state for one [`Algorithm`]; its [`Deriver::derive`] (what
//! `mint` prints) and the comparison that [`crate::verifier::Verifier::verify`] (what
//! `verify` and every other verifier call) makes both compute the MAC through one private
//! function, so they cannot drift apart.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use zeroize::Zeroizing;

use crate::master::MasterSecret;

/// Trims what Go's `bytes.TrimSpace` and `strings.TrimSpace` trim: every rune at either end
/// for which Go's `unicode.IsSpace` is true, the text being decoded as UTF-8 rune by rune
/// from each end. A byte that is not part of valid UTF-8 is no space, so it stops the
/// trimming at its end, and whatever lies beyond it stays.
///
/// The spaces are the Unicode White_Space code points: `\t`, `\n`, `\v`, `\f`, `\r`,
/// space, U+0085, U+00A0, U+1680, U+2000 to U+200A, U+2028, U+2029, U+202F, U+205F and
/// U+3000 (Go special-cases Latin-1, with the same eight; U+001C to U+001F, which some
/// libraries count as spaces, are not). U+200B, U+180E and U+FEFF are not spaces.
///
/// This is the one trimming rule for text that Go trims: master files and master commands'
/// output (Go's `genbuilderkey` and coordinator read the master with `bytes.TrimSpace`),
/// key files and keys on standard input (the buildlet reads its key with
/// `strings.TrimSpace`), and the keys of `verify --batch` lines. Keys in HTTP headers are
/// trimmed as Go's `net/http` trims header values, no more: [`Trim::Header`].
///
/// ```
/// use gobuildkey::keys::trim_space;
///
/// assert_eq!(trim_space(b"\x0b\t key \r\n"), b"key");
/// assert_eq!(trim_space("\u{a0}\u{3000}key\u{2028}\n".as_bytes()), b"key");
/// // An invalid byte is no space: trimming stops at it.
/// assert_eq!(trim_space(b"\xff key\x80 "), b"\xff key\x80");
/// ```
#[must_use]
pub fn trim_space(text: &[u8]) -> &[u8] {
    // The valid UTF-8 at the start (up to the first invalid byte, if any) loses its leading
    // spaces; the valid UTF-8 at the end (after the last invalid byte) its trailing ones.
    // `utf8_chunks` splits text exactly where Go's decoder finds runes and invalid bytes:
    // an invalid byte never starts a rune that the decoder would read across it.
    let start = text.utf8_chunks().next().map_or(0, |first| {
        let valid = first.valid();
        valid.len() - valid.trim_start_matches(is_go_space).len()
    });
    let text = &text[start..];
    let end = match text.utf8_chunks().last() {
        Some(last) if last.invalid().is_empty() => {
            let valid = last.valid();
            text.len() - (valid.len() - valid.trim_end_matches(is_go_space).len())
        }
        _ => text.len(),
    };
    &text[..end]
}

/// The code points for which Go's `unicode.IsSpace` is true: its Latin-1 eight, then the
/// Unicode White_Space code points above Latin-1 (PropList.txt, unchanged since Unicode
/// 6.3 took U+180E out). Spelt out so that they cannot move with the Rust toolchain's
/// Unicode version; a unit test checks that they are what [`char::is_whitespace`] (also
/// White_Space) says today.
const GO_SPACES: [char; 25] = [
    // Latin-1: \t \n \v \f \r, space, NEXT LINE, NO-BREAK SPACE.
    '\t', '\n', '\u{0b}', '\u{0c}', '\r', ' ', '\u{85}', '\u{a0}',
    // OGHAM SPACE MARK; EN QUAD to HAIR SPACE.
    '\u{1680}', '\u{2000}', '\u{2001}', '\u{2002}', '\u{2003}', '\u{2004}', '\u{2005}', '\u{2006}',
    '\u{2007}', '\u{2008}', '\u{2009}', '\u{200a}',
    // LINE and PARAGRAPH SEPARATOR, NARROW NO-BREAK SPACE, MEDIUM MATHEMATICAL SPACE,
    // IDEOGRAPHIC SPACE.
    '\u{2028}', '\u{2029}', '\u{202f}', '\u{205f}', '\u{3000}',
];

/// Whether Go's `unicode.IsSpace` is true for `c`.
fn is_go_space(c: char) -> bool {
    GO_SPACES.contains(&c)
}

/// Which rule a text is trimmed by before it is used.
///
/// ```
/// use gobuildkey::keys::Trim;
///
/// let raw = " key\u{a0}\t".as_bytes();
/// assert_eq!(Trim::Space.apply(raw), b"key");
/// assert_eq!(Trim::Header.apply(raw), "key\u{a0}".as_bytes());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Trim {
    /// Go's `bytes.TrimSpace`, [`trim_space`]: for masters, key files, standard input and
    /// batch lines. The default.
    #[default]
    Space,
    /// What Go's `net/http` removes around a header value before the coordinator reads
    /// it: spaces and tabs at both ends, nothing else. For keys and host types in HTTP
    /// headers (`gobuildkey serve`).
    Header,
}

impl Trim {
    /// `text` trimmed by this rule.
    #[must_use]
    pub fn apply(self, text: &[u8]) -> &[u8] {
        match self {
            Self::Space => trim_space(text),
            Self::Header => {
                let is_ows = |b: &u8| matches!(b, b' ' | b'\t');
                let start = text.iter().position(|b| !is_ows(b)).unwrap_or(text.len());
                let end = text
                    .iter()
                    .rposition(|b| !is_ows(b))
                    .map_or(start, |i| i + 1);
                &text[start..end]
            }
        }
    }
}

/// A key as presented to [`crate::verifier::Verifier::verify_at`]: its bytes as received
/// and the rule they are trimmed by. A byte slice (anything `AsRef<[u8]>`) converts into one
/// trimmed by [`Trim::Space`], as a key file is; [`Presented::header`] is a header's value.
///
/// Its [`Debug`] shows only the length and the rule, never the bytes.
#[derive(Clone, Copy)]
pub struct Presented<'a> {
    raw: &'a [u8],
    trim: Trim,
}

impl<'a> Presented<'a> {
    /// `raw`, to be trimmed by `trim`.
    #[must_use]
    pub fn new(raw: &'a [u8], trim: Trim) -> Self {
        Self { raw, trim }
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
            .finish()
    }
}

/// The name a key is minted for: a host type (`host-linux-arm-aws`), a person's token
/// (`user-relui`) or a bare builder name (`linux-amd64`).
///
/// A principal is 1 to 128 characters of `a-z`, `0-9`, `.`, `_` and `-`, starting with a
/// letter or digit, with no `..`. The rule keeps principals safe as file-name parts
/// (`~/.gobuildkey-PRINCIPAL`) and leaves `#` free as a separator.
///
/// ```
/// use gobuildkey::keys::Principal;
///
/// let p: Principal = "host-darwin-amd64-12_0".parse()?;
/// assert_eq!(p.as_str(), "host-darwin-amd64-12_0");
/// assert!("Host-Linux".parse::<Principal>().is_err());
/// assert!("host/../../etc".parse::<Principal>().is_err());
/// # Ok::<(), gobuildkey::keys::PrincipalError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal(pub(crate) String);

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
        let allowed = |b: &u8| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-');
        !bytes.is_empty()
            && bytes.len() <= Self::MAX_LEN
            && bytes[0].is_ascii_lowercase() | bytes[0].is_ascii_digit()
            && bytes.iter().all(allowed)
            && !name.contains("..")
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
    /// use gobuildkey::keys::{Kind, Principal};
    ///
    /// assert_eq!("host-linux-arm-aws".parse::<Principal>()?.kind(), Kind::Host);
    /// assert_eq!("user-relui".parse::<Principal>()?.kind(), Kind::User);
    /// assert_eq!("linux-amd64".parse::<Principal>()?.kind(), Kind::Other);
    /// # Ok::<(), gobuildkey::keys::PrincipalError>(())
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

/// Quotes `text` with every control, quote and non-ASCII character escaped, cut to `max`
/// characters, so that an untrusted string cannot move the cursor or recolour a terminal.
///
/// ```
/// assert_eq!(gobuildkey::keys::escape_for_terminal("a\x1b[2Jb", 64), r#""a\u{1b}[2Jb""#);
/// ```
#[must_use]
pub fn escape_for_terminal(text: &str, max: usize) -> String {
    let mut shown: String = text
        .chars()
        .take(max)
        .flat_map(char::escape_default)
        .collect();
    if text.chars().count() > max {
        shown.push_str("...");
    }
    format!("\"{shown}\"")
}

/// The MAC a key is computed with.
///
/// ```
/// use gobuildkey::keys::Algorithm;
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
/// use gobuildkey::keys::{Algorithm, AlgorithmSet};
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

/// Whether `text` holds what looks like a key: a run of exactly 32 or 64 hex digits (either
/// case) with no hex digit on either side — whatever surrounds it: a space, a `\r`,
/// quotes, `--option=` — or a gobuildkey token. The one rule of what is never echoed: a
/// word on the command line, a reload's error.
///
/// ```
/// use gobuildkey::keys::looks_like_key;
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
            matches!(run.len(), 32 | 64).then_some(range)
        })
}

/// `text` with what looks like a key ([`looks_like_key`]) replaced by `[key]`: a token from
/// its prefix to the end of its word. For messages that may hold a pasted key and go where
/// others read them (a service's health answer, its log).
///
/// ```
/// use gobuildkey::keys::redact_keys;
///
/// let key = "91845ce35fee606a271e60bef0d1ce1b4a2ccec5d17171e3113f809168cd7b9d";
/// assert_eq!(redact_keys(&format!("unknown field \"{key}\"")), "unknown field \"[key]\"");
/// assert_eq!(redact_keys("token gbk1_abc-9 here"), "token [key] here");
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

/// A build key: lowercase hex digits, held in memory that is wiped on drop.
///
/// Its [`Debug`] shows only the fingerprint. Get one from [`Deriver::derive`] or by parsing
/// a key someone handed over with [`BuildKey::parse`].
pub struct BuildKey {
    text: Zeroizing<String>,
    alg: Algorithm,
}

impl BuildKey {
    /// Parses a key as found in a key file or on standard input: surrounding whitespace is
    /// trimmed ([`trim_space`]); what remains must be 64 (HMAC-SHA256) or 32 (HMAC-MD5)
    /// lowercase hex digits.
    ///
    /// ```
    /// use gobuildkey::keys::{Algorithm, BuildKey};
    ///
    /// let key = BuildKey::parse(b"1b9d4aa92ead7780b92e7de703aed11c\n")?;
    /// assert_eq!(key.algorithm(), Algorithm::HmacMd5);
    /// assert!(BuildKey::parse(b"1B9D4AA92EAD7780B92E7DE703AED11C").is_err());
    /// # Ok::<(), gobuildkey::keys::KeyFormatError>(())
    /// ```
    ///
    /// # Errors
    /// [`KeyFormatError`] when the text is not a well-formed key. The error never contains
    /// the text.
    pub fn parse(raw: &[u8]) -> Result<Self, KeyFormatError> {
        let (text, alg) = key_text(raw)?;
        let mut owned = Zeroizing::new(String::with_capacity(text.len()));
        // `key_text` admits only ASCII hex digits, so every byte is a char.
        owned.extend(text.iter().map(|&b| char::from(b)));
        Ok(Self { text: owned, alg })
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
    /// use gobuildkey::keys::BuildKey;
    ///
    /// let a = BuildKey::parse(b"1b9d4aa92ead7780b92e7de703aed11c")?;
    /// let b = BuildKey::parse(b" 1b9d4aa92ead7780b92e7de703aed11c\n")?;
    /// let c = BuildKey::parse(b"1b9d4aa92ead7780b92e7de703aed11d")?;
    /// assert!(a.ct_eq(&b) && !a.ct_eq(&c));
    /// # Ok::<(), gobuildkey::keys::KeyFormatError>(())
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

/// The one rule of what a well-formed key looks like: after trimming, 64 or 32 lowercase
/// hex digits. Returns the trimmed text and the algorithm its length implies.
fn key_text(raw: &[u8]) -> Result<(&[u8], Algorithm), KeyFormatError> {
    let text = trim_space(raw);
    if text.is_empty() {
        return Err(KeyFormatError::Empty);
    }
    let alg =
        Algorithm::from_hex_len(text.len()).ok_or(KeyFormatError::Length { found: text.len() })?;
    if !text.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(KeyFormatError::NotLowercaseHex);
    }
    Ok((text, alg))
}

/// Why a text is not a well-formed build key. Never carries the text itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
}

/// The outcome of a verification.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The presented key is the principal's key.
    Valid,
    /// It is not; the reason may be shown to the presenter, it reveals nothing secret.
    Invalid(Reason),
}

impl Verdict {
    /// Whether the key was accepted.
    #[must_use]
    pub fn is_valid(self) -> bool {
        self == Self::Valid
    }
}

/// Why a presented key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// Well-formed, but not the principal's key under this master.
    Mismatch,
    /// Not a key of the expected algorithm at all: empty, wrong length or not lowercase hex.
    Malformed,
    /// The principal is revoked: no key of it verifies.
    Revoked,
    /// The principal is not of the kind this verifier accepts (a `user-` token presented
    /// as a host, say).
    WrongKind,
}

impl Reason {
    /// A one-word name for logs and protocols: `invalid`, `malformed`, `revoked`, `kind`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mismatch => "invalid",
            Self::Malformed => "malformed",
            Self::Revoked => "revoked",
            Self::WrongKind => "kind",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The master's keyed HMAC state for one algorithm: derives keys (and, inside
/// [`crate::verifier::Verifier`], checks them).
///
/// Build it once and reuse it: the keyed state is computed once, and every derivation or
/// verification starts from a copy of it.
///
/// ```
/// use gobuildkey::keys::{Algorithm, Deriver, Principal};
/// use gobuildkey::master::MasterSecret;
///
/// let master = MasterSecret::from_text(b"an example master, 32 bytes long\n")?;
/// let deriver = Deriver::new(&master, Algorithm::HmacSha256);
/// let host: Principal = "host-linux-arm-aws".parse()?;
///
/// let key = deriver.derive(&host);
/// assert_eq!(key.expose_secret().len(), 64);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Deriver {
    keyed: Keyed,
}

#[derive(Clone)]
enum Keyed {
    Sha256(Hmac<Sha256>),
    Md5(Hmac<Md5>),
}

impl Deriver {
    /// Keys the HMAC state with `master` for `alg`.
    #[must_use]
    pub fn new(master: &MasterSecret, alg: Algorithm) -> Self {
        Self::from_key_bytes(master.expose_secret(), alg)
    }

    /// HMAC accepts keys of any length, so this cannot fail.
    fn from_key_bytes(key: &[u8], alg: Algorithm) -> Self {
        let keyed = match alg {
            Algorithm::HmacSha256 => Keyed::Sha256(keyed_state(key)),
            Algorithm::HmacMd5 => Keyed::Md5(keyed_state(key)),
        };
        Self { keyed }
    }

    /// The algorithm keys are derived with.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        match self.keyed {
            Keyed::Sha256(_) => Algorithm::HmacSha256,
            Keyed::Md5(_) => Algorithm::HmacMd5,
        }
    }

    /// The generation-0 key of `principal`: lowercase hex of HMAC(master, principal),
    /// the key Go's `genbuilderkey` gives (with [`Algorithm::HmacMd5`]).
    #[must_use]
    pub fn derive(&self, principal: &Principal) -> BuildKey {
        self.derive_generation(principal, 0)
    }

    /// The key of `principal` at `generation`: generation 0 MACs the principal's text,
    /// generation n ≥ 1 MACs `PRINCIPAL#n`.
    ///
    /// ```
    /// # use gobuildkey::keys::{Algorithm, Deriver};
    /// # let master = gobuildkey::master::MasterSecret::from_text(b"an example master, 32 bytes long")?;
    /// let deriver = Deriver::new(&master, Algorithm::HmacSha256);
    /// let host = "host-linux-arm-aws".parse()?;
    /// let (g0, g1) = (deriver.derive(&host), deriver.derive_generation(&host, 1));
    /// assert_eq!(g0.expose_secret(), deriver.derive_generation(&host, 0).expose_secret());
    /// assert_ne!(g0.expose_secret(), g1.expose_secret());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn derive_generation(&self, principal: &Principal, generation: u64) -> BuildKey {
        BuildKey {
            text: hex_of(
                self.keyed
                    .tag(&message_of(principal, generation))
                    .as_slice(),
            ),
            alg: self.algorithm(),
        }
    }

    /// Whether `tag` (a decoded key) is the MAC of `principal` at `generation`, as a
    /// constant-time [`Choice`]: the verifier combines several without branching.
    pub(crate) fn tag_matches(&self, principal: &Principal, generation: u64, tag: &Tag) -> Choice {
        self.keyed
            .tag(&message_of(principal, generation))
            .as_slice()
            .ct_eq(tag.as_slice())
    }
}

impl fmt::Debug for Deriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deriver")
            .field("alg", &self.algorithm())
            .finish_non_exhaustive()
    }
}

fn keyed_state<M: KeyInit>(key: &[u8]) -> M {
    // `new_from_slice` fails only for MACs with a fixed key size; HMAC takes any length.
    M::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"))
}

/// What is MACed for a principal at a generation: its text for generation 0 (the keys of
/// Go's farm), `PRINCIPAL#n` for generation n ≥ 1. `#` never occurs in a principal, so no
/// two (principal, generation) pairs share a message. The one place that says so.
fn message_of(principal: &Principal, generation: u64) -> Cow<'_, [u8]> {
    match generation {
        0 => Cow::Borrowed(principal.as_str().as_bytes()),
        n => Cow::Owned(format!("{principal}#{n}").into_bytes()),
    }
}

/// The derivation: a copy of the keyed state, fed the message. Deriving and verifying
/// both start here, and nothing else computes a MAC.
fn mac_of<M: Mac + Clone>(keyed: &M, message: &[u8]) -> M {
    let mut mac = keyed.clone();
    mac.update(message);
    mac
}

impl Keyed {
    /// The MAC of `message`, in memory wiped on drop.
    fn tag(&self, message: &[u8]) -> Tag {
        // `finalize` returns a `CtOutput`, which wipes itself on drop.
        match self {
            Self::Sha256(state) => Tag::from(&mac_of(state, message).finalize().as_bytes()[..]),
            Self::Md5(state) => Tag::from(&mac_of(state, message).finalize().as_bytes()[..]),
        }
    }
}

/// The longest MAC of any [`Algorithm`], in bytes.
const MAX_MAC_LEN: usize = 32;

/// A MAC (computed, or decoded from a presented key), on the stack, wiped on drop.
pub(crate) struct Tag {
    bytes: Zeroizing<[u8; MAX_MAC_LEN]>,
    len: usize,
}

impl Tag {
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl From<&[u8]> for Tag {
    fn from(mac: &[u8]) -> Self {
        let mut bytes = Zeroizing::new([0u8; MAX_MAC_LEN]);
        let len = mac.len().min(MAX_MAC_LEN);
        bytes[..len].copy_from_slice(&mac[..len]);
        Self { bytes, len }
    }
}

/// The MAC bytes of `text`, a presented key already trimmed by its rule
/// ([`Presented::text`]), if it is a well-formed key of `alg`: exactly `alg`'s number of
/// lowercase hex digits. Nothing more is trimmed here.
///
/// The digits are validated and decoded by `base16ct`, in constant time: how long this
/// takes does not depend on which digits the key has (only on its length).
pub(crate) fn decode_key(text: &[u8], alg: Algorithm) -> Option<Tag> {
    if text.len() != alg.hex_len() {
        return None;
    }
    let mut tag = Tag {
        bytes: Zeroizing::new([0u8; MAX_MAC_LEN]),
        len: alg.mac_len(),
    };
    base16ct::lower::decode(text, &mut tag.bytes[..alg.mac_len()]).ok()?;
    Some(tag)
}

/// Lowercase hex of `bytes`, encoded in constant time (`base16ct`: no table indexed by the
/// secret) into a buffer of the final size, so no copy is left behind.
pub(crate) fn hex_of(bytes: &[u8]) -> Zeroizing<String> {
    let mut buf = Zeroizing::new(vec![0u8; bytes.len() * 2]);
    // The buffer is exactly twice as long as the input, as `encode` requires.
    base16ct::lower::encode(bytes, &mut buf[..])
        .unwrap_or_else(|_| unreachable!("buffer sized for the hex"));
    let mut text = Zeroizing::new(String::with_capacity(buf.len()));
    text.extend(buf.iter().map(|&b| char::from(b)));
    text
}

/// A short, non-secret name for a secret: `SHA256:` and the first 16 hex digits of the
/// SHA-256 of the secret's canonical text (for a key, its lowercase hex; for a master, its
/// trimmed content).
///
/// Two people can compare fingerprints to know they hold the same key without the key
/// travelling again. 64 bits of a hash of a 128- or 256-bit secret reveal nothing usable.
///
/// ```
/// use gobuildkey::keys::Fingerprint;
///
/// let fp = Fingerprint::of(b"8421ea33f51fcab48011a06b390348dd7f542b628ffb0bf6b007ebbea45f1196");
/// assert!(fp.as_str().starts_with("SHA256:"));
/// assert_eq!(fp.as_str().len(), 7 + 16);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; Fingerprint::LEN]);

impl Fingerprint {
    /// How many hex digits of the hash a fingerprint shows.
    pub const HEX_DIGITS: usize = 16;
    const PREFIX: &'static [u8] = b"SHA256:";
    const LEN: usize = Self::PREFIX.len() + Self::HEX_DIGITS;

    /// The fingerprint of `canonical_text`.
    #[must_use]
    pub fn of(canonical_text: &[u8]) -> Self {
        let digest = Sha256::digest(canonical_text);
        let mut text = [0u8; Self::LEN];
        text[..Self::PREFIX.len()].copy_from_slice(Self::PREFIX);
        // The slice is exactly twice the digest prefix's length, as required.
        hex::encode_to_slice(
            &digest[..Self::HEX_DIGITS / 2],
            &mut text[Self::PREFIX.len()..],
        )
        .unwrap_or_else(|_| unreachable!("sized for the hex"));
        Self(text)
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

    fn p(name: &str) -> Principal {
        Principal::new(name).unwrap()
    }

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

    #[test]
    fn trim_space_matches_go() {
        assert_eq!(trim_space(b""), b"");
        assert_eq!(trim_space(b" \t\n\x0b\x0c\r"), b"");
        assert_eq!(trim_space(b"\x0bab c\x0c"), b"ab c");
        // NUL is no space; a lone 0x85 byte is invalid UTF-8 (U+0085 is C2 85): no space.
        assert_eq!(trim_space(b"\0a\x85"), b"\0a\x85");
        assert_eq!(trim_space("\u{85}a\u{85}".as_bytes()), b"a");
        assert_eq!(
            trim_space("\u{3000}\u{a0} a b\u{2029}\u{1680}".as_bytes()),
            b"a b"
        );
        assert_eq!(
            trim_space("\u{2000}\u{200a}\u{202f}\u{205f}".as_bytes()),
            b""
        );
        // Not White_Space: U+001C..U+001F (Python's isspace has them), U+200B, U+180E, U+FEFF.
        for c in ['\u{1c}', '\u{1f}', '\u{200b}', '\u{180e}', '\u{feff}'] {
            let text = format!("{c}a{c}");
            assert_eq!(trim_space(text.as_bytes()), text.as_bytes(), "{c:?}");
        }
        // Invalid UTF-8 stops the trimming at its end, and only there.
        assert_eq!(
            trim_space(" \u{a0}\u{ff}x".as_bytes()),
            "\u{ff}x".as_bytes()
        );
        assert_eq!(trim_space(b"\xff\xc2\xa0a\xc2\xa0"), b"\xff\xc2\xa0a");
        assert_eq!(trim_space(b" \x80a \xe3\x80 "), b"\x80a \xe3\x80");
        assert_eq!(trim_space(b"\xe3\x80\x80\xe3\x80"), b"\xe3\x80");
        assert_eq!(trim_space(b"\xe3\xe3\x80\x80"), b"\xe3");
        // An overlong or surrogate encoding of a space is invalid, not a space.
        assert_eq!(trim_space(b"\xc0\xa0a"), b"\xc0\xa0a");
        assert_eq!(trim_space(b"a\xed\xa0\x80"), b"a\xed\xa0\x80");
        assert_eq!(trim_space(b" \xff "), b"\xff");
    }

    #[test]
    fn go_spaces_are_white_space() {
        // The list spelt out is White_Space, which `char::is_whitespace` also follows.
        let listed: Vec<char> = (0..=0x10_ffff)
            .filter_map(char::from_u32)
            .filter(|&c| is_go_space(c))
            .collect();
        assert_eq!(listed.len(), 25);
        for c in (0..=0x10_ffff).filter_map(char::from_u32) {
            assert_eq!(is_go_space(c), c.is_whitespace(), "{c:?}");
        }
    }

    #[test]
    fn header_trim_removes_spaces_and_tabs_only() {
        assert_eq!(Trim::Header.apply(b" \t a b\t "), b"a b");
        assert_eq!(Trim::Header.apply(b"\t \t"), b"");
        for raw in [
            &b"\x0ba"[..],
            b"a\r",
            b"a\n",
            b"\x0ca",
            "a\u{a0}".as_bytes(),
        ] {
            assert_eq!(Trim::Header.apply(raw), raw, "{raw:?}");
        }
        assert_eq!(Trim::default(), Trim::Space);
    }

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

    #[test]
    fn debug_never_shows_secrets() {
        let d = Deriver::from_key_bytes(b"0123456789abcdef0123", Algorithm::HmacSha256);
        let key = d.derive(&p("host-x"));
        let shown = format!("{key:?} {d:?}");
        assert!(!shown.contains(&key.expose_secret()[..8]), "{shown}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(shown.contains(key.fingerprint().as_str()));
    }

    #[test]
    fn derive_and_match_for_each_algorithm() {
        for alg in Algorithm::ALL {
            let d = Deriver::from_key_bytes(b"a master of twenty bytes", alg);
            let key = d.derive(&p("host-x"));
            assert_eq!(key.algorithm(), alg);
            assert_eq!(key.expose_secret().len(), alg.hex_len());
            let tag = decode_key(key.expose_secret().as_bytes(), alg).unwrap();
            assert!(bool::from(d.tag_matches(&p("host-x"), 0, &tag)));
            assert!(!bool::from(d.tag_matches(&p("host-y"), 0, &tag)));
            assert!(!bool::from(d.tag_matches(&p("host-x"), 1, &tag)));
            let g1 = d.derive_generation(&p("host-x"), 1);
            let tag1 = decode_key(g1.expose_secret().as_bytes(), alg).unwrap();
            assert!(bool::from(d.tag_matches(&p("host-x"), 1, &tag1)));
        }
    }

    #[test]
    fn generations_have_distinct_messages() {
        let host = p("host-x");
        assert_eq!(&*message_of(&host, 0), b"host-x");
        assert_eq!(&*message_of(&host, 1), b"host-x#1");
        assert_eq!(&*message_of(&host, 12), b"host-x#12");
    }

    #[test]
    fn decode_key_checks_the_algorithm_and_trims_nothing() {
        let sha = "ab".repeat(32);
        assert!(decode_key(sha.as_bytes(), Algorithm::HmacSha256).is_some());
        assert!(decode_key(format!(" {sha}").as_bytes(), Algorithm::HmacSha256).is_none());
        assert!(decode_key(sha.as_bytes(), Algorithm::HmacMd5).is_none());
        assert!(decode_key(sha.to_uppercase().as_bytes(), Algorithm::HmacSha256).is_none());
        assert!(decode_key(&sha.as_bytes()[1..], Algorithm::HmacSha256).is_none());
    }

    #[test]
    fn fingerprint_is_sha256_prefix() {
        // sha256("abc") = ba7816bf8f01cfea414140de5dae2223...
        assert_eq!(Fingerprint::of(b"abc").as_str(), "SHA256:ba7816bf8f01cfea");
    }

    #[derive(serde::Deserialize)]
    struct Rfc4231Case {
        case: u32,
        key: String,
        data: String,
        hmac_sha256: String,
        #[serde(default)]
        truncate_bytes: Option<usize>,
    }

    /// RFC 4231's HMAC-SHA256 test cases, through the keyed state and `tag` that
    /// `derive` uses (the data are not principals, so they go in below `message_of`).
    #[test]
    fn rfc4231_hmac_sha256() {
        let cases: Vec<Rfc4231Case> =
            serde_json::from_str(include_str!("../tests/data/rfc4231.json")).unwrap();
        assert_eq!(cases.len(), 7);
        for case in cases {
            let d =
                Deriver::from_key_bytes(&hex::decode(&case.key).unwrap(), Algorithm::HmacSha256);
            let got = hex_of(d.keyed.tag(&hex::decode(&case.data).unwrap()).as_slice());
            let want = case
                .truncate_bytes
                .map_or(case.hmac_sha256.len(), |n| n * 2);
            assert_eq!(
                &got[..want],
                case.hmac_sha256,
                "RFC 4231 case {}",
                case.case
            );
        }
    }
}
