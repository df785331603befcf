//! What `GET /metrics` shows, in Prometheus' text format (docs/operations.md lists every
//! series): answers by result and reason, their latency, the failure limiter, the
//! connections, and how reloads went, so that an alert can fire on a replica answering from
//! a stale state.

use std::sync::atomic::AtomicU64;

use jiff::Timestamp;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::connections::Closed;

/// How a `/verify` request was answered.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Outcome {
    /// 200.
    valid,
    /// 403.
    invalid,
    /// 400: a header missing, repeated or malformed.
    bad_request,
    /// 429: over the failure budget.
    limited,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    result: Outcome,
    /// The audit trail's word for why (`Reason::as_str`), `budget` or `full` for a 429,
    /// `none` otherwise.
    reason: &'static str,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum ReloadResult {
    ok,
    failed,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: ReloadResult,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum CloseCause {
    evicted,
    idle,
    slow_headers,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CloseLabels {
    cause: CloseCause,
}

type Seconds = Gauge<f64, AtomicU64>;

/// The service's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Histogram,
    limiter_clients: Gauge,
    connections: Gauge,
    closed: Family<CloseLabels, Counter>,
    accept_errors: Counter,
    last_load: Seconds,
    last_reload_attempt: Seconds,
    stale: Gauge,
    reloads: Family<ReloadLabels, Counter>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut m = Self {
            registry: Registry::default(),
            requests: Family::default(),
            // 10 µs to ~0.3 s.
            latency: Histogram::new(exponential_buckets(0.000_01, 2.0, 15)),
            limiter_clients: Gauge::default(),
            connections: Gauge::default(),
            closed: Family::default(),
            accept_errors: Counter::default(),
            last_load: Seconds::default(),
            last_reload_attempt: Seconds::default(),
            stale: Gauge::default(),
            reloads: Family::default(),
        };
        let r = &mut m.registry;
        r.register(
            "gobuildkey_requests",
            "Answers to /verify, by result and reason",
            m.requests.clone(),
        );
        r.register(
            "gobuildkey_verify_duration_seconds",
            "Time to answer a /verify request, from its headers to its answer",
            m.latency.clone(),
        );
        r.register(
            "gobuildkey_limiter_tracked_clients",
            "Client groups the failure limiter is tracking",
            m.limiter_clients.clone(),
        );
        r.register(
            "gobuildkey_open_connections",
            "Connections open now",
            m.connections.clone(),
        );
        r.register(
            "gobuildkey_connections_closed",
            "Connections the service closed: evicted to make room, idle too long, or headers too slow",
            m.closed.clone(),
        );
        r.register(
            "gobuildkey_accept_errors",
            "Failed accepts (no file descriptor left, say)",
            m.accept_errors.clone(),
        );
        r.register(
            "gobuildkey_last_successful_load_timestamp_seconds",
            "When the masters and the policy in use were loaded (start or reload), Unix time",
            m.last_load.clone(),
        );
        r.register(
            "gobuildkey_last_reload_attempt_timestamp_seconds",
            "When the last reload (successful or not) ended, Unix time; 0 before any",
            m.last_reload_attempt.clone(),
        );
        r.register(
            "gobuildkey_policy_stale",
            "1 while the last reload failed and the service answers from its last good state",
            m.stale.clone(),
        );
        r.register(
            "gobuildkey_reloads",
            "Reloads of the masters and the policy, by result",
            m.reloads.clone(),
        );
        m
    }

    /// One `/verify` answer and how long it took.
    pub fn answered(&self, result: Outcome, reason: &'static str, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels { result, reason })
            .inc();
        self.latency.observe(seconds);
    }

    pub fn closed(&self, why: Closed) {
        let cause = match why {
            Closed::Evicted => CloseCause::evicted,
            Closed::Idle => CloseCause::idle,
            Closed::SlowHeaders => CloseCause::slow_headers,
        };
        self.closed.get_or_create(&CloseLabels { cause }).inc();
    }

    pub fn accept_failed(&self) {
        self.accept_errors.inc();
    }

    pub fn loaded(&self, at: Timestamp) {
        self.last_load.set(seconds(at));
        self.stale.set(0);
    }

    pub fn reloaded(&self, result: ReloadResult, at: Timestamp) {
        self.reloads.get_or_create(&ReloadLabels { result }).inc();
        self.last_reload_attempt.set(seconds(at));
        if result == ReloadResult::failed {
            self.stale.set(1);
        }
    }

    /// The text of `/metrics`, with the gauges read now.
    pub fn text(&self, limiter_clients: usize, connections: usize) -> String {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.limiter_clients.set(gauge(limiter_clients));
        self.connections.set(gauge(connections));
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

fn seconds(at: Timestamp) -> f64 {
    at.as_millisecond() as f64 / 1000.0
}
