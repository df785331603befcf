//! `gobuildkey mint`, and the master-loading rules every command that reads the master
//! shares.

use std::fs;
use std::os::unix::fs::symlink;

use gobuildkey::fingerprint::Fingerprint;
use predicates::str::contains;

use crate::common::{
    ARM, ARM_KEY, ARM_KEY_MD5, EMPTY_POLICY, MASTER, TestEnv, all_output, assert_no_secret,
    command_leaving_a_process, hung_command, is_gone, pid_in, stdout_of, vectors, write_file,
};

#[test]
fn stdout_is_the_key_and_a_newline() {
    let env = TestEnv::new().with_master();
    let out = env
        .cmd()
        .args(["mint", ARM])
        .assert()
        .success()
        .get_output()
        .clone();
    assert_eq!(out.stdout, format!("{ARM_KEY}\n").as_bytes());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(Fingerprint::of(ARM_KEY.as_bytes()).as_str()),
        "{stderr}"
    );
    assert_no_secret(&stderr, ARM_KEY);
    assert_no_secret(&stderr, MASTER);
}

#[test]
fn md5_is_genbuilderkey_compatible() {
    let env = TestEnv::new().with_master();
    env.cmd()
        .args(["mint", "--alg", "hmac-md5", ARM])
        .assert()
        .success()
        .stdout(format!("{ARM_KEY_MD5}\n"));
}

#[test]
fn explicit_default_algorithm_is_sha256() {
    let env = TestEnv::new().with_master();
    env.cmd()
        .args(["mint", "--alg", "hmac-sha256", ARM])
        .assert()
        .success()
        .stdout(format!("{ARM_KEY}\n"));
}

/// Every vector whose master is long enough for real use, through the command line, with
/// the master file padded by whitespace as genbuilderkey's reader allows.
#[test]
fn known_answers() {
    let env = TestEnv::new();
    env.write_policy(EMPTY_POLICY);
    let mut checked = 0;
    for v in vectors().iter().filter(|v| v.master.len() >= 16) {
        env.write_master(format!("\t{}\n\n", v.master).as_bytes(), 0o600);
        env.cmd()
            .args(["mint", "--alg", &v.alg, &v.principal])
            .assert()
            .success()
            .stdout(format!("{}\n", v.key));
        checked += 1;
    }
    assert_eq!(checked, 120);
}

#[test]
fn non_utf8_principal_is_a_usage_error() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let env = TestEnv::new().with_master();
    env.cmd()
        .arg("mint")
        .arg(OsStr::from_bytes(b"host-\xff"))
        .assert()
        .code(2)
        .stdout("")
        .stderr(contains("invalid principal"));
}

#[test]
fn real_principals_are_accepted() {
    let env = TestEnv::new().with_master();
    for name in [
        "host-linux-ppc64le-power9-osu",
        "host-darwin-amd64-12_0",
        "host-windows11-arm64-azure",
        "host-plan9-386-0intro",
        "user-relui",
        "linux-amd64",
        &"x".repeat(128),
    ] {
        env.cmd().args(["mint", name]).assert().success();
    }
}

#[test]
fn too_open_master_is_refused_with_the_chmod() {
    for mode in [0o644, 0o640, 0o604, 0o620, 0o602, 0o666] {
        let env = TestEnv::new();
        let path = env.write_master(format!("{MASTER}\n").as_bytes(), mode);
        let out = env
            .cmd()
            .args(["mint", ARM])
            .assert()
            .code(77)
            .stdout("")
            .get_output()
            .clone();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.contains(&format!("chmod 600 {}", path.display())),
            "{stderr}"
        );
    }
}

#[test]
fn owner_only_modes_are_accepted() {
    for mode in [0o600, 0o400] {
        let env = TestEnv::new();
        env.write_master(format!("{MASTER}\n").as_bytes(), mode);
        env.write_policy(EMPTY_POLICY);
        env.cmd()
            .args(["mint", ARM])
            .assert()
            .success()
            .stdout(format!("{ARM_KEY}\n"));
    }
}

#[test]
fn empty_short_and_huge_masters_are_refused() {
    let cases: [(&[u8], &str); 4] = [
        (b"", "empty"),
        (b" \n\t\n", "empty"),
        (b"  fifteen bytes!!\n", "15 bytes long; at least 16"),
        (&[b'x'; 5000], "longer than 4096 bytes"),
    ];
    for (content, message) in cases {
        let env = TestEnv::new();
        env.write_master(content, 0o600);
        env.cmd()
            .args(["mint", ARM])
            .assert()
            .code(65)
            .stdout("")
            .stderr(contains(message));
    }
}

