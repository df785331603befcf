//! `gobuildkey explain`: what a refused key is, for the admin — and never the key.

use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;
use serde_json::Value;

use crate::common::{ARM, ARM_KEY, MASTER, OTHER_KEY, TestEnv, assert_no_secret, stdout_of};

/// `explain --json PRINCIPAL` with `key` on standard input: its object and exit code.
fn explain(env: &TestEnv, principal: &str, key: &str) -> (Value, i32) {
    let out = env
        .cmd()
        .args(["--json", "explain", principal])
        .write_stdin(key)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for secret in [key.trim(), MASTER] {
        if !secret.is_empty() {
            assert_no_secret(&text, secret);
            assert_no_secret(&String::from_utf8_lossy(&out.stderr), secret);
        }
    }
    (
        serde_json::from_str(&text).unwrap(),
        out.status.code().unwrap(),
    )
}

#[test]
fn each_finding_with_its_exit_code() {
    let env = TestEnv::new().with_master();
    let arm0 = stdout_of(env.cmd().args(["mint", ARM]));
    assert_eq!(arm0.trim(), ARM_KEY);
    let other = stdout_of(env.cmd().args(["mint", "host-other"]));
    stdout_of(env.cmd().args(["rotate", ARM]));
    env.cmd().args(["end-grace", ARM]).assert().success();
    let arm1 = stdout_of(env.cmd().args(["mint", ARM]));

    let (json, code) = explain(&env, ARM, &arm1);
    assert_eq!(
        (json["finding"].as_str(), code),
        (Some("valid"), 0),
        "{json}"
    );
    assert_eq!(json["generation"], 1);

    let (json, code) = explain(&env, ARM, &arm0);
    assert_eq!(
        (json["finding"].as_str(), code),
        (Some("generation"), 1),
        "{json}"
    );
    assert_eq!(
        (
            json["generation"].as_u64(),
            json["current_generation"].as_u64()
        ),
        (Some(0), Some(1))
    );
    assert!(json["time"].as_str().unwrap().ends_with('Z'), "{json}");

    let (json, code) = explain(&env, ARM, &other);
    assert_eq!(
        (json["finding"].as_str(), code),
        (Some("other-principal"), 1),
        "{json}"
    );
    assert_eq!(json["other_principal"], "host-other");

    let (json, code) = explain(&env, ARM, &format!("  {}\n", arm1.trim().to_uppercase()));
    assert_eq!(
        (json["finding"].as_str(), code),
        (Some("valid"), 1),
        "{json}"
    );
    assert_eq!(json["fixes"], serde_json::json!(["lowercased"]));
    assert_eq!(json["valid"], false);

    let (json, code) = explain(&env, ARM, OTHER_KEY);
    assert_eq!(
        (json["finding"].as_str(), code),
        (Some("unknown"), 1),
        "{json}"
    );

    let (json, code) = explain(&env, ARM, "not a key\n");
    assert_eq!(
        (json["finding"].as_str(), code),
        (Some("malformed"), 1),
        "{json}"
    );
    let (json, code) = explain(&env, ARM, "");
    assert_eq!(
        (json["finding"].as_str(), code),
        (Some("malformed"), 1),
        "{json}"
    );

    env.cmd().args(["revoke", ARM]).assert().success();
    let (json, code) = explain(&env, ARM, &arm1);
    assert_eq!(
        (json["finding"].as_str(), code),
        (Some("revoked"), 1),
        "{json}"
    );
    assert_eq!(json["its_key"], true);
}

