//! End to end behind a real nginx: the whole `nginx.conf` of docs/coordinators.md ("Behind
//! nginx"), with only its addresses and paths changed, checked with `nginx -t` and run in
//! front of `gobuildkey serve` and a stub coordinator, all on loopback. Registrations go
//! over HTTPS (a self-signed certificate made with `openssl req`), sent with
//! `openssl s_client`, as raw bytes: what the builder sees is what the test reads.
//!
//! Needs Debian's `nginx-light` (it has `auth_request`) and `openssl`; `.ci/run` installs
//! both. Where one is missing the tests say so and pass, except under CI (`CI` set), where
//! they fail.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{ARM, ARM_KEY, MASTER, TestEnv, assert_no_secret, free_port};
use crate::server::Answer;

const NGINX: &str = "/usr/sbin/nginx";
/// The longest any step waits (a bound, never an assertion on time).
const PATIENCE: Duration = Duration::from_secs(30);

/// Whether nginx and openssl are here; without them the test is skipped, except under CI.
fn tools_present() -> bool {
    let openssl = Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if Path::new(NGINX).exists() && openssl {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "nginx or openssl is missing under CI: .ci/run must install nginx-light and openssl"
    );
    eprintln!(
        "nginx or openssl is not installed (apt-get install nginx-light openssl): skipping the nginx test"
    );
    false
}

/// The `nginx.conf` of docs/coordinators.md, as the guide shows it.
fn documented_conf() -> &'static str {
    let guide = include_str!("../../docs/coordinators.md");
    let section = &guide[guide.find("## Behind nginx").unwrap()..];
    let example = section.split("```nginx\n").nth(1).unwrap();
    &example[..example.find("```").unwrap()]
}

/// The guide's configuration with this test's addresses, certificate and folders: each
/// value replaced must be in the guide, and nothing outside `dir` may be left.
fn nginx_conf(dir: &Path, listen: u16, service: SocketAddr, upstream: u16) -> String {
    let d = dir.display();
    let replacements = [
        (
            "listen 443 ssl;".to_owned(),
            format!("listen 127.0.0.1:{listen} ssl;"),
        ),
        ("127.0.0.1:8790".to_owned(), service.to_string()),
        ("127.0.0.1:8119".to_owned(), format!("127.0.0.1:{upstream}")),
        ("/etc/ssl/farm/".to_owned(), format!("{d}/")),
        ("/run/nginx.pid".to_owned(), format!("{d}/nginx.pid")),
        ("/var/log/nginx/".to_owned(), format!("{d}/")),
        ("/var/lib/nginx/".to_owned(), format!("{d}/tmp/")),
    ];
    let mut conf = documented_conf().to_owned();
    for (from, to) in &replacements {
        assert!(
            conf.contains(from.as_str()),
            "the guide's nginx.conf lacks {from:?}"
        );
        conf = conf.replace(from.as_str(), to);
    }
    for outside in ["/etc/", "/run/", "/var/"] {
        assert!(!conf.contains(outside), "{outside} left in:\n{conf}");
    }
    for directive in [
        "auth_request /_gobuildkey;",
        "auth_request_set $gobuildkey_status $upstream_status;",
        "error_page 500 = @gobuildkey_refused;",
    ] {
        assert!(conf.contains(directive), "{directive}");
    }
    conf
}

/// nginx running the guide's configuration, stopped when dropped.
struct Front {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Front {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Front {
    /// Makes a self-signed certificate for `localhost`, checks the configuration with
    /// `nginx -t`, starts nginx and waits until it listens.
    fn start(env: &TestEnv, name: &str, service: SocketAddr, upstream: u16) -> Self {
        let dir = env.path(name);
        fs::create_dir_all(dir.join("tmp")).unwrap();
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args([
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost",
            ])
            .arg("-keyout")
            .arg(dir.join("coordinator.key"))
            .arg("-out")
            .arg(dir.join("coordinator.crt"))
            .output()
            .unwrap();
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let listen = free_port();
        let conf = dir.join("nginx.conf");
        fs::write(&conf, nginx_conf(&dir, listen, service, upstream)).unwrap();
        let nginx = |extra: &[&str]| {
            let mut cmd = Command::new(NGINX);
            cmd.arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(dir.join("error.log"))
                .args(extra);
            cmd
        };
        let checked = nginx(&["-t"]).output().unwrap();
        let said = String::from_utf8_lossy(&checked.stderr);
        assert!(checked.status.success(), "nginx -t: {said}");
        assert!(said.contains("syntax is ok"), "{said}");
        let child = nginx(&["-g", "daemon off; master_process off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let front = Self {
            child,
            addr: format!("127.0.0.1:{listen}").parse().unwrap(),
            dir,
        };
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(front.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                front.log("error.log")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        front
    }

    fn log(&self, name: &str) -> String {
        fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// A TLS connection to nginx, checking its certificate for `localhost`.
    fn connect(&self) -> Tls {
        let mut child = Command::new("openssl")
            .args(["s_client", "-quiet", "-verify_return_error"])
            .args(["-servername", "localhost", "-verify_hostname", "localhost"])
            .arg("-connect")
            .arg(self.addr.to_string())
            .arg("-CAfile")
            .arg(self.dir.join("coordinator.crt"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let mut stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                if tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        });
        let errors = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&errors);
        let mut stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            sink.lock().unwrap().push_str(&text);
        });
        Tls {
            stdin: child.stdin.take(),
            child,
            rx,
            got: Vec::new(),
            first: None,
            errors,
        }
    }

