//! Expiring tokens (`mint --expires-in`, `gbk1_…`) end to end: minted, logged, installed,
//! checked, verified alone, in a batch and by `serve`, explained — and refused when
//! expired, damaged, of a revoked or rotated principal, or from the wrong machine.

use gobuildkey::derive::Deriver;
use gobuildkey::key::Algorithm;
use gobuildkey::master::MasterSecret;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::common::{
    ARM, MASTER, TestEnv, all_output, assert_no_secret, stdout_of, verifies, verifies_with,
};

/// A token of `principal` under [`MASTER`], made by the library, expiring `seconds` from
/// now (in the past when negative): what `mint` refuses to make.
fn token_expiring_in(principal: &str, seconds: i64, machine: Option<&str>) -> String {
    let master = MasterSecret::from_text(MASTER.as_bytes()).unwrap();
    let expires = Timestamp::now() + SignedDuration::from_secs(seconds);
    let machine = machine.map(|m| m.parse().unwrap());
    Deriver::new(&master, Algorithm::HmacSha256)
        .derive_token(
            &principal.parse().unwrap(),
            0,
            machine.as_ref().map(|m| (m, 0)),
            expires,
        )
        .expose_secret()
        .to_owned()
}

/// `gobuildkey --json ARGS`'s one object and its exit code.
fn json_of(env: &TestEnv, args: &[&str], stdin: &str) -> (Value, i32) {
    let (value, code) = crate::common::json_object(env, args, stdin);
    (value, code.unwrap())
}

fn mint_token(env: &TestEnv, args: &[&str]) -> String {
    let token = stdout_of(env.cmd().arg("mint").args(args));
    token.trim().to_owned()
}

#[test]
fn a_minted_token_verifies_and_says_when_it_expires() {
    let env = TestEnv::new().with_master();
    let out = env
        .cmd()
        .args(["mint", "--expires-in", "24h", ARM])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", all_output(&out));
    let token = String::from_utf8(out.stdout).unwrap();
    let token = token.strip_suffix('\n').unwrap();
    assert!(token.starts_with("gbk1_") && token.len() == 93, "{token}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("token of host-linux-arm-aws, expiring at"),
        "{stderr}"
    );
    assert_no_secret(&stderr, token);

    let (verified, code) = json_of(&env, &["verify", ARM], token);
    assert_eq!(code, 0, "{verified}");
    let expires: Timestamp = verified["expires"].as_str().unwrap().parse().unwrap();
    let hours = Timestamp::now().duration_until(expires).as_hours();
    assert!((23..=24).contains(&hours), "{expires}");
    assert_eq!(verifies(&env, "host-linux-amd64", token), 1);

    // HMAC-MD5 tokens, for farms that accept hmac-md5, and an --expires-at date.
    let at = (Timestamp::now() + SignedDuration::from_hours(2))
        .round(jiff::Unit::Second)
        .unwrap();
    let (minted, code) = json_of(
        &env,
        &[
            "mint",
            "--alg",
            "hmac-md5",
            "--expires-at",
            &at.to_string(),
            ARM,
        ],
        "",
    );
    assert_eq!(code, 0, "{minted}");
    assert_eq!(minted["expires"], at.to_string());
    let md5 = minted["key"].as_str().unwrap();
    assert_eq!(md5.len(), 61);
    assert_eq!(verifies(&env, ARM, md5), 0);
}