#[test]
fn master_must_be_a_regular_file() {
    let env = TestEnv::new();
    fs::create_dir_all(env.master_path()).unwrap();
    env.cmd()
        .args(["mint", ARM])
        .assert()
        .code(65)
        .stdout("")
        .stderr(contains("not a regular file"));
}

#[test]
fn master_behind_a_link_is_read() {
    // Secret managers and Kubernetes mount secrets through links; the file they lead to
    // is what is checked.
    let env = TestEnv::new();
    let real = env.path("real.key");
    write_file(&real, MASTER, 0o600);
    write_file(&env.path("gobuildkey.toml"), EMPTY_POLICY, 0o600);
    symlink(&real, env.path("link.key")).unwrap();
    env.cmd()
        .args(["mint", ARM, "--master-key"])
        .arg(env.path("link.key"))
        .assert()
        .success()
        .stdout(format!("{ARM_KEY}\n"));
}

#[test]
fn master_from_flag_or_environment() {
    let env = TestEnv::new();
    let path = env.path("elsewhere.key");
    write_file(&path, MASTER, 0o600);
    write_file(&env.path("gobuildkey.toml"), EMPTY_POLICY, 0o600);
    env.cmd()
        .args(["mint", ARM, "--master-key"])
        .arg(&path)
        .assert()
        .stdout(format!("{ARM_KEY}\n"));
    env.cmd()
        .env("GOBUILDKEY_MASTER_KEY_FILE", &path)
        .args(["mint", ARM])
        .assert()
        .stdout(format!("{ARM_KEY}\n"));
}

#[test]
fn master_from_a_command() {
    let env = TestEnv::new();
    env.write_policy(EMPTY_POLICY);
    let command = env.master_command();
    env.cmd()
        .args(["mint", ARM, "--master-key-command", &command])
        .assert()
        .success()
        .stdout(format!("{ARM_KEY}\n"));
    env.cmd()
        .env("GOBUILDKEY_MASTER_KEY_COMMAND", &command)
        .args(["mint", ARM])
        .assert()
        .success()
        .stdout(format!("{ARM_KEY}\n"));
}

#[test]
fn a_flag_beats_the_environment() {
    let env = TestEnv::new().with_master();
    env.cmd()
        .env("GOBUILDKEY_MASTER_KEY_FILE", env.path("missing.key"))
        .args(["mint", ARM, "--master-key-command"])
        .arg(env.master_command())
        .assert()
        .success()
        .stdout(format!("{ARM_KEY}\n"));
    env.cmd()
        .env("GOBUILDKEY_MASTER_KEY_COMMAND", "exit 1")
        .args(["mint", ARM, "--master-key"])
        .arg(env.master_path())
        .assert()
        .success()
        .stdout(format!("{ARM_KEY}\n"));
}

