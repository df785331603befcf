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
