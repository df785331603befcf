//! What service managers run: the systemd unit `contrib/systemd/gobuildkey-serve.service`.
//!
//! The unit is checked by `systemd-analyze verify` (systemd's own parser, which needs no
//! running systemd), and its `ExecStart=` is run as the unit runs it: as a user that is
//! neither root nor the owner of the policy, the master handed over in a credentials
//! folder. The check is shown to fail on a broken unit. `.ci/run` installs systemd;
//! without it a test is skipped with a message, except under CI, where it fails.

use std::fs;
#[cfg(feature = "serve")]
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

#[cfg(feature = "serve")]
use crate::common::{ARM, ARM_KEY, EMPTY_POLICY, MASTER, NOBODY, write_file};

/// The unit, from the repository's root.
const UNIT: &str = "contrib/systemd/gobuildkey-serve.service";
/// Where the unit expects the binary; the checks put the built one there instead.
const UNIT_BINARY: &str = "/usr/local/bin/gobuildkey";

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn unit_text() -> String {
    fs::read_to_string(repository().join(UNIT)).unwrap()
}

// ---- systemd ----

/// What `systemd-analyze verify` says of a unit with the text `unit`, its binary replaced
/// by the one just built (systemd checks that `ExecStart=` names an executable): `Ok` when
/// it exits 0 and says nothing about the unit, else `Err` with what it said. `None` when
/// `systemd-analyze` is not installed.
fn systemd_verify(unit: &str) -> Option<Result<(), String>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gobuildkey-serve.service");
    fs::write(
        &path,
        unit.replace(UNIT_BINARY, env!("CARGO_BIN_EXE_gobuildkey")),
    )
    .unwrap();
    let out = match Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .env("SYSTEMD_LOG_COLOR", "0")
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("cannot run systemd-analyze: {e}"),
    };
    let said = crate::common::all_output(&out);
    // Warnings about this unit name it ("…/gobuildkey-serve.service:53: Unknown key …");
    // anything else is about the machine's own units.
    let about_the_unit: Vec<&str> = said
        .lines()
        .filter(|line| line.contains("gobuildkey-serve.service"))
        .collect();
    if !said.trim().is_empty() {
        eprintln!("systemd-analyze verify said:\n{said}");
    }
    Some(if out.status.success() && about_the_unit.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n{said}", out.status))
    })
}

fn no_systemd_analyze() {
    crate::common::missing_tool(
        "systemd-analyze",
        "systemd",
        "to check contrib/systemd/gobuildkey-serve.service",
    );
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = unit_text();
    assert!(
        unit.contains(&format!("ExecStart={UNIT_BINARY} serve")),
        "the unit runs {UNIT_BINARY} serve"
    );
    let Some(verdict) = systemd_verify(&unit) else {
        return no_systemd_analyze();
    };
    if let Err(said) = verdict {
        panic!("systemd-analyze verify {UNIT}: {said}");
    }
}

/// The check above is one that fails: a misspelt directive, a wrong value and a missing
/// binary are each caught (the first two are only warnings, exit 0).
#[test]
fn a_broken_unit_fails_the_check() {
    let unit = unit_text();
    let broken = [
        unit.replace("\nNoNewPrivileges=yes", "\nNoNewPrivilege=yes"),
        unit.replace("\nType=notify", "\nType=notifyy"),
        unit.replace("\nRestartSec=2s", "\nRestartSec=soon"),
        unit.replace(
            &format!("ExecStart={UNIT_BINARY}"),
            "ExecStart=/nowhere/gobuildkey",
        ),
    ];
    for text in broken {
        assert_ne!(text, unit);
        let Some(verdict) = systemd_verify(&text) else {
            return no_systemd_analyze();
        };
        assert!(verdict.is_err(), "a broken unit passed:\n{text}");
    }
}

/// The words of the unit's `ExecStart=` (its continued lines joined), the binary first.
#[cfg(feature = "serve")]
fn exec_start(unit: &str) -> Vec<String> {
    let joined = unit.replace("\\\n", " ");
    let line = joined
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .expect("an ExecStart= line");
    line.split_whitespace().map(str::to_owned).collect()
}

/// A setting of the unit's `[Service]` section (the first, if repeated).
#[cfg(feature = "serve")]
fn setting<'a>(unit: &'a str, name: &str) -> Option<&'a str> {
    unit.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
}