/// A master command that never finishes is stopped at `--command-timeout`: exit 75, a
/// message naming the limit and what to do (never the command line), and neither the
/// command nor the process it started in the background is left running.
#[test]
fn a_hung_master_command_is_killed_with_its_group_at_the_timeout() {
    let env = TestEnv::new();
    env.write_policy(EMPTY_POLICY);
    let (pid, background) = (env.path("pid"), env.path("background"));
    let out = env
        .cmd()
        .args([
            "mint",
            ARM,
            "--command-timeout",
            "1s",
            "--master-key-command",
        ])
        .arg(hung_command(&pid, &background))
        .assert()
        .code(75)
        .stdout("")
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("the master key command did not finish within 1s"),
        "{stderr}"
    );
    assert!(stderr.contains("--command-timeout"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(is_gone(pid_in(&pid)), "the command still runs");
    assert!(
        is_gone(pid_in(&background)),
        "its background process still runs"
    );
}

/// The limit can come from the environment; a flag beats it.
#[test]
fn the_command_timeout_from_the_environment() {
    let env = TestEnv::new();
    env.write_policy(EMPTY_POLICY);
    let (pid, background) = (env.path("pid"), env.path("background"));
    env.cmd()
        .env("GOBUILDKEY_COMMAND_TIMEOUT", "1s")
        .args(["mint", ARM, "--master-key-command"])
        .arg(hung_command(&pid, &background))
        .assert()
        .code(75)
        .stderr(contains("did not finish within 1s"));
    assert!(is_gone(pid_in(&pid)) && is_gone(pid_in(&background)));
    env.cmd()
        .env("GOBUILDKEY_COMMAND_TIMEOUT", "1s")
        .args([
            "mint",
            ARM,
            "--command-timeout",
            "2s",
            "--master-key-command",
        ])
        .arg(hung_command(&pid, &background))
        .assert()
        .code(75)
        .stderr(contains("did not finish within 2s"));
    assert!(is_gone(pid_in(&pid)) && is_gone(pid_in(&background)));
    // An unusable value in the environment is not even looked at beside a flag.
    env.cmd()
        .env("GOBUILDKEY_COMMAND_TIMEOUT", "soon")
        .args([
            "mint",
            ARM,
            "--command-timeout",
            "60s",
            "--master-key-command",
        ])
        .arg(env.master_command())
        .assert()
        .success()
        .stdout(format!("{ARM_KEY}\n"));
}

/// A master command that exits but leaves a process holding its standard output (`cmd &`)
/// gives its master at once: the leftover is killed and the output read to its end. The
/// limit is far beyond what this needs, so that a read waiting for the leftover would fail
/// this test by timing out rather than pass it.
#[test]
fn a_process_left_holding_the_master_commands_output_does_not_hang_it() {
    let env = TestEnv::new();
    env.write_policy(EMPTY_POLICY);
    let background = env.path("background");
    env.cmd()
        .args([
            "mint",
            ARM,
            "--command-timeout",
            "60s",
            "--master-key-command",
        ])
        .arg(command_leaving_a_process(&env, &background))
        .assert()
        .success()
        .stdout(format!("{ARM_KEY}\n"));
    assert!(is_gone(pid_in(&background)), "the leftover still runs");
}

/// Lengths of time in each form `--command-timeout` takes. (The refusals of those it does
/// not take are in tests/refusals/mint/command-timeout-*.)
#[test]
fn good_command_timeouts_are_accepted() {
    let env = TestEnv::new();
    env.write_policy(EMPTY_POLICY);
    let command = env.master_command();
    for good in ["500ms", "2m", "1m 30s", "PT10S"] {
        env.cmd()
            .args([
                "mint",
                ARM,
                "--master-key-command",
                &command,
                "--command-timeout",
                good,
            ])
            .assert()
            .success()
            .stdout(format!("{ARM_KEY}\n"));
    }
    // A value read from a file keeps its newline (a ConfigMap, `$(cat file)` in a unit):
    // whitespace at the ends is no control character to refuse.
    for padded in ["10s\n", "\t10s"] {
        env.cmd()
            .args(["mint", ARM, "--master-key-command", &command])
            .env("GOBUILDKEY_COMMAND_TIMEOUT", padded)
            .assert()
            .success()
            .stdout(format!("{ARM_KEY}\n"));
    }
}

#[test]
fn errors_never_show_the_master() {
    let env = TestEnv::new();
    let path = env.write_master(format!("{MASTER}\n").as_bytes(), 0o644);
    let out = env
        .cmd()
        .args(["mint", ARM])
        .assert()
        .code(77)
        .get_output()
        .clone();
    assert_no_secret(&all_output(&out), MASTER);
    let out = env
        .cmd()
        .args(["mint", ARM, "--master-key-command"])
        .arg(format!("{} >&2; exit 3", env.master_command()))
        .assert()
        .code(69)
        .get_output()
        .clone();
    // The command's own stderr is passed through; gobuildkey adds nothing of the master.
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.matches(&MASTER[..8]).count(), 1, "{stderr}");
    drop(path);
}

#[test]
fn a_failed_write_is_an_io_error() {
    let env = TestEnv::new().with_master();
    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = env
        .std_cmd()
        .args(["mint", ARM])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(74), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("No space left"));
}

#[test]
fn mint_records_the_master_in_the_policy() {
    let env = TestEnv::new().with_master();
    env.cmd().args(["mint", ARM]).assert().success();
    let policy = env.path("keys/gobuildkey.toml");
    let text = fs::read_to_string(&policy).unwrap();
    assert!(
        text.contains(&format!(
            "minted_under = \"{}\"",
            Fingerprint::of(MASTER.as_bytes())
        )),
        "{text}"
    );
    assert_eq!(crate::common::mode(&policy), 0o600);
    // Minting again changes nothing.
    let before = crate::common::inode(&policy);
    env.cmd().args(["mint", ARM]).assert().success();
    assert_eq!(crate::common::inode(&policy), before);
}

