//! `gobuildkey scan`: leaked keys and tokens found in files, whose they are and whether they
//! are live — and never the key.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use gobuildkey::derive::Deriver;
use gobuildkey::key::Algorithm;
use gobuildkey::master::MasterSecret;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::common::{
    ARM, ARM_KEY, ARM_KEY_MD5, MASTER, TestEnv, all_output, assert_no_secret, stdout_of, write_file,
};

/// `scan ARGS` in the home folder: its JSON object, exit code, and all it printed, checked
/// to hold none of `secrets` (nor the master).
fn scan(env: &TestEnv, args: &[&str], secrets: &[&str]) -> (Value, i32) {
    let out = env
        .cmd()
        .arg("--json")
        .arg("scan")
        .args(args)
        .output()
        .unwrap();
    let all = all_output(&out);
    for secret in secrets.iter().chain([&MASTER]) {
        assert_no_secret(&all, secret);
    }
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {all}"));
    (json, out.status.code().unwrap())
}

/// The same in words: standard output and standard error, and the exit code.
fn scan_text(env: &TestEnv, args: &[&str], secrets: &[&str]) -> (String, String, i32) {
    let out = env.cmd().arg("scan").args(args).output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8(out.stdout.clone()).unwrap(),
        String::from_utf8(out.stderr.clone()).unwrap(),
    );
    for secret in secrets.iter().chain([&MASTER]) {
        assert_no_secret(&all_output(&out), secret);
    }
    (stdout, stderr, out.status.code().unwrap())
}

fn token(principal: &str, generation: u64, from_now: SignedDuration) -> String {
    let master = MasterSecret::from_text(MASTER.as_bytes()).unwrap();
    Deriver::new(&master, Algorithm::HmacSha256)
        .derive_token(
            &principal.parse().unwrap(),
            generation,
            None,
            Timestamp::now() + from_now,
        )
        .expose_secret()
        .to_owned()
}

fn mint(env: &TestEnv, args: &[&str]) -> String {
    stdout_of(env.cmd().arg("mint").args(args))
        .trim()
        .to_owned()
}

/// A working copy in `repo/` with `files` (path, content).
fn repo(env: &TestEnv, files: &[(&str, String)]) {
    for (path, content) in files {
        write_file(&env.path(&format!("repo/{path}")), content, 0o644);
    }
}

#[test]
fn without_a_master_a_token_fails_the_scan_and_plain_keys_are_not_looked_for() {
    let env = TestEnv::new();
    let live = token(ARM, 0, SignedDuration::from_hours(1));
    repo(
        &env,
        &[
            ("config.env", format!("KEY={ARM_KEY}\n")),
            ("notes/token.txt", format!("first line\nsecond: {live}\n")),
        ],
    );
    let (json, code) = scan(&env, &["repo"], &[&live, ARM_KEY]);
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["mode"], "no-master");
    assert_eq!(json["files"], 2);
    let findings = json["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{json}");
    let found = &findings[0];
    assert_eq!(found["path"], "repo/notes/token.txt");
    assert_eq!(found["line"], 2);
    assert_eq!(found["state"], "unknown");
    assert_eq!(found["kind"], "token");
    assert_eq!(found["principal"], Value::Null);
    // In words, on one line, never the token.
    let (stdout, stderr, code) = scan_text(&env, &["repo"], &[&live, ARM_KEY]);
    assert_eq!(code, 1);
    assert!(
        stdout.starts_with("repo/notes/token.txt:2: unknown hmac-sha256 token (expires "),
        "{stdout}"
    );
    assert!(stderr.contains("without a master"), "{stderr}");
}

