//! The service's connections: how many may be open, which one is closed to make room, and
//! how long each may stay silent.
//!
//! - At `--max-connections`, a new connection closes the least recently active one (by
//!   HTTP/1 graceful shutdown: an answer being written is finished first), so a flood of
//!   idle sockets cannot keep a fresh registration out.
//! - A connection with no request for `--idle-timeout` (after it opened or after its last
//!   answer) is closed; a request whose headers take longer than `--header-timeout` from
//!   their first byte is dropped.
//! - Accept errors (no file descriptors left) close the least recently active connection
//!   too, and are retried after a pause that doubles from 1 ms to 1 s.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// How long a connection being closed may take to finish the answer it is writing.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// "No request under way" in [`Connection::head_started`].
const NONE: u64 = u64::MAX;

/// Why the service closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// To make room for a new one, or to free a file descriptor.
    Evicted,
    /// No request for `--idle-timeout`.
    Idle,
    /// A request's headers slower than `--header-timeout` from their first byte.
    SlowHeaders,
}

/// One open connection, as the registry and its task see it.
#[derive(Debug)]
pub struct Connection {
    /// The registry's key for it: its `activity` when last (re)filed.
    key: AtomicU64,
    /// A number from the registry's counter, taken at its last request (or at accept):
    /// larger is more recent.
    activity: AtomicU64,
    /// Milliseconds since the registry's epoch of its last answer (or of accept).
    last_active: AtomicU64,
    /// Milliseconds since the epoch of the first byte of a request not yet answered.
    head_started: AtomicU64,
    /// Milliseconds since the epoch of the deadline its task's clock is set for: never
    /// after its real deadline, which activity only moves later, except when it is told.
    armed: AtomicU64,
    /// Set when the registry evicts it (then `wake` is told).
    evicted: AtomicBool,
    /// Wakes its task's clock: evicted, or its deadline moved before the one the clock is
    /// set for. One `Notify` for both, as the task polls it each time it runs.
    wake: Notify,
}

