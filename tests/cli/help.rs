//! `--help` and `--version`.

use predicates::str::contains;

use crate::common::{TestEnv, commands};

#[test]
fn help_lists_commands_and_exit_codes() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .arg("--help")
        .assert()
        .code(0)
        .get_output()
        .clone();
    let help = String::from_utf8(out.stdout).unwrap();
    for command in commands().map(|c| c[0]) {
        assert!(
            help.contains(&format!("  {command} ")),
            "--help lacks {command}:\n{help}"
        );
    }
    for needle in ["Exit status:", " 0  ", " 1  ", " 2  ", "65  ", "78  "] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
}

#[test]
fn each_command_has_help_with_examples_and_exit_status() {
    let env = TestEnv::new();
    for command in commands() {
        env.cmd()
            .args(command)
            .arg("--help")
            .assert()
            .code(0)
            .stdout(contains("Example"))
            .stdout(contains("Exit status:"));
    }
}

#[test]
fn no_command_is_a_usage_error() {
    TestEnv::new().cmd().assert().code(2).stdout("");
}

#[test]
fn version() {
    TestEnv::new()
        .cmd()
        .arg("--version")
        .assert()
        .code(0)
        .stdout(contains(env!("CARGO_PKG_VERSION")));
}
