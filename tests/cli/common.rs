//! The test environment: a temporary HOME and a command builder.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use tempfile::TempDir;

/// A master of the shape `gobuildkey init` writes; its keys are in `tests/data/keys.json`.
pub const MASTER: &str = "f23ffcafa5d6010469d9b02cbe015c52768bd735acc996245b0084127335ec80";
/// The HMAC-SHA256 key of `host-linux-arm-aws` under [`MASTER`] (from `keys.json`).
pub const ARM_KEY: &str = "91845ce35fee606a271e60bef0d1ce1b4a2ccec5d17171e3113f809168cd7b9d";
/// The HMAC-MD5 key of `host-linux-arm-aws` under [`MASTER`] (from `keys.json`).
pub const ARM_KEY_MD5: &str = "8b0c4698fea7bcd887bffbcc277a1934";
/// A well-formed HMAC-SHA256 key that is nobody's.
pub const OTHER_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// A principal with known keys.
pub const ARM: &str = "host-linux-arm-aws";
/// A policy naming no principal.
pub const EMPTY_POLICY: &str = "# test policy\n[principals]\n";

/// A temporary home folder for one test.
pub struct TestEnv {
    pub home: TempDir,
}

/// The binary as an unprivileged user can run it: where cargo built it if every folder on
/// the way lets others through, else a copy made once for the whole test run (copying it
/// for each test would race with other tests' forks: "text file busy").
pub fn unprivileged_binary() -> &'static Path {
    static BIN: std::sync::OnceLock<(Option<TempDir>, PathBuf)> = std::sync::OnceLock::new();
    let (_, path) = BIN.get_or_init(|| {
        let built = PathBuf::from(env!("CARGO_BIN_EXE_gobuildkey"));
        let reachable = built
            .ancestors()
            .skip(1)
            .all(|dir| fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0));
        if reachable && fs::metadata(&built).unwrap().permissions().mode() & 0o001 != 0 {
            return (None, built);
        }
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let copy = dir.path().join("gobuildkey");
        fs::copy(&built, &copy).unwrap();
        (Some(dir), copy)
    });
    path
}

/// Every command and subcommand, for the tests that go through all of them; [`commands`]
/// leaves out those this build does not have.
const COMMANDS: [&[&str]; 24] = [
    &["init"],
    &["mint"],
    &["verify"],
    &["install"],
    &["path"],
    &["check"],
    &["fingerprint"],
    &["rotate"],
    &["end-grace"],
    &["revoke"],
    &["reinstate"],
    &["policy"],
    &["policy", "init"],
    &["import"],
    &["explain"],
    &["log"],
    &["scan"],
    &["master", "rotate"],
    &["master", "add"],
    &["master", "retire"],
    &["serve"],
    &["probe"],
    &["completions"],
    &["man"],
];

/// Whether this build has `command`: `serve` and `probe` come with the features of the same
/// names (on by default; `cargo test --no-default-features` tests the build without them).
pub fn is_built(command: &str) -> bool {
    (command != "serve" || cfg!(feature = "serve"))
        && (command != "probe" || cfg!(feature = "probe"))
}

/// The commands of [`COMMANDS`] this build has.
pub fn commands() -> impl Iterator<Item = &'static [&'static str]> {
    COMMANDS.into_iter().filter(|command| is_built(command[0]))
}

/// The user that [`TestEnv::unprivileged_cmd`] runs as when the tests run as root.
pub const NOBODY: u32 = 65534;

impl TestEnv {
    pub fn new() -> Self {
        Self {
            home: tempfile::tempdir().unwrap(),
        }
    }

