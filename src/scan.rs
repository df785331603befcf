//! Finding keys in bytes (`gobuildkey scan`): where a text or a stream holds a gobuildkey
//! token, and where it holds a run of hex digits that may be a plain key. Nothing here needs
//! the master; [`crate::found`] says, with it, whose key a candidate is and whether it is live.
//!
//! Two shapes are looked for, each bounded so that a longer word is never cut into one:
//!
//! - a **token** ([`crate::token`]): `gbk1_` and exactly 88 (hmac-sha256) or 56 (hmac-md5)
//!   lowercase hex digits whose checksum is right ([`crate::token`]), with no ASCII
//!   letter, digit or `_` glued to its end. The checksum makes it certain: a token with one
//!   character changed, or cut short, is not found — there are no false positives. What
//!   precedes the prefix does not matter: a token is often written after an escape or an
//!   encoding that ends in a letter or digit (`\n` in a JSON string or a log, `%3D` or
//!   `%20` in a URL), and the prefix and checksum already say where it starts;
//! - a **hex run**: exactly 32 or 64 hex digits (either case), with no hex digit on either
//!   side. Most are not keys (a SHA-256 checksum in a lock file, an MD5 sum): only the
//!   masters can tell, by computing the keys ([`crate::found`]), and without them a hex run
//!   is never reported. A 40-digit git commit or a longer run is no candidate at all.
//!
//! A stream is read in chunks ([`find_in_stream`]) of fixed size, each read with the end
//! of the one before it, so that a token or run across the edge of two chunks is found once,
//! and memory does not grow with the file. The chunk is wiped when done (it may hold keys).
//!
//! ```
//! use gobuildkey::scan::{Shape, candidates};
//!
//! let text = b"commit 0123456789012345678901234567890123456789\nkey=0123456789abcdef0123456789abcdef\n";
//! let found: Vec<_> = candidates(text).collect();
//! assert_eq!(found.len(), 1);
//! assert_eq!(found[0].shape, Shape::Hex);
//! assert_eq!(&text[found[0].range.clone()], b"0123456789abcdef0123456789abcdef");
//! ```

use std::io::{self, Read};
use std::ops::Range;

use zeroize::Zeroizing;

use crate::key::{Algorithm, TOKEN_PREFIX};
use crate::token::token_len;

/// What a candidate looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A well-formed gobuildkey token (prefix, length, digits and checksum right).
    Token,
    /// A run of exactly 32 or 64 hex digits: a plain key, or not, as only the masters tell.
    Hex,
}

/// Where a candidate is in the bytes searched, and its shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its bytes.
    pub range: Range<usize>,
    /// Its shape.
    pub shape: Shape,
}

/// The candidates of `text`, a whole text (its start and its end bound a candidate), in
/// the order they start.
pub fn candidates(text: &[u8]) -> impl Iterator<Item = Candidate> + '_ {
    candidates_in(text, true, true).into_iter()
}

/// Whether `b` may be part of a word a token is glued to: an ASCII letter, digit or `_`.
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The candidates of `text`, sorted by their start. `start_is_edge` says whether the text's
/// start bounds a candidate (the start of a file) or may be the middle of a word (a chunk
/// carried over): then nothing starting at 0 is found. `end_is_edge` likewise for its end.
fn candidates_in(text: &[u8], start_is_edge: bool, end_is_edge: bool) -> Vec<Candidate> {
    let mut found = Vec::new();
    // Hex runs: maximal, so each is bounded by non-hex bytes or the text's ends.
    let mut at = 0;
    while at < text.len() {
        if !text[at].is_ascii_hexdigit() {
            at += 1;
            continue;
        }
        let start = at;
        while at < text.len() && text[at].is_ascii_hexdigit() {
            at += 1;
        }
        let bounded = (start > 0 || start_is_edge) && (at < text.len() || end_is_edge);
        if bounded && Algorithm::ALL.iter().any(|alg| alg.hex_len() == at - start) {
            found.push(Candidate {
                range: start..at,
                shape: Shape::Hex,
            });
        }
    }
    // Tokens: at each prefix, the length of either algorithm that is bounded at its end and
    // parses; whatever precedes the prefix (but the start of a carried-over chunk, where
    // the prefix may be cut: the chunk before found what starts there).
    let prefix = TOKEN_PREFIX.as_bytes();
    for start in memchr::memmem::find_iter(text, prefix) {
        if start == 0 && !start_is_edge {
            continue;
        }
        let token = Algorithm::ALL.into_iter().find_map(|alg| {
            let end = start + token_len(alg);
            let right = match text.get(end) {
                Some(&after) => !is_word(after),
                None => end == text.len() && end_is_edge,
            };
            (right && crate::token::parse(&text[start..end]).is_ok()).then_some(start..end)
        });
        if let Some(range) = token {
            found.push(Candidate {
                range,
                shape: Shape::Token,
            });
        }
    }
    found.sort_by_key(|c| c.range.start);
    found
}

