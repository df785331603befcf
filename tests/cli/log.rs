//! `gobuildkey log`: the admin action log — who changed what, when and why.

use std::fs;

use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;
use serde_json::Value;

use crate::common::{ARM, TestEnv, assert_no_secret, stdout_of};

#[test]
fn every_change_is_logged_with_who_what_and_why_never_a_secret() {
    let env = TestEnv::new();
    env.cmd().arg("init").assert().success();
    let key = stdout_of(env.cmd().args(["mint", ARM]));
    let rotated = stdout_of(
        env.cmd()
            .args(["rotate", "--reason", "yearly rotation", ARM]),
    );
    env.cmd()
        .env("SUDO_USER", "alice")
        .args(["revoke", "--reason", "laptop \"stolen\"", ARM])
        .assert()
        .success();
    env.cmd().args(["master", "rotate"]).assert().success();

    let text = fs::read_to_string(env.path("keys/gobuildkey-actions.log")).unwrap();
    assert_eq!(
        crate::common::mode(&env.path("keys/gobuildkey-actions.log")),
        0o600
    );
    let master = fs::read_to_string(env.path("keys/gobuilder-master.key")).unwrap();
    for secret in [key.trim(), rotated.trim(), master.trim()] {
        assert_no_secret(&text, secret);
    }
    let actions: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let commands: Vec<&str> = actions
        .iter()
        .map(|a| a["command"].as_str().unwrap())
        .collect();
    assert_eq!(
        commands,
        ["init", "mint", "rotate", "revoke", "master rotate"]
    );
    let uid = rustix::process::geteuid().as_raw();
    for a in &actions {
        assert_eq!(a["uid"], uid, "{a}");
        assert!(a["time"].as_str().unwrap().ends_with('Z'), "{a}");
        assert!(!a["host"].as_str().unwrap().is_empty(), "{a}");
        assert!(!a["user"].as_str().unwrap().is_empty(), "{a}");
    }
    let rotate = &actions[2];
    assert_eq!(rotate["principal"], ARM);
    assert_eq!(rotate["generation"], 1);
    assert_eq!(rotate["algorithm"], "hmac-sha256");
    assert_eq!(rotate["reason"], "yearly rotation");
    assert!(rotate["key"].as_str().unwrap().starts_with("SHA256:"));
    assert!(rotate["master"].as_str().unwrap().starts_with("SHA256:"));
    let revoke = &actions[3];
    assert_eq!(revoke["invoked_by"], "alice");
    assert_eq!(revoke["reason"], "laptop \"stolen\"");
    assert_eq!(revoke["state"]["revoked"], true);
    assert!(actions[4]["keyring"]["added"]["file"].is_string());

    // As a table, filtered by principal and by date.
    let table = stdout_of(env.cmd().args(["log", ARM]));
    assert!(
        table.lines().next().unwrap().starts_with("time (UTC)"),
        "{table}"
    );
    assert_eq!(
        table.lines().count(),
        4,
        "header, mint, rotate, revoke: {table}"
    );
    assert!(table.contains("alice as "), "{table}");
    assert!(table.contains("laptop \"stolen\""), "{table}");
    let none = stdout_of(env.cmd().args(["log", "--since", "2099-01-01"]));
    assert!(none.contains("(no actions in"), "{none}");
    // As JSON: one object holding the actions, each as the log has it.
    let json: Value = serde_json::from_str(&stdout_of(env.cmd().args(["--json", "log"]))).unwrap();
    assert_eq!(json["command"], "log");
    assert_eq!(json["actions"].as_array().unwrap().len(), 5);
    assert_eq!(json["actions"][3], actions[3]);
}

#[test]
fn a_reason_is_one_line_of_bounded_length() {
    let env = TestEnv::new().with_master();
    for reason in ["two\nlines", &"x".repeat(1001), "bell\u{7}"] {
        env.cmd()
            .args(["revoke", "--allow-unknown", "--reason", reason, ARM])
            .assert()
            .code(2);
    }
    assert!(!env.path("keys/gobuildkey-actions.log").exists());
}

#[test]
fn an_unreadable_log_line_is_named_and_its_text_not_shown() {
    let env = TestEnv::new();
    env.cmd().arg("init").assert().success();
    let log = env.path("keys/gobuildkey-actions.log");
    let mut text = fs::read_to_string(&log).unwrap();
    text.push_str("{\"pasted\": \"0123456789abcdef0123456789abcdef\n");
    fs::write(&log, text).unwrap();
    env.cmd()
        .arg("log")
        .assert()
        .code(74)
        .stderr(contains("line 2"))
        .stderr(contains("0123456789abcdef").not());
}
