//! `gobuildkey policy`, and bad policy files: every command fails closed on them.

use std::fs;

use predicates::str::contains;

use crate::common::{ARM, ARM_KEY, MASTER, TestEnv, write_file};

fn write_policy(env: &TestEnv, text: &str, mode: u32) {
    write_file(&env.path("keys/gobuildkey.toml"), text, mode);
}

#[test]
fn shows_masters_and_principals_without_secrets() {
    let env = TestEnv::new().with_master();
    env.cmd()
        .args(["rotate", "--keep-previous", ARM])
        .assert()
        .success();
    env.cmd()
        .args(["revoke", "--allow-unknown", "host-x"])
        .assert()
        .success();
    let out = env
        .cmd()
        .arg("policy")
        .assert()
        .success()
        .get_output()
        .clone();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("primary   SHA256:"), "{text}");
    assert!(text.contains("host-linux-arm-aws"), "{text}");
    assert!(text.contains("until ended"), "{text}");
    assert!(text.contains("host-x"), "{text}");
    crate::common::assert_no_secret(&text, MASTER);
    crate::common::assert_no_secret(&text, ARM_KEY);
    // `list` is the same command.
    env.cmd().arg("list").assert().success().stdout(text);
}

#[test]
fn stale_lists_keys_minted_under_another_master() {
    let env = TestEnv::new().with_master();
    env.cmd().args(["mint", ARM]).assert().success();
    env.cmd().args(["mint", "host-b"]).assert().success();
    env.cmd()
        .args(["policy", "--stale"])
        .assert()
        .success()
        .stdout("");
    env.cmd().args(["master", "rotate"]).assert().success();
    env.cmd()
        .args(["policy", "--stale"])
        .assert()
        .success()
        .stdout("host-b\nhost-linux-arm-aws\n");
    env.cmd().args(["mint", ARM]).assert().success();
    env.cmd()
        .args(["policy", "--stale"])
        .assert()
        .success()
        .stdout("host-b\n");
}

#[test]
fn bad_policy_files_fail_closed_with_line_and_column() {
    let cases = [
        (
            "[principals.host-linux-arm-aws]\ngeneration = \"1\"\n",
            "line 2, column 14",
        ),
        (
            "[principals.host-linux-arm-aws]\ngeneration = 1\ngeneration = 2\n",
            "line 3",
        ),
        (
            "[principals.host-linux-arm-aws]\ngenration = 1\n",
            "unknown field `genration`",
        ),
        (
            "[principals.host-linux-arm-aws]\ngeneration = 99999999999999999999\n",
            "line 2",
        ),
        (
            "[principals.host-linux-arm-aws]\nrevoked = 1\n",
            "line 2, column 11",
        ),
        ("[[principals]]\n", "must be a table"),
        ("oops", "line 1"),
    ];
    for (text, message) in cases {
        let env = TestEnv::new().with_master();
        write_policy(&env, text, 0o600);
        // A valid key of generation 0 is refused: no verification without the policy.
        env.cmd()
            .args(["verify", ARM])
            .write_stdin(ARM_KEY)
            .assert()
            .code(predicates::ord::ge(3))
            .stdout("")
            .stderr(contains(message))
            .stderr(contains("gobuildkey.toml"));
        env.cmd()
            .args(["mint", ARM])
            .assert()
            .code(predicates::ord::ge(3))
            .stdout("");
        env.cmd()
            .args(["revoke", "--allow-unknown", ARM])
            .assert()
            .code(predicates::ord::ge(3));
        assert_eq!(
            fs::read_to_string(env.path("keys/gobuildkey.toml")).unwrap(),
            text
        );
    }
}

#[test]
fn syntax_and_field_errors_exit_78_a_missing_keyring_master_66() {
    let env = TestEnv::new().with_master();
    write_policy(&env, "[principals.host-a]\nrevoked = \"yes\"\n", 0o600);
    env.cmd()
        .args(["verify", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .code(78);
    write_policy(
        &env,
        "[keyring]\nprevious = [{ file = \"missing.key\" }]\n",
        0o600,
    );
    env.cmd()
        .args(["verify", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .code(66)
        .stderr(contains("previous master"));
}

#[test]
fn a_policy_others_may_write_is_refused() {
    let env = TestEnv::new().with_master();
    write_policy(&env, "", 0o666);
    env.cmd()
        .args(["verify", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .code(77)
        .stderr(contains("chmod go-w"));
}

#[test]
fn policy_from_flag_or_environment() {
    let env = TestEnv::new().with_master();
    let elsewhere = env.path("farm/policy.toml");
    env.cmd()
        .env("GOBUILDKEY_POLICY", &elsewhere)
        .args(["policy", "init"])
        .assert()
        .success();
    env.cmd()
        .env("GOBUILDKEY_POLICY", &elsewhere)
        .args(["revoke", "--allow-unknown", ARM])
        .assert()
        .success();
    assert!(
        fs::read_to_string(&elsewhere)
            .unwrap()
            .contains("revoked = true")
    );
    assert_eq!(
        fs::read_to_string(env.policy_path()).unwrap(),
        crate::common::EMPTY_POLICY
    );
    env.cmd()
        .args(["verify", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .code(0);
    env.cmd()
        .args(["verify", ARM, "--policy"])
        .arg(&elsewhere)
        .write_stdin(ARM_KEY)
        .assert()
        .code(1);
}
