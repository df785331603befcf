//! `gobuildkey serve`: the HTTP verification service, on loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::common::{ARM, ARM_KEY, ARM_KEY_MD5, MASTER, TestEnv, assert_no_secret, stdout_of};
use crate::server::{http_get, http_raw};

fn registration(key: &str) -> [(&'static str, String); 3] {
    registration_as(ARM, key)
}

fn registration_as(principal: &str, key: &str) -> [(&'static str, String); 3] {
    [
        ("X-Go-Host-Type", principal.to_owned()),
        ("X-Go-Builder-Key", key.to_owned()),
        ("X-Go-Builder-Hostname", "builder-7".to_owned()),
    ]
}

/// The headers Go's buildlet sends besides the host type and the key.
const AGENT: [(&str, &str); 2] = [
    ("X-Revdial-Version", "2"),
    ("X-Go-Builder-Hostname", "builder-7"),
];

/// `GET /verify` with `headers`, and the agent's own headers where `headers` lacks them.
fn get(addr: SocketAddr, headers: &[(&str, String)]) -> u16 {
    let mut all: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    for (name, value) in AGENT {
        if !all.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            all.push((name, value));
        }
    }
    http_get(addr, "/verify", &all).0
}

/// `GET /healthz`, which must answer 200 with a JSON object: the object.
/// The value of the sample `name` (with its labels, as written) in `GET /metrics`.
fn metric(addr: SocketAddr, name: &str) -> f64 {
    let (status, text) = http_get(addr, "/metrics", &[]);
    assert_eq!(status, 200, "{text}");
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .trim()
        .parse()
        .unwrap()
}

fn health(addr: SocketAddr) -> Value {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{response}");
    assert!(
        head.lines()
            .any(|line| line.eq_ignore_ascii_case("content-type: application/json")),
        "{response}"
    );
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"))
}

/// A time of the health object: RFC 3339, UTC.
fn time(health: &Value, field: &str) -> jiff::Timestamp {
    let text = health[field].as_str().unwrap_or_else(|| panic!("{health}"));
    assert!(text.ends_with('Z'), "{health}");
    text.parse().unwrap_or_else(|e| panic!("{e}: {health}"))
}

#[test]
fn answers_by_the_agents_headers() {
    let env = TestEnv::new().with_master();
    let server = env.serve(&["--audit", "-"]);
    let a = server.addr;
    assert_eq!(get(a, &registration(ARM_KEY)), 200);
    assert_eq!(get(a, &registration(&ARM_KEY.replace('9', "8"))), 403);
    // A key missing, malformed or wrong: one answer.
    assert_eq!(get(a, &registration("short")), 403);
    assert_eq!(get(a, &[("X-Go-Builder-Key", ARM_KEY.to_owned())]), 400);
    assert_eq!(get(a, &[("X-Go-Host-Type", ARM.to_owned())]), 403);
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
        "GET /verify HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Revdial-Version: 2\r\nX-Go-Builder-Hostname: b\r\nX-Go-Host-Type: {ARM}\r\nX-Go-Builder-Key: {ARM_KEY}\r\nX-Go-Builder-Key: {ARM_KEY}\r\n\r\n"
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
    let healthy = health(a);
    assert_eq!(healthy["state"], "ok", "{healthy}");
    assert!(time(&healthy, "loaded_at") <= jiff::Timestamp::now());
    assert_eq!(healthy["last_reload"], serde_json::Value::Null, "{healthy}");
    assert_eq!(healthy.as_object().unwrap().len(), 3, "{healthy}");
    assert_eq!(
        http_raw(
            a,
            b"HEAD /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        ),
        (200, String::new())
    );
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
fn sighup_reloads_without_dropping_requests_and_a_failed_reload_keeps_the_last_good_state() {
    let env = TestEnv::new().with_master();
    let amd64 = "host-linux-amd64-x";
    let amd64_key = stdout_of(env.cmd().args(["mint", amd64])).trim().to_owned();
    // No rate limit: the hammering client below fails often once the principal is revoked.
    // Reloads on SIGHUP only, so that each edit below is loaded once, when the test says.
    let server = env.serve(&["--max-failures", "0", "--no-watch"]);
    let a = server.addr;
    // A client hammering the service throughout, failed reloads included: every answer is
    // 200 or 403, never a 503, an error or a dropped connection.
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
    let started = health(a);
    env.cmd()
        .args(["revoke", "--allow-unknown", ARM])
        .assert()
        .success();
    server.signal("HUP");
    server.wait_for_log("reloaded the masters and the policy");
    assert_eq!(get(a, &registration(ARM_KEY)), 403);

    env.cmd().args(["reinstate", ARM]).assert().success();
    server.signal("HUP");
    wait_until(|| get(a, &registration(ARM_KEY)) == 200);

    // The last good state revokes ARM.
    env.cmd()
        .args(["revoke", "--allow-unknown", ARM])
        .assert()
        .success();
    server.signal("HUP");
    wait_until(|| get(a, &registration(ARM_KEY)) == 403);
    let good = health(a);
    assert_eq!(good["state"], "ok", "{good}");
    assert!(time(&good, "loaded_at") > time(&started, "loaded_at"));
    let failures = || {
        server
            .stderr
            .lock()
            .unwrap()
            .matches("reload failed")
            .count()
    };

    // A broken edit: the reload fails, and the service keeps answering from the last good
    // state, its revocation included; /healthz stays 200 and says so.
    let policy = env.path("keys/gobuildkey.toml");
    let good_policy = std::fs::read(&policy).unwrap();
    std::fs::write(
        &policy,
        "[principals.host-linux-arm-aws]\nrevoked = maybe\n",
    )
    .unwrap();
    server.signal("HUP");
    server.wait_for_log("reload failed, keeping the last good masters and policy");
    assert_eq!(get(a, &registration(ARM_KEY)), 403);
    assert_eq!(get(a, &registration_as(amd64, &amd64_key)), 200);
    let stale = health(a);
    assert_eq!(stale["state"], "stale", "{stale}");
    let error = stale["error"].as_str().unwrap();
    assert!(
        error.contains(&policy.display().to_string()) && error.contains("not valid TOML"),
        "{stale}"
    );
    assert!(!error.contains('\n'), "{stale}");
    assert_eq!(stale["loaded_at"], good["loaded_at"], "{stale}");
    // /metrics says so too, for an alert; the last good load's time stays.
    let loaded_at = metric(a, "gobuildkey_last_successful_load_timestamp_seconds");
    assert_eq!(metric(a, "gobuildkey_policy_stale"), 1.0);
    assert_eq!(
        metric(a, "gobuildkey_reloads_total{result=\"failed\"}"),
        1.0
    );
    assert!((loaded_at - time(&good, "loaded_at").as_millisecond() as f64 / 1000.0).abs() < 0.01);
    let since = time(&stale, "since");
    assert!(since > time(&good, "loaded_at"), "{stale}");
    let keys: Vec<&str> = stale
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["state", "error", "since", "loaded_at", "last_reload"]
    );
    assert!(time(&stale, "last_reload") >= since, "{stale}");

    // Another failed reload: the newest error, the first failure's time.
    std::fs::write(&policy, &good_policy).unwrap();
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o666)).unwrap();
    server.signal("HUP");
    wait_until(|| failures() == 2);
    assert_eq!(get(a, &registration(ARM_KEY)), 403);
    assert_eq!(get(a, &registration_as(amd64, &amd64_key)), 200);
    let still = health(a);
    assert_eq!(still["state"], "stale", "{still}");
    assert!(
        still["error"]
            .as_str()
            .unwrap()
            .contains("writable by group or others"),
        "{still}"
    );
    assert_eq!(still["since"], stale["since"], "{still}");
    assert_eq!(still["loaded_at"], good["loaded_at"], "{still}");
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The policy deleted: a missing policy is no "nothing revoked"; the last good state
    // holds, revocation included.
    std::fs::remove_file(&policy).unwrap();
    server.signal("HUP");
    wait_until(|| failures() == 3);
    assert_eq!(get(a, &registration(ARM_KEY)), 403);
    assert_eq!(get(a, &registration_as(amd64, &amd64_key)), 200);
    let gone = health(a);
    assert_eq!(gone["state"], "stale", "{gone}");
    assert!(
        gone["error"].as_str().unwrap().contains("does not exist"),
        "{gone}"
    );
    assert_eq!(gone["since"], stale["since"], "{gone}");
    std::fs::write(&policy, &good_policy).unwrap();
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Fixed: the next reload is good again.
    server.signal("HUP");
    wait_until(|| health(a)["state"] == "ok");
    let fixed = health(a);
    assert!(time(&fixed, "loaded_at") > since, "{fixed}");
    assert_eq!(metric(a, "gobuildkey_policy_stale"), 0.0);
    assert!(metric(a, "gobuildkey_last_successful_load_timestamp_seconds") > loaded_at);
    assert_eq!(fixed.as_object().unwrap().len(), 3, "{fixed}");
    assert_eq!(fixed["last_reload"], fixed["loaded_at"], "{fixed}");
    assert_eq!(get(a, &registration(ARM_KEY)), 403);
    assert_eq!(get(a, &registration_as(amd64, &amd64_key)), 200);
    assert_eq!(failures(), 3, "one log line per failed reload");

    stop.store(true, Ordering::Relaxed);
    let answers = hammer.join().unwrap();
    assert!(!answers.is_empty());
    assert!(answers.iter().all(|&s| s == 200 || s == 403), "{answers:?}");
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

/// At `--max-connections`, a new connection closes the least recently active one.
#[test]
fn connections_are_bounded() {
    let env = TestEnv::new().with_master();
    let server = env.serve(&["--max-connections", "2", "--idle-timeout", "10m"]);
    let a = server.addr;
    let mut first = TcpStream::connect(a).unwrap();
    let second = TcpStream::connect(a).unwrap();
    // The second was accepted (it answers) before the third arrives.
    (&second)
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut status = [0u8; 12];
    (&second).read_exact(&mut status).unwrap();
    assert_eq!(&status, b"HTTP/1.1 200");
    assert_eq!(get(a, &registration(ARM_KEY)), 200);
    first
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(
        first.read(&mut [0u8; 16]).unwrap_or(0),
        0,
        "the first is closed"
    );
}

/// (Without a master it does not start: tests/refusals/serve/master-missing.)
#[test]
fn stops_on_sigterm() {
    let env = TestEnv::new().with_master();
    let mut server = env.serve(&[]);
    server.signal("TERM");
    let status = server.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

/// One serving thread per core (at most 8), all accepting from one listener: many
/// keep-alive connections opened at once, spread over the threads, are each answered again
/// and again on the thread that accepted them; SIGTERM then stops every thread, closing
/// the connections they hold, and the service exits 0.
#[test]
fn keep_alive_connections_on_every_serving_thread_are_answered_and_stopped() {
    let env = TestEnv::new().with_master();
    let mut server = env.serve(&["--idle-timeout", "10m"]);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let task = format!("/proc/{}/task", server.child.id());
    let threads = || {
        std::fs::read_dir(&task)
            .unwrap()
            .filter(|t| {
                let comm = t.as_ref().unwrap().path().join("comm");
                std::fs::read_to_string(comm)
                    .unwrap_or_default()
                    .starts_with("serve-")
            })
            .count()
    };
    // A thread names itself once it runs, a moment after the listener is announced.
    wait_until(|| threads() == cores);
    let request = format!(
        "GET /verify HTTP/1.1\r\nHost: t\r\nX-Revdial-Version: 2\r\n\
         X-Go-Builder-Hostname: builder-7\r\nX-Go-Host-Type: {ARM}\r\n\
         X-Go-Builder-Key: {ARM_KEY}\r\n\r\n"
    );
    // Opened together from several clients, so that every thread accepts some.
    let mut connections: Vec<TcpStream> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    (0..8)
                        .map(|_| TcpStream::connect(server.addr).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    });
    let answer = |stream: &mut TcpStream| {
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        crate::server::read_answer(stream)
    };
    // Each connection answered, three times over, the others kept open meanwhile.
    for _ in 0..3 {
        for stream in &mut connections {
            let head = answer(stream);
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        }
    }
    assert_eq!(
        metric(server.addr, "gobuildkey_open_connections"),
        // The 64 kept-alive and the one asking.
        65.0
    );
    server.signal("TERM");
    let status = server.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    for stream in &mut connections {
        assert_eq!(stream.read(&mut [0u8; 16]).unwrap_or(0), 0, "closed");
    }
    server.wait_for_log("gobuildkey serve: stopping");
}

/// `serve --alg hmac-md5` keeps reloading after `end-grace --alg hmac-md5` has ended that
/// algorithm for some principal: the reload narrows instead of failing, so later
/// revocations still reach the service (a failed reload would freeze a state without them).
#[test]
fn a_reload_after_an_algorithm_ended_still_applies_revocations() {
    let env = TestEnv::new().with_master();
    for args in [
        &["import", "--alg", "hmac-md5", ARM][..],
        &["import", "--alg", "hmac-md5", "host-b"],
        &["mint", ARM],
    ] {
        env.cmd().args(args).assert().success();
    }
    let server = env.serve(&["--alg", "hmac-md5", "--max-failures", "0"]);
    let a = server.addr;
    let registration = [
        ("X-Go-Host-Type", ARM),
        ("X-Go-Builder-Key", ARM_KEY_MD5),
        AGENT[0],
        AGENT[1],
    ];
    assert_eq!(http_get(a, "/verify", &registration).0, 200);
    for args in [
        &["end-grace", "--alg", "hmac-md5", ARM][..],
        &["revoke", "host-b"],
    ] {
        env.cmd().args(args).assert().success();
    }
    server.signal("HUP");
    server.wait_for_log("reloaded");
    let (status, body) = http_get(a, "/healthz", &[]);
    assert_eq!(status, 200);
    assert!(body.contains("\"state\":\"ok\""), "{body}");
    // MD5 ended for it: with `--alg hmac-md5` it accepts no key at all.
    assert_eq!(http_get(a, "/verify", &registration).0, 403);
    // And a principal the policy accepts no MD5 key for is no usage error at start only.
    assert!(!server.stderr.lock().unwrap().contains("reload failed"));
}

/// The key header's value is trimmed as Go's `net/http` trims header values before the
/// coordinator reads them (spaces and tabs at both ends), and no further: a key followed by
/// U+00A0 or `\v` is refused, as the coordinator's string comparison refuses it, though
/// the same key in a key file would be trimmed to a valid one.
#[test]
fn key_headers_lose_spaces_and_tabs_only() {
    let env = TestEnv::new().with_master();
    let server = env.serve(&["--max-failures", "0"]);
    let send = |value: &[u8]| {
        let mut request = format!(
            "GET /verify HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Revdial-Version: 2\r\nX-Go-Host-Type: {ARM}\r\nX-Go-Builder-Hostname: builder-7\r\nX-Go-Builder-Key:"
        )
        .into_bytes();
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n\r\n");
        http_raw(server.addr, &request)
    };
    let key = ARM_KEY.as_bytes();
    for value in [
        [b" ", key].concat(),
        [b" ", key, b"\t"].concat(),
        [b"\t \t", key, b" \t "].concat(),
    ] {
        let (status, body) = send(&value);
        assert_eq!((status, body.as_str()), (200, "ok\n"), "{value:?}");
    }
    // U+00A0 (C2 A0) and U+3000 are bytes hyper passes on: the service refuses them.
    for value in [
        [b" ", key, b"\xc2\xa0"].concat(),
        [b" \xc2\xa0", key].concat(),
        [b" ", key, "\u{3000}".as_bytes()].concat(),
        [b" ", key, "\u{85}".as_bytes()].concat(),
    ] {
        let (status, body) = send(&value);
        assert_eq!(
            (status, body.as_str()),
            (403, "invalid build key\n"),
            "{value:?}"
        );
    }
    // `\v` and `\f` are control characters, which HTTP does not allow in a header value:
    // refused, whether by hyper or by the service.
    for value in [[b" ", key, b"\x0b"].concat(), [b" \x0c", key].concat()] {
        assert_eq!(send(&value).0, 400, "{value:?}");
    }
    // Through the agents' own header helper too.
    assert_eq!(
        get(server.addr, &registration(&format!(" {ARM_KEY}\t"))),
        200
    );
    assert_eq!(
        get(server.addr, &registration(&format!("{ARM_KEY}\u{a0}"))),
        403
    );
}

/// `/verify` checks the buildlet's own headers as Go's coordinator does, in its order and
/// with its words, before the key; `--key-headers-only` leaves them to other agents.
#[test]
fn the_agents_headers_are_checked_in_the_coordinators_order() {
    let env = TestEnv::new().with_master();
    let server = env.serve(&["--max-failures", "0"]);
    let a = server.addr;
    let ask = |headers: &[(&str, &str)]| http_get(a, "/verify", headers);
    let host = ("X-Go-Host-Type", ARM);
    let key = ("X-Go-Builder-Key", ARM_KEY);
    let name = ("X-Go-Builder-Hostname", "builder-7");
    let v2 = ("X-Revdial-Version", "2");
    type Case<'a> = (&'a [(&'a str, &'a str)], u16, &'a str);
    let cases: [Case; 7] = [
        (&[host, key, name, v2], 200, "ok\n"),
        (&[host, key, name], 400, "buildlet binary is too old\n"),
        (
            &[host, key, name, ("X-Revdial-Version", "1")],
            400,
            "unknown revdial version\n",
        ),
        (
            &[host, key, v2],
            400,
            "missing X-Go-Builder-Hostname header\n",
        ),
        (
            &[key, name, v2],
            400,
            "missing X-Go-Host-Type; old buildlet binary?\n",
        ),
        (&[host, name, v2], 403, "invalid build key\n"),
        // The revdial check comes first, as in the coordinator.
        (&[key], 400, "buildlet binary is too old\n"),
    ];
    for (headers, status, body) in cases {
        assert_eq!(ask(headers), (status, body.to_owned()), "{headers:?}");
    }
    // A revoked host type and a malformed key: the same answer as any wrong key, so the
    // status tells nobody without a key what the policy says.
    env.cmd()
        .args(["revoke", "--allow-unknown", ARM])
        .assert()
        .success();
    server.signal("HUP");
    server.wait_for_log("reloaded");
    assert_eq!(ask(&[host, ("X-Go-Builder-Key", "junk"), name, v2]).0, 403);
    assert_eq!(ask(&[host, key, name, v2]).0, 403);
    drop(server);

    let relaxed = env.serve(&["--key-headers-only", "--max-failures", "0"]);
    let b = relaxed.addr;
    env.cmd().args(["reinstate", ARM]).assert().success();
    relaxed.signal("HUP");
    relaxed.wait_for_log("reloaded");
    assert_eq!(http_get(b, "/verify", &[host, key]).0, 200);
    assert_eq!(http_get(b, "/verify", &[host]).0, 403);
}

/// `/metrics` is valid Prometheus text, by Prometheus' own parser (the Python client's),
/// and counts what happened: answers by result and reason, the latency histogram, the
/// limiter, the connections, the reloads.
#[test]
fn metrics_parse_as_prometheus_text() {
    // The service speaks OpenMetrics (what prometheus-client writes, and says so in its
    // content type); Prometheus' OpenMetrics parser is strict about it.
    let parser = "import sys, json\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
        out = {}\n\
        for family in text_string_to_metric_families(sys.stdin.read()):\n\
        \x20   out[family.name] = [[s.name, s.labels, s.value] for s in family.samples]\n\
        print(json.dumps(out))\n";
    let has_parser = std::process::Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_parser {
        return crate::common::missing_tool(
            "python3 with prometheus_client",
            "pip's prometheus-client",
            "the metrics format test",
        );
    }
    let env = TestEnv::new().with_master();
    let server = env.serve(&["--max-failures", "2"]);
    let a = server.addr;
    assert_eq!(get(a, &registration(ARM_KEY)), 200);
    assert_eq!(get(a, &registration_as("Host-Bad", ARM_KEY)), 400);
    assert_eq!(get(a, &registration("0123")), 403);
    assert_eq!(get(a, &registration("0123")), 429);
    server.signal("HUP");
    server.wait_for_log("reloaded the masters and the policy");
    let (status, text) = http_get(a, "/metrics", &[]);
    assert_eq!(status, 200);
    let mut raw = TcpStream::connect(a).unwrap();
    raw.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut whole = String::new();
    raw.read_to_string(&mut whole).unwrap();
    assert!(
        whole.to_ascii_lowercase().contains(
            "\r\ncontent-type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"
        ),
        "{whole}"
    );
    let mut python = std::process::Command::new("python3")
        .args(["-c", parser])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    python
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = python.wait_with_output().unwrap();
    assert!(out.status.success(), "not Prometheus text:\n{text}");
    let families: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sample = |family: &str, name: &str, labels: &[(&str, &str)]| -> f64 {
        families[family]
            .as_array()
            .unwrap_or_else(|| panic!("no {family} in {text}"))
            .iter()
            .find(|s| s[0] == name && labels.iter().all(|(k, v)| s[1][*k] == *v))
            .and_then(|s| s[2].as_f64())
            .unwrap_or_else(|| panic!("no {name} {labels:?} in {text}"))
    };
    let requests = |result, reason| {
        sample(
            "gobuildkey_requests",
            "gobuildkey_requests_total",
            &[("result", result), ("reason", reason)],
        )
    };
    assert_eq!(requests("valid", "none"), 1.0);
    assert_eq!(requests("invalid", "malformed"), 1.0);
    assert_eq!(requests("limited", "budget"), 1.0);
    assert_eq!(requests("bad_request", "none"), 1.0);
    assert_eq!(
        sample(
            "gobuildkey_verify_duration_seconds",
            "gobuildkey_verify_duration_seconds_count",
            &[]
        ),
        4.0
    );
    assert_eq!(
        sample(
            "gobuildkey_limiter_tracked_clients",
            "gobuildkey_limiter_tracked_clients",
            &[]
        ),
        1.0
    );
    assert!(
        sample(
            "gobuildkey_open_connections",
            "gobuildkey_open_connections",
            &[]
        ) >= 1.0
    );
    assert_eq!(
        sample(
            "gobuildkey_reloads",
            "gobuildkey_reloads_total",
            &[("result", "ok")]
        ),
        1.0
    );
    assert!(
        sample(
            "gobuildkey_last_reload_attempt_timestamp_seconds",
            "gobuildkey_last_reload_attempt_timestamp_seconds",
            &[]
        ) > 1.7e9
    );
    assert_eq!(
        sample("gobuildkey_policy_stale", "gobuildkey_policy_stale", &[]),
        0.0
    );
}

/// A key bound to a machine registers from the host name it is bound to (any case) and
/// from no other; the audit line names the machine; a revoked machine is refused.
#[test]
fn a_machine_key_registers_from_its_host_name_only() {
    let env = TestEnv::new().with_master();
    let key = stdout_of(env.cmd().args(["mint", "--machine", "builder-7", ARM]));
    let key = key.trim();
    let server = env.serve(&["--audit", "-", "--no-watch"]);
    let a = server.addr;
    let from = |hostname: &str| {
        get(
            a,
            &[
                ("X-Go-Host-Type", ARM.to_owned()),
                ("X-Go-Builder-Key", key.to_owned()),
                ("X-Go-Builder-Hostname", hostname.to_owned()),
            ],
        )
    };
    assert_eq!(from("builder-7"), 200);
    assert_eq!(from("Builder-7"), 200);
    assert_eq!(from("builder-8"), 403);
    assert_eq!(from("builder 7"), 403);
    server.wait_for_log(r#""machine":"builder-7"}"#);
    assert_no_secret(&server.stderr.lock().unwrap().clone(), key);
    env.cmd()
        .args(["revoke", "--machine", "builder-7", ARM])
        .assert()
        .success();
    server.signal("HUP");
    server.wait_for_log("reloaded the masters and the policy");
    assert_eq!(from("builder-7"), 403);
}
