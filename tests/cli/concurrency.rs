//! Many admins at once, and admins killed while they hold the policy's lock.
//!
//! Every edit of the policy takes an `flock` on `gobuildkey.toml.lock`, reads the policy
//! again under it, and replaces it whole (src/policy/store.rs). These tests run the real
//! binary many times at once and check afterwards that no change was lost, that an edit
//! waits for a held lock (saying so at once) and gives up with exit 75 without touching
//! anything, and that a holder killed with SIGKILL leaves a whole policy and no lock to clean
//! up — the kernel lets an `flock` go when its holder dies; the lock file itself stays.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Instant;

use gobuildkey::derive::Deriver;
use gobuildkey::key::Algorithm;
use gobuildkey::master::MasterSecret;
use gobuildkey::policy::Policy;
use gobuildkey::policy::actions::ActionLog;
use gobuildkey::policy::store::Store;
use gobuildkey::principal::Principal;
use gobuildkey::secret_file::TEMP_PREFIX;
use rustix::fs::{FlockOperation, flock};

use crate::common::{MASTER, TestEnv, inode, mode, names};

/// What an edit says on standard error when another holds the lock.
const WAITING: &str = "waiting for the lock";

/// The files a farm's folder holds after edits: no temporary file, nothing else.
const FARM_FILES: [&str; 4] = [
    "gobuilder-master.key",
    "gobuildkey-actions.log",
    "gobuildkey.toml",
    "gobuildkey.toml.lock",
];

fn principal(name: &str) -> Principal {
    name.parse().unwrap()
}

/// Whether the policy at `policy` says `name` is revoked.
fn is_revoked(policy: &Path, name: &str) -> bool {
    Policy::load(policy)
        .unwrap()
        .state(&principal(name))
        .revoked
}

fn lock_path(policy: &Path) -> PathBuf {
    Store::new(policy).lock_path()
}

/// The temporary files (of interrupted writes) in `dir`.
fn temps(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with(TEMP_PREFIX))
        .collect()
}

/// `gobuildkey ARGS` started in the background: no input, standard error piped, standard
/// output piped when `keep_stdout` (else thrown away).
fn spawn(env: &TestEnv, args: &[&str], keep_stdout: bool) -> Child {
    env.std_cmd()
        .args(args)
        .stdin(Stdio::null())
        .stdout(if keep_stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for every child (started before any is waited for), each of which must exit 0;
/// gives each one's standard output, and how many said they waited for the lock.
fn all_succeed(children: Vec<(String, Child)>) -> (Vec<String>, usize) {
    let mut stdouts = Vec::new();
    let mut waited = 0;
    for (what, child) in children {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "`gobuildkey {what}` failed ({}): {stderr}",
            out.status
        );
        waited += usize::from(stderr.contains(WAITING));
        stdouts.push(String::from_utf8(out.stdout).unwrap());
    }
    (stdouts, waited)
}

/// Takes the policy's lock from the test process, as an edit would (creating the lock file,
/// mode 0600), and leaves this process's id in it. Let go when dropped.
fn hold_lock(policy: &Path) -> File {
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(lock_path(policy))
        .unwrap();
    flock(&file, FlockOperation::NonBlockingLockExclusive).expect("nobody else holds the lock");
    file.set_len(0).unwrap();
    writeln!(file, "{}", std::process::id()).unwrap();
    file
}

/// Whether someone holds the lock: a non-blocking attempt from here fails (one that
/// succeeds is let go at once).
fn lock_is_held(policy: &Path) -> bool {
    let Ok(file) = File::open(lock_path(policy)) else {
        return false;
    };
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        // Let go explicitly: a process another test forks at this moment shares this open
        // file, and with it the lock, until it execs — closing here alone would not do.
        Ok(()) => {
            flock(&file, FlockOperation::Unlock).unwrap();
            false
        }
        Err(rustix::io::Errno::WOULDBLOCK) => true,
        Err(e) => panic!("cannot try the lock: {e}"),
    }
}

