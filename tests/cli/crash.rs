//! Crash safety: `install`, `init`, `rotate` and `revoke` killed with SIGKILL at random
//! moments, many times each; after every kill each file they write is a whole old or whole
//! new version with mode 0600, and after one more run no temporary file remains.

use std::fs;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use gobuildkey::policy::Policy;

use crate::common::{ARM, ARM_KEY, OTHER_KEY, TestEnv, mode, names};

const ROUNDS: usize = 200;

/// Runs `args` `ROUNDS` times, each killed after a random delay unless it finished, and
/// calls `check` after each round. Returns (killed, finished).
fn kill_loop(env: &TestEnv, args: &[&str], check: impl FnMut(usize)) -> (usize, usize) {
    kill_loop_with_input(env, args, ROUNDS, |_| "", check)
}

/// [`kill_loop`] for `rounds` rounds, with `input(round)` on the command's standard input.
fn kill_loop_with_input(
    env: &TestEnv,
    args: &[&str],
    rounds: usize,
    input: impl Fn(usize) -> &'static str,
    mut check: impl FnMut(usize),
) -> (usize, usize) {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d ^ u64::from(std::process::id());
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut killed, mut finished) = (0, 0);
    for round in 0..rounds {
        let mut child = env
            .std_cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // The child may already be dead when the input is written: that is part of the test.
        let _ = stdin.write_all(input(round).as_bytes());
        drop(stdin);
        std::thread::sleep(Duration::from_micros(next() % 4000));
        match child.try_wait().unwrap() {
            Some(_) => finished += 1,
            None => {
                child.kill().unwrap();
                killed += 1;
            }
        }
        child.wait().unwrap();
        check(round);
    }
    (killed, finished)
}

fn temps(dir: &std::path::Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with(".gobuildkey.tmp-"))
        .collect()
}

/// `install --force` replacing a key, 300 times: the key file holds a whole old or a whole
/// new key, mode 0600, and at most one temporary file is left (a kill between creating it
/// and renaming it), which the next write removes.
#[test]
fn install_force_always_leaves_a_whole_key() {
    let env = TestEnv::new();
    let keys = [ARM_KEY, OTHER_KEY];
    let per_host = env.per_host(ARM);
    env.cmd()
        .args(["install", ARM])
        .write_stdin(keys[0])
        .assert()
        .success();
    let mut mid_write = 0;
    let (killed, finished) = kill_loop_with_input(
        &env,
        &["install", "--force", ARM],
        300,
        |round| keys[(round + 1) % 2],
        |round| {
            let content = fs::read_to_string(&per_host).unwrap();
            assert!(
                keys.iter().any(|k| content == format!("{k}\n")),
                "round {round}: torn key file {content:?}"
            );
            assert_eq!(mode(&per_host), 0o600, "round {round}");
            let temps = temps(env.home.path()).len();
            assert!(temps <= 1, "round {round}: {temps} temporary files");
            mid_write += temps;
        },
    );
    // One more write after the last kill (a third key, so that it does write): nothing is
    // left behind.
    env.cmd()
        .args(["install", "--force", ARM])
        .write_stdin("f".repeat(64))
        .assert()
        .success();
    assert_eq!(names(env.home.path()), [format!(".gobuildkey-{ARM}")]);
    eprintln!(
        "sigkill test: {killed} killed ({mid_write} rounds left a temporary file), {finished} finished"
    );
    assert!(killed > 0, "no run was killed: the test tested nothing");
}

#[test]
fn init_force_always_leaves_a_whole_master() {
    let env = TestEnv::new();
    env.cmd().arg("init").assert().success();
    let master = env.master_path();
    let (killed, _) = kill_loop(&env, &["init", "--force"], |round| {
        let text = fs::read_to_string(&master).unwrap();
        assert_eq!(text.len(), 65, "round {round}: torn master {text:?}");
        assert!(text[..64].bytes().all(|b| b.is_ascii_hexdigit()) && text.ends_with('\n'));
        assert_eq!(mode(&master), 0o600, "round {round}");
        assert!(temps(&env.path("keys")).len() <= 1, "round {round}");
    });
    env.cmd().args(["init", "--force"]).assert().success();
    // The master, the masters `--force` moved aside (each whole and private), the policy
    // the first `init` created, its lock and the action log; no temporary file.
    let mut replaced = 0;
    for name in names(&env.path("keys")) {
        if name.starts_with("gobuilder-master.key.replaced-") {
            let path = env.path("keys").join(&name);
            assert_eq!(fs::read_to_string(&path).unwrap().len(), 65, "{name}");
            assert_eq!(mode(&path), 0o600, "{name}");
            replaced += 1;
        } else {
            assert!(
                [
                    "gobuilder-master.key",
                    "gobuildkey.toml",
                    "gobuildkey.toml.lock",
                    "gobuildkey-actions.log"
                ]
                .contains(&name.as_str()),
                "{name}"
            );
        }
    }
    assert!(replaced >= 1);
    assert!(killed > 0, "no run was killed: the test tested nothing");
}

