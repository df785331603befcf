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
}

/// Every man page has ENVIRONMENT, FILES and EXIT STATUS, from the same tables as `--help`:
/// each variable, file and code `--help` lists is on the page.
#[test]
fn man_pages_have_environment_files_and_exit_status() {
    let env = TestEnv::new();
    let help = crate::common::stdout_of(env.cmd().arg("--help"));
    let listed = |heading: &str| -> Vec<String> {
        help.split(&format!("\n{heading}:\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("--help has no {heading}"))
            .split("\n\n")
            .next()
            .unwrap()
            .lines()
            .filter(|line| line.starts_with("  ") && !line.starts_with("      "))
            .map(|line| line.split_whitespace().next().unwrap().to_owned())
            .collect()
    };
    let variables = listed("Environment");
    let files = listed("Files");
    let codes = listed("Exit status");
    assert!(
        variables.contains(&"GOBUILDKEY_POLICY".to_owned()),
        "{variables:?}"
    );
    assert!(
        variables.contains(&"GO_BUILD_KEY_PATH".to_owned()),
        "{variables:?}"
    );
    assert!(
        files.iter().any(|f| f.ends_with("gobuildkey-actions.log")),
        "{files:?}"
    );
    assert!(codes.contains(&"141".to_owned()), "{codes:?}");
    for page in [
        &["man"][..],
        &["man", "verify"],
        &["man", "master", "rotate"],
    ] {
        let roff = crate::common::stdout_of(env.cmd().args(page));
        for section in [".SH ENVIRONMENT", ".SH FILES", ".SH \"EXIT STATUS\""] {
            assert!(roff.contains(section), "{page:?} lacks {section}");
        }
        let roff = roff.replace("\\-", "-");
        for word in variables.iter().chain(&files).chain(&codes) {
            assert!(
                roff.contains(&format!("\\fB{word}\\fR")),
                "{page:?} lacks {word}"
            );
        }
    }
}
