//! The batch protocol of `gobuildkey verify --batch`: a coordinator keeps one process and
//! asks it questions, one line each.
//!
//! Each input line is `PRINCIPAL KEY`, or `PRINCIPAL KEY MACHINE` when the coordinator knows
//! the machine the key came from (its `X-Go-Builder-Hostname`): fields separated by spaces
//! or tabs, a trailing `\r` ignored, the key trimmed as a key file is, by Go's `TrimSpace`
//! ([`crate::text::trim_space`]). With a machine, a key bound to that machine
//! (`mint --machine`) verifies as well as the principal's shared key. Each output line
//! answers the input line of the same number: `ok`, or `deny REASON` with REASON one of
//! `invalid`, `malformed`, `revoked`, `kind`. Lines longer than [`MAX_LINE`] bytes, empty
//! lines, lines without a valid principal and a key, with an invalid machine name
//! ([`Machine::RULE`]) or with more fields are `deny malformed`; none of them stops the
//! process or grows its memory.
//!
//! Answers are flushed whenever the input has no whole line buffered — so a coordinator
//! that writes one line and waits gets its answer at once — and written in large blocks
//! while input streams in. Every answer comes from [`Verifier::verify_at`], the one verify
//! function.
//!
//! [`run`] overlaps reading, verifying and writing with one thread per core and no thread
//! in between: each thread in turn reads a batch of lines (under the input's lock), verifies
//! it while the others read or verify theirs, and writes its answers once the batches
//! before it are written (batches are numbered as read; a condition variable passes the
//! turn), auditing the batch's lines first. Each thread reuses one batch buffer, so memory
//! stays bounded whatever the input's rate, and a slow reader of the answers holds up the
//! threads, hence the reading, instead of growing anything. A thread that panics (a bug)
//! stops the reading and gives up its turn, so no later line is answered and the others
//! end — at once, or at the input's next line or end for one waiting in a read, which
//! cannot be interrupted — and the panic is raised again. (The released binary is built to
//! abort at a panic.)

use std::io::{self, BufRead, BufReader, Read, Write};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;

use jiff::Timestamp;
use zeroize::Zeroizing;

use crate::audit::{AuditLog, Context};
use crate::key::Presented;
use crate::machine::Machine;
use crate::principal::Principal;
use crate::verifier::{Decision, Reason, Verdict, Verifier};

/// The longest line answered on its merits; longer ones are `deny malformed`.
pub const MAX_LINE: usize = 4096;
/// How many lines a batch holds at most: a batch is what one worker verifies at a time.
const MAX_BATCH: usize = 2048;
/// Lines are added to a batch while it holds at most this many bytes of them, so its
/// buffer (this and one line more) is allocated once and never grows: a copy left behind
/// by growing would not be wiped.
const MAX_BATCH_BYTES: usize = 256 * 1024;
/// A batch's line buffer: its bytes at most, one line more, and that line's `\n`.
const BATCH_CAPACITY: usize = MAX_BATCH_BYTES + MAX_LINE + 1;
/// The most worker threads: past that, the one reader is the limit.
const MAX_WORKERS: usize = 8;
/// The longest answer line, `deny malformed\n`.
const LONGEST_ANSWER: usize = 15;

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
    let Some((name, key, machine)) = split_line(line) else {
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
    let presented = Presented::from(key).from_machine(machine.as_ref());
    let decision = verifier.verify_at(principal, presented, now);
    (answer(decision.verdict), Some(decision))
}

fn answer(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Valid => "ok",
        Verdict::Invalid(Reason::Mismatch) => "deny invalid",
        Verdict::Invalid(Reason::Revoked) => "deny revoked",
        Verdict::Invalid(Reason::WrongKind) => "deny kind",
        Verdict::Invalid(Reason::Malformed) => "deny malformed",
        Verdict::Invalid(Reason::Expired) => "deny expired",
    }
}

/// `PRINCIPAL KEY [MACHINE]` → the principal's text, the key's text and the machine;
/// `None` when the line is not that.
fn split_line(line: &[u8]) -> Option<(&str, &[u8], Option<Machine>)> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let sep = memchr::memchr2(b' ', b'\t', line)?;
    let principal = std::str::from_utf8(&line[..sep]).ok()?;
    // The key is trimmed as `verify` trims a key file; a separator inside it starts the
    // machine's field. Found with SIMD (a byte loop here was 8 % of a batch's time).
    let rest = crate::text::trim_space(&line[sep + 1..]);
    let (key, machine) = match memchr::memchr2(b' ', b'\t', rest) {
        None => (rest, None),
        Some(end) => {
            let field = crate::text::trim_space(&rest[end + 1..]);
            // One field more at most, and a machine name is all a field can be.
            let name = std::str::from_utf8(field).ok()?;
            (&rest[..end], Some(Machine::new(name).ok()?))
        }
    };
    if key.is_empty() {
        return None;
    }
    Some((principal, key, machine))
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
/// One thread per core (at most 8) takes turns: each reads a batch of lines (one at a time),
/// verifies it while the others read or verify theirs, and writes its answers when the
/// batches before it are written, so answers keep the input's order. When writing or
/// auditing fails, the run ends with that error: at once, or, if a thread is waiting for
/// input, at the next line read or at the input's end (a read is not interrupted).
///
/// # Errors
/// Reading, writing or auditing failed.
pub fn run<R: Read + Send>(
    current: impl Fn() -> Arc<Verifier> + Sync,
    input: &mut BufReader<R>,
    output: &mut (impl Write + Send),
    audit: Option<&Mutex<AuditLog>>,
) -> io::Result<Stats> {
    let workers = thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(MAX_WORKERS);
    run_with(current, input, output, audit, workers)
}

