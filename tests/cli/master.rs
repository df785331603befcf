//! `gobuildkey master rotate|add|retire`: replacing the master without a flag day.

use std::fs;

use predicates::str::contains;

use crate::common::{
    ARM, ARM_KEY, MASTER, TestEnv, command_leaving_a_process, hung_command, is_gone, mode, names,
    pid_in, verifies, write_file,
};

fn fingerprint_of_master(text: &str) -> String {
    gobuildkey::fingerprint::Fingerprint::of(text.as_bytes()).to_string()
}

#[test]
fn the_runbook_replace_remint_retire() {
    let env = TestEnv::new().with_master();
    let old_fp = fingerprint_of_master(MASTER);
    env.cmd().args(["mint", ARM]).assert().success();

    // 1. Replace: old keys still verify, the new master mints.
    env.cmd()
        .args(["master", "rotate"])
        .assert()
        .success()
        .stdout(contains(format!("gobuildkey master retire {old_fp}")));
    let kept = env.path(&format!(
        "keys/gobuilder-master.key.{}",
        old_fp.trim_start_matches("SHA256:")
    ));
    assert_eq!(fs::read_to_string(&kept).unwrap(), format!("{MASTER}\n"));
    assert_eq!(mode(&kept), 0o600);
    assert_eq!(mode(&env.master_path()), 0o600);
    assert_ne!(
        fs::read_to_string(env.master_path()).unwrap().trim(),
        MASTER
    );
    assert_eq!(verifies(&env, ARM, ARM_KEY), 0);

    // 2. Re-mint what `policy --stale` lists.
    env.cmd()
        .args(["policy", "--stale"])
        .assert()
        .stdout(format!("{ARM}\n"));
    let new_key = env
        .cmd()
        .args(["mint", ARM])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let new_key = String::from_utf8(new_key).unwrap();
    assert_ne!(new_key.trim(), ARM_KEY);
    assert_eq!(verifies(&env, ARM, &new_key), 0);

    // 3. Retire the old master: its keys stop verifying, the new ones keep working.
    env.cmd()
        .args(["master", "retire", &old_fp])
        .assert()
        .success()
        .stdout(contains("no longer accepted"));
    assert_eq!(verifies(&env, ARM, ARM_KEY), 1);
    assert_eq!(verifies(&env, ARM, &new_key), 0);
    assert_eq!(
        names(&env.path("keys")).len(),
        5,
        "master, kept copy, policy, its lock, action log: {:?}",
        names(&env.path("keys"))
    );
}

#[test]
fn add_accepts_another_master_and_retire_unknown_is_refused() {
    let env = TestEnv::new();
    env.cmd().arg("init").assert().success();
    let old = env.path("old.key");
    write_file(&old, format!("{MASTER}\n"), 0o600);
    assert_eq!(verifies(&env, ARM, ARM_KEY), 1);
    env.cmd()
        .args(["master", "add", "--file"])
        .arg(&old)
        .assert()
        .success()
        .stdout(contains(fingerprint_of_master(MASTER)));
    assert_eq!(verifies(&env, ARM, ARM_KEY), 0);
    env.cmd()
        .args(["master", "add", "--file"])
        .arg(&old)
        .assert()
        .success()
        .stdout(contains("already accepted"));
    env.cmd()
        .args(["master", "retire", "SHA256:0000000000000000"])
        .assert()
        .code(65)
        .stderr(contains("gobuildkey policy"));
}

#[test]
fn add_by_command_and_refusals() {
    let env = TestEnv::new();
    env.cmd().arg("init").assert().success();
    env.cmd()
        .args(["master", "add", "--command"])
        .arg(env.master_command())
        .assert()
        .success();
    assert_eq!(verifies(&env, ARM, ARM_KEY), 0);
    // The primary is not a previous master; a missing file is not a master at all.
    env.cmd()
        .args(["master", "add", "--file"])
        .arg(env.master_path())
        .assert()
        .code(65)
        .stderr(contains("is the primary master"));
    env.cmd()
        .args(["master", "add", "--file", "missing.key"])
        .assert()
        .code(66);
    let primary_fp = fingerprint_of_master(fs::read_to_string(env.master_path()).unwrap().trim());
    env.cmd()
        .args(["master", "retire", &primary_fp])
        .assert()
        .code(65)
        .stderr(contains("master rotate"));
}