/// One round of [`many_admins_at_once_lose_nothing`]: 40 revokes, 10 rotates and 5 mints of
/// distinct principals, all started before any is waited for, on one fresh farm. Every one
/// exits 0 and every change is in the policy and, once, in the action log. `n` names the
/// round in messages.
fn round(n: usize) -> usize {
    let env = TestEnv::new().with_master();
    let policy = env.policy_path();
    let dir = policy.parent().unwrap().to_owned();
    let log = ActionLog::beside(&policy);
    assert!(
        log.read().unwrap().is_empty(),
        "round {n}: with_master logs nothing"
    );

    let revoked: Vec<String> = (0..40).map(|i| format!("host-c-{i:02}")).collect();
    let rotated: Vec<String> = (0..10).map(|i| format!("host-r-{i:02}")).collect();
    let minted: Vec<String> = (0..5).map(|i| format!("host-m-{i:02}")).collect();
    // Interleaved, so that the three kinds of edit meet each other at the lock.
    let mut children = Vec::new();
    for (i, name) in revoked.iter().enumerate() {
        let args = ["revoke", "--allow-unknown", name];
        children.push((args.join(" "), spawn(&env, &args, false)));
        if i % 4 == 0 {
            let args = ["rotate", &rotated[i / 4]];
            children.push((args.join(" "), spawn(&env, &args, false)));
        }
        if i % 8 == 0 {
            let args = ["mint", &minted[i / 8]];
            children.push((args.join(" "), spawn(&env, &args, false)));
        }
    }
    assert_eq!(children.len(), 55);
    let (_, waited) = all_succeed(children);

    let master = MasterSecret::from_text(MASTER.as_bytes())
        .unwrap()
        .fingerprint()
        .to_string();
    let loaded = Policy::load(&policy).unwrap_or_else(|e| panic!("round {n}: {e}"));
    for name in &revoked {
        let state = loaded.state(&principal(name));
        assert!(state.revoked, "round {n}: {name} lost its revocation");
        assert_eq!(state.generation, 0, "round {n}: {name}");
    }
    for name in &rotated {
        let state = loaded.state(&principal(name));
        assert_eq!(state.generation, 1, "round {n}: {name} lost its rotation");
        assert_eq!(state.minted_under.as_deref(), Some(master.as_str()));
        assert!(!state.revoked, "round {n}: {name}");
    }
    for name in &minted {
        let state = loaded
            .state_ref(&principal(name))
            .unwrap_or_else(|| panic!("round {n}: {name}'s mint was not recorded"));
        assert_eq!(state.minted_under.as_deref(), Some(master.as_str()));
        assert_eq!(state.generation, 0, "round {n}: {name}");
    }
    assert_eq!(loaded.principals().count(), 55, "round {n}");

    // The log: each change once, by the command that made it.
    let actions = log.read().unwrap();
    assert_eq!(actions.len(), 55, "round {n}: {actions:#?}");
    let mut logged: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for action in &actions {
        let name = action.principal.as_deref().expect("every action names one");
        logged.entry(name).or_default().push(&action.command);
    }
    for (names, command) in [
        (&revoked, "revoke"),
        (&rotated, "rotate"),
        (&minted, "mint"),
    ] {
        for name in names {
            assert_eq!(
                logged.get(name.as_str()),
                Some(&vec![command]),
                "round {n}: {name} in the log"
            );
        }
    }

    assert!(temps(&dir).is_empty(), "round {n}: {:?}", temps(&dir));
    assert_eq!(names(&dir), FARM_FILES, "round {n}");
    assert_eq!(mode(&policy), 0o600, "round {n}");
    assert_eq!(mode(&lock_path(&policy)), 0o600, "round {n}");
    assert_eq!(mode(log.path()), 0o600, "round {n}");
    waited
}

/// 55 admins at once on one farm — 40 revokes, 10 rotates and 5 mints of distinct
/// principals — all exit 0 and lose nothing: every change is in the policy and once in the
/// action log, no temporary file is left, and the policy keeps mode 0600. (One round here;
/// [`stress_many_admins_at_once`] runs a hundred.)
#[test]
fn many_admins_at_once_lose_nothing() {
    let waited = round(0);
    eprintln!("55 edits at once: {waited} said they waited for the lock");
}

/// [`many_admins_at_once_lose_nothing`] 100 times in a row, each on a fresh farm. Ignored in
/// the normal suite (about a minute or two on two cores); run it with
/// `cargo test --test cli concurrency::stress -- --ignored`.
#[test]
#[ignore = "stress test, run on demand: cargo test --test cli concurrency::stress -- --ignored"]
fn stress_many_admins_at_once() {
    let start = Instant::now();
    let mut waited = 0;
    for n in 0..100 {
        waited += round(n);
    }
    eprintln!(
        "100/100 rounds of 55 edits at once passed in {:?} ({waited} edits waited for the lock)",
        start.elapsed()
    );
}

