//! `gobuildkey rotate`, `end-grace`, `revoke` and `reinstate`: one machine's key replaced
//! or refused, no other key touched.

use std::fs;

use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

use crate::common::{ARM, ARM_KEY, EMPTY_POLICY, TestEnv, mode, stdout_of, verifies};

const OTHER: &str = "host-darwin-amd64-12_0";

fn stdout(env: &TestEnv, args: &[&str]) -> String {
    stdout_of(env.cmd().args(args))
}

fn policy_text(env: &TestEnv) -> String {
    fs::read_to_string(env.path("keys/gobuildkey.toml")).unwrap()
}

#[test]
fn rotate_replaces_one_key_and_nothing_else() {
    let env = TestEnv::new().with_master();
    let other_key = stdout(&env, &["mint", OTHER]);
    let out = env
        .cmd()
        .args(["rotate", ARM])
        .assert()
        .success()
        .get_output()
        .clone();
    let new_key = String::from_utf8(out.stdout).unwrap();
    assert_eq!(new_key.trim().len(), 64);
    assert_ne!(new_key.trim(), ARM_KEY);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("generation 1"), "{stderr}");
    assert!(stderr.contains("no longer verifies"), "{stderr}");
    assert_eq!(verifies(&env, ARM, &new_key), 0);
    assert_eq!(verifies(&env, ARM, ARM_KEY), 1);
    assert_eq!(verifies(&env, OTHER, &other_key), 0);
    // mint now gives the current generation.
    assert_eq!(stdout(&env, &["mint", ARM]), new_key);
    assert_eq!(mode(&env.path("keys/gobuildkey.toml")), 0o600);
    assert!(policy_text(&env).contains("generation = 1"));
}

#[test]
fn grace_keeps_the_previous_key_until_ended() {
    let env = TestEnv::new().with_master();
    let new_key = stdout(&env, &["rotate", "--keep-previous", ARM]);
    assert_eq!(verifies(&env, ARM, ARM_KEY), 0);
    assert_eq!(verifies(&env, ARM, &new_key), 0);
    env.cmd()
        .args(["end-grace", ARM])
        .assert()
        .success()
        .stdout(contains("ended the grace period"));
    assert_eq!(verifies(&env, ARM, ARM_KEY), 1);
    assert_eq!(verifies(&env, ARM, &new_key), 0);
    env.cmd()
        .args(["end-grace", ARM])
        .assert()
        .success()
        .stdout(contains("no grace period"));
}

