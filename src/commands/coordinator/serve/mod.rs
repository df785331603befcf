//! `gobuildkey serve`: the HTTP verification service, for a reverse proxy's auth
//! subrequest (nginx `auth_request`, Envoy `ext_authz`, Traefik `forwardAuth`).
//!
//! This command only moves bytes and keeps the process healthy: what to answer is decided
//! by the library's `service` module (the one verify function, the client's address, the
//! failure limit). [`threads`] accepts and serves the connections (one single-threaded
//! runtime per core, as nginx has one worker per core), [`connections`] bounds and times
//! them out, [`http`] maps requests to the library's answers, [`metrics`] is `/metrics`.

mod connections;
mod http;
mod metrics;
mod threads;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use jiff::Timestamp;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};

use gobuildkey::audit::{self, AuditLog};
use gobuildkey::reload::{Event, Live, Reloader};
use gobuildkey::service::client::ClientAddress;
use gobuildkey::service::limiter::{FailureLimiter, LimiterConfig};
use gobuildkey::verifier::{Decision, Verifier};

use crate::cli::ServeArgs;
use crate::exit::Exit;
use connections::{AcceptBackoff, Connections};
use metrics::{Metrics, ReloadResult};
use sd_notify::NotifyState;
use threads::Threads;

/// The most bytes of a request's head; larger requests are refused by hyper.
const MAX_HEAD: usize = 16 * 1024;
/// File descriptors kept for other than connections: the listener, the audit file, the
/// files and commands of a reload, the main thread's runtime.
const RESERVED_FDS: u64 = 64;
/// File descriptors kept for each serving thread: its copy of the listener, its runtime's
/// own (epoll, waker, signal pipe), with room to spare.
const FDS_PER_THREAD: u64 = 8;

struct State {
    /// The last good masters and policy: a failed reload keeps them, with every
    /// revocation they hold, as nginx keeps its configuration after a bad reload. One
    /// broken policy edit must not refuse a whole farm's registrations.
    live: Arc<Live<Verifier>>,
    metrics: Metrics,
    limiter: FailureLimiter,
    clients: ClientAddress,
    connections: Arc<Connections>,
    /// Shared by the serving threads: one pause and one log line a second for all.
    accept_backoff: Mutex<AcceptBackoff>,
    audit: Option<Mutex<AuditLog>>,
    audit_path: Option<PathBuf>,
    key_headers_only: bool,
}

impl State {
    /// The body of `GET /healthz`: `{"state":"ok","loaded_at":…,"last_reload":…}`, or
    /// while reloads fail `{"state":"stale","error":…,"since":…,"loaded_at":…,
    /// "last_reload":…}` (times in RFC 3339, UTC; `last_reload` null before any).
    fn health(&self) -> String {
        let health = self.live.health();
        let failure = health.failure.as_ref();
        let body = crate::commands::json::Health {
            state: if failure.is_some() { "stale" } else { "ok" },
            error: failure.map(|f| f.error.as_str()),
            since: failure.map(|f| f.since.to_string()),
            loaded_at: health.loaded_at.to_string(),
            last_reload: health.last_reload.map(|at| at.to_string()),
        };
        // Strings only: encoding cannot fail.
        format!("{}\n", serde_json::to_string(&body).unwrap_or_default())
    }

    /// Opens the audit file again (SIGHUP: logrotate moved it); on failure the old one is
    /// kept, and the error logged.
    fn reopen_audit(&self) {
        let (Some(audit), Some(path)) = (&self.audit, &self.audit_path) else {
            return;
        };
        if let Err(e) = gobuildkey::audit::reopen(audit, path) {
            eprintln!("gobuildkey serve: {e}; still writing to the file opened before");
        }
    }

    /// Writes the audit line of a verification ([`AuditLog::record`]), if there is an
    /// audit file; a failure is logged.
    fn audit(&self, decision: &Decision, context: &audit::Context<'_>) {
        self.write_audit(|log| log.record(decision, context));
    }

