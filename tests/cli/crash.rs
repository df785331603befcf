//! Crash safety: `init`, `rotate` and `revoke` killed with SIGKILL at random moments, many
//! times each; after every kill each file they write is a whole old or whole new version
//! with mode 0600, and after one more run no temporary file remains. (`install` has its
//! own: `install::sigkill_while_replacing_leaves_a_whole_key`.)

use std::fs;
use std::process::Stdio;
use std::time::Duration;

use gobuildkey::policy::Policy;

use crate::common::{ARM, TestEnv, mode, names};

const ROUNDS: usize = 200;

/// Runs `args` `ROUNDS` times, each killed after a random delay unless it finished, and
/// calls `check` after each round. Returns (killed, finished).
fn kill_loop(env: &TestEnv, args: &[&str], mut check: impl FnMut(usize)) -> (usize, usize) {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d ^ u64::from(std::process::id());
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut killed, mut finished) = (0, 0);
    for round in 0..ROUNDS {
        let mut child = env
            .std_cmd()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
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
    assert_eq!(names(&env.path("keys")), ["gobuilder-master.key"]);
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
