//! Owner and folder checks (`src/trust/`, like OpenSSH's `StrictModes`) through the real
//! binary: the master, the policy and every folder above them must be owned by root or by
//! the user running gobuildkey and not be writable by group or others; refusals exit 77 and
//! name the file and the fix; links are read through and never edited through; a keyring
//! `command` runs only after the policy passed. And the three supported models: (a) one
//! admin account, (b) several admins sharing a service account through `sudo`, (c) a
//! read-only Kubernetes Secret or ConfigMap mount (in a private mount namespace).
//!
//! Tests that hand files to another user need root; they say "skipped" and pass otherwise.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use gobuildkey::policy::actions::{Action, ActionLog};

use crate::common::{
    ARM, ARM_KEY, EMPTY_POLICY, MASTER, NOBODY, TestEnv, inode, mode, stdout_of, write_file,
};

/// The exit code of every refusal of an untrusted file.
const UNTRUSTED: i32 = 77;

/// Whether the tests run as root, who can hand files to another user.
fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `is_root()`, saying why the test does nothing when not.
fn root_or_skip(test: &str) -> bool {
    let root = is_root();
    if !root {
        eprintln!("skipped: {test} needs root to hand files to uid {NOBODY}");
    }
    root
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Gives `path` (not following a link) to `uid` and `gid`.
fn give(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
}

/// What must not change when an edit is refused: the bytes, the inode (not replaced by an
/// identical copy), the owner, the group and the mode.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    bytes: Vec<u8>,
    ino: u64,
    uid: u32,
    gid: u32,
    mode: u32,
}

fn snapshot(path: &Path) -> Snapshot {
    let meta = fs::symlink_metadata(path).unwrap();
    assert!(meta.is_file(), "{} is not a file", path.display());
    Snapshot {
        bytes: fs::read(path).unwrap(),
        ino: meta.ino(),
        uid: meta.uid(),
        gid: meta.gid(),
        mode: meta.mode() & 0o7777,
    }
}

