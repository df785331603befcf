//! At a terminal, `verify` and `install` ask for the key without echoing it (run under a
//! pseudo-terminal with rexpect); with a pipe, nothing is asked.

use std::fs;

use crate::common::{ARM, ARM_KEY, TestEnv};

fn at_terminal(env: &TestEnv, args: &[&str], key: &str) -> (String, String) {
    let mut cmd = env.std_cmd();
    cmd.args(args);
    let mut session = rexpect::session::spawn_command(cmd, Some(30_000)).unwrap();
    let before = session.exp_string("build key (not shown): ").unwrap();
    session.send_line(key).unwrap();
    let after = session.exp_eof().unwrap();
    (before, after)
}

#[test]
fn install_prompts_without_echo() {
    let env = TestEnv::new();
    let (before, after) = at_terminal(&env, &["install", ARM], ARM_KEY);
    assert!(
        after.contains("installed the key of host-linux-arm-aws"),
        "{after}"
    );
    assert!(
        !before.contains(&ARM_KEY[..8]) && !after.contains(&ARM_KEY[..8]),
        "echoed: {after}"
    );
    assert_eq!(
        fs::read_to_string(env.path(&format!(".gobuildkey-{ARM}"))).unwrap(),
        format!("{ARM_KEY}\n")
    );
}

#[test]
fn verify_prompts_without_echo() {
    let env = TestEnv::new().with_master();
    let (_, after) = at_terminal(&env, &["verify", ARM], ARM_KEY);
    assert!(
        after.contains("valid build key for host-linux-arm-aws"),
        "{after}"
    );
    assert!(!after.contains(&ARM_KEY[..8]), "echoed: {after}");
    let (_, after) = at_terminal(&env, &["verify", ARM], "wrong");
    assert!(after.contains("invalid build key"), "{after}");
}

#[test]
fn no_prompt_from_a_pipe() {
    let env = TestEnv::new().with_master();
    env.cmd()
        .args(["verify", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .code(0)
        .stderr("");
}

#[test]
fn colour_only_at_a_terminal_and_never_with_no_color() {
    let env = TestEnv::new();
    let run = |no_color: bool| {
        let mut cmd = env.std_cmd();
        cmd.env("TERM", "xterm-256color").args(["mint", "Bad/x"]);
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let mut session = rexpect::session::spawn_command(cmd, Some(30_000)).unwrap();
        session.exp_eof().unwrap()
    };
    assert!(
        run(false).contains('\u{1b}'),
        "clap colours errors at a terminal"
    );
    assert!(!run(true).contains('\u{1b}'), "NO_COLOR turns colour off");
    // And never through a pipe.
    let out = env.cmd().args(["mint", "Bad/x"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains('\u{1b}'));
}
