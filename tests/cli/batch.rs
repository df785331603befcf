//! `gobuildkey verify --batch`: the coordinator's coprocess.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use predicates::str::contains;

use crate::common::{ARM, ARM_KEY, ARM_KEY_MD5, TestEnv};

#[test]
fn answers_every_line_in_order_with_reasons() {
    let env = TestEnv::new().with_master();
    env.cmd()
        .args(["revoke", "--allow-unknown", "host-gone"])
        .assert()
        .success();
    let input = format!(
        "{ARM} {ARM_KEY}\nhost-other {ARM_KEY}\nhost-gone {ARM_KEY}\nuser-x {ARM_KEY}\n{ARM} {ARM_KEY_MD5}\n\ngarbage\n../x {ARM_KEY}\n{ARM} {ARM_KEY}\n"
    );
    env.cmd()
        .args(["verify", "--batch", "--kind", "host"])
        .write_stdin(input)
        .assert()
        .code(0)
        .stdout("ok\ndeny invalid\ndeny revoked\ndeny kind\ndeny malformed\ndeny malformed\ndeny malformed\ndeny malformed\nok\n")
        .stderr(contains("answered 9 lines, 2 ok"));
}

#[test]
fn md5_batches_as_the_policy_records_and_alg_narrows() {
    let env = TestEnv::new().with_master();
    let both = format!("{ARM} {ARM_KEY_MD5}\n{ARM} {ARM_KEY}\n");
    // Not recorded: an HMAC-MD5 key is not one the policy accepts, and `--alg hmac-md5`
    // contradicts the policy.
    env.cmd()
        .args(["verify", "--batch"])
        .write_stdin(both.clone())
        .assert()
        .stdout("deny malformed\nok\n");
    env.cmd()
        .args(["verify", "--batch", "--alg", "hmac-md5"])
        .write_stdin(both.clone())
        .assert()
        .code(2)
        .stdout("")
        .stderr(contains("contradicts the policy"));
    // Recorded (a genbuilderkey farm imported, its SHA-256 keys handed out): both verify;
    // `--alg` keeps only one.
    env.cmd()
        .args(["import", "--alg", "hmac-md5", ARM])
        .assert()
        .success();
    env.cmd().args(["mint", ARM]).assert().success();
    env.cmd()
        .args(["verify", "--batch"])
        .write_stdin(both.clone())
        .assert()
        .stdout("ok\nok\n");
    env.cmd()
        .args(["verify", "--batch", "--alg", "hmac-md5"])
        .write_stdin(both)
        .assert()
        .stdout("ok\ndeny malformed\n");
}

