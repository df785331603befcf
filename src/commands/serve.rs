//! `gobuildkey serve`: the HTTP verification service, for a reverse proxy's auth
//! subrequest (nginx `auth_request`, Envoy `ext_authz`, Traefik `forwardAuth`).
//!
//! This file only moves bytes: what to answer is decided by the library's
//! `service::answer`, which calls the one verify function.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use jiff::Timestamp;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Semaphore;

use gobuildkey::audit::{AuditLog, AuditRecord};
use gobuildkey::service::{
    self, Checks, FailureLimiter, HOST_TYPE_HEADER, HOSTNAME_HEADER, KEY_HEADER, REVDIAL_HEADER,
    Registration,
};
use gobuildkey::verifier::Verifier;

use crate::cli::ServeArgs;
use crate::exit::Exit;

/// How long a client may take to send a request's headers (and an idle connection may wait).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The most bytes of a request's head; larger requests are refused by hyper.
const MAX_HEAD: usize = 16 * 1024;
/// The window of the failure limit.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// The most client addresses the failure limit tracks.
const MAX_TRACKED_CLIENTS: usize = 100_000;

struct State {
    /// The last good masters and policy: a failed reload keeps them (see [`Loaded`]).
    loaded: RwLock<Loaded>,
    metrics: Metrics,
    limiter: FailureLimiter,
    audit: Option<Mutex<AuditLog>>,
    client_ip_header: Option<String>,
    key_headers_only: bool,
}

impl State {
    fn loaded(&self) -> RwLockReadGuard<'_, Loaded> {
        self.loaded.read().unwrap_or_else(PoisonError::into_inner)
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

/// What `GET /metrics` shows, in Prometheus' text format: how reloads went, so that an
/// alert can fire on a replica answering from a stale state.
struct Metrics {
    registry: prometheus_client::registry::Registry,
    last_reload: prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>,
    stale: prometheus_client::metrics::gauge::Gauge,
    reloads: prometheus_client::metrics::family::Family<
        ReloadLabels,
        prometheus_client::metrics::counter::Counter,
    >,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct ReloadLabels {
    result: ReloadResult,
}

#[derive(
    Clone, Copy, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelValue,
)]
#[allow(non_camel_case_types)]
enum ReloadResult {
    ok,
    failed,
}

impl Metrics {
    fn new() -> Self {
        let mut metrics = Self {
            registry: prometheus_client::registry::Registry::default(),
            last_reload: Default::default(),
            stale: Default::default(),
            reloads: Default::default(),
        };
        metrics.registry.register(
            "gobuildkey_last_successful_load_timestamp_seconds",
            "When the masters and the policy in use were loaded (start or reload), Unix time",
            metrics.last_reload.clone(),
        );
        metrics.registry.register(
            "gobuildkey_policy_stale",
            "1 while the last reload failed and the service answers from its last good state",
            metrics.stale.clone(),
        );
        metrics.registry.register(
            "gobuildkey_reloads",
            "Reloads of the masters and the policy, by result",
            metrics.reloads.clone(),
        );
        metrics
    }

    fn loaded(&self, at: Timestamp) {
        self.last_reload.set(at.as_millisecond() as f64 / 1000.0);
        self.stale.set(0);
    }

    fn reloaded(&self, result: ReloadResult) {
        self.reloads.get_or_create(&ReloadLabels { result }).inc();
        if result == ReloadResult::failed {
            self.stale.set(1);
        }
    }

