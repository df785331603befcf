//! Standard output a pipe whose reader has gone (`gobuildkey … | head -c0`): no command
//! panics (Rust's `println!` would abort with SIGABRT, exit 134). A command whose output is
//! its product exits 141, as one killed by SIGPIPE; `verify`'s exit status stays its
//! verdict; `rotate` undoes a rotation whose key reached nobody.
//!
//! The pipe's reading end is closed before the command starts (closing fd 1 outright would
//! prove nothing: the Rust runtime reopens it on /dev/null).

use std::io::Write;
use std::process::Stdio;

use crate::common::{ARM, ARM_KEY, TestEnv};

/// Runs `args` with `stdin` on its standard input and a dead pipe as its standard output:
/// the exit code and standard error.
fn with_reader_gone(env: &TestEnv, args: &[&str], stdin: &str) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = env
        .std_cmd()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn products_exit_141_when_their_reader_has_gone() {
    let env = TestEnv::new().with_master();
    env.cmd().args(["mint", ARM]).assert().success();
    let batch_line = format!("{ARM} {ARM_KEY}\n");
    let cases: [(&[&str], &str); 11] = [
        (&["mint", ARM], ""),
        (&["--json", "mint", ARM], ""),
        (&["path", ARM], ""),
        (&["policy"], ""),
        (&["--json", "policy"], ""),
        (&["fingerprint"], ARM_KEY),
        (&["completions", "bash"], ""),
        (&["man"], ""),
        (&["log"], ""),
        (&["verify", "--batch"], &batch_line),
        (&["--version"], ""),
    ];
    for (args, stdin) in cases {
        let (code, stderr) = with_reader_gone(&env, args, stdin);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        if args == ["--version"] {
            // clap prints the version itself; what matters is no panic.
            assert_ne!(code, Some(134), "{args:?}: {stderr}");
            continue;
        }
        assert_eq!(code, Some(141), "{args:?}: {stderr}");
    }
}

#[test]
fn verify_keeps_its_verdict_when_its_reader_has_gone() {
    let env = TestEnv::new().with_master();
    for (key, verdict) in [(ARM_KEY, 0), ("nope", 1)] {
        for json in [false, true] {
            let args: &[&str] = if json {
                &["--json", "verify", ARM]
            } else {
                &["verify", ARM]
            };
            let (code, stderr) = with_reader_gone(&env, args, key);
            assert_eq!(code, Some(verdict), "{args:?} {key}: {stderr}");
        }
    }
}

/// Nobody received the new key, so the new generation is undone: the old key still
/// verifies, and the log says why.
#[test]
fn a_rotation_whose_key_reached_nobody_is_undone() {
    let env = TestEnv::new().with_master();
    env.cmd().args(["mint", ARM]).assert().success();
    let (code, stderr) = with_reader_gone(&env, &["rotate", ARM], "");
    assert_eq!(code, Some(141), "{stderr}");
    assert!(stderr.contains("the rotation was undone"), "{stderr}");
    assert_eq!(crate::common::verifies(&env, ARM, ARM_KEY), 0);
    let policy = gobuildkey::policy::Policy::load(&env.policy_path()).unwrap();
    assert_eq!(policy.state(&ARM.parse().unwrap()).generation, 0);
    let log = std::fs::read_to_string(env.path("keys/gobuildkey-actions.log")).unwrap();
    assert!(
        log.lines()
            .last()
            .unwrap()
            .contains("rolled back: the new key could not be delivered"),
        "{log}"
    );
}

/// A rotation whose key cannot be delivered is undone without undoing what was changed
/// since: its stdout a full pipe, the rotation commits and blocks writing the key; a
/// `revoke` lands meanwhile; then the reader goes. The generation goes back, the revocation
/// stays.
#[test]
fn undoing_a_rotation_keeps_a_revocation_made_meanwhile() {
    use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
    let env = TestEnv::new().with_master();
    env.cmd().args(["mint", ARM]).assert().success();
    let (reader, mut writer) = std::io::pipe().unwrap();
    // Fill the pipe, so that the key's write blocks.
    let flags = fcntl_getfl(&writer).unwrap();
    fcntl_setfl(&writer, flags | OFlags::NONBLOCK).unwrap();
    while writer.write(&[0u8; 4096]).is_ok() {}
    fcntl_setfl(&writer, flags).unwrap();
    let child = env
        .std_cmd()
        .args(["rotate", ARM])
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let policy = env.policy_path();
    let generation = || {
        gobuildkey::policy::Policy::load(&policy)
            .map(|p| p.state(&ARM.parse().unwrap()).generation)
            .unwrap_or(0)
    };
    for _ in 0..3000 {
        if generation() == 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(generation(), 1, "the rotation committed");
    env.cmd()
        .args(["revoke", "--reason", "stolen", ARM])
        .assert()
        .success();
    drop(reader);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    let state = gobuildkey::policy::Policy::load(&policy)
        .unwrap()
        .state(&ARM.parse().unwrap());
    assert_eq!(state.generation, 0, "{stderr}");
    assert!(state.revoked, "the revocation made meanwhile is kept");
}
