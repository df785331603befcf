//! `gobuildkey check`.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use predicates::prelude::*;
use predicates::str::contains;

use crate::common::{
    ARM, ARM_KEY, ARM_KEY_MD5, TestEnv, all_output, assert_no_secret, fingerprint_in, write_file,
};

fn per_host(env: &TestEnv) -> std::path::PathBuf {
    env.per_host(ARM)
}

fn put_key(env: &TestEnv, content: &str, mode: u32) {
    write_file(&per_host(env), content, mode);
}

#[test]
fn passes_after_install_with_the_minting_fingerprint() {
    let env = TestEnv::new().with_master();
    let minted = env
        .cmd()
        .args(["mint", ARM])
        .assert()
        .success()
        .get_output()
        .clone();
    env.cmd()
        .args(["install", ARM])
        .write_stdin(minted.stdout.clone())
        .assert()
        .success();
    let out = env
        .cmd()
        .args(["check", ARM])
        .assert()
        .code(0)
        .stdout(contains(format!("ok: {}", per_host(&env).display())))
        .stdout(contains("rule: the per-host key file"))
        .stdout(contains(format!(
            "fingerprint: {}",
            fingerprint_in(&minted.stderr)
        )))
        .get_output()
        .clone();
    assert_no_secret(&all_output(&out), ARM_KEY);
}

#[test]
fn a_folder_or_fifo_is_not_a_key_file() {
    let env = TestEnv::new();
    fs::create_dir(per_host(&env)).unwrap();
    env.cmd()
        .args(["check", ARM])
        .assert()
        .code(1)
        .stderr(contains("is not a regular file: remove it"));
    fs::remove_dir(per_host(&env)).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(per_host(&env))
        .status()
        .unwrap();
    assert!(status.success());
    env.cmd()
        .args(["check", ARM])
        .assert()
        .code(1)
        .stderr(contains("is not a regular file"));
}

#[test]
fn open_files_fail_with_the_chmod() {
    for mode in [0o644, 0o640, 0o604, 0o660] {
        let env = TestEnv::new();
        put_key(&env, &format!("{ARM_KEY}\n"), mode);
        env.cmd()
            .args(["check", ARM])
            .assert()
            .code(1)
            .stdout("")
            .stderr(contains(format!(
                "(mode {mode:04o}): run `chmod 600 {}`",
                per_host(&env).display()
            )));
    }
}

#[test]
fn empty_and_malformed_keys_fail() {
    let cases = [
        ("", "is empty"),
        ("\n  \n", "is empty"),
        ("not a key\n", "does not hold a well-formed key"),
        (&ARM_KEY[..40], "does not hold a well-formed key"),
        (&ARM_KEY.to_uppercase(), "does not hold a well-formed key"),
    ];
    for (content, message) in cases {
        let env = TestEnv::new();
        put_key(&env, content, 0o600);
        let out = env
            .cmd()
            .args(["check", ARM])
            .assert()
            .code(1)
            .stderr(contains(message))
            .stderr(contains("install the key again"))
            .get_output()
            .clone();
        assert_no_secret(&all_output(&out), ARM_KEY);
    }
}

#[test]
fn every_problem_is_reported_on_its_own_line() {
    let env = TestEnv::new();
    put_key(&env, "garbage", 0o666);
    let out = env
        .cmd()
        .args(["check", ARM])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.matches("problem: ").count(), 2, "{stderr}");
}

#[test]
fn an_unreadable_file_says_whose_it_should_be() {
    let env = TestEnv::new();
    put_key(&env, &format!("{ARM_KEY}\n"), 0o600);
    // Owned by root (or by the test's user) and run as nobody: unreadable.
    if !rustix::process::geteuid().is_root() {
        fs::set_permissions(per_host(&env), fs::Permissions::from_mode(0o000)).unwrap();
    }
    env.unprivileged_cmd()
        .args(["check", ARM])
        .assert()
        .code(1)
        .stderr(contains("permission denied"))
        .stderr(contains("the user the agent runs as"));
}