#[test]
fn the_other_algorithm_and_a_retired_masters_key() {
    let env = TestEnv::new().with_master();
    let md5 = stdout_of(env.cmd().args(["mint", "--alg", "hmac-md5", ARM]));
    let sha = stdout_of(env.cmd().args(["mint", "host-sha"]));
    // host-sha's key in hmac-md5, which the policy does not accept for it.
    let sha_md5 = {
        let env2 = TestEnv::new().with_master();
        stdout_of(env2.cmd().args(["mint", "--alg", "hmac-md5", "host-sha"]))
    };
    let (json, _) = explain(&env, "host-sha", &sha_md5);
    assert_eq!(json["finding"], "algorithm", "{json}");
    assert_eq!(json["algorithm"], "hmac-md5");
    assert_eq!(json["accepted"], "hmac-sha256");

    // A new primary: keys of the old one still verify while it is in the keyring.
    let rotated: Value =
        serde_json::from_str(&stdout_of(env.cmd().args(["--json", "master", "rotate"]))).unwrap();
    let old = rotated["previous"].as_str().unwrap();
    let (json, code) = explain(&env, "host-sha", &sha);
    assert_eq!(
        (json["finding"].as_str(), code),
        (Some("valid"), 0),
        "{json}"
    );
    assert_eq!(json["master"], old);
    // Retired: recognised by the fingerprints the action log recorded at mint time.
    env.cmd().args(["master", "retire", old]).assert().success();
    for (principal, key) in [(ARM, &md5), ("host-sha", &sha)] {
        let (json, code) = explain(&env, principal, key);
        assert_eq!(
            (json["finding"].as_str(), code),
            (Some("retired-master"), 1),
            "{json}"
        );
        assert_eq!(json["master"], old);
        assert_eq!(json["other_principal"], principal);
        assert_eq!(json["generation"], 0);
    }
}

#[test]
fn the_words_say_what_to_do_and_never_show_the_key() {
    let env = TestEnv::new().with_master();
    let other = stdout_of(env.cmd().args(["mint", "host-other"]));
    let out = env
        .cmd()
        .args(["explain", ARM])
        .write_stdin(other.clone())
        .assert()
        .code(1)
        .stdout(contains("the key of host-other"))
        .stdout(contains("wrong host type"));
    let output = out.get_output();
    assert_no_secret(&String::from_utf8_lossy(&output.stdout), other.trim());
    assert_no_secret(&String::from_utf8_lossy(&output.stderr), other.trim());
}