#[test]
fn grace_ends_at_its_date() {
    let env = TestEnv::new().with_master();
    let new_key = stdout(
        &env,
        &["rotate", "--keep-previous-until", "2999-01-01", ARM],
    );
    assert_eq!(verifies(&env, ARM, ARM_KEY), 0);
    let policy = policy_text(&env);
    assert!(policy.contains("keep_previous = 2999-01-01T00:00:00Z"));
    // Time passes: an admin's edit of the date stands in for it.
    fs::write(
        env.path("keys/gobuildkey.toml"),
        policy.replace("2999-01-01T00:00:00Z", "2001-01-01T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(verifies(&env, ARM, ARM_KEY), 1);
    assert_eq!(verifies(&env, ARM, &new_key), 0);
}

#[test]
fn grace_for_a_length_of_time_ends_that_long_from_now() {
    let env = TestEnv::new().with_master();
    let week = jiff::SignedDuration::from_hours(7 * 24);
    let before = jiff::Timestamp::now() + week;
    stdout(&env, &["rotate", "--keep-previous-for", "7d", ARM]);
    let after = jiff::Timestamp::now() + week;
    let policy = policy_text(&env);
    let end: jiff::Timestamp = policy
        .lines()
        .find_map(|line| line.strip_prefix("keep_previous = "))
        .unwrap()
        .parse()
        .unwrap();
    // Written to the second.
    assert!(before.round(jiff::Unit::Second).unwrap() <= end);
    assert!(end <= after.round(jiff::Unit::Second).unwrap());
    assert_eq!(verifies(&env, ARM, ARM_KEY), 0);
}

/// A grace period ending too far in the future for the calendar is refused, and nothing
/// changes. (The grace periods over already, or of no time, are refused as usage errors
/// before anything is read: tests/refusals/rotate/.)
#[test]
fn a_grace_too_far_in_the_future_is_refused() {
    let env = TestEnv::new().with_master();
    env.cmd()
        .args(["rotate", "--keep-previous-for", "19000y", ARM])
        .assert()
        .code(2)
        .stderr(contains("too far in the future"));
    assert_eq!(fs::read_to_string(env.policy_path()).unwrap(), EMPTY_POLICY);
    assert_eq!(verifies(&env, ARM, ARM_KEY), 0);
}

#[test]
fn revoke_refuses_every_key_and_reinstate_undoes_it() {
    let env = TestEnv::new().with_master();
    let g1 = stdout(&env, &["rotate", "--keep-previous", ARM]);
    env.cmd()
        .args(["revoke", "--allow-unknown", ARM])
        .assert()
        .success()
        .stdout(contains("revoked host-linux-arm-aws"));
    for key in [ARM_KEY, g1.as_str()] {
        env.cmd()
            .args(["verify", ARM])
            .write_stdin(key.to_owned())
            .assert()
            .code(1)
            .stderr(contains(
                "invalid build key (host-linux-arm-aws is revoked)",
            ));
    }
    // Revoked principals get no new key.
    env.cmd()
        .args(["mint", ARM])
        .assert()
        .code(1)
        .stdout("")
        .stderr(contains("gobuildkey reinstate host-linux-arm-aws"));
    env.cmd()
        .args(["revoke", "--allow-unknown", ARM])
        .assert()
        .success()
        .stdout(contains("already revoked"));
    env.cmd()
        .args(["reinstate", ARM])
        .assert()
        .success()
        .stdout(contains("reinstated"));
    assert_eq!(verifies(&env, ARM, &g1), 0);
    assert_eq!(verifies(&env, ARM, ARM_KEY), 0);
    env.cmd()
        .args(["reinstate", ARM])
        .assert()
        .success()
        .stdout(contains("already not revoked"));
}

#[test]
fn revoke_needs_no_master_but_never_fails_open() {
    // Revoking works where only the policy is at hand...
    let env = TestEnv::new();
    let policy = env.path("farm.toml");
    env.cmd()
        .args(["policy", "init", "--policy"])
        .arg(&policy)
        .assert()
        .success();
    env.cmd()
        .args(["revoke", "--allow-unknown", ARM, "--policy"])
        .arg(&policy)
        .assert()
        .success();
    assert!(
        fs::read_to_string(&policy)
            .unwrap()
            .contains("revoked = true")
    );
    // ...and verifying still needs a master.
    env.cmd()
        .args(["verify", ARM, "--policy"])
        .arg(&policy)
        .write_stdin(ARM_KEY)
        .assert()
        .code(66);
}

#[test]
fn rotate_keeps_hand_edits() {
    let env = TestEnv::new().with_master();
    let policy = env.path("keys/gobuildkey.toml");
    fs::write(
        &policy,
        "# our farm\n[principals.host-old]  # retired box\nrevoked = true # leaked\n",
    )
    .unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut fs::metadata(&policy).unwrap().permissions(),
        0o600,
    );
    env.cmd().args(["rotate", ARM]).assert().success();
    let text = policy_text(&env);
    assert!(
        text.starts_with(
            "# our farm\n[principals.host-old]  # retired box\nrevoked = true # leaked\n"
        ),
        "{text}"
    );
    assert!(text.contains("[principals.host-linux-arm-aws]"), "{text}");
}

/// A typo must not look like a revocation: a name the farm never knew (not in the policy,
/// not in the action log) is refused with the names it resembles; `--allow-unknown` revokes
/// it anyway.
#[test]
fn revoking_a_name_the_farm_never_knew_is_refused_with_suggestions() {
    let env = TestEnv::new().with_master();
    env.cmd().args(["mint", ARM]).assert().success();
    let before = fs::read(env.policy_path()).unwrap();
    env.cmd()
        .args(["revoke", "host-linux-arm-awz"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(contains("did you mean host-linux-arm-aws?"))
        .stderr(contains("nothing was revoked"))
        .stderr(contains("--allow-unknown"));
    assert_eq!(fs::read(env.policy_path()).unwrap(), before);
    env.cmd()
        .args(["revoke", "host-nothing-like-it"])
        .assert()
        .code(1)
        .stderr(contains("did you mean").not());
    env.cmd()
        .args(["revoke", "--allow-unknown", "host-linux-arm-awz"])
        .assert()
        .success();
    // A principal only the log knows (revoked, then reinstated: the policy no longer names
    // it) is known.
    env.cmd()
        .args(["reinstate", "host-linux-arm-awz"])
        .assert()
        .success();
    assert!(
        !fs::read_to_string(env.policy_path())
            .unwrap()
            .contains("awz")
    );
    env.cmd()
        .args(["revoke", "host-linux-arm-awz"])
        .assert()
        .success();
}

/// Rotating twice inside a grace period would kill the key already handed out: refused,
/// saying until when it stays valid; `--discard-previous` goes ahead.
#[test]
fn a_second_rotation_inside_the_grace_period_is_refused() {
    let env = TestEnv::new().with_master();
    let first = stdout_of(
        env.cmd()
            .args(["rotate", "--keep-previous-until", "2099-01-01", ARM]),
    );
    let before = fs::read(env.policy_path()).unwrap();
    env.cmd()
        .args(["rotate", ARM])
        .assert()
        .code(1)
        .stdout("")
        .stderr(contains("still verifies until 2099-01-01T00:00:00Z"))
        .stderr(contains("--discard-previous"));
    assert_eq!(fs::read(env.policy_path()).unwrap(), before);
    assert_eq!(
        verifies(&env, ARM, ARM_KEY),
        0,
        "generation 0 is still in grace"
    );
    let second = stdout_of(env.cmd().args(["rotate", "--discard-previous", ARM]));
    assert_ne!(first, second);
    assert_eq!(verifies(&env, ARM, ARM_KEY), 1);
    assert_eq!(verifies(&env, ARM, &first), 1, "discarded");
    assert_eq!(verifies(&env, ARM, &second), 0);
    // Without a grace period, rotating again needs no flag; nor after end-grace.
    env.cmd().args(["rotate", ARM]).assert().success();
    env.cmd()
        .args(["rotate", "--keep-previous", ARM])
        .assert()
        .success();
    env.cmd().args(["end-grace", ARM]).assert().success();
    env.cmd().args(["rotate", ARM]).assert().success();
}

/// `rotate -o FILE` writes the new key before it commits the new generation: when the file
/// cannot be written, the rotation does not happen and the old key keeps verifying.
#[test]
fn rotate_to_a_file_commits_only_once_the_key_is_written() {
    let env = TestEnv::new().with_master();
    let out = env.path("new.key");
    fs::write(&out, "already here\n").unwrap();
    env.cmd()
        .args(["rotate", ARM, "-o"])
        .arg(&out)
        .assert()
        .code(73);
    assert_eq!(fs::read_to_string(env.policy_path()).unwrap(), EMPTY_POLICY);
    assert_eq!(verifies(&env, ARM, ARM_KEY), 0);
    env.cmd()
        .args(["rotate", ARM, "--force", "-o"])
        .arg(&out)
        .assert()
        .success()
        .stdout(contains("generation 1"));
    let new_key = fs::read_to_string(&out).unwrap();
    assert_eq!(mode(&out), 0o600);
    assert_eq!(verifies(&env, ARM, new_key.trim()), 0);
    assert_eq!(verifies(&env, ARM, ARM_KEY), 1);
}

/// `rotate -o FILE` whose commit fails after the key file was written (here: the action log
/// cannot be opened) removes the file: no key is left for a generation that does not exist.
#[test]
fn a_failed_rotation_leaves_no_key_file() {
    let env = TestEnv::new().with_master();
    env.cmd().args(["mint", ARM]).assert().success();
    let log = env.path("keys/gobuildkey-actions.log");
    fs::remove_file(&log).unwrap();
    fs::create_dir(&log).unwrap();
    let out = env.path("new.key");
    env.cmd()
        .args(["rotate", ARM, "-o"])
        .arg(&out)
        .assert()
        .failure()
        .stderr(contains("was removed"));
    assert!(!out.exists());
    assert_eq!(verifies(&env, ARM, ARM_KEY), 0, "no rotation happened");
}

fn json_of(env: &TestEnv, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&stdout(env, &[&["--json"], args].concat())).unwrap()
}

/// `rotate --machine`: that machine's own generation goes up and its new key is printed;
/// its previous key stops verifying at once, while the principal's generation, its shared
/// key and the other machine's key stay valid; `mint --machine` then gives the new key;
/// the policy, the log (replayed by `policy init --from-log`), `--json` and `explain` know.
#[test]
fn rotate_machine_replaces_that_machines_key_only() {
    let env = TestEnv::new().with_master();
    let from = |key: &str, machine: &str| crate::common::verifies_from(&env, ARM, key, &[machine]);
    let old1 = stdout(&env, &["mint", "--machine", "builder-1", ARM]);
    let own2 = stdout(&env, &["mint", "--machine", "builder-2", ARM]);
    let out = env
        .cmd()
        .args(["rotate", "--machine", "Builder-1", ARM])
        .assert()
        .success()
        .get_output()
        .clone();
    let new1 = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("its own generation 1"), "{stderr}");
    assert!(stderr.contains("no longer verifies"), "{stderr}");
    assert_ne!(new1, old1);
    assert_eq!(from(&new1, "builder-1"), 0);
    assert_eq!(from(&old1, "builder-1"), 1);
    assert_eq!(from(&new1, "builder-2"), 1);
    assert_eq!(from(&own2, "builder-2"), 0);
    assert_eq!(from(ARM_KEY, "builder-1"), 0);
    assert_eq!(verifies(&env, ARM, ARM_KEY), 0);
    assert_eq!(stdout(&env, &["mint", "--machine", "builder-1", ARM]), new1);
    let policy = policy_text(&env);
    assert!(
        policy.contains("machine_generations = { builder-1 = 1 }"),
        "{policy}"
    );
    assert!(!policy.contains("\ngeneration ="), "{policy}");

    // Again, with --json and -o FILE: generation 2, the principal's still 0.
    let file = env.path("builder-1.key");
    let json = json_of(
        &env,
        &[
            "rotate",
            "--machine",
            "builder-1",
            ARM,
            "-o",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(json["machine"], "builder-1");
    assert_eq!(json["machine_generation"], 2);
    assert_eq!(json["generation"], 0);
    assert_eq!(json["keep_previous"], false);
    assert_eq!(json["revoked"], false);
    let new2 = fs::read_to_string(&file).unwrap();
    assert_eq!(mode(&file), 0o600);
    assert_eq!(from(&new2, "builder-1"), 0);
    assert_eq!(from(&new1, "builder-1"), 1);
    assert_eq!(from(&own2, "builder-2"), 0);

    // The log: each rotation with its machine, fingerprint and state.
    let actions = gobuildkey::policy::actions::ActionLog::beside(&env.policy_path())
        .read()
        .unwrap();
    let rotations: Vec<_> = actions.iter().filter(|a| a.command == "rotate").collect();
    assert_eq!(rotations.len(), 2);
    for (n, action) in rotations.iter().enumerate() {
        assert_eq!(action.machine.as_deref(), Some("builder-1"));
        assert!(action.key.is_some());
        let state = action.state.as_ref().unwrap();
        assert_eq!(state.machine_generations["builder-1"], n as u64 + 1);
    }
    let host = ARM.parse().unwrap();
    assert_eq!(
        crate::common::replayed_policy(&env).state(&host),
        gobuildkey::policy::Policy::load(&env.policy_path())
            .unwrap()
            .state(&host)
    );

    // explain: the old key is of an earlier machine generation.
    let out = env
        .cmd()
        .args(["--json", "explain", "--machine", "builder-1", ARM])
        .write_stdin(old1.clone())
        .assert()
        .code(1)
        .get_output()
        .clone();
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found["finding"], "machine-generation", "{found}");
    assert_eq!(found["machine"], "builder-1");
    assert_eq!(found["machine_generation"], 0);
    assert_eq!(found["current_machine_generation"], 2);
    assert!(found["time"].is_string(), "{found}");
    // In words: one sentence, no run of spaces inside it.
    let out = env
        .cmd()
        .args(["explain", "--machine", "builder-1", ARM])
        .write_stdin(old1)
        .assert()
        .code(1)
        .get_output()
        .clone();
    let words = String::from_utf8(out.stdout).unwrap();
    assert!(words.contains("at its own generation 0"), "{words}");
    assert!(!words.contains("  "), "{words}");
}

/// A machine never minted for can be rotated too (it is listed from then on); a revoked
/// machine or principal is rotated as `rotate` rotates a revoked principal — the new key
/// is printed, and a note says it stays refused until reinstated (rotate, hand out, then
/// reinstate: the compromised key never verifies again in between).
#[test]
fn rotate_machine_of_a_revoked_machine_says_so() {
    let env = TestEnv::new().with_master();
    stdout(&env, &["mint", ARM]);
    env.cmd()
        .args(["revoke", "--machine", "builder-9", ARM])
        .assert()
        .success();
    let out = env
        .cmd()
        .args(["rotate", "--machine", "builder-9", ARM])
        .assert()
        .success()
        .stderr(contains("reinstate --machine builder-9"))
        .get_output()
        .clone();
    let key = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        crate::common::verifies_from(&env, ARM, &key, &["builder-9"]),
        1
    );
    env.cmd()
        .args(["reinstate", "--machine", "builder-9", ARM])
        .assert()
        .success();
    assert_eq!(
        crate::common::verifies_from(&env, ARM, &key, &["builder-9"]),
        0
    );
    let policy = policy_text(&env);
    assert!(policy.contains("machines = [\"builder-9\"]"), "{policy}");
    // A dry run changes nothing and prints no key.
    env.cmd()
        .args(["rotate", "--dry-run", "--machine", "builder-9", ARM])
        .assert()
        .success()
        .stdout("")
        .stderr(contains("would move to its own generation 2"));
    assert_eq!(policy_text(&env), policy);
}

/// The grace options are refused with --machine before anything is read (exit 2; the
/// catalogue in tests/refusals/rotate/ has the exact words), and the policy is unchanged.
#[test]
fn rotate_machine_refuses_a_grace_period() {
    let env = TestEnv::new().with_master();
    env.cmd()
        .args([
            "rotate",
            "--machine",
            "builder-1",
            "--keep-previous-for",
            "7d",
            ARM,
        ])
        .assert()
        .code(2)
        .stderr(contains("no grace").and(contains("--keep-previous-for")));
    assert_eq!(fs::read_to_string(env.policy_path()).unwrap(), EMPTY_POLICY);
}
