//! `gobuildkey verify`.

use std::fs;

use predicates::str::contains;

use crate::common::{
    ARM, ARM_KEY, ARM_KEY_MD5, MASTER, TestEnv, all_output, assert_no_secret, vectors,
};

#[test]
fn valid_key_from_stdin() {
    let env = TestEnv::new().with_master();
    env.cmd()
        .args(["verify", ARM])
        .write_stdin(format!("{ARM_KEY}\n"))
        .assert()
        .code(0)
        .stdout(contains("valid build key"));
}

#[test]
fn valid_key_from_a_file_with_whitespace_around_it() {
    let env = TestEnv::new().with_master();
    let file = env.path("key");
    fs::write(&file, format!("\r\n\t {ARM_KEY} \x0b\n\n")).unwrap();
    env.cmd()
        .args(["verify", ARM, "--key-file"])
        .arg(&file)
        .assert()
        .code(0);
}

#[test]
fn md5_keys_verify_where_the_policy_records_them() {
    let env = TestEnv::new().with_master();
    // Not recorded: refused, and `--alg` saying otherwise is a usage error.
    env.cmd()
        .args(["verify", ARM])
        .write_stdin(ARM_KEY_MD5)
        .assert()
        .code(1);
    env.cmd()
        .args(["verify", "--alg", "hmac-md5", ARM])
        .write_stdin(ARM_KEY_MD5)
        .assert()
        .code(2)
        .stderr(contains(
            "contradicts the policy, which accepts hmac-sha256",
        ));
    env.cmd()
        .args(["import", "--alg", "hmac-md5", ARM])
        .assert()
        .success();
    // Recorded {hmac-md5}: MD5 keys verify, SHA-256 keys of the principal do not.
    env.cmd()
        .args(["verify", ARM])
        .write_stdin(ARM_KEY_MD5)
        .assert()
        .code(0);
    env.cmd()
        .args(["verify", "--alg", "hmac-md5", ARM])
        .write_stdin(ARM_KEY_MD5)
        .assert()
        .code(0);
    env.cmd()
        .args(["verify", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .code(1)
        .stderr(contains(
            "not 32 lowercase hex digits, as an hmac-md5 key is",
        ));
    env.cmd()
        .args(["verify", "--alg", "hmac-sha256", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .code(2);
}

#[test]
fn every_wrong_key_is_invalid_and_never_shown() {
    let env = TestEnv::new().with_master();
    let other_host = vectors()
        .into_iter()
        .find(|v| v.master == MASTER && v.alg == "hmac-sha256" && v.principal != ARM)
        .unwrap()
        .key;
    let mut flipped = ARM_KEY.to_owned().into_bytes();
    flipped[63] = if flipped[63] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    let mut first_flipped = ARM_KEY.to_owned().into_bytes();
    first_flipped[0] = if first_flipped[0] == b'0' { b'1' } else { b'0' };
    let first_flipped = String::from_utf8(first_flipped).unwrap();
    let wrong: Vec<String> = vec![
        other_host,
        flipped,
        first_flipped,
        ARM_KEY[..63].to_owned(),
        format!("{ARM_KEY}0"),
        ARM_KEY.to_uppercase(),
        format!("{ARM_KEY}{ARM_KEY}"),
        format!("{} {}", &ARM_KEY[..32], &ARM_KEY[32..]),
        String::new(),
        "\n \n".to_owned(),
        "z".repeat(64),
        "0".repeat(64),
        MASTER.to_owned(),
        "a".repeat(100_000),
        "\u{1b}[2J".to_owned(),
    ];
    for key in wrong {
        let out = env
            .cmd()
            .args(["verify", ARM])
            .write_stdin(key.clone())
            .assert()
            .code(1)
            .stdout("")
            .stderr(contains("invalid build key"))
            .get_output()
            .clone();
        let text = all_output(&out);
        assert_no_secret(&text, ARM_KEY);
        assert_no_secret(&text, MASTER);
        if key.len() >= 8 && !key.trim().is_empty() && key.len() < 1000 {
            assert_no_secret(&text, key.trim());
        }
    }
}

#[test]
fn another_principals_key_is_invalid() {
    let env = TestEnv::new().with_master();
    env.cmd()
        .args(["verify", "host-darwin-amd64-12_0"])
        .write_stdin(ARM_KEY)
        .assert()
        .code(1)
        .stderr(contains("invalid build key"));
}

#[test]
fn known_answers_verify() {
    let env = TestEnv::new();
    for v in vectors().iter().filter(|v| v.master.len() >= 16).step_by(7) {
        // A farm whose keys are all of the vector's algorithm.
        env.write_policy(&format!("algorithm = \"{}\"\n[principals]\n", v.alg));
        env.write_master(format!("{}\n", v.master).as_bytes(), 0o600);
        env.cmd()
            .args(["verify", "--alg", &v.alg, &v.principal])
            .write_stdin(v.key.clone())
            .assert()
            .code(0);
    }
}

#[test]
fn no_master_means_no_valid_key() {
    // Fail closed: an open, empty or short master never accepts anything (nor a missing
    // one: tests/refusals/verify/master-missing).
    let env = TestEnv::new();
    env.write_master(format!("{MASTER}\n").as_bytes(), 0o640);
    env.cmd()
        .args(["verify", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .code(77)
        .stdout("");
    env.write_master(b"\n", 0o600);
    env.cmd()
        .args(["verify", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .code(65)
        .stdout("");
    env.write_master(b"short\n", 0o600);
    env.cmd()
        .args(["verify", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .code(65)
        .stdout("");
}

#[test]
fn key_file_problems_are_operational_errors() {
    let env = TestEnv::new().with_master();
    env.cmd()
        .args(["verify", ARM, "--key-file"])
        .arg(env.path("missing"))
        .assert()
        .code(66)
        .stdout("");
    env.cmd()
        .args(["verify", ARM, "--key-file"])
        .arg(env.home.path())
        .assert()
        .code(65)
        .stdout("")
        .stderr(contains("not a regular file"));
    env.cmd()
        .args(["verify", ARM, "--key-file", "/dev/zero"])
        .assert()
        .code(65)
        .stdout("");
}

#[test]
fn a_huge_key_file_is_invalid_not_read_whole() {
    let env = TestEnv::new().with_master();
    let file = env.path("huge");
    let mut padded = format!("{ARM_KEY}\n").into_bytes();
    padded.resize(1 << 20, b' ');
    fs::write(&file, padded).unwrap();
    env.cmd()
        .args(["verify", ARM, "--key-file"])
        .arg(&file)
        .assert()
        .code(1)
        .stderr(contains("invalid build key"));
}

#[test]
fn kind_host_refuses_user_tokens() {
    let env = TestEnv::new().with_master();
    let user_key = env
        .cmd()
        .args(["mint", "user-relui"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    env.cmd()
        .args(["verify", "user-relui"])
        .write_stdin(user_key.clone())
        .assert()
        .code(0);
    env.cmd()
        .args(["verify", "--kind", "host", "user-relui"])
        .write_stdin(user_key)
        .assert()
        .code(1)
        .stderr(contains("not a principal of the kind asked for"));
    env.cmd()
        .args(["verify", "--kind", "host", ARM])
        .write_stdin(ARM_KEY)
        .assert()
        .code(0);
}

#[test]
fn audit_lines_record_every_verification_without_keys() {
    let env = TestEnv::new().with_master();
    let log = env.path("audit/verify.log");
    fs::create_dir(env.path("audit")).unwrap();
    for key in [ARM_KEY, "nonsense", &ARM_KEY.replace('9', "8")] {
        env.cmd()
            .args(["verify", ARM, "--audit"])
            .arg(&log)
            .write_stdin(key.to_owned())
            .assert()
            .code(predicates::ord::le(1));
    }
    let text = fs::read_to_string(&log).unwrap();
    assert_eq!(crate::common::mode(&log), 0o600);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["result"], "ok");
    assert_eq!(lines[0]["principal"], ARM);
    assert_eq!(lines[0]["generation"], 0);
    assert_eq!(
        lines[0]["master"],
        gobuildkey::fingerprint::Fingerprint::of(MASTER.as_bytes()).to_string()
    );
    assert_eq!(
        lines[0]["key"],
        gobuildkey::fingerprint::Fingerprint::of(ARM_KEY.as_bytes()).to_string()
    );
    assert_eq!(lines[1]["reason"], "malformed");
    assert_eq!(lines[1]["key"], serde_json::Value::Null);
    assert_eq!(lines[2]["reason"], "invalid");
    assert!(
        lines
            .iter()
            .all(|l| l["time"].as_str().unwrap().ends_with('Z'))
    );
    assert_no_secret(&text, ARM_KEY);
    assert_no_secret(&text, MASTER);
}

#[test]
fn audit_to_stderr_and_unsafe_audit_files() {
    let env = TestEnv::new().with_master();
    env.cmd()
        .args(["verify", ARM, "--audit", "-"])
        .write_stdin(ARM_KEY)
        .assert()
        .code(0)
        .stderr(contains("\"result\":\"ok\""));
    let target = env.path("real.log");
    fs::write(&target, "").unwrap();
    std::os::unix::fs::symlink(&target, env.path("link.log")).unwrap();
    let out = env
        .cmd()
        .args(["verify", ARM, "--audit"])
        .arg(env.path("link.log"))
        .write_stdin(ARM_KEY)
        .assert()
        .code(74)
        .stdout("")
        .get_output()
        .clone();
    // The cause is said once, not once by the error and again by its chain.
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.matches("symbolic links").count(), 1, "{stderr}");
    assert_eq!(fs::read_to_string(&target).unwrap(), "");
}

#[test]
fn a_gigabyte_key_file_or_master_is_refused_without_reading_it() {
    // Sparse files: a gigabyte long, no disk used. Reads stop at their bound.
    let env = TestEnv::new().with_master();
    let huge = env.path("huge");
    fs::File::create(&huge).unwrap().set_len(1 << 30).unwrap();
    env.cmd()
        .args(["verify", ARM, "--key-file"])
        .arg(&huge)
        .assert()
        .code(1)
        .stderr(contains("invalid build key"));
    fs::set_permissions(&huge, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    env.cmd()
        .args(["verify", ARM, "--master-key"])
        .arg(&huge)
        .write_stdin(ARM_KEY)
        .assert()
        .code(65)
        .stderr(contains("longer than 4096 bytes"));
}

/// A FIFO, a folder or a socket given as the audit file is refused at once, without
/// blocking on it (nobody would ever open a FIFO's other end), and nothing is verified.
#[test]
fn anything_but_a_regular_file_as_the_audit_file_is_refused_without_blocking() {
    let env = TestEnv::new().with_master();
    let fifo = env.path("audit.fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let folder = env.path("audit.d");
    std::fs::create_dir(&folder).unwrap();
    let socket = env.path("audit.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    for audit in [&fifo, &folder, &socket] {
        env.cmd()
            .args(["verify", "--audit"])
            .arg(audit)
            .arg(ARM)
            .write_stdin(ARM_KEY)
            .timeout(std::time::Duration::from_secs(60))
            .assert()
            .code(74)
            .stdout("")
            .stderr(contains("not a regular file"));
    }
}

/// Masters and key files are trimmed as Go trims them (`bytes.TrimSpace`): every Unicode
/// space at their ends goes, and invalid UTF-8 stops the trimming. The masters are those
/// of `tests/data/trim.json`, whose keys an independent implementation computed.
#[test]
fn masters_and_key_files_are_trimmed_as_go_trims_them() {
    use crate::common::verifies;
    let vectors: serde_json::Value =
        serde_json::from_str(include_str!("../data/trim.json")).unwrap();
    let env = TestEnv::new().with_master();
    let cases = vectors["masters"].as_array().unwrap();
    let chosen = [
        "U+00A0 before",
        "U+3000 twice around, then a newline",
        "U+0085 after",
        "U+2028 before 0xFF",
        "U+1680 after a lone continuation",
        "U+3000 cut short, at both ends",
        "U+FEFF around (no space)",
        "U+001C around (no space)",
        "surrogate U+D800 at the end",
        "every space around the master",
    ];
    let mut tried = 0;
    for case in cases.iter().filter(|c| {
        let name = c["name"].as_str().unwrap();
        c["hmac_sha256"].is_string() && chosen.contains(&name)
    }) {
        let name = case["name"].as_str().unwrap();
        env.write_master(&hex::decode(case["raw"].as_str().unwrap()).unwrap(), 0o600);
        let key = case["hmac_sha256"].as_str().unwrap();
        assert_eq!(verifies(&env, ARM, key), 0, "{name}");
        let trimmed = hex::decode(case["trimmed"].as_str().unwrap()).unwrap();
        let expected = if trimmed == MASTER.as_bytes() { 0 } else { 1 };
        assert_eq!(verifies(&env, ARM, ARM_KEY), expected, "{name}");
        tried += 1;
    }
    assert_eq!(tried, chosen.len());

    env.write_master(
        format!("\u{3000}\u{a0}{MASTER}\u{2029}\u{85}\n").as_bytes(),
        0o600,
    );
    let file = env.path("key");
    for (content, code) in [
        (format!("\u{a0}{ARM_KEY}\u{3000}\n").into_bytes(), 0),
        (format!("\u{2028}\u{205f}{ARM_KEY}\u{85}").into_bytes(), 0),
        (format!("\u{feff}{ARM_KEY}\n").into_bytes(), 1),
        (format!("{ARM_KEY}\u{200b}").into_bytes(), 1),
        (format!("{ARM_KEY}\u{1c}").into_bytes(), 1),
        ([ARM_KEY.as_bytes(), b" \xff"].concat(), 1),
        ([b"\xe3\x80".as_slice(), ARM_KEY.as_bytes()].concat(), 1),
    ] {
        fs::write(&file, &content).unwrap();
        let out = env
            .cmd()
            .args(["verify", ARM, "--key-file"])
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{content:?}");
        assert_no_secret(&all_output(&out), ARM_KEY);
        let stdin = env
            .cmd()
            .args(["verify", ARM])
            .write_stdin(content.clone())
            .output()
            .unwrap();
        assert_eq!(
            stdin.status.code(),
            Some(code),
            "{content:?} on standard input"
        );
    }
}
