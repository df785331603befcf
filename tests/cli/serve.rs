//! `gobuildkey serve`: the HTTP verification service, on loopback.

use std::io::Read;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::{ARM, ARM_KEY, MASTER, TestEnv, assert_no_secret};
use crate::server::{http_get, http_raw};

fn registration(key: &str) -> [(&'static str, String); 3] {
    [
        ("X-Go-Host-Type", ARM.to_owned()),
        ("X-Go-Builder-Key", key.to_owned()),
        ("X-Go-Builder-Hostname", "builder-7".to_owned()),
    ]
}

fn get(addr: std::net::SocketAddr, headers: &[(&str, String)]) -> u16 {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    http_get(addr, "/verify", &headers).0
}

#[test]
fn answers_by_the_agents_headers() {
    let env = TestEnv::new().with_master();
    let server = env.serve(&["--audit", "-"]);
    let a = server.addr;
    assert_eq!(get(a, &registration(ARM_KEY)), 200);
    assert_eq!(get(a, &registration(&ARM_KEY.replace('9', "8"))), 403);
    assert_eq!(get(a, &registration("short")), 400);
    assert_eq!(get(a, &[("X-Go-Builder-Key", ARM_KEY.to_owned())]), 400);
    assert_eq!(get(a, &[("X-Go-Host-Type", ARM.to_owned())]), 400);
    assert_eq!(
        get(
            a,
            &[
                ("X-Go-Host-Type", "../etc".to_owned()),
                ("X-Go-Builder-Key", ARM_KEY.to_owned())
            ]
        ),
        400
    );
    // Two keys: which one? Neither.
    let twice = format!(
        "GET /verify HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Go-Host-Type: {ARM}\r\nX-Go-Builder-Key: {ARM_KEY}\r\nX-Go-Builder-Key: {ARM_KEY}\r\n\r\n"
    );
    assert_eq!(http_raw(a, twice.as_bytes()).0, 400);
    // By default only host types register.
    let user_key = env.cmd().args(["mint", "user-x"]).output().unwrap().stdout;
    let user_key = String::from_utf8(user_key).unwrap();
    assert_eq!(
        get(
            a,
            &[
                ("X-Go-Host-Type", "user-x".to_owned()),
                ("X-Go-Builder-Key", user_key.trim().to_owned())
            ]
        ),
        403
    );
    assert_eq!(http_get(a, "/healthz", &[]), (200, "ok\n".to_owned()));
    assert_eq!(http_get(a, "/", &[]).0, 404);
    assert_eq!(
        http_raw(
            a,
            b"POST /verify HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .0,
        405
    );
    // The audit lines and the log never show a key or the master.
    server.wait_for_log("\"client\":\"builder-7 127.0.0.1\"");
    let log = server.stderr.lock().unwrap().clone();
    assert_no_secret(&log, ARM_KEY);
    assert_no_secret(&log, MASTER);
    assert_no_secret(&log, user_key.trim());
}

#[test]
fn sighup_reloads_without_dropping_requests_and_fails_closed() {
    let env = TestEnv::new().with_master();
    // No rate limit: the hammering client below fails often once the principal is revoked.
    let server = env.serve(&["--max-failures", "0"]);
    let a = server.addr;
    // A client hammering the service throughout: every answer is 200 or 403, never an
    // error or a dropped connection.
    let stop = Arc::new(AtomicBool::new(false));
    let hammer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut answers = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                answers.push(get(a, &registration(ARM_KEY)));
            }
            answers
        })
    };
    env.cmd().args(["revoke", ARM]).assert().success();
    server.signal("HUP");
    server.wait_for_log("reloaded the masters and the policy");
    assert_eq!(get(a, &registration(ARM_KEY)), 403);

    env.cmd().args(["reinstate", ARM]).assert().success();
    server.signal("HUP");
    wait_until(|| get(a, &registration(ARM_KEY)) == 200);
    stop.store(true, Ordering::Relaxed);
    let answers = hammer.join().unwrap();
    assert!(!answers.is_empty());
    assert!(answers.iter().all(|&s| s == 200 || s == 403), "{answers:?}");

    // A policy that cannot be read may hold a revocation: 503 until it is fixed.
    let policy = env.path("keys/gobuildkey.toml");
    std::fs::write(
        &policy,
        "[principals.host-linux-arm-aws]\nrevoked = maybe\n",
    )
    .unwrap();
    server.signal("HUP");
    server.wait_for_log("reload failed");
    assert_eq!(get(a, &registration(ARM_KEY)), 503);
    assert_eq!(http_get(a, "/healthz", &[]).0, 503);
    std::fs::write(&policy, "").unwrap();
    server.signal("HUP");
    wait_until(|| get(a, &registration(ARM_KEY)) == 200);
    assert_eq!(http_get(a, "/healthz", &[]).0, 200);
}