    /// One registration as the buildlet sends it (`GET /reverse` and its headers, no
    /// `Upgrade`), on a connection of its own, closed after the answer: the status, the
    /// head and the body the builder reads.
    fn register(&self, headers: &[(&str, &str)]) -> Answer {
        let mut tls = self.connect();
        tls.send(&buildlet_request(headers, "Connection: close\r\n"));
        Answer::parse(&tls.read_to_end())
    }
}

/// The request of Go's buildlet (cmd/buildlet's reverse dial): `GET /reverse` written by
/// `http.Request.Write`, with the agent's headers and `extra` lines.
fn buildlet_request(headers: &[(&str, &str)], extra: &str) -> String {
    let mut request =
        "GET /reverse HTTP/1.1\r\nHost: localhost\r\nUser-Agent: Go-http-client/1.1\r\n".to_owned();
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(extra);
    request.push_str("\r\n");
    request
}

/// The agent's four headers, with `key`.
fn agent(key: &str) -> Vec<(&'static str, &str)> {
    vec![
        ("X-Go-Host-Type", ARM),
        ("X-Go-Builder-Key", key),
        ("X-Go-Builder-Hostname", "builder-1"),
        ("X-Revdial-Version", "2"),
    ]
}

/// An `openssl s_client` connection: bytes in on its standard input, out on its standard
/// output. Killed when dropped.
struct Tls {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<(Instant, Vec<u8>)>,
    got: Vec<u8>,
    /// When the first bytes came.
    first: Option<Instant>,
    errors: Arc<Mutex<String>>,
}

impl Tls {
    fn send(&mut self, bytes: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(bytes.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Reads until what came holds `text`, or the server closed; what came so far.
    fn read_until(&mut self, text: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        while !String::from_utf8_lossy(&self.got).contains(text) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((at, bytes)) => {
                    self.first.get_or_insert(at);
                    self.got.extend(bytes);
                }
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    let errors = self.errors.lock().unwrap().clone();
                    panic!(
                        "no {text:?} from nginx; got {:?}; openssl: {errors}",
                        String::from_utf8_lossy(&self.got),
                    )
                }
            }
        }
        String::from_utf8_lossy(&self.got).into_owned()
    }

    /// Reads until the server closes the connection.
    fn read_to_end(&mut self) -> String {
        // No text ends a stream: read until the reader thread sees the end.
        self.read_until("\0never sent\0")
    }
}

impl Drop for Tls {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A stub coordinator: answers every request 200 with the host type and key headers it got.
fn stub_upstream() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let head = read_head(&stream);
            let host = head
                .iter()
                .find_map(|h| {
                    h.to_ascii_lowercase()
                        .strip_prefix("x-go-host-type: ")
                        .map(str::to_owned)
                })
                .unwrap_or_default();
            let has_key = head
                .iter()
                .any(|h| h.to_ascii_lowercase().starts_with("x-go-builder-key:"));
            let body = format!("upstream saw host={host} key={has_key}\n");
            log.lock().unwrap().push(body.clone());
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, seen)
}

/// The lines of a request head, read byte by byte so nothing after it is consumed.
fn read_head(stream: &TcpStream) -> Vec<String> {
    let mut head = Vec::new();
    let mut reader = BufReader::with_capacity(1, stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            return head;
        }
        head.push(line.trim_end().to_owned());
    }
}

