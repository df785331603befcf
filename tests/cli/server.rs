//! `gobuildkey serve` started for a test, and a minimal HTTP client to ask it (the build
//! has it with the `serve` feature).

use crate::common::TestEnv;

/// A `gobuildkey serve` (or other long-running command) started for a test, stopped
/// (SIGKILL) when dropped.
pub struct Server {
    pub child: std::process::Child,
    pub addr: std::net::SocketAddr,
    /// Everything the server wrote on standard error so far.
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl TestEnv {
    /// Starts `gobuildkey serve --listen 127.0.0.1:0 ARGS…` and waits for its address.
    pub fn serve(&self, args: &[&str]) -> Server {
        self.serve_with_env(args, &[])
    }

    /// As [`TestEnv::serve`], with these environment variables besides.
    pub fn serve_with_env(&self, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Server {
        use std::io::BufRead;
        let mut child = self
            .std_cmd()
            .envs(env.iter().copied())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let line = line.unwrap_or_default();
                if let Some(addr) = line.strip_prefix("gobuildkey serve: listening on http://") {
                    let _ = tx.send(addr.to_owned());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("serve did not start: {}", log.lock().unwrap()));
        Server {
            child,
            addr: addr.parse().unwrap(),
            stderr: log,
        }
    }
}

impl Server {
    /// Sends a signal (`HUP`, `TERM`) to the server.
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits until the server's standard error holds `text`.
    pub fn wait_for_log(&self, text: &str) {
        for _ in 0..3000 {
            if self.stderr.lock().unwrap().contains(text) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("no {text:?} in the log: {}", self.stderr.lock().unwrap());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a new connection: the status and the body.
pub fn http_get(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    http_raw(addr, request.as_bytes())
}

/// Sends raw bytes on a new connection and parses the answer's status line and body.
pub fn http_raw(addr: std::net::SocketAddr, request: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    // The server may answer and close before reading everything (a refused request).
    let _ = stream.write_all(request);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// An HTTP answer: its status, head (the status line and headers) and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn parse(text: &str) -> Self {
        assert!(
            text.starts_with("HTTP/1.1 "),
            "not an HTTP answer: {text:?}"
        );
        let status = text[9..12].parse().unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
        Self {
            status,
            head: head.to_owned(),
            body: body.to_owned(),
        }
    }

    /// The value of a header of the answer, if it has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Reads one answer from a kept-alive `stream`, to the end of its body (by its
/// `Content-Length`): its head, status line and headers.
pub fn read_answer(stream: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")?
                .parse()
                .ok()
        })
        .unwrap();
    stream.read_exact(&mut vec![0u8; length]).unwrap();
    head
}
