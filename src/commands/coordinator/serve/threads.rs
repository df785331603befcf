//! The serving threads: as many as the machine has cores (at most [`MOST`]), each running a
//! single-threaded tokio runtime that accepts from one shared listener and serves the
//! connections it accepted until they close, as each nginx worker owns its connections.
//!
//! A request is answered on the thread that read it, with no hand-over between threads: on
//! a small machine, waking threads cost more than the request itself (docs/performance.md).
//! The listener is one socket (not one per thread with `SO_REUSEPORT`, which would let
//! another process of the same user take a share of the port). What the threads share is
//! the service's [`State`]: the connections' registry (the limit and the evictions are
//! over all threads), the limiter, the metrics, the audit file, the accept backoff.

use std::net::SocketAddr;
use std::sync::{Arc, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::watch;

use super::connections::{self, Closed};
use super::{MAX_HEAD, State, http};

/// The most serving threads, however many cores.
pub const MOST: usize = 8;

/// How many serving threads: one per core this process may use, 1 to [`MOST`].
pub fn count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, MOST))
}

/// The serving threads, running.
pub struct Threads {
    handles: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl Threads {
    /// Starts `count` threads accepting from `listener` (a copy of it each, registered with
    /// the thread's runtime before the thread starts, so that nothing fails after).
    pub fn start(
        count: usize,
        listener: &std::net::TcpListener,
        state: &Arc<State>,
    ) -> Result<Self> {
        let mut ready = Vec::with_capacity(count);
        for _ in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start a serving thread's runtime")?;
            let copy = listener
                .try_clone()
                .context("cannot share the listener with a serving thread")?;
            let copy = {
                let _entered = runtime.enter();
                TcpListener::from_std(copy)
                    .context("cannot share the listener with a serving thread")?
            };
            ready.push((runtime, copy));
        }
        let (stop, stopped) = watch::channel(false);
        let mut threads = Self {
            handles: Vec::with_capacity(count),
            stop,
        };
        for (i, (runtime, listener)) in ready.into_iter().enumerate() {
            let (state, stopped) = (Arc::clone(state), stopped.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("serve-{i}"))
                .spawn(move || run(&runtime, listener, state, stopped));
            match spawned {
                Ok(handle) => threads.handles.push(handle),
                Err(e) => {
                    // Those started are stopped; the error is the service's.
                    let _ = threads.stop();
                    return Err(e).context("cannot start a serving thread");
                }
            }
        }
        Ok(threads)
    }

    /// Tells every thread to stop accepting, and waits for them: each drops the connections
    /// it served as its runtime ends.
    pub fn stop(self) -> Result<()> {
        // No receiver left means no thread left to tell.
        let _ = self.stop.send(true);
        let mut panicked = 0;
        for handle in self.handles {
            panicked += usize::from(handle.join().is_err());
        }
        if panicked > 0 {
            return Err(anyhow!("{panicked} serving thread(s) panicked"));
        }
        Ok(())
    }
}

/// A serving thread's life: accepts until told to stop, then ends its runtime (closing the
/// connections it holds).
fn run(
    runtime: &Runtime,
    listener: TcpListener,
    state: Arc<State>,
    stopped: watch::Receiver<bool>,
) {
    runtime.block_on(accept(listener, state, stopped));
}

async fn accept(listener: TcpListener, state: Arc<State>, mut stopped: watch::Receiver<bool>) {
    // Whether the last accept of this thread failed: only then is the shared backoff reset.
    let mut failing = false;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            // Told to stop, or the sender is gone (the service is ending either way).
            _ = stopped.changed() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                if failing {
                    failing = false;
                    backoff(&state).succeeded();
                }
                serve(&state, stream, peer);
            }
            Err(e) => {
                failing = true;
                state.metrics.accept_failed();
                // Out of file descriptors: closing a connection frees one.
                if matches!(e.raw_os_error(), Some(23 | 24)) && state.connections.evict_one() {
                    state.metrics.closed(Closed::Evicted);
                }
                let (pause, line) = backoff(&state).failed(&e, Instant::now());
                if let Some(line) = line {
                    eprintln!("gobuildkey serve: {line}");
                }
                tokio::time::sleep(pause).await;
            }
        }
    }
}

fn backoff(state: &State) -> std::sync::MutexGuard<'_, connections::AcceptBackoff> {
    state
        .accept_backoff
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Files a connection with the registry and serves it on this thread until it closes.
fn serve(state: &Arc<State>, stream: TcpStream, peer: SocketAddr) {
    let (connection, evicted) = state.connections.admit();
    if evicted {
        state.metrics.closed(Closed::Evicted);
    }
    let (state, task_state) = (Arc::clone(state), Arc::clone(state));
    tokio::spawn(async move {
        let connections = Arc::clone(&task_state.connections);
        let served = Arc::clone(&connection);
        let closed = connections.run(connection, stream, move |watched| {
            let state = Arc::clone(&state);
            let service = service_fn(move |req| {
                let answer = http::handle(&state, peer.ip(), &req);
                state.connections.answered(&served);
                std::future::ready(Ok::<_, std::convert::Infallible>(answer))
            });
            let mut builder = http1::Builder::new();
            // No timer for hyper: the connection's own clocks (`connections`) close it,
            // where hyper's header timeout would cost a timer set and dropped per request.
            builder.header_read_timeout(None).max_buf_size(MAX_HEAD);
            builder.serve_connection(TokioIo::new(watched), service)
        });
        // Errors are the client's (a reset, a timeout); nothing to report.
        // Evictions are counted where they are decided, timeouts here.
        if let Some(why) = closed.await.filter(|why| *why != Closed::Evicted) {
            task_state.metrics.closed(why);
        }
    });
}
