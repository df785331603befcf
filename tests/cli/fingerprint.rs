//! `gobuildkey fingerprint`.

use std::fs;

use gobuildkey::fingerprint::Fingerprint;
use predicates::str::contains;

use crate::common::{ARM, ARM_KEY, ARM_KEY_MD5, TestEnv, fingerprint_in};

#[test]
fn prints_the_fingerprint_of_a_key_from_stdin() {
    let env = TestEnv::new();
    env.cmd()
        .arg("fingerprint")
        .write_stdin(format!(" {ARM_KEY}\n"))
        .assert()
        .code(0)
        .stdout(format!("{}\n", Fingerprint::of(ARM_KEY.as_bytes())));
}

#[test]
fn reads_a_key_file_too() {
    let env = TestEnv::new();
    let file = env.path("k");
    fs::write(&file, ARM_KEY_MD5).unwrap();
    env.cmd()
        .args(["fingerprint", "--key-file"])
        .arg(&file)
        .assert()
        .code(0)
        .stdout(format!("{}\n", Fingerprint::of(ARM_KEY_MD5.as_bytes())));
}

#[test]
fn mint_check_and_fingerprint_agree() {
    let env = TestEnv::new().with_master();
    let minted = env
        .cmd()
        .args(["mint", ARM])
        .assert()
        .success()
        .get_output()
        .clone();
    let from_mint = fingerprint_in(&minted.stderr);
    let printed = env
        .cmd()
        .arg("fingerprint")
        .write_stdin(minted.stdout.clone())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(
        String::from_utf8(printed).unwrap(),
        format!("{from_mint}\n")
    );
    env.cmd()
        .args(["install", ARM])
        .write_stdin(minted.stdout)
        .assert()
        .success();
    env.cmd()
        .args(["check", ARM])
        .assert()
        .success()
        .stdout(contains(format!("fingerprint: {from_mint}")));
}