#[test]
fn go_build_key_path_and_delete_after_read() {
    let env = TestEnv::new();
    let file = env.path("gobuildkey");
    write_file(&file, ARM_KEY, 0o600);
    env.cmd()
        .env("GO_BUILD_KEY_PATH", &file)
        .env("GO_BUILD_KEY_DELETE_AFTER_READ", "1")
        .args(["check", ARM])
        .assert()
        .code(0)
        .stdout(contains(format!("ok: {}", file.display())))
        .stdout(contains("GO_BUILD_KEY_PATH names it"))
        .stderr(contains("deletes the key file after reading it"));
}

/// Buildlets built since 2019 never read `~/.gobuildkey`: alone, it fails the check, and
/// the fix it gives puts the key where it is read.
#[test]
fn a_legacy_file_alone_fails() {
    let env = TestEnv::new();
    let legacy = env.path(".gobuildkey");
    write_file(&legacy, format!("{ARM_KEY}\n"), 0o600);
    let fix = format!("gobuildkey install {ARM} --key-file {}", legacy.display());
    env.cmd()
        .args(["check", ARM])
        .assert()
        .code(1)
        .stdout("")
        .stderr(contains(format!(
            "problem: {} is missing, and the agent reads no other file: not {} (legacy: not read by buildlets built since 2019)",
            per_host(&env).display(),
            legacy.display()
        )))
        .stderr(contains(&fix));
    let out = env
        .cmd()
        .args(["--json", "check", ARM])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(value["ok"], false);
    assert_eq!(value["rule"], "per-host");
    assert_eq!(value["path"], per_host(&env).to_str().unwrap());
    // The fix it gives, run as it is, makes it pass.
    env.cmd().args(fix.split(' ').skip(1)).assert().success();
    env.cmd()
        .args(["check", ARM])
        .assert()
        .code(0)
        .stdout(contains(format!("ok: {}", per_host(&env).display())));
}

/// `GO_BUILD_KEY_PATH` naming a missing file fails the check, whatever else holds a key.
#[test]
fn a_missing_go_build_key_path_fails_whatever_else_exists() {
    let env = TestEnv::new();
    put_key(&env, &format!("{ARM_KEY}\n"), 0o600);
    write_file(&env.path(".gobuildkey"), format!("{ARM_KEY}\n"), 0o600);
    let missing = env.path("buildkey/gobuildkey");
    for files in ["per-host and legacy", "per-host"] {
        if files == "per-host" {
            fs::remove_file(env.path(".gobuildkey")).unwrap();
        }
        env.cmd()
            .env("GO_BUILD_KEY_PATH", &missing)
            .args(["check", ARM])
            .assert()
            .code(1)
            .stdout("")
            .stderr(contains(format!(
                "problem: {} is missing, and the agent reads no other file (GO_BUILD_KEY_PATH names it)",
                missing.display()
            )))
            .stderr(contains(format!("{} (per-host)", per_host(&env).display())))
            .stderr(contains("or unset GO_BUILD_KEY_PATH"));
    }
}

/// `HOME=<dir>/link/..`, `link` a link to a folder elsewhere: the agent reads
/// `<dir>/.gobuildkey-*` (Go's filepath.Join cleans lexically), and so does the check.
#[test]
fn a_link_then_dotdot_in_home_is_where_the_check_looks() {
    let env = TestEnv::new();
    fs::create_dir_all(env.path("elsewhere/deep")).unwrap();
    std::os::unix::fs::symlink(env.path("elsewhere/deep"), env.path("link")).unwrap();
    let home = env.path("link/..");
    // A key where the kernel would take `link/..`: the agent does not read it.
    write_file(
        &env.path(&format!("elsewhere/.gobuildkey-{ARM}")),
        format!("{ARM_KEY}\n"),
        0o600,
    );
    env.cmd()
        .env("HOME", &home)
        .args(["check", ARM])
        .assert()
        .code(1)
        .stderr(contains(format!(
            "problem: no key file at {}",
            per_host(&env).display()
        )));
    put_key(&env, &format!("{ARM_KEY}\n"), 0o600);
    env.cmd()
        .env("HOME", &home)
        .args(["check", ARM])
        .assert()
        .code(0)
        .stdout(contains(format!("ok: {}\n", per_host(&env).display())));
}