    /// `gobuildkey` as an unprivileged user, for refusals that root would not meet (root
    /// ignores file modes). As root, the home folder is given to `nobody` and the command
    /// runs through `setpriv` (util-linux); otherwise it runs as the current user.
    pub fn unprivileged_cmd(&self) -> Command {
        if !rustix::process::geteuid().is_root() {
            return self.cmd();
        }
        let bin = unprivileged_binary();
        std::os::unix::fs::chown(self.home.path(), Some(NOBODY), Some(NOBODY)).unwrap();
        let mut cmd = std::process::Command::new("setpriv");
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .current_dir(self.home.path())
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
                "sh",
                "-c",
            ])
            .arg(r#"umask 000 && exec "$0" "$@""#)
            .arg(bin);
        Command::from_std(cmd)
    }

    /// `gobuildkey` under umask 000, with only PATH and HOME set, in the home folder.
    pub fn cmd(&self) -> Command {
        Command::from_std(self.std_cmd())
    }

    /// The same as a plain [`std::process::Command`], for tests that manage the process.
    pub fn std_cmd(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new("sh");
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .current_dir(self.home.path())
            .args(["-c", r#"umask 000 && exec "$0" "$@""#])
            .arg(env!("CARGO_BIN_EXE_gobuildkey"));
        cmd
    }

    /// Where the master lives by default.
    pub fn master_path(&self) -> PathBuf {
        self.home.path().join("keys/gobuilder-master.key")
    }

    /// Writes a master file at the default path with `mode`.
    pub fn write_master(&self, content: &[u8], mode: u32) -> PathBuf {
        let path = self.master_path();
        write_file(&path, content, mode);
        path
    }

    /// The builder agent's per-host key file of `principal` in this home.
    pub fn per_host(&self, principal: &str) -> PathBuf {
        self.path(&format!(".gobuildkey-{principal}"))
    }

    /// Writes [`MASTER`] with whitespace around it, as a hand-made master file might be, and
    /// an empty policy beside it (as `gobuildkey policy init` would).
    pub fn with_master(self) -> Self {
        self.write_master(format!("\n  {MASTER}\t\r\n").as_bytes(), 0o600);
        self.write_policy(EMPTY_POLICY);
        self
    }

    /// Where the policy lives by default: beside the default master.
    pub fn policy_path(&self) -> PathBuf {
        self.home.path().join("keys/gobuildkey.toml")
    }

    /// Writes the policy at the default path, mode 0600.
    pub fn write_policy(&self, text: &str) -> PathBuf {
        let path = self.policy_path();
        write_file(&path, text, 0o600);
        path
    }

    /// A master-key command printing [`MASTER`] (with whitespace around it) from a file, as
    /// a secret manager would: the master itself is never put on a command line (gobuildkey
    /// refuses a command line holding what looks like a key).
    pub fn master_command(&self) -> String {
        let path = self.path("master-from-a-command");
        write_file(&path, format!("  {MASTER}\n"), 0o600);
        format!("cat '{}'", path.display())
    }

    /// A path under the home folder.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.home.path().join(rel)
    }
}

/// Writes `content` to `path` (making its folders) and gives it `mode`.
pub fn write_file(path: &Path, content: impl AsRef<[u8]>, mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs `cmd`, which must succeed, and gives its standard output.
pub fn stdout_of(cmd: &mut Command) -> String {
    String::from_utf8(cmd.assert().success().get_output().stdout.clone()).unwrap()
}

/// The permission bits of `path` (not following links).
pub fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Everything a run wrote, for checks that a secret is absent.
pub fn all_output(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Fails if `text` holds `secret` or any 8-character piece of it.
pub fn assert_no_secret(text: &str, secret: &str) {
    for start in 0..=secret.len().saturating_sub(8) {
        let piece = &secret[start..start + 8.min(secret.len())];
        if let Some(at) = text.find(piece) {
            let from = text[..at].rfind('\n').map_or(0, |n| n + 1);
            let to = text[at..].find('\n').map_or(text.len(), |n| at + n);
            panic!(
                "output holds {piece:?} of a secret, in the line {:?}",
                &text[from..to]
            );
        }
    }
}

/// The exit code of `gobuildkey verify PRINCIPAL` with `key` on standard input.
pub fn verifies(env: &TestEnv, principal: &str, key: &str) -> i32 {
    verifies_from(env, principal, key, &[])
}

/// [`verifies`], presented from the machine `machine` (`--machine`), if given.
pub fn verifies_from(env: &TestEnv, principal: &str, key: &str, machine: &[&str]) -> i32 {
    let flags: Vec<&str> = machine.iter().flat_map(|m| ["--machine", m]).collect();
    verifies_with(env, &flags, principal, key)
}

/// [`verifies`], with `flags` before the principal (`--clock-skew 0s`, `--machine NAME`).
pub fn verifies_with(env: &TestEnv, flags: &[&str], principal: &str, key: &str) -> i32 {
    env.cmd()
        .arg("verify")
        .args(flags)
        .arg(principal)
        .write_stdin(key.to_owned())
        .output()
        .unwrap()
        .status
        .code()
        .unwrap()
}

/// A file's inode, to tell a file left alone from one replaced.
pub fn inode(path: &Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&fs::symlink_metadata(path).unwrap())
}

/// The names in a folder, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// The fingerprint `mint` printed on standard error.
pub fn fingerprint_in(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let at = text.find("SHA256:").expect("a fingerprint");
    text[at..at + 23].to_owned()
}

/// The known-answer vectors of `tests/data/keys.json`.
#[derive(serde::Deserialize)]
pub struct Vector {
    pub alg: String,
    pub master: String,
    pub principal: String,
    pub key: String,
}

pub fn vectors() -> Vec<Vector> {
    serde_json::from_str(include_str!("../data/keys.json")).unwrap()
}

#[test]
fn constants_are_the_vectors() {
    let found = |alg: &str| {
        vectors()
            .into_iter()
            .find(|v| v.alg == alg && v.master == MASTER && v.principal == ARM)
            .unwrap()
            .key
    };
    assert_eq!(found("hmac-sha256"), ARM_KEY);
    assert_eq!(found("hmac-md5"), ARM_KEY_MD5);
}

/// A tool a test needs is missing: a failure in CI, whose `.ci/run` installs it; a skip,
/// saying what was not done, anywhere else.
pub fn missing_tool(tool: &str, package: &str, not_done: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{tool} is needed (.ci/run installs {package})"
    );
    eprintln!("skipped: no {tool} {not_done}");
}