/// [`run`] with `workers` threads.
fn run_with<R: Read + Send>(
    current: impl Fn() -> Arc<Verifier> + Sync,
    input: &mut BufReader<R>,
    output: &mut (impl Write + Send),
    audit: Option<&Mutex<AuditLog>>,
    workers: usize,
) -> io::Result<Stats> {
    let shared = Shared {
        current,
        auditing: audit.is_some(),
        input: Mutex::new(Reading {
            input,
            next: 0,
            ended: false,
            error: None,
        }),
        output: Mutex::new(Writing {
            output,
            audit,
            turn: 0,
            abandoned: false,
            stats: Stats::default(),
            error: None,
        }),
        turn: Condvar::new(),
        failed: AtomicBool::new(false),
    };
    thread::scope(|scope| {
        let threads = (0..workers.max(1))
            .map(|_| {
                thread::Builder::new()
                    .name("gobuildkey-batch".into())
                    .spawn_scoped(scope, || shared.work())
            })
            .collect::<io::Result<Vec<_>>>();
        let threads = match threads {
            Ok(threads) => threads,
            Err(err) => {
                // The threads started so far stop at their next batch.
                shared.failed.store(true, Ordering::Relaxed);
                return Err(err);
            }
        };
        // A panic in a thread is a bug; re-raise it rather than answer wrongly.
        let mut panicked = None;
        for thread in threads {
            if let Err(panic) = thread.join() {
                panicked.get_or_insert(panic);
            }
        }
        if let Some(panic) = panicked {
            std::panic::resume_unwind(panic);
        }
        Ok(())
    })?;
    let reading = shared
        .input
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    let writing = shared
        .output
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    // The first failure: answers stop at a failed write, reads at a failed read.
    if let Some(err) = writing.error {
        return Err(err);
    }
    if let Some(err) = reading.error {
        return Err(err);
    }
    writing.output.flush()?;
    Ok(writing.stats)
}

/// What the threads of a run share.
struct Shared<'a, F, R, W> {
    /// The verifier in place now.
    current: F,
    /// Whether decisions are kept for the audit.
    auditing: bool,
    /// The input, read by one thread at a time.
    input: Mutex<Reading<'a, R>>,
    /// The output, written in the batches' order.
    output: Mutex<Writing<'a, W>>,
    /// Signalled when a batch's answers are written (or a thread gave up its turn).
    turn: Condvar,
    /// Set when writing or auditing failed: no more input is read.
    failed: AtomicBool,
}

/// The reading side: the input, and the number the next batch read gets.
struct Reading<'a, R> {
    input: &'a mut BufReader<R>,
    next: u64,
    /// The input ended, or reading it failed.
    ended: bool,
    error: Option<io::Error>,
}

/// The writing side: the output, and the number of the batch whose answers come next.
struct Writing<'a, W> {
    output: &'a mut W,
    audit: Option<&'a Mutex<AuditLog>>,
    turn: u64,
    /// A thread panicked before its turn: nobody waits for turns any more.
    abandoned: bool,
    stats: Stats,
    error: Option<io::Error>,
}

/// A batch's lines and, once verified, their answers. Each thread has one and reuses it.
struct Batch {
    /// The lines' bytes, without their `\n`s (keys pass through it: wiped on drop).
    data: Zeroizing<Vec<u8>>,
    /// Each line: its start and end in `data`, and whether it was too long (then nothing of
    /// it is kept).
    lines: Vec<(usize, usize, bool)>,
    /// Whether the input had no whole line buffered after these: the answers are flushed.
    flush: bool,
    /// The time the lines are verified at.
    now: Timestamp,
    /// The answers, one line each.
    answers: Vec<u8>,
    /// Of which `ok`.
    ok: u64,
    /// Each line's decision, when auditing: `None` for a malformed line.
    decisions: Vec<Option<Decision>>,
}

impl Batch {
    fn new(auditing: bool) -> Self {
        Self {
            data: Zeroizing::new(Vec::with_capacity(BATCH_CAPACITY)),
            lines: Vec::with_capacity(MAX_BATCH),
            flush: false,
            now: Timestamp::UNIX_EPOCH,
            answers: Vec::with_capacity(MAX_BATCH * LONGEST_ANSWER),
            ok: 0,
            decisions: Vec::with_capacity(if auditing { MAX_BATCH } else { 0 }),
        }
    }