/// A stock buildlet whose -coordinator does not start with farmer.golang.org sends the dev
/// key and reads no file: `--coordinator` says so (the file itself is still checked).
#[test]
fn a_coordinator_off_farmer_golang_org_warns_of_the_dev_key() {
    let env = TestEnv::new();
    put_key(&env, &format!("{ARM_KEY}\n"), 0o600);
    for addr in [
        "localhost:8119",
        "farm.example:443",
        "https://farmer.golang.org",
    ] {
        env.cmd()
            .args(["check", "--coordinator", addr, ARM])
            .assert()
            .code(0)
            .stdout(contains("ok: "))
            .stderr(contains(format!(
                "warning: a stock buildlet started with -coordinator \"{addr}\" reads no key file at all"
            )))
            .stderr(contains("sends the dev key"));
        let out = env
            .cmd()
            .args(["--json", "check", "--coordinator", addr, ARM])
            .assert()
            .code(0)
            .get_output()
            .stdout
            .clone();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(
            value["warnings"][0]
                .as_str()
                .unwrap()
                .contains("sends the dev key"),
            "{value}"
        );
    }
    // Also when the key file is missing: both are said.
    fs::remove_file(per_host(&env)).unwrap();
    env.cmd()
        .args(["check", "--coordinator", "localhost:8119", ARM])
        .assert()
        .code(1)
        .stderr(contains("sends the dev key"))
        .stderr(contains("problem: no key file"));
}

#[test]
fn a_farmer_golang_org_coordinator_gets_no_dev_key_warning() {
    let env = TestEnv::new();
    put_key(&env, &format!("{ARM_KEY}\n"), 0o600);
    for addr in [
        "farmer.golang.org",
        "farmer.golang.org:443",
        "farmer.golang.org.farm.example:443",
    ] {
        env.cmd()
            .args(["check", "--coordinator", addr, ARM])
            .assert()
            .code(0)
            .stderr(contains("dev key").not());
    }
    // Nor without --coordinator.
    env.cmd()
        .args(["check", ARM])
        .assert()
        .code(0)
        .stderr(contains("dev key").not());
}

