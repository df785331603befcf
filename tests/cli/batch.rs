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
fn fails_closed_before_reading_without_a_master() {
    let env = TestEnv::new();
    env.cmd()
        .args(["verify", "--batch"])
        .write_stdin(format!("{ARM} {ARM_KEY}\n"))
        .assert()
        .code(66)
        .stdout("");
}

#[test]
fn batch_takes_no_principal_and_no_key_file() {
    let env = TestEnv::new().with_master();
    env.cmd().args(["verify", "--batch", ARM]).assert().code(2);
    env.cmd()
        .args(["verify", "--batch", "--key-file", "k"])
        .assert()
        .code(2);
    env.cmd().args(["verify"]).assert().code(2);
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