    /// Answers the lines into `answers` (and `decisions` when auditing), parsing each
    /// principal into `scratch`.
    fn verify(&mut self, verifier: &Verifier, scratch: &mut Option<Principal>, auditing: bool) {
        let Self {
            data,
            lines,
            now,
            answers,
            ok,
            decisions,
            ..
        } = self;
        answers.clear();
        decisions.clear();
        *ok = 0;
        for &(start, end, overlong) in lines.iter() {
            let (text, decision) = if overlong {
                (answer(Verdict::Invalid(Reason::Malformed)), None)
            } else {
                answer_into(verifier, &data[start..end], *now, scratch)
            };
            answers.extend_from_slice(text.as_bytes());
            answers.push(b'\n');
            *ok += u64::from(text == "ok");
            if auditing {
                decisions.push(decision);
            }
        }
    }
}

impl<F, R, W> Shared<'_, F, R, W>
where
    F: Fn() -> Arc<Verifier>,
    R: Read,
    W: Write,
{
    /// One thread's loop: read a batch, verify it, write its answers in turn; until the
    /// input ends, or reading, writing or auditing fails.
    fn work(&self) {
        let mut batch = Batch::new(self.auditing);
        let mut scratch = None;
        while let Some((number, verifier)) = self.read(&mut batch) {
            // Gives up the turn if verifying panics, so that no other thread waits for it.
            let turn = Turn {
                shared: self,
                done: false,
            };
            batch.verify(&verifier, &mut scratch, self.auditing);
            drop(verifier);
            self.write(number, &batch);
            turn.done();
        }
    }

    /// Fills `batch` with the next lines; their number in the input's order and the
    /// verifier in place, or `None` when there is nothing more to answer.
    fn read(&self, batch: &mut Batch) -> Option<(u64, Arc<Verifier>)> {
        let mut reading = self.input.lock().unwrap_or_else(PoisonError::into_inner);
        if reading.ended || self.failed.load(Ordering::Relaxed) {
            return None;
        }
        // A panic from here on (reading, `current`: a bug) loses the lines read: no thread
        // may answer the lines after them, which would be taken for theirs. Set before the
        // input's lock is released, so the next thread to take it sees it.
        let _stop = StopOnPanic(&self.failed);
        batch.data.clear();
        batch.lines.clear();
        match gather(reading.input, batch) {
            Ok(flush) => batch.flush = flush,
            Err(err) => {
                reading.ended = true;
                reading.error = Some(err);
                return None;
            }
        }
        debug_assert_eq!(batch.data.capacity(), BATCH_CAPACITY);
        if batch.lines.is_empty() {
            reading.ended = true;
            return None;
        }
        batch.now = Timestamp::now();
        // The verifier first: a batch gets its number (a turn others wait for) only once
        // nothing before its verification can fail.
        let verifier = (self.current)();
        let number = reading.next;
        reading.next += 1;
        Some((number, verifier))
    }

    /// Audits and writes the answers of batch `number` once every batch before it is
    /// written, flushing them when the input is waiting for them. A failure is kept (the
    /// run's error) and stops the reading.
    fn write(&self, number: u64, batch: &Batch) {
        let mut writing = self.output.lock().unwrap_or_else(PoisonError::into_inner);
        while writing.turn != number && !writing.abandoned {
            writing = self
                .turn
                .wait(writing)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if writing.error.is_none() && !writing.abandoned {
            let written = writing.write(batch);
            if let Err(err) = written {
                writing.error = Some(err);
                self.failed.store(true, Ordering::Relaxed);
            }
        }
        writing.turn += 1;
        drop(writing);
        self.turn.notify_all();
    }
}

impl<W: Write> Writing<'_, W> {
    fn write(&mut self, batch: &Batch) -> io::Result<()> {
        if let Some(log) = self.audit {
            audit_batch(log, batch)?;
        }
        self.output.write_all(&batch.answers)?;
        self.stats.lines += batch.lines.len() as u64;
        self.stats.ok += batch.ok;
        if batch.flush {
            self.output.flush()?;
        }
        Ok(())
    }
}

/// Sets its flag if dropped while its thread panics.
struct StopOnPanic<'a>(&'a AtomicBool);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// A batch's turn to be written, held while it is verified: dropped without [`Turn::done`]
/// (verifying panicked), it tells the waiting threads not to wait any more.
struct Turn<'s, 'a, F, R, W> {
    shared: &'s Shared<'a, F, R, W>,
    done: bool,
}

impl<F, R, W> Turn<'_, '_, F, R, W> {
    fn done(mut self) {
        self.done = true;
    }
}

impl<F, R, W> Drop for Turn<'_, '_, F, R, W> {
    fn drop(&mut self) {
        if !self.done {
            self.shared.failed.store(true, Ordering::Relaxed);
            let mut writing = self
                .shared
                .output
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            writing.abandoned = true;
            drop(writing);
            self.shared.turn.notify_all();
        }
    }
}

/// Records a batch's verifications, in order, under the audit lock: a reopen (SIGHUP)
/// happens between batches. A line is answered only once it is recorded.
fn audit_batch(log: &Mutex<AuditLog>, batch: &Batch) -> io::Result<()> {
    let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
    for (decision, &(start, end, _)) in batch.decisions.iter().zip(&batch.lines) {
        // A decision means the line parsed; parse it again for the record.
        if let Some(decision) = decision
            && let Some((name, key, machine)) = split_line(&batch.data[start..end])
            && let Ok(principal) = Principal::new(name)
        {
            let context = Context::new(&principal, key, batch.now).from_machine(machine.as_ref());
            log.record(decision, &context)?;
        }
    }
    Ok(())
}

