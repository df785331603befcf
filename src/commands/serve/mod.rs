//! `gobuildkey serve`: the HTTP verification service, for a reverse proxy's auth
//! subrequest (nginx `auth_request`, Envoy `ext_authz`, Traefik `forwardAuth`).
//!
//! This command only moves bytes and keeps the process healthy: what to answer is decided
//! by the library's `service` module (the one verify function, the client's address, the
//! failure limit). [`connections`] bounds and times out the connections, [`http`] maps
//! requests to the library's answers, [`metrics`] is `/metrics`.

mod connections;
mod http;
mod metrics;

use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use jiff::Timestamp;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use gobuildkey::audit::AuditLog;
use gobuildkey::service::client::ClientAddress;
use gobuildkey::service::limiter::{FailureLimiter, LimiterConfig};
use gobuildkey::verifier::Verifier;

use crate::cli::ServeArgs;
use crate::exit::Exit;
use connections::{AcceptBackoff, Connections};
use metrics::{Metrics, ReloadResult};

/// The most bytes of a request's head; larger requests are refused by hyper.
const MAX_HEAD: usize = 16 * 1024;
/// File descriptors kept for other than connections: the listener, the audit file, the
/// files and commands of a reload, the runtime's own.
const RESERVED_FDS: u64 = 64;

struct State {
    /// The last good masters and policy: a failed reload keeps them (see [`Loaded`]).
    loaded: RwLock<Loaded>,
    metrics: Metrics,
    limiter: FailureLimiter,
    clients: ClientAddress,
    connections: Arc<Connections>,
    audit: Option<Mutex<AuditLog>>,
    key_headers_only: bool,
}

impl State {
    fn loaded(&self) -> RwLockReadGuard<'_, Loaded> {
        self.loaded.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends `line` to the audit file, if there is one; a failure is logged.
    fn audit(&self, line: &str) {
        if let Some(audit) = &self.audit {
            let mut audit = audit.lock().unwrap_or_else(PoisonError::into_inner);
            if let Err(e) = audit.append(line) {
                eprintln!("gobuildkey serve: cannot write the audit line: {e}");
            }
        }
    }

    /// Writes the summaries of the failure windows that ended.
    fn audit_limited(&self, summaries: Vec<gobuildkey::service::limiter::LimitSummary>) {
        let now = Timestamp::now();
        for summary in summaries {
            self.audit(&summary.to_line(now));
        }
    }
}

/// What the service answers from. `serve` refuses to start without valid masters and
/// policy, so there always is a verifier: a failed reload keeps the last good one (with
/// every revocation it had) and marks it stale, as nginx keeps its configuration after a
/// bad reload. One broken policy edit must not refuse a whole farm's registrations.
struct Loaded {
    verifier: Arc<Verifier>,
    /// When `verifier` was loaded.
    loaded_at: Timestamp,
    /// Set by a failed reload, cleared by a successful one.
    stale: Option<Stale>,
}

/// The failed reloads since the last good one.
struct Stale {
    /// The last failed reload's error, on one line.
    error: String,
    /// The first failed reload's time.
    since: Timestamp,
}

impl Loaded {
    fn new(verifier: Verifier) -> Self {
        Self {
            verifier: Arc::new(verifier),
            loaded_at: Timestamp::now(),
            stale: None,
        }
    }

    /// Records a failed reload, keeping the verifier.
    fn failed(&mut self, error: String) {
        match &mut self.stale {
            Some(stale) => stale.error = error,
            None => {
                self.stale = Some(Stale {
                    error,
                    since: Timestamp::now(),
                });
            }
        }
    }

    /// The body of `GET /healthz`: `{"state":"ok","loaded_at":…}`, or after a failed
    /// reload `{"state":"stale","error":…,"since":…,"loaded_at":…}` (times in RFC 3339,
    /// UTC).
    fn health(&self) -> String {
        let loaded_at = self.loaded_at.to_string();
        let body = match &self.stale {
            None => serde_json::json!({ "state": "ok", "loaded_at": loaded_at }),
            Some(stale) => serde_json::json!({
                "state": "stale",
                "error": stale.error,
                "since": stale.since.to_string(),
                "loaded_at": loaded_at,
            }),
        };
        format!("{body}\n")
    }
}

