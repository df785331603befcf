//! `gobuildkey install`.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

use predicates::prelude::*;
use predicates::str::contains;

use crate::common::{
    ARM, ARM_KEY, ARM_KEY_MD5, NOBODY, OTHER_KEY, TestEnv, all_output, assert_no_secret, inode,
    mode, names, write_file,
};

fn per_host(env: &TestEnv) -> std::path::PathBuf {
    env.per_host(ARM)
}

#[test]
fn installs_from_stdin_as_a_private_file() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args(["install", ARM])
        .write_stdin(format!("  {ARM_KEY}\r\n"))
        .assert()
        .success()
        .stdout(contains(per_host(&env).display().to_string()))
        .get_output()
        .clone();
    assert_eq!(
        fs::read_to_string(per_host(&env)).unwrap(),
        format!("{ARM_KEY}\n")
    );
    assert_eq!(mode(&per_host(&env)), 0o600);
    assert_no_secret(&all_output(&out), ARM_KEY);
    // Nothing but the key file: no temporary file left behind.
    assert_eq!(names(env.home.path()), [format!(".gobuildkey-{ARM}")]);
}

#[test]
fn installs_from_a_key_file_and_md5_keys() {
    let env = TestEnv::new();
    let file = env.path("k");
    fs::write(&file, ARM_KEY_MD5).unwrap();
    env.cmd()
        .args(["install", ARM, "--key-file"])
        .arg(&file)
        .assert()
        .success();
    assert_eq!(
        fs::read_to_string(per_host(&env)).unwrap(),
        format!("{ARM_KEY_MD5}\n")
    );
}

