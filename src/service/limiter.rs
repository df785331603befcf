//! The per-client limit on failed attempts, with a bounded cost whatever the number of
//! clients.
//!
//! Only failures count, and only failures are refused: a correct key is always answered
//! 200, so a NAT with one broken builder behind it never locks out its neighbours. The
//! limit exists to slow scanners and to bound what a flood of failures writes to the audit
//! trail, not to stop guessing (a 128-bit key cannot be guessed).
//!
//! Clients are grouped by network, an IPv4 address per /32 and an IPv6 one per /64 by
//! default (whoever has one IPv6 address usually has the whole /64), after an IPv4-mapped
//! IPv6 address (`::ffff:192.0.2.7`, as a dual-stack listener sees IPv4 peers) is taken as
//! the IPv4 address it carries.
//!
//! Each group has a fixed window that starts at its first failure. The first
//! `max_failures` failures in it are answered as usual; the rest get 429 with
//! `Retry-After` (the seconds left in the window) and are not audited one by one: when the
//! window ends, one [`LimitSummary`] says how many were refused, and when the first and the
//! last were.
//!
//! Cost: a hash map from group to window, and a queue of windows in the order they
//! started. Windows all have the same length, so the expired ones are at the front of the
//! queue: each call removes those and does O(1) work besides, amortised. At most
//! `max_clients` groups are tracked; when the table is full of live windows, a failure
//! from a group not in it is refused (429) until the oldest window ends, and counted in
//! one summary for all such groups (client `untracked`). A flood from more addresses than
//! the table holds thus costs bounded memory and bounded audit lines, and a correct key is
//! still answered 200.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use jiff::Timestamp;

use super::client::normalize;

/// How the failure limit is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimiterConfig {
    /// Failures a group may have per window before they are refused; 0 turns the limit
    /// off.
    pub max_failures: u32,
    /// The window's length.
    pub window: Duration,
    /// The most groups tracked at once.
    pub max_clients: usize,
    /// The prefix length IPv4 clients are grouped by (32: each address on its own).
    pub ipv4_prefix: u8,
    /// The prefix length IPv6 clients are grouped by (64 by default).
    pub ipv6_prefix: u8,
}

impl Default for LimiterConfig {
    /// 30 failures a minute per IPv4 address or IPv6 /64, 100,000 groups.
    fn default() -> Self {
        Self {
            max_failures: 30,
            window: Duration::from_secs(60),
            max_clients: 100_000,
            ipv4_prefix: 32,
            ipv6_prefix: 64,
        }
    }
}

/// The network a client is counted in (see the [module](self) documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientGroup(IpNet);

impl fmt::Display for ClientGroup {
    /// The address alone for a single address (`192.0.2.7`), the network otherwise
    /// (`2001:db8::/64`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.prefix_len() == self.0.max_prefix_len() {
            self.0.addr().fmt(f)
        } else {
            self.0.fmt(f)
        }
    }
}

/// What the limiter says of one failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Within the budget: answer it as usual (and audit it).
    Counted,
    /// Over it: answer 429 with `Retry-After`.
    Refused {
        /// How long until the window ends (at least a second).
        retry_after: Duration,
        /// Why.
        cause: Refusal,
    },
}

/// Why a failure was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The group used up its failures for the window.
    Budget,
    /// The table is full of live windows and the group is not in it.
    Full,
}

/// The refusals of one group in one window, for one audit line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSummary {
    /// The group, or `None` for the groups refused because the table was full.
    pub client: Option<ClientGroup>,
    /// How many failures were refused.
    pub refused: u64,
    /// When the first was.
    pub first: Timestamp,
    /// When the last was.
    pub last: Timestamp,
}

impl LimitSummary {
    /// The summary as one line of JSON and a newline, for the audit trail:
    /// `{"time":…,"result":"limited","client":…,"refused":N,"first":…,"last":…}` (client
    /// `untracked` for the groups refused because the table was full).
    ///
    /// ```
    /// use gobuildkey::service::limiter::LimitSummary;
    ///
    /// let summary = LimitSummary {
    ///     client: None,
    ///     refused: 3,
    ///     first: jiff::Timestamp::UNIX_EPOCH,
    ///     last: jiff::Timestamp::UNIX_EPOCH,
    /// };
    /// assert_eq!(
    ///     summary.to_line(jiff::Timestamp::UNIX_EPOCH),
    ///     "{\"time\":\"1970-01-01T00:00:00Z\",\"result\":\"limited\",\"client\":\"untracked\",\
    ///      \"refused\":3,\"first\":\"1970-01-01T00:00:00Z\",\"last\":\"1970-01-01T00:00:00Z\"}\n"
    /// );
    /// ```
    #[must_use]
    pub fn to_line(&self, now: Timestamp) -> String {
        #[derive(serde::Serialize)]
        struct Line {
            time: String,
            result: &'static str,
            client: String,
            refused: u64,
            first: String,
            last: String,
        }
        let line = Line {
            time: now.to_string(),
            result: "limited",
            client: self
                .client
                .map_or_else(|| "untracked".to_owned(), |c| c.to_string()),
            refused: self.refused,
            first: self.first.to_string(),
            last: self.last.to_string(),
        };
        crate::audit::json_line(&line)
    }
}

