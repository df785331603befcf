//! Requests to answers: the routes, and `/verify` through the library's
//! `service::answer_registration`, the failure limiter and the audit trail.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use jiff::Timestamp;

use gobuildkey::audit::Context;
use gobuildkey::service::limiter::{Admission, Refusal};
use gobuildkey::service::{
    self, Checks, HOST_TYPE_HEADER, HOSTNAME_HEADER, KEY_HEADER, REVDIAL_HEADER, Registration,
};
use gobuildkey::verifier::Verdict;

use super::State;
use super::metrics::Outcome;

pub fn handle(state: &State, peer: IpAddr, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let read_only = matches!(*req.method(), Method::GET | Method::HEAD);
    match (read_only, path) {
        // 200 even when stale: the replica still answers from its last good state, and
        // taking every replica out for one broken policy edit would refuse the whole farm.
        (true, "/healthz") => {
            let body = state.health();
            response(StatusCode::OK, "application/json", Bytes::from(body))
        }
        (true, "/verify") => verify(state, peer, req),
        (true, "/metrics") => {
            let text = state
                .metrics
                .text(state.limiter.tracked(), state.connections.len());
            response(
                StatusCode::OK,
                // What prometheus-client writes: OpenMetrics, not the older 0.0.4 text.
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                Bytes::from(text),
            )
        }
        (false, "/verify" | "/healthz" | "/metrics") => {
            respond(StatusCode::METHOD_NOT_ALLOWED, "use GET\n")
        }
        _ => respond(
            StatusCode::NOT_FOUND,
            "not found: use /verify, /healthz or /metrics\n",
        ),
    }
}

/// Every request is verified, and a correct key is answered 200 whatever the client's
/// failures; a failure over the client's budget becomes 429 and is left to the window's
/// summary line instead of an audit line of its own.
fn verify(state: &State, peer: IpAddr, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let values = |name: &str| -> Vec<&[u8]> {
        req.headers()
            .get_all(name)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect()
    };
    let client = match state.clients.header() {
        Some(header) => state.clients.resolve(peer, &values(header)),
        None => state.clients.resolve(peer, &[]),
    };
    let verifier = state.live.current();
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
    let reason = match &answer.decision {
        Some((_, decision)) => match decision.verdict {
            Verdict::Valid => "none",
            Verdict::Invalid(reason) => reason.as_str(),
        },
        None => "none",
    };
    if answer.is_failure()
        && let Admission::Refused { retry_after, cause } =
            state.limiter.record_failure(client, started, now)
    {
        let why = match cause {
            Refusal::Budget => "budget",
            Refusal::Full => "full",
        };
        state
            .metrics
            .answered(Outcome::limited, why, elapsed(started));
        return too_many(retry_after);
    }
    if let Some((principal, decision)) = &answer.decision {
        let presented = key_values.first().copied().unwrap_or_default();
        let machine = gobuildkey::service::machine_of(&hostnames);
        let context = Context::new(principal, presented, now)
            .with_client(client, hostnames.first().copied())
            .from_machine(machine.as_ref());
        state.audit(decision, &context);
    }
    let outcome = match answer.status {
        200 => Outcome::valid,
        403 => Outcome::invalid,
        _ => Outcome::bad_request,
    };
    state.metrics.answered(outcome, reason, elapsed(started));
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    respond(status, answer.body)
}

fn elapsed(started: Instant) -> f64 {
    started.elapsed().as_secs_f64()
}

/// 429 with `Retry-After`, in whole seconds.
fn too_many(retry_after: Duration) -> Response<Full<Bytes>> {
    let mut answer = respond(
        StatusCode::TOO_MANY_REQUESTS,
        "too many failed attempts: try again later\n",
    );
    answer
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after.as_secs()));
    answer
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