/// Runs `cmd` (which already has its arguments), giving it `stdin`, and gives its exit
/// code and standard error.
fn code_and_stderr(cmd: &mut Command, stdin: &str) -> (i32, String) {
    let out = cmd.write_stdin(stdin.to_owned()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out
        .status
        .code()
        .unwrap_or_else(|| panic!("killed: {stderr}"));
    (code, stderr)
}

/// `gobuildkey verify host-linux-arm-aws` with its right key and `extra` options.
fn verify(env: &TestEnv, extra: &[&str]) -> (i32, String) {
    code_and_stderr(
        env.cmd().arg("verify").args(extra).arg(ARM),
        &format!("{ARM_KEY}\n"),
    )
}

/// `gobuildkey revoke --allow-unknown host-x` with `extra` options.
fn revoke(cmd: &mut Command, extra: &[&str]) -> (i32, String) {
    code_and_stderr(
        cmd.args(["revoke", "--allow-unknown"])
            .args(extra)
            .arg("host-x"),
        "",
    )
}

/// Runs `cmd` with `stdin`, failing the test if it has not ended after 30 s (it would hang
/// on a FIFO it opened); gives its exit code and standard error.
fn run_bounded(mut cmd: StdCommand, stdin: &str) -> (Option<i32>, String) {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // A few bytes fit in the pipe: this never blocks. It fails if the child is gone.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("gobuildkey was still running after 30 s: it hangs");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.code(), stderr)
}

/// The last action of the log beside `policy`, read as text (the log may belong to the
/// service account, which `ActionLog::read` run as root rightly refuses).
fn last_action(policy: &Path) -> Action {
    let text = fs::read_to_string(ActionLog::beside(policy).path()).unwrap();
    serde_json::from_str(text.lines().last().expect("an action in the log")).unwrap()
}

/// Model (a): one admin account owns the master, the policy and their folder (under umask
/// 000, as every test here): keys verify, and edits work and keep the policy private.
#[test]
fn model_a_one_admin_owns_everything() {
    let env = TestEnv::new().with_master();
    let key = stdout_of(env.cmd().args(["mint", "host-b"]));
    env.cmd()
        .args(["verify", "host-b"])
        .write_stdin(key.clone())
        .assert()
        .code(0);
    assert_eq!(verify(&env, &[]).0, 0);

    env.cmd().args(["revoke", "host-b"]).assert().code(0);
    env.cmd()
        .args(["verify", "host-b"])
        .write_stdin(key)
        .assert()
        .code(1);
    let (code, stderr) = revoke(&mut env.cmd(), &[]);
    assert_eq!(code, 0, "{stderr}");
    let shown = stdout_of(env.cmd().arg("policy"));
    assert!(shown.contains("host-x"), "{shown}");
    assert_eq!(mode(&env.policy_path()), 0o600);
    assert_eq!(mode(&env.master_path()), 0o600);
}

/// A policy owned by another user (who could reinstate a principal, or add a keyring
/// command) is refused for reading and for editing: exit 77 naming the file, its owner and
/// the `chown` that fixes it; the refused edit changes nothing.
#[test]
fn a_policy_owned_by_another_uid_is_refused() {
    if !root_or_skip("a_policy_owned_by_another_uid_is_refused") {
        return;
    }
    let env = TestEnv::new().with_master();
    let policy = env.policy_path();
    give(&policy, NOBODY, NOBODY);
    let before = snapshot(&policy);
    let fix = format!("run `chown 0 {}`", policy.display());

    let (code, stderr) = verify(&env, &[]);
    assert_eq!(code, UNTRUSTED, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the policy {} is owned by uid 65534",
            policy.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains(&fix), "{stderr}");

    let (code, stderr) = revoke(&mut env.cmd(), &[]);
    assert_eq!(code, UNTRUSTED, "{stderr}");
    assert!(stderr.contains("uid 65534"), "{stderr}");
    assert!(stderr.contains(&fix), "{stderr}");
    assert_eq!(snapshot(&policy), before);
}

/// A policy its group or others can write is refused, by `verify` and by edits, with the
/// `chmod go-w` that fixes it; the refused edit changes nothing.
#[test]
fn a_group_writable_policy_is_refused() {
    let env = TestEnv::new().with_master();
    let policy = env.policy_path();
    for bad in [0o660, 0o620, 0o602] {
        set_mode(&policy, bad);
        let before = snapshot(&policy);
        let (code, stderr) = verify(&env, &[]);
        assert_eq!(code, UNTRUSTED, "{bad:o}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "the policy {} is writable by group or others (mode {bad:04o})",
                policy.display()
            )),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("run `chmod go-w {}`", policy.display())),
            "{stderr}"
        );
        let (code, stderr) = revoke(&mut env.cmd(), &[]);
        assert_eq!(code, UNTRUSTED, "{bad:o}: {stderr}");
        assert!(stderr.contains("chmod go-w"), "{stderr}");
        assert_eq!(snapshot(&policy), before);
    }
    set_mode(&policy, 0o640);
    assert_eq!(verify(&env, &[]).0, 0, "group read is not group write");
}

/// A good policy and master in a folder its group can write (whoever can write it can
/// replace them) are refused, naming the folder and `chmod go-w FOLDER`; nothing changes.
#[test]
fn a_group_writable_folder_is_refused() {
    let env = TestEnv::new().with_master();
    let keys = env.path("keys");
    let policy = env.policy_path();
    set_mode(&keys, 0o770);
    let before = snapshot(&policy);
    let fix = format!("run `chmod go-w {}`", keys.display());

    // verify reads the master first.
    let (code, stderr) = verify(&env, &[]);
    assert_eq!(code, UNTRUSTED, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the folder {} above the master is writable by group or others (mode 0770)",
            keys.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains(&fix), "{stderr}");

    // revoke reads only the policy.
    let (code, stderr) = revoke(&mut env.cmd(), &[]);
    assert_eq!(code, UNTRUSTED, "{stderr}");
    assert!(
        stderr.contains(&format!("the folder {} above the policy", keys.display())),
        "{stderr}"
    );
    assert!(stderr.contains(&fix), "{stderr}");
    assert_eq!(snapshot(&policy), before);
}