#[test]
fn the_same_key_again_leaves_the_file_alone() {
    let env = TestEnv::new();
    env.cmd()
        .args(["install", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .success();
    let before = inode(&per_host(&env));
    env.cmd()
        .args(["install", ARM])
        .write_stdin(format!("{ARM_KEY}\n"))
        .assert()
        .success()
        .stdout(contains("already holds this key"));
    assert_eq!(inode(&per_host(&env)), before);
}

#[test]
fn the_same_key_in_an_open_file_is_left_but_flagged() {
    let env = TestEnv::new();
    write_file(&per_host(&env), format!("{ARM_KEY}\n"), 0o644);
    env.cmd()
        .args(["install", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .success()
        .stderr(contains("chmod 600"));
}

#[test]
fn a_different_key_needs_force() {
    let env = TestEnv::new();
    write_file(&per_host(&env), format!("{OTHER_KEY}\n"), 0o644);
    env.cmd()
        .args(["install", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .code(73)
        .stdout("")
        .stderr(contains("use --force to replace it"));
    assert_eq!(
        fs::read_to_string(per_host(&env)).unwrap(),
        format!("{OTHER_KEY}\n")
    );

    env.cmd()
        .args(["install", "--force", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .success();
    assert_eq!(
        fs::read_to_string(per_host(&env)).unwrap(),
        format!("{ARM_KEY}\n")
    );
    assert_eq!(mode(&per_host(&env)), 0o600);
    assert_eq!(names(env.home.path()), [format!(".gobuildkey-{ARM}")]);
}

#[test]
fn links_at_the_target_are_refused_even_with_force() {
    let env = TestEnv::new();
    let victim = env.path("victim");
    fs::write(&victim, format!("{ARM_KEY}\n")).unwrap();
    symlink(&victim, per_host(&env)).unwrap();
    for args in [&["install", ARM][..], &["install", "--force", ARM][..]] {
        env.cmd()
            .args(args)
            .write_stdin(ARM_KEY)
            .assert()
            .code(73)
            .stderr(contains("symbolic link"));
    }
    fs::remove_file(per_host(&env)).unwrap();
    symlink(env.path("nowhere"), per_host(&env)).unwrap();
    env.cmd()
        .args(["install", "--force", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .code(73)
        .stderr(contains("symbolic link"));
    assert!(!env.path("nowhere").exists());
    assert_eq!(fs::read_to_string(&victim).unwrap(), format!("{ARM_KEY}\n"));
}

#[test]
fn a_folder_at_the_target_is_refused() {
    let env = TestEnv::new();
    fs::create_dir(per_host(&env)).unwrap();
    env.cmd()
        .args(["install", "--force", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .code(73)
        .stderr(contains("not a regular file"));
}

#[test]
fn go_build_key_path_is_the_target_and_its_folders_are_made() {
    let env = TestEnv::new();
    let target = env.path("buildkey/sub/gobuildkey");
    env.cmd()
        .env("GO_BUILD_KEY_PATH", &target)
        .args(["install", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .success()
        .stdout(contains(target.display().to_string()));
    assert_eq!(fs::read_to_string(&target).unwrap(), format!("{ARM_KEY}\n"));
    assert_eq!(mode(&target), 0o600);
    assert_eq!(mode(&env.path("buildkey")), 0o700);
    assert_eq!(mode(&env.path("buildkey/sub")), 0o700);
    assert!(!per_host(&env).exists());
}

#[test]
fn an_empty_go_build_key_path_is_ignored() {
    let env = TestEnv::new();
    env.cmd()
        .env("GO_BUILD_KEY_PATH", "")
        .args(["install", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .success();
    assert!(per_host(&env).exists());
}

#[test]
fn legacy_writes_the_home_file_and_warns_when_hidden() {
    let env = TestEnv::new();
    env.cmd()
        .args(["install", "--legacy", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .success()
        .stderr(contains(format!(
            "note: {} is for buildlets built before 2019",
            env.path(".gobuildkey").display()
        )))
        .stderr(contains(format!(
            "buildlets built since 2019 do not read it: they read {}",
            per_host(&env).display()
        )))
        .stderr(contains("warning:").not());
    assert_eq!(
        fs::read_to_string(env.path(".gobuildkey")).unwrap(),
        format!("{ARM_KEY}\n")
    );
    assert_eq!(mode(&env.path(".gobuildkey")), 0o600);

    // With a per-host file present, no buildlet reads the legacy file: say so.
    fs::write(per_host(&env), format!("{OTHER_KEY}\n")).unwrap();
    env.cmd()
        .args(["install", "--legacy", "--force", ARM])
        .write_stdin(ARM_KEY_MD5)
        .assert()
        .success()
        .stderr(contains(format!(
            "warning: {} exists, so no buildlet reads {}",
            per_host(&env).display(),
            env.path(".gobuildkey").display()
        )));
}

/// Written where the buildlet reads it, and said so, whether written or already there.
#[test]
fn delete_after_read_is_mentioned() {
    let env = TestEnv::new();
    for _ in 0..2 {
        env.cmd()
            .env("GO_BUILD_KEY_DELETE_AFTER_READ", "true")
            .args(["install", ARM])
            .write_stdin(ARM_KEY)
            .assert()
            .success()
            .stderr(contains(
                "GO_BUILD_KEY_DELETE_AFTER_READ is set: the agent deletes the key file after reading it",
            ));
    }
    // Not for a value Go's strconv.ParseBool does not read as true.
    env.cmd()
        .env("GO_BUILD_KEY_DELETE_AFTER_READ", "yes")
        .args(["install", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .success()
        .stderr(contains("DELETE_AFTER_READ").not());
}

/// `HOME=<dir>/link/..`, `link` a link to a folder elsewhere: Go's filepath.Join cleans it
/// lexically, so the buildlet reads `<dir>/.gobuildkey-*`; that is where the key goes, not
/// beside the link's target.
#[test]
fn a_link_then_dotdot_in_home_is_cleaned_as_go_does() {
    let env = TestEnv::new();
    fs::create_dir_all(env.path("elsewhere/deep")).unwrap();
    symlink(env.path("elsewhere/deep"), env.path("link")).unwrap();
    env.cmd()
        .env("HOME", env.path("link/.."))
        .args(["install", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .success()
        .stdout(contains(format!("at {} ", per_host(&env).display())));
    assert_eq!(
        fs::read_to_string(per_host(&env)).unwrap(),
        format!("{ARM_KEY}\n")
    );
    assert_eq!(names(&env.path("elsewhere")), ["deep"]);
    // And the check, under the same HOME, finds it there.
    env.cmd()
        .env("HOME", env.path("link/.."))
        .args(["check", ARM])
        .assert()
        .code(0)
        .stdout(contains(format!("ok: {}\n", per_host(&env).display())));
}

#[test]
fn a_read_only_folder_is_an_error_and_changes_nothing() {
    let env = TestEnv::new();
    let dir = env.path("ro");
    fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o500)).unwrap();
    env.unprivileged_cmd()
        .env("GO_BUILD_KEY_PATH", dir.join("gobuildkey"))
        .args(["install", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .code(77)
        .stdout("")
        .stderr(contains(format!(
            "cannot write {}: permission denied",
            dir.join("gobuildkey").display()
        )));
    assert!(names(&dir).is_empty());
}

#[test]
fn an_empty_home_means_the_root_folder_for_others_than_root() {
    // The agent's rule: HOME empty or unset -> "/" (or "/root" for root). An unprivileged
    // user cannot write there, and nothing is written anywhere else.
    let env = TestEnv::new();
    for home in [Some(""), None] {
        let mut cmd = env.unprivileged_cmd();
        match home {
            Some(value) => cmd.env("HOME", value),
            None => cmd.env_remove("HOME"),
        };
        cmd.args(["install", ARM])
            .write_stdin(ARM_KEY)
            .assert()
            .code(77)
            .stderr(contains(format!("/.gobuildkey-{ARM}")));
    }
    assert!(names(env.home.path()).is_empty());
}

#[test]
fn a_hard_link_at_the_target_is_replaced_not_written_through() {
    let env = TestEnv::new();
    let elsewhere = env.path("elsewhere");
    fs::write(&elsewhere, format!("{OTHER_KEY}\n")).unwrap();
    fs::hard_link(&elsewhere, per_host(&env)).unwrap();
    env.cmd()
        .args(["install", "--force", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .success();
    assert_eq!(
        fs::read_to_string(per_host(&env)).unwrap(),
        format!("{ARM_KEY}\n")
    );
    // The other name still holds the old content: the write went to a new file.
    assert_eq!(
        fs::read_to_string(&elsewhere).unwrap(),
        format!("{OTHER_KEY}\n")
    );
}

#[test]
fn a_fifo_at_the_target_is_refused_without_opening_it() {
    let env = TestEnv::new();
    let status = std::process::Command::new("mkfifo")
        .arg(per_host(&env))
        .status()
        .unwrap();
    assert!(status.success());
    env.cmd()
        .args(["install", "--force", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .code(73)
        .stderr(contains("not a regular file"));
}

/// `install --user NAME` (root only) writes as NAME, into what NAME's buildlet reads: the
/// file is NAME's, a folder NAME cannot write refuses it (root alone could), and the home
/// folder used is said.
#[test]
fn install_for_another_user_writes_as_that_user() {
    let env = TestEnv::new();
    // Not root: refused.
    env.unprivileged_cmd()
        .args(["install", "--user", "nobody", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .code(77)
        .stderr(contains("only root"));
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to install for another user");
        return;
    }
    let as_root = |target: &std::path::Path| {
        let mut cmd = std::process::Command::new(crate::common::unprivileged_binary());
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", env.home.path())
            .env("GO_BUILD_KEY_PATH", target)
            .args(["install", "--user", "nobody", ARM]);
        assert_cmd::Command::from_std(cmd)
    };
    // A folder of nobody's: the key file is nobody's, 0600.
    let theirs = env.path("theirs");
    fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    let target = theirs.join("key");
    as_root(&target)
        .write_stdin(ARM_KEY)
        .assert()
        .success()
        .stderr(contains(
            "installing as nobody (uid 65534), with HOME=/nonexistent",
        ))
        .stderr(contains("is passed on, so the key goes there"));
    let meta = fs::metadata(&target).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 65534);
    assert_eq!(mode(&target), 0o600);
    assert_eq!(fs::read_to_string(&target).unwrap(), format!("{ARM_KEY}\n"));
    // A folder only root may write: refused, so the write really was nobody's.
    let roots = env.path("roots");
    fs::create_dir(&roots).unwrap();
    as_root(&roots.join("key"))
        .write_stdin(ARM_KEY)
        .assert()
        .code(77);
    assert!(!roots.join("key").exists());
    // No such user.
    env.cmd()
        .args(["install", "--user", "no-such-user-here", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .code(2);
}
