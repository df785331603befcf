//! `--json` (one object, schema gobuildkey/1, docs/json.md) and `-q` (nothing but errors).

use serde_json::Value;

use crate::common::{ARM, ARM_KEY, TestEnv};

/// The one object `gobuildkey --json ARGS` prints, and its exit code; its command is the
/// first argument.
fn json_of(env: &TestEnv, args: &[&str], stdin: &str) -> (Value, Option<i32>) {
    let (value, code) = crate::common::json_object(env, args, stdin);
    assert_eq!(value["command"], args[0]);
    (value, code)
}

#[test]
fn every_command_reports_one_object() {
    let env = TestEnv::new();
    let (init, code) = json_of(&env, &["init"], "");
    assert_eq!(code, Some(0));
    assert!(init["fingerprint"].as_str().unwrap().starts_with("SHA256:"));
    assert!(
        init["path"]
            .as_str()
            .unwrap()
            .ends_with("keys/gobuilder-master.key")
    );

    let (mint, _) = json_of(&env, &["mint", ARM], "");
    let key = mint["key"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 64);
    assert_eq!(mint["generation"], 0);
    assert_eq!(mint["algorithm"], "hmac-sha256");

    let (ok, code) = json_of(&env, &["verify", ARM], &key);
    assert_eq!((ok["valid"].as_bool(), code), (Some(true), Some(0)));
    assert_eq!(ok["generation"], 0);
    let (bad, code) = json_of(&env, &["verify", ARM], "nope");
    assert_eq!((bad["valid"].as_bool(), code), (Some(false), Some(1)));
    assert_eq!(bad["reason"], "malformed");

    let (fp, _) = json_of(&env, &["fingerprint"], &key);
    assert_eq!(fp["fingerprint"], mint["fingerprint"]);

    let (path, _) = json_of(&env, &["path", ARM], "");
    assert_eq!(path["rule"], "per-host");
    assert_eq!(path["exists"], false);

    env.cmd()
        .args(["install", ARM])
        .write_stdin(key.clone())
        .assert()
        .success();
    let (check, code) = json_of(&env, &["check", "--verify", ARM], "");
    assert_eq!((check["ok"].as_bool(), code), (Some(true), Some(0)));
    assert_eq!(check["verified"], true);
    assert_eq!(check["fingerprint"], mint["fingerprint"]);

    let (rotate, _) = json_of(&env, &["rotate", "--keep-previous", ARM], "");
    assert_eq!(rotate["generation"], 1);
    assert_eq!(rotate["keep_previous"], true);
    assert_ne!(rotate["key"], mint["key"]);

    let (revoke, _) = json_of(&env, &["revoke", ARM], "");
    assert_eq!(
        (revoke["revoked"].as_bool(), revoke["changed"].as_bool()),
        (Some(true), Some(true))
    );

    let (policy, _) = json_of(&env, &["policy"], "");
    assert!(
        policy["masters"]["primary"]
            .as_str()
            .unwrap()
            .starts_with("SHA256:")
    );
    assert_eq!(policy["principals"][0]["name"], ARM);
    assert_eq!(policy["principals"][0]["revoked"], true);

    // A failing check is still one object, with its problems.
    let (check, code) = json_of(&env, &["check", "host-missing"], "");
    assert_eq!((check["ok"].as_bool(), code), (Some(false), Some(1)));
    assert!(
        check["problems"][0]
            .as_str()
            .unwrap()
            .contains("no key file")
    );
}

#[test]
fn errors_are_objects_on_stderr() {
    let env = TestEnv::new();
    let out = env.cmd().args(["--json", "mint", ARM]).output().unwrap();
    assert_eq!(out.status.code(), Some(66));
    assert!(out.stdout.is_empty());
    let err: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["command"], "error");
    assert_eq!(err["exit"], 66);
    assert!(err["error"].as_str().unwrap().contains("gobuildkey init"));
}