/// A sticky world-writable folder (mode 1777, like `/tmp`) holding the master and the
/// policy is accepted: nobody can rename or remove what others made in it.
#[test]
fn a_sticky_world_writable_folder_is_accepted() {
    let env = TestEnv::new().with_master();
    set_mode(&env.path("keys"), 0o1777);
    let (code, stderr) = verify(&env, &[]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr) = revoke(&mut env.cmd(), &[]);
    assert_eq!(code, 0, "{stderr}");
}

/// A master owned by another user is refused: exit 77, naming it, its owner and the fix.
#[test]
fn a_master_owned_by_another_uid_is_refused() {
    if !root_or_skip("a_master_owned_by_another_uid_is_refused") {
        return;
    }
    let env = TestEnv::new().with_master();
    let master = env.master_path();
    give(&master, NOBODY, NOBODY);
    let (code, stderr) = verify(&env, &[]);
    assert_eq!(code, UNTRUSTED, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the master {} is owned by uid 65534",
            master.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("run `chown 0 {}`", master.display())),
        "{stderr}"
    );
}

/// A master (0600) in a folder its group can write is refused, although the policy is
/// fine: exit 77 naming the folder.
#[test]
fn a_master_in_a_group_writable_folder_is_refused() {
    let env = TestEnv::new().with_master();
    let open = env.path("open");
    let master = open.join("master.key");
    write_file(&master, format!("{MASTER}\n"), 0o600);
    set_mode(&open, 0o770);
    let master_arg = master.to_str().unwrap();
    let policy_arg = env.policy_path();
    let policy_arg = policy_arg.to_str().unwrap();
    let (code, stderr) = verify(&env, &["--master-key", master_arg, "--policy", policy_arg]);
    assert_eq!(code, UNTRUSTED, "{stderr}");
    assert!(
        stderr.contains(&format!("the folder {} above the master", open.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("run `chmod go-w {}`", open.display())),
        "{stderr}"
    );
    set_mode(&open, 0o700);
    let (code, stderr) = verify(&env, &["--master-key", master_arg, "--policy", policy_arg]);
    assert_eq!(code, 0, "{stderr}");
}

/// A policy that is a symbolic link to a good file in a good folder is read through
/// (`verify`, `policy`), and its target's folder is checked too; an edit is refused with
/// exit 73, saying it never edits through a link, and neither the link nor its target
/// changes.
#[test]
fn a_policy_link_is_read_through_but_never_edited_through() {
    let env = TestEnv::new().with_master();
    let config = env.path("config");
    fs::create_dir(&config).unwrap();
    set_mode(&config, 0o700);
    let real = config.join("gobuildkey.toml");
    let link = env.policy_path();
    fs::rename(&link, &real).unwrap();
    symlink("../config/gobuildkey.toml", &link).unwrap();

    let (code, stderr) = verify(&env, &[]);
    assert_eq!(code, 0, "{stderr}");
    env.cmd().arg("policy").assert().code(0);

    let link_ino = inode(&link);
    let before = snapshot(&real);
    let (code, stderr) = revoke(&mut env.cmd(), &[]);
    assert_eq!(code, 73, "{stderr}");
    assert!(
        stderr.contains(&format!("policy {} is a symbolic link", link.display())),
        "{stderr}"
    );
    assert!(stderr.contains("never edits through it"), "{stderr}");
    assert_eq!(inode(&link), link_ino);
    assert_eq!(
        fs::read_link(&link).unwrap(),
        Path::new("../config/gobuildkey.toml")
    );
    assert_eq!(snapshot(&real), before);

    // The folder the link leads to is checked as well as the link's own.
    set_mode(&config, 0o770);
    let (code, stderr) = verify(&env, &[]);
    assert_eq!(code, UNTRUSTED, "{stderr}");
    assert!(
        stderr.contains(&format!("the folder {} above the policy", config.display())),
        "{stderr}"
    );
}

/// A policy (or master) that is a FIFO or a folder is refused at once, never opened (a
/// FIFO would block until someone writes to it): exit 65, "not a regular file".
#[test]
fn a_fifo_or_folder_policy_is_refused_without_hanging() {
    let env = TestEnv::new().with_master();
    let policy = env.policy_path();
    let master = env.master_path();
    let mkfifo = |path: &Path| {
        fs::remove_file(path).unwrap();
        let status = StdCommand::new("mkfifo")
            .args(["-m", "600"])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    };
    let check = |what: &Path| {
        let mut cmd = env.std_cmd();
        cmd.args(["verify", ARM]);
        let (code, stderr) = run_bounded(cmd, &format!("{ARM_KEY}\n"));
        assert_eq!(code, Some(65), "{stderr}");
        assert!(
            stderr.contains(&format!("{} is not a regular file", what.display())),
            "{stderr}"
        );
    };

    mkfifo(&policy);
    check(&policy);
    fs::remove_file(&policy).unwrap();
    fs::create_dir(&policy).unwrap();
    set_mode(&policy, 0o700);
    check(&policy);
    fs::remove_dir(&policy).unwrap();
    env.write_policy(EMPTY_POLICY);

    mkfifo(&master);
    check(&master);
}

/// A keyring `command` in a policy others could have written never runs; once the policy
/// is trusted it does (so the test would notice if it ran before the check).
#[test]
fn a_keyring_command_in_an_untrusted_policy_never_runs() {
    let env = TestEnv::new().with_master();
    let marker = env.path("ran");
    let policy = env.write_policy(&format!(
        "[keyring]\nprevious = [{{ command = \"touch {}; echo 0123456789abcdef0123456789abcdef\" }}]\n\
         [principals]\n",
        marker.display()
    ));
    set_mode(&policy, 0o620);
    let (code, stderr) = verify(&env, &[]);
    assert_eq!(code, UNTRUSTED, "{stderr}");
    assert!(stderr.contains("chmod go-w"), "{stderr}");
    env.cmd().arg("policy").assert().code(UNTRUSTED);
    assert!(
        !marker.exists(),
        "the keyring command of an untrusted policy ran"
    );

    set_mode(&policy, 0o600);
    let (code, stderr) = verify(&env, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        marker.exists(),
        "the keyring command of a trusted policy did not run"
    );
}

/// Model (b): admins share a service account through `sudo -u gobuildkey gobuildkey …`.
/// The service account (uid 65534 here) owns the folder, the master and the policy; an
/// edit it makes works, keeps the policy its own with its mode, and the action log records
/// the person behind sudo (`SUDO_USER`) beside the effective uid.
#[test]
fn model_b_a_service_account_shared_through_sudo() {
    if !root_or_skip("model_b_a_service_account_shared_through_sudo") {
        return;
    }
    let env = TestEnv::new().with_master();
    let policy = env.policy_path();
    for path in [env.path("keys"), env.master_path(), policy.clone()] {
        give(&path, NOBODY, NOBODY);
    }
    set_mode(&policy, 0o640);

    let (code, stderr) = revoke(
        env.unprivileged_cmd().env("SUDO_USER", "alice"),
        &["--reason", "test"],
    );
    assert_eq!(code, 0, "{stderr}");
    let action = last_action(&policy);
    assert_eq!(action.command, "revoke");
    assert_eq!(action.principal.as_deref(), Some("host-x"));
    assert_eq!(action.uid, NOBODY);
    assert_eq!(action.invoked_by.as_deref(), Some("alice"));
    assert_eq!(action.reason.as_deref(), Some("test"));
    assert_ne!(action.user, "alice");

    let meta = fs::metadata(&policy).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (NOBODY, NOBODY));
    assert_eq!(meta.mode() & 0o7777, 0o640);
    assert!(fs::read_to_string(&policy).unwrap().contains("host-x"));

    // The service account verifies with what it owns.
    let (code, stderr) = code_and_stderr(
        env.unprivileged_cmd().args(["verify", ARM]),
        &format!("{ARM_KEY}\n"),
    );
    assert_eq!(code, 0, "{stderr}");
}