#[test]
fn nginx_gives_the_builder_each_answer_of_serve_with_its_meaning() {
    if !tools_present() {
        return;
    }
    let env = TestEnv::new().with_master();
    let service = env.serve(&["--client-ip-header", "X-Real-IP", "--audit", "-"]);
    let service_log = Arc::clone(&service.stderr);
    let (upstream, seen) = stub_upstream();
    let front = Front::start(&env, "nginx", service.addr, upstream);

    // The right key reaches the coordinator, with the agent's headers, and its answer
    // reaches the builder.
    let valid = front.register(&agent(ARM_KEY));
    assert_eq!(valid.status, 200, "{valid:?}");
    assert_eq!(valid.body, format!("upstream saw host={ARM} key=true\n"));
    // A wrong key, or none: 403 from nginx, and the coordinator never sees it.
    let wrong = ARM_KEY.replace('9', "8");
    let refused = front.register(&agent(&wrong));
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(refused.body.contains("403 Forbidden"), "{refused:?}");
    let mut keyless = agent(ARM_KEY);
    keyless.retain(|(name, _)| *name != "X-Go-Builder-Key");
    assert_eq!(front.register(&keyless).status, 403);
    // A header missing or wrong: 400 (auth_request alone would make it 500), with the
    // guide's line.
    for dropped in [
        "X-Revdial-Version",
        "X-Go-Builder-Hostname",
        "X-Go-Host-Type",
    ] {
        let mut headers = agent(ARM_KEY);
        headers.retain(|(name, _)| *name != dropped);
        let answer = front.register(&headers);
        assert_eq!(answer.status, 400, "without {dropped}: {answer:?}");
        assert_eq!(
            answer.body,
            "malformed registration: a header is missing or wrong (old buildlet binary?)\n"
        );
        assert_eq!(answer.header("Content-Type"), Some("text/plain"));
    }
    let mut old = agent(ARM_KEY);
    old.retain(|(name, _)| *name != "X-Revdial-Version");
    old.push(("X-Revdial-Version", "1"));
    assert_eq!(front.register(&old).status, 400);
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "only the valid one got through"
    );

    // The service down: 503, not 500.
    drop(service);
    let down = front.register(&agent(ARM_KEY));
    assert_eq!(down.status, 503, "{down:?}");
    assert_eq!(
        down.body,
        "the build key cannot be checked now: try again later\n"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);

    // No key or master in nginx's logs or gobuildkey's.
    let logs = [
        front.log("access.log"),
        front.log("error.log"),
        service_log.lock().unwrap().clone(),
    ];
    drop(front);
    assert!(
        logs[0].contains("/reverse"),
        "nginx logged nothing: {}",
        logs[0]
    );
    assert!(
        logs[2].contains("\"client\":\"builder-1 127.0.0.1\""),
        "{}",
        logs[2]
    );
    for log in &logs {
        assert_no_secret(log, ARM_KEY);
        assert_no_secret(log, &wrong);
        assert_no_secret(log, MASTER);
    }
}

#[test]
fn nginx_gives_the_builder_the_429_of_serve() {
    if !tools_present() {
        return;
    }
    let env = TestEnv::new().with_master();
    let service = env.serve(&["--client-ip-header", "X-Real-IP", "--max-failures", "1"]);
    let (upstream, seen) = stub_upstream();
    let front = Front::start(&env, "nginx", service.addr, upstream);

    let wrong = ARM_KEY.replace('9', "8");
    assert_eq!(front.register(&agent(&wrong)).status, 403);
    // One failure used the client's allowance: the next failure is 429, with serve's
    // Retry-After passed on…
    let limited = front.register(&agent(&wrong));
    assert_eq!(limited.status, 429, "{limited:?}");
    assert_eq!(limited.body, "too many failed attempts: try again later\n");
    let retry_after: u64 = limited.header("Retry-After").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{limited:?}");
    assert!(seen.lock().unwrap().is_empty());
    // …while the right key from the same client still reaches the coordinator.
    assert_eq!(front.register(&agent(ARM_KEY)).status, 200);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

/// A coordinator that answers a registration as Go's `HandleReverse` does: `101 Switching
/// Protocols` (whatever the request's `Upgrade` header), then its first revdial bytes, then
/// it reads the connection as its own, echoing what it reads. It reports each request head
/// on `heads` as it gets it, and what it read after its 101 on `afters` once the
/// connection ends — or once the test sends on `close`, when it shuts the connection down
/// itself, as a coordinator giving up on a builder does.
struct RevdialUpstream {
    port: u16,
    heads: Receiver<Vec<String>>,
    afters: Receiver<Vec<u8>>,
    close: Sender<()>,
}

fn revdial_upstream() -> RevdialUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (head_tx, heads) = mpsc::channel();
    let (after_tx, afters) = mpsc::channel();
    let (close, closing) = mpsc::channel::<()>();
    let closing = Arc::new(Mutex::new(closing));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = head_tx.send(read_head(&stream));
            let _ = stream.write_all(b"HTTP/1.1 101 Switching Protocols\r\n\r\nrevdial-hello\n");
            let closer = stream.try_clone().unwrap();
            let closing = Arc::clone(&closing);
            std::thread::spawn(move || {
                let _ = closing.lock().unwrap().recv_timeout(PATIENCE * 2);
                let _ = closer.shutdown(Shutdown::Both);
            });
            let mut after = Vec::new();
            let mut buf = [0; 4096];
            while let Ok(n @ 1..) = stream.read(&mut buf) {
                after.extend_from_slice(&buf[..n]);
                let _ = stream.write_all(b"upstream got: ");
                let _ = stream.write_all(&buf[..n]);
            }
            let _ = after_tx.send(after);
        }
    });
    RevdialUpstream {
        port,
        heads,
        afters,
        close,
    }
}

