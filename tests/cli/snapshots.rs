//! Snapshots of every `--help` and of the messages of a refused key, so they change only on
//! purpose: after a deliberate change, `SNAPSHOTS=overwrite cargo test --test cli snapshots`
//! rewrites `tests/snapshots/`, and the diff shows what users will see. The refusals of
//! arguments and input are pinned as data in tests/refusals/ (`cargo test --test refusals`).

use std::path::Path;

use snapbox::{Assert, Data};

use crate::common::{TestEnv, commands};

fn assert_snapshot(name: &str, actual: Vec<u8>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.txt"));
    Assert::new().action_env("SNAPSHOTS").eq(
        String::from_utf8(actual).unwrap(),
        Data::read_from(&path, None).raw(),
    );
}

#[test]
fn help_pages() {
    let env = TestEnv::new();
    // The command list is the default build's.
    if cfg!(all(feature = "serve", feature = "probe")) {
        let out = env.cmd().arg("--help").output().unwrap();
        assert_snapshot("help", out.stdout);
    }
    // `master` itself too: its page lists the subcommands.
    for command in commands().chain([&["master"][..]]) {
        let out = env.cmd().args(command).arg("--help").output().unwrap();
        assert!(out.status.success());
        assert_snapshot(&format!("help-{}", command.join("-")), out.stdout);
    }
}

/// `verify`'s answers to a malformed and a wrong key: they need a policy file of a safe mode,
/// which git cannot keep, so they are here rather than in tests/refusals/.
#[test]
fn main_error_messages() {
    let env = TestEnv::new();
    let policy = env.write_policy(crate::common::EMPTY_POLICY);
    let policy = policy.to_str().unwrap();
    let err = |args: &[&str], home: &str, stdin: &str| {
        let out = env
            .cmd()
            .env("HOME", home)
            .args(args)
            .write_stdin(stdin.to_owned())
            .output()
            .unwrap();
        out.stderr
    };
    assert_snapshot(
        "error-invalid-key",
        err(
            &[
                "verify",
                "host-a",
                "--master-key-command",
                "echo a-master-of-at-least-16-bytes",
                "--policy",
                policy,
            ],
            "/nonexistent-gobuildkey-home",
            "not a key",
        ),
    );
    assert_snapshot(
        "error-wrong-key",
        err(
            &[
                "verify",
                "host-a",
                "--master-key-command",
                "echo a-master-of-at-least-16-bytes",
                "--policy",
                policy,
            ],
            "/nonexistent-gobuildkey-home",
            &"0".repeat(64),
        ),
    );
}
