//! `gobuildkey serve`: the HTTP verification service, for a reverse proxy's auth
//! subrequest (nginx `auth_request`, Envoy `ext_authz`, Traefik `forwardAuth`).
//!
//! This file only moves bytes: what to answer is decided by the library's
//! `service::answer`, which calls the one verify function.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Semaphore;

use gobuildkey::audit::{AuditLog, AuditRecord};
use gobuildkey::service::{self, FailureLimiter, HOST_TYPE_HEADER, HOSTNAME_HEADER, KEY_HEADER};
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
    /// `None` after a failed reload: every verification answers 503 until one succeeds.
    verifier: RwLock<Option<Arc<Verifier>>>,
    limiter: FailureLimiter,
    audit: Option<Mutex<AuditLog>>,
    client_ip_header: Option<String>,
}

/// Loads the masters and policy (failing before listening if they are bad), then serves
/// until SIGTERM or SIGINT; SIGHUP reloads them.
pub fn run(args: &ServeArgs) -> Result<Exit> {
    let args = Arc::new(args.clone());
    let verifier = load(&args)?;
    let audit = args.audit.as_deref().map(AuditLog::open).transpose()?;
    let state = Arc::new(State {
        verifier: RwLock::new(Some(Arc::new(verifier))),
        limiter: FailureLimiter::new(args.max_failures, FAILURE_WINDOW, MAX_TRACKED_CLIENTS),
        audit: audit.map(Mutex::new),
        client_ip_header: args.client_ip_header.clone(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the service's runtime")?;
    runtime.block_on(serve(args, state))
}

fn load(args: &ServeArgs) -> Result<Verifier> {
    let verifier = super::load_verifier(&args.master, args.alg)?;
    Ok(match args.kind {
        Some(kind) => verifier.only_kind(kind),
        None => verifier,
    })
}

async fn serve(args: Arc<ServeArgs>, state: Arc<State>) -> Result<Exit> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!(
        "gobuildkey serve: listening on http://{}",
        listener.local_addr()?
    );
    let connections = Arc::new(Semaphore::new(args.max_connections));
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
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
                let mut current = state.verifier.write().unwrap_or_else(PoisonError::into_inner);
                match reloaded {
                    Ok(Ok(verifier)) => {
                        *current = Some(Arc::new(verifier));
                        eprintln!("gobuildkey serve: reloaded the masters and the policy");
                    }
                    Ok(Err(e)) => {
                        // Fail closed: a policy that cannot be read may hold a revocation.
                        *current = None;
                        eprintln!("gobuildkey serve: reload failed, answering 503 until a reload succeeds: {e:#}");
                    }
                    Err(e) => {
                        *current = None;
                        eprintln!("gobuildkey serve: reload failed: {e}");
                    }
                }
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
        (true, "/healthz") => {
            if loaded(state).is_some() {
                respond(StatusCode::OK, "ok\n")
            } else {
                respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no valid masters and policy loaded\n",
                )
            }
        }
        (true, "/verify") => verify(state, peer, req),
        (false, "/verify" | "/healthz") => respond(StatusCode::METHOD_NOT_ALLOWED, "use GET\n"),
        _ => respond(
            StatusCode::NOT_FOUND,
            "not found: use /verify or /healthz\n",
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
    let Some(verifier) = loaded(state) else {
        return respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "no valid masters and policy loaded\n",
        );
    };
    let values = |name: &str| -> Vec<&[u8]> {
        req.headers()
            .get_all(name)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect()
    };
    let now = jiff::Timestamp::now();
    let key_values = values(KEY_HEADER);
    let answer = service::answer(&verifier, &values(HOST_TYPE_HEADER), &key_values, now);
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

fn loaded(state: &State) -> Option<Arc<Verifier>> {
    state
        .verifier
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
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

fn respond(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
