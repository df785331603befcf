//! `gobuildkey policy`, and bad policy files: every command fails closed on them.

use std::fs;

use gobuildkey::policy::Policy;
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

use crate::common::{ARM, ARM_KEY, MASTER, TestEnv, stdout_of, write_file};

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
            "unknown field \"genration\"",
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

/// Every command that uses the master refuses to run without the policy: a deleted policy
/// must never mean "nothing revoked".
#[test]
fn a_missing_policy_is_refused_by_every_command_that_uses_it() {
    let env = TestEnv::new().with_master();
    fs::remove_file(env.policy_path()).unwrap();
    let key_file = env.path("k");
    write_file(&key_file, ARM_KEY, 0o600);
    write_file(&env.per_host(ARM), ARM_KEY, 0o600);
    for args in [
        &["verify", ARM][..],
        &["verify", "--batch"],
        &["mint", ARM],
        &["rotate", ARM],
        &["revoke", "--allow-unknown", ARM],
        &["reinstate", ARM],
        &["end-grace", ARM],
        &["policy"],
        &["check", "--verify", ARM],
        &["master", "rotate"],
        &["master", "retire", "SHA256:0000000000000000"],
        #[cfg(feature = "serve")]
        &["serve", "--listen", "127.0.0.1:0"],
    ] {
        env.cmd()
            .args(args)
            .write_stdin(format!("{ARM} {ARM_KEY}\n"))
            .assert()
            .code(66)
            .stdout(predicates::str::contains(ARM_KEY).not())
            .stderr(contains("does not exist"))
            .stderr(contains("restore it from its backup"));
        assert!(!env.policy_path().exists(), "{args:?} created a policy");
    }
    assert_eq!(
        fs::read_to_string(env.master_path()).unwrap().trim(),
        MASTER
    );
}