/// Starts `cmd` (a `gobuildkey serve` listening on `addr`) and waits until it answers.
#[cfg(feature = "serve")]
fn start_serving(mut cmd: Command, addr: std::net::SocketAddr) -> crate::server::Server {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut pipe = child.stderr.take().unwrap();
    let sink = std::sync::Arc::clone(&stderr);
    std::thread::spawn(move || {
        let mut buf = [0; 4096];
        while let Ok(n @ 1..) = pipe.read(&mut buf) {
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let mut server = crate::server::Server {
        child,
        addr,
        stderr,
    };
    for _ in 0..3000 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return server;
        }
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!(
                "serve exited ({status}) before listening: {}",
                server.stderr.lock().unwrap()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("serve did not listen: {}", server.stderr.lock().unwrap());
}

/// Runs `program args…` as the unprivileged user [`NOBODY`] (group `gid`, no other group)
/// under `umask`, when the tests run as root; as the current user otherwise.
#[cfg(feature = "serve")]
fn as_unprivileged(gid: u32, umask: &str, program: &Path, args: &[String]) -> Command {
    let mut cmd;
    if rustix::process::geteuid().is_root() {
        cmd = Command::new("setpriv");
        cmd.args([
            format!("--reuid={NOBODY}"),
            format!("--regid={gid}"),
            "--clear-groups".to_owned(),
            "--".to_owned(),
        ]);
        cmd.arg("sh");
    } else {
        cmd = Command::new("sh");
    }
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .arg("-c")
        .arg(format!(r#"umask {umask} && exec "$0" "$@""#))
        .arg(program)
        .args(args);
    cmd
}

/// The unit's command line, run as its service runs it: by a user that is not root
/// (`DynamicUser=`), the master in a credentials folder that only this user can read (as
/// `LoadCredential=` makes it), the policy root's and readable by all, as
/// docs/operations.md says to leave it, and the audit log in a folder of that user's
/// (`LogsDirectory=`), under `UMask=`. It answers `/healthz`, verifies a key and audits it;
/// the policy as `gobuildkey init` leaves it (0600) is refused, as the docs warn.
#[cfg(feature = "serve")]
#[test]
fn the_units_command_line_serves_as_an_unprivileged_user() {
    use crate::server::http_get;
    let unit = unit_text();
    let words = exec_start(&unit);
    assert_eq!(words[..2], [UNIT_BINARY, "serve"]);
    // The credential the command line reads is the one the unit loads.
    let credential = setting(&unit, "LoadCredential").unwrap();
    let (id, source) = credential.split_once(':').unwrap();
    assert_eq!(source, "/etc/gobuildkey/master.key");
    assert!(words.contains(&format!("${{CREDENTIALS_DIRECTORY}}/{id}")));
    assert_eq!(setting(&unit, "LogsDirectory"), Some("gobuildkey"));
    let umask = setting(&unit, "UMask").unwrap();

    let root = tempfile::tempdir().unwrap();
    fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let at = |rel: &str| root.path().join(rel);
    let service_user = rustix::process::geteuid().is_root();
    let give = |path: &Path| {
        if service_user {
            std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
        }
    };
    // /run/credentials/gobuildkey-serve.service: the service user's, read-only.
    let credentials = at("credentials");
    write_file(&credentials.join(id), format!("{MASTER}\n"), 0o400);
    give(&credentials.join(id));
    give(&credentials);
    fs::set_permissions(&credentials, fs::Permissions::from_mode(0o500)).unwrap();
    // /etc/gobuildkey: root's (the test's), the policy readable by all.
    let etc = at("etc");
    write_file(&etc.join("gobuildkey.toml"), EMPTY_POLICY, 0o644);
    fs::set_permissions(&etc, fs::Permissions::from_mode(0o755)).unwrap();
    // /var/log/gobuildkey: the service user's, 0700.
    let logs = at("logs");
    fs::create_dir(&logs).unwrap();
    fs::set_permissions(&logs, fs::Permissions::from_mode(0o700)).unwrap();
    give(&logs);

    let port = crate::common::free_port();
    let args: Vec<String> = words[1..]
        .iter()
        .map(|word| {
            word.replace("${CREDENTIALS_DIRECTORY}", credentials.to_str().unwrap())
                .replace("/etc/gobuildkey", etc.to_str().unwrap())
                .replace("/var/log/gobuildkey", logs.to_str().unwrap())
                .replace("127.0.0.1:8790", &format!("127.0.0.1:{port}"))
        })
        .collect();
    assert!(
        args.contains(&format!("127.0.0.1:{port}")),
        "the unit listens on 127.0.0.1:8790: {words:?}"
    );
    let binary = crate::common::unprivileged_binary();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let server = start_serving(as_unprivileged(NOBODY, umask, binary, &args), addr);
    assert_eq!(http_get(addr, "/healthz", &[]).0, 200);
    let headers = [
        ("X-Go-Host-Type", ARM),
        ("X-Go-Builder-Key", ARM_KEY),
        ("X-Go-Builder-Hostname", "builder-7"),
        ("X-Revdial-Version", "2"),
    ];
    assert_eq!(
        http_get(addr, "/verify", &headers),
        (200, "ok\n".to_owned())
    );
    drop(server);
    let audit = logs.join("audit.log");
    assert!(fs::read_to_string(&audit).unwrap().contains(ARM));
    assert_eq!(crate::common::mode(&audit), 0o600);

    // The policy as `gobuildkey init` leaves it, root's and 0600: the service's user
    // cannot read it, and serve does not start.
    if service_user {
        fs::set_permissions(
            etc.join("gobuildkey.toml"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let out = as_unprivileged(NOBODY, umask, binary, &args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("gobuildkey.toml"), "{stderr}");
    }
}