/// Keyring commands have `--command-timeout` as the master's has: one that never finishes
/// is killed with its group, at `master add` as in `verify` and `policy` (exit 75, the
/// policy's line named, the command line not); one that leaves a process holding its
/// standard output gives its master, and the leftover is killed.
#[test]
fn keyring_commands_are_killed_at_the_timeout_and_leftovers_do_not_hang_them() {
    let env = TestEnv::new();
    env.cmd().arg("init").assert().success();
    let policy = fs::read_to_string(env.policy_path()).unwrap();
    let (pid, background) = (env.path("pid"), env.path("background"));
    let hung = hung_command(&pid, &background);
    let gone = || is_gone(pid_in(&pid)) && is_gone(pid_in(&background));

    env.cmd()
        .args(["master", "add", "--command-timeout", "1s", "--command"])
        .arg(&hung)
        .assert()
        .code(75)
        .stderr(contains("did not finish within 1s"));
    assert!(gone(), "the command or its background process still runs");
    assert_eq!(fs::read_to_string(env.policy_path()).unwrap(), policy);

    // Far more time than needed: waiting for the leftover would fail, not pass.
    env.cmd()
        .args(["master", "add", "--command-timeout", "60s", "--command"])
        .arg(command_leaving_a_process(&env, &background))
        .assert()
        .success();
    assert!(is_gone(pid_in(&background)), "the leftover still runs");
    env.cmd()
        .args(["verify", ARM, "--command-timeout", "60s"])
        .write_stdin(ARM_KEY)
        .assert()
        .code(0);
    assert!(is_gone(pid_in(&background)), "the leftover still runs");

    env.write_policy(&format!(
        "[keyring]\nprevious = [{{ command = {hung:?} }}]\n[principals]\n"
    ));
    for command in [&["verify", ARM][..], &["policy"]] {
        let out = env
            .cmd()
            .args(command)
            .args(["--command-timeout", "1s"])
            .write_stdin(ARM_KEY)
            .assert()
            .code(75)
            .stdout("")
            .get_output()
            .clone();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains("line 2, column 13"), "{stderr}");
        assert!(stderr.contains("did not finish within 1s"), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
        assert!(
            gone(),
            "the keyring command or its background process still runs"
        );
    }
}

#[test]
fn rotate_needs_a_master_file() {
    let env = TestEnv::new();
    env.cmd()
        .args(["master", "rotate", "--master-key-command"])
        .arg(env.master_command())
        .assert()
        .code(78)
        .stderr(contains("secret manager"));
}

/// A relative `--master-key` with the policy in another folder: the kept copy of the old
/// master goes into the keyring by its absolute path (a relative one would be read against
/// the policy's folder, and every key minted before the rotation would stop verifying).
#[test]
fn rotate_with_relative_paths_keeps_old_keys_verifying() {
    let env = TestEnv::new();
    std::fs::create_dir_all(env.path("farm")).unwrap();
    let policy = env.path("etc/gobuildkey.toml");
    let with = |args: &[&str]| {
        let mut cmd = env.cmd();
        cmd.current_dir(env.path("farm"))
            .args(args)
            .args(["--master-key", "m.key", "--policy"])
            .arg(&policy);
        cmd
    };
    with(&["init"]).assert().success();
    let key = crate::common::stdout_of(&mut with(&["mint", ARM]));
    with(&["master", "rotate"]).assert().success();
    with(&["verify", ARM]).write_stdin(key).assert().code(0);
    let text = std::fs::read_to_string(&policy).unwrap();
    assert!(
        text.contains(&env.path("farm").display().to_string()),
        "{text}"
    );
}