/// `mint` writes the policy only when it has something new to record (a principal it does
/// not name yet, or another master); minting an already recorded key changes nothing, and
/// verification never writes at all (it takes no lock either).
#[test]
fn mint_writes_the_policy_only_when_it_must_and_verify_never() {
    let env = TestEnv::new().with_master();
    let policy = env.policy_path();
    let log = env.path("keys/gobuildkey-actions.log");
    env.cmd().args(["mint", ARM]).assert().success();
    let recorded = crate::common::inode(&policy);
    assert!(
        fs::read_to_string(&policy)
            .unwrap()
            .contains("minted_under")
    );
    let logged = fs::read_to_string(&log).unwrap();
    assert_eq!(logged.lines().count(), 1, "{logged}");
    for _ in 0..3 {
        env.cmd()
            .args(["mint", ARM])
            .assert()
            .success()
            .stdout(format!("{ARM_KEY}\n"));
    }
    assert_eq!(crate::common::inode(&policy), recorded, "rewritten");
    assert_eq!(fs::read_to_string(&log).unwrap(), logged);
    let lock = env.path("keys/gobuildkey.toml.lock");
    fs::remove_file(&lock).unwrap();
    let names = crate::common::names(&env.path("keys"));
    env.cmd()
        .args(["verify", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .code(0);
    env.cmd()
        .args(["verify", "--batch"])
        .write_stdin(format!("{ARM} {ARM_KEY}\n"))
        .assert()
        .stdout("ok\n");
    assert_eq!(crate::common::inode(&policy), recorded);
    assert_eq!(
        crate::common::names(&env.path("keys")),
        names,
        "no lock file"
    );
}

/// `mint -o FILE` writes the key to a file created 0600 (under umask 000 too), atomically,
/// and never replaces one without `--force`; standard output then carries no key. A key
/// printed into a file others can read gets a warning.
#[test]
fn output_file_is_private_and_never_clobbered() {
    let env = TestEnv::new().with_master();
    let out = env.path("k.key");
    let printed = crate::common::stdout_of(env.cmd().args(["mint", ARM, "-o"]).arg(&out));
    assert!(!printed.contains(ARM_KEY), "{printed}");
    assert!(printed.contains("wrote the hmac-sha256 key"), "{printed}");
    assert_eq!(fs::read_to_string(&out).unwrap(), format!("{ARM_KEY}\n"));
    assert_eq!(crate::common::mode(&out), 0o600);
    fs::write(&out, "keep me\n").unwrap();
    env.cmd()
        .args(["mint", ARM, "-o"])
        .arg(&out)
        .assert()
        .code(73)
        .stderr(contains("--force"));
    assert_eq!(fs::read_to_string(&out).unwrap(), "keep me\n");
    env.cmd()
        .args(["mint", ARM, "--force", "-o"])
        .arg(&out)
        .assert()
        .success();
    assert_eq!(fs::read_to_string(&out).unwrap(), format!("{ARM_KEY}\n"));
    // Never through a link.
    let link = env.path("link.key");
    symlink(env.path("elsewhere"), &link).unwrap();
    env.cmd()
        .args(["mint", ARM, "--force", "-o"])
        .arg(&link)
        .assert()
        .code(73);
    assert!(!env.path("elsewhere").exists());
    // As JSON: the object says where the key went, and holds no key.
    let json: serde_json::Value = serde_json::from_str(&crate::common::stdout_of(
        env.cmd()
            .args(["--json", "mint", ARM, "--force", "-o"])
            .arg(&out),
    ))
    .unwrap();
    assert_eq!(json["key"], serde_json::Value::Null);
    assert_eq!(json["output"], out.display().to_string());
}

#[test]
fn a_key_printed_into_a_file_others_can_read_is_warned_about() {
    let env = TestEnv::new().with_master();
    for (mode, warned) in [(0o644, true), (0o600, false)] {
        let target = env.path(&format!("stdout-{mode:o}"));
        write_file(&target, "", mode);
        let out = env
            .std_cmd()
            .args(["mint", ARM])
            .stdout(fs::OpenOptions::new().append(true).open(&target).unwrap())
            .output()
            .unwrap();
        assert!(out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.contains("others can read"),
            warned,
            "{mode:o}: {stderr}"
        );
        assert_eq!(fs::read_to_string(&target).unwrap(), format!("{ARM_KEY}\n"));
    }
}

/// A machine key is HMAC-SHA256 of the message docs/design.md gives, byte for byte, as
/// OpenSSL computes it from that message written out by hand; it verifies from its machine
/// only, through `verify --machine` and a batch line's third field.
#[test]
fn a_machine_key_is_the_documented_message_and_verifies_from_its_machine_only() {
    let env = TestEnv::new().with_master();
    let key = stdout_of(env.cmd().args(["mint", "--machine", "Builder-1", ARM]));
    let key = key.trim();
    // 00 'm', len(ARM) = 18, ARM, generation 0, len("builder-1") = 9, "builder-1", 0.
    let message = format!(
        r"\000m\000\022{ARM}\000\000\000\000\000\000\000\000\000\011builder-1\000\000\000\000\000\000\000\000"
    );
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            r#"printf "$2" | openssl dgst -sha256 -hmac "$1""#,
            "sh",
        ])
        .args([MASTER, &message])
        .output();
    match out {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8(out.stdout).unwrap();
            assert_eq!(text.trim().rsplit(' ').next().unwrap(), key);
        }
        _ => crate::common::missing_tool("openssl", "openssl", "the machine key's known answer"),
    }
    assert_ne!(key, ARM_KEY);

    let verify = |machine: Option<&str>| {
        let mut cmd = env.cmd();
        cmd.arg("verify");
        if let Some(machine) = machine {
            cmd.args(["--machine", machine]);
        }
        cmd.arg(ARM)
            .write_stdin(key)
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(verify(Some("builder-1")), Some(0));
    assert_eq!(verify(Some("BUILDER-1")), Some(0));
    assert_eq!(verify(Some("builder-2")), Some(1));
    assert_eq!(verify(None), Some(1));
    env.cmd()
        .args(["verify", "--machine", "builder-1", ARM])
        .write_stdin(key)
        .assert()
        .success()
        .stdout(contains("bound to the machine builder-1"));
    let answers = stdout_of(env.cmd().args(["verify", "--batch"]).write_stdin(format!(
        "{ARM} {key} builder-1\n{ARM} {key} builder-2\n{ARM} {key}\n{ARM} {ARM_KEY} builder-2\n"
    )));
    assert_eq!(answers, "ok\ndeny invalid\ndeny invalid\nok\n");

    // The principal rotated or revoked: its machine keys die with it.
    stdout_of(env.cmd().args(["rotate", ARM]));
    env.cmd().args(["end-grace", ARM]).assert().success();
    assert_eq!(verify(Some("builder-1")), Some(1));
    let rotated = stdout_of(env.cmd().args(["mint", "--machine", "builder-1", ARM]));
    env.cmd().args(["revoke", ARM]).assert().success();
    env.cmd()
        .args(["verify", "--machine", "builder-1", ARM])
        .write_stdin(rotated)
        .assert()
        .code(1);
}

