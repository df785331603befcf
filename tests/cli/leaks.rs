//! No secret leaks: every command's failure paths, run with a known master and key, and
//! everything they write — standard output and error, audit lines, the service's log —
//! searched for the master, the key and every 8-character piece of either.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::common::{ARM, ARM_KEY, MASTER, TestEnv, all_output, assert_no_secret, write_file};

/// A failing run: its arguments, standard input, and extra environment.
struct Case {
    args: Vec<String>,
    stdin: String,
}

fn case(args: &[&str], stdin: &str) -> Case {
    Case {
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        stdin: stdin.to_owned(),
    }
}

#[test]
fn failure_paths_never_show_the_master_or_the_key() {
    let env = TestEnv::new().with_master();
    let key_file = env.path("key");
    fs::write(&key_file, format!("{ARM_KEY}\n")).unwrap();
    let audit = env.path("audit.log");
    let wrong = ARM_KEY.replace('9', "8");
    let cut = &ARM_KEY[..40];
    let upper = ARM_KEY.to_uppercase();
    let kf = key_file.display().to_string();
    let au = audit.display().to_string();
    let mut cases = vec![
        case(&["mint", "Bad/principal"], ""),
        case(&["mint", "--alg", "sha1", ARM], ""),
        case(&["verify", ARM, "--audit", &au], &wrong),
        case(&["verify", ARM, "--audit", &au], cut),
        case(&["verify", ARM, "--audit", &au], &upper),
        case(
            &["verify", ARM, "--audit", &au],
            &format!("{ARM_KEY}{ARM_KEY}"),
        ),
        case(&["verify", "host-other", "--audit", &au], ARM_KEY),
        case(
            &["verify", "--kind", "host", "user-x", "--audit", &au],
            ARM_KEY,
        ),
        case(&["verify", ARM, "--key-file", "missing"], ""),
        case(
            &["verify", "--batch", "--audit", &au],
            &format!("{ARM} {wrong}\n{ARM} {cut}\nhost-b {ARM_KEY}\n{ARM_KEY}\n"),
        ),
        case(&["install", ARM], cut),
        case(&["install", ARM], &upper),
        case(&["fingerprint"], cut),
        case(&["fingerprint"], &format!("{ARM_KEY} {ARM_KEY}")),
        case(&["check", "--verify", "host-other"], ""),
        case(&["init"], ""),
        case(
            &[
                "master",
                "add",
                "--file",
                &env.master_path().display().to_string(),
            ],
            "",
        ),
        case(&["master", "retire", "SHA256:0000000000000000"], ""),
        case(
            &[
                "probe",
                "--insecure-http",
                "--coordinator",
                "http://127.0.0.1:9",
                ARM,
            ],
            "",
        ),
    ];
    // The installed key is another principal's: check --verify and install --force paths.
    write_file(
        &env.path(".gobuildkey-host-other"),
        format!("{ARM_KEY}\n"),
        0o600,
    );
    cases.push(case(&["install", "host-other"], &wrong));
    cases.push(case(
        &["verify", ARM, "--key-file", &kf, "--alg", "hmac-md5"],
        "",
    ));

    let mut everything = String::new();
    let mut run = |c: &Case| {
        let out = env
            .cmd()
            .args(&c.args)
            .write_stdin(c.stdin.clone())
            .output()
            .unwrap();
        // Every case is refused, except `verify --batch`, whose refusals are answers.
        if !c
            .args
            .starts_with(&["verify".to_owned(), "--batch".to_owned()])
        {
            assert_ne!(out.status.code(), Some(0), "{:?} should fail", c.args);
        }
        everything.push_str(&all_output(&out));
    };
    for c in &cases {
        run(c);
    }

    // A key file others can read, a policy that is broken, a master that is too open:
    // the files hold secrets, the messages must not.
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(env.path(&format!(".gobuildkey-{ARM}")), format!("{cut}\n")).unwrap();
    run(&case(&["check", ARM], ""));
    fs::write(
        env.path("keys/gobuildkey.toml"),
        format!("[principals.{ARM}]\nminted_under = {ARM_KEY}\n"),
    )
    .unwrap();
    fs::set_permissions(
        env.path("keys/gobuildkey.toml"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    for c in [
        &["verify", ARM][..],
        &["rotate", ARM],
        &["revoke", ARM],
        &["policy"],
        &["mint", ARM],
    ] {
        run(&case(c, ARM_KEY));
    }
    fs::remove_file(env.path("keys/gobuildkey.toml")).unwrap();
    fs::set_permissions(env.master_path(), fs::Permissions::from_mode(0o644)).unwrap();
    for c in [
        &["mint", ARM][..],
        &["verify", ARM],
        &["serve", "--listen", "127.0.0.1:0"],
    ] {
        run(&case(c, ARM_KEY));
    }
    fs::set_permissions(env.master_path(), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(env.master_path(), "short\n").unwrap();
    run(&case(&["mint", ARM], ""));
    fs::write(env.master_path(), format!("{MASTER}\n")).unwrap();
    env.write_policy(crate::common::EMPTY_POLICY);

    // The service's refusals and its log.
    #[cfg(feature = "serve")]
    {
        use crate::server::http_get;
        let server = env.serve(&["--audit", "-", "--max-failures", "2"]);
        for key in [wrong.as_str(), cut, &upper, ARM_KEY] {
            for host in ["host-other", ARM, "user-x", "../x"] {
                let (_, body) = http_get(
                    server.addr,
                    "/verify",
                    &[("X-Go-Host-Type", host), ("X-Go-Builder-Key", key)],
                );
                everything.push_str(&body);
            }
        }
        everything.push_str(&server.stderr.lock().unwrap());
    }
    everything.push_str(&fs::read_to_string(&audit).unwrap_or_default());

    assert!(everything.contains("invalid build key"), "the runs ran");
    assert_no_secret(&everything, MASTER);
    assert_no_secret(&everything, ARM_KEY);
    assert_no_secret(&everything, &wrong);
}

/// A key pasted on the command line — as a principal, an extra argument, an option's value —
/// is refused as a usage error that says where keys go, and is never echoed (clap's own
/// "unexpected argument '…'" would print it); nothing is written.
#[test]
fn a_key_on_the_command_line_is_refused_and_never_echoed() {
    let env = TestEnv::new().with_master();
    let upper = ARM_KEY.to_uppercase();
    let spaced = format!("{ARM_KEY} ");
    let windows = format!("{ARM_KEY}\r");
    let quoted = format!("\"{ARM_KEY}\",");
    let cases: [&[&str]; 10] = [
        &["install", &spaced],
        &["install", &windows],
        &["verify", ARM, &quoted],
        &["verify", ARM, ARM_KEY],
        &["install", ARM_KEY],
        &["mint", crate::common::ARM_KEY_MD5],
        &["revoke", "--allow-unknown", "--reason", ARM_KEY, ARM],
        &["check", &upper],
        &["fingerprint", "--key-file", ARM_KEY],
        &["mint", "gbk1_0123456789"],
    ];
    for args in cases {
        let out = env.cmd().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let text = all_output(&out);
        assert!(text.contains("looks like a key"), "{args:?}: {text}");
        assert_no_secret(&text, ARM_KEY);
        assert_no_secret(&text, &upper);
        assert_no_secret(&text, crate::common::ARM_KEY_MD5);
    }
    assert!(!env.per_host(ARM_KEY).exists());
    assert_eq!(
        fs::read_to_string(env.policy_path()).unwrap(),
        crate::common::EMPTY_POLICY
    );
}

/// No secret can reach a core file: every command turns core files off (`RLIMIT_CORE` 0)
/// and makes itself not dumpable (`PR_SET_DUMPABLE` 0) before it reads anything. Checked
/// from outside, on a command waiting for its key on standard input: its limits in /proc,
/// and its dumpable flag (a process that is not dumpable has /proc files owned by root,
/// not by the user it runs as), against a dumpable process of the same user — nobody
/// when the tests run as root.
#[cfg(target_os = "linux")]
#[test]
fn no_core_files_and_a_process_that_cannot_be_dumped() {
    use std::os::unix::fs::MetadataExt;
    use std::process::{Command, Stdio};
    let env = TestEnv::new();
    let root = rustix::process::geteuid().is_root();
    let as_user = |program: &std::path::Path, args: &[&str]| {
        let mut cmd = if root {
            std::os::unix::fs::chown(env.home.path(), Some(65534), Some(65534)).unwrap();
            let mut cmd = Command::new("setpriv");
            cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(program);
            cmd
        } else {
            Command::new(program)
        };
        cmd.args(args)
            .env_clear()
            .env("HOME", env.home.path())
            .current_dir(env.home.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.spawn().unwrap()
    };
    let mut waiting = as_user(crate::common::unprivileged_binary(), &["install", ARM]);
    let mut control = as_user(std::path::Path::new("/bin/sleep"), &["30"]);
    let proc = |pid: u32| std::path::PathBuf::from(format!("/proc/{pid}"));
    // Until setpriv has exec'd the program and it has run its first lines, /proc shows
    // setpriv's limits, or the ones inherited. (gobuildkey makes itself not dumpable
    // before it lowers the limit, so once the limit is down, both are done.)
    let core_limit = |pid: u32| -> Vec<String> {
        fs::read_to_string(proc(pid).join("limits"))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("Max core file size"))
            .unwrap_or_default()
            .split_whitespace()
            .skip(4)
            .take(2)
            .map(str::to_owned)
            .collect()
    };
    // (Its `exe` link is closed to its own user once it is not dumpable.)
    let started = |pid: u32| match fs::read_link(proc(pid).join("exe")) {
        Ok(exe) => exe.ends_with("gobuildkey"),
        Err(e) => e.kind() == std::io::ErrorKind::PermissionDenied,
    };
    for _ in 0..1000 {
        if started(waiting.id()) && core_limit(waiting.id()) == ["0", "0"] {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        core_limit(waiting.id()),
        ["0", "0"],
        "soft and hard core limits"
    );
    {
        // The control too must have exec'd `sleep`: a process that changed its uid is not
        // dumpable until it execs.
        for _ in 0..1000 {
            let exe = fs::read_link(proc(control.id()).join("exe")).unwrap_or_default();
            if exe.ends_with("sleep") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let owner = |pid: u32| fs::metadata(proc(pid).join("environ")).unwrap().uid();
        let user = if root {
            65534
        } else {
            rustix::process::geteuid().as_raw()
        };
        assert_eq!(
            owner(control.id()),
            user,
            "a dumpable process's /proc is its user's"
        );
        assert_eq!(
            owner(waiting.id()),
            0,
            "gobuildkey's is not: it is not dumpable"
        );
    }
    for child in [&mut waiting, &mut control] {
        let _ = child.kill();
        let _ = child.wait();
    }
}
