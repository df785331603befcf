//! `gobuildkey serve` under hostile traffic: failures from many addresses, spoofed client
//! headers, idle and slow sockets, the process at its file-descriptor limit. No test times
//! anything: each waits for what must happen (an answer, a closed socket, a log line).

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use crate::common::{ARM, ARM_KEY, TestEnv};
use crate::server::{Answer, Server};

/// Long enough that a test never waits on it unless something is broken.
const PATIENCE: Duration = Duration::from_secs(60);

/// A connection to `addr` from `from` (a loopback address of the test's choosing).
fn connect_from(from: Ipv4Addr, addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::new(IpAddr::V4(from), 0).into())
        .unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// A registration for ARM with `key`, from `from`, with `extra` headers.
fn register(addr: SocketAddr, from: Ipv4Addr, key: &str, extra: &[(&str, &str)]) -> Answer {
    let mut stream = connect_from(from, addr);
    let mut request = format!(
        "GET /verify HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Revdial-Version: 2\r\n\
         X-Go-Builder-Hostname: builder-7\r\nX-Go-Host-Type: {ARM}\r\nX-Go-Builder-Key: {key}\r\n"
    );
    for (name, value) in extra {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    Answer::parse(&response)
}

fn wrong_key() -> String {
    ARM_KEY.replace('9', "8")
}

/// The audit file's lines, as JSON.
fn audit_lines(env: &TestEnv) -> Vec<serde_json::Value> {
    std::fs::read_to_string(env.path("audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < PATIENCE, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The sample `name` (labels included, as written) of `/metrics`.
fn metric(server: &Server, name: &str) -> f64 {
    let (status, text) = crate::server::http_get(server.addr, "/metrics", &[]);
    assert_eq!(status, 200);
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// Only failures count, and only failures are refused: past the budget a failure gets 429
/// with `Retry-After` and no audit line of its own, the right key from that same client is
/// answered 200, and when the window ends one summary line counts the refusals.
#[test]
fn a_correct_key_is_never_refused_and_failures_over_budget_get_429() {
    let env = TestEnv::new().with_master();
    let audit = env.path("audit.log");
    let server = env.serve(&[
        "--max-failures",
        "3",
        "--failure-window",
        "2s",
        "--audit",
        audit.to_str().unwrap(),
    ]);
    let (a, client) = (server.addr, Ipv4Addr::new(127, 0, 0, 11));
    for _ in 0..3 {
        assert_eq!(register(a, client, &wrong_key(), &[]).status, 403);
    }
    for _ in 0..2 {
        let limited = register(a, client, &wrong_key(), &[]);
        assert_eq!(limited.status, 429, "{limited:?}");
        assert_eq!(limited.body, "too many failed attempts: try again later\n");
        let retry_after: u64 = limited.header("Retry-After").unwrap().parse().unwrap();
        assert!((1..=2).contains(&retry_after), "{limited:?}");
    }
    // The neighbour behind the same address, with its right key, gets in.
    assert_eq!(register(a, client, ARM_KEY, &[]).status, 200);
    // Another address has its own budget.
    let other = Ipv4Addr::new(127, 0, 0, 12);
    assert_eq!(register(a, other, &wrong_key(), &[]).status, 403);

    wait_until("the window's summary line", || {
        audit_lines(&env).iter().any(|l| l["result"] == "limited")
    });
    let lines = audit_lines(&env);
    let results: Vec<_> = lines
        .iter()
        .map(|l| l["result"].as_str().unwrap())
        .collect();
    assert_eq!(
        results.iter().filter(|r| **r == "deny").count(),
        4,
        "{lines:?}"
    );
    assert_eq!(
        results.iter().filter(|r| **r == "ok").count(),
        1,
        "{lines:?}"
    );
    let summary: Vec<_> = lines.iter().filter(|l| l["result"] == "limited").collect();
    assert_eq!(summary.len(), 1, "{lines:?}");
    assert_eq!(summary[0]["client"], "127.0.0.11");
    assert_eq!(summary[0]["refused"], 2);
    let (first, last): (jiff::Timestamp, jiff::Timestamp) = (
        summary[0]["first"].as_str().unwrap().parse().unwrap(),
        summary[0]["last"].as_str().unwrap().parse().unwrap(),
    );
    assert!(first <= last);
    assert_eq!(
        metric(
            &server,
            "gobuildkey_requests_total{result=\"limited\",reason=\"budget\"}"
        ),
        2.0
    );
    // A new window, a new budget.
    assert_eq!(register(a, client, &wrong_key(), &[]).status, 403);
}

/// `--client-ip-header` is believed only from a trusted proxy: from anyone else a scanner
/// could name a new address per request. From a trusted one, the right-most address of
/// `X-Forwarded-For` that is not a trusted proxy is the client.
#[test]
fn a_client_header_is_believed_only_from_a_trusted_proxy() {
    let env = TestEnv::new().with_master();
    let audit = env.path("audit.log");
    let server = env.serve(&[
        "--client-ip-header",
        "X-Forwarded-For",
        "--trusted-proxy",
        "127.0.0.1",
        "--max-failures",
        "2",
        "--audit",
        audit.to_str().unwrap(),
    ]);
    let a = server.addr;
    // From 127.0.0.2, not trusted: each spoofed address is still 127.0.0.2.
    let spoofer = Ipv4Addr::new(127, 0, 0, 2);
    let statuses: Vec<u16> = (1..=3)
        .map(|i| {
            let spoofed = format!("198.51.100.{i}");
            register(a, spoofer, &wrong_key(), &[("X-Forwarded-For", &spoofed)]).status
        })
        .collect();
    assert_eq!(statuses, [403, 403, 429]);
    // From the trusted proxy: the client it reports, past the proxies it trusts.
    let proxy = Ipv4Addr::LOCALHOST;
    let xff = [("X-Forwarded-For", "6.6.6.6, 203.0.113.5, 127.0.0.1")];
    assert_eq!(register(a, proxy, &wrong_key(), &xff).status, 403);
    assert_eq!(register(a, proxy, &wrong_key(), &xff).status, 403);
    assert_eq!(register(a, proxy, &wrong_key(), &xff).status, 429);
    let clients: Vec<String> = audit_lines(&env)
        .iter()
        .map(|l| l["client"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        clients,
        [
            "builder-7 127.0.0.2",
            "builder-7 127.0.0.2",
            "builder-7 203.0.113.5",
            "builder-7 203.0.113.5"
        ]
    );
}

/// Failures from 100,000 addresses: the limiter's table stays at its cap, failures from
/// addresses it cannot track get 429, and a correct key from yet another address is
/// answered 200, from a process that stays small.
#[test]
fn failures_from_a_hundred_thousand_addresses() {
    const ADDRESSES: u32 = 100_000;
    const TRACKED: u32 = 60_000;
    let env = TestEnv::new().with_master();
    let server = env.serve(&[
        "--max-failures",
        "1",
        "--max-tracked-clients",
        &TRACKED.to_string(),
    ]);
    let a = server.addr;
    let threads: Vec<_> = (0..8u32)
        .map(|t| {
            std::thread::spawn(move || {
                let mut statuses = [0u32; 2];
                for i in (t..ADDRESSES).step_by(8) {
                    // 127.1.0.0 onwards: 127.1.x.y, 127.2.x.y …
                    let from = Ipv4Addr::from(0x7f01_0000 + i);
                    match register(a, from, "0123", &[]).status {
                        403 => statuses[0] += 1,
                        429 => statuses[1] += 1,
                        other => panic!("{other} from {from}"),
                    }
                }
                statuses
            })
        })
        .collect();
    let (mut denied, mut limited) = (0, 0);
    for thread in threads {
        let [d, l] = thread.join().unwrap();
        denied += d;
        limited += l;
    }
    assert_eq!(denied, TRACKED);
    assert_eq!(limited, ADDRESSES - TRACKED);
    assert_eq!(
        register(a, Ipv4Addr::new(127, 200, 0, 1), ARM_KEY, &[]).status,
        200
    );
    assert_eq!(
        metric(&server, "gobuildkey_limiter_tracked_clients"),
        f64::from(TRACKED)
    );
    assert_eq!(
        metric(
            &server,
            "gobuildkey_requests_total{result=\"limited\",reason=\"full\"}"
        ),
        f64::from(ADDRESSES - TRACKED)
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(rss_kb < 64 * 1024, "resident memory {rss_kb} kB");
}

/// Raises this process's soft file-descriptor limit to its hard one (the idle sockets are
/// ours too).
fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    setrlimit(Resource::Nofile, limit).unwrap();
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Whether the server closed `stream`: a read gives end of file (waiting for it).
fn closed(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    matches!(stream.read(&mut [0; 1]), Ok(0) | Err(_))
}

/// Whether `stream` is still open: a read would block.
fn still_open(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let open = matches!((&*stream).read(&mut [0; 1]), Err(e) if e.kind() == ErrorKind::WouldBlock);
    stream.set_nonblocking(false).unwrap();
    open
}

/// 5,000 sockets that never send a byte, then a registration: it is answered, and the
/// sockets closed to make room for it are the least recently active (the oldest), by the
/// default limit of 4,096 connections.
#[test]
fn five_thousand_idle_sockets_do_not_keep_a_registration_out() {
    assert!(
        raise_fd_limit() > 5_200,
        "this test needs 5,200 file descriptors"
    );
    let env = TestEnv::new().with_master();
    let server = env.serve(&["--idle-timeout", "10m", "--header-timeout", "10m"]);
    let a = server.addr;
    let mut idle: Vec<TcpStream> = (0..5_000).map(|_| TcpStream::connect(a).unwrap()).collect();
    // Each is accepted (a closed one was accepted first) before the registration.
    wait_until("5,000 connections accepted", || {
        metric(
            &server,
            "gobuildkey_connections_closed_total{cause=\"evicted\"}",
        ) >= 904.0
    });
    let answer = register(a, Ipv4Addr::LOCALHOST, ARM_KEY, &[]);
    assert_eq!(answer.status, 200, "{answer:?}");
    let evicted = metric(
        &server,
        "gobuildkey_connections_closed_total{cause=\"evicted\"}",
    ) as usize;
    // 5,000 idle + the registration + the /metrics requests, in 4,096 places.
    assert!(evicted > 904, "{evicted}");
    for (i, stream) in idle.iter_mut().enumerate().take(904) {
        assert!(closed(stream), "idle socket {i} is still open");
    }
    let open = idle
        .iter_mut()
        .rev()
        .take(3_000)
        .filter(|s| still_open(s))
        .count();
    assert_eq!(open, 3_000, "the newest idle sockets stay open");
}

/// A client that connects and says nothing, or sends half its headers, is closed once its
/// timeout passes.
#[test]
fn silent_and_slow_clients_are_closed() {
    let env = TestEnv::new().with_master();
    let server = env.serve(&["--idle-timeout", "1s", "--header-timeout", "1s"]);
    let mut silent = TcpStream::connect(server.addr).unwrap();
    let mut slow = TcpStream::connect(server.addr).unwrap();
    slow.write_all(b"GET /verify HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    assert!(closed(&mut silent));
    assert!(closed(&mut slow));
    // A kept-alive connection is closed after its idle time too, having been answered.
    let mut kept = TcpStream::connect(server.addr).unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut answer = [0u8; 12];
    kept.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    let mut rest = Vec::new();
    kept.read_to_end(&mut rest).unwrap();
    // Counted once each connection's task has ended, a moment after the client saw it.
    let closed_by = |cause: &str| {
        metric(
            &server,
            &format!("gobuildkey_connections_closed_total{{cause=\"{cause}\"}}"),
        )
    };
    wait_until("both counted", || {
        closed_by("slow_headers") == 1.0 && closed_by("idle") == 2.0
    });
}

/// With no file descriptor left, accept fails: the service closes its least recently
/// active connection to free one, retries after a pause, logs at most a line a second, and
/// a registration is answered.
#[test]
fn at_its_file_descriptor_limit_the_service_recovers() {
    let env = TestEnv::new().with_master();
    let server = env.serve(&["--idle-timeout", "10m", "--header-timeout", "10m"]);
    let a = server.addr;
    let pid = server.child.id().to_string();
    let lowered = std::process::Command::new("prlimit")
        .args(["--pid", &pid, "--nofile=40:40"])
        .status();
    match lowered {
        Ok(status) => assert!(status.success()),
        Err(_) => {
            return crate::common::missing_tool("prlimit", "util-linux", "the fd-limit test");
        }
    }
    let start = Instant::now();
    let _idle: Vec<TcpStream> = (0..100).map(|_| TcpStream::connect(a).unwrap()).collect();
    let answer = register(a, Ipv4Addr::LOCALHOST, ARM_KEY, &[]);
    assert_eq!(answer.status, 200, "{answer:?}");
    server.wait_for_log("accept failed");
    let seconds = start.elapsed().as_secs();
    let log = server.stderr.lock().unwrap().clone();
    let lines = log.matches("accept failed").count() as u64;
    assert!(lines <= seconds + 2, "{lines} lines in {seconds} s:\n{log}");
    assert!(
        log.contains("Too many open files") || log.contains("os error 24"),
        "{log}"
    );
}

/// The header clock starts at a request's first byte, whatever the idle timeout: with
/// `--idle-timeout 168h` (a week), a client that sends half its headers right after connecting is
/// closed for its slow headers (the metric says which clock closed it).
#[test]
fn the_header_timeout_counts_from_the_first_byte_even_with_a_long_idle_timeout() {
    let env = TestEnv::new().with_master();
    let server = env.serve(&["--idle-timeout", "168h", "--header-timeout", "1s"]);
    let mut slow = TcpStream::connect(server.addr).unwrap();
    slow.write_all(b"GET /verify HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    assert!(closed(&mut slow), "still open");
    wait_until("counted", || {
        metric(
            &server,
            "gobuildkey_connections_closed_total{cause=\"slow_headers\"}",
        ) == 1.0
    });
    assert_eq!(
        metric(
            &server,
            "gobuildkey_connections_closed_total{cause=\"idle\"}"
        ),
        0.0
    );
}

/// Whether the service closed `stream`: end of file or a reset, not the read timeout.
fn closed_by_the_service(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    match stream.read(&mut [0; 1]) {
        Ok(n) => n == 0,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

/// Sends a keep-alive `GET /healthz` on `stream` and reads its answer (to the end of its
/// body): the status line.
fn healthz_kept_alive(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let head = crate::server::read_answer(stream);
    head.lines().next().unwrap().to_owned()
}

/// The header clock of a kept-alive connection's next request starts at that request's
/// first byte, after answers that each moved the deadline later (the connection's clock is
/// set once per timeout, not per request): half a second request is closed for its headers.
#[test]
fn a_slow_request_on_a_kept_alive_connection_is_closed_for_its_headers() {
    let env = TestEnv::new().with_master();
    let server = env.serve(&["--idle-timeout", "168h", "--header-timeout", "1s"]);
    let mut kept = TcpStream::connect(server.addr).unwrap();
    for _ in 0..3 {
        assert_eq!(healthz_kept_alive(&mut kept), "HTTP/1.1 200 OK");
    }
    kept.write_all(b"GET /verify HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    assert!(closed_by_the_service(&mut kept), "still open");
    wait_until("counted", || {
        metric(
            &server,
            "gobuildkey_connections_closed_total{cause=\"slow_headers\"}",
        ) == 1.0
    });
}

/// An idle timeout shorter than the header timeout: a request slower than the idle time
/// (but within its header time) is answered, and the idle clock then starts from that
/// answer, not from when the header clock would end.
#[test]
fn after_a_slow_request_the_idle_clock_starts_from_its_answer() {
    let env = TestEnv::new().with_master();
    let server = env.serve(&["--idle-timeout", "1s", "--header-timeout", "10m"]);
    let mut slow = TcpStream::connect(server.addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    // Past the idle time: a request under way is held to its header time instead.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(still_open(&slow));
    slow.write_all(b"Host: t\r\n\r\n").unwrap();
    let mut answer = [0u8; 12];
    slow.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    let mut rest = Vec::new();
    // Closed for idleness (an end of file after the answer), long before ten minutes.
    slow.set_read_timeout(Some(PATIENCE)).unwrap();
    slow.read_to_end(&mut rest).unwrap();
    wait_until("counted", || {
        metric(
            &server,
            "gobuildkey_connections_closed_total{cause=\"idle\"}",
        ) == 1.0
    });
}