    /// Writes an audit line through `write`, if there is an audit file; a failure is
    /// logged, and the request is answered all the same.
    fn write_audit(&self, write: impl FnOnce(&mut AuditLog) -> std::io::Result<()>) {
        if let Some(audit) = &self.audit {
            let mut audit = audit.lock().unwrap_or_else(PoisonError::into_inner);
            if let Err(e) = write(&mut audit) {
                eprintln!("gobuildkey serve: cannot write the audit line: {e}");
            }
        }
    }

    /// Writes the summaries of the failure windows that ended.
    fn audit_limited(&self, summaries: Vec<gobuildkey::service::limiter::LimitSummary>) {
        let now = Timestamp::now();
        for summary in summaries {
            let line = summary.to_line(now);
            self.write_audit(|log| log.append(&line));
        }
    }
}

/// Loads the masters and policy (failing before listening if they are bad), then serves
/// until SIGTERM or SIGINT; SIGHUP reloads them.
pub fn run(args: &ServeArgs) -> Result<Exit> {
    let args = Arc::new(args.clone());
    let verifier = super::load_narrowed(
        &args.master,
        args.alg,
        args.kind,
        args.skew.clock_skew,
        true,
    )?;
    let audit = args.audit.as_deref().map(AuditLog::open).transpose()?;
    let threads = threads::count();
    let max_connections = connection_limit(args.max_connections, threads);
    let live = Arc::new(Live::new(verifier));
    let metrics = Metrics::new();
    metrics.loaded(live.health().loaded_at);
    let trusted = if args.trusted_proxy.is_empty() {
        ClientAddress::loopback()
    } else {
        args.trusted_proxy.clone()
    };
    let state = Arc::new(State {
        live,
        metrics,
        limiter: FailureLimiter::new(LimiterConfig {
            max_failures: args.max_failures,
            window: args.failure_window,
            max_clients: args.max_tracked_clients as usize,
            ipv4_prefix: args.ipv4_prefix,
            ipv6_prefix: args.ipv6_prefix,
        }),
        clients: ClientAddress::new(args.client_ip_header.as_deref(), trusted),
        connections: Arc::new(Connections::new(
            max_connections,
            args.header_timeout,
            args.idle_timeout,
        )),
        accept_backoff: Mutex::new(AcceptBackoff::default()),
        audit: audit.map(Mutex::new),
        audit_path: args.audit.clone().filter(|path| path != Path::new("-")),
        key_headers_only: args.key_headers_only,
    });
    // The main thread: signals, the limiter's clock, and the systemd notifications.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the service's runtime")?;
    let signals = {
        let _entered = runtime.enter();
        Signals::new()?
    };
    let reloader = reloader(&args, &state)?;
    let listener = runtime
        .block_on(TcpListener::bind(args.listen))
        .and_then(TcpListener::into_std)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let serving = Threads::start(threads, &listener, &state)?;
    eprintln!(
        "gobuildkey serve: listening on http://{}",
        listener.local_addr()?
    );
    drop(listener);
    notify_systemd(&[NotifyState::Ready, NotifyState::Status("serving")]);
    runtime.block_on(control(&state, signals, &reloader));
    notify_systemd(&[NotifyState::Stopping]);
    let stopped = serving.stop();
    state.audit_limited(state.limiter.drain());
    eprintln!("gobuildkey serve: stopping");
    stopped.map(|()| Exit::Ok)
}

