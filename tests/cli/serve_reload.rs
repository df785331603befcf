//! `gobuildkey serve` reloading off the request path: on file change (Kubernetes' `..data`
//! swap included), with a command that hangs, and the audit file reopened for logrotate.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{ARM, ARM_KEY, TestEnv};
use crate::server::http_get;

const PATIENCE: Duration = Duration::from_secs(60);

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < PATIENCE, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn verify(addr: std::net::SocketAddr, principal: &str, key: &str) -> u16 {
    http_get(
        addr,
        "/verify",
        &[
            ("X-Revdial-Version", "2"),
            ("X-Go-Builder-Hostname", "builder-7"),
            ("X-Go-Host-Type", principal),
            ("X-Go-Builder-Key", key),
        ],
    )
    .0
}

fn health(addr: std::net::SocketAddr) -> serde_json::Value {
    let (status, body) = http_get(addr, "/healthz", &[]);
    assert_eq!(status, 200);
    serde_json::from_str(&body).unwrap()
}

/// A volume as the kubelet lays out a mounted Secret or ConfigMap: each file a link into
/// `..data`, itself a link to a timestamped folder; an update writes a new folder and
/// swaps `..data` by rename.
struct Volume {
    dir: PathBuf,
    version: u32,
}

impl Volume {
    fn new(dir: PathBuf, files: &[(&str, &[u8])]) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let mut volume = Self { dir, version: 0 };
        volume.update(files);
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), volume.dir.join(name)).unwrap();
        }
        volume
    }

    /// The kubelet's atomic update.
    fn update(&mut self, files: &[(&str, &[u8])]) {
        use std::os::unix::fs::PermissionsExt;
        self.version += 1;
        let new = format!("..2026_11_30_00_00_0{}.1", self.version);
        let folder = self.dir.join(&new);
        std::fs::create_dir(&folder).unwrap();
        for (name, content) in files {
            let path = folder.join(name);
            std::fs::write(&path, content).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        }
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();
        let old = std::fs::read_link(self.dir.join("..data")).ok();
        std::os::unix::fs::symlink(&new, self.dir.join("..data_tmp")).unwrap();
        std::fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).unwrap();
        if let Some(old) = old {
            std::fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn key_of(env: &TestEnv, master: &Path, policy: &Path, principal: &str) -> String {
    crate::common::stdout_of(env.cmd().args([
        "mint",
        "--master-key",
        master.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
        principal,
    ]))
    .trim()
    .to_owned()
}

/// Kubernetes updates a mounted ConfigMap (the policy) and Secret (the master) by swapping
/// `..data`; nobody sends SIGHUP. The service reloads on the change: a revocation applies,
/// and a new master's keys verify.
#[test]
fn a_kubernetes_volume_update_is_reloaded_without_a_signal() {
    let env = TestEnv::new();
    let revoked = format!("[principals.{ARM}]\nrevoked = true\n");
    let secret = Volume::new(
        env.path("secret"),
        &[("master", crate::common::MASTER.as_bytes())],
    );
    let mut config = Volume::new(
        env.path("config"),
        &[("gobuildkey.toml", crate::common::EMPTY_POLICY.as_bytes())],
    );
    let (master, policy) = (secret.file("master"), config.file("gobuildkey.toml"));
    let server = env.serve(&[
        "--master-key",
        master.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
    ]);
    let a = server.addr;
    assert_eq!(verify(a, ARM, ARM_KEY), 200);

    config.update(&[("gobuildkey.toml", revoked.as_bytes())]);
    wait_until("the revocation applies", || verify(a, ARM, ARM_KEY) == 403);
    let after = health(a);
    assert_eq!(after["state"], "ok", "{after}");
    assert!(after["last_reload"].is_string(), "{after}");

    // A new master in the Secret: the old keys stop, the new ones verify.
    let mut secret = secret;
    let new_master = "a new master for the farm, at least 32 bytes of it";
    let other = "host-linux-amd64-k8s";
    secret.update(&[("master", new_master.as_bytes())]);
    let new_key = {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("master");
        let p = dir.path().join("gobuildkey.toml");
        crate::common::write_file(&m, new_master, 0o600);
        crate::common::write_file(&p, crate::common::EMPTY_POLICY, 0o600);
        key_of(&env, &m, &p, other)
    };
    wait_until("the new master's keys verify", || {
        verify(a, other, &new_key) == 200
    });
}

/// The policy edited in place, as an admin's `gobuildkey revoke` does (a rename beside it),
/// reloads too; so does a broken edit, which keeps the last good state, and its fix.
#[test]
fn an_edit_of_the_policy_is_reloaded_and_a_broken_one_keeps_the_last_good_state() {
    let env = TestEnv::new().with_master();
    let server = env.serve(&[]);
    let a = server.addr;
    assert_eq!(verify(a, ARM, ARM_KEY), 200);
    env.cmd()
        .args(["revoke", "--allow-unknown", ARM])
        .assert()
        .success();
    wait_until("the revocation applies", || verify(a, ARM, ARM_KEY) == 403);
    let policy = env.path("keys/gobuildkey.toml");
    let good = std::fs::read(&policy).unwrap();
    crate::common::write_file(&policy, "[principals.x]\nrevoked = maybe\n", 0o600);
    wait_until("a stale state", || health(a)["state"] == "stale");
    assert_eq!(verify(a, ARM, ARM_KEY), 403, "the revocation still holds");
    crate::common::write_file(&policy, good, 0o600);
    wait_until("a good state again", || health(a)["state"] == "ok");
    assert_eq!(verify(a, ARM, ARM_KEY), 403);
}

/// A reload whose master command hangs never holds up a request: the service answers from
/// the state it has while the command runs; `--command-timeout` then kills the command with
/// its process group, and the reload fails, keeping that state.
#[test]
fn a_reload_whose_command_hangs_does_not_hold_up_requests() {
    let env = TestEnv::new().with_master();
    let hang = env.path("hang");
    let command = format!(
        "if [ -e '{}' ]; then sleep 3217; fi; {}",
        hang.display(),
        env.master_command()
    );
    let policy = env.path("keys/gobuildkey.toml");
    let server = env.serve(&[
        "--master-key-command",
        &command,
        "--policy",
        policy.to_str().unwrap(),
        "--command-timeout",
        "3s",
    ]);
    let a = server.addr;
    assert_eq!(verify(a, ARM, ARM_KEY), 200);
    std::fs::write(&hang, "").unwrap();
    server.signal("HUP");
    let sleeping = || {
        std::process::Command::new("pgrep")
            .args(["-f", "^sleep 3217"])
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    // The command is now sleeping: requests are answered all the same.
    wait_until("the reload started", sleeping);
    for _ in 0..20 {
        assert_eq!(verify(a, ARM, ARM_KEY), 200);
    }
    wait_until("the reload gave up", || health(a)["state"] == "stale");
    let error = health(a)["error"].as_str().unwrap().to_owned();
    assert!(error.contains("did not finish within 3s"), "{error}");
    assert_eq!(verify(a, ARM, ARM_KEY), 200);
    wait_until("the command killed with its group", || !sleeping());
}

/// The logrotate snippet of docs/operations.md, run by the real logrotate (with `kill -HUP`
/// for `systemctl reload`): the audit file is moved, serve reopens a new one, and no line is
/// lost or written twice.
#[test]
fn logrotate_moves_the_audit_file_and_serve_writes_a_new_one() {
    let Some(logrotate) = ["/usr/sbin/logrotate", "/sbin/logrotate"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        return crate::common::missing_tool("logrotate", "logrotate", "the log rotation test");
    };
    let env = TestEnv::new().with_master();
    let logs = env.path("log");
    std::fs::create_dir(&logs).unwrap();
    let audit = logs.join("audit.log");
    let server = env.serve(&["--audit", audit.to_str().unwrap()]);
    let a = server.addr;
    assert_eq!(verify(a, ARM, ARM_KEY), 200);
    assert_eq!(verify(a, ARM, "0123"), 403);

    let guide = include_str!("../../docs/operations.md");
    let snippet = guide
        .split("```logrotate\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/operations.md has a logrotate snippet");
    for needed in [
        "/var/log/gobuildkey/audit.log",
        "systemctl reload gobuildkey-serve.service",
    ] {
        assert!(snippet.contains(needed), "{needed} not in the snippet");
    }
    let conf = snippet
        .replace("/var/log/gobuildkey/audit.log", audit.to_str().unwrap())
        .replace(
            "systemctl reload gobuildkey-serve.service",
            &format!("kill -HUP {}", server.child.id()),
        );
    let conf_path = env.path("logrotate.conf");
    crate::common::write_file(&conf_path, conf, 0o644);
    let out = std::process::Command::new(logrotate)
        .arg("-f")
        .arg("-s")
        .arg(env.path("logrotate.state"))
        .arg(&conf_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.wait_for_log("reloaded the masters and the policy");
    assert_eq!(verify(a, ARM, ARM_KEY), 200);

    let rotated = std::fs::read_to_string(logs.join("audit.log.1")).unwrap();
    let fresh = std::fs::read_to_string(&audit).unwrap();
    assert_eq!(rotated.lines().count(), 2, "{rotated}");
    assert_eq!(fresh.lines().count(), 1, "{fresh}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&audit).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// Under systemd (`Type=notify`): `READY=1` once listening, `RELOADING=1` with the
/// monotonic time then `READY=1` around each reload, `STOPPING=1` on SIGTERM — on the
/// socket `NOTIFY_SOCKET` names, as systemd reads them.
#[test]
fn systemd_is_told_ready_reloading_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let env = TestEnv::new().with_master();
    let socket_path = env.path("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    let next = || {
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let server = env.serve_with_env(&[], &[("NOTIFY_SOCKET", socket_path.as_os_str())]);
    let ready = next();
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    // Listening before READY=1: a request is answered.
    assert_eq!(verify(server.addr, ARM, ARM_KEY), 200);
    server.signal("HUP");
    let reloading = next();
    assert!(
        reloading.lines().any(|l| l == "RELOADING=1"),
        "{reloading:?}"
    );
    assert!(
        reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading:?}"
    );
    let ready_again = next();
    assert!(
        ready_again.lines().any(|l| l == "READY=1"),
        "{ready_again:?}"
    );
    server.signal("TERM");
    let stopping = next();
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
}

/// Red team: the policy's folder replaced whole (restored from a backup, a configuration
/// tool's `rsync --delete-after` of a folder, `mv new keys`): the watch stays on the old
/// folder, so a later revocation in the new one is never reloaded without SIGHUP, and
/// nothing says that watching stopped.
#[test]
fn a_revocation_after_the_policy_folder_was_replaced_is_reloaded() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new().with_master();
    let server = env.serve(&[]);
    let a = server.addr;
    assert_eq!(verify(a, ARM, ARM_KEY), 200);
    let keys = env.path("keys");
    let old = env.path("keys.old");
    std::fs::rename(&keys, &old).unwrap();
    std::fs::create_dir(&keys).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700)).unwrap();
    for entry in std::fs::read_dir(&old).unwrap() {
        let entry = entry.unwrap();
        let to = keys.join(entry.file_name());
        std::fs::copy(entry.path(), &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // Whatever the folder swap itself made the service do, let it settle.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(verify(a, ARM, ARM_KEY), 200);
    env.cmd()
        .args(["revoke", "--allow-unknown", ARM])
        .assert()
        .success();
    wait_until("the revocation in the new folder applies", || {
        verify(a, ARM, ARM_KEY) == 403
    });
}

/// Red team: the policy is a link to a file in another folder (a checkout of the
/// configuration repository, a secret agent's output folder). Replacing the file it points
/// at, as `gobuildkey revoke` through the link or a `git pull` there does, is a change of
/// the policy, but only the link's folder is watched.
#[test]
fn a_revocation_in_the_policy_a_link_points_at_is_reloaded() {
    let env = TestEnv::new().with_master();
    let repo = env.path("repo");
    std::fs::create_dir(&repo).unwrap();
    let real = repo.join("gobuildkey.toml");
    crate::common::write_file(&real, crate::common::EMPTY_POLICY, 0o600);
    let link = env.path("keys/gobuildkey.toml");
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let server = env.serve(&[]);
    let a = server.addr;
    assert_eq!(verify(a, ARM, ARM_KEY), 200);
    // A new version of the file, by rename beside it (as git and editors write).
    let next = repo.join(".gobuildkey.toml.new");
    crate::common::write_file(
        &next,
        format!("[principals.{ARM}]\nrevoked = true\n"),
        0o600,
    );
    std::fs::rename(&next, &real).unwrap();
    wait_until("the revocation applies", || verify(a, ARM, ARM_KEY) == 403);
}

/// Red team: a key pasted by mistake into the policy (here as a field name) must not be
/// published by the failed reload's error, which `/healthz` serves to anyone who can reach
/// the port (load balancers, probes) and serve writes to its log.
#[test]
fn a_failed_reload_never_shows_a_key_pasted_into_the_policy() {
    let env = TestEnv::new().with_master();
    let server = env.serve(&[]);
    let a = server.addr;
    let policy = env.path("keys/gobuildkey.toml");
    crate::common::write_file(
        &policy,
        format!("[principals.{ARM}]\n{ARM_KEY} = 1\n"),
        0o600,
    );
    wait_until("a stale state", || health(a)["state"] == "stale");
    let (_, body) = http_get(a, "/healthz", &[]);
    crate::common::assert_no_secret(&body, ARM_KEY);
    crate::common::assert_no_secret(&server.stderr.lock().unwrap(), ARM_KEY);
}