#[test]
fn quiet_leaves_only_the_exit_status() {
    let env = TestEnv::new().with_master();
    env.cmd()
        .args(["-q", "verify", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .code(0)
        .stdout("")
        .stderr("");
    env.cmd()
        .args(["verify", "-q", ARM])
        .write_stdin("nope")
        .assert()
        .code(1)
        .stdout("")
        .stderr("");
    env.cmd()
        .args(["-q", "check", ARM])
        .assert()
        .code(1)
        .stdout("")
        .stderr("");
    // mint still prints the key it exists to print, and nothing else.
    env.cmd()
        .args(["-q", "mint", ARM])
        .assert()
        .code(0)
        .stdout(format!("{ARM_KEY}\n"))
        .stderr("");
    // Errors are still said.
    env.cmd()
        .args(["-q", "mint", ARM, "--master-key", "missing"])
        .assert()
        .code(66)
        .stderr(predicates::str::contains("gobuildkey init"));
}

/// Every command's object has only fields that docs/json.md lists in that command's row,
/// so the document cannot fall behind the output.
#[test]
fn every_field_of_every_command_is_documented() {
    let doc = include_str!("../../docs/json.md");
    let row_of = |command: &str| -> &str {
        doc.lines()
            .find(|line| {
                line.starts_with('|')
                    && line.split('|').nth(1).is_some_and(|cell| {
                        cell.split(',').any(|c| c.trim() == format!("`{command}`"))
                    })
            })
            .unwrap_or_else(|| panic!("docs/json.md has no row for `{command}`"))
    };
    let env = TestEnv::new();
    let run =
        |args: &[&str], stdin: &str| -> Value { crate::common::json_object(&env, args, stdin).0 };
    let old = env.path("old.key");
    crate::common::write_file(&old, "0123456789abcdef0123456789abcdef", 0o600);
    let key = ARM_KEY.to_owned();
    let cases: Vec<(&str, Vec<String>, String)> = vec![
        ("init", vec!["init".into()], String::new()),
        ("policy", vec!["policy".into()], String::new()),
        ("mint", vec!["mint".into(), ARM.into()], String::new()),
        ("verify", vec!["verify".into(), ARM.into()], key.clone()),
        ("fingerprint", vec!["fingerprint".into()], key.clone()),
        ("path", vec!["path".into(), ARM.into()], String::new()),
        ("install", vec!["install".into(), ARM.into()], key.clone()),
        ("check", vec!["check".into(), ARM.into()], String::new()),
        (
            "rotate",
            vec!["rotate".into(), "--keep-previous".into(), ARM.into()],
            String::new(),
        ),
        (
            "end-grace",
            vec!["end-grace".into(), ARM.into()],
            String::new(),
        ),
        ("revoke", vec!["revoke".into(), ARM.into()], String::new()),
        (
            "reinstate",
            vec!["reinstate".into(), ARM.into()],
            String::new(),
        ),
        (
            "master add",
            vec![
                "master".into(),
                "add".into(),
                "--file".into(),
                old.display().to_string(),
            ],
            String::new(),
        ),
        (
            "master rotate",
            vec!["master".into(), "rotate".into()],
            String::new(),
        ),
        ("log", vec!["log".into()], String::new()),
        (
            "import",
            vec![
                "import".into(),
                "--alg".into(),
                "hmac-md5".into(),
                "host-old".into(),
            ],
            String::new(),
        ),
        (
            "policy init",
            vec![
                "policy".into(),
                "init".into(),
                "--policy".into(),
                env.path("p2.toml").display().to_string(),
            ],
            String::new(),
        ),
    ];
    let mut seen = Vec::new();
    for (command, args, stdin) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let value = run(&args, &stdin);
        assert_eq!(value["command"], command, "{value}");
        seen.push((command.to_owned(), value));
    }
    // Retire the master `master add` added, by the fingerprint `policy` shows.
    let listed = run(&["policy"], "");
    let fp = listed["masters"]["previous"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    seen.push(("master retire".into(), run(&["master", "retire", &fp], "")));
    #[cfg(feature = "probe")]
    seen.push((
        "probe".into(),
        run(
            &[
                "probe",
                "--insecure-http",
                "--coordinator",
                "http://127.0.0.1:9",
                "host-none",
            ],
            "",
        ),
    ));
    for (command, value) in &seen {
        let row = row_of(command);
        for field in value.as_object().unwrap().keys() {
            if field == "schema" || field == "command" {
                continue;
            }
            assert!(
                row.contains(&format!("`{field}`")),
                "docs/json.md's row for `{command}` does not list `{field}`: {value}"
            );
        }
    }
}

/// A result holding a path that is not UTF-8 cannot be a JSON string: it is an error object
/// on standard error (exit 70), never a panic, and what the command did stands (`install`
/// wrote the key).
#[test]
fn a_path_that_is_not_utf8_is_an_error_not_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    let env = TestEnv::new();
    let home = env
        .path("home")
        .join(std::ffi::OsStr::from_bytes(b"b\xffd"));
    std::fs::create_dir_all(&home).unwrap();
    let out = env
        .cmd()
        .env("HOME", &home)
        .args(["--json", "install", ARM])
        .write_stdin(ARM_KEY)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(70), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let error: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(error["command"], "error");
    assert_eq!(error["exit"], 70);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .starts_with("cannot print the result of install as JSON"),
        "{error}"
    );
    let installed = std::fs::read_to_string(home.join(format!(".gobuildkey-{ARM}"))).unwrap();
    assert_eq!(installed.trim(), ARM_KEY);
}