/// Every mint of a machine key is logged with its fingerprint — also for a machine the
/// policy already lists, when the policy has nothing new to record — so that `explain` can
/// say whose it is later; a plain key already recorded is not logged again. After `rotate
/// --machine`, `mint --machine` mints at the machine's new generation.
#[test]
fn every_machine_key_mint_is_logged() {
    let env = TestEnv::new().with_master();
    let log = || {
        gobuildkey::policy::actions::ActionLog::beside(&env.policy_path())
            .read()
            .unwrap()
    };
    let mint_machine = || {
        env.cmd()
            .args(["mint", "--machine", "builder-1", ARM])
            .assert()
            .success()
            .get_output()
            .clone()
    };
    stdout_of(env.cmd().args(["mint", ARM]));
    stdout_of(env.cmd().args(["mint", ARM]));
    assert_eq!(log().len(), 1);
    let out = mint_machine();
    let first = crate::common::fingerprint_in(&out.stderr);
    let policy = std::fs::read_to_string(env.policy_path()).unwrap();
    let out = mint_machine();
    // The policy had nothing new to record: unchanged, yet the mint is logged.
    assert_eq!(std::fs::read_to_string(env.policy_path()).unwrap(), policy);
    let actions = log();
    assert_eq!(actions.len(), 3, "{actions:#?}");
    for action in &actions[1..] {
        assert_eq!(action.command, "mint");
        assert_eq!(action.machine.as_deref(), Some("builder-1"));
        assert_eq!(action.key.as_deref(), Some(first.as_str()));
    }
    assert_eq!(crate::common::fingerprint_in(&out.stderr), first);

    let rotated = stdout_of(env.cmd().args(["rotate", "--machine", "builder-1", ARM]));
    let json: serde_json::Value = serde_json::from_str(&stdout_of(env.cmd().args([
        "--json",
        "mint",
        "--machine",
        "builder-1",
        ARM,
    ])))
    .unwrap();
    assert_eq!(json["key"].as_str().unwrap(), rotated.trim());
    assert_eq!(json["machine_generation"], 1);
    assert_eq!(json["generation"], 0);
}
