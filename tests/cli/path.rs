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

/// Buildlets built since 2019 read the per-host file only: a legacy file alone is reported
/// as not read, and the path is the per-host file, missing.
#[test]
fn a_legacy_file_alone_is_not_read() {
    let env = TestEnv::new();
    let legacy = env.path(".gobuildkey");
    fs::write(&legacy, "x").unwrap();
    let out = stdout_of(env.cmd().args(["path", "--explain", ARM]));
    assert!(
        out.starts_with(&format!("{}\n", env.per_host(ARM).display())),
        "{out}"
    );
    assert!(out.contains("rule: the per-host key file"), "{out}");
    assert!(out.contains("missing:"), "{out}");
    assert!(
        out.contains(&format!(
            "hidden: {} (legacy) exists but is not read by buildlets built since 2019",
            legacy.display()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "`gobuildkey install {ARM} --key-file {}`",
            legacy.display()
        )),
        "{out}"
    );
    // Without --explain: the one line, the per-host file.
    let out = stdout_of(env.cmd().args(["path", ARM]));
    assert_eq!(out, format!("{}\n", env.per_host(ARM).display()));
    // In JSON: the per-host rule, missing, the legacy file among those not read.
    let out = stdout_of(env.cmd().args(["--json", "path", ARM]));
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["rule"], "per-host");
    assert_eq!(value["exists"], false);
    assert_eq!(value["shadowed"][0]["rule"], "legacy");
    assert!(
        value["notes"][0]
            .as_str()
            .unwrap()
            .contains("not read by buildlets built since 2019"),
        "{value}"
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

/// A missing `GO_BUILD_KEY_PATH` is still the file the agent reads, whatever else exists.
#[test]
fn a_missing_go_build_key_path_is_still_the_path() {
    let env = TestEnv::new();
    fs::write(env.path(".gobuildkey"), "x").unwrap();
    fs::write(env.per_host(ARM), "x").unwrap();
    let missing = env.path("missing");
    let out = stdout_of(
        env.cmd()
            .env("GO_BUILD_KEY_PATH", &missing)
            .args(["path", ARM]),
    );
    assert_eq!(out, format!("{}\n", missing.display()));
    let out =
        stdout_of(
            env.cmd()
                .env("GO_BUILD_KEY_PATH", &missing)
                .args(["path", "--explain", ARM]),
        );
    assert!(out.contains("missing:"), "{out}");
    assert!(
        out.contains("GO_BUILD_KEY_PATH names it): ")
            && out.contains(", or unset GO_BUILD_KEY_PATH"),
        "{out}"
    );
}

/// `HOME=<dir>/link/..` with `link` a link to a folder elsewhere: Go's filepath.Join
/// cleans it lexically to `<dir>`, whatever the link points to.
#[test]
fn a_link_then_dotdot_in_home_is_cleaned_lexically() {
    let env = TestEnv::new();
    fs::create_dir_all(env.path("elsewhere/deep")).unwrap();
    std::os::unix::fs::symlink(env.path("elsewhere/deep"), env.path("link")).unwrap();
    // Where the kernel would take `link/..`: not the agent's file.
    fs::write(env.path(&format!("elsewhere/.gobuildkey-{ARM}")), "x").unwrap();
    for home in ["link/..", "link/../", "link/..//./"] {
        let out = stdout_of(
            env.cmd()
                .env("HOME", env.path(home))
                .args(["path", "--explain", ARM]),
        );
        assert!(
            out.starts_with(&format!("{}\n", env.per_host(ARM).display())),
            "HOME={home}: {out}"
        );
        assert!(out.contains("missing:"), "HOME={home}: {out}");
    }
}

/// `--coordinator`: a stock buildlet reads no key file unless the address starts with
/// farmer.golang.org; otherwise it sends the dev key, and --explain says so.
#[test]
fn explain_says_when_the_coordinator_means_the_dev_key() {
    let env = TestEnv::new();
    for addr in [
        "localhost:8119",
        "farm.example:443",
        "https://farmer.golang.org",
        "Farmer.golang.org:443",
    ] {
        env.cmd()
            .args(["path", "--explain", "--coordinator", addr, ARM])
            .assert()
            .success()
            .stdout(contains(format!(
                "note: a stock buildlet started with -coordinator \"{addr}\" reads no key file at all"
            )))
            .stdout(contains("sends the dev key"))
            .stdout(contains("\"gophers rule\""));
        let out = stdout_of(
            env.cmd()
                .args(["--json", "path", "--coordinator", addr, ARM]),
        );
        assert!(out.contains("sends the dev key"), "{out}");
    }
    // A control character in the address is shown escaped.
    env.cmd()
        .args(["path", "--explain", "--coordinator", "farm\x1b[2J", ARM])
        .assert()
        .success()
        .stdout(contains("\"farm\\u{1b}[2J\""))
        .stdout(contains("\x1b").not());
}

#[test]
fn a_farmer_golang_org_coordinator_gets_no_dev_key_note() {
    let env = TestEnv::new();
    for addr in [
        "farmer.golang.org",
        "farmer.golang.org:443",
        "farmer.golang.org.farm.example:443",
    ] {
        env.cmd()
            .args(["path", "--explain", "--coordinator", addr, ARM])
            .assert()
            .success()
            .stdout(contains("dev key").not())
            .stdout(contains("coordinator:").not());
    }
}

/// Without `--coordinator`, --explain says that the buildlet's default address means no
/// key file is read; the one-line output is unchanged.
#[test]
fn explain_without_a_coordinator_names_the_condition() {
    let env = TestEnv::new();
    env.cmd()
        .args(["path", "--explain", ARM])
        .assert()
        .success()
        .stdout(contains(
            "coordinator: a stock buildlet reads this file only when its -coordinator starts \
             with farmer.golang.org; its default (localhost:8119) does not",
        ));
    assert_eq!(
        stdout_of(env.cmd().args(["path", ARM])),
        format!("{}\n", env.per_host(ARM).display())
    );
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