/// Raises the soft file-descriptor limit to the hard one, says what it got, and returns
/// `wanted` connections or fewer, so that connections never take the descriptors the
/// service (and its `threads` serving threads) needs for anything else.
fn connection_limit(wanted: u32, threads: usize) -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let wanted = u64::from(wanted);
    let before = getrlimit(Resource::Nofile);
    let mut raised = before;
    raised.current = before.maximum;
    let limit = match setrlimit(Resource::Nofile, raised) {
        Ok(()) => before.maximum,
        Err(_) => before.current,
    };
    let Some(limit) = limit else {
        eprintln!("gobuildkey serve: no file-descriptor limit; up to {wanted} connections");
        return usize::try_from(wanted).unwrap_or(usize::MAX);
    };
    let raised = match before.current {
        Some(old) if old < limit => format!(" (raised from {old})"),
        _ => String::new(),
    };
    let reserved = RESERVED_FDS + FDS_PER_THREAD * u64::try_from(threads).unwrap_or(u64::MAX);
    let most = limit.saturating_sub(reserved).max(1);
    let connections = if wanted > most {
        eprintln!(
            "gobuildkey serve: --max-connections {wanted} is more than the file-descriptor \
             limit {limit} leaves room for: using {most} (raise the hard limit, e.g. \
             LimitNOFILE= in the systemd unit)"
        );
        most
    } else {
        wanted
    };
    eprintln!(
        "gobuildkey serve: file-descriptor limit {limit}{raised}; up to {connections} connections"
    );
    usize::try_from(connections).unwrap_or(usize::MAX)
}

fn load(args: &ServeArgs) -> Result<Verifier> {
    super::load_narrowed(
        &args.master,
        args.alg,
        args.kind,
        args.skew.clock_skew,
        false,
    )
}

/// The signals the service answers, taken before anyone is told it listens: a SIGTERM or
/// SIGHUP sent at once must not find the default action (death) still in place.
struct Signals {
    hangup: Signal,
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    fn new() -> Result<Self> {
        Ok(Self {
            hangup: signal(SignalKind::hangup())?,
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }
}

/// The main thread's loop while the serving threads answer: the signals, and the limiter's
/// windows expired each second. Returns on SIGTERM or SIGINT.
async fn control(state: &State, mut signals: Signals, reloader: &Reloader) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                state.audit_limited(state.limiter.expire(Instant::now()));
            }
            _ = signals.hangup.recv() => {
                // logrotate's convention: the audit file was moved; write to a new one.
                state.reopen_audit();
                reloader.request();
            }
            _ = signals.terminate.recv() => break,
            _ = signals.interrupt.recv() => break,
        }
    }
}

/// Starts the reloads: on SIGHUP (sent to [`Reloader::request`] by the accept loop) and
/// when the master or the policy file changes, off the request path.
fn reloader(args: &Arc<ServeArgs>, state: &Arc<State>) -> Result<Reloader> {
    let loader = Arc::clone(args);
    let reporter = Arc::clone(state);
    super::reloader(
        &args.master,
        !args.no_watch,
        Arc::clone(&state.live),
        move || load(&loader).map_err(|e| super::one_line(&e)),
        move |event| match event {
            Event::Started(_) => {
                // systemd's reload protocol: RELOADING=1 with the monotonic time, then READY=1.
                let mut states = vec![NotifyState::Reloading];
                states.extend(NotifyState::monotonic_usec_now().ok());
                notify_systemd(&states);
            }
            Event::Loaded(at) => {
                reporter.metrics.loaded(at);
                reporter.metrics.reloaded(ReloadResult::ok, at);
                eprintln!("gobuildkey serve: reloaded the masters and the policy");
                notify_systemd(&[NotifyState::Ready, NotifyState::Status("serving")]);
            }
            Event::Failed(error) => {
                // Keep answering from the last good state: it still holds every revocation
                // it had. /healthz reports it stale until a reload succeeds.
                let health = reporter.live.health();
                reporter.metrics.reloaded(
                    ReloadResult::failed,
                    health.last_reload.unwrap_or_else(Timestamp::now),
                );
                eprintln!(
                    "gobuildkey serve: reload failed, keeping the last good masters and policy (loaded at {}): {error}",
                    health.loaded_at
                );
                notify_systemd(&[
                    NotifyState::Ready,
                    NotifyState::Status("serving the last good state: a reload failed"),
                ]);
            }
        },
    )
}

/// Tells systemd (`Type=notify`) how the service is; nothing without `NOTIFY_SOCKET`.
fn notify_systemd(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        eprintln!("gobuildkey serve: cannot notify systemd: {e}");
    }
}