/// Ten rotations of the same principal at once serialise: all exit 0, the generation ends
/// at exactly 10 (each rotation started from the one before; a lost update would leave it
/// lower), the ten keys printed are the keys of generations 1 to 10, each once, and the
/// log records generations 1 to 10 in order (it is appended under the lock).
#[test]
fn rotates_of_one_principal_serialise() {
    let env = TestEnv::new().with_master();
    let policy = env.policy_path();
    let args = ["rotate", "--discard-previous", "host-x"];
    let children = (0..10)
        .map(|_| (args.join(" "), spawn(&env, &args, true)))
        .collect();
    let (stdouts, waited) = all_succeed(children);
    eprintln!("10 rotations at once: {waited} said they waited for the lock");

    let host = principal("host-x");
    assert_eq!(Policy::load(&policy).unwrap().state(&host).generation, 10);

    let printed: BTreeSet<String> = stdouts.iter().map(|s| s.trim().to_owned()).collect();
    assert_eq!(printed.len(), 10, "the same key printed twice: {stdouts:?}");
    let master = MasterSecret::from_text(MASTER.as_bytes()).unwrap();
    let deriver = Deriver::new(&master, Algorithm::default());
    let expected: BTreeSet<String> = (1..=10)
        .map(|g| {
            deriver
                .derive_generation(&host, g)
                .expose_secret()
                .to_owned()
        })
        .collect();
    assert_eq!(printed, expected, "not the keys of generations 1 to 10");

    let actions = ActionLog::beside(&policy).read().unwrap();
    assert!(
        actions
            .iter()
            .all(|a| a.command == "rotate" && a.principal.as_deref() == Some("host-x"))
    );
    let generations: Vec<u64> = actions.iter().map(|a| a.generation.unwrap()).collect();
    assert_eq!(generations, (1..=10).collect::<Vec<u64>>());
    assert!(temps(policy.parent().unwrap()).is_empty());
}

/// An edit meeting a held lock says at once that it waits and for whom, gives up after
/// `--lock-timeout` with exit 75 and an error naming the lock file, and changes nothing (the
/// policy is the same file, byte for byte, and the log is as it was). Once the lock is let
/// go, the same edit succeeds; and an edit already waiting when it is let go goes on and
/// succeeds.
#[test]
fn a_held_lock_makes_an_edit_wait_then_give_up() {
    let env = TestEnv::new().with_master();
    let policy = env.policy_path();
    let log = ActionLog::beside(&policy);
    let me = std::process::id();
    // Something in the policy and the log to keep.
    env.cmd()
        .args(["revoke", "--allow-unknown", "host-w"])
        .assert()
        .success();

    let held = hold_lock(&policy);
    let (text, ino, logged) = (
        fs::read(&policy).unwrap(),
        inode(&policy),
        fs::read(log.path()).unwrap(),
    );
    let out = env
        .std_cmd()
        .args(["revoke", "--allow-unknown", "--lock-timeout", "1", "host-x"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    let waiting = stderr
        .find(&format!(
            "{WAITING} on {} held by pid {me} (up to 1s)",
            policy.display()
        ))
        .unwrap_or_else(|| panic!("no waiting note naming this process: {stderr}"));
    let error = stderr
        .find(&format!(
            "locked by another edit (pid {me}, lock file {})",
            lock_path(&policy).display()
        ))
        .unwrap_or_else(|| panic!("no error naming the lock: {stderr}"));
    assert!(waiting < error, "the note comes first, at once: {stderr}");
    assert_eq!(fs::read(&policy).unwrap(), text, "the policy changed");
    assert_eq!(inode(&policy), ino, "the policy was replaced");
    assert_eq!(fs::read(log.path()).unwrap(), logged, "the log changed");
    assert!(temps(policy.parent().unwrap()).is_empty());

    drop(held);
    let out = env
        .std_cmd()
        .args(["revoke", "--allow-unknown", "host-x"])
        .output()
        .unwrap();
    // (It may still print the waiting note: a process another test forks at this moment
    // holds the lock's open file until it execs, as the lock's own tests explain.)
    assert!(out.status.success(), "{out:?}");
    assert!(is_revoked(&policy, "host-x"));

    // Waiting, then let through: the note comes before the lock is let go (read here
    // until it appears; the wait is bounded by the edit's own 30 s timeout).
    let held = hold_lock(&policy);
    let mut child = spawn(&env, &["revoke", "--allow-unknown", "host-v"], false);
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let read = stderr.read_line(&mut line).unwrap();
        assert!(read > 0, "the edit ended without saying it waits: {seen}");
        seen.push_str(&line);
        if line.contains(WAITING) {
            break;
        }
    }
    // Still waiting: nothing is written while the lock is held.
    assert!(!is_revoked(&policy, "host-v"));
    drop(held);
    stderr.read_to_string(&mut seen).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}: {seen}");
    assert!(is_revoked(&policy, "host-v"));
    assert_eq!(log.read().unwrap().len(), 3, "host-w, host-x, host-v");
}