/// An error on one line (`{:#}` of anyhow, the lines of a parser's message joined), for
/// the log and the health body.
fn one_line(error: &impl std::fmt::Display) -> String {
    format!("{error:#}")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Loads the masters and policy (failing before listening if they are bad), then serves
/// until SIGTERM or SIGINT; SIGHUP reloads them.
pub fn run(args: &ServeArgs) -> Result<Exit> {
    let args = Arc::new(args.clone());
    // At start an `--alg` the policy accepts for nobody is a usage error; a reload after
    // `end-grace --alg` only narrows (it must never fail, and so freeze a state that lacks
    // every revocation made since).
    if let Some(alg) = args.alg {
        super::load_verifier(&args.master, Some(alg), None)?;
    }
    let verifier = load(&args)?;
    let audit = args.audit.as_deref().map(AuditLog::open).transpose()?;
    let max_connections = connection_limit(args.max_connections);
    let loaded = Loaded::new(verifier);
    let metrics = Metrics::new();
    metrics.loaded(loaded.loaded_at);
    let trusted = if args.trusted_proxy.is_empty() {
        ClientAddress::loopback()
    } else {
        args.trusted_proxy.clone()
    };
    let state = Arc::new(State {
        loaded: RwLock::new(loaded),
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
        audit: audit.map(Mutex::new),
        key_headers_only: args.key_headers_only,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the service's runtime")?;
    runtime.block_on(serve(args, state))
}

/// Raises the soft file-descriptor limit to the hard one, says what it got, and returns
/// `wanted` connections or fewer, so that connections never take the descriptors the
/// service needs for anything else.
fn connection_limit(wanted: u32) -> usize {
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
    let most = limit.saturating_sub(RESERVED_FDS).max(1);
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
    let mut verifier = super::load_verifier(&args.master, None, None)?;
    if let Some(alg) = args.alg {
        verifier = verifier.only_algorithm(alg);
    }
    Ok(match args.kind {
        Some(kind) => verifier.only_kind(kind),
        None => verifier,
    })
}

async fn serve(args: Arc<ServeArgs>, state: Arc<State>) -> Result<Exit> {
    // The signals are ours before anyone is told we listen: a SIGTERM or SIGHUP sent at
    // once must not find the default action (death) still in place.
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!(
        "gobuildkey serve: listening on http://{}",
        listener.local_addr()?
    );
    let mut backoff = AcceptBackoff::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => {
                        backoff.succeeded();
                        accepted
                    }
                    Err(e) => {
                        state.metrics.accept_failed();
                        // Out of file descriptors: closing a connection frees one.
                        if matches!(e.raw_os_error(), Some(23 | 24)) {
                            state.connections.evict_one();
                        }
                        let (pause, line) = backoff.failed(&e, Instant::now());
                        if let Some(line) = line {
                            eprintln!("gobuildkey serve: {line}");
                        }
                        tokio::time::sleep(pause).await;
                        continue;
                    }
                };
                let (connection, evicted) = state.connections.admit();
                if evicted {
                    state.metrics.closed(connections::Closed::Evicted);
                }
                let (state, task_state) = (Arc::clone(&state), Arc::clone(&state));
                let header_timeout = args.header_timeout;
                let idle_timeout = args.idle_timeout;
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
                        builder
                            .timer(TokioTimer::new())
                            // A backstop: the connection's own clocks close it sooner.
                            .header_read_timeout(header_timeout + idle_timeout)
                            .max_buf_size(MAX_HEAD);
                        builder.serve_connection(TokioIo::new(watched), service)
                    });
                    // Errors are the client's (a reset, a timeout); nothing to report.
                    // Evictions are counted where they are decided, timeouts here.
                    if let Some(connections::Closed::Timeout) = closed.await {
                        task_state.metrics.closed(connections::Closed::Timeout);
                    }
                });
            }
            _ = tick.tick() => {
                state.audit_limited(state.limiter.expire(Instant::now()));
            }
            _ = hangup.recv() => reload(&args, &state).await,
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    state.audit_limited(state.limiter.drain());
    eprintln!("gobuildkey serve: stopping");
    Ok(Exit::Ok)
}

async fn reload(args: &Arc<ServeArgs>, state: &State) {
    let loader = Arc::clone(args);
    let reloaded = tokio::task::spawn_blocking(move || load(&loader)).await;
    let error = match reloaded {
        Ok(Ok(verifier)) => {
            let loaded = Loaded::new(verifier);
            state.metrics.loaded(loaded.loaded_at);
            state.metrics.reloaded(ReloadResult::ok, loaded.loaded_at);
            *state.loaded.write().unwrap_or_else(PoisonError::into_inner) = loaded;
            eprintln!("gobuildkey serve: reloaded the masters and the policy");
            return;
        }
        Ok(Err(e)) => one_line(&e),
        Err(e) => one_line(&e),
    };
    // Keep answering from the last good state: it still holds every revocation it had.
    // /healthz reports it stale until a reload succeeds.
    let loaded_at = {
        let mut loaded = state.loaded.write().unwrap_or_else(PoisonError::into_inner);
        loaded.failed(error.clone());
        loaded.loaded_at
    };
    state
        .metrics
        .reloaded(ReloadResult::failed, Timestamp::now());
    eprintln!(
        "gobuildkey serve: reload failed, keeping the last good masters and policy (loaded at {loaded_at}): {error}"
    );
}