/// One group's window.
#[derive(Debug)]
struct Window {
    start: Instant,
    failures: u32,
    refused: Option<Refused>,
}

#[derive(Debug)]
struct Refused {
    count: u64,
    first: Timestamp,
    last: Timestamp,
}

impl Refused {
    fn new(at: Timestamp) -> Self {
        Self {
            count: 1,
            first: at,
            last: at,
        }
    }

    fn add(&mut self, at: Timestamp) {
        self.count = self.count.saturating_add(1);
        self.last = at;
    }

    fn summary(self, client: Option<ClientGroup>) -> LimitSummary {
        LimitSummary {
            client,
            refused: self.count,
            first: self.first,
            last: self.last,
        }
    }
}

#[derive(Debug, Default)]
struct Table {
    windows: HashMap<ClientGroup, Window>,
    /// The windows' groups in the order they started (with that start, to tell a record
    /// of a window since replaced).
    order: VecDeque<(Instant, ClientGroup)>,
    /// The refusals of groups not in the table because it was full, and when they began.
    overflow: Option<(Instant, Refused)>,
    /// Summaries of windows ended since the last [`FailureLimiter::expire`].
    pending: Vec<LimitSummary>,
}

/// Counts failed attempts per client group (see the [module](self) documentation).
#[derive(Debug)]
pub struct FailureLimiter {
    config: LimiterConfig,
    table: Mutex<Table>,
}

impl FailureLimiter {
    /// A limiter set by `config`.
    #[must_use]
    pub fn new(config: LimiterConfig) -> Self {
        Self {
            config,
            table: Mutex::new(Table::default()),
        }
    }