/// A policy cut to 0 bytes is a truncated one (what gobuildkey writes is never empty).
#[test]
fn an_empty_policy_is_a_truncated_one() {
    let env = TestEnv::new().with_master();
    write_policy(&env, "", 0o600);
    env.cmd()
        .args(["verify", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .code(78)
        .stderr(contains("empty"))
        .stderr(contains("backup"));
}

/// `policy init` makes a policy for a master made another way, and never replaces one.
#[test]
fn policy_init_creates_an_empty_policy_once() {
    let env = TestEnv::new();
    env.write_master(format!("{MASTER}\n").as_bytes(), 0o600);
    env.cmd()
        .args(["verify", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .code(66);
    env.cmd()
        .args(["policy", "init"])
        .assert()
        .success()
        .stdout(contains("created policy"));
    assert_eq!(crate::common::mode(&env.policy_path()), 0o600);
    assert!(!fs::read_to_string(env.policy_path()).unwrap().is_empty());
    env.cmd()
        .args(["verify", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .code(0);
    let before = fs::read(env.policy_path()).unwrap();
    env.cmd()
        .args(["policy", "init"])
        .assert()
        .code(73)
        .stderr(contains("already exists"));
    assert_eq!(fs::read(env.policy_path()).unwrap(), before);
}

/// A farm whose policy vanished has an action log: `policy init` would revive every key
/// it revoked, so it is refused; `--from-log` rebuilds the policy from the log instead.
#[test]
fn a_lost_policy_is_rebuilt_from_the_action_log_not_recreated_empty() {
    let env = TestEnv::new();
    env.cmd().arg("init").assert().success();
    let key = stdout_of(env.cmd().args(["mint", ARM]));
    env.cmd().args(["mint", "host-b"]).assert().success();
    env.cmd()
        .args(["rotate", "--keep-previous", "host-b"])
        .assert()
        .success();
    env.cmd()
        .args(["revoke", "--reason", "stolen", ARM])
        .assert()
        .success();
    env.cmd().args(["master", "rotate"]).assert().success();
    let policy = env.policy_path();
    let lost = Policy::load(&policy).unwrap();
    assert_eq!(verify_code(&env, ARM, &key), 1);

    fs::remove_file(&policy).unwrap();
    assert_eq!(verify_code(&env, ARM, &key), 66);
    env.cmd()
        .args(["policy", "init"])
        .assert()
        .code(73)
        .stderr(contains("--from-log"))
        .stderr(contains("verify again"));
    assert!(!policy.exists());
    env.cmd()
        .args(["policy", "init", "--from-log"])
        .assert()
        .success()
        .stdout(contains("from the action log"));
    let rebuilt = Policy::load(&policy).unwrap();
    let states = |p: &Policy| {
        p.principals()
            .map(|(name, state)| (name.as_str().to_owned(), state.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(states(&rebuilt), states(&lost));
    assert_eq!(
        rebuilt
            .keyring()
            .iter()
            .map(|e| &e.source)
            .collect::<Vec<_>>(),
        lost.keyring().iter().map(|e| &e.source).collect::<Vec<_>>()
    );
    // The revocation survived the loss.
    assert_eq!(verify_code(&env, ARM, &key), 1);
    // And the rebuild is itself in the log.
    let log = fs::read_to_string(env.path("keys/gobuildkey-actions.log")).unwrap();
    assert!(
        log.lines()
            .last()
            .unwrap()
            .contains("rebuilt from the action log")
    );
}

fn verify_code(env: &TestEnv, principal: &str, key: &str) -> i32 {
    crate::common::verifies(env, principal, key)
}

/// The same master twice in the keyring is an error with its place: `master retire`
/// removing one copy would leave the old master's keys verifying through the other.
#[test]
fn a_master_named_twice_in_the_keyring_is_refused() {
    let env = TestEnv::new().with_master();
    write_file(
        &env.path("keys/old.key"),
        "0123456789abcdef0123456789abcdef",
        0o600,
    );
    write_policy(
        &env,
        "[keyring]\nprevious = [\n  { file = \"old.key\" },\n  { file = \"old.key\" },\n]\n",
        0o600,
    );
    env.cmd()
        .args(["verify", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .code(78)
        .stderr(contains("line 4"))
        .stderr(contains("twice (first on line 3)"));
}

/// `policy` runs each master command once: the primary's and each keyring entry's (it ran
/// the keyring's twice, once to check them and once to list them).
#[test]
fn each_master_command_runs_once() {
    let env = TestEnv::new().with_master();
    let runs = env.path("runs");
    let previous = env.path("previous");
    crate::common::write_file(&previous, "an older master of the farm, 32 bytes+", 0o600);
    let count = |what: &str| format!("echo {what} >> '{}'", runs.display());
    env.write_policy(&format!(
        "[keyring]\nprevious = [{{ command = {:?} }}]\n[principals]\n",
        format!("{}; cat '{}'", count("keyring"), previous.display())
    ));
    let primary = format!("{}; {}", count("primary"), env.master_command());
    env.cmd()
        .args(["policy", "--master-key-command", &primary])
        .arg("--policy")
        .arg(env.path("keys/gobuildkey.toml"))
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(&runs).unwrap(),
        "primary\nkeyring\n"
    );
}

/// One machine revoked, the others untouched; the shared key refused once the host type
/// accepts machine keys only; both undone; `policy` and `--json` say so; the log records
/// the machine.
#[test]
fn one_machine_revoked_and_machine_keys_only() {
    let env = TestEnv::new().with_master();
    let shared = stdout_of(env.cmd().args(["mint", ARM]));
    let one = stdout_of(env.cmd().args(["mint", "--machine", "builder-1", ARM]));
    let two = stdout_of(env.cmd().args(["mint", "--machine", "builder-2", ARM]));
    let verify =
        |machine: &str, key: &str| crate::common::verifies_from(&env, ARM, key, &[machine]);
    assert_eq!(
        (verify("builder-1", &one), verify("builder-2", &two)),
        (0, 0)
    );

    let revoked: serde_json::Value = serde_json::from_str(&stdout_of(env.cmd().args([
        "--json",
        "revoke",
        "--machine",
        "Builder-1",
        ARM,
    ])))
    .unwrap();
    assert_eq!(revoked["machine"], "builder-1");
    assert_eq!(
        (revoked["revoked"].as_bool(), revoked["changed"].as_bool()),
        (Some(true), Some(true))
    );
    // Nothing from it, its own key nor the shared one; the other machine untouched.
    assert_eq!(verify("builder-1", &one), 1);
    assert_eq!(verify("builder-1", &shared), 1);
    assert_eq!(
        (verify("builder-2", &two), verify("builder-2", &shared)),
        (0, 0)
    );
    env.cmd()
        .args(["verify", "--batch"])
        .write_stdin(format!(
            "{ARM} {} builder-1\n{ARM} {} builder-2\n",
            one.trim(),
            two.trim()
        ))
        .assert()
        .success()
        .stdout("deny revoked\nok\n");
    env.cmd()
        .arg("policy")
        .assert()
        .success()
        .stdout(contains("machines revoked: builder-1"));
    let log = fs::read_to_string(env.path("keys/gobuildkey-actions.log")).unwrap();
    assert!(
        log.contains(
            r#""command":"revoke","principal":"host-linux-arm-aws","machine":"builder-1""#
        ),
        "{log}"
    );

    env.cmd()
        .args(["policy", "machine-keys-only", ARM])
        .assert()
        .success()
        .stdout(contains("its shared key is refused"));
    assert_eq!(verify("builder-2", &shared), 1);
    assert_eq!(verify("builder-2", &two), 0);
    env.cmd()
        .args(["verify", ARM])
        .write_stdin(shared.clone())
        .assert()
        .code(1);
    let listed: serde_json::Value =
        serde_json::from_str(&stdout_of(env.cmd().args(["--json", "policy"]))).unwrap();
    let arm = &listed["principals"][0];
    assert_eq!(arm["machine_keys_only"], true, "{listed}");
    assert_eq!(arm["revoked_machines"], serde_json::json!(["builder-1"]));

    env.cmd()
        .args(["policy", "machine-keys-only", "--off", ARM])
        .assert()
        .success();
    env.cmd()
        .args(["reinstate", "--machine", "builder-1", ARM])
        .assert()
        .success();
    assert_eq!(
        (verify("builder-1", &one), verify("builder-2", &shared)),
        (0, 0)
    );
    // Again: nothing changes, and it says so.
    env.cmd()
        .args(["reinstate", "--machine", "builder-1", ARM])
        .assert()
        .success()
        .stdout(contains("is not revoked"));
}

/// `policy` lists each machine rotated on its own with its generation, as text and as
/// `--json` (`machine_generations`, an array of `{machine, generation}`); a machine never
/// rotated is not there.
#[test]
fn policy_lists_machine_generations() {
    let env = TestEnv::new().with_master();
    stdout_of(env.cmd().args(["mint", "--machine", "builder-2", ARM]));
    for _ in 0..2 {
        stdout_of(env.cmd().args(["rotate", "--machine", "builder-1", ARM]));
    }
    env.cmd().arg("policy").assert().success().stdout(contains(
        "machine generations (rotate --machine): builder-1 2",
    ));
    let listed: serde_json::Value =
        serde_json::from_str(&stdout_of(env.cmd().args(["--json", "policy"]))).unwrap();
    let arm = listed["principals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == ARM)
        .unwrap();
    assert_eq!(
        arm["machine_generations"],
        serde_json::json!([{"machine": "builder-1", "generation": 2}])
    );
    assert_eq!(
        arm["machines"],
        serde_json::json!(["builder-1", "builder-2"])
    );
    assert_eq!(arm["generation"], 0);
}
