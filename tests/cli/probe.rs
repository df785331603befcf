//! `gobuildkey probe`: a registration as the agent sends it, against `gobuildkey serve`
//! and against a stub that answers as Go's coordinator does.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use predicates::str::contains;

use crate::common::{ARM, ARM_KEY, TestEnv, all_output, assert_no_secret};

fn install(env: &TestEnv, key: &str) {
    env.cmd()
        .args(["install", "--force", ARM])
        .write_stdin(key.to_owned())
        .assert()
        .success();
}

/// Answers as Go's coordinator answers `/reverse`: 400 without the agent's headers or
/// revdial v2, 412 "invalid build key" for a wrong key, 101 Switching Protocols otherwise.
type Seen = Arc<Mutex<Vec<HashMap<String, String>>>>;

fn go_coordinator() -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = HashMap::new();
            let mut request_line = String::new();
            // A TLS client hello (a probe told https) is no request line.
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.trim_end().split_once(": ") {
                    headers.insert(name.to_ascii_lowercase(), value.to_owned());
                }
            }
            let get = |name: &str| headers.get(name).cloned().unwrap_or_default();
            let reply = if !request_line.starts_with("GET /reverse ") {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\n\r\nnot found\n".to_owned()
            } else if get("x-go-host-type").is_empty() || get("x-go-builder-hostname").is_empty() {
                "HTTP/1.1 400 Bad Request\r\nContent-Length: 32\r\n\r\nmissing X-Go-Builder-Hostname..\n".to_owned()
            } else if get("x-go-host-type") != ARM || get("x-go-builder-key") != ARM_KEY {
                "HTTP/1.1 412 Precondition Failed\r\nContent-Length: 18\r\n\r\ninvalid build key\n"
                    .to_owned()
            } else if get("x-revdial-version") != "2" {
                "HTTP/1.1 400 Bad Request\r\nContent-Length: 26\r\n\r\nrevdial v1 not supported.\n"
                    .to_owned()
            } else {
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: revdial\r\nConnection: Upgrade\r\n\r\n".to_owned()
            };
            log.lock().unwrap().push(headers);
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    (url, seen)
}

#[test]
fn accepted_by_a_go_coordinator_with_the_agents_headers() {
    let env = TestEnv::new();
    install(&env, ARM_KEY);
    let (url, seen) = go_coordinator();
    let out = env
        .cmd()
        .args([
            "probe",
            "--insecure-http",
            "--hostname",
            "builder-9",
            "--coordinator",
            &url,
            ARM,
        ])
        .assert()
        .code(0)
        .stdout(contains("accepted"))
        .stdout(contains("(101)"))
        .get_output()
        .clone();
    assert_no_secret(&all_output(&out), ARM_KEY);
    let headers = seen.lock().unwrap()[0].clone();
    assert_eq!(headers["x-go-host-type"], ARM);
    assert_eq!(headers["x-go-builder-hostname"], "builder-9");
    assert_eq!(headers["x-revdial-version"], "2");
    assert!(headers["x-go-builder-version"].starts_with("gobuildkey-probe-"));
}

#[test]
fn refused_by_a_go_coordinator_with_the_likely_causes() {
    let env = TestEnv::new();
    let wrong = ARM_KEY.replace('9', "8");
    install(&env, &wrong);
    let (url, _) = go_coordinator();
    let out = env
        .cmd()
        .args(["probe", "--insecure-http", "--coordinator", &url, ARM])
        .assert()
        .code(1)
        .stdout(contains("refused: 412 \"invalid build key\""))
        .stdout(contains("the host type was renamed"))
        .stdout(contains(format!("gobuildkey path --explain {ARM}")))
        .stdout(contains(format!(
            ".gobuildkey-{ARM} (per-host), fingerprint SHA256:"
        )))
        .get_output()
        .clone();
    assert_no_secret(&all_output(&out), &wrong);
}

#[cfg(feature = "serve")]
#[test]
fn against_gobuildkey_serve() {
    let env = TestEnv::new().with_master();
    let server = env.serve(&[]);
    let url = format!("http://{}", server.addr);
    install(&env, ARM_KEY);
    env.cmd()
        .args([
            "probe",
            "--insecure-http",
            "--coordinator",
            &url,
            "--path",
            "/verify",
            ARM,
        ])
        .assert()
        .code(0)
        .stdout(contains("accepted"));
    install(&env, &ARM_KEY.replace('9', "8"));
    env.cmd()
        .args([
            "probe",
            "--insecure-http",
            "--coordinator",
            &url,
            "--path",
            "/verify",
            ARM,
        ])
        .assert()
        .code(1)
        .stdout(contains("refused: 403"));
    // The service's own 404 for the agent's path: not a coordinator.
    env.cmd()
        .args(["probe", "--insecure-http", "--coordinator", &url, ARM])
        .assert()
        .code(1)
        .stdout(contains("unexpected answer 404"));
}

#[test]
fn key_problems_and_unreachable_coordinators() {
    let env = TestEnv::new();
    env.cmd()
        .args([
            "probe",
            "--insecure-http",
            "--coordinator",
            "http://127.0.0.1:9",
            ARM,
        ])
        .assert()
        .code(1)
        .stderr(contains("problem: no key file"));
    install(&env, ARM_KEY);
    let port = crate::common::free_port();
    env.cmd()
        .args([
            "probe",
            "--insecure-http",
            "--coordinator",
            &format!("http://127.0.0.1:{port}"),
            ARM,
        ])
        .assert()
        .code(69)
        .stderr(contains("cannot reach the coordinator"));
    fs::write(env.path(&format!(".gobuildkey-{ARM}")), "garbage").unwrap();
    env.cmd()
        .args([
            "probe",
            "--insecure-http",
            "--coordinator",
            "http://127.0.0.1:9",
            ARM,
        ])
        .assert()
        .code(1)
        .stderr(contains("does not hold a well-formed key"));
}