    /// The group `client` is counted in: its network by the configured prefix lengths,
    /// an IPv4-mapped IPv6 address taken as IPv4.
    ///
    /// ```
    /// use gobuildkey::service::limiter::{FailureLimiter, LimiterConfig};
    ///
    /// let limiter = FailureLimiter::new(LimiterConfig::default());
    /// assert_eq!(limiter.group("2001:db8::1:2:3:4".parse()?).to_string(), "2001:db8::/64");
    /// assert_eq!(limiter.group("::ffff:192.0.2.7".parse()?).to_string(), "192.0.2.7");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn group(&self, client: IpAddr) -> ClientGroup {
        let client = normalize(client);
        let prefix = match client {
            IpAddr::V4(_) => self.config.ipv4_prefix.min(32),
            IpAddr::V6(_) => self.config.ipv6_prefix.min(128),
        };
        // The prefix is within the family's length, so `new` cannot fail.
        let net = IpNet::new(client, prefix).unwrap_or_else(|_| IpNet::from(client));
        ClientGroup(net.trunc())
    }

    /// Counts one failure of `client` at `now` (`at` on the wall clock, for the summary)
    /// and says whether to answer it or refuse it.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use gobuildkey::service::limiter::{Admission, FailureLimiter, LimiterConfig};
    ///
    /// let limiter = FailureLimiter::new(LimiterConfig { max_failures: 2, ..Default::default() });
    /// let (client, now, at) = ("192.0.2.7".parse()?, Instant::now(), jiff::Timestamp::now());
    /// assert_eq!(limiter.record_failure(client, now, at), Admission::Counted);
    /// assert_eq!(limiter.record_failure(client, now, at), Admission::Counted);
    /// assert!(matches!(limiter.record_failure(client, now, at), Admission::Refused { .. }));
    /// // A new window, a new budget; the old one's refusals come out as one summary.
    /// let later = now + Duration::from_secs(61);
    /// assert_eq!(limiter.expire(later)[0].refused, 1);
    /// assert_eq!(limiter.record_failure(client, later, at), Admission::Counted);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn record_failure(&self, client: IpAddr, now: Instant, at: Timestamp) -> Admission {
        if self.config.max_failures == 0 {
            return Admission::Counted;
        }
        let group = self.group(client);
        let mut table = self.lock();
        self.expire_pending(&mut table, now);
        let window_end = |start: Instant| start + self.config.window;
        if let Some(window) = table.windows.get_mut(&group) {
            if window.failures < self.config.max_failures {
                window.failures += 1;
                return Admission::Counted;
            }
            match &mut window.refused {
                Some(refused) => refused.add(at),
                None => window.refused = Some(Refused::new(at)),
            }
            return Admission::Refused {
                retry_after: seconds_until(window_end(window.start), now),
                cause: Refusal::Budget,
            };
        }
        if table.windows.len() >= self.config.max_clients {
            let oldest = table.order.front().map_or(now, |&(start, _)| start);
            match &mut table.overflow {
                Some((_, refused)) => refused.add(at),
                None => table.overflow = Some((now, Refused::new(at))),
            }
            return Admission::Refused {
                retry_after: seconds_until(window_end(oldest), now),
                cause: Refusal::Full,
            };
        }
        table.windows.insert(
            group,
            Window {
                start: now,
                failures: 1,
                refused: None,
            },
        );
        table.order.push_back((now, group));
        Admission::Counted
    }

    /// Ends the windows that are over at `now`, and returns the summaries of those that
    /// refused something. The service calls it every second.
    pub fn expire(&self, now: Instant) -> Vec<LimitSummary> {
        let mut table = self.lock();
        self.expire_pending(&mut table, now);
        std::mem::take(&mut table.pending)
    }

    /// Ends every window, whether over or not, and returns the summaries (at shutdown).
    pub fn drain(&self) -> Vec<LimitSummary> {
        let mut table = self.lock();
        let table = std::mem::take(&mut *table);
        let mut summaries = table.pending;
        summaries.extend(
            table
                .windows
                .into_iter()
                .filter_map(|(group, window)| window.refused.map(|r| r.summary(Some(group)))),
        );
        summaries.extend(table.overflow.map(|(_, r)| r.summary(None)));
        summaries
    }

    /// How many groups are tracked.
    #[must_use]
    pub fn tracked(&self) -> usize {
        self.lock().windows.len()
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes the windows over at `now`, keeping the summaries of those that refused
    /// something for the next [`expire`](Self::expire) (at most one per group tracked).
    fn expire_pending(&self, table: &mut Table, now: Instant) {
        let over = |start: Instant| now.saturating_duration_since(start) >= self.config.window;
        while let Some(&(start, group)) = table.order.front() {
            if !over(start) {
                break;
            }
            table.order.pop_front();
            // The record of a window since replaced leaves the new one alone.
            if table.windows.get(&group).is_some_and(|w| w.start == start)
                && let Some(refused) = table.windows.remove(&group).and_then(|w| w.refused)
            {
                table.pending.push(refused.summary(Some(group)));
            }
        }
        if table
            .overflow
            .as_ref()
            .is_some_and(|&(start, _)| over(start))
            && let Some((_, refused)) = table.overflow.take()
        {
            table.pending.push(refused.summary(None));
        }
    }
}