/// The service account (not root) cannot edit a policy root owns (0644, which it may read):
/// the edit would make the file its own. Exit 77 ("belongs to uid 0"), and the policy is
/// left exactly as it was.
#[test]
fn a_service_account_cannot_edit_a_root_owned_policy() {
    if !root_or_skip("a_service_account_cannot_edit_a_root_owned_policy") {
        return;
    }
    let env = TestEnv::new().with_master();
    let policy = env.policy_path();
    // The folder is the service account's, so the lock file beside the policy can be made:
    // what is refused is the policy's owner, not the folder.
    give(&env.path("keys"), NOBODY, NOBODY);
    set_mode(&policy, 0o644);
    let before = snapshot(&policy);

    let (code, stderr) = revoke(&mut env.unprivileged_cmd(), &[]);
    assert_eq!(code, UNTRUSTED, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "policy {} belongs to uid 0, not to you (uid 65534)",
            policy.display()
        )),
        "{stderr}"
    );
    assert_eq!(snapshot(&policy), before);
}

/// Root (an admin) and a service account sharing one policy: a policy the service account
/// owns is refused to root (it could have been changed by that account: exit 77, nothing
/// changed), so the shared policy is root's, readable by the service's group (root:65534,
/// 0640). An admin's edit keeps that owner, group and mode, so the service still reads it
/// afterwards (a policy left 0600 would have failed every request of `serve`).
#[test]
fn an_admins_edit_keeps_the_service_accounts_group_and_mode() {
    if !root_or_skip("an_admins_edit_keeps_the_service_accounts_group_and_mode") {
        return;
    }
    let env = TestEnv::new();
    set_mode(env.home.path(), 0o755);
    let farm = env.path("farm");
    fs::create_dir(&farm).unwrap();
    give(&farm, 0, NOBODY);
    set_mode(&farm, 0o750);
    let master = farm.join("master.key");
    write_file(&master, format!("{MASTER}\n"), 0o600);
    give(&master, NOBODY, NOBODY);
    let policy = farm.join("gobuildkey.toml");
    write_file(&policy, EMPTY_POLICY, 0o640);
    give(&policy, NOBODY, NOBODY);
    let master_arg = ["--master-key", master.to_str().unwrap()];

    // Owned by the service account: root does not trust it.
    let before = snapshot(&policy);
    let (code, stderr) = revoke(&mut env.cmd(), &master_arg);
    assert_eq!(code, UNTRUSTED, "{stderr}");
    assert!(stderr.contains("owned by uid 65534"), "{stderr}");
    assert_eq!(snapshot(&policy), before);

    // Root's, the service's group may read it: root's edit keeps all three.
    give(&policy, 0, NOBODY);
    let (code, stderr) = revoke(&mut env.cmd(), &master_arg);
    assert_eq!(code, 0, "{stderr}");
    let meta = fs::metadata(&policy).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, NOBODY));
    assert_eq!(meta.mode() & 0o7777, 0o640);

    let (code, stderr) = code_and_stderr(
        env.unprivileged_cmd()
            .arg("verify")
            .args(master_arg)
            .arg(ARM),
        &format!("{ARM_KEY}\n"),
    );
    assert_eq!(
        code, 0,
        "the service cannot read the policy after the edit: {stderr}"
    );
}

