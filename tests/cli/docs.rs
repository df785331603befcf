//! `gobuildkey completions` and `gobuildkey man`: generated from the clap definition.

use predicates::str::contains;

use crate::common::{TestEnv, is_built};

#[test]
fn completions_for_every_shell_know_the_commands() {
    let env = TestEnv::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = env
            .cmd()
            .args(["completions", shell])
            .assert()
            .code(0)
            .get_output()
            .stdout
            .clone();
        let script = String::from_utf8(out).unwrap();
        for command in ["install", "verify", "rotate", "master"] {
            assert!(
                script.contains(command),
                "{shell} completion lacks {command}"
            );
        }
    }
    env.cmd().args(["completions", "tcsh"]).assert().code(2);
}

#[test]
fn man_pages_for_the_tool_and_every_command() {
    let env = TestEnv::new();
    env.cmd()
        .arg("man")
        .assert()
        .code(0)
        .stdout(contains(".TH gobuildkey 1"))
        .stdout(contains("revoke"));
    for command in [
        &["init"][..],
        &["mint"],
        &["verify"],
        &["install"],
        &["check"],
        &["rotate"],
        &["policy"],
        &["master", "rotate"],
        &["serve"],
        &["probe"],
    ]
    .into_iter()
    .filter(|command| is_built(command[0]))
    {
        let name = format!("gobuildkey-{}", command.join("-"));
        env.cmd()
            .arg("man")
            .args(command)
            .assert()
            .code(0)
            .stdout(contains(format!(".TH {name} 1")))
            .stdout(contains(".SH SYNOPSIS"));
    }
    env.cmd()
        .args(["man", "nope"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(contains("no command `gobuildkey nope`"));
}
