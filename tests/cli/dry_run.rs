//! `--dry-run`: every command that changes the policy or the master says what it would do
//! and changes nothing on disk — not the policy, not the master, not the action log.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use predicates::str::contains;

use crate::common::{ARM, TestEnv, inode, mode, stdout_of};

/// Every file in `dir`: its text, inode and mode. The lock file's text is only the pid of
/// its last holder, which any command taking the lock (a dry run too) leaves there.
fn state_of(dir: &Path) -> BTreeMap<String, (String, u64, u32)> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = if name.ends_with(".lock") {
                String::new()
            } else {
                String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned()
            };
            (name, (text, inode(&path), mode(&path)))
        })
        .collect()
}

#[test]
fn every_changing_command_changes_nothing_with_dry_run() {
    let env = TestEnv::new();
    env.cmd().arg("init").assert().success();
    env.cmd().args(["mint", ARM]).assert().success();
    env.cmd()
        .args(["rotate", "--keep-previous", "host-b"])
        .assert()
        .success();
    env.cmd()
        .args(["revoke", "--allow-unknown", "host-c"])
        .assert()
        .success();
    let old = env.path("old.key");
    crate::common::write_file(&old, "0123456789abcdef0123456789abcdef", 0o600);
    env.cmd()
        .args(["master", "add", "--file"])
        .arg(&old)
        .assert()
        .success();
    let keys = env.path("keys");
    let before = state_of(&keys);
    let retire_fp = "SHA256:".to_owned()
        + &stdout_of(env.cmd().args(["--json", "policy"]))
            .split("\"previous\":[{\"fingerprint\":\"SHA256:")
            .nth(1)
            .unwrap()[..16];
    let cases: [&[&str]; 10] = [
        &["init", "--force"],
        &["mint", "host-new"],
        &["rotate", ARM],
        &["revoke", "--allow-unknown", "host-d"],
        &["revoke", ARM],
        &["reinstate", "host-c"],
        &["end-grace", "host-b"],
        &["master", "rotate"],
        &["master", "retire", &retire_fp],
        &[
            "master",
            "add",
            "--command",
            "echo another-master-of-32-bytes-long",
        ],
    ];
    for args in cases {
        let out = env
            .cmd()
            .args(args)
            .arg("--dry-run")
            .assert()
            .success()
            .get_output()
            .clone();
        let said = crate::common::all_output(&out);
        assert!(said.contains("dry run"), "{args:?} does not say so: {said}");
        assert_eq!(state_of(&keys), before, "{args:?} changed something");
        // No key is printed by a dry run.
        assert!(
            !String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.len() == 64 && l.bytes().all(|b| b.is_ascii_hexdigit())),
            "{args:?} printed a key"
        );
    }
    // `policy init` in a fresh place: nothing is created.
    let fresh = env.path("fresh/gobuildkey.toml");
    env.cmd()
        .args(["policy", "init", "--dry-run", "--policy"])
        .arg(&fresh)
        .assert()
        .success()
        .stderr(contains("dry run"));
    assert!(
        !env.path("fresh").exists(),
        "not even the folder or a lock file"
    );
    env.cmd()
        .args([
            "import",
            "--alg",
            "hmac-md5",
            "--dry-run",
            "host-old",
            "--policy",
        ])
        .arg(&fresh)
        .assert()
        .success();
    assert!(!env.path("fresh").exists());
    // And an `init` where there is nothing yet creates nothing.
    let elsewhere = env.path("elsewhere/master.key");
    env.cmd()
        .args(["init", "--dry-run", "--master-key"])
        .arg(&elsewhere)
        .assert()
        .success();
    assert!(!env.path("elsewhere").exists());
}