/// How a private mount namespace is had on this machine, found once.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Namespace {
    /// `unshare --mount --propagation private`.
    Private,
    /// `unshare --mount`, then `mount --make-rprivate /` inside.
    MakePrivate,
}

/// Builds the layout the kubelet makes for a Secret or ConfigMap volume, on a fresh tmpfs
/// mounted on `$1` (mode 0755, root's): `..2026_11_29_00_00_00.000/{master.key,
/// gobuildkey.toml}` with modes `$3` and `$4`, `..data` linking to it, and `master.key`
/// and `gobuildkey.toml` linking into `..data`; remounts it read-only when `$2` is `ro`;
/// then runs the rest. With `VOLUME_GROUP` set in its environment, gives everything in the
/// volume to that group, as the kubelet does for the pod's `fsGroup`. Exits 200 when a
/// mount fails.
pub(crate) const KUBERNETES_VOLUME: &str = r#"
umask 022
dir=$1 ro=$2 master_mode=$3 policy_mode=$4 master=$5 policy=$6
shift 6
mount -t tmpfs -o mode=0755 tmpfs "$dir" || exit 200
ts=..2026_11_29_00_00_00.000
mkdir "$dir/$ts" || exit 201
printf '%s\n' "$master" > "$dir/$ts/master.key" || exit 201
printf '%s' "$policy" > "$dir/$ts/gobuildkey.toml" || exit 201
chmod "$master_mode" "$dir/$ts/master.key" || exit 201
chmod "$policy_mode" "$dir/$ts/gobuildkey.toml" || exit 201
ln -s "$ts" "$dir/..data" || exit 201
ln -s ..data/master.key "$dir/master.key" || exit 201
ln -s ..data/gobuildkey.toml "$dir/gobuildkey.toml" || exit 201
[ -z "${VOLUME_GROUP:-}" ] || chgrp -hR "$VOLUME_GROUP" "$dir" || exit 201
if [ "$ro" = ro ]; then
    mount -o remount,ro "$dir" || exit 200
    if touch "$dir/written" 2>/dev/null; then exit 200; fi