/// SIGKILL during a locked edit: `revoke`s are started one after another, and each is
/// killed the moment the test sees it hold the policy's lock (a non-blocking `flock` from
/// here fails). After every kill the policy is whole — the old one, or the new one if the
/// rename had happened — and parses; the log holds the action or not; the lock file stays
/// (it is never removed), nobody holds the lock, and the next edit takes it at once without
/// waiting: the kernel let the dead holder's `flock` go, nothing needs cleaning. That edit
/// also clears a temporary file the kill may have left.
#[test]
fn sigkill_while_holding_the_lock_leaves_a_whole_policy_and_no_lock() {
    let env = TestEnv::new().with_master();
    let policy = env.policy_path();
    let dir = policy.parent().unwrap().to_owned();
    let lock = lock_path(&policy);
    let log = ActionLog::beside(&policy);
    let mut killed_holding = 0;
    let mut round = 0;
    while killed_holding < 20 && round < 400 {
        round += 1;
        let before = fs::read(&policy).unwrap();
        let host = format!("host-k-{round:03}");
        let mut child = env
            .std_cmd()
            .args(["revoke", "--allow-unknown", &host])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if lock_is_held(&policy) {
                child.kill().unwrap();
                killed_holding += 1;
                break;
            }
        }
        child.wait().unwrap();

        let after = Policy::load(&policy).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let revoked = after.state(&principal(&host)).revoked;
        assert!(
            revoked || fs::read(&policy).unwrap() == before,
            "round {round}: neither the old policy nor the new one"
        );
        if revoked {
            assert!(
                log.knows(&host).unwrap(),
                "round {round}: written but not logged"
            );
        }
        assert!(lock.exists(), "round {round}: the lock file was removed");
        assert!(!lock_is_held(&policy), "round {round}: still locked");

        let next = format!("host-n-{round:03}");
        let out = env
            .std_cmd()
            .args(["revoke", "--allow-unknown", "--lock-timeout", "5", &next])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "round {round}: {stderr}");
        assert!(!stderr.contains(WAITING), "round {round}: {stderr}");
        assert!(temps(&dir).is_empty(), "round {round}: {:?}", temps(&dir));
    }
    eprintln!(
        "sigkill while holding the lock: {killed_holding} of {round} edits killed holding it"
    );
    assert!(
        killed_holding > 0,
        "no edit was seen holding the lock: the test tested nothing"
    );
    assert_eq!(mode(&policy), 0o600);
}

/// A lock file left behind by a process that was killed (some old pid in it) is no lock:
/// an edit takes it at once, without waiting, and leaves its own pid in it.
#[test]
fn a_stale_lock_file_needs_no_cleanup() {
    let env = TestEnv::new().with_master();
    let policy = env.policy_path();
    let lock = lock_path(&policy);
    crate::common::write_file(&lock, "12345\n", 0o600);
    let child = spawn(&env, &["revoke", "--allow-unknown", "host-z"], false);
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains(WAITING), "{stderr}");
    assert!(is_revoked(&policy, "host-z"));
    assert_eq!(fs::read_to_string(&lock).unwrap(), format!("{pid}\n"));
    assert_eq!(mode(&lock), 0o600);
    assert!(!lock_is_held(&policy));
}