impl Connection {
    /// Its deadline is now `deadline` (milliseconds since the epoch): wakes its task if
    /// that is before the one its clock is set for. Under a steady load this is never:
    /// each request moves the deadline later, and the clock, set once, is only moved on
    /// when it rings (once per timeout, not once per request).
    fn moved(&self, deadline: u64) {
        if deadline < self.armed.load(Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }
}

/// The open connections, least recently active first.
#[derive(Debug)]
pub struct Connections {
    max: usize,
    /// `--header-timeout` and `--idle-timeout`, in milliseconds.
    header_timeout: u64,
    idle_timeout: u64,
    epoch: Instant,
    counter: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<Connection>>>,
}

impl Connections {
    /// At most `max` at once.
    pub fn new(max: usize, header_timeout: Duration, idle_timeout: Duration) -> Self {
        Self {
            max: max.max(1),
            header_timeout: whole_millis(header_timeout),
            idle_timeout: whole_millis(idle_timeout),
            epoch: Instant::now(),
            counter: AtomicU64::new(0),
            open: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<Connection>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn millis(&self, at: Instant) -> u64 {
        millis_since(self.epoch, at)
    }

    /// The instant `millis` milliseconds after the epoch.
    fn at(&self, millis: u64) -> Instant {
        self.epoch + Duration::from_millis(millis)
    }

    /// How many are open.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Files a new connection, closing the least recently active one if it is the
    /// `max`-th. Returns it, and whether another was closed for it.
    pub fn admit(&self) -> (Arc<Connection>, bool) {
        let now = self.millis(Instant::now());
        let mut open = self.lock();
        let evicted = open.len() >= self.max && Self::evict_locked(&mut open);
        let activity = self.counter.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection {
            key: AtomicU64::new(activity),
            activity: AtomicU64::new(activity),
            last_active: AtomicU64::new(now),
            head_started: AtomicU64::new(NONE),
            // Set by its task when it starts.
            armed: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            wake: Notify::new(),
        });
        open.insert(activity, Arc::clone(&connection));
        (connection, evicted)
    }

    /// Closes the least recently active connection (to free a file descriptor).
    pub fn evict_one(&self) -> bool {
        Self::evict_locked(&mut self.lock())
    }

    /// Takes the least recently active connection out and tells it to close. Those active
    /// since they were filed are filed again at their new place first: each costs one
    /// move per request, so this is O(log n) amortised.
    fn evict_locked(open: &mut BTreeMap<u64, Arc<Connection>>) -> bool {
        while let Some((key, connection)) = open.pop_first() {
            let activity = connection.activity.load(Ordering::Relaxed);
            if activity != key {
                connection.key.store(activity, Ordering::Relaxed);
                open.insert(activity, connection);
                continue;
            }
            connection.evicted.store(true, Ordering::Relaxed);
            connection.wake.notify_one();
            return true;
        }
        false
    }

    fn remove(&self, connection: &Arc<Connection>) {
        let mut open = self.lock();
        let key = connection.key.load(Ordering::Relaxed);
        if open.get(&key).is_some_and(|c| Arc::ptr_eq(c, connection)) {
            open.remove(&key);
        }
    }

    /// Marks a request of `connection` as answered now (called as it is answered).
    pub fn answered(&self, connection: &Connection) {
        let now = self.millis(Instant::now());
        connection.head_started.store(NONE, Ordering::Relaxed);
        connection.last_active.store(now, Ordering::Relaxed);
        let activity = self.counter.fetch_add(1, Ordering::Relaxed);
        connection.activity.store(activity, Ordering::Relaxed);
        // An idle timeout shorter than the header timeout moves the deadline nearer.
        connection.moved(now.saturating_add(self.idle_timeout));
    }

    /// When `connection` is to be closed if nothing happens before, in milliseconds since
    /// the epoch.
    fn deadline(&self, connection: &Connection) -> u64 {
        match connection.head_started.load(Ordering::Relaxed) {
            NONE => connection
                .last_active
                .load(Ordering::Relaxed)
                .saturating_add(self.idle_timeout),
            started => started.saturating_add(self.header_timeout),
        }
    }

    /// Runs `serve` (hyper's connection future, given the stream to serve) until it ends,
    /// the connection is evicted, or its deadline passes; then closes it gracefully.
    pub async fn run<F, C>(
        self: Arc<Self>,
        connection: Arc<Connection>,
        stream: TcpStream,
        serve: C,
    ) -> Option<Closed>
    where
        C: FnOnce(Watched) -> F,
        F: std::future::Future + GracefulShutdown,
    {
        let watched = Watched {
            stream,
            connection: Arc::clone(&connection),
            epoch: self.epoch,
            header_timeout: self.header_timeout,
        };
        let future = serve(watched);
        tokio::pin!(future);
        let closed = loop {
            // Activity may have moved the deadline since the clock was set.
            let millis = self.deadline(&connection);
            let deadline = self.at(millis);
            if deadline <= Instant::now() {
                break Some(match connection.head_started.load(Ordering::Relaxed) {
                    NONE => Closed::Idle,
                    _ => Closed::SlowHeaders,
                });
            }
            connection.armed.store(millis, Ordering::Relaxed);
            tokio::select! {
                _ = &mut future => break None,
                // Evicted, or the deadline moved nearer (a request began, its header clock
                // ends first).
                () = connection.wake.notified() => {
                    if connection.evicted.load(Ordering::Relaxed) {
                        break Some(Closed::Evicted);
                    }
                }
                () = tokio::time::sleep_until(deadline.into()) => {}
            }
        };
        if closed.is_some() {
            future.as_mut().shutdown();
            let _ = tokio::time::timeout(CLOSE_GRACE, future).await;
        }
        self.remove(&connection);
        closed
    }
}

/// Milliseconds from `epoch` to `at`.
fn millis_since(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch).as_millis()).unwrap_or(NONE - 1)
}

/// `duration` in whole milliseconds (a week's are far from the most).
fn whole_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(NONE - 1)
}

/// A connection future that can be told to finish its answer and close (hyper's
/// `graceful_shutdown`).
pub trait GracefulShutdown {
    /// Stop after the answer under way, or at once if there is none.
    fn shutdown(self: Pin<&mut Self>);
}

