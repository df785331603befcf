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
            reader.read_line(&mut request_line).unwrap();
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
        .args(["probe", "--coordinator", &url, ARM])
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
        .args(["probe", "--coordinator", &url, "--path", "/verify", ARM])
        .assert()
        .code(0)
        .stdout(contains("accepted"));
    install(&env, &ARM_KEY.replace('9', "8"));
    env.cmd()
        .args(["probe", "--coordinator", &url, "--path", "/verify", ARM])
        .assert()
        .code(1)
        .stdout(contains("refused: 403"));
    // The service's own 404 for the agent's path: not a coordinator.
    env.cmd()
        .args(["probe", "--coordinator", &url, ARM])
        .assert()
        .code(1)
        .stdout(contains("unexpected answer 404"));
}

#[test]
fn key_problems_and_unreachable_coordinators() {
    let env = TestEnv::new();
    env.cmd()
        .args(["probe", "--coordinator", "http://127.0.0.1:9", ARM])
        .assert()
        .code(1)
        .stderr(contains("problem: no key file"));
    install(&env, ARM_KEY);
    let port = crate::common::free_port();
    env.cmd()
        .args([
            "probe",
            "--coordinator",
            &format!("http://127.0.0.1:{port}"),
            ARM,
        ])
        .assert()
        .code(69)
        .stderr(contains("cannot reach the coordinator"));
    fs::write(env.path(&format!(".gobuildkey-{ARM}")), "garbage").unwrap();
    env.cmd()
        .args(["probe", "--coordinator", "http://127.0.0.1:9", ARM])
        .assert()
        .code(1)
        .stderr(contains("does not hold a well-formed key"));
}