#[test]
fn without_a_master_only_expired_tokens_and_hex_pass() {
    let env = TestEnv::new();
    let expired = token(ARM, 0, SignedDuration::from_hours(-2));
    repo(
        &env,
        &[
            ("old.txt", format!("{expired}\n")),
            (
                "Cargo.lock",
                format!("checksum = \"{}\"\n", "ab".repeat(32)),
            ),
        ],
    );
    let (json, code) = scan(&env, &["--no-master", "repo"], &[&expired]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["findings"][0]["state"], "dead");
    assert_eq!(json["findings"][0]["reason"], "expired");
    assert_eq!(json["findings"].as_array().unwrap().len(), 1);
    // An empty folder: nothing found, 0.
    fs::create_dir_all(env.path("empty")).unwrap();
    let (json, code) = scan(&env, &["empty"], &[]);
    assert_eq!((code, json["files"].as_u64()), (0, Some(0)));
}

#[test]
fn with_the_master_live_keys_fail_the_scan_and_say_whose() {
    let env = TestEnv::new().with_master();
    let key = mint(&env, &[ARM]);
    assert_eq!(key, ARM_KEY);
    let md5 = mint(&env, &["--alg", "hmac-md5", "host-old"]);
    let live = mint(&env, &["--expires-in", "1h", "host-b"]);
    let bound = mint(
        &env,
        &["--machine", "builder-1", "--expires-in", "1h", "host-c"],
    );
    repo(
        &env,
        &[
            ("a.txt", format!("x\ny\n{}\n", key.to_uppercase())),
            ("b/token", format!("{live}\n{bound}")),
            ("md5.txt", format!("k: {md5}")),
        ],
    );
    let secrets = [key.as_str(), &md5, &live, &bound];
    let (json, code) = scan(&env, &["repo"], &secrets);
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["mode"], "master");
    let findings = json["findings"].as_array().unwrap();
    let summary: Vec<(&str, u64, &str, &str, &str)> = findings
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap(),
                f["line"].as_u64().unwrap(),
                f["state"].as_str().unwrap(),
                f["kind"].as_str().unwrap(),
                f["principal"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("repo/a.txt", 3, "live", "key", ARM),
            ("repo/b/token", 1, "live", "token", "host-b"),
            ("repo/b/token", 2, "live", "token", "host-c"),
            ("repo/md5.txt", 1, "live", "key", "host-old"),
        ],
        "{json}"
    );
    assert_eq!(findings[2]["machine"], "builder-1");
    assert_eq!(findings[3]["algorithm"], "hmac-md5");
    let (stdout, _, _) = scan_text(&env, &["repo"], &secrets);
    assert!(
        stdout.contains(
            "repo/b/token:2: live hmac-sha256 token of host-c bound to builder-1 (generation 0, expires "
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("repo/a.txt:3: live hmac-sha256 key of host-linux-arm-aws (generation 0, fingerprint SHA256:"),
        "{stdout}"
    );
}

#[test]
fn revoked_rotated_and_expired_keys_are_dead_and_pass() {
    let env = TestEnv::new().with_master();
    let revoked = mint(&env, &["host-r"]);
    env.cmd().args(["revoke", "host-r"]).assert().success();
    let rotated = mint(&env, &[ARM]);
    stdout_of(env.cmd().args(["rotate", ARM]));
    let expired = token(ARM, 1, SignedDuration::from_hours(-1));
    repo(
        &env,
        &[
            ("r", format!("{revoked}\n")),
            ("s", format!("{rotated}\n")),
            ("t", format!("{expired}\n")),
        ],
    );
    let secrets = [revoked.as_str(), &rotated, &expired];
    let (json, code) = scan(&env, &["repo"], &secrets);
    assert_eq!(code, 0, "{json}");
    let reasons: Vec<(&str, &str)> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["state"].as_str().unwrap(), f["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("dead", "revoked"),
            ("dead", "rotated"),
            ("dead", "expired")
        ],
        "{json}"
    );
    let (stdout, _, code) = scan_text(&env, &["repo"], &secrets);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("repo/r:1: dead (revoked) hmac-sha256 key of host-r"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "repo/s:1: dead (rotated) hmac-sha256 key of host-linux-arm-aws (generation 0,"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("repo/t:1: dead (expired) hmac-sha256 token of host-linux-arm-aws (generation 1, expires "), "{stdout}");
}