    fn text(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
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
    let loaded = Loaded::new(verifier);
    let metrics = Metrics::new();
    metrics.loaded(loaded.loaded_at);
    let state = Arc::new(State {
        loaded: RwLock::new(loaded),
        metrics,
        limiter: FailureLimiter::new(args.max_failures, FAILURE_WINDOW, MAX_TRACKED_CLIENTS),
        audit: audit.map(Mutex::new),
        client_ip_header: args.client_ip_header.clone(),
        key_headers_only: args.key_headers_only,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the service's runtime")?;
    runtime.block_on(serve(args, state))
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
    let connections = Arc::new(Semaphore::new(args.max_connections));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        eprintln!("gobuildkey serve: accept failed: {e}");
                        continue;
                    }
                };
                // Over the connection limit: close at once rather than queue.
                let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
                    drop(stream);
                    continue;
                };
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(handle(&state, peer.ip(), &req)) }
                    });
                    let mut builder = http1::Builder::new();
                    builder
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .max_buf_size(MAX_HEAD);
                    // Errors here are the client's (a reset, a timeout); nothing to report.
                    let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                    drop(permit);
                });
            }
            _ = hangup.recv() => {
                let loader = Arc::clone(&args);
                let reloaded = tokio::task::spawn_blocking(move || load(&loader)).await;
                let error = match reloaded {
                    Ok(Ok(verifier)) => {
                        let loaded = Loaded::new(verifier);
                        state.metrics.loaded(loaded.loaded_at);
                        state.metrics.reloaded(ReloadResult::ok);
                        *state.loaded.write().unwrap_or_else(PoisonError::into_inner) = loaded;
                        eprintln!("gobuildkey serve: reloaded the masters and the policy");
                        continue;
                    }
                    Ok(Err(e)) => one_line(&e),
                    Err(e) => one_line(&e),
                };
                // Keep answering from the last good state: it still holds every revocation
                // it had. /healthz reports it stale until a reload succeeds.
                let loaded_at = {
                    let mut loaded = state.loaded.write().unwrap_or_else(PoisonError::into_inner);
                    loaded.failed(error.clone());
                    loaded.loaded_at
                };
                state.metrics.reloaded(ReloadResult::failed);
                eprintln!(
                    "gobuildkey serve: reload failed, keeping the last good masters and policy (loaded at {loaded_at}): {error}"
                );
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    eprintln!("gobuildkey serve: stopping");
    Ok(Exit::Ok)
}

fn handle(state: &State, peer: IpAddr, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let read_only = matches!(*req.method(), Method::GET | Method::HEAD);
    match (read_only, path) {
        // 200 even when stale: the replica still answers from its last good state, and
        // taking every replica out for one broken policy edit would refuse the whole farm.
        (true, "/healthz") => {
            let body = state.loaded().health();
            response(StatusCode::OK, "application/json", Bytes::from(body))
        }
        (true, "/verify") => verify(state, peer, req),
        (true, "/metrics") => response(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            Bytes::from(state.metrics.text()),
        ),
        (false, "/verify" | "/healthz" | "/metrics") => {
            respond(StatusCode::METHOD_NOT_ALLOWED, "use GET\n")
        }
        _ => respond(
            StatusCode::NOT_FOUND,
            "not found: use /verify, /healthz or /metrics\n",
        ),
    }
}

fn verify(state: &State, peer: IpAddr, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let client = client_address(state, peer, req);
    let started = Instant::now();
    if state.limiter.is_limited(client, started) {
        return respond(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed attempts: try again later\n",
        );
    }
    let verifier = Arc::clone(&state.loaded().verifier);
    let values = |name: &str| -> Vec<&[u8]> {
        req.headers()
            .get_all(name)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect()
    };
    let now = Timestamp::now();
    let key_values = values(KEY_HEADER);
    let (revdial_versions, hostnames, host_types) = (
        values(REVDIAL_HEADER),
        values(HOSTNAME_HEADER),
        values(HOST_TYPE_HEADER),
    );
    let registration = Registration {
        revdial_versions: &revdial_versions,
        hostnames: &hostnames,
        host_types: &host_types,
        keys: &key_values,
    };
    let checks = if state.key_headers_only {
        Checks::KeyOnly
    } else {
        Checks::Coordinator
    };
    let answer = service::answer_registration(&verifier, &registration, checks, now);
    if answer.is_failure() {
        state.limiter.record_failure(client, started);
    }
    if let (Some(audit), Some((principal, decision))) = (&state.audit, &answer.decision) {
        let mut record = AuditRecord::new(
            principal,
            decision,
            key_values.first().copied().unwrap_or_default(),
            now,
        );
        let hostname = req
            .headers()
            .get(HOSTNAME_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|h| h.len() <= 255);
        record.client = Some(match hostname {
            Some(name) => format!("{name} {client}"),
            None => client.to_string(),
        });
        let mut audit = audit.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = audit.write(&record) {
            eprintln!("gobuildkey serve: cannot write the audit line: {e}");
        }
    }
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    respond(status, answer.body)
}

/// The client's address: the peer's, or, behind a proxy that sets it, the header's.
fn client_address(state: &State, peer: IpAddr, req: &Request<Incoming>) -> IpAddr {
    state
        .client_ip_header
        .as_deref()
        .and_then(|name| req.headers().get(name))
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(peer)
}

/// A one-line plain-text answer.
fn respond(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    response(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

fn response(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