/// What nginx does with Go's coordinator's `101` to a buildlet, which sends no `Upgrade`
/// header: no tunnel. It takes the 101 for an ordinary answer whose body lasts until the
/// coordinator closes, and gives the builder the 101 and the coordinator's bytes only then;
/// the buildlet's bytes never reach the coordinator — nginx reads them as the next request
/// and answers 400. The same configuration tunnels both ways for a client that sends
/// `Upgrade`, so the test would see a tunnel if there were one.
#[test]
fn a_101_without_upgrade_is_not_tunnelled() {
    if !tools_present() {
        return;
    }
    let env = TestEnv::new().with_master();
    let service = env.serve(&["--client-ip-header", "X-Real-IP"]);
    let coordinator = revdial_upstream();
    let front = Front::start(&env, "nginx", service.addr, coordinator.port);

    // The buildlet's registration: no Upgrade, no Connection header. The key is valid, so
    // it reaches the coordinator, which answers 101 and starts revdial.
    let mut tls = front.connect();
    tls.send(&buildlet_request(&agent(ARM_KEY), ""));
    let head = coordinator.heads.recv_timeout(PATIENCE).unwrap();
    // What nginx sent the coordinator: `Connection: upgrade`, but no `Upgrade`.
    assert!(head.iter().any(|h| h == "Connection: upgrade"), "{head:?}");
    assert!(
        !head
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with("upgrade:")),
        "{head:?}"
    );
    // The buildlet speaks on the connection; then the coordinator gives up and closes.
    tls.send("PING\n");
    let closed_at = Instant::now();
    coordinator.close.send(()).unwrap();
    let after = coordinator.afters.recv_timeout(PATIENCE).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&after),
        "",
        "the buildlet's bytes reached the coordinator"
    );
    let got = tls.read_to_end();
    assert!(
        got.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{got:?}"
    );
    // Nothing came before the coordinator closed: nginx held the 101 and its bytes.
    assert!(tls.first.unwrap() > closed_at);
    let (_, rest) = got.split_once("\r\n\r\nrevdial-hello\n").unwrap();
    assert!(
        rest.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "nginx did not read the buildlet's bytes as a new request: {rest:?}"
    );
    drop(tls);

    // A client that sends Upgrade gets a tunnel both ways through the same configuration,
    // at once.
    let mut tls = front.connect();
    tls.send(&buildlet_request(
        &agent(ARM_KEY),
        "Upgrade: revdial\r\nConnection: Upgrade\r\n",
    ));
    let head = coordinator.heads.recv_timeout(PATIENCE).unwrap();
    assert!(head.iter().any(|h| h == "Upgrade: revdial"), "{head:?}");
    let got = tls.read_until("revdial-hello\n");
    assert!(
        got.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{got:?}"
    );
    tls.send("PING\n");
    tls.read_until("upstream got: PING\n");
    drop(tls);
    let after = coordinator.afters.recv_timeout(PATIENCE).unwrap();
    assert_eq!(String::from_utf8_lossy(&after), "PING\n");
}
