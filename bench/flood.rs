//! Failed registrations from many source addresses, for bench/serve-flood. Standard
//! library only, built by the script with `rustc -O` (no Cargo project, nothing to fetch).
//!
//! Each connection is bound to its own loopback address (127.B.C.D: every address of 127/8
//! is local on Linux, nothing to set up), sends `GET /verify` with the agent's headers and
//! a wrong key of the right format (64 hex digits, so it is verified, then refused 403, or
//! 429 over the client's budget), reads the answer, and closes. Addresses are taken in
//! turn, 1..N and again, so after one pass every one of the N has failed at least once.
//!
//! ```text
//! flood --port 18791 --addresses 100000 --passes 1               # fill the table
//! flood --port 18791 --addresses 100000 --rate 2000 --seconds 20 # a steady flood
//! ```
//!
//! Threads with blocking sockets (on loopback a connect completes at once); `--rate` is
//! the total of new connections per second, shared by the threads on one schedule that
//! starts them in batches every `--tick-ms` (10): one wake-up per thread per tick rather
//! than one per connection, so that the generator, which shares the machine here, costs
//! as little as it can besides the connections themselves. At the end it prints one JSON
//! object: connections, answers by status, errors, seconds, rates.
//! Not a test: it measures nothing by itself.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::os::fd::FromRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

// The few calls std does not offer: a socket bound before it connects.
#[repr(C)]
struct SockaddrIn {
    family: u16,
    port: u16, // network order
    addr: u32, // network order
    zero: [u8; 8],
}
unsafe extern "C" {
    fn socket(domain: i32, kind: i32, protocol: i32) -> i32;
    fn setsockopt(fd: i32, level: i32, name: i32, value: *const i32, len: u32) -> i32;
    fn bind(fd: i32, addr: *const SockaddrIn, len: u32) -> i32;
    fn connect(fd: i32, addr: *const SockaddrIn, len: u32) -> i32;
    fn close(fd: i32) -> i32;
}
const AF_INET: i32 = 2;
const SOCK_STREAM: i32 = 1;
const SOCK_CLOEXEC: i32 = 0o2_000_000;
const IPPROTO_IP: i32 = 0;
const IPPROTO_TCP: i32 = 6;
const TCP_NODELAY: i32 = 1;
/// Bind the address now and the port at connect: no port search per socket.
const IP_BIND_ADDRESS_NO_PORT: i32 = 24;

fn sockaddr(ip: Ipv4Addr, port: u16) -> SockaddrIn {
    SockaddrIn {
        family: AF_INET as u16,
        port: port.to_be(),
        addr: u32::from(ip).to_be(),
        zero: [0; 8],
    }
}

/// A TCP connection from `from` (any port) to `to`.
fn connect_from(from: Ipv4Addr, to: &SockaddrIn) -> std::io::Result<TcpStream> {
    let len = size_of::<SockaddrIn>() as u32;
    // SAFETY: plain system calls on a descriptor this function owns until it is wrapped
    // (or closed on error); the addresses outlive the calls.
    unsafe {
        let fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let one = 1i32;
        let local = sockaddr(from, 0);
        if setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, 4) != 0
            || setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, 4) != 0
            || bind(fd, &local, len) != 0
            || connect(fd, to, len) != 0
        {
            let e = std::io::Error::last_os_error();
            close(fd);
            return Err(e);
        }
        Ok(TcpStream::from_raw_fd(fd))
    }
}

/// The i-th source address (from 0): 127.1.0.1, 127.1.0.2, … skipping .0 and .255.
fn address(i: u64) -> Ipv4Addr {
    let (row, last) = (i / 254, i % 254);
    Ipv4Addr::new(127, (1 + row / 256) as u8, (row % 256) as u8, (last + 1) as u8)
}