#[test]
fn no_master_is_an_error_not_an_explanation() {
    let env = TestEnv::new();
    env.cmd()
        .args(["explain", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .code(66)
        .stdout("");
}

#[test]
fn the_key_comes_from_a_file_too() {
    let env = TestEnv::new().with_master();
    let key = stdout_of(env.cmd().args(["mint", ARM]));
    let file = env.path("refused.key");
    crate::common::write_file(&file, &key, 0o600);
    env.cmd()
        .args(["explain", "--key-file"])
        .arg(&file)
        .arg(ARM)
        .assert()
        .success()
        .stdout(contains(
            "valid: the key of host-linux-arm-aws, generation 0",
        ));
}

#[test]
fn a_key_file_that_is_not_there_is_an_error() {
    let env = TestEnv::new().with_master();
    env.cmd()
        .args(["explain", "--key-file"])
        .arg(env.path("nothing-here.key"))
        .arg(ARM)
        .assert()
        .code(66)
        .stdout("");
}

#[test]
fn machine_keys_from_the_wrong_machine_and_the_shared_key_refused() {
    let env = TestEnv::new().with_master();
    let shared = stdout_of(env.cmd().args(["mint", ARM]));
    let one = stdout_of(env.cmd().args(["mint", "--machine", "builder-1", ARM]));
    env.cmd()
        .args(["revoke", "--machine", "builder-9", ARM])
        .assert()
        .success();
    env.cmd()
        .args(["reinstate", "--machine", "builder-9", ARM])
        .assert()
        .success();
    let explain_from = |machine: &str, key: &str| {
        let out = env
            .cmd()
            .args(["--json", "explain", "--machine", machine, ARM])
            .write_stdin(key.to_owned())
            .output()
            .unwrap();
        assert_no_secret(&String::from_utf8_lossy(&out.stdout), key.trim());
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        (json, out.status.code().unwrap())
    };
    let (json, code) = explain_from("builder-1", &one);
    assert_eq!(
        (json["finding"].as_str(), code),
        (Some("valid"), 0),
        "{json}"
    );
    let (json, code) = explain_from("builder-2", &one);
    assert_eq!(
        (json["finding"].as_str(), code),
        (Some("other-machine"), 1),
        "{json}"
    );
    assert_eq!(json["machine"], "builder-1");
    // A key of builder-9 (the policy lists the machines keys were minted for), presented
    // from builder-2.
    let nine = stdout_of(env.cmd().args(["mint", "--machine", "builder-9", ARM]));
    let (json, _) = explain_from("builder-2", &nine);
    assert_eq!(json["machine"], "builder-9", "{json}");
    let listed = stdout_of(env.cmd().arg("policy"));
    assert!(
        listed.contains("machines: builder-1, builder-9"),
        "{listed}"
    );

    env.cmd()
        .args(["policy", "machine-keys-only", ARM])
        .assert()
        .success();
    let (json, code) = explain_from("builder-2", &shared);
    assert_eq!(
        (json["finding"].as_str(), code),
        (Some("shared-refused"), 1),
        "{json}"
    );
    env.cmd()
        .args(["revoke", "--machine", "builder-1", ARM])
        .assert()
        .success();
    let (json, _) = explain_from("builder-1", &one);
    assert_eq!(json["finding"], "machine-revoked", "{json}");
    assert_eq!(json["its_key"], true);
}

/// red2: a key `mint --machine` minted under the master in use is not "of nothing the farm
/// knows … no key the action log records: a key of another farm, or made up" — for a new
/// principal the log records its very fingerprint, and for any principal `explain` cannot
/// recognise a machine key without the machine's name, so it must not say that.
#[test]
fn a_machine_key_is_not_called_a_key_of_another_farm() {
    let env = TestEnv::new().with_master();
    // A new principal: the log records the machine key's fingerprint.
    let bound = stdout_of(
        env.cmd()
            .args(["mint", "--machine", "builder-1", "host-new"]),
    );
    env.cmd()
        .args(["verify", "--machine", "builder-1", "host-new"])
        .write_stdin(bound.clone())
        .assert()
        .success();
    let (json, code) = explain(&env, "host-new", &bound);
    assert_eq!(code, 1);
    assert_ne!(json["finding"], "unknown", "{json}");
    // A principal minted before: nothing logged, but still a key the farm made.
    stdout_of(env.cmd().args(["mint", ARM]));
    let bound = stdout_of(env.cmd().args(["mint", "--machine", "builder-1", ARM]));
    let out = env
        .cmd()
        .args(["explain", ARM])
        .write_stdin(bound)
        .assert()
        .code(1);
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(text.contains("mint --machine"), "{text}");
}

/// red2: input past the key bound is not "0 bytes": explain says it is too long.
#[test]
fn input_past_the_bound_is_not_called_empty() {
    let env = TestEnv::new().with_master();
    env.cmd()
        .args(["explain", ARM])
        .write_stdin("a".repeat(5000))
        .assert()
        .code(1)
        .stdout(contains("0 bytes").not())
        .stdout(contains("4096"));
}

/// A principal the policy does not name: its own generation-0 key is valid (as `verify`
/// says), a key of a principal the farm knows is named, and a key of one it does not is
/// unknown — never an error.
#[test]
fn a_principal_not_in_the_policy() {
    let env = TestEnv::new().with_master();
    stdout_of(env.cmd().args(["mint", ARM]));
    let master = gobuildkey::master::MasterSecret::from_text(MASTER.as_bytes()).unwrap();
    let deriver = gobuildkey::derive::Deriver::new(&master, gobuildkey::key::Algorithm::HmacSha256);
    let own = deriver.derive(&"host-unlisted".parse().unwrap());
    let (json, code) = explain(&env, "host-unlisted", own.expose_secret());
    assert_eq!(
        (json["finding"].as_str(), code),
        (Some("valid"), 0),
        "{json}"
    );
    let (json, code) = explain(&env, "host-unlisted", ARM_KEY);
    assert_eq!(
        (json["finding"].as_str(), code),
        (Some("other-principal"), 1),
        "{json}"
    );
    assert_eq!(json["other_principal"], ARM);
    let stranger = deriver.derive(&"host-stranger".parse().unwrap());
    let (json, code) = explain(&env, "host-unlisted", stranger.expose_secret());
    assert_eq!(
        (json["finding"].as_str(), code),
        (Some("unknown"), 1),
        "{json}"
    );
}