/// A coordinator keeps one process, writes one question and waits for its answer.
#[test]
fn answers_one_question_at_a_time() {
    let env = TestEnv::new().with_master();
    let mut child = env
        .std_cmd()
        .args(["verify", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    for (question, answer) in [
        (format!("{ARM} {ARM_KEY}\n"), "ok"),
        (format!("host-other {ARM_KEY}\n"), "deny invalid"),
        (format!("{ARM} {ARM_KEY}\n"), "ok"),
    ] {
        stdin.write_all(question.as_bytes()).unwrap();
        stdin.flush().unwrap();
        // A generous deadline only so that a lost flush fails the test instead of hanging it.
        let got = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("no answer: not flushed?");
        assert_eq!(got, answer);
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

/// A line and the start of the next, then a wait: the whole line is answered at once (the
/// part of the next does not hold it back), the next once it is whole.
#[test]
fn a_partial_line_does_not_hold_back_the_answer_before_it() {
    let env = TestEnv::new().with_master();
    let mut batch = Coprocess::start(&env, &["--no-watch"]);
    write!(batch.stdin, "{ARM} {ARM_KEY}\nhost-other {}", &ARM_KEY[..7]).unwrap();
    batch.stdin.flush().unwrap();
    let answer = |batch: &Coprocess| {
        // A generous deadline only so that a lost flush fails the test instead of hanging it.
        batch
            .answers
            .recv_timeout(Duration::from_secs(30))
            .expect("no answer: not flushed?")
    };
    assert_eq!(answer(&batch), "ok");
    writeln!(batch.stdin, "{}", &ARM_KEY[7..]).unwrap();
    batch.stdin.flush().unwrap();
    assert_eq!(answer(&batch), "deny invalid");
    let log = batch.finish();
    assert!(log.contains("answered 2 lines, 1 ok"), "{log}");
}

#[test]
fn overlong_lines_are_malformed_and_the_stream_goes_on() {
    let env = TestEnv::new().with_master();
    let mut input = format!("{ARM} {ARM_KEY}").into_bytes();
    input.extend(std::iter::repeat_n(b' ', 1 << 20));
    input.extend_from_slice(format!("\n{ARM} {ARM_KEY}\n").as_bytes());
    input.extend(std::iter::repeat_n(b'z', 1 << 20));
    input.push(b'\n');
    input.extend(std::iter::repeat_n(0u8, 5000));
    env.cmd()
        .args(["verify", "--batch"])
        .write_stdin(input)
        .assert()
        .code(0)
        .stdout("deny malformed\nok\ndeny malformed\ndeny malformed\n");
}

#[test]
fn a_large_file_streams_in_order() {
    let env = TestEnv::new().with_master();
    let (mut input, mut expected) = (String::new(), String::new());
    for i in 0..60_000 {
        if i % 2 == 0 {
            input.push_str(&format!("{ARM} {ARM_KEY}\n"));
            expected.push_str("ok\n");
        } else {
            input.push_str(&format!("host-{i} {ARM_KEY}\n"));
            expected.push_str("deny invalid\n");
        }
    }
    let file = env.path("lines");
    fs::write(&file, input).unwrap();
    let out = env
        .std_cmd()
        .args(["verify", "--batch"])
        .stdin(fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8(out.stdout).unwrap() == expected,
        "answers out of order"
    );
}

#[test]
fn batch_audits_each_verification() {
    let env = TestEnv::new().with_master();
    let log = env.path("audit.log");
    env.cmd()
        .args(["verify", "--batch", "--audit"])
        .arg(&log)
        .write_stdin(format!("{ARM} {ARM_KEY}\nhost-b {ARM_KEY}\nnonsense\n"))
        .assert()
        .code(0);
    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("\"result\":\"ok\""), "{text}");
    assert!(lines[1].contains("\"reason\":\"invalid\""), "{text}");
    crate::common::assert_no_secret(&text, ARM_KEY);
}

/// A line with its columns swapped (`KEY PRINCIPAL`) is verified, as the key column holds
/// no key: its audit line names the principal `[key]`, never the key.
#[test]
fn a_key_in_the_principal_column_is_redacted_in_the_audit_line() {
    let env = TestEnv::new().with_master();
    let log = env.path("audit.log");
    env.cmd()
        .args(["verify", "--batch", "--audit"])
        .arg(&log)
        .write_stdin(format!("{ARM_KEY} {ARM}\n"))
        .assert()
        .code(0)
        .stdout("deny malformed\n");
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains("\"principal\":\"[key]\""), "{text}");
    crate::common::assert_no_secret(&text, ARM_KEY);
}

/// A `verify --batch` coprocess, asked one line at a time; its standard error collected.
struct Coprocess {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    answers: mpsc::Receiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    stderr_reader: std::thread::JoinHandle<()>,
}

impl Coprocess {
    fn start(env: &TestEnv, args: &[&str]) -> Self {
        let mut child = env
            .std_cmd()
            .args(["verify", "--batch"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let (tx, answers) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = std::sync::Arc::clone(&stderr);
        let pipe = child.stderr.take().unwrap();
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let mut log = sink.lock().unwrap();
                log.push_str(&line.unwrap_or_default());
                log.push('\n');
            }
        });
        Self {
            child,
            stdin,
            answers,
            stderr,
            stderr_reader,
        }
    }

    fn ask(&mut self, principal: &str, key: &str) -> String {
        writeln!(self.stdin, "{principal} {key}").unwrap();
        self.stdin.flush().unwrap();
        self.answers
            .recv_timeout(Duration::from_secs(60))
            .expect("no answer")
    }

    fn hang_up(&self) {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits until standard error holds `text` `times` times.
    fn wait_for_log(&self, text: &str, times: usize) {
        for _ in 0..3000 {
            if self.stderr.lock().unwrap().matches(text).count() >= times {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no {text:?} in {}", self.stderr.lock().unwrap());
    }

    /// Ends its input, waits for it to exit 0, and returns all it wrote on standard error.
    fn finish(mut self) -> String {
        drop(self.stdin);
        assert!(self.child.wait().unwrap().success());
        // Its last lines may still be on their way through the pipe.
        self.stderr_reader.join().unwrap();
        self.stderr.lock().unwrap().clone()
    }
}

/// The coprocess a coordinator keeps for days: SIGHUP reloads the masters and the policy
/// (never killing it), a failed reload keeps the last good state, and the audit file is
/// reopened for logrotate.
#[test]
fn sighup_reloads_reopens_the_audit_file_and_never_kills() {
    let env = TestEnv::new().with_master();
    let audit = env.path("audit.log");
    let mut batch = Coprocess::start(&env, &["--no-watch", "--audit", audit.to_str().unwrap()]);
    assert_eq!(batch.ask(ARM, ARM_KEY), "ok");
    env.cmd()
        .args(["revoke", "--allow-unknown", ARM])
        .assert()
        .success();
    // Watching is off: nothing changes before the signal.
    assert_eq!(batch.ask(ARM, ARM_KEY), "ok");
    // logrotate moves the audit file, then sends SIGHUP.
    fs::rename(&audit, env.path("audit.log.1")).unwrap();
    batch.hang_up();
    batch.wait_for_log("reloaded the masters and the policy", 1);
    assert_eq!(batch.ask(ARM, ARM_KEY), "deny revoked");
    let old = fs::read_to_string(env.path("audit.log.1")).unwrap();
    let new = fs::read_to_string(&audit).unwrap();
    assert_eq!(
        (old.lines().count(), new.lines().count()),
        (2, 1),
        "{old}{new}"
    );
    assert!(new.contains("\"revoked\""), "{new}");

    // A broken policy: the reload fails, the revocation holds.
    let policy = env.path("keys/gobuildkey.toml");
    let good = fs::read(&policy).unwrap();
    crate::common::write_file(&policy, "[principals.x]\nrevoked = maybe\n", 0o600);
    batch.hang_up();
    batch.wait_for_log("reload failed, keeping the last good masters and policy", 1);
    assert_eq!(batch.ask(ARM, ARM_KEY), "deny revoked");
    crate::common::write_file(&policy, good, 0o600);
    env.cmd().args(["reinstate", ARM]).assert().success();
    batch.hang_up();
    batch.wait_for_log("reloaded the masters and the policy", 2);
    assert_eq!(batch.ask(ARM, ARM_KEY), "ok");
    // Many signals at once: still alive, still answering.
    for _ in 0..20 {
        batch.hang_up();
    }
    assert_eq!(batch.ask(ARM, ARM_KEY), "ok");
    let log = batch.finish();
    assert!(log.contains("answered 6 lines"), "{log}");
}

/// Without a signal: an admin's revoke reaches the running coprocess through the file.
#[test]
fn a_policy_change_is_reloaded_without_a_signal() {
    let env = TestEnv::new().with_master();
    let mut batch = Coprocess::start(&env, &[]);
    assert_eq!(batch.ask(ARM, ARM_KEY), "ok");
    env.cmd()
        .args(["revoke", "--allow-unknown", ARM])
        .assert()
        .success();
    batch.wait_for_log("reloaded the masters and the policy", 1);
    assert_eq!(batch.ask(ARM, ARM_KEY), "deny revoked");
    batch.finish();
}
