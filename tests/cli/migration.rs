//! docs/admins.md's runbook for moving a farm off Go's `genbuilderkey`, run end to end:
//! import, verify the old keys, hand out SHA-256 keys machine by machine, `master rotate`,
//! re-mint what `policy --stale` lists, end HMAC-MD5, `master retire` — and after every step
//! every machine's current key still verifies. The old keys are computed by OpenSSL, not by
//! gobuildkey.

use std::collections::BTreeMap;
use std::process::Command;

use crate::common::{MASTER, TestEnv, stdout_of};

/// HMAC-MD5 of `principal` under `master`, hex, as `openssl dgst -md5 -hmac` computes it —
/// what genbuilderkey printed. `None` when OpenSSL is not installed (CI installs it).
fn openssl_md5(master: &str, principal: &str) -> Option<String> {
    let out = Command::new("sh")
        .args([
            "-c",
            r#"printf %s "$2" | openssl dgst -md5 -hmac "$1""#,
            "sh",
        ])
        .args([master, principal])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.trim().rsplit(' ').next()?.to_owned())
}

/// Each machine's key verifies, through `verify` and through `verify --batch`.
fn everyone_verifies(env: &TestEnv, machines: &BTreeMap<&str, (&str, String)>, step: &str) {
    let mut batch = String::new();
    for (machine, (principal, key)) in machines {
        let code = crate::common::verifies(env, principal, key);
        assert_eq!(code, 0, "{step}: {machine} ({principal}) is locked out");
        batch.push_str(&format!("{principal} {key}\n"));
    }
    let answers = stdout_of(env.cmd().args(["verify", "--batch"]).write_stdin(batch));
    assert!(
        answers.lines().all(|line| line == "ok"),
        "{step}: batch answered {answers}"
    );
}

#[test]
fn the_genbuilderkey_migration_locks_no_machine_out() {
    let Some(md5_a) = openssl_md5(MASTER, "host-a") else {
        crate::common::missing_tool(
            "openssl",
            "openssl",
            "to compute genbuilderkey's keys independently",
        );
        return;
    };
    let md5_b = openssl_md5(MASTER, "host-b").unwrap();
    // A genbuilderkey farm: its master at genbuilderkey's path, and no policy.
    let env = TestEnv::new();
    env.write_master(format!("{MASTER}\n").as_bytes(), 0o600);
    let mut machines = BTreeMap::from([
        ("a1", ("host-a", md5_a.clone())),
        ("a2", ("host-a", md5_a.clone())),
        ("b1", ("host-b", md5_b.clone())),
    ]);

    // 1. Record the farm: nothing verifies before, every old key after.
    assert_eq!(
        crate::common::verifies(&env, "host-a", &md5_a),
        66,
        "no policy yet"
    );
    env.cmd()
        .args(["import", "--alg", "hmac-md5", "host-a", "host-b"])
        .assert()
        .success();
    everyone_verifies(&env, &machines, "after import");
    // What gobuildkey would mint for them is what OpenSSL computed.
    assert_eq!(
        stdout_of(env.cmd().args(["mint", "--alg", "hmac-md5", "host-a"])).trim(),
        md5_a
    );

    // 2. SHA-256 keys, machine by machine: the type's other machines keep working.
    let sha_a = stdout_of(env.cmd().args(["mint", "host-a"]))
        .trim()
        .to_owned();
    machines.insert("a1", ("host-a", sha_a.clone()));
    everyone_verifies(&env, &machines, "a1 on SHA-256");

    // 3. A new master; the old one stays accepted, for both algorithms.
    let old_fp = stdout_of(env.cmd().args(["--json", "policy"]));
    let old_fp: serde_json::Value = serde_json::from_str(&old_fp).unwrap();
    let old_fp = old_fp["masters"]["primary"].as_str().unwrap().to_owned();
    env.cmd().args(["master", "rotate"]).assert().success();
    everyone_verifies(&env, &machines, "after master rotate");

    // 4. Re-mint what is stale, hand the keys out one machine at a time.
    let stale = stdout_of(env.cmd().args(["policy", "--stale"]));
    assert_eq!(stale, "host-a\nhost-b\n");
    for principal in stale.lines() {
        let key = stdout_of(env.cmd().args(["mint", principal]))
            .trim()
            .to_owned();
        let of_it: Vec<&str> = machines
            .iter()
            .filter(|(_, (p, _))| *p == principal)
            .map(|(machine, _)| *machine)
            .collect();
        for machine in of_it {
            machines.insert(machine, (principal_static(principal), key.clone()));
            everyone_verifies(&env, &machines, "re-minting");
        }
    }
    assert_eq!(stdout_of(env.cmd().args(["policy", "--stale"])), "");

    // 5. End HMAC-MD5, then retire the old master: the old keys stop, nobody else does.
    for principal in ["host-a", "host-b"] {
        env.cmd()
            .args(["end-grace", "--alg", "hmac-md5", principal])
            .assert()
            .success();
        everyone_verifies(&env, &machines, "after ending hmac-md5");
    }
    assert_eq!(crate::common::verifies(&env, "host-a", &md5_a), 1);
    env.cmd()
        .args(["master", "retire", &old_fp])
        .assert()
        .success();
    everyone_verifies(&env, &machines, "after master retire");
    assert_eq!(
        crate::common::verifies(&env, "host-a", &sha_a),
        1,
        "the old master's key"
    );
    // Ending the last algorithm would refuse every key: refused.
    env.cmd()
        .args(["end-grace", "--alg", "hmac-sha256", "host-a"])
        .assert()
        .code(1);
    // The action log tells the whole story.
    let log = stdout_of(env.cmd().args(["log", "host-a"]));
    for command in ["import", "mint", "end-grace"] {
        assert!(log.contains(command), "{log}");
    }
}

fn principal_static(name: &str) -> &'static str {
    match name {
        "host-a" => "host-a",
        "host-b" => "host-b",
        other => panic!("unexpected principal {other}"),
    }
}