/// A candidate found in a stream: its 1-based line (counted by `\n`) and its text.
#[derive(Debug)]
pub struct Found<'a> {
    /// The line it starts on, from 1.
    pub line: u64,
    /// Its shape.
    pub shape: Shape,
    /// Its bytes (a secret, when it is a key: show it nowhere).
    pub text: &'a [u8],
}

/// How many bytes are read at a time.
const CHUNK: usize = 1 << 16;

/// How many bytes of a chunk's end are read again with the next one: more than the longest
/// candidate and a byte either side of it.
const OVERLAP: usize = 128;

const _: () = assert!(OVERLAP > token_len(Algorithm::HmacSha256) + 2);

/// Reads `reader` to its end in chunks and calls `each` with every candidate, in order;
/// returns how many bytes were read. A read error ends the scan with that error, after the
/// candidates found before it.
///
/// # Errors
/// The reader's, other than [`io::ErrorKind::Interrupted`] (retried).
pub fn find_in_stream<R: Read>(reader: R, each: impl FnMut(Found<'_>)) -> io::Result<u64> {
    find_chunked(reader, CHUNK, each)
}

/// [`find_in_stream`] with chunks of `chunk` bytes (more than [`OVERLAP`]).
fn find_chunked<R: Read>(
    mut reader: R,
    chunk: usize,
    mut each: impl FnMut(Found<'_>),
) -> io::Result<u64> {
    let chunk = chunk.max(OVERLAP + 1);
    // Sized once, never grown; wiped on drop.
    let mut buf = Zeroizing::new(vec![0u8; chunk + OVERLAP]);
    let mut held = 0;
    let mut total = 0u64;
    // Where new candidates may start (before it: what the previous chunk reported), and
    // whether the buffer's start is the stream's.
    let mut from = 0;
    let mut start_is_edge = true;
    // The line at the byte `counted` of the buffer.
    let mut line = 1u64;
    let mut counted = 0;
    let newlines = |bytes: &[u8]| memchr::memchr_iter(b'\n', bytes).count() as u64;
    loop {
        let mut eof = false;
        while held < buf.len() {
            match reader.read(&mut buf[held..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    held += n;
                    total += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let text = &buf[..held];
        // Not at the end: what starts in the overlap is left to the next chunk, which sees
        // all of it and what follows.
        let until = if eof { held } else { held - OVERLAP };
        for candidate in candidates_in(text, start_is_edge, eof) {
            let start = candidate.range.start;
            if start < from || start >= until {
                continue;
            }
            line += newlines(&text[counted..start]);
            counted = start;
            each(Found {
                line,
                shape: candidate.shape,
                text: &text[candidate.range],
            });
        }
        if eof {
            return Ok(total);
        }
        // Carried over: the overlap and the byte before it, which tells whether what starts
        // the overlap is bounded.
        let keep = until - 1;
        line += newlines(&text[counted..keep]);
        buf.copy_within(keep..held, 0);
        held -= keep;
        counted = 0;
        from = 1;
        start_is_edge = false;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::derive::Deriver;
    use crate::master::MasterSecret;

    fn token(alg: Algorithm) -> String {
        let master = MasterSecret::from_text(b"an example master, 32 bytes long").unwrap();
        let expires = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        Deriver::new(&master, alg)
            .derive_token(&"host-a".parse().unwrap(), 0, None, expires)
            .expose_secret()
            .to_owned()
    }

    fn found(text: &[u8]) -> Vec<(Shape, String)> {
        candidates(text)
            .map(|c| {
                (
                    c.shape,
                    String::from_utf8_lossy(&text[c.range]).into_owned(),
                )
            })
            .collect()
    }

    const KEY: &str = "91845ce35fee606a271e60bef0d1ce1b4a2ccec5d17171e3113f809168cd7b9d";

    #[test]
    fn runs_of_32_and_64_hex_digits_are_candidates_and_no_others() {
        for len in 1..200 {
            let run = "a".repeat(len);
            let expected = usize::from(len == 32 || len == 64);
            assert_eq!(found(run.as_bytes()).len(), expected, "{len}");
            assert_eq!(
                found(format!("x {run}\n").as_bytes()).len(),
                expected,
                "{len}"
            );
        }
        // A git commit (40 digits), whatever surrounds it.
        let commit = "0123456789012345678901234567890123456789";
        assert!(found(format!("commit {commit}\n").as_bytes()).is_empty());
        // Either case; bounded by anything that is no hex digit.
        let upper = KEY.to_ascii_uppercase();
        assert_eq!(found(format!("k=\"{upper}\"").as_bytes()).len(), 1);
        assert_eq!(found(format!("xyz{KEY}_q").as_bytes()).len(), 1);
        // Glued to a hex digit: a longer run.
        assert!(found(format!("f{KEY}").as_bytes()).is_empty());
        assert!(found(format!("{KEY}0").as_bytes()).is_empty());
    }

    #[test]
    fn well_formed_tokens_are_found_by_their_checksum() {
        for alg in Algorithm::ALL {
            let token = token(alg);
            for text in [
                token.clone(),
                format!("X-Go-Builder-Key: {token}\r\n"),
                format!("\"{token}\","),
                format!("key={token}-old"),
            ] {
                assert_eq!(found(text.as_bytes()), [(Shape::Token, token.clone())]);
            }
        }
    }

    /// After an escape or an encoding that ends in a letter or digit: `\n` in a JSON string
    /// or a log, `%3D` (`=`) or `%20` (a space) in a URL, a variable's name.
    #[test]
    fn tokens_after_an_escape_or_a_word_are_found() {
        for alg in Algorithm::ALL {
            let token = token(alg);
            for text in [
                format!(r#"{{"log":"line\n{token}\n"}}"#),
                format!("https://h/?a=1&t%3D{token}"),
                format!("curl -d 'x%20{token}'"),
                format!("\t{token}"),
                format!("_{token}"),
                format!("9{token}"),
                format!("gbk1_{token}"),
            ] {
                assert_eq!(
                    found(text.as_bytes()),
                    [(Shape::Token, token.clone())],
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn damaged_or_glued_tokens_are_not_found() {
        for alg in Algorithm::ALL {
            let token = token(alg);
            // Each character changed, where the checksum covers it.
            for at in TOKEN_PREFIX.len()..token.len() {
                let mut bytes = token.clone().into_bytes();
                bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
                assert!(found(&bytes).is_empty(), "{alg}, {at}");
            }
            // Truncated, padded, glued at its end, uppercased.
            for text in [
                token[..token.len() - 1].to_owned(),
                token[1..].to_owned(),
                format!("{token}0"),
                format!("{token}g"),
                format!("{token}_"),
                token.to_ascii_uppercase(),
            ] {
                assert!(found(text.as_bytes()).is_empty(), "{alg}: {text}");
            }
        }
    }

    /// Every candidate, through chunks of every small size, is found once, on its line.
    #[test]
    fn candidates_across_chunk_edges_are_found_once() {
        let sha = token(Algorithm::HmacSha256);
        let md5 = token(Algorithm::HmacMd5);
        let mut text = String::new();
        let mut expected = Vec::new();
        for (line, piece) in [&sha, &md5, KEY, &KEY[..32], &sha, KEY, &md5]
            .iter()
            .enumerate()
        {
            // Filler of varying length, some of it hex that must stay no candidate.
            text.push_str(&"0123456789abcdef-".repeat(line * 3 + 1));
            text.push(' ');
            expected.push((u64::try_from(line).unwrap() + 1, (*piece).to_owned()));
            text.push_str(piece);
            text.push('\n');
        }
        // A long hex run spanning edges must not be cut into candidates.
        text.push_str(&"ab".repeat(500));
        for chunk in (OVERLAP + 1..OVERLAP + 300).chain([1000, CHUNK]) {
            let mut got = Vec::new();
            let read = find_chunked(text.as_bytes(), chunk, |f| {
                got.push((f.line, String::from_utf8(f.text.to_vec()).unwrap()));
            })
            .unwrap();
            assert_eq!(read, text.len() as u64);
            assert_eq!(got, expected, "chunk {chunk}");
        }
    }

    /// A token exactly at a chunk's end, or starting right after the overlap's first byte.
    #[test]
    fn a_token_split_at_the_edge_of_a_chunk_is_found() {
        let sha = token(Algorithm::HmacSha256);
        let chunk = 1000;
        for split in 0..sha.len() + 2 {
            let mut text = "\n".repeat(chunk - split);
            text.push_str(&sha);
            text.push(' ');
            let mut got = Vec::new();
            find_chunked(text.as_bytes(), chunk, |f| {
                got.push((f.line, f.text.to_vec()))
            })
            .unwrap();
            let line = u64::try_from(chunk - split).unwrap() + 1;
            assert_eq!(got, [(line, sha.clone().into_bytes())], "split {split}");
        }
    }

    /// Reads one byte at a time and fails after `fail_after` bytes.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.1 == 0 {
                return Err(io::Error::other("broken"));
            }
            let Some((&first, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            buf[0] = first;
            self.0 = rest;
            self.1 -= 1;
            Ok(1)
        }
    }

    #[test]
    fn short_reads_are_gathered_and_errors_reported() {
        let text = format!("a {KEY} b");
        let mut got = 0;
        find_chunked(Trickle(text.as_bytes(), usize::MAX), 200, |_| got += 1).unwrap();
        assert_eq!(got, 1);
        let error = find_chunked(Trickle(text.as_bytes(), 10), 200, |_| {}).unwrap_err();
        assert_eq!(error.to_string(), "broken");
    }

    #[test]
    fn binary_bytes_bound_candidates_too() {
        let mut bytes = vec![0u8, 0xff, 0x01];
        bytes.extend_from_slice(KEY.as_bytes());
        bytes.extend_from_slice(&[0x00, 0x80]);
        assert_eq!(found(&bytes).len(), 1);
    }
}