#[test]
fn every_token_minted_is_logged_with_its_expiry() {
    let env = TestEnv::new().with_master();
    let first = mint_token(&env, &["--expires-in", "1h", ARM]);
    let second = mint_token(&env, &["--expires-in", "2h", ARM]);
    assert_ne!(first, second);
    let (log, code) = json_of(&env, &["log", ARM], "");
    assert_eq!(code, 0);
    let tokens: Vec<&Value> = log["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a.get("expires").is_some())
        .collect();
    assert_eq!(tokens.len(), 2, "{log}");
    for (action, token) in tokens.iter().zip([&first, &second]) {
        assert_eq!(
            action["key"],
            gobuildkey::fingerprint::Fingerprint::of(token.as_bytes()).as_str()
        );
    }
    let text = std::fs::read_to_string(env.path("keys/gobuildkey-actions.log")).unwrap();
    assert_no_secret(&text, &first);
    assert_no_secret(&text, &second);
}

/// Expired one second after its expiry with no skew; accepted inside the default skew of
/// 60 s; the message and the JSON say when it expired.
#[test]
fn an_expired_token_is_refused_and_the_skew_is_a_flag() {
    let env = TestEnv::new().with_master();
    let recent = token_expiring_in(ARM, -5, None);
    assert_eq!(verifies(&env, ARM, &recent), 0);
    let (refused, code) = json_of(&env, &["verify", "--clock-skew", "0s", ARM], &recent);
    assert_eq!(code, 1);
    assert_eq!(refused["reason"], "expired");
    assert!(refused["expires"].is_string(), "{refused}");
    let old = token_expiring_in(ARM, -120, None);
    let out = env
        .cmd()
        .args(["verify", ARM])
        .write_stdin(old.clone())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = all_output(&out);
    assert!(text.contains("a token that expired at"), "{text}");
    assert_no_secret(&text, &old);
    assert_eq!(
        verifies_with(&env, &["--clock-skew", "5m"], ARM, &old),
        0,
        "a longer skew accepts it"
    );
}

/// A changed character, a lost one, one too many, uppercase, an expiry no clock reaches,
/// one further off than a token lives: refused as malformed, each saying what is wrong,
/// none echoing the token.
#[test]
fn damaged_and_impossible_tokens_are_malformed() {
    let env = TestEnv::new().with_master();
    let token = token_expiring_in(ARM, 3600, None);
    let mut changed = token.clone().into_bytes();
    changed[30] = if changed[30] == b'0' { b'1' } else { b'0' };
    let changed = String::from_utf8(changed).unwrap();
    let overflow = {
        // A checksum computed over an expiry of 2^64 - 1 seconds.
        let body = format!("gbk1_{}{}", "f".repeat(16), &token[21..85]);
        let digest = <sha2::Sha256 as sha2::Digest>::digest(body.as_bytes());
        format!("{body}{}", hex::encode(&digest[..4]))
    };
    let far = token_expiring_in(ARM, 400 * 86_400, None);
    let cases = [
        (changed.as_str(), "checksum does not match"),
        (&token[..92], "has 92 characters"),
        (&format!("{token}0"), "has 94 characters"),
        (
            &format!("gbk1_{}", token[5..].to_uppercase()),
            "other than 0-9 and a-f",
        ),
        (overflow.as_str(), "expiry is out of range"),
        (far.as_str(), "more than 366 days from now"),
    ];
    for (presented, says) in cases {
        let out = env
            .cmd()
            .args(["verify", ARM])
            .write_stdin(presented.to_owned())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{says}");
        let text = all_output(&out);
        assert!(text.contains(says), "{says}: {text}");
        assert_no_secret(&text, presented);
        let (json, _) = json_of(&env, &["verify", ARM], presented);
        assert_eq!(json["reason"], "malformed", "{says}");
    }
    // The whitespace around it is trimmed, as around a key.
    assert_eq!(verifies(&env, ARM, &format!("\n {token}\r\n")), 0);
}

/// Revoking the principal or rotating it kills its tokens at once; reinstating brings
/// an unexpired one back; a token bound to a machine verifies from it only, and alone
/// where the policy accepts machine keys only.
#[test]
fn revocation_rotation_and_machines_apply_to_tokens() {
    let env = TestEnv::new().with_master();
    let token = mint_token(&env, &["--expires-in", "1h", ARM]);
    env.cmd().args(["revoke", ARM]).assert().success();
    let (json, code) = json_of(&env, &["verify", ARM], &token);
    assert_eq!((code, json["reason"].as_str()), (1, Some("revoked")));
    env.cmd().args(["reinstate", ARM]).assert().success();
    assert_eq!(verifies(&env, ARM, &token), 0);

    let bound = mint_token(&env, &["--machine", "builder-7", "--expires-in", "1h", ARM]);
    assert_eq!(
        verifies_with(&env, &["--machine", "builder-7"], ARM, &bound),
        0
    );
    assert_eq!(
        verifies_with(&env, &["--machine", "builder-8"], ARM, &bound),
        1
    );
    assert_eq!(verifies(&env, ARM, &bound), 1);
    env.cmd()
        .args(["policy", "machine-keys-only", ARM])
        .assert()
        .success();
    assert_eq!(
        verifies_with(&env, &["--machine", "builder-7"], ARM, &token),
        1
    );
    assert_eq!(
        verifies_with(&env, &["--machine", "builder-7"], ARM, &bound),
        0
    );
    env.cmd()
        .args(["policy", "machine-keys-only", "--off", ARM])
        .assert()
        .success();

    stdout_of(env.cmd().args(["rotate", ARM]));
    assert_eq!(verifies(&env, ARM, &token), 1);
    let fresh = mint_token(&env, &["--expires-in", "1h", ARM]);
    assert_eq!(verifies(&env, ARM, &fresh), 0);
}

#[test]
fn a_batch_verifies_tokens_and_says_which_expired() {
    let env = TestEnv::new().with_master();
    let token = mint_token(&env, &["--expires-in", "1h", ARM]);
    let bound = mint_token(&env, &["--machine", "builder-7", "--expires-in", "1h", ARM]);
    let expired = token_expiring_in(ARM, -120, None);
    let lines = format!(
        "{ARM} {token}\n{ARM} {expired}\n{ARM} {bound} builder-7\n{ARM} {bound} builder-8\nhost-b {token}\n{ARM} {}\n",
        &token[..90]
    );
    let audit = env.path("audit.log");
    let out = env
        .cmd()
        .args(["verify", "--batch", "--audit"])
        .arg(&audit)
        .write_stdin(lines)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "ok\ndeny expired\nok\ndeny invalid\ndeny invalid\ndeny malformed\n"
    );
    // The audit line of a token says when it expires, valid or refused as expired; the
    // token itself is never in it.
    let trail = std::fs::read_to_string(&audit).unwrap();
    let lines: Vec<Value> = trail
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines[0]["expires"].is_string(), "{trail}");
    assert_eq!(lines[1]["reason"], "expired");
    assert!(lines[1]["expires"].is_string(), "{trail}");
    assert_eq!(lines[2]["machine"], "builder-7");
    assert!(lines[3].get("expires").is_none(), "{trail}");
    for secret in [&token, &bound, &expired] {
        assert_no_secret(&trail, secret);
    }
}