fi
exec "$@"
"#;

/// `sh -c SCRIPT` in a private mount namespace, as `namespace` makes it.
pub(crate) fn in_namespace(namespace: Namespace, script: &str) -> StdCommand {
    let mut cmd = StdCommand::new("unshare");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    match namespace {
        Namespace::Private => {
            cmd.args(["--mount", "--propagation", "private", "sh", "-c", script]);
        }
        Namespace::MakePrivate => {
            cmd.args(["--mount", "sh", "-c"])
                .arg(format!("mount --make-rprivate / || exit 200\n{script}"));
        }
    }
    cmd.arg("sh");
    cmd
}

/// Whether this machine lets the tests mount a tmpfs (and remount it read-only) in a
/// private mount namespace, and how; looked at once.
pub(crate) fn mount_namespace() -> Option<Namespace> {
    static FOUND: OnceLock<Option<Namespace>> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vol");
        fs::create_dir(&dir).unwrap();
        let mut tried = Vec::new();
        for namespace in [Namespace::Private, Namespace::MakePrivate] {
            let out = in_namespace(namespace, KUBERNETES_VOLUME)
                .arg(&dir)
                .args(["ro", "0400", "0400", MASTER, EMPTY_POLICY, "true"])
                .output();
            match out {
                Ok(out) if out.status.success() => return Some(namespace),
                Ok(out) => tried.push(format!(
                    "{namespace:?}: {} {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
                Err(e) => tried.push(format!("{namespace:?}: {e}")),
            }
        }
        eprintln!("no private mount namespace: {}", tried.join("; "));
        None
    })
}