/// A port that was free a moment ago, for servers the tests start (nginx, a stub).
#[cfg(any(feature = "serve", feature = "probe"))]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The pid a command wrote to `file`.
pub fn pid_in(file: &Path) -> u32 {
    let text = fs::read_to_string(file).unwrap();
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("no pid in {text:?}"))
}

/// Whether process `pid` is gone: no such process, or one that died and waits only to be
/// reaped by init. A process just sent SIGKILL may take a moment to die, so this waits for
/// that (the bound only ends a broken run; nothing here is timed).
pub fn is_gone(pid: u32) -> bool {
    let dead = || match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the command's name, which is in parentheses.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with(['Z', 'X'])),
    };
    for _ in 0..6000 {
        if dead() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

/// A master or keyring command that never finishes: it writes its pid to `pid` and the pid
/// of a background process of its own to `background`, then waits for that process. A
/// comment names a token, which no message may repeat. (The background process does not
/// hold gobuildkey's standard error, which the test reads to its end: were it left running,
/// the test would fail on it rather than wait for it.)
pub fn hung_command(pid: &Path, background: &Path) -> String {
    format!(
        "echo $$ > '{}'; sleep 1000 2>/dev/null & echo $! > '{}'; wait # token=hunter2",
        pid.display(),
        background.display()
    )
}

/// A master command that prints [`MASTER`] (as [`TestEnv::master_command`]) and exits,
/// leaving behind a process that holds its standard output (and not gobuildkey's standard
/// error, as in [`hung_command`]), whose pid it writes to `background`.
pub fn command_leaving_a_process(env: &TestEnv, background: &Path) -> String {
    format!(
        "sleep 1000 2>/dev/null & echo $! > '{}'; {}",
        background.display(),
        env.master_command()
    )
}

/// The policy `policy init --from-log` rebuilds from the action log of `env`'s policy (the
/// log copied beside a new policy file, `replayed.toml`, and replayed there).
pub fn replayed_policy(env: &TestEnv) -> gobuildkey::policy::Policy {
    fs::copy(
        env.path("keys/gobuildkey-actions.log"),
        env.path("replayed-actions.log"),
    )
    .unwrap();
    env.cmd()
        .args(["policy", "init", "--from-log", "--policy"])
        .arg(env.path("replayed.toml"))
        .assert()
        .success();
    gobuildkey::policy::Policy::load(&env.path("replayed.toml")).unwrap()
}

/// The one object, on one line, of schema gobuildkey/1, that `gobuildkey --json ARGS`
/// prints, and its exit code.
pub fn json_object(env: &TestEnv, args: &[&str], stdin: &str) -> (serde_json::Value, Option<i32>) {
    let out = env
        .cmd()
        .arg("--json")
        .args(args)
        .write_stdin(stdin.to_owned())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.lines().count(),
        1,
        "{args:?}: one object, one line: {text}"
    );
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["schema"], "gobuildkey/1");
    (value, out.status.code())
}