#[test]
fn verify_checks_the_key_against_the_master() {
    let env = TestEnv::new().with_master();
    put_key(&env, &format!("{ARM_KEY}\n"), 0o600);
    env.cmd()
        .args(["check", "--verify", ARM])
        .assert()
        .code(0)
        .stdout(contains("verified"));
    // A genbuilderkey-era key verifies where the policy records that algorithm for it.
    put_key(&env, &format!("{ARM_KEY_MD5}\n"), 0o600);
    env.cmd()
        .args(["check", "--verify", ARM])
        .assert()
        .code(1)
        .stderr(contains("the policy accepts only hmac-sha256 keys"));
    // Minting it both keys records both algorithms for it.
    env.cmd().args(["mint", ARM]).assert().success();
    env.cmd()
        .args(["mint", "--alg", "hmac-md5", ARM])
        .assert()
        .success();
    env.cmd()
        .args(["check", "--verify", ARM])
        .assert()
        .code(0)
        .stdout(contains("algorithm: hmac-md5"));
    // Another host type's key (a renamed host type, say) is well formed but not valid.
    let other = env
        .cmd()
        .args(["mint", "host-linux-arm-old"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    put_key(&env, &String::from_utf8(other).unwrap(), 0o600);
    env.cmd()
        .args(["check", "--verify", ARM])
        .assert()
        .code(1)
        .stdout("")
        .stderr(contains("not a current key of host-linux-arm-aws"));
}

#[test]
fn verify_without_a_master_is_an_operational_error() {
    let env = TestEnv::new();
    put_key(&env, &format!("{ARM_KEY}\n"), 0o600);
    env.cmd()
        .args(["check", "--verify", ARM])
        .assert()
        .code(66)
        .stdout(predicate::str::contains("ok:").not());
    // Without --verify the master is not needed.
    env.cmd().args(["check", ARM]).assert().code(0);
}

#[test]
fn explain_says_why_this_file_what_the_key_is_and_what_to_ask() {
    let env = TestEnv::new();
    put_key(&env, &format!("{ARM_KEY}\n"), 0o600);
    write_file(&env.path(".gobuildkey"), "old\n", 0o600);
    let out = env
        .cmd()
        .args(["check", "--explain", ARM])
        .assert()
        .success()
        .stdout(contains("explain: rule: the per-host key file"))
        .stdout(contains("explain: hidden:").and(contains(".gobuildkey (legacy)")))
        .stdout(contains("an hmac-sha256 key"))
        .stdout(contains(format!("gobuildkey explain {ARM}")));
    assert_no_secret(&all_output(out.get_output()), ARM_KEY);
    // Without --explain, none of it.
    env.cmd()
        .args(["check", ARM])
        .assert()
        .success()
        .stdout(contains("explain:").not());

    put_key(&env, &format!("{ARM_KEY_MD5}\n"), 0o600);
    let json: serde_json::Value = serde_json::from_slice(
        &env.cmd()
            .args(["--json", "check", "--explain", ARM])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let lines = json["explanation"].as_array().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.as_str().unwrap().contains("an hmac-md5 key")),
        "{json}"
    );
    let json: serde_json::Value = serde_json::from_slice(
        &env.cmd()
            .args(["--json", "check", ARM])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(json["explanation"], serde_json::json!([]));
}

#[test]
fn a_key_damaged_in_a_copy_is_said_to_be() {
    let env = TestEnv::new();
    for (damaged, said) in [
        (ARM_KEY.to_uppercase(), "uppercase letters"),
        (
            format!("{}\n{}", &ARM_KEY[..32], &ARM_KEY[32..]),
            "whitespace inside",
        ),
        (
            format!("{} {}", &ARM_KEY[..10], &ARM_KEY[10..].to_uppercase()),
            "whitespace inside (broken over lines when copied?) and uppercase letters",
        ),
    ] {
        put_key(&env, &format!("{damaged}\n"), 0o600);
        let out = env
            .cmd()
            .args(["check", ARM])
            .assert()
            .code(1)
            .stderr(contains(said).and(contains("without which it would be a key")));
        assert_no_secret(&all_output(out.get_output()), ARM_KEY);
    }
    // Beyond repair: no such sentence.
    put_key(&env, "0123 not a key\n", 0o600);
    env.cmd()
        .args(["check", ARM])
        .assert()
        .code(1)
        .stderr(contains("without which").not());
}

#[test]
fn verify_with_the_machine_a_key_is_bound_to() {
    let env = TestEnv::new().with_master();
    let key = crate::common::stdout_of(env.cmd().args(["mint", "--machine", "builder-1", ARM]));
    put_key(&env, &key, 0o600);
    env.cmd()
        .args(["check", "--verify", "--machine", "builder-1", ARM])
        .assert()
        .success()
        .stdout(contains("verified"));
    env.cmd()
        .args(["check", "--verify", ARM])
        .assert()
        .code(1)
        .stderr(contains("--machine NAME"));
    env.cmd()
        .args(["check", "--verify", "--machine", "builder-2", ARM])
        .assert()
        .code(1);
    // --machine means nothing without --verify.
    env.cmd()
        .args(["check", "--machine", "builder-1", ARM])
        .assert()
        .code(2);
}
