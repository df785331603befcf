//! End to end behind a real nginx: `auth_request` to `gobuildkey serve` in front of a stub
//! upstream, all on loopback, with the `location` blocks read from docs/coordinators.md.
//!
//! Needs Debian's `nginx-light` (it has `auth_request`); `.ci/run` installs it. Where
//! nginx is missing the test says so and passes, except under CI (`CI` set), where it fails.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{ARM, ARM_KEY, MASTER, TestEnv, assert_no_secret, free_port};
use crate::server::http_get;

const NGINX: &str = "/usr/sbin/nginx";

/// The `location` blocks of the nginx example in docs/coordinators.md, taken from the
/// guide itself, pointed at this test's service.
fn documented_locations(service: std::net::SocketAddr) -> String {
    let guide = include_str!("../../docs/coordinators.md");
    let example = guide.split("```nginx\n").nth(1).unwrap();
    let example = &example[..example.find("```").unwrap()];
    let start = example.find("    location = /_gobuildkey").unwrap();
    let end = example.rfind("\n}").unwrap();
    let locations = &example[start..end];
    assert!(locations.contains("proxy_pass http://127.0.0.1:8790/verify;"));
    assert!(locations.contains("auth_request /_gobuildkey;"));
    locations.replace("127.0.0.1:8790", &service.to_string())
}

/// The nginx configuration of docs/coordinators.md, with this test's ports and folders.
fn nginx_conf(dir: &Path, listen: u16, service: std::net::SocketAddr, upstream: u16) -> String {
    let d = dir.display();
    let locations = documented_locations(service);
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/tmp;
    proxy_temp_path {d}/tmp;
    fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp;
    scgi_temp_path {d}/tmp;

    upstream coordinator {{ server 127.0.0.1:{upstream}; }}

    server {{
        listen 127.0.0.1:{listen};

        # --- the snippet of docs/coordinators.md ---
{locations}
        # --- end of the snippet ---
    }}
}}
"#
    )
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
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
            let mut head = Vec::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push(line.trim_end().to_owned());
            }
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

#[test]
fn nginx_auth_request_lets_in_only_valid_keys() {
    if !Path::new(NGINX).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "nginx is missing under CI: .ci/run must install nginx-light"
        );
        eprintln!("nginx is not installed (apt-get install nginx-light): skipping the nginx test");
        return;
    }
    let env = TestEnv::new().with_master();
    let service = env.serve(&["--client-ip-header", "X-Real-IP", "--audit", "-"]);
    let (upstream, seen) = stub_upstream();
    let dir = env.path("nginx");
    fs::create_dir_all(dir.join("tmp")).unwrap();
    let listen = free_port();
    fs::write(
        dir.join("nginx.conf"),
        nginx_conf(&dir, listen, service.addr, upstream),
    )
    .unwrap();
    let nginx = Nginx(
        Command::new(NGINX)
            .args(["-p"])
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let front: std::net::SocketAddr = format!("127.0.0.1:{listen}").parse().unwrap();
    let mut up = false;
    for _ in 0..500 {
        if std::net::TcpStream::connect(front).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        up,
        "nginx did not start: {}",
        fs::read_to_string(dir.join("error.log")).unwrap_or_default()
    );

    let register = |key: &str| {
        http_get(
            front,
            "/reverse",
            &[
                ("X-Go-Host-Type", ARM),
                ("X-Go-Builder-Key", key),
                ("X-Go-Builder-Hostname", "builder-1"),
                ("X-Revdial-Version", "2"),
            ],
        )
    };
    // The right key reaches the upstream, with the agent's headers.
    let (status, body) = register(ARM_KEY);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, format!("upstream saw host={ARM} key=true\n"));
    // A wrong key gets 403 from nginx, and the upstream never sees it.
    let wrong = ARM_KEY.replace('9', "8");
    assert_eq!(register(&wrong).0, 403);
    assert_eq!(seen.lock().unwrap().len(), 1);
    // No key at all: the service answers 400, which auth_request turns into 500.
    let (status, _) = http_get(front, "/reverse", &[("X-Go-Host-Type", ARM)]);
    assert_eq!(status, 500);
    assert_eq!(seen.lock().unwrap().len(), 1);

    drop(nginx);
    // No key or master in nginx's logs or gobuildkey's.
    let logs = [
        fs::read_to_string(dir.join("access.log")).unwrap_or_default(),
        fs::read_to_string(dir.join("error.log")).unwrap_or_default(),
        service.stderr.lock().unwrap().clone(),
    ];
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
