//! The batch protocol of `gobuildkey verify --batch`: a coordinator keeps one process and
//! asks it questions, one line each.
//!
//! Each input line is `PRINCIPAL KEY` (separated by spaces or tabs; a trailing `\r` is
//! ignored; the key is trimmed as a key file is, by Go's `TrimSpace`:
//! [`crate::text::trim_space`]). Each output line answers the input line of the same
//! number: `ok`, or `deny REASON` with REASON one of `invalid`, `malformed`, `revoked`,
//! `kind`. Lines longer than [`MAX_LINE`] bytes, empty lines and lines without a valid
//! principal and a key are `deny malformed`; none of them stops the process or grows its
//! memory.
//!
//! Answers are flushed whenever the input has nothing more buffered — so a coordinator that
//! writes one line and waits gets its answer at once — and written in large blocks while
//! input streams in. Large batches are verified on every core, answers staying in order.
//! Every answer comes from [`Verifier::verify_at`], the one verify function.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use jiff::Timestamp;
use zeroize::Zeroizing;

use crate::audit::{AuditLog, Context};
use crate::principal::Principal;
use crate::verifier::{Decision, Reason, Verdict, Verifier};

/// The longest line answered on its merits; longer ones are `deny malformed`.
pub const MAX_LINE: usize = 4096;
/// How many lines are gathered at most before they are verified and answered.
const MAX_BATCH: usize = 8192;
/// Below this many lines a batch is verified on the calling thread.
const PARALLEL_FROM: usize = 256;

/// The answer to one line, as written: `ok` or `deny REASON`.
///
/// ```
/// use gobuildkey::batch::answer_line;
/// use gobuildkey::derive::Deriver;
/// use gobuildkey::key::Algorithm;
/// use gobuildkey::master::MasterSecret;
/// use gobuildkey::verifier::Verifier;
///
/// let master = MasterSecret::from_text(b"an example master, 32 bytes long")?;
/// let key = Deriver::new(&master, Algorithm::HmacSha256).derive(&"host-a".parse()?);
/// let verifier = Verifier::new(&master, Algorithm::HmacSha256);
/// let now = jiff::Timestamp::now();
///
/// let line = format!("host-a {}", key.expose_secret());
/// assert_eq!(answer_line(&verifier, line.as_bytes(), now).0, "ok");
/// assert_eq!(answer_line(&verifier, b"host-b 0123", now).0, "deny malformed");
/// assert_eq!(answer_line(&verifier, b"no key here", now).0, "deny malformed");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub fn answer_line(
    verifier: &Verifier,
    line: &[u8],
    now: Timestamp,
) -> (&'static str, Option<(Principal, Decision)>) {
    let mut principal = None;
    let (text, decision) = answer_into(verifier, line, now, &mut principal);
    (text, decision.zip(principal).map(|(d, p)| (p, d)))
}

/// [`answer_line`], parsing the principal into `scratch` (validated as everywhere, its
/// memory reused once there is one) so that a loop over many lines allocates nothing per
/// line.
fn answer_into(
    verifier: &Verifier,
    line: &[u8],
    now: Timestamp,
    scratch: &mut Option<Principal>,
) -> (&'static str, Option<Decision>) {
    let malformed = (answer(Verdict::Invalid(Reason::Malformed)), None);
    let Some((name, key)) = split_line(line) else {
        return malformed;
    };
    let principal = match scratch {
        Some(principal) => {
            if !principal.set(name) {
                return malformed;
            }
            principal
        }
        None => match Principal::new(name) {
            Ok(principal) => scratch.insert(principal),
            Err(_) => return malformed,
        },
    };
    let decision = verifier.verify_at(principal, key, now);
    (answer(decision.verdict), Some(decision))
}

fn answer(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Valid => "ok",
        Verdict::Invalid(Reason::Mismatch) => "deny invalid",
        Verdict::Invalid(Reason::Revoked) => "deny revoked",
        Verdict::Invalid(Reason::WrongKind) => "deny kind",
        Verdict::Invalid(Reason::Malformed) => "deny malformed",
    }
}

/// `PRINCIPAL KEY` → the principal's text and the key's text; `None` when the line is not
/// that.
fn split_line(line: &[u8]) -> Option<(&str, &[u8])> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let sep = line.iter().position(|b| matches!(b, b' ' | b'\t'))?;
    let principal = std::str::from_utf8(&line[..sep]).ok()?;
    let key = &line[sep + 1..];
    // The key itself may not contain a separator; `verify` trims the rest.
    let key_trimmed = crate::text::trim_space(key);
    if key_trimmed.is_empty() || key_trimmed.iter().any(|b| matches!(b, b' ' | b'\t')) {
        return None;
    }
    Some((principal, key_trimmed))
}