/// The key goes to the coordinator named and nowhere else: the URL is built by setting the
/// coordinator's path, so a coordinator URL's own path, user or query cannot redirect it,
/// and a coordinator URL that is not one is a usage error. (A `--path` that is not absolute,
/// starts with `//` or holds `?`, `#`, `@`, `\` or control characters is refused before
/// anything is read: tests/refusals/probe/path-*.)
#[test]
fn the_key_goes_to_the_coordinator_named_and_nowhere_else() {
    let env = TestEnv::new();
    install(&env, ARM_KEY);
    let (url, _) = go_coordinator();
    // Its own path, user or query cannot redirect it (the stub answers 404 elsewhere).
    env.cmd()
        .args([
            "probe",
            "--insecure-http",
            "--coordinator",
            &format!("{url}/elsewhere?q=1"),
            ARM,
        ])
        .assert()
        .code(0);
    for coordinator in [
        "https://user@example.invalid",
        "https:/example.invalid",
        "http:example.invalid",
        "example.invalid/x",
        "https://example.invalid:99999",
    ] {
        env.cmd()
            .args(["probe", "--coordinator", coordinator, ARM])
            .assert()
            .code(2);
    }
}

/// Plain http:// needs --insecure-http, which says so; a bare host means https.
#[test]
fn https_unless_told_otherwise() {
    let env = TestEnv::new();
    install(&env, ARM_KEY);
    let (url, seen) = go_coordinator();
    env.cmd()
        .args(["probe", "--coordinator", &url, ARM])
        .assert()
        .code(2)
        .stderr(contains("unencrypted"));
    env.cmd()
        .args(["probe", "--insecure-http", "--coordinator", &url, ARM])
        .assert()
        .code(0)
        .stderr(contains("warning: --insecure-http"));
    // No scheme: https, so the plain-HTTP stub's answer is no TLS handshake.
    let bare = url.trim_start_matches("http://");
    env.cmd()
        .args(["probe", "--coordinator", bare, ARM])
        .assert()
        .code(69)
        .stderr(contains(format!("https://{bare}/reverse")))
        .stderr(contains("TLS"));
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "only the --insecure-http request"
    );
}

/// A TLS coordinator with a certificate of its own (OpenSSL's s_server): unknown to the
/// system, the probe names the cause and `--cacert`; with `--cacert` it gets through; a
/// certificate for another name is said to be so.
#[test]
fn tls_failures_say_their_cause_and_cacert_adds_a_root() {
    let env = TestEnv::new();
    install(&env, ARM_KEY);
    let dir = env.path("tls");
    fs::create_dir_all(&dir).unwrap();
    // A certificate authority of the test's own, and two coordinator certificates it signs:
    // one for 127.0.0.1, one for another name.
    let openssl = |args: &[&str]| {
        std::process::Command::new("openssl")
            .current_dir(&dir)
            .args(args)
            .output()
            .is_ok_and(|out| out.status.success())
    };
    let mut made = openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    for (name, san) in [("loopback", "IP:127.0.0.1"), ("other", "DNS:other.invalid")] {
        fs::write(
            dir.join(format!("{name}.ext")),
            format!("subjectAltName={san}\n"),
        )
        .unwrap();
        made =
            made && openssl(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ]) && openssl(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.pem"),
            ]);
    }
    if !made {
        crate::common::missing_tool("openssl", "openssl", "to make a TLS coordinator");
        return;
    }
    for (cert, cacert, expect) in [
        ("loopback", None, "--cacert"),
        ("loopback", Some("ca"), "accepted"),
        ("other", Some("ca"), "certificate is for another name"),
    ] {
        // Until it listens: a port taken by another test meanwhile makes s_server exit, and
        // then another port is tried.
        let (port, mut server) = (0..20)
            .find_map(|_| {
                let port = crate::common::free_port();
                let mut server = std::process::Command::new("openssl")
                    .args(["s_server", "-quiet", "-www", "-accept"])
                    .arg(format!("127.0.0.1:{port}"))
                    .arg("-cert")
                    .arg(dir.join(format!("{cert}.pem")))
                    .arg("-key")
                    .arg(dir.join(format!("{cert}.key")))
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap();
                for _ in 0..500 {
                    if server.try_wait().unwrap().is_some() {
                        return None;
                    }
                    if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                        return Some((port, server));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                server.kill().unwrap();
                server.wait().unwrap();
                None
            })
            .expect("openssl s_server listens");
        let mut cmd = env.cmd();
        cmd.args(["probe", "--timeout", "10", "--coordinator"])
            .arg(format!("https://127.0.0.1:{port}"));
        if let Some(ca) = cacert {
            cmd.arg("--cacert").arg(dir.join(format!("{ca}.pem")));
        }
        let out = cmd.arg(ARM).output().unwrap();
        let text = all_output(&out);
        server.kill().unwrap();
        server.wait().unwrap();
        assert!(text.contains(expect), "{cert} {cacert:?}: {text}");
        assert_no_secret(&text, ARM_KEY);
        if expect == "accepted" {
            assert_eq!(out.status.code(), Some(0), "{text}");
        } else {
            assert_eq!(out.status.code(), Some(69), "{text}");
        }
    }
}