/// Whether the tests run in continuous integration, where every test must really run.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A Kubernetes volume made by [`KUBERNETES_VOLUME`] in a private mount namespace (the
/// machine's mounts are untouched), with gobuildkey run in it on `args` (`{}` stands for
/// the volume's folder) and `stdin`; `None` (the test is skipped) when mounting is not
/// allowed here, which fails the test in CI.
fn in_kubernetes_volume(
    read_only: bool,
    master_mode: &str,
    policy_mode: &str,
    args: &[&str],
    stdin: &str,
) -> Option<(PathBuf, i32, String)> {
    let Some(namespace) = mount_namespace() else {
        assert!(
            !in_ci(),
            "model (c) needs a private mount namespace (unshare --mount, mount -t tmpfs), \
             which this machine refuses; CI must run it"
        );
        eprintln!("skipped: cannot mount a tmpfs in a private mount namespace here");
        return None;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vol");
    fs::create_dir(&dir).unwrap();
    let shown = dir.to_str().unwrap();
    let mut cmd = in_namespace(namespace, KUBERNETES_VOLUME);
    cmd.current_dir(tmp.path())
        .arg(&dir)
        .arg(if read_only { "ro" } else { "rw" })
        .args([master_mode, policy_mode, MASTER, EMPTY_POLICY])
        .arg(env!("CARGO_BIN_EXE_gobuildkey"))
        .args(args.iter().map(|arg| arg.replace("{}", shown)));
    let output = Command::from_std(cmd)
        .write_stdin(stdin.to_owned())
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let code = output
        .status
        .code()
        .unwrap_or_else(|| panic!("killed: {stderr}"));
    assert!(
        code < 200,
        "the volume could not be made ({code}): {stderr}"
    );
    Some((dir, code, stderr))
}

/// The real file behind `name` in a volume made by [`KUBERNETES_VOLUME`].
fn real_in_volume(dir: &Path, name: &str) -> PathBuf {
    dir.join("..2026_11_29_00_00_00.000").join(name)
}

/// Model (c): the master and policy in a read-only Kubernetes Secret volume, root's and
/// group-readable (0440, as `fsGroup` makes them): accepted, since nobody can write a
/// read-only filesystem, read through the `..data` links.
#[test]
fn model_c_a_read_only_kubernetes_volume_is_accepted() {
    let Some((_, code, stderr)) = in_kubernetes_volume(
        true,
        "0440",
        "0440",
        &["verify", "--master-key", "{}/master.key", ARM],
        &format!("{ARM_KEY}\n"),
    ) else {
        return;
    };
    assert_eq!(code, 0, "{stderr}");
}

/// The same volume while still writable: group read of the master is accepted only on a
/// read-only filesystem (exit 77); and a policy its group can write, in a Kubernetes volume,
/// is refused with the Kubernetes settings that fix it (`defaultMode`, `fsGroup`), not a
/// `chmod` that would not last.
#[test]
fn model_c_a_writable_kubernetes_volume_is_refused() {
    let args = ["verify", "--master-key", "{}/master.key", ARM];
    let stdin = format!("{ARM_KEY}\n");
    let Some((_, code, stderr)) = in_kubernetes_volume(false, "0440", "0440", &args, &stdin) else {
        return;
    };
    assert_eq!(code, UNTRUSTED, "{stderr}");

    let Some((dir, code, stderr)) = in_kubernetes_volume(false, "0400", "0660", &args, &stdin)
    else {
        return;
    };
    assert_eq!(code, UNTRUSTED, "{stderr}");
    let real = real_in_volume(&dir, "gobuildkey.toml");
    assert!(
        stderr.contains(&format!(
            "the policy {} is writable by group or others (mode 0660)",
            real.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("`defaultMode`"), "{stderr}");
    assert!(stderr.contains("fsGroup"), "{stderr}");
    assert!(!stderr.contains("run `chmod"), "{stderr}");
}

/// Spec (the issue): "the message for a too-open mount names defaultMode/fsGroup, not
/// chmod". A group-readable master (0440) in a writable Kubernetes volume, and a
/// world-readable one (0444) on a read-only volume (where no `chmod` can even run), are
/// refused by the master's too-open check, whose message says `chmod 600`.
#[test]
fn model_c_a_too_open_master_in_a_kubernetes_volume_names_default_mode() {
    let args = ["verify", "--master-key", "{}/master.key", ARM];
    let stdin = format!("{ARM_KEY}\n");
    for (read_only, master_mode) in [(false, "0440"), (true, "0444")] {
        let Some((_, code, stderr)) =
            in_kubernetes_volume(read_only, master_mode, "0400", &args, &stdin)
        else {
            return;
        };
        assert_eq!(code, UNTRUSTED, "{stderr}");
        assert!(stderr.contains("defaultMode"), "{stderr}");
        assert!(!stderr.contains("run `chmod"), "{stderr}");
    }
}

/// Spec (the issue, and `Lock::write`'s "Refused, with nothing changed"): an edit refused
/// because the policy is a link, or belongs to another user, changes nothing on disk, the
/// action log included; today the action is logged before the refusal, so the log records a
/// revocation that never happened (and `policy init --from-log` would replay it).
#[test]
fn refused_edits_leave_the_action_log_alone() {
    let env = TestEnv::new().with_master();
    let config = env.path("config");
    fs::create_dir(&config).unwrap();
    let link = env.policy_path();
    fs::rename(&link, config.join("gobuildkey.toml")).unwrap();
    symlink("../config/gobuildkey.toml", &link).unwrap();
    let (code, stderr) = revoke(&mut env.cmd(), &[]);
    assert_eq!(code, 73, "{stderr}");
    assert!(
        ActionLog::beside(&link).read().unwrap().is_empty(),
        "a refused edit was logged"
    );

    if !is_root() {
        return;
    }
    let env = TestEnv::new().with_master();
    give(&env.path("keys"), NOBODY, NOBODY);
    set_mode(&env.policy_path(), 0o644);
    let (code, stderr) = revoke(&mut env.unprivileged_cmd(), &[]);
    assert_eq!(code, UNTRUSTED, "{stderr}");
    assert!(
        ActionLog::beside(&env.policy_path())
            .read()
            .unwrap()
            .is_empty(),
        "a refused edit was logged"
    );
}