/// Reads the next lines into `batch`: the first waits for input if need be, the others are
/// read only while a whole line is buffered, so that no read waits for input while lines
/// read before are unanswered. Stops at [`MAX_BATCH`] lines or [`MAX_BATCH_BYTES`] bytes.
/// Returns whether the input then has no whole line buffered (or has ended): whoever wrote
/// these lines may be waiting for their answers, which are to be flushed.
fn gather<R: Read>(input: &mut BufReader<R>, batch: &mut Batch) -> io::Result<bool> {
    // How many bytes at the start of the input's buffer are known to be whole lines.
    let mut whole = 0;
    while batch.lines.len() < MAX_BATCH && batch.data.len() <= MAX_BATCH_BYTES {
        if !batch.lines.is_empty() && whole == 0 {
            whole = whole_lines(input.buffer());
            if whole == 0 {
                return Ok(true);
            }
        }
        let start = batch.data.len();
        // A line wholly in the input's buffer is taken from it directly; anything else
        // (a line across a refill, an overlong line, the input's end) the slow way.
        let buffered = input.buffer();
        if let Some(end) = memchr::memchr(b'\n', &buffered[..buffered.len().min(MAX_LINE + 1)]) {
            batch.data.extend_from_slice(&buffered[..end]);
            input.consume(end + 1);
            whole = whole.saturating_sub(end + 1);
            batch.lines.push((start, batch.data.len(), false));
            continue;
        }
        let Some((overlong, taken)) = read_line_bounded(input, &mut batch.data, MAX_LINE)? else {
            return Ok(true);
        };
        whole = whole.saturating_sub(taken);
        batch.lines.push((start, batch.data.len(), overlong));
    }
    Ok(whole == 0 && whole_lines(input.buffer()) == 0)
}

/// How many bytes at the start of `buffer` are whole lines (up to its last `\n`).
fn whole_lines(buffer: &[u8]) -> usize {
    buffer
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |last| last + 1)
}