/// Counts of a batch run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Lines answered.
    pub lines: u64,
    /// Of which `ok`.
    pub ok: u64,
}

/// Answers every line of `input` on `output` until `input` ends. Each batch of lines is
/// verified by the verifier `current` gives at its start, so a long-lived run answers from
/// whatever a reload ([`crate::reload`]) put in place; `audit` is locked for each batch's
/// lines, so that it can be reopened (SIGHUP) in between.
///
/// # Errors
/// Reading, writing or auditing failed.
pub fn run<R: Read>(
    current: impl Fn() -> Arc<Verifier>,
    input: &mut BufReader<R>,
    output: &mut impl Write,
    audit: Option<&Mutex<AuditLog>>,
) -> io::Result<Stats> {
    let threads = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let mut stats = Stats::default();
    // One buffer for the lines' bytes, wiped on drop (keys pass through it).
    let mut data = Zeroizing::new(Vec::with_capacity(64 * 1024));
    let mut lines: Vec<(usize, usize, bool)> = Vec::with_capacity(MAX_BATCH);
    let mut answers: Vec<(&'static str, Option<Decision>)> = Vec::with_capacity(MAX_BATCH);
    loop {
        data.clear();
        lines.clear();
        // Gather what is already buffered, reading (and so maybe blocking) only for the
        // first line of a batch.
        while lines.len() < MAX_BATCH && (lines.is_empty() || input.buffer().contains(&b'\n')) {
            let start = data.len();
            match read_line_bounded(input, &mut data, MAX_LINE)? {
                None => break,
                Some(overlong) => lines.push((start, data.len(), overlong)),
            }
        }
        if lines.is_empty() {
            output.flush()?;
            return Ok(stats);
        }

        let now = Timestamp::now();
        let verifier = &*current();
        let answer_all = |part: &[(usize, usize, bool)]| {
            let mut scratch = None;
            part.iter()
                .map(|&(start, end, overlong)| {
                    if overlong {
                        (answer(Verdict::Invalid(Reason::Malformed)), None)
                    } else {
                        answer_into(verifier, &data[start..end], now, &mut scratch)
                    }
                })
                .collect::<Vec<_>>()
        };
        answers.clear();
        if threads > 1 && lines.len() >= PARALLEL_FROM {
            // The first chunk on this thread, the others on helpers; answers stay in order.
            let chunk = lines.len().div_ceil(threads);
            let mut parts = lines.chunks(chunk);
            let first = parts.next().unwrap_or_default();
            std::thread::scope(|scope| {
                let handles: Vec<_> = parts
                    .map(|part| scope.spawn(move || answer_all(part)))
                    .collect();
                answers.extend(answer_all(first));
                for handle in handles {
                    // A panic in a helper is a bug; re-raise it rather than answer wrongly.
                    answers.extend(
                        handle
                            .join()
                            .unwrap_or_else(|e| std::panic::resume_unwind(e)),
                    );
                }
            });
        } else {
            answers.extend(answer_all(&lines));
        }

        let mut audit = audit.map(|log| log.lock().unwrap_or_else(PoisonError::into_inner));
        for ((text, verified), &(start, end, _)) in answers.iter().zip(&lines) {
            output.write_all(text.as_bytes())?;
            output.write_all(b"\n")?;
            stats.lines += 1;
            if *text == "ok" {
                stats.ok += 1;
            }
            if let (Some(log), Some(decision)) = (audit.as_deref_mut(), verified) {
                // A decision means the line parsed; parse it again for the record.
                if let Some((name, key)) = split_line(&data[start..end])
                    && let Ok(principal) = Principal::new(name)
                {
                    log.record(decision, &Context::new(&principal, key, now))?;
                }
            }
        }
        // About to wait for more input: whoever is waiting for these answers gets them now.
        if input.buffer().is_empty() {
            output.flush()?;
        }
    }
}

/// Appends the next line (without its `\n`) to `data`, keeping at most `limit` bytes of it
/// and discarding the rest. Returns whether the line was longer than `limit`, or `None` at
/// the end of the input.
fn read_line_bounded(
    input: &mut impl BufRead,
    data: &mut Vec<u8>,
    limit: usize,
) -> io::Result<Option<bool>> {
    let start = data.len();
    let mut seen_any = false;
    let mut overlong = false;
    loop {
        let available = match input.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(seen_any.then_some(overlong));
        }
        seen_any = true;
        let newline = available.iter().position(|&b| b == b'\n');
        let part = &available[..newline.unwrap_or(available.len())];
        let room = limit.saturating_sub(data.len() - start);
        if part.len() > room {
            overlong = true;
        }
        data.extend_from_slice(&part[..part.len().min(room)]);
        let used = newline.map_or(available.len(), |i| i + 1);
        input.consume(used);
        if newline.is_some() {
            return Ok(Some(overlong));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::policy::{Policy, PrincipalState};

    fn setup() -> (Verifier, String) {
        let (verifier, key) = crate::verifier::example();
        let mut policy = Policy::none();
        let revoked = PrincipalState {
            revoked: true,
            ..Default::default()
        };
        policy
            .set_state(&"host-r".parse().unwrap(), &revoked)
            .unwrap();
        (verifier.with_policy(policy), key)
    }

    fn run_on(verifier: &Verifier, input: &[u8]) -> String {
        let verifier = Arc::new(verifier.clone());
        let mut out = Vec::new();
        run(
            || Arc::clone(&verifier),
            &mut io::BufReader::new(input),
            &mut out,
            None,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn answers_each_line_in_order() {
        let (v, key) = setup();
        let input = format!(
            "host-a {key}\nhost-b {key}\nhost-r {key}\n\nhost-a\nHOST-A {key}\nhost-a {key}\r\nhost-a\t{key}  \nhost-a {key} extra\nhost-a {}",
            &key[1..]
        );
        assert_eq!(
            run_on(&v, input.as_bytes()),
            "ok\ndeny invalid\ndeny revoked\ndeny malformed\ndeny malformed\ndeny malformed\nok\nok\ndeny malformed\ndeny malformed\n"
        );
    }

    /// The key of a line is trimmed as a key file is (Go's `TrimSpace`): Unicode spaces
    /// around it go, an invalid byte or a character that is no space stays and spoils it.
    #[test]
    fn keys_in_lines_are_trimmed_as_key_files_are() {
        let (v, key) = setup();
        let input = format!(
            "host-a \u{3000}{key}\u{a0}\nhost-a {key}\u{85}\r\nhost-a\t\u{2028}{key}\u{205f}\t\nhost-a {key}\u{1c}\nhost-a \u{200b}{key}\nhost-a {key}\u{3000}extra\n"
        );
        let mut input = input.into_bytes();
        for (before, after) in [
            (&b""[..], &b"\xff\xc2\xa0"[..]),
            (&b"\xe3\x80"[..], &b""[..]),
        ] {
            input.extend_from_slice(b"host-a ");
            input.extend_from_slice(before);
            input.extend_from_slice(key.as_bytes());
            input.extend_from_slice(after);
            input.push(b'\n');
        }
        assert_eq!(
            run_on(&v, &input),
            "ok\nok\nok\ndeny malformed\ndeny malformed\ndeny malformed\ndeny malformed\ndeny malformed\n"
        );
    }

    #[test]
    fn overlong_lines_are_malformed_and_do_not_break_the_stream() {
        let (v, key) = setup();
        let mut input = format!("host-a {key}").into_bytes();
        input.extend(std::iter::repeat_n(b' ', 10 * MAX_LINE));
        input.extend_from_slice(format!("\nhost-a {key}\n").as_bytes());
        input.extend(std::iter::repeat_n(b'x', 3 * MAX_LINE));
        assert_eq!(run_on(&v, &input), "deny malformed\nok\ndeny malformed\n");
    }

    #[test]
    fn large_inputs_stay_in_order_across_threads() {
        let (v, key) = setup();
        let mut input = String::new();
        let mut expected = String::new();
        for i in 0..20_000 {
            if i % 3 == 0 {
                input.push_str(&format!("host-a {key}\n"));
                expected.push_str("ok\n");
            } else if i % 3 == 1 {
                input.push_str(&format!("host-b {key}\n"));
                expected.push_str("deny invalid\n");
            } else {
                input.push_str(&format!("host-r {key}\n"));
                expected.push_str("deny revoked\n");
            }
        }
        assert_eq!(run_on(&v, input.as_bytes()), expected);
    }

    #[test]
    fn bounded_reader_keeps_at_most_the_limit() {
        let mut data = Vec::new();
        let mut input = io::BufReader::with_capacity(4, &b"abcdefghij\nxy"[..]);
        assert_eq!(
            read_line_bounded(&mut input, &mut data, 5).unwrap(),
            Some(true)
        );
        assert_eq!(data, b"abcde");
        data.clear();
        assert_eq!(
            read_line_bounded(&mut input, &mut data, 5).unwrap(),
            Some(false)
        );
        assert_eq!(data, b"xy");
        assert_eq!(read_line_bounded(&mut input, &mut data, 5).unwrap(), None);
    }
}