/// Reads one answer (serve's all have a Content-Length) and returns its status.
fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    let bad = |what: &str| std::io::Error::other(what.to_owned());
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).map_err(|_| bad("head not UTF-8"))?;
            let status: u16 = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("no status"))?;
            let length: usize = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return Ok(status);
            }
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(bad("closed before the whole answer"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

struct Args {
    host: Ipv4Addr,
    port: u16,
    addresses: u64,
    first: u64,
    passes: f64,
    seconds: f64,
    rate: f64,
    tick_ms: u64,
    threads: u64,
    requests: u64,
    principal: String,
    key: String,
}

fn parse_args() -> Args {
    let mut a = Args {
        host: Ipv4Addr::LOCALHOST,
        port: 0,
        addresses: 100_000,
        first: 0,
        passes: 0.0,
        seconds: 0.0,
        rate: 0.0,
        tick_ms: 10,
        threads: 16,
        requests: 1,
        principal: "host-linux-arm-aws".into(),
        key: "0".repeat(64),
    };
    let usage = "flood --port P [--host 127.0.0.1] [--addresses 100000] [--first 0] \
                 (--passes N | --seconds S) [--rate CONN/S] [--tick-ms 10] [--threads 16] [--requests 1] \
                 [--principal P] [--key K]";
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value; {usage}"));
        match flag.as_str() {
            "--host" => a.host = parse(&flag, &value, usage),
            "--port" => a.port = parse(&flag, &value, usage),
            "--addresses" => a.addresses = parse(&flag, &value, usage),
            "--first" => a.first = parse(&flag, &value, usage),
            "--passes" => a.passes = parse(&flag, &value, usage),
            "--seconds" => a.seconds = parse(&flag, &value, usage),
            "--rate" => a.rate = parse(&flag, &value, usage),
            "--tick-ms" => a.tick_ms = parse(&flag, &value, usage),
            "--threads" => a.threads = parse(&flag, &value, usage),
            "--requests" => a.requests = parse(&flag, &value, usage),
            "--principal" => a.principal = value,
            "--key" => a.key = value,
            _ => panic!("unknown {flag}; {usage}"),
        }
    }
    assert!(a.port != 0 && (a.passes > 0.0 || a.seconds > 0.0), "{usage}");
    a
}

fn parse<T: std::str::FromStr>(flag: &str, value: &str, usage: &str) -> T {
    value
        .parse()
        .unwrap_or_else(|_| panic!("bad value {value:?} for {flag}; {usage}"))
}

fn main() {
    let args = Arc::new(parse_args());
    let request = Arc::new(format!(
        "GET /verify HTTP/1.1\r\nHost: gobuildkey\r\nX-Revdial-Version: 2\r\n\
         X-Go-Builder-Hostname: flood\r\nX-Go-Host-Type: {}\r\nX-Go-Builder-Key: {}\r\n\r\n",
        args.principal, args.key
    ));
    let total = if args.passes > 0.0 {
        (args.passes * args.addresses as f64) as u64
    } else {
        u64::MAX
    };
    let start = Instant::now();
    let deadline = (args.seconds > 0.0).then(|| start + Duration::from_secs_f64(args.seconds));
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..args.threads)
        .map(|_| {
            let (args, request, next, done) = (
                Arc::clone(&args),
                Arc::clone(&request),
                Arc::clone(&next),
                Arc::clone(&done),
            );
            std::thread::spawn(move || {
                let to = sockaddr(args.host, args.port);
                let mut statuses = BTreeMap::<u16, u64>::new();
                let (mut connections, mut errors) = (0u64, 0u64);
                let mut buf = Vec::with_capacity(512);
                while !done.load(Ordering::Relaxed) {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        break;
                    }
                    if args.rate > 0.0 {
                        // Connection n belongs to tick n / per_tick.
                        let per_tick = (args.rate * args.tick_ms as f64 / 1000.0).max(1.0);
                        let tick = (n as f64 / per_tick).floor() * per_tick;
                        let due = start + Duration::from_secs_f64(tick / args.rate);
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep(due - now);
                        }
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        done.store(true, Ordering::Relaxed);
                        break;
                    }
                    let from = address(args.first + n % args.addresses);
                    let result = connect_from(from, &to).and_then(|mut stream| {
                        for _ in 0..args.requests {
                            stream.write_all(request.as_bytes())?;
                            *statuses.entry(read_answer(&mut stream, &mut buf)?).or_default() +=
                                1;
                        }
                        Ok(())
                    });
                    match result {
                        Ok(()) => connections += 1,
                        Err(_) => errors += 1,
                    }
                }
                (connections, errors, statuses)
            })
        })
        .collect();
    let (mut connections, mut errors, mut statuses) = (0, 0, BTreeMap::<u16, u64>::new());
    for t in threads {
        let (c, e, s) = t.join().expect("a flood thread panicked");
        connections += c;
        errors += e;
        for (status, n) in s {
            *statuses.entry(status).or_default() += n;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let answers: u64 = statuses.values().sum();
    let by_status: Vec<String> = statuses
        .iter()
        .map(|(s, n)| format!("\"{s}\":{n}"))
        .collect();
    println!(
        "{{\"addresses\":{},\"connections\":{connections},\"answers\":{{{}}},\"errors\":{errors},\
         \"seconds\":{seconds:.3},\"connections_per_s\":{:.1},\"failures_per_s\":{:.1}}}",
        args.addresses,
        by_status.join(","),
        connections as f64 / seconds,
        answers as f64 / seconds,
    );
}