#[test]
fn a_key_of_a_principal_the_policy_does_not_name_is_not_reported() {
    let env = TestEnv::new().with_master();
    // The key of ARM under the master, but the policy names nobody.
    repo(&env, &[("k", format!("{ARM_KEY}\n{ARM_KEY_MD5}\n"))]);
    let (json, code) = scan(&env, &["repo"], &[ARM_KEY, ARM_KEY_MD5]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["findings"], serde_json::json!([]));
}

#[test]
fn links_are_not_followed_and_unreadable_files_are_reported() {
    let env = TestEnv::new().with_master();
    let key = mint(&env, &[ARM]);
    // The key outside the tree, reached only through links.
    write_file(&env.path("outside/k"), format!("{key}\n"), 0o644);
    fs::create_dir_all(env.path("repo")).unwrap();
    std::os::unix::fs::symlink(env.path("outside/k"), env.path("repo/link")).unwrap();
    std::os::unix::fs::symlink(env.path("outside"), env.path("repo/dir")).unwrap();
    // A .git folder is not read.
    write_file(&env.path("repo/.git/objects/k"), format!("{key}\n"), 0o644);
    let (json, code) = scan(&env, &["repo"], &[&key]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["findings"], serde_json::json!([]));
    let skipped: Vec<&str> = json["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["repo/dir", "repo/link"]);
    // A link named on the command line is what was asked for: it is followed (a scan of
    // it that read nothing and exited 0 would say "clean"), but no link under it is.
    std::os::unix::fs::symlink(env.path("repo"), env.path("repo-link")).unwrap();
    for named in ["repo/link", "repo/dir", "repo-link/dir/"] {
        let (json, code) = scan(&env, &[named], &[&key]);
        assert_eq!(code, 1, "{named}: {json}");
        assert_eq!(json["findings"][0]["state"], "live", "{named}: {json}");
        assert_eq!(json["skipped"], serde_json::json!([]), "{named}: {json}");
    }
    let (json, code) = scan(&env, &["repo-link"], &[&key]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["skipped"].as_array().unwrap().len(), 2, "{json}");
    // A dangling link named: not read.
    std::os::unix::fs::symlink(env.path("nowhere"), env.path("dangling")).unwrap();
    let (json, code) = scan(&env, &["dangling"], &[&key]);
    assert_eq!(code, 74, "{json}");

    // A missing path: 74, nothing live.
    let (json, code) = scan(&env, &["repo", "no-such-file"], &[&key]);
    assert_eq!(code, 74, "{json}");
    assert_eq!(json["unreadable"][0]["path"], "no-such-file");
}

#[test]
fn an_unreadable_file_is_reported_and_a_live_key_still_wins() {
    let env = TestEnv::new().with_master();
    let key = mint(&env, &[ARM]);
    // A live key and a missing file: 1, the live key wins.
    write_file(&env.path("repo/k"), format!("{key}\n"), 0o644);
    let (json, code) = scan(&env, &["repo/k", "repo/missing"], &[&key]);
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["unreadable"][0]["path"], "repo/missing");
    // A file its reader may not read (as an unprivileged user: root reads anything): 74.
    fs::remove_file(env.path("repo/k")).unwrap();
    write_file(&env.path("repo/secret"), "x", 0o000);
    fs::set_permissions(env.path("repo/secret"), fs::Permissions::from_mode(0o000)).unwrap();
    let out = env
        .unprivileged_cmd()
        .args(["--json", "scan", "--no-master", "repo"])
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(74), "{}", all_output(&out));
    assert_eq!(json["unreadable"][0]["path"], "repo/secret", "{json}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("repo/secret: not read: "),
        "{}",
        all_output(&out)
    );
}

