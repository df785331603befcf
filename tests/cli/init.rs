//! `gobuildkey init`.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

use gobuildkey::fingerprint::Fingerprint;

use crate::common::{TestEnv, mode};

#[test]
fn creates_a_private_master_in_the_default_place() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .arg("init")
        .assert()
        .success()
        .get_output()
        .clone();
    let path = env.master_path();
    let content = fs::read_to_string(&path).unwrap();
    let secret = content.strip_suffix('\n').unwrap();
    assert_eq!(secret.len(), 64);
    assert!(
        secret
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    // umask 000 in the test environment: the modes come from gobuildkey, not the umask.
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(stdout.contains(&path.display().to_string()), "{stdout}");
    let fingerprint = Fingerprint::of(secret.as_bytes());
    assert!(stdout.contains(fingerprint.as_str()), "{stdout}");
    crate::common::assert_no_secret(&crate::common::all_output(&out), secret);
}

#[test]
fn two_masters_differ() {
    let (a, b) = (TestEnv::new(), TestEnv::new());
    a.cmd().arg("init").assert().success();
    b.cmd().arg("init").assert().success();
    assert_ne!(
        fs::read(a.master_path()).unwrap(),
        fs::read(b.master_path()).unwrap()
    );
}

#[test]
fn refuses_to_replace_without_force() {
    let env = TestEnv::new();
    let path = env.write_master(b"an existing master of 32 bytes!!\n", 0o600);
    env.cmd()
        .arg("init")
        .assert()
        .code(73)
        .stdout("")
        .stderr(predicates::str::contains(
            "already exists: use --force to replace it",
        ));
    assert_eq!(
        fs::read(&path).unwrap(),
        b"an existing master of 32 bytes!!\n"
    );
    assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
}

#[test]
fn force_replaces_and_makes_private() {
    let env = TestEnv::new();
    let path = env.write_master(b"an existing master of 32 bytes!!\n", 0o644);
    env.cmd().args(["init", "--force"]).assert().success();
    let content = fs::read_to_string(&path).unwrap();
    assert_eq!(content.len(), 65);
    assert_eq!(mode(&path), 0o600);
    // The old master is moved aside, not destroyed; no temporary file is left behind.
    let names = crate::common::names(path.parent().unwrap());
    let replaced: Vec<_> = names
        .iter()
        .filter(|n| n.starts_with("gobuilder-master.key.replaced-"))
        .collect();
    assert_eq!(replaced.len(), 1, "{names:?}");
    let kept = path.with_file_name(replaced[0]);
    assert_eq!(
        fs::read(&kept).unwrap(),
        b"an existing master of 32 bytes!!\n"
    );
    assert_eq!(mode(&kept), 0o600);
    assert_eq!(
        names.len(),
        5,
        "master, replaced, policy, its lock, action log: {names:?}"
    );
}

#[test]
fn never_writes_through_a_link_even_with_force() {
    let env = TestEnv::new();
    let victim = env.path("victim");
    fs::write(&victim, b"do not touch").unwrap();
    fs::create_dir_all(env.path("keys")).unwrap();
    symlink(&victim, env.master_path()).unwrap();
    for args in [&["init"][..], &["init", "--force"][..]] {
        env.cmd()
            .args(args)
            .assert()
            .code(73)
            .stderr(predicates::str::contains("symbolic link"));
    }
    let dangling = env.path("dangling.key");
    symlink(env.path("nowhere"), &dangling).unwrap();
    env.cmd()
        .args(["init", "--force", "--master-key"])
        .arg(&dangling)
        .assert()
        .code(73);
    assert_eq!(fs::read(&victim).unwrap(), b"do not touch");
    assert!(!env.path("nowhere").exists());
}

#[test]
fn refuses_a_folder_at_the_target() {
    let env = TestEnv::new();
    fs::create_dir_all(env.master_path()).unwrap();
    env.cmd()
        .args(["init", "--force"])
        .assert()
        .code(73)
        .stderr(predicates::str::contains("not a regular file"));
}

#[test]
fn writes_where_told_by_flag_or_environment() {
    let env = TestEnv::new();
    let by_flag = env.path("a/b/flag.key");
    env.cmd()
        .args(["init", "--master-key"])
        .arg(&by_flag)
        .assert()
        .success();
    assert_eq!(mode(&by_flag), 0o600);
    assert_eq!(mode(&env.path("a")), 0o700);
    assert_eq!(mode(&env.path("a/b")), 0o700);

    let by_env = env.path("env.key");
    env.cmd()
        .env("GOBUILDKEY_MASTER_KEY_FILE", &by_env)
        .arg("init")
        .assert()
        .success();
    assert_eq!(mode(&by_env), 0o600);
    assert!(!env.master_path().exists());
}

#[test]
fn leaves_existing_folders_alone() {
    let env = TestEnv::new();
    let dir = env.path("shared");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    env.cmd()
        .args(["init", "--master-key"])
        .arg(dir.join("master.key"))
        .assert()
        .success();
    assert_eq!(mode(&dir), 0o755);
}

#[test]
fn no_home_is_a_configuration_error() {
    let env = TestEnv::new();
    for home in [None, Some(""), Some("relative/home")] {
        let mut cmd = env.cmd();
        match home {
            None => cmd.env_remove("HOME"),
            Some(value) => cmd.env("HOME", value),
        };
        cmd.arg("init")
            .assert()
            .code(78)
            .stdout("")
            .stderr(predicates::str::contains("set HOME or pass --master-key"));
    }
    assert!(!env.path("relative").exists());
}

#[test]
fn the_new_master_mints_keys_that_verify() {
    let env = TestEnv::new();
    env.cmd().arg("init").assert().success();
    let key = env
        .cmd()
        .args(["mint", "host-linux-arm-aws"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    env.cmd()
        .args(["verify", "host-linux-arm-aws"])
        .write_stdin(key)
        .assert()
        .success();
}

/// A farm whose policy vanished has an action log: `init` (with `--force` too) will not
/// make an empty policy beside a new master — bringing the old master back later (from
/// FILE.replaced-…) would then make every key it revoked verify again.
#[test]
fn init_refuses_to_replace_a_lost_policy_with_an_empty_one() {
    let env = TestEnv::new();
    env.cmd().arg("init").assert().success();
    env.cmd()
        .args(["revoke", "--allow-unknown", "host-x"])
        .assert()
        .success();
    fs::remove_file(env.path("keys/gobuildkey.toml")).unwrap();
    let master = fs::read(env.master_path()).unwrap();
    env.cmd()
        .args(["init", "--force"])
        .assert()
        .code(73)
        .stderr(predicates::str::contains("policy init --from-log"));
    assert_eq!(
        fs::read(env.master_path()).unwrap(),
        master,
        "nothing changed"
    );
    assert!(!env.path("keys/gobuildkey.toml").exists());
}