/// Whole seconds from `now` until `end`, rounded up, at least one (for `Retry-After`).
fn seconds_until(end: Instant, now: Instant) -> Duration {
    let left = end.saturating_duration_since(now);
    let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    Duration::from_secs(seconds.max(1))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn config(max_failures: u32, max_clients: usize) -> LimiterConfig {
        LimiterConfig {
            max_failures,
            max_clients,
            ..LimiterConfig::default()
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn refused(admission: Admission) -> Option<(u64, Refusal)> {
        match admission {
            Admission::Counted => None,
            Admission::Refused { retry_after, cause } => Some((retry_after.as_secs(), cause)),
        }
    }

    #[test]
    fn budget_per_group_then_429_until_the_window_ends() {
        let limiter = FailureLimiter::new(config(2, 10));
        let (now, at) = (Instant::now(), Timestamp::UNIX_EPOCH);
        let fail =
            |client: &str, when: Instant| refused(limiter.record_failure(ip(client), when, at));
        assert_eq!(fail("192.0.2.1", now), None);
        assert_eq!(fail("192.0.2.1", now + Duration::from_secs(10)), None);
        // 50 s left in the window that began at `now`.
        assert_eq!(
            fail("192.0.2.1", now + Duration::from_secs(10)),
            Some((50, Refusal::Budget))
        );
        assert_eq!(
            fail("192.0.2.1", now + Duration::from_millis(59_500)),
            Some((1, Refusal::Budget))
        );
        // Another IPv4 address has its own budget; an IPv6 /64 is one group.
        assert_eq!(fail("192.0.2.2", now), None);
        assert_eq!(fail("2001:db8::1", now), None);
        assert_eq!(fail("2001:db8::ffff:2", now), None);
        assert_eq!(fail("2001:db8::3:3:3:3", now), Some((60, Refusal::Budget)));
        assert_eq!(fail("2001:db8:0:1::1", now), None, "the next /64");
        // An IPv4-mapped address is its IPv4 address.
        assert_eq!(fail("::ffff:192.0.2.1", now), Some((60, Refusal::Budget)));
        let summaries = limiter.expire(now + Duration::from_secs(60));
        let mut clients: Vec<_> = summaries
            .iter()
            .map(|s| (s.client.unwrap().to_string(), s.refused))
            .collect();
        clients.sort();
        assert_eq!(
            clients,
            [("192.0.2.1".to_owned(), 3), ("2001:db8::/64".to_owned(), 1)]
        );
        assert_eq!(limiter.tracked(), 0);
        assert_eq!(fail("192.0.2.1", now + Duration::from_secs(60)), None);
    }

    #[test]
    fn prefixes_are_configurable() {
        let limiter = FailureLimiter::new(LimiterConfig {
            ipv4_prefix: 24,
            ipv6_prefix: 128,
            ..config(1, 10)
        });
        let (now, at) = (Instant::now(), Timestamp::UNIX_EPOCH);
        let fail = |client: &str| refused(limiter.record_failure(ip(client), now, at));
        assert_eq!(fail("198.51.100.1"), None);
        assert!(fail("198.51.100.200").is_some(), "same /24");
        assert_eq!(fail("2001:db8::1"), None);
        assert_eq!(fail("2001:db8::2"), None, "each IPv6 address on its own");
        assert_eq!(
            limiter.group(ip("198.51.100.9")).to_string(),
            "198.51.100.0/24"
        );
    }

    /// Full of live windows: a new group's failure is refused until the oldest window
    /// ends, and all such refusals make one summary; nothing grows past the cap.
    #[test]
    fn a_full_table_refuses_new_groups_and_stays_bounded() {
        let limiter = FailureLimiter::new(config(5, 100));
        let (start, at) = (Instant::now(), Timestamp::UNIX_EPOCH);
        for i in 0..10_000u32 {
            let client = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000_u32 + i));
            let when = start + Duration::from_millis(u64::from(i));
            let admission = refused(limiter.record_failure(client, when, at));
            if i < 100 {
                assert_eq!(admission, None);
            } else {
                let (retry_after, cause) = admission.unwrap();
                assert_eq!(cause, Refusal::Full);
                assert!((50..=60).contains(&retry_after), "{retry_after}");
            }
            assert!(limiter.tracked() <= 100);
        }
        let summaries = limiter.expire(start + Duration::from_secs(61));
        assert_eq!(summaries.len(), 1, "{summaries:?}");
        assert_eq!((summaries[0].client, summaries[0].refused), (None, 9_900));
        assert_eq!(limiter.tracked(), 0);
        // Room again.
        let again =
            refused(limiter.record_failure(ip("10.0.0.1"), start + Duration::from_secs(61), at));
        assert_eq!(again, None);
    }

    /// Work per failure does not grow with the number of groups: a million failures from
    /// a million addresses in ten windows keep the table at the cap, and each window's
    /// groups leave as it ends.
    #[test]
    fn windows_expire_in_order_as_time_passes() {
        let limiter = FailureLimiter::new(config(1, 200_000));
        let (start, at) = (Instant::now(), Timestamp::UNIX_EPOCH);
        for i in 0..1_000_000u32 {
            let when = start + Duration::from_micros(u64::from(i) * 600);
            let _ = limiter.record_failure(IpAddr::from(std::net::Ipv4Addr::from(i)), when, at);
        }
        // 100,000 windows begin per minute of this clock.
        assert!(limiter.tracked() <= 100_001, "{}", limiter.tracked());
        assert!(limiter.expire(start + Duration::from_secs(3600)).is_empty());
        assert_eq!(limiter.tracked(), 0);
    }

    #[test]
    fn a_window_restarted_after_it_ended_is_kept() {
        let limiter = FailureLimiter::new(config(1, 10));
        let (now, at) = (Instant::now(), Timestamp::UNIX_EPOCH);
        let client = ip("192.0.2.1");
        let _ = limiter.record_failure(client, now, at);
        let later = now + Duration::from_secs(61);
        assert_eq!(
            limiter.record_failure(client, later, at),
            Admission::Counted
        );
        assert!(refused(limiter.record_failure(client, later, at)).is_some());
        assert_eq!(limiter.tracked(), 1);
        assert_eq!(limiter.drain().len(), 1);
        assert_eq!(limiter.tracked(), 0);
    }

    #[test]
    fn zero_turns_it_off() {
        let limiter = FailureLimiter::new(config(0, 1));
        let (now, at) = (Instant::now(), Timestamp::UNIX_EPOCH);
        for _ in 0..100 {
            assert_eq!(
                limiter.record_failure(ip("192.0.2.1"), now, at),
                Admission::Counted
            );
        }
        assert_eq!(limiter.tracked(), 0);
    }
}