#[test]
fn a_given_master_that_cannot_be_loaded_is_an_error_not_a_scan_without_it() {
    let env = TestEnv::new();
    repo(&env, &[("k", "nothing\n".into())]);
    let out = env
        .cmd()
        .args(["scan", "--master-key", "missing.key", "repo"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(66), "{}", all_output(&out));
    let out = env
        .cmd()
        .env("GOBUILDKEY_MASTER_KEY_FILE", env.path("missing.key"))
        .args(["scan", "repo"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(66), "{}", all_output(&out));
    // The default master, present but open to others: refused too.
    let env = TestEnv::new().with_master();
    fs::set_permissions(env.master_path(), fs::Permissions::from_mode(0o644)).unwrap();
    repo(&env, &[("k", "nothing\n".into())]);
    let out = env
        .unprivileged_cmd()
        .args(["scan", "repo"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(77), "{}", all_output(&out));
}

#[test]
fn standard_input_is_scanned_as_dash() {
    let env = TestEnv::new().with_master();
    let live = mint(&env, &["--expires-in", "1h", ARM]);
    let out = env
        .cmd()
        .args(["--json", "scan", "-"])
        .write_stdin(format!("+++ b/file\n+{live}\n"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_no_secret(&all_output(&out), &live);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["findings"][0]["path"], "-");
    assert_eq!(json["findings"][0]["line"], 2);
}

#[test]
fn quiet_prints_nothing_and_keeps_the_status() {
    let env = TestEnv::new();
    let live = token(ARM, 0, SignedDuration::from_hours(1));
    repo(&env, &[("t", live.clone())]);
    let out = env.cmd().args(["-q", "scan", "repo"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "{}",
        all_output(&out)
    );
}

/// A machine's own key replaced by `rotate --machine` is found and dead (rotated); the
/// machine's new key and a token bound to it are live.
#[test]
fn a_machine_key_rotated_alone_is_dead_and_its_successor_live() {
    let env = TestEnv::new().with_master();
    let old = mint(&env, &["--machine", "builder-7", ARM]);
    let new = stdout_of(env.cmd().args(["rotate", "--machine", "builder-7", ARM]));
    let new = new.trim().to_owned();
    let bound = mint(&env, &["--machine", "builder-7", "--expires-in", "1h", ARM]);
    repo(
        &env,
        &[
            ("old", format!("{old}\n")),
            ("new", format!("{new}\n")),
            ("token", format!("{bound}\n")),
        ],
    );
    let (json, code) = scan(&env, &["repo"], &[old.as_str(), &new, &bound]);
    assert_eq!(code, 1, "{json}");
    let mut states: Vec<(String, String)> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let path = f["path"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned();
            let state = format!(
                "{} {}",
                f["state"].as_str().unwrap(),
                f["reason"].as_str().unwrap_or("")
            );
            (path, state)
        })
        .collect();
    states.sort();
    assert_eq!(
        states,
        [
            ("new".to_owned(), "live ".to_owned()),
            ("old".to_owned(), "dead rotated".to_owned()),
            ("token".to_owned(), "live ".to_owned()),
        ],
        "{json}"
    );
}

/// A file's name is shown escaped when it holds control characters (an escape sequence, a
/// newline that would forge a line) or bidirectional controls (U+202E shows `txt.exe` as
/// `exe.txt`).
#[test]
fn paths_with_control_or_bidirectional_characters_are_escaped() {
    let env = TestEnv::new();
    let live = token(ARM, 0, SignedDuration::from_hours(1));
    for (name, escaped) in [
        ("a\x1b[2Jb", r#""repo/a\u{1b}[2Jb""#),
        ("x\ny", r#""repo/x\ny""#),
        ("evil\u{202e}txt.exe", r#""repo/evil\u{202e}txt.exe""#),
        ("iso\u{2066}late", r#""repo/iso\u{2066}late""#),
    ] {
        let _ = fs::remove_dir_all(env.path("repo"));
        repo(&env, &[(name, format!("{live}\n"))]);
        let (stdout, _, code) = scan_text(&env, &["--no-master", "repo"], &[&live]);
        assert_eq!(code, 1, "{stdout}");
        assert!(
            stdout.starts_with(&format!("{escaped}:1: unknown")),
            "{stdout}"
        );
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
    }
}