#[test]
fn explain_says_a_token_expired_or_is_damaged_or_is_anothers() {
    let env = TestEnv::new().with_master();
    let expired = token_expiring_in(ARM, -120, None);
    let (found, code) = json_of(&env, &["explain", ARM], &expired);
    assert_eq!(
        (code, found["finding"].as_str()),
        (1, Some("expired")),
        "{found}"
    );
    assert!(found["time"].is_string());
    let token = mint_token(&env, &["--expires-in", "1h", ARM]);
    let (found, _) = json_of(&env, &["explain", "host-b"], &token);
    assert_eq!(found["finding"], "other-principal", "{found}");
    assert_eq!(found["other_principal"], ARM);
    let (found, _) = json_of(&env, &["explain", ARM], &token[..80]);
    assert_eq!(found["finding"], "bad-token", "{found}");
    let (found, code) = json_of(
        &env,
        &["explain", ARM],
        &token.to_uppercase().replace("GBK1_", "gbk1_"),
    );
    assert_eq!(code, 1);
    assert_eq!(found["fixes"][0], "lowercased", "{found}");
    assert_eq!(found["finding"], "valid", "{found}");
    let out = env
        .cmd()
        .args(["explain", ARM])
        .write_stdin(expired.clone())
        .output()
        .unwrap();
    assert_no_secret(&all_output(&out), &expired);
}

/// A builder installs a token as a key and checks it without the master: `check` says when
/// it expires, fails once it has, and `--explain` says what a token is.
#[test]
fn a_builder_installs_and_checks_a_token() {
    let env = TestEnv::new().with_master();
    let token = mint_token(&env, &["--expires-in", "1h", ARM]);
    env.cmd()
        .args(["install", ARM])
        .write_stdin(token.clone())
        .assert()
        .success();
    let (checked, code) = json_of(&env, &["check", "--explain", ARM], "");
    assert_eq!(code, 0, "{checked}");
    assert!(checked["expires"].is_string(), "{checked}");
    let explained = checked["explanation"].to_string();
    assert!(explained.contains("a gobuildkey token"), "{explained}");
    let out = env.cmd().args(["check", ARM]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("expires: "),
        "{}",
        all_output(&out)
    );

    let expired = token_expiring_in(ARM, -120, None);
    env.cmd()
        .args(["install", "--force", ARM])
        .write_stdin(expired)
        .assert()
        .success();
    let out = env.cmd().args(["check", ARM]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        all_output(&out).contains("expired at"),
        "{}",
        all_output(&out)
    );
}

/// `mint` refuses an expiry in the past or beyond a token's longest life, before reading
/// the master and with nothing written.
#[test]
fn mint_refuses_a_past_or_far_expiry() {
    let env = TestEnv::new().with_master();
    let past = (Timestamp::now() - SignedDuration::from_secs(1)).to_string();
    for args in [
        vec!["mint", "--expires-at", past.as_str(), ARM],
        vec!["mint", "--expires-in", "367d", ARM],
        vec!["mint", "--expires-at", "2999-01-01", ARM],
    ] {
        let out = env.cmd().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
    }
    assert!(!env.path("keys/gobuildkey-actions.log").exists());
}

#[cfg(feature = "serve")]
#[test]
fn serve_accepts_a_token_from_the_agents_header_until_it_expires() {
    use crate::server::http_get;
    let env = TestEnv::new().with_master();
    let token = mint_token(&env, &["--expires-in", "1h", ARM]);
    let bound = mint_token(&env, &["--machine", "builder-7", "--expires-in", "1h", ARM]);
    let expired = token_expiring_in(ARM, -120, None);
    let server = env.serve(&["--audit", "-", "--no-watch"]);
    let ask = |key: &str, hostname: &str| {
        http_get(
            server.addr,
            "/verify",
            &[
                ("X-Go-Host-Type", ARM),
                ("X-Go-Builder-Key", key),
                ("X-Go-Builder-Hostname", hostname),
                ("X-Revdial-Version", "2"),
            ],
        )
        .0
    };
    assert_eq!(ask(&token, "builder-1"), 200);
    assert_eq!(ask(&bound, "builder-7"), 200);
    assert_eq!(ask(&bound, "builder-8"), 403);
    assert_eq!(ask(&expired, "builder-1"), 403);
    server.wait_for_log(r#""reason":"expired""#);
    let log = server.stderr.lock().unwrap().clone();
    for secret in [&token, &bound, &expired] {
        assert_no_secret(&log, secret);
    }
}