#[test]
fn rotate_always_leaves_a_whole_policy() {
    let env = TestEnv::new().with_master();
    let policy = env.path("keys/gobuildkey.toml");
    env.cmd().args(["rotate", ARM]).assert().success();
    let mut last = 1;
    let host = ARM.parse().unwrap();
    let (killed, _) = kill_loop(&env, &["rotate", ARM], |round| {
        let loaded = Policy::load(&policy).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let generation = loaded.state(&host).generation;
        assert!(
            generation == last || generation == last + 1,
            "round {round}: {generation} after {last}"
        );
        last = generation;
        assert_eq!(mode(&policy), 0o600, "round {round}");
        assert!(temps(&env.path("keys")).len() <= 1, "round {round}");
    });
    env.cmd().args(["rotate", ARM]).assert().success();
    assert!(temps(&env.path("keys")).is_empty());
    assert!(killed > 0, "no run was killed: the test tested nothing");
}

#[test]
fn revoke_and_reinstate_always_leave_a_whole_policy() {
    let env = TestEnv::new().with_master();
    let policy = env.path("keys/gobuildkey.toml");
    // Other principals' state must survive every kill.
    env.cmd().args(["rotate", "host-other"]).assert().success();
    env.cmd().args(["mint", ARM]).assert().success();
    let other = "host-other".parse().unwrap();
    let mut killed = 0;
    for (i, command) in ["revoke", "reinstate"].iter().cycle().take(4).enumerate() {
        let (k, _) = kill_loop(&env, &[command, ARM], |round| {
            let loaded = Policy::load(&policy).unwrap_or_else(|e| panic!("{i}/{round}: {e}"));
            assert_eq!(loaded.state(&other).generation, 1, "{i}/{round}");
            assert_eq!(mode(&policy), 0o600);
        });
        killed += k;
    }
    // One of these two writes, whatever state the kills left.
    env.cmd().args(["reinstate", ARM]).assert().success();
    env.cmd().args(["revoke", ARM]).assert().success();
    assert!(temps(&env.path("keys")).is_empty());
    assert!(killed > 0, "no run was killed: the test tested nothing");
}

#[test]
fn machine_revocations_always_leave_a_whole_policy() {
    let env = TestEnv::new().with_master();
    let policy = env.path("keys/gobuildkey.toml");
    env.cmd().args(["rotate", "host-other"]).assert().success();
    env.cmd().args(["mint", ARM]).assert().success();
    env.cmd()
        .args(["revoke", "--machine", "builder-kept", ARM])
        .assert()
        .success();
    let (other, arm) = ("host-other".parse().unwrap(), ARM.parse().unwrap());
    let kept: gobuildkey::machine::Machine = "builder-kept".parse().unwrap();
    let mut killed = 0;
    for (i, command) in ["revoke", "reinstate"].iter().cycle().take(4).enumerate() {
        let (k, _) = kill_loop(&env, &[command, "--machine", "builder-1", ARM], |round| {
            let loaded = Policy::load(&policy).unwrap_or_else(|e| panic!("{i}/{round}: {e}"));
            assert_eq!(loaded.state(&other).generation, 1, "{i}/{round}");
            assert!(
                loaded.state(&arm).revoked_machines.contains(&kept),
                "{i}/{round}"
            );
            assert_eq!(mode(&policy), 0o600);
        });
        killed += k;
    }
    env.cmd()
        .args(["reinstate", "--machine", "builder-1", ARM])
        .assert()
        .success();
    env.cmd()
        .args(["revoke", "--machine", "builder-1", ARM])
        .assert()
        .success();
    assert!(temps(&env.path("keys")).is_empty());
    assert!(killed > 0, "no run was killed: the test tested nothing");
}

/// `rotate --machine` killed at random moments: after every kill the policy parses, keeps
/// mode 0600, the machine's generation is the one before or one more (never lost, never
/// skipped), and the principal, its other machine and another principal are untouched; at
/// most one temporary file, none after one more run. The log (which may say one rotation
/// more than a killed run wrote: logged first) replays, after that run, to the policy's
/// state.
#[test]
fn machine_rotations_always_leave_a_whole_policy() {
    let env = TestEnv::new().with_master();
    let policy = env.path("keys/gobuildkey.toml");
    env.cmd().args(["rotate", "host-other"]).assert().success();
    env.cmd()
        .args(["rotate", "--machine", "builder-kept", ARM])
        .assert()
        .success();
    let (other, arm) = ("host-other".parse().unwrap(), ARM.parse().unwrap());
    let (one, kept): (gobuildkey::machine::Machine, gobuildkey::machine::Machine) = (
        "builder-1".parse().unwrap(),
        "builder-kept".parse().unwrap(),
    );
    let mut last = 0;
    let (killed, _) = kill_loop(&env, &["rotate", "--machine", "builder-1", ARM], |round| {
        let loaded = Policy::load(&policy).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let state = loaded.state(&arm);
        let generation = state.machine_generation(&one);
        assert!(
            generation == last || generation == last + 1,
            "round {round}: {generation} after {last}"
        );
        last = generation;
        assert_eq!(state.generation, 0, "round {round}");
        assert_eq!(state.machine_generation(&kept), 1, "round {round}");
        assert_eq!(loaded.state(&other).generation, 1, "round {round}");
        assert_eq!(mode(&policy), 0o600, "round {round}");
        assert!(temps(&env.path("keys")).len() <= 1, "round {round}");
    });
    env.cmd()
        .args(["rotate", "--machine", "builder-1", ARM])
        .assert()
        .success();
    assert!(temps(&env.path("keys")).is_empty());
    assert!(killed > 0, "no run was killed: the test tested nothing");
    let now = Policy::load(&policy).unwrap().state(&arm);
    assert_eq!(now.machine_generation(&one), last + 1);
    let replayed = crate::common::replayed_policy(&env).state(&arm);
    assert_eq!(replayed, now);
}
