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
fn an_unreadable_log_line_is_named_and_its_text_not_shown() {
    let env = TestEnv::new();
    env.cmd().arg("init").assert().success();
    let log = env.path("keys/gobuildkey-actions.log");
    let mut text = fs::read_to_string(&log).unwrap();
    text.push_str("{\"pasted\": \"0123456789abcdef0123456789abcdef\n");
    fs::write(&log, text).unwrap();
    // `log` shows what it can, and says what it left out; the next action is not
    // swallowed by the line cut short.
    env.cmd()
        .args(["revoke", "--allow-unknown", "host-x"])
        .assert()
        .success();
    let out = env.cmd().arg("log").assert().code(0);
    let out = out.get_output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("revoke") && stdout.contains("init"),
        "{stdout}"
    );
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(!stderr.contains("0123456789abcdef"), "{stderr}");
    // A rebuild from it is refused, naming the line: the log is not whole.
    std::fs::remove_file(env.policy_path()).unwrap();
    env.cmd()
        .args(["policy", "init", "--from-log"])
        .assert()
        .code(74)
        .stderr(contains("line 2"))
        .stderr(contains("0123456789abcdef").not());
}

/// An edit whose write fails after it was logged (here: a folder its user cannot create the
/// new file in) is marked in the log as not having happened, so a replay does not apply a
/// `reinstate` the policy never got.
#[test]
fn a_failed_write_is_undone_in_the_log() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to give the farm to another user");
        return;
    }
    let env = TestEnv::new();
    env.cmd().arg("init").assert().success();
    env.cmd()
        .args(["revoke", "--allow-unknown", "host-x"])
        .assert()
        .success();
    // The farm belongs to the user the command runs as; its folder becomes read-only.
    let keys = env.path("keys");
    for entry in fs::read_dir(&keys).unwrap() {
        std::os::unix::fs::chown(entry.unwrap().path(), Some(65534), Some(65534)).unwrap();
    }
    std::os::unix::fs::chown(&keys, Some(65534), Some(65534)).unwrap();
    std::os::unix::fs::chown(env.home.path(), Some(65534), Some(65534)).unwrap();
    let policy_before = fs::read(env.policy_path()).unwrap();
    fs::set_permissions(&keys, std::os::unix::fs::PermissionsExt::from_mode(0o500)).unwrap();
    env.unprivileged_cmd()
        .args(["reinstate", "host-x"])
        .assert()
        .code(77);
    fs::set_permissions(&keys, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    assert_eq!(fs::read(env.policy_path()).unwrap(), policy_before);
    let text = fs::read_to_string(keys.join("gobuildkey-actions.log")).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["command"], "reinstate");
    assert_eq!(last["state"]["revoked"], true, "{last}");
    assert!(
        last["reason"].as_str().unwrap().starts_with("not written"),
        "{last}"
    );
    // A rebuild from the log, by the farm's owner, keeps the revocation.
    fs::remove_file(env.policy_path()).unwrap();
    env.unprivileged_cmd()
        .args(["policy", "init", "--from-log"])
        .assert()
        .success();
    let rebuilt = fs::read_to_string(env.policy_path()).unwrap();
    assert!(
        rebuilt.contains("[principals.host-x]\nrevoked = true"),
        "{rebuilt}"
    );
}

/// The log is trusted as the policy is: one others may write could reinstate a principal or
/// plant a keyring command on a replay. Edits refuse to append to it; a rebuild refuses it.
#[test]
fn a_log_others_may_write_is_refused() {
    let env = TestEnv::new();
    env.cmd().arg("init").assert().success();
    let log = env.path("keys/gobuildkey-actions.log");
    fs::set_permissions(&log, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let policy = fs::read(env.policy_path()).unwrap();
    env.cmd()
        .args(["revoke", "--allow-unknown", "host-x"])
        .assert()
        .code(77)
        .stderr(contains("the action log"));
    assert_eq!(
        fs::read(env.policy_path()).unwrap(),
        policy,
        "nothing changed"
    );
    fs::remove_file(env.policy_path()).unwrap();
    env.cmd()
        .args(["policy", "init", "--from-log"])
        .assert()
        .code(77);
    assert!(!env.policy_path().exists());
}

/// Two policies in one folder keep two histories: each log is named after its policy.
#[test]
fn each_policy_has_its_own_log() {
    let env = TestEnv::new();
    env.cmd().arg("init").assert().success();
    let other = env.path("keys/other.toml");
    env.cmd()
        .args(["policy", "init", "--policy"])
        .arg(&other)
        .assert()
        .success();
    assert!(env.path("keys/other-actions.log").exists());
    env.cmd()
        .args(["revoke", "--allow-unknown", "--policy"])
        .arg(&other)
        .arg("host-x")
        .assert()
        .success();
    let main_log = fs::read_to_string(env.path("keys/gobuildkey-actions.log")).unwrap();
    assert!(!main_log.contains("host-x"), "{main_log}");
}

/// The text form says which machine an action was about and when a token minted expires,
/// before the reason.
#[test]
fn the_text_names_the_machine_and_a_tokens_expiry() {
    let env = TestEnv::new().with_master();
    env.cmd()
        .args(["mint", "--machine", "builder-7", "host-a"])
        .assert()
        .success();
    env.cmd()
        .args([
            "mint",
            "--expires-in",
            "2h",
            "--reason",
            "a CI job",
            "host-a",
        ])
        .assert()
        .success();
    let text = stdout_of(env.cmd().args(["log", "host-a"]));
    assert!(text.contains("machine builder-7"), "{text}");
    assert!(text.contains("token expires 20"), "{text}");
    assert!(text.contains("; a CI job"), "{text}");
}