fn wait_until(mut ok: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("condition never held");
}

#[test]
fn failed_attempts_are_rate_limited_per_client() {
    let env = TestEnv::new().with_master();
    let server = env.serve(&["--max-failures", "3", "--client-ip-header", "X-Real-IP"]);
    let a = server.addr;
    let wrong = |ip: &str| {
        let mut h = registration(&ARM_KEY.replace('9', "8")).to_vec();
        h.push(("X-Real-IP", ip.to_owned()));
        get(a, &h)
    };
    assert_eq!(
        [wrong("192.0.2.1"), wrong("192.0.2.1"), wrong("192.0.2.1")],
        [403; 3]
    );
    assert_eq!(wrong("192.0.2.1"), 429);
    // Even the right key, from that client, waits out the window.
    let mut right = registration(ARM_KEY).to_vec();
    right.push(("X-Real-IP", "192.0.2.1".to_owned()));
    assert_eq!(get(a, &right), 429);
    // Another client is not affected.
    assert_eq!(wrong("192.0.2.2"), 403);
    right[3].1 = "192.0.2.2".to_owned();
    assert_eq!(get(a, &right), 200);
}

#[test]
fn oversized_headers_are_refused_and_the_service_goes_on() {
    let env = TestEnv::new().with_master();
    let server = env.serve(&[]);
    let a = server.addr;
    let huge = format!(
        "GET /verify HTTP/1.1\r\nHost: t\r\nX-Go-Host-Type: {ARM}\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let (status, _) = http_raw(a, huge.as_bytes());
    assert!(status == 431 || status == 0, "{status}");
    let long_key = format!("{ARM_KEY}{}", "0".repeat(2000));
    assert_eq!(get(a, &registration(&long_key)), 400);
    let non_ascii = b"GET /verify HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Go-Host-Type: h\xc3\xb6st\r\nX-Go-Builder-Key: k\r\n\r\n";
    assert_eq!(http_raw(a, non_ascii).0, 400);
    assert_eq!(get(a, &registration(ARM_KEY)), 200);
}

#[test]
fn connections_are_bounded() {
    let env = TestEnv::new().with_master();
    let server = env.serve(&["--max-connections", "2"]);
    let a = server.addr;
    let held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(a).unwrap()).collect();
    // Give the server a moment to accept both before the third arrives.
    std::thread::sleep(Duration::from_millis(200));
    let mut third = TcpStream::connect(a).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        third.read(&mut buf).unwrap_or(0),
        0,
        "the third connection is closed"
    );
    drop(held);
    wait_until(|| get(a, &registration(ARM_KEY)) == 200);
}

#[test]
fn refuses_to_start_without_a_master_and_stops_on_sigterm() {
    let env = TestEnv::new();
    env.cmd()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .assert()
        .code(66);
    let env = TestEnv::new().with_master();
    let mut server = env.serve(&[]);
    server.signal("TERM");
    let status = server.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}
