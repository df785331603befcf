//! A Go coordinator that hands the key decision to `gobuildkey serve` (tests/go/coordinator,
//! the few-line change to `HandleReverse` that docs/coordinators.md shows), built with the
//! Go toolchain and registered with by `gobuildkey probe` as a builder would: its own checks
//! as Go's, the key decided by the policy — SHA-256 keys, expiring tokens, rotation and
//! revocation included.
//! Runs where Go is installed (`.ci/run` installs golang-go); fails under CI without it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use predicates::str::contains;

use crate::common::{ARM, ARM_KEY, TestEnv, stdout_of};

/// The Go coordinator, killed when dropped.
struct GoCoordinator(Child);

impl Drop for GoCoordinator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Builds tests/go/coordinator into `dir`; `None` when there is no Go toolchain.
fn build(dir: &std::path::Path) -> Option<PathBuf> {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/go/coordinator");
    let binary = dir.join("coordinator");
    let built = Command::new("go")
        .current_dir(&source)
        .args(["build", "-o"])
        .arg(&binary)
        .arg(".")
        .env("GOCACHE", dir.join("gocache"))
        .env("GOPATH", dir.join("gopath"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .output()
        .ok()?;
    assert!(
        built.status.success(),
        "go build: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    Some(binary)
}

/// Starts the Go coordinator asking the `serve` at `serve`: it, and the address it listens
/// on.
fn start(
    binary: &std::path::Path,
    serve: std::net::SocketAddr,
) -> (GoCoordinator, std::net::SocketAddr) {
    let mut child = Command::new(binary)
        .arg("-verify")
        .arg(format!("http://{serve}/verify"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (GoCoordinator(child), line.trim().parse().unwrap())
}

#[test]
fn a_go_coordinator_asking_serve_follows_the_policy() {
    let env = TestEnv::new().with_master();
    let Some(binary) = build(env.home.path()) else {
        crate::common::missing_tool("Go toolchain", "golang-go", "to build tests/go/coordinator");
        return;
    };
    env.cmd().args(["mint", ARM]).assert().success();
    let server = env.serve(&["--max-failures", "0"]);
    let (coordinator, addr) = start(&binary, server.addr);
    let url = format!("http://{addr}");
    let probe = |env: &TestEnv| {
        let mut cmd = env.cmd();
        cmd.args(["probe", "--insecure-http", "--coordinator", &url, ARM]);
        cmd
    };
    let install = |key: &str| {
        env.cmd()
            .args(["install", "--force", ARM])
            .write_stdin(key.to_owned())
            .assert()
            .success();
    };

    // A SHA-256 key, which Go's own HMAC-MD5 comparison would refuse: accepted (101).
    install(ARM_KEY);
    probe(&env)
        .assert()
        .code(0)
        .stdout(contains("accepted"))
        .stdout(contains("(101)"));
    // Rotated: the old key is refused with the coordinator's own words, the new one taken.
    let new_key = stdout_of(env.cmd().args(["rotate", ARM]));
    server.signal("HUP");
    server.wait_for_log("reloaded");
    probe(&env)
        .assert()
        .code(1)
        .stdout(contains("412 \"invalid build key\""));
    install(new_key.trim());
    probe(&env).assert().code(0);
    // An expiring token in the key file, sent as the buildlet sends any key file: accepted;
    // then revoked with its principal, below.
    let token = stdout_of(env.cmd().args(["mint", "--expires-in", "1h", ARM]));
    install(token.trim());
    probe(&env).assert().code(0).stdout(contains("accepted"));
    // Revoked: refused.
    env.cmd().args(["revoke", ARM]).assert().success();
    server.signal("HUP");
    for _ in 0..300 {
        if server.stderr.lock().unwrap().matches("reloaded").count() >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    probe(&env).assert().code(1);
    drop(coordinator);
}

/// The registration checks of `serve` and of the Go coordinator (tests/go/coordinator, whose
/// checks are `HandleReverse`'s) give the same answer for the same headers: the same 400s
/// with the same words, and for a key the coordinator's 412 where `serve` says 403.
#[test]
fn serve_checks_the_headers_as_the_go_coordinator_does() {
    use crate::server::http_get;
    let env = TestEnv::new().with_master();
    let Some(binary) = build(env.home.path()) else {
        crate::common::missing_tool("Go toolchain", "golang-go", "to build tests/go/coordinator");
        return;
    };
    let server = env.serve(&["--max-failures", "0"]);
    let (_coordinator, go) = start(&binary, server.addr);
    let host = ("X-Go-Host-Type", ARM);
    let key = ("X-Go-Builder-Key", ARM_KEY);
    let name = ("X-Go-Builder-Hostname", "builder-7");
    let v2 = ("X-Revdial-Version", "2");
    let cases: [&[(&str, &str)]; 9] = [
        &[host, key, name, v2],
        &[host, key, name],
        &[host, key, name, ("X-Revdial-Version", "3")],
        &[host, key, v2],
        &[key, name, v2],
        &[host, name, v2],
        &[host, ("X-Go-Builder-Key", "nope"), name, v2],
        &[key],
        &[],
    ];
    for headers in cases {
        let ours = http_get(server.addr, "/verify", headers);
        let theirs = http_get(go, "/reverse", headers);
        let theirs = match theirs.0 {
            // Accepted: the coordinator switches protocols, serve says 200.
            101 => (200, "ok\n".to_owned()),
            // A refused key: the coordinator's 412 is serve's 403, in the same words.
            412 => (403, theirs.1),
            _ => theirs,
        };
        assert_eq!(ours, theirs, "{headers:?}");
    }
}