/// Appends the next line (without its `\n`) to `data`, unless it is longer than `limit`
/// bytes: then nothing of it is kept, and the rest of it is read and dropped, so at most
/// `limit + 1` bytes are ever appended. Returns whether the line was longer than `limit`
/// and how many bytes of the input it took, or `None` at the end of the input.
fn read_line_bounded(
    input: &mut impl BufRead,
    data: &mut Vec<u8>,
    limit: usize,
) -> io::Result<Option<(bool, usize)>> {
    let start = data.len();
    // `read_until` and `skip_until` retry an interrupted read.
    let taken = input
        .by_ref()
        .take(limit as u64 + 1)
        .read_until(b'\n', data)?;
    if taken == 0 {
        return Ok(None);
    }
    if data.last() == Some(&b'\n') {
        data.pop();
        return Ok(Some((false, taken)));
    }
    if taken <= limit {
        // The input's last line, without a `\n`.
        return Ok(Some((false, taken)));
    }
    data.truncate(start);
    let skipped = input.skip_until(b'\n')?;
    Ok(Some((true, taken + skipped)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::HashMap;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc::{self, Sender};
    use std::time::Duration;

    use super::*;
    use crate::derive::Deriver;
    use crate::key::Algorithm;
    use crate::master::MasterSecret;
    use crate::policy::{Policy, PrincipalState};
    use crate::principal::Kind;

    /// Long enough that only a lost answer reaches it, never a slow machine.
    const PATIENCE: Duration = Duration::from_secs(10);

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

    /// Gives its data a few bytes at a time, in sizes taken in turn from `sizes`, and
    /// before every other read fails once with `Interrupted` (to be retried).
    struct Chunked<'a> {
        data: &'a [u8],
        sizes: &'a [usize],
        reads: usize,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            if self.reads.is_multiple_of(2) {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let size = self.sizes[self.reads / 2 % self.sizes.len()];
            let n = size.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// Input that arrives when the test sends it; ends when the test drops the sender. A
    /// read waits, as a read of a pipe whose writer is quiet does.
    struct Gate {
        chunks: mpsc::Receiver<Vec<u8>>,
        pending: Vec<u8>,
    }

    fn gate() -> (Sender<Vec<u8>>, Gate) {
        let (tx, chunks) = mpsc::channel();
        let gate = Gate {
            chunks,
            pending: Vec::new(),
        };
        (tx, gate)
    }

    impl Read for Gate {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.pending.is_empty() {
                match self.chunks.recv() {
                    Ok(chunk) => self.pending = chunk,
                    Err(_) => return Ok(0),
                }
            }
            let n = buf.len().min(self.pending.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            Ok(n)
        }
    }

    /// Output whose bytes reach the test only when flushed, as through a pipe behind a
    /// buffer.
    struct Flushed {
        buffered: Vec<u8>,
        to_test: Sender<Vec<u8>>,
    }

    impl Write for Flushed {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.buffered.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            if !self.buffered.is_empty() {
                let _ = self.to_test.send(std::mem::take(&mut self.buffered));
            }
            Ok(())
        }
    }

    /// Starts `run` on a thread, reading `input` and answering through a [`Flushed`]
    /// output: the answers as they are flushed, and the run's end.
    fn start(
        current: impl Fn() -> Arc<Verifier> + Send + Sync + 'static,
        input: Gate,
    ) -> (
        mpsc::Receiver<Vec<u8>>,
        thread::JoinHandle<io::Result<Stats>>,
    ) {
        let (to_test, flushed) = mpsc::channel();
        let running = thread::spawn(move || {
            let mut output = Flushed {
                buffered: Vec::new(),
                to_test,
            };
            run(current, &mut BufReader::new(input), &mut output, None)
        });
        (flushed, running)
    }

    /// Waits for the next flushed answers.
    fn next(flushed: &mpsc::Receiver<Vec<u8>>) -> String {
        String::from_utf8(
            flushed
                .recv_timeout(PATIENCE)
                .expect("no answer: not flushed?"),
        )
        .unwrap()
    }

    /// Output that fails with a closed pipe's error once `room` bytes are written, or at
    /// its first flush; says when it has failed.
    struct Closed {
        room: usize,
        fail_flush: bool,
        failed: Option<Sender<()>>,
    }

    impl Closed {
        fn fail(&mut self) -> io::Error {
            if let Some(failed) = self.failed.take() {
                let _ = failed.send(());
            }
            io::ErrorKind::BrokenPipe.into()
        }
    }

    impl Write for Closed {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(self.fail());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            if self.fail_flush {
                return Err(self.fail());
            }
            Ok(())
        }
    }

    #[test]
    fn answers_each_line_in_order() {
        let (v, key) = setup();
        let input = format!(
            "host-a {key}\nhost-b {key}\nhost-r {key}\n\nhost-a\nHOST-A {key}\nhost-a {key}\r\nhost-a\t{key}  \nhost-a {key} extra more\nhost-a {}",
            &key[1..]
        );
        assert_eq!(
            run_on(&v, input.as_bytes()),
            "ok\ndeny invalid\ndeny revoked\ndeny malformed\ndeny malformed\ndeny malformed\nok\nok\ndeny malformed\ndeny malformed\n"
        );
    }

    /// A third field is the machine the key came from: a key bound to it verifies from it
    /// only; the principal's shared key verifies from any machine.
    #[test]
    fn a_third_field_is_the_machine() {
        let (v, shared) = setup();
        let master = MasterSecret::from_text(b"an example master, 32 bytes long").unwrap();
        let bound = Deriver::new(&master, Algorithm::HmacSha256).derive_machine(
            &"host-a".parse().unwrap(),
            0,
            &"builder-1".parse().unwrap(),
            0,
        );
        let bound = bound.expose_secret();
        let input = format!(
            "host-a {bound} builder-1\nhost-a\t{bound}\tBuilder-1 \r\nhost-a {bound} builder-2\n\
             host-a {bound}\nhost-a {shared} builder-2\nhost-a {bound} b\u{fb}ilder-1\n\
             host-a {bound} builder 1\nhost-a {bound} -builder\n"
        );
        assert_eq!(
            run_on(&v, input.as_bytes()),
            "ok\nok\ndeny invalid\ndeny invalid\nok\ndeny malformed\ndeny malformed\ndeny malformed\n"
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

    /// A line of exactly [`MAX_LINE`] bytes is answered on its merits, one byte more is
    /// not, with or without its `\n`.
    #[test]
    fn the_line_limit_is_exact() {
        let (v, key) = setup();
        let line = |len: usize| {
            let mut line = format!("host-a {key}").into_bytes();
            line.resize(len, b' ');
            line
        };
        for (len, end, answer) in [
            (MAX_LINE, &b"\n"[..], "ok\n"),
            (MAX_LINE + 1, b"\n", "deny malformed\n"),
            (MAX_LINE, b"", "ok\n"),
            (MAX_LINE + 1, b"", "deny malformed\n"),
        ] {
            let mut input = line(len);
            input.extend_from_slice(end);
            assert_eq!(run_on(&v, &input), answer, "{len} bytes, {end:?}");
        }
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

    /// 200,000 lines of every kind, in an order of no pattern, read in odd pieces: every
    /// answer is the one [`answer_line`] gives for its line, in order, whatever the number
    /// of workers.
    #[test]
    fn many_mixed_lines_are_each_answered_as_answer_line_answers_them() {
        let (v, key) = setup();
        let v = v.only_kind(Kind::Host);
        let mut wrong = key.clone().into_bytes();
        wrong[10] = if wrong[10] == b'0' { b'1' } else { b'0' };
        let wrong = String::from_utf8(wrong).unwrap();
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut random = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut input = Vec::new();
        let mut lines = Vec::new();
        for _ in 0..200_000 {
            let r = random();
            let line: Vec<u8> = match r % 16 {
                0..=3 => format!("host-a {key}").into(),
                4 => format!("host-a\t{key}  \r").into(),
                5 | 6 => format!("host-b {key}").into(),
                7 => format!("host-{} {key}", r % 1000).into(),
                8 => format!("host-r {key}").into(),
                9 => format!("user-x {key}").into(),
                10 => format!("host-a {wrong}").into(),
                11 => format!("host-a {}", &key[1..]).into(),
                12 => Vec::new(),
                13 => format!("host-a {key} extra more").into(),
                14 => [&b"host-\xff "[..], key.as_bytes()].concat(),
                _ if r % 400 == 15 => {
                    let mut line = format!("host-a {key}").into_bytes();
                    line.resize(MAX_LINE + 1 + (r % 3000) as usize, b' ');
                    line
                }
                _ => b"host-a".to_vec(),
            };
            input.extend_from_slice(&line);
            input.push(b'\n');
            lines.push(line);
        }
        let now = Timestamp::now();
        let mut known: HashMap<&[u8], &str> = HashMap::new();
        // After each line: how many bytes of input and of answers, how many `ok`.
        let (mut read, mut expected, mut ok) = (0, String::new(), 0);
        let mut upto = vec![(0, 0, 0)];
        for line in &lines {
            let answer = if line.len() > MAX_LINE {
                "deny malformed"
            } else {
                known
                    .entry(line.as_slice())
                    .or_insert_with(|| answer_line(&v, line, now).0)
            };
            ok += u64::from(answer == "ok");
            expected.push_str(answer);
            expected.push('\n');
            read += line.len() + 1;
            upto.push((read, expected.len(), ok));
        }
        let v = Arc::new(v);
        // All of it on more workers than cores; a part on one worker, with a large buffer.
        for (lines, workers, capacity) in [(200_000, 3, 64 * 1024), (30_000, 1, 1 << 20)] {
            let (read, answered, ok) = upto[lines];
            let mut out = Vec::new();
            let stats = run_with(
                || Arc::clone(&v),
                &mut BufReader::with_capacity(
                    capacity,
                    Chunked {
                        data: &input[..read],
                        sizes: &[1, 7, 4093, 65536, 3, 100_000, 13, 999],
                        reads: 0,
                    },
                ),
                &mut out,
                None,
                workers,
            )
            .unwrap();
            let lines = lines as u64;
            assert_eq!(stats, Stats { lines, ok }, "{workers} workers");
            assert!(
                out == expected.as_bytes()[..answered],
                "{workers} workers: answers differ or are out of order"
            );
        }
    }

    /// Input in pieces of any size, a buffer smaller than a line: many small batches, the
    /// same answers.
    #[test]
    fn input_in_odd_pieces_gets_the_same_answers() {
        let (v, key) = setup();
        let mut input = Vec::new();
        for i in 0..3000 {
            let principal = ["host-a", "host-b", "host-r", "", "host-a"][i % 5];
            input.extend_from_slice(format!("{principal} {key}\n").as_bytes());
        }
        let expected = run_on(&v, &input);
        let v = Arc::new(v);
        for (capacity, sizes) in [(7, &[1, 2, 3][..]), (100, &[5, 77, 1000]), (4096, &[1])] {
            let mut out = Vec::new();
            run_with(
                || Arc::clone(&v),
                &mut BufReader::with_capacity(
                    capacity,
                    Chunked {
                        data: &input,
                        sizes,
                        reads: 0,
                    },
                ),
                &mut out,
                None,
                2,
            )
            .unwrap();
            assert!(out == expected.as_bytes(), "buffer {capacity}, {sizes:?}");
        }
    }

    /// A coordinator writes one line and waits: its answer is flushed although the input
    /// neither ends nor brings more, one question after another.
    #[test]
    fn one_line_is_answered_at_once_without_more_input() {
        let (v, key) = setup();
        let v = Arc::new(v);
        let (questions, input) = gate();
        let (flushed, running) = start(move || Arc::clone(&v), input);
        for (question, answer) in [
            (format!("host-a {key}\n"), "ok\n"),
            (format!("host-b {key}\n"), "deny invalid\n"),
            ("nonsense\n".to_owned(), "deny malformed\n"),
            (format!("host-a {key}\n"), "ok\n"),
        ] {
            questions.send(question.into_bytes()).unwrap();
            assert_eq!(next(&flushed), answer);
        }
        drop(questions);
        let stats = running.join().unwrap().unwrap();
        assert_eq!(stats, Stats { lines: 4, ok: 2 });
    }

    /// A whole line and the start of the next: the whole one is answered at once, the other
    /// once it is whole.
    #[test]
    fn a_partial_line_does_not_hold_back_the_answers_before_it() {
        let (v, key) = setup();
        let v = Arc::new(v);
        let (questions, input) = gate();
        let (flushed, running) = start(move || Arc::clone(&v), input);
        questions
            .send(format!("host-a {key}\nhost-b {}", &key[..5]).into_bytes())
            .unwrap();
        assert_eq!(next(&flushed), "ok\n");
        questions
            .send(format!("{}\nhost-r {key}\nhost-a", &key[5..]).into_bytes())
            .unwrap();
        assert_eq!(next(&flushed), "deny invalid\ndeny revoked\n");
        drop(questions);
        // The input's last line, without its `\n`, answered at its end.
        assert_eq!(next(&flushed), "deny malformed\n");
        assert_eq!(running.join().unwrap().unwrap().lines, 4);
    }

    /// Each batch is verified by the verifier `current` gives at its start: a reload
    /// between two questions answers the second.
    #[test]
    fn each_batch_uses_the_verifier_current_at_its_start() {
        let (v, key) = setup();
        let mut policy = Policy::none();
        let revoked = PrincipalState {
            revoked: true,
            ..Default::default()
        };
        policy
            .set_state(&"host-a".parse().unwrap(), &revoked)
            .unwrap();
        let verifiers = [Arc::new(v.clone()), Arc::new(v.with_policy(policy))];
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let (questions, input) = gate();
        let (flushed, running) = start(
            move || Arc::clone(&verifiers[counted.fetch_add(1, Ordering::SeqCst) % 2]),
            input,
        );
        for answer in ["ok\n", "deny revoked\n", "ok\n", "deny revoked\n"] {
            questions
                .send(format!("host-a {key}\n").into_bytes())
                .unwrap();
            assert_eq!(next(&flushed), answer);
        }
        drop(questions);
        running.join().unwrap().unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    /// The reader of the answers went away: the run ends with that error, its threads
    /// joined, wherever the failure comes (a write, the flush) and however much input is
    /// left.
    #[test]
    fn a_closed_output_ends_the_run_with_its_error() {
        let (v, key) = setup();
        let v = Arc::new(v);
        let input = format!("host-a {key}\nhost-b {key}\n").repeat(50_000);
        for (room, fail_flush) in [(0, false), (5, false), (100_000, false), (usize::MAX, true)] {
            for workers in [1, 3] {
                let mut output = Closed {
                    room,
                    fail_flush,
                    failed: None,
                };
                let err = run_with(
                    || Arc::clone(&v),
                    &mut BufReader::new(input.as_bytes()),
                    &mut output,
                    None,
                    workers,
                )
                .unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{room} {fail_flush}");
            }
        }
    }

    /// A coordinator's answers can no longer be written while it is quiet: the run ends at
    /// once, or at its next line or at the input's end if a thread was waiting for it.
    #[test]
    fn a_closed_output_ends_a_quiet_run_at_the_next_input() {
        let (v, key) = setup();
        for more in [true, false] {
            let v = Arc::new(v.clone());
            let (questions, input) = gate();
            let (failed, closed) = mpsc::channel();
            let running = thread::spawn(move || {
                let mut output = Closed {
                    room: usize::MAX,
                    fail_flush: true,
                    failed: Some(failed),
                };
                run(
                    move || Arc::clone(&v),
                    &mut BufReader::new(input),
                    &mut output,
                    None,
                )
            });
            questions
                .send(format!("host-a {key}\n").into_bytes())
                .unwrap();
            closed
                .recv_timeout(PATIENCE)
                .expect("the answer was not flushed");
            if more {
                // The run may have ended already, if no thread was waiting for input.
                let _ = questions.send(format!("host-a {key}\n").into_bytes());
            }
            drop(questions);
            let err = running.join().unwrap().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        }
    }

    /// Reading fails: the run ends with that error, the lines of the batches read before
    /// answered and flushed.
    #[test]
    fn a_read_error_ends_the_run_after_answering_what_was_read() {
        struct Failing<'a>(Option<&'a [u8]>);
        impl Read for Failing<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                match self.0.take() {
                    Some(data) => {
                        buf[..data.len()].copy_from_slice(data);
                        Ok(data.len())
                    }
                    None => Err(io::Error::other("the disk is gone")),
                }
            }
        }
        let (v, key) = setup();
        let v = Arc::new(v);
        let input = format!("host-a {key}\nhost-b {key}\n");
        let (to_test, flushed) = mpsc::channel();
        let mut output = Flushed {
            buffered: Vec::new(),
            to_test,
        };
        let err = run(
            || Arc::clone(&v),
            &mut BufReader::new(Failing(Some(input.as_bytes()))),
            &mut output,
            None,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "the disk is gone");
        assert_eq!(next(&flushed), "ok\ndeny invalid\n");
    }

    /// Audit lines: one per verified line, in input order, across many batches and
    /// workers; none for a malformed line.
    #[test]
    fn audit_lines_follow_the_input_order() {
        let (v, key) = setup();
        let v = Arc::new(v);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = Mutex::new(AuditLog::open(&path).unwrap());
        let mut input = String::new();
        let mut expected = Vec::new();
        for i in 0..6000 {
            if i % 7 == 3 {
                input.push_str("malformed\n");
            } else {
                let principal = if i % 2 == 0 {
                    "host-a".to_owned()
                } else {
                    format!("host-{i}")
                };
                input.push_str(&format!("{principal} {key}\n"));
                expected.push(principal);
            }
        }
        let mut out = Vec::new();
        let stats = run_with(
            || Arc::clone(&v),
            &mut BufReader::with_capacity(
                10_000,
                Chunked {
                    data: input.as_bytes(),
                    sizes: &[3000, 17, 20_000],
                    reads: 0,
                },
            ),
            &mut out,
            Some(&log),
            3,
        )
        .unwrap();
        assert_eq!(stats.lines, 6000);
        let text = std::fs::read_to_string(&path).unwrap();
        let principals: Vec<&str> = text
            .lines()
            .map(|line| {
                let start = line.find(r#""principal":""#).unwrap() + 13;
                let end = start + line[start..].find('"').unwrap();
                &line[start..end]
            })
            .collect();
        assert_eq!(principals, expected);
        assert!(!text.contains(&key));
    }

    /// A panic on any thread (a bug) ends the run with that panic, whatever the number of
    /// threads and wherever it comes: the other threads do not wait for its turn forever.
    #[test]
    fn a_panic_ends_the_run_instead_of_hanging_it() {
        struct Panicking(usize);
        impl Write for Panicking {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0 += 1;
                assert!(self.0 < 3, "a bug in the writer");
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (v, key) = setup();
        let v = Arc::new(v);
        let input = format!("host-a {key}\n").repeat(20_000);
        for (in_current, workers) in [(true, 1), (true, 3), (false, 1), (false, 3)] {
            let (v, input) = (Arc::clone(&v), input.clone());
            let (finished, ended) = mpsc::channel();
            thread::spawn(move || {
                let calls = AtomicUsize::new(0);
                let current = || {
                    let call = calls.fetch_add(1, Ordering::Relaxed);
                    // Once: the other threads go on.
                    assert!(!in_current || call != 2, "a bug in the reload");
                    Arc::clone(&v)
                };
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    // Small reads: many batches.
                    let mut input = BufReader::with_capacity(4096, input.as_bytes());
                    run_with(current, &mut input, &mut Panicking(0), None, workers)
                }));
                finished.send(run.is_err()).unwrap();
            });
            let panicked = ended.recv_timeout(PATIENCE).expect("the run hung");
            assert!(panicked, "{in_current} {workers}");
        }
    }

    /// red2: a panic while the verifier is fetched (`current`, under the input's lock)
    /// loses the lines just read; the other threads must not go on answering the lines
    /// after them, or the coordinator takes the next answer for the lost line's.
    #[test]
    fn a_panic_in_current_does_not_shift_the_answers() {
        let (v, key) = setup();
        let v = Arc::new(v);
        let (questions, input) = gate();
        let (to_test, flushed) = mpsc::channel();
        let running = thread::spawn(move || {
            let calls = AtomicUsize::new(0);
            let current = || {
                let call = calls.fetch_add(1, Ordering::SeqCst);
                assert!(call != 0, "a bug in the reload");
                Arc::clone(&v)
            };
            let mut output = Flushed {
                buffered: Vec::new(),
                to_test,
            };
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_with(current, &mut BufReader::new(input), &mut output, None, 2)
            }))
            .is_err()
        });
        // host-b's line (not valid): its batch is lost to the panic.
        questions
            .send(format!("host-b {key}\n").into_bytes())
            .unwrap();
        thread::sleep(Duration::from_millis(300));
        // The run may have ended already.
        let _ = questions.send(format!("host-a {key}\n").into_bytes());
        let first = flushed.recv_timeout(Duration::from_secs(2));
        drop(questions);
        assert!(running.join().unwrap(), "the panic was not raised");
        assert!(
            first.is_err(),
            "after the panic, {:?} was the first answer: the coordinator takes it for host-b's line",
            first.map(String::from_utf8)
        );
    }

    /// red2: a panic while another thread waits for input (a coordinator that wrote one
    /// line and waits for its answer): a read cannot be interrupted, so the run ends at the
    /// input's next line or its end — as after a failed write — and raises the panic then,
    /// never answering another line. (The released binary aborts at the panic itself.)
    #[test]
    fn a_panic_ends_a_quiet_run_at_its_next_input() {
        struct Panicking;
        impl Write for Panicking {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                panic!("a bug in the writer")
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (v, key) = setup();
        let v = Arc::new(v);
        let (questions, input) = gate();
        let (finished, ended) = mpsc::channel();
        thread::spawn(move || {
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_with(
                    || Arc::clone(&v),
                    &mut BufReader::new(input),
                    &mut Panicking,
                    None,
                    2,
                )
            }));
            let _ = finished.send(run.is_err());
        });
        questions
            .send(format!("host-a {key}\n").into_bytes())
            .unwrap();
        thread::sleep(Duration::from_millis(200));
        // The input ends: the waiting read returns, and the run ends with the panic.
        drop(questions);
        assert_eq!(
            ended.recv_timeout(PATIENCE),
            Ok(true),
            "the run hung after the panic and the input's end"
        );
    }

    #[test]
    fn bounded_reader_keeps_nothing_of_an_overlong_line() {
        let mut data = Vec::new();
        let mut input = io::BufReader::with_capacity(4, &b"abcdefghij\nabcde\nxy"[..]);
        assert_eq!(
            read_line_bounded(&mut input, &mut data, 5).unwrap(),
            Some((true, 11))
        );
        assert_eq!(data, b"");
        assert_eq!(
            read_line_bounded(&mut input, &mut data, 5).unwrap(),
            Some((false, 6))
        );
        assert_eq!(data, b"abcde");
        data.clear();
        assert_eq!(
            read_line_bounded(&mut input, &mut data, 5).unwrap(),
            Some((false, 2))
        );
        assert_eq!(data, b"xy");
        assert_eq!(read_line_bounded(&mut input, &mut data, 5).unwrap(), None);
    }

    #[test]
    fn whole_lines_end_at_the_last_newline() {
        assert_eq!(whole_lines(b""), 0);
        assert_eq!(whole_lines(b"abc"), 0);
        assert_eq!(whole_lines(b"a\nbc"), 2);
        assert_eq!(whole_lines(b"a\nb\n"), 4);
    }
}