/// 30 admins at once revoke 30 different machines of one host type, while 6 others make
/// it accept machine keys only and back: afterwards every machine is revoked (none lost to
/// another's write), and the policy is whole.
#[test]
fn machine_revocations_at_once_lose_nothing() {
    let env = TestEnv::new().with_master();
    env.cmd().args(["mint", "host-m"]).assert().success();
    let machines: Vec<String> = (0..30).map(|i| format!("builder-{i:02}")).collect();
    let mut children = Vec::new();
    for (i, machine) in machines.iter().enumerate() {
        let args = ["revoke", "--machine", machine, "host-m"];
        children.push((args.join(" "), spawn(&env, &args, false)));
        if i % 5 == 0 {
            let off = if i % 10 == 0 { vec![] } else { vec!["--off"] };
            let mut args = vec!["policy", "machine-keys-only"];
            args.extend(off);
            args.push("host-m");
            children.push((args.join(" "), spawn(&env, &args, false)));
        }
    }
    all_succeed(children);
    let policy = Policy::load(&env.path("keys/gobuildkey.toml")).unwrap();
    let state = policy.state(&principal("host-m"));
    let revoked: Vec<&str> = state.revoked_machines.iter().map(|m| m.as_str()).collect();
    assert_eq!(
        revoked,
        machines.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(!state.revoked);
    assert!(temps(&env.path("keys")).is_empty());
    // The log replays to the same state.
    let replayed = crate::common::replayed_policy(&env);
    assert_eq!(replayed.state(&principal("host-m")), state);
}

/// Many `rotate --machine` at once on one host type: 5 machines rotated 4 times each (the
/// same machine many times over, and different machines side by side), interleaved with 4
/// rotations of the principal itself. All exit 0; afterwards each machine's generation is
/// exactly 4 and the principal's exactly 4 (a lost update would leave one lower), every
/// rotation is in the log once — each machine's generations 1 to 4 in order, as it is
/// appended under the lock — the keys printed are the keys of those generations, and the
/// log replays to the same state.
#[test]
fn machine_rotations_at_once_count_every_one() {
    let env = TestEnv::new().with_master();
    env.cmd().args(["mint", "host-m"]).assert().success();
    let machines: Vec<String> = (0..5).map(|i| format!("builder-{i}")).collect();
    let mut children = Vec::new();
    for round in 0..4 {
        for machine in &machines {
            let args = ["rotate", "--machine", machine, "host-m"];
            children.push((args.join(" "), spawn(&env, &args, true)));
        }
        let args = ["rotate", "--discard-previous", "host-m"];
        children.push((
            format!("{} ({round})", args.join(" ")),
            spawn(&env, &args, false),
        ));
    }
    let (stdouts, waited) = all_succeed(children);
    eprintln!("24 rotations at once: {waited} said they waited for the lock");

    let policy = env.policy_path();
    let host = principal("host-m");
    let state = Policy::load(&policy).unwrap().state(&host);
    assert_eq!(state.generation, 4);
    for machine in &machines {
        let m: gobuildkey::machine::Machine = machine.parse().unwrap();
        assert_eq!(state.machine_generation(&m), 4, "{machine} lost a rotation");
        assert!(state.machines.contains(&m), "{machine}");
    }

    let actions = ActionLog::beside(&policy).read().unwrap();
    // The mint of the principal, 20 machine rotations and 4 of the principal.
    assert_eq!(actions.len(), 25, "{actions:#?}");
    let master = MasterSecret::from_text(MASTER.as_bytes()).unwrap();
    let deriver = Deriver::new(&master, Algorithm::default());
    let mut printed_expected = BTreeSet::new();
    for machine in &machines {
        let m: gobuildkey::machine::Machine = machine.parse().unwrap();
        let rotations: Vec<_> = actions
            .iter()
            .filter(|a| a.machine.as_deref() == Some(machine.as_str()))
            .collect();
        assert_eq!(rotations.len(), 4, "{machine}");
        let generations: Vec<u64> = rotations
            .iter()
            .map(|a| a.state.as_ref().unwrap().machine_generations[machine.as_str()])
            .collect();
        assert_eq!(generations, [1, 2, 3, 4], "{machine}");
        for action in rotations {
            // Each printed key is the key of the state it was logged with.
            let principal_generation = action.generation.unwrap();
            let own = action.state.as_ref().unwrap().machine_generations[machine.as_str()];
            let key = deriver.derive_machine(&host, principal_generation, &m, own);
            assert_eq!(action.key.as_deref(), Some(key.fingerprint().as_str()));
            printed_expected.insert(key.expose_secret().to_owned());
        }
    }
    let printed: BTreeSet<String> = stdouts
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| s.trim().to_owned())
        .collect();
    assert_eq!(printed, printed_expected);
    assert!(temps(policy.parent().unwrap()).is_empty());

    let replayed = crate::common::replayed_policy(&env);
    assert_eq!(replayed.state(&host), state);
}
