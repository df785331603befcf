//! Text rules every input follows: Go's trimming ([`trim_space`], [`Trim`]), and untrusted
//! text quoted for a terminal ([`escape_for_terminal`]).

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
/// use gobuildkey::text::trim_space;
///
/// assert_eq!(trim_space(b"\x0b\t key \r\n"), b"key");
/// assert_eq!(trim_space("\u{a0}\u{3000}key\u{2028}\n".as_bytes()), b"key");
/// // An invalid byte is no space: trimming stops at it.
/// assert_eq!(trim_space(b"\xff key\x80 "), b"\xff key\x80");
/// ```
#[must_use]
pub fn trim_space(text: &[u8]) -> &[u8] {
    // Go's own fast path: an ASCII byte at an end is a whole rune there, so when neither
    // end is an ASCII byte that is a space, nothing is trimmed (most keys and masters).
    if let (Some(&first), Some(&last)) = (text.first(), text.last())
        && first.is_ascii()
        && last.is_ascii()
        && !is_go_space(char::from(first))
        && !is_go_space(char::from(last))
    {
        return text;
    }
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
/// use gobuildkey::text::Trim;
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

/// Quotes `text` with every control, quote and non-ASCII character escaped, cut to `max`
/// characters, so that an untrusted string cannot move the cursor or recolour a terminal.
///
/// ```
/// assert_eq!(gobuildkey::text::escape_for_terminal("a\x1b[2Jb", 64), r#""a\u{1b}[2Jb""#);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

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
}
