//! `gobuildkey path`.

use std::fs;

use predicates::prelude::*;
use predicates::str::contains;

use crate::common::{ARM, TestEnv, stdout_of};

#[test]
fn default_is_the_per_host_file() {
    let env = TestEnv::new();
    let out = stdout_of(env.cmd().args(["path", ARM]));
    assert_eq!(
        out,
        format!("{}\n", env.path(&format!(".gobuildkey-{ARM}")).display())
    );
}

#[test]
fn explain_says_missing_and_the_rule() {
    let env = TestEnv::new();
    let out = stdout_of(env.cmd().args(["path", "--explain", ARM]));
    assert!(out.contains("rule: the per-host key file"), "{out}");
    assert!(out.contains("missing:"), "{out}");
    assert!(out.contains(&format!("gobuildkey install {ARM}")), "{out}");
}

#[test]
fn go_build_key_path_wins_and_hides_both() {
    let env = TestEnv::new();
    let target = env.path("k/gobuildkey");
    fs::create_dir(env.path("k")).unwrap();
    fs::write(&target, "x").unwrap();
    fs::write(env.path(&format!(".gobuildkey-{ARM}")), "x").unwrap();
    fs::write(env.path(".gobuildkey"), "x").unwrap();
    let out =
        stdout_of(
            env.cmd()
                .env("GO_BUILD_KEY_PATH", &target)
                .args(["path", "--explain", ARM]),
        );
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some(target.display().to_string().as_str()));
    assert!(out.contains("rule: GO_BUILD_KEY_PATH names it"), "{out}");
    assert!(
        out.contains(&format!(
            "hidden: {} (per-host)",
            env.path(&format!(".gobuildkey-{ARM}")).display()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "hidden: {} (legacy)",
            env.path(".gobuildkey").display()
        )),
        "{out}"
    );
}

#[test]
fn an_empty_go_build_key_path_is_ignored() {
    let env = TestEnv::new();
    let out = stdout_of(env.cmd().env("GO_BUILD_KEY_PATH", "").args(["path", ARM]));
    assert_eq!(
        out,
        format!("{}\n", env.path(&format!(".gobuildkey-{ARM}")).display())
    );
}

#[test]
fn legacy_file_alone_is_read_by_older_buildlets() {
    let env = TestEnv::new();
    fs::write(env.path(".gobuildkey"), "x").unwrap();
    let out = stdout_of(env.cmd().args(["path", "--explain", ARM]));
    assert!(
        out.starts_with(&format!("{}\n", env.path(".gobuildkey").display())),
        "{out}"
    );
    assert!(out.contains("older buildlets only"), "{out}");
    assert!(
        out.contains("current buildlets (-reverse-type) read"),
        "{out}"
    );
}

#[test]
fn per_host_file_hides_the_legacy_file() {
    let env = TestEnv::new();
    fs::write(env.path(".gobuildkey"), "x").unwrap();
    fs::write(env.path(&format!(".gobuildkey-{ARM}")), "x").unwrap();
    let out = stdout_of(env.cmd().args(["path", "--explain", ARM]));
    assert!(out.starts_with(&format!(
        "{}\n",
        env.path(&format!(".gobuildkey-{ARM}")).display()
    )));
    assert!(
        out.contains(&format!(
            "hidden: {} (legacy)",
            env.path(".gobuildkey").display()
        )),
        "{out}"
    );
}

#[test]
fn a_missing_go_build_key_path_falls_back_to_legacy_for_older_buildlets() {
    let env = TestEnv::new();
    fs::write(env.path(".gobuildkey"), "x").unwrap();
    let out = stdout_of(
        env.cmd()
            .env("GO_BUILD_KEY_PATH", env.path("missing"))
            .args(["path", ARM]),
    );
    assert_eq!(out, format!("{}\n", env.path(".gobuildkey").display()));
}

#[test]
fn home_unset_or_empty_follows_the_agent() {
    let env = TestEnv::new();
    let fallback = if rustix::process::geteuid().is_root() {
        "/root"
    } else {
        ""
    };
    for home in [None, Some("")] {
        let mut cmd = env.cmd();
        match home {
            Some(value) => cmd.env("HOME", value),
            None => cmd.env_remove("HOME"),
        };
        let out = stdout_of(cmd.args(["path", ARM]));
        assert_eq!(out, format!("{fallback}/.gobuildkey-{ARM}\n"));
    }
}

#[test]
fn a_relative_home_is_noted() {
    let env = TestEnv::new();
    env.cmd()
        .env("HOME", "rel")
        .args(["path", "--explain", ARM])
        .assert()
        .success()
        .stdout(contains(format!("rel/.gobuildkey-{ARM}\n")))
        .stdout(contains("HOME (rel) is relative"));
}

#[test]
fn delete_after_read_is_noted_for_go_true_values_only() {
    let env = TestEnv::new();
    for value in ["1", "t", "T", "TRUE", "true", "True"] {
        env.cmd()
            .env("GO_BUILD_KEY_DELETE_AFTER_READ", value)
            .args(["path", "--explain", ARM])
            .assert()
            .success()
            .stdout(contains("GO_BUILD_KEY_DELETE_AFTER_READ is set"));
    }
    for value in ["0", "false", "yes", "on", ""] {
        env.cmd()
            .env("GO_BUILD_KEY_DELETE_AFTER_READ", value)
            .args(["path", "--explain", ARM])
            .assert()
            .success()
            .stdout(contains("DELETE_AFTER_READ").not());
    }
}

#[test]
fn bad_principal_is_a_usage_error() {
    TestEnv::new()
        .cmd()
        .args(["path", "../etc"])
        .assert()
        .code(2)
        .stdout("");
}