impl<S, B> GracefulShutdown
    for hyper::server::conn::http1::Connection<hyper_util::rt::TokioIo<Watched>, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn shutdown(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// A connection's stream, noting when a request's first byte arrives.
#[derive(Debug)]
pub struct Watched {
    stream: TcpStream,
    connection: Arc<Connection>,
    epoch: Instant,
    /// `--header-timeout` in milliseconds.
    header_timeout: u64,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        // Only the first byte of a request starts its header clock (the task that reads is
        // the one that answers: nothing else sets it in between).
        if buf.filled().len() > before
            && self.connection.head_started.load(Ordering::Relaxed) == NONE
        {
            let now = millis_since(self.epoch, Instant::now());
            self.connection.head_started.store(now, Ordering::Relaxed);
            self.connection
                .moved(now.saturating_add(self.header_timeout));
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Retries of a failing `accept`: a pause doubling from 1 ms to 1 s, and at most one log
/// line a second, with how many failures it stands for.
#[derive(Debug)]
pub struct AcceptBackoff {
    pause: Duration,
    failures: u64,
    logged_at: Option<Instant>,
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self {
            pause: Duration::ZERO,
            failures: 0,
            logged_at: None,
        }
    }
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(1);
    const MOST: Duration = Duration::from_secs(1);

    /// An accept succeeded: the next failure starts again at 1 ms.
    pub fn succeeded(&mut self) {
        self.pause = Duration::ZERO;
    }

    /// An accept failed at `now`: how long to pause, and the line to log, if one is due.
    pub fn failed(&mut self, error: &io::Error, now: Instant) -> (Duration, Option<String>) {
        self.pause = (self.pause * 2).clamp(Self::FIRST, Self::MOST);
        self.failures += 1;
        let due = self
            .logged_at
            .is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1));
        let line = due.then(|| {
            let line = format!(
                "accept failed {} time{} since the last message ({error}); retrying every {:?}",
                self.failures,
                if self.failures == 1 { "" } else { "s" },
                self.pause,
            );
            self.failures = 0;
            self.logged_at = Some(now);
            line
        });
        (self.pause, line)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_least_recently_active_is_evicted() {
        let connections = Connections::new(3, Duration::from_secs(5), Duration::from_secs(5));
        let (a, _) = connections.admit();
        let (b, _) = connections.admit();
        let (c, _) = connections.admit();
        // `a` answers a request: `b` is now the least recently active.
        connections.answered(&a);
        let (_d, evicted) = connections.admit();
        assert!(evicted);
        assert_eq!(connections.len(), 3);
        let notified = |c: &Connection| {
            let waiter = c.wake.notified();
            tokio::pin!(waiter);
            waiter.as_mut().enable() && c.evicted.load(Ordering::Relaxed)
        };
        assert!(notified(&b), "b closed");
        assert!(!notified(&a) && !notified(&c));
        connections.remove(&b);
        assert_eq!(connections.len(), 3, "b was already out");
        connections.remove(&a);
        assert_eq!(connections.len(), 2);
    }

    #[test]
    fn only_a_nearer_deadline_wakes_the_connections_clock() {
        let connections = Connections::new(3, Duration::from_secs(5), Duration::from_secs(60));
        let (a, _) = connections.admit();
        let rearmed = |c: &Connection| {
            let waiter = c.wake.notified();
            tokio::pin!(waiter);
            waiter.as_mut().enable()
        };
        a.armed.store(10_000, Ordering::Relaxed);
        a.moved(10_000);
        a.moved(70_000);
        assert!(!rearmed(&a), "a later deadline waits for the clock");
        a.moved(9_999);
        assert!(rearmed(&a), "a nearer one sets it again");
        // An answer: the idle deadline, a minute on, is later than the clock's.
        connections.answered(&a);
        assert!(!rearmed(&a));
        // With an idle timeout shorter than the header timeout, an answer moves it nearer.
        let short = Connections::new(3, Duration::from_secs(600), Duration::from_secs(1));
        let (b, _) = short.admit();
        b.armed
            .store(short.millis(Instant::now()) + 600_000, Ordering::Relaxed);
        short.answered(&b);
        assert!(rearmed(&b));
    }

    #[test]
    fn backoff_doubles_to_a_second_and_logs_once_a_second() {
        let mut backoff = AcceptBackoff::default();
        let error = io::Error::from_raw_os_error(24);
        let start = Instant::now();
        let mut pauses = Vec::new();
        let mut lines = 0;
        for i in 0..20 {
            let (pause, line) = backoff.failed(&error, start + Duration::from_millis(i * 100));
            pauses.push(pause.as_millis());
            lines += usize::from(line.is_some());
        }
        assert_eq!(&pauses[..4], [1, 2, 4, 8]);
        assert_eq!(*pauses.last().unwrap(), 1000);
        // 20 failures over 1.9 s: a line at 0 s and one at 1 s.
        assert_eq!(lines, 2);
        let (_, line) = backoff.failed(&error, start + Duration::from_secs(3));
        assert!(line.unwrap().starts_with("accept failed 10 times"));
        backoff.succeeded();
        assert_eq!(backoff.failed(&error, start).0, Duration::from_millis(1));
    }
}
