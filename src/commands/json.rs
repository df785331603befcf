//! The `--json` objects of schema `gobuildkey/1` (docs/json.md): one struct per command's
//! result, its fields declared in the order they are printed (serde_json keeps that order).
//! [`crate::output::report`] puts `schema` and `command` before them, in one place; the
//! commands only fill these structs in. Nested objects have structs of their own, nullable
//! fields are `Option`s printed as `null`, and a field is left out only where docs/json.md
//! says it appears only sometimes (`mint`'s `output`, `/healthz`'s `error` and `since`).
//!
//! The test at the bottom holds every struct to docs/json.md's "Per command" table (the
//! fields, their order, the fields of nested objects) and to its JSON examples, so the
//! document and the output cannot drift apart.

use std::path::Path;

use serde::{Serialize, Serializer};

use gobuildkey::policy::Grace;
use gobuildkey::policy::actions::Action;

/// A grace period (`rotate`'s and `policy`'s `keep_previous`): `false`, `true` (until
/// ended), or its end as an RFC 3339 string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepPrevious(pub Grace);

impl Serialize for KeepPrevious {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Grace::None => serializer.serialize_bool(false),
            Grace::Open => serializer.serialize_bool(true),
            Grace::Until(end) => serializer.collect_str(&end),
        }
    }
}

/// `init`.
#[derive(Debug, Serialize)]
pub struct Init<'a> {
    /// The master written.
    pub path: &'a Path,
    /// The new master's fingerprint.
    pub fingerprint: &'a str,
    /// Where `--force` moved the old master.
    pub replaced: Option<&'a Path>,
    /// The policy beside the master.
    pub policy: &'a Path,
    /// Whether `init` created the policy (`false`: one was there).
    pub policy_created: bool,
}

/// `mint` (`R` is `()`), and the first fields of `rotate` (`R` is [`Rotation`]). No
/// `Debug`: it holds the key.
#[derive(Serialize)]
pub struct Mint<'a, R = ()> {
    /// The principal.
    pub principal: &'a str,
    /// With `--machine` only: the machine the key is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine: Option<&'a str>,
    /// With `--machine` only: the machine's own generation the key is at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_generation: Option<u64>,
    /// With `--expires-in`/`--expires-at` only: when the token expires (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// The key's generation.
    pub generation: u64,
    /// The key's algorithm.
    pub algorithm: &'static str,
    /// The key's fingerprint.
    pub fingerprint: &'a str,
    /// The key itself (what `mint` is for), borrowed, so that no copy is left to wipe;
    /// `None` with `-o FILE`.
    pub key: Option<&'a str>,
    /// With `-o FILE` only: the file the key was written to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<&'a Path>,
    /// What follows `mint`'s fields: nothing, or `rotate`'s.
    #[serde(flatten)]
    pub rotation: R,
}

/// The fields `rotate` adds after `mint`'s (`rotate`'s object is a `Mint<Rotation>`).
#[derive(Debug, Serialize)]
pub struct Rotation {
    /// How long the previous key still verifies.
    pub keep_previous: KeepPrevious,
    /// Whether the principal is (still) revoked.
    pub revoked: bool,
}

/// `verify`.
#[derive(Debug, Serialize)]
pub struct Verify<'a> {
    /// The principal.
    pub principal: &'a str,
    /// The verdict.
    pub valid: bool,
    /// Why not: `invalid`, `malformed`, `revoked`, `kind`, `expired`; `None` when valid.
    pub reason: Option<&'static str>,
    /// The fingerprint of the master the key was minted under (valid keys only).
    pub master: Option<&'a str>,
    /// The key's generation (valid keys only).
    pub generation: Option<u64>,
    /// The machine the key is bound to (valid machine keys only, `--machine`).
    pub machine: Option<&'a str>,
    /// When the token expires or expired (RFC 3339): a valid token, or one refused as
    /// `expired`; `None` for a plain key.
    pub expires: Option<String>,
}

/// `explain`: what a key is; the fields that do not apply to the finding are left out.
#[derive(Debug, Default, Serialize)]
pub struct Explain<'a> {
    /// The principal the key was presented as.
    pub principal: &'a str,
    /// Whether it verifies as written.
    pub valid: bool,
    /// `valid`, `revoked`, `algorithm`, `generation`, `machine-generation`,
    /// `other-principal`, `other-machine`,
    /// `shared-refused`, `machine-revoked`, `retired-master`, `minted`, `expired`,
    /// `bad-token`, `malformed`, `unknown`, `refused`: of the key as written, or as repaired
    /// when `fixes` is not empty.
    pub finding: &'static str,
    /// How the key had to be repaired first: `joined` (whitespace inside removed),
    /// `lowercased`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fixes: Vec<&'static str>,
    /// The key's generation (`valid`, `generation`, `other-principal`, `retired-master`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// The principal's current generation (`generation`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_generation: Option<u64>,
    /// The key's machine generation (`machine-generation`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_generation: Option<u64>,
    /// The machine's current generation (`machine-generation`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_machine_generation: Option<u64>,
    /// Whose key it is (`other-principal`, `retired-master`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_principal: Option<String>,
    /// The machine the key is bound to (`other-principal`, `other-machine`), or it was
    /// presented from (`machine-revoked`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// The fingerprint of the master (`valid`, `retired-master`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// When the generation was replaced (`generation`) or the key minted
    /// (`retired-master`), RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// The key's algorithm (`algorithm`, `unknown`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<&'static str>,
    /// What the policy accepts for the principal (`algorithm`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted: Option<String>,
    /// Whether the key is the revoked principal's current key (`revoked`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub its_key: Option<bool>,
    /// The verifier's reason (`refused`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// `fingerprint`.
#[derive(Debug, Serialize)]
pub struct Fingerprint<'a> {
    /// The key's fingerprint.
    pub fingerprint: &'a str,
    /// The key's algorithm.
    pub algorithm: &'static str,
}

/// `path`.
#[derive(Debug, Serialize)]
pub struct AgentPath<'a> {
    /// The one file the agent reads.
    pub path: &'a Path,
    /// The rule that chose it.
    pub rule: String,
    /// Whether it exists.
    pub exists: bool,
    /// Existing key files the agent does not read.
    pub shadowed: Vec<Shadowed<'a>>,
    /// What else to know, one sentence each.
    pub notes: &'a [String],
}

/// A key file the agent does not read (`path`'s `shadowed`).
#[derive(Debug, Serialize)]
pub struct Shadowed<'a> {
    /// The file.
    pub path: &'a Path,
    /// The rule it would be read by.
    pub rule: String,
}

/// `check`.
#[derive(Debug, Serialize)]
pub struct Check<'a> {
    /// Whether there is no problem.
    pub ok: bool,
    /// The principal.
    pub principal: &'a str,
    /// The file the agent reads.
    pub path: &'a Path,
    /// The rule that chose it.
    pub rule: String,
    /// The key's algorithm, when a key could be read.
    pub algorithm: Option<&'static str>,
    /// The key's fingerprint, when a key could be read.
    pub fingerprint: Option<&'a str>,
    /// When the token in the file expires (RFC 3339); `None` for a plain key.
    pub expires: Option<String>,
    /// Whether the key verifies (`--verify` only).
    pub verified: Option<bool>,
    /// Every problem, each with its fix.
    pub problems: &'a [String],
    /// Warnings and notes.
    pub warnings: &'a [String],
    /// What `--explain` adds, one sentence each (empty without it).
    pub explanation: &'a [String],
}

/// `revoke` and `reinstate`.
#[derive(Debug, Serialize)]
pub struct Revoke<'a> {
    /// The principal.
    pub principal: &'a str,
    /// With `--machine` only: the machine revoked or reinstated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// Whether it (the machine, with `--machine`) is revoked now.
    pub revoked: bool,
    /// Whether this changed the policy.
    pub changed: bool,
    /// `--dry-run`.
    pub dry_run: bool,
}

/// `policy machine-keys-only`.
#[derive(Debug, Serialize)]
pub struct MachineKeysOnly {
    /// The principal.
    pub principal: String,
    /// Whether only machine keys verify now.
    pub machine_keys_only: bool,
    /// Whether this changed the policy.
    pub changed: bool,
    /// `--dry-run`.
    pub dry_run: bool,
}

/// `end-grace`.
#[derive(Debug, Serialize)]
pub struct EndGrace<'a> {
    /// The principal.
    pub principal: &'a str,
    /// Whether this changed the policy.
    pub changed: bool,
    /// The principal's generation.
    pub generation: u64,
    /// `--dry-run`.
    pub dry_run: bool,
}

/// `policy init`.
#[derive(Debug, Serialize)]
pub struct PolicyInit<'a> {
    /// The policy created.
    pub policy: &'a Path,
    /// `--from-log`.
    pub from_log: bool,
    /// How many principals the new policy names.
    pub principals: usize,
    /// `--dry-run`.
    pub dry_run: bool,
}

/// `scan`.
#[derive(Debug, Default, Serialize)]
pub struct Scan {
    /// `master` (with the masters, the policy and the action log) or `no-master`.
    pub mode: &'static str,
    /// What was found, in the order found.
    pub findings: Vec<ScanFinding>,
    /// How many files (and standard input) were read.
    pub files: u64,
    /// What was not read on purpose: links, FIFOs, devices.
    pub skipped: Vec<ScanPath>,
    /// What could not be read.
    pub unreadable: Vec<ScanPath>,
}

/// One key or token `scan` found: what it is, never the key.
#[derive(Debug, Serialize)]
pub struct ScanFinding {
    /// The file (`-`: standard input).
    pub path: String,
    /// The line it starts on, from 1.
    pub line: u64,
    /// `live`, `dead` or `unknown`.
    pub state: &'static str,
    /// Why it is dead: `expired`, `revoked`, `rotated`, `retired-master`, `algorithm`,
    /// `shared-refused`, `refused`; else `null`.
    pub reason: Option<&'static str>,
    /// `token` or `key`.
    pub kind: &'static str,
    /// Its algorithm.
    pub algorithm: &'static str,
    /// Whose it is, or `null` when not known.
    pub principal: Option<String>,
    /// The machine it is bound to, or `null`.
    pub machine: Option<String>,
    /// Its generation, or `null` when not known.
    pub generation: Option<u64>,
    /// When a token expires (RFC 3339); `null` for a plain key.
    pub expires: Option<String>,
    /// Its fingerprint.
    pub fingerprint: String,
}

/// A path `scan` did not read, and why.
#[derive(Debug, Serialize)]
pub struct ScanPath {
    /// The path.
    pub path: String,
    /// Why it was not read.
    pub why: String,
}

/// `log`.
#[derive(Debug, Serialize)]
pub struct Log<'a> {
    /// The action log's path.
    pub log: &'a Path,
    /// The actions, oldest first, as the log holds them (docs/json.md, "The action log").
    pub actions: &'a [Action],
}

/// `policy`.
#[derive(Debug, Serialize)]
pub struct Policy<'a> {
    /// The policy's path.
    pub policy: Option<&'a Path>,
    /// The farm's default algorithm.
    pub algorithm: &'static str,
    /// The masters whose keys verify.
    pub masters: Masters<'a>,
    /// Every principal the policy names.
    pub principals: Vec<PolicyPrincipal<'a>>,
    /// The principals to re-mint.
    pub stale: &'a [&'a str],
}

/// `policy`'s `masters`.
#[derive(Debug, Serialize)]
pub struct Masters<'a> {
    /// The primary master's fingerprint.
    pub primary: &'a str,
    /// The keyring's masters.
    pub previous: Vec<PreviousMaster>,
}

/// A previous master (`policy`'s `masters.previous`).
#[derive(Debug, Serialize)]
pub struct PreviousMaster {
    /// Its fingerprint.
    pub fingerprint: String,
    /// Where it comes from: a file, or a command.
    pub source: String,
    /// Its line in the policy.
    pub line: usize,
    /// The algorithms of the keys minted under it; `None`: any.
    pub algorithms: Option<Vec<&'static str>>,
}

/// A principal (`policy`'s `principals`).
#[derive(Debug, Serialize)]
pub struct PolicyPrincipal<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its generation.
    pub generation: u64,
    /// How long its previous key still verifies.
    pub keep_previous: KeepPrevious,
    /// Whether it is revoked.
    pub revoked: bool,
    /// The master its current key was minted under, when recorded.
    pub minted_under: Option<&'a str>,
    /// The algorithms its keys may be in.
    pub algorithms: Vec<&'static str>,
    /// The machines a key of their own was minted for.
    pub machines: Vec<&'a str>,
    /// Its machines from which nothing verifies.
    pub revoked_machines: Vec<&'a str>,
    /// The machines rotated on their own (`rotate --machine`), with their generations.
    pub machine_generations: Vec<MachineGeneration<'a>>,
    /// Whether only keys bound to a machine verify.
    pub machine_keys_only: bool,
    /// Whether it is to be re-minted.
    pub stale: bool,
}

/// A machine's own generation (`policy`'s `principals[].machine_generations`).
#[derive(Debug, Serialize)]
pub struct MachineGeneration<'a> {
    /// The machine.
    pub machine: &'a str,
    /// Its own generation (above 0).
    pub generation: u64,
}

/// `policy --stale`.
#[derive(Debug, Serialize)]
pub struct Stale<'a> {
    /// The principals to re-mint.
    pub stale: &'a [&'a str],
}

/// `import`.
#[derive(Debug, Serialize)]
pub struct Import<'a> {
    /// The policy.
    pub policy: &'a Path,
    /// `--alg`.
    pub algorithm: &'static str,
    /// The fingerprint of the master recorded.
    pub master: &'a str,
    /// The principals changed.
    pub recorded: &'a [&'a str],
    /// `--dry-run`.
    pub dry_run: bool,
}

/// `install`.
#[derive(Debug, Serialize)]
pub struct Install<'a> {
    /// The principal.
    pub principal: &'a str,
    /// The file written, or already holding the key.
    pub path: &'a Path,
    /// The key's fingerprint.
    pub fingerprint: &'a str,
    /// The file's mode, 4 octal digits.
    pub mode: Option<String>,
    /// Whether the file was written (`false`: the same key was there).
    pub written: bool,
}

/// `probe`.
#[derive(Debug, Serialize)]
#[cfg_attr(not(all(feature = "probe", unix)), allow(dead_code))]
pub struct Probe<'a> {
    /// The principal.
    pub principal: &'a str,
    /// The key file the agent reads.
    pub key_file: &'a Path,
    /// The key's fingerprint; `None` when the key file has a problem.
    pub fingerprint: Option<&'a str>,
    /// The URL asked; `None` when nothing was sent.
    pub coordinator: Option<String>,
    /// The HTTP status.
    pub status: Option<u16>,
    /// What the answer means.
    pub meaning: &'a str,
    /// Whether the coordinator accepted the key.
    pub accepted: bool,
}

/// `master rotate`.
#[derive(Debug, Serialize)]
pub struct MasterRotate<'a> {
    /// The master.
    pub path: &'a Path,
    /// The new master's fingerprint; `None` on a dry run.
    pub fingerprint: Option<&'a str>,
    /// The old master's fingerprint.
    pub previous: &'a str,
    /// Where the old master is kept.
    pub kept: &'a Path,
    /// `--dry-run`.
    pub dry_run: bool,
}

/// `master add`.
#[derive(Debug, Serialize)]
pub struct MasterAdd<'a> {
    /// The fingerprint of the master added.
    pub fingerprint: &'a str,
    /// Its source: the file, or `the master key command`.
    pub source: String,
    /// Whether this changed the policy (`false`: already accepted).
    pub changed: bool,
    /// `--dry-run`.
    pub dry_run: bool,
}

/// `master retire`.
#[derive(Debug, Serialize)]
pub struct MasterRetire<'a> {
    /// The fingerprint retired.
    pub fingerprint: &'a str,
    /// The keyring entries removed.
    pub removed: Vec<String>,
    /// `--dry-run`.
    pub dry_run: bool,
}

/// An error (command `error`), on standard error.
#[derive(Debug, Serialize)]
pub struct Error {
    /// The error and its causes, on one line.
    pub error: String,
    /// The exit status.
    pub exit: u8,
}

/// The body of `serve`'s `GET /healthz` (docs/coordinators.md): no schema, no command.
#[derive(Debug, Serialize)]
#[cfg_attr(not(all(feature = "serve", unix)), allow(dead_code))]
pub struct Health<'a> {
    /// `ok`, or `stale` while reloads fail.
    pub state: &'static str,
    /// While stale only: the last reload's error, on one line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    /// While stale only: when the first failed reload ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// When the masters and the policy in use were loaded.
    pub loaded_at: String,
    /// When the last reload ended; `None` before any.
    pub last_reload: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::BTreeSet;
    use std::path::Path;

    use serde::Serialize;
    use serde_json::Value;

    use gobuildkey::policy::Grace;
    use gobuildkey::policy::actions::{
        Action, KeyringAdded, KeyringChange, KeyringSource, StateRecord,
    };

    use super::*;

    const JSON_MD: &str = include_str!("../../docs/json.md");
    const COORDINATORS_MD: &str = include_str!("../../docs/coordinators.md");

    /// The shape of an object: its fields in order, each with the shape of the object it
    /// holds (directly or in an array), or none.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Shape(Vec<(String, Option<Shape>)>);

    impl Shape {
        fn names(&self) -> Vec<&str> {
            self.0.iter().map(|(name, _)| name.as_str()).collect()
        }
    }

    /// The shape of a value as printed; an array is the shape of its first element.
    fn shape_of(value: &Value) -> Option<Shape> {
        match value {
            Value::Object(map) => Some(Shape(
                map.iter()
                    .map(|(name, value)| (name.clone(), shape_of(value)))
                    .collect(),
            )),
            Value::Array(items) => items.first().and_then(shape_of),
            _ => None,
        }
    }

    /// One sample result: the rows of docs/json.md it is (`revoke` and `reinstate` share a
    /// struct), the command it is printed under, and the object printed, schema and
    /// command first. Every array holding objects has one, so that their shapes show.
    struct Sample {
        rows: &'static [&'static str],
        command: &'static str,
        object: Value,
    }

    fn sample<T: Serialize>(
        rows: &'static [&'static str],
        command: &'static str,
        body: &T,
    ) -> Sample {
        let text = crate::output::encode(command, body).unwrap();
        Sample {
            rows,
            command,
            object: serde_json::from_str(&text).unwrap(),
        }
    }

    /// An action with every field set, as `log` prints it.
    fn full_action() -> Action {
        Action {
            time: "2026-11-29T22:30:00Z".into(),
            user: "gobuildkey".into(),
            uid: 998,
            invoked_by: Some("alice".into()),
            login_uid: Some(1000),
            host: "farm-admin-1".into(),
            command: "rotate".into(),
            principal: Some("host-a".into()),
            machine: Some("builder-1".into()),
            generation: Some(1),
            algorithm: Some("hmac-sha256".into()),
            master: Some("SHA256:dbbf3b9776cdffb3".into()),
            key: Some("SHA256:0123456789abcdef".into()),
            expires: Some("2026-12-01T12:00:00Z".into()),
            reason: Some("why".into()),
            state: Some(StateRecord {
                generation: 1,
                keep_previous: Value::Bool(true),
                revoked: false,
                minted_under: Some("SHA256:dbbf3b9776cdffb3".into()),
                algorithms: Some(vec!["hmac-sha256".into()]),
                machines: vec!["builder-1".into()],
                revoked_machines: vec!["builder-1".into()],
                machine_keys_only: true,
                machine_generations: [("builder-1".to_owned(), 2)].into(),
            }),
            keyring: Some(KeyringChange::Added(KeyringAdded {
                source: KeyringSource::File("/etc/farm/old.key".into()),
                algorithms: Some(vec!["hmac-md5".into()]),
            })),
        }
    }

    /// An action with no optional field: what every line holds.
    fn bare_action() -> Action {
        Action {
            invoked_by: None,
            login_uid: None,
            principal: None,
            machine: None,
            generation: None,
            algorithm: None,
            master: None,
            key: None,
            expires: None,
            reason: None,
            state: None,
            keyring: None,
            ..full_action()
        }
    }

    /// A sample of every struct, with every field that appears only sometimes present.
    #[allow(clippy::too_many_lines)]
    fn samples() -> Vec<Sample> {
        let path = Path::new("/home/a/keys/gobuilder-master.key");
        let fp = "SHA256:dbbf3b9776cdffb3";
        let strings = vec!["a sentence".to_owned()];
        let names = ["host-a"];
        let actions = [full_action()];
        fn minted<'a, R>(path: &'a Path, fp: &'a str, rotation: R) -> Mint<'a, R> {
            Mint {
                principal: "host-a",
                // `--machine` only.
                machine: Some("builder-1"),
                machine_generation: Some(2),
                expires: (std::mem::size_of::<R>() == 0).then(|| "2026-12-01T12:00:00Z".to_owned()),
                generation: 1,
                algorithm: "hmac-sha256",
                fingerprint: fp,
                key: None,
                output: Some(path),
                rotation,
            }
        }
        vec![
            sample(
                &["init"],
                "init",
                &Init {
                    path,
                    fingerprint: fp,
                    replaced: None,
                    policy: path,
                    policy_created: true,
                },
            ),
            sample(&["mint"], "mint", &minted(path, fp, ())),
            // Every field at once, which no finding has: the table lists them all.
            sample(
                &["explain"],
                "explain",
                &Explain {
                    principal: "host-a",
                    valid: false,
                    finding: "generation",
                    fixes: vec!["lowercased"],
                    generation: Some(0),
                    current_generation: Some(1),
                    machine_generation: Some(0),
                    current_machine_generation: Some(1),
                    other_principal: Some("host-b".to_owned()),
                    machine: Some("builder-1".to_owned()),
                    master: Some(fp.to_owned()),
                    time: Some("2026-11-30T00:00:00Z".to_owned()),
                    algorithm: Some("hmac-sha256"),
                    accepted: Some("hmac-sha256".to_owned()),
                    its_key: Some(false),
                    reason: Some("invalid"),
                },
            ),
            sample(
                &["rotate"],
                "rotate",
                &minted(
                    path,
                    fp,
                    Rotation {
                        keep_previous: KeepPrevious(Grace::Open),
                        revoked: false,
                    },
                ),
            ),
            sample(
                &["verify"],
                "verify",
                &Verify {
                    principal: "host-a",
                    valid: true,
                    reason: None,
                    master: Some(fp),
                    generation: Some(0),
                    machine: Some("builder-1"),
                    expires: Some("2026-12-01T12:00:00Z".into()),
                },
            ),
            sample(
                &["fingerprint"],
                "fingerprint",
                &Fingerprint {
                    fingerprint: fp,
                    algorithm: "hmac-sha256",
                },
            ),
            sample(
                &["path"],
                "path",
                &AgentPath {
                    path,
                    rule: "per-host".into(),
                    exists: false,
                    shadowed: vec![Shadowed {
                        path,
                        rule: "legacy".into(),
                    }],
                    notes: &strings,
                },
            ),
            sample(
                &["check"],
                "check",
                &Check {
                    ok: true,
                    principal: "host-a",
                    path,
                    rule: "per-host".into(),
                    algorithm: Some("hmac-sha256"),
                    fingerprint: Some(fp),
                    expires: Some("2026-12-01T12:00:00Z".into()),
                    verified: None,
                    problems: &strings,
                    warnings: &strings,
                    explanation: &strings,
                },
            ),
            sample(
                &["policy machine-keys-only"],
                "policy machine-keys-only",
                &MachineKeysOnly {
                    principal: "host-a".into(),
                    machine_keys_only: true,
                    changed: true,
                    dry_run: false,
                },
            ),
            sample(
                &["revoke", "reinstate"],
                "revoke",
                &Revoke {
                    principal: "host-a",
                    machine: Some("builder-1".into()),
                    revoked: true,
                    changed: true,
                    dry_run: false,
                },
            ),
            sample(
                &["end-grace"],
                "end-grace",
                &EndGrace {
                    principal: "host-a",
                    changed: true,
                    generation: 1,
                    dry_run: false,
                },
            ),
            sample(
                &["policy init"],
                "policy init",
                &PolicyInit {
                    policy: path,
                    from_log: false,
                    principals: 0,
                    dry_run: false,
                },
            ),
            sample(
                &["scan"],
                "scan",
                &Scan {
                    mode: "master",
                    findings: vec![ScanFinding {
                        path: "src/main.rs".into(),
                        line: 3,
                        state: "dead",
                        reason: Some("expired"),
                        kind: "token",
                        algorithm: "hmac-sha256",
                        principal: Some("host-a".into()),
                        machine: Some("builder-1".into()),
                        generation: Some(0),
                        expires: Some("2026-12-01T12:00:00Z".into()),
                        fingerprint: fp.into(),
                    }],
                    files: 1,
                    skipped: vec![ScanPath {
                        path: "link".into(),
                        why: "a symbolic link, not followed".into(),
                    }],
                    unreadable: vec![ScanPath {
                        path: "secret".into(),
                        why: "Permission denied (os error 13)".into(),
                    }],
                },
            ),
            sample(
                &["log"],
                "log",
                &Log {
                    log: path,
                    actions: &actions,
                },
            ),
            sample(
                &["policy"],
                "policy",
                &Policy {
                    policy: Some(path),
                    algorithm: "hmac-sha256",
                    masters: Masters {
                        primary: fp,
                        previous: vec![PreviousMaster {
                            fingerprint: fp.into(),
                            source: "/etc/farm/old.key".into(),
                            line: 3,
                            algorithms: None,
                        }],
                    },
                    principals: vec![PolicyPrincipal {
                        name: "host-a",
                        generation: 1,
                        keep_previous: KeepPrevious(Grace::None),
                        revoked: false,
                        minted_under: Some(fp),
                        algorithms: vec!["hmac-sha256"],
                        machines: vec!["builder-1", "builder-2"],
                        revoked_machines: vec!["builder-1"],
                        machine_generations: vec![MachineGeneration {
                            machine: "builder-2",
                            generation: 2,
                        }],
                        machine_keys_only: false,
                        stale: false,
                    }],
                    stale: &names,
                },
            ),
            sample(
                &["import"],
                "import",
                &Import {
                    policy: path,
                    algorithm: "hmac-md5",
                    master: fp,
                    recorded: &names,
                    dry_run: false,
                },
            ),
            sample(&["policy --stale"], "policy", &Stale { stale: &names }),
            sample(
                &["install"],
                "install",
                &Install {
                    principal: "host-a",
                    path,
                    fingerprint: fp,
                    mode: Some("0600".into()),
                    written: true,
                },
            ),
            sample(
                &["probe"],
                "probe",
                &Probe {
                    principal: "host-a",
                    key_file: path,
                    fingerprint: Some(fp),
                    coordinator: Some("https://farm.example/reverse".into()),
                    status: Some(101),
                    meaning: "accepted",
                    accepted: true,
                },
            ),
            sample(
                &["master rotate"],
                "master rotate",
                &MasterRotate {
                    path,
                    fingerprint: Some(fp),
                    previous: fp,
                    kept: path,
                    dry_run: false,
                },
            ),
            sample(
                &["master add"],
                "master add",
                &MasterAdd {
                    fingerprint: fp,
                    source: "command".into(),
                    changed: true,
                    dry_run: false,
                },
            ),
            sample(
                &["master retire"],
                "master retire",
                &MasterRetire {
                    fingerprint: fp,
                    removed: vec!["/etc/farm/old.key".into()],
                    dry_run: false,
                },
            ),
            sample(
                &[],
                "error",
                &Error {
                    error: "no master key".into(),
                    exit: 66,
                },
            ),
        ]
    }

    /// The text of the section of `markdown` under the heading `heading`, to the next
    /// heading of its level or above.
    fn section<'m>(markdown: &'m str, heading: &str) -> &'m str {
        let start = markdown
            .find(&format!("\n{heading}\n"))
            .unwrap_or_else(|| panic!("no section {heading:?}"))
            + heading.len()
            + 2;
        let level = heading.split(' ').next().unwrap();
        let rest = &markdown[start..];
        let end = rest
            .match_indices('\n')
            .map(|(at, _)| at + 1)
            .find(|&at| {
                rest[at..].split(' ').next().is_some_and(|hashes| {
                    hashes.chars().all(|c| c == '#')
                        && hashes.len() <= level.len()
                        && !hashes.is_empty()
                })
            })
            .unwrap_or(rest.len());
        &rest[..end]
    }

    /// The body rows of the first table in `text`, as cells (the header and its rule
    /// left out).
    fn table_rows(text: &str) -> Vec<Vec<String>> {
        text.lines()
            .skip_while(|line| !line.starts_with('|'))
            .take_while(|line| line.starts_with('|'))
            .skip(2)
            .map(|line| {
                let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
                split_cells(inner)
            })
            .collect()
    }

    /// A table row's cells: split at `|` outside backticks.
    fn split_cells(row: &str) -> Vec<String> {
        let mut cells = vec![String::new()];
        let mut code = false;
        for c in row.chars() {
            match c {
                '`' => code = !code,
                '|' if !code => {
                    cells.push(String::new());
                    continue;
                }
                _ => {}
            }
            cells.last_mut().unwrap().push(c);
        }
        cells.iter().map(|cell| cell.trim().to_owned()).collect()
    }

    /// A piece of a table cell: a code span, or the text between them.
    #[derive(Debug)]
    enum Piece<'t> {
        Code(&'t str),
        Text(&'t str),
    }

    fn pieces(cell: &str) -> Vec<Piece<'_>> {
        cell.split('`')
            .enumerate()
            .map(|(i, piece)| {
                if i % 2 == 1 {
                    Piece::Code(piece)
                } else {
                    Piece::Text(piece)
                }
            })
            .collect()
    }

    /// The fields a cell names: each code span outside parentheses is a field, and the
    /// first code span inside the parenthesis that follows it, if it is `{…}`, gives the
    /// fields of the object the field holds (`[{…}]` or "array of `{…}`" alike). Whether
    /// a field is in italics (`*`name`*`: it appears only sometimes) is said too.
    fn fields_of_cell(cell: &str) -> (Shape, Vec<String>) {
        let mut fields: Vec<(String, Option<Shape>)> = Vec::new();
        let mut sometimes = Vec::new();
        let mut depth = 0usize;
        let mut italic = false;
        for piece in pieces(cell) {
            match piece {
                Piece::Text(text) => {
                    for c in text.chars() {
                        match c {
                            '(' => depth += 1,
                            ')' => depth = depth.checked_sub(1).expect("a `)` too many"),
                            _ => {}
                        }
                    }
                    italic = text.ends_with('*');
                }
                Piece::Code(code) if depth == 0 => {
                    if italic {
                        sometimes.push(code.to_owned());
                    }
                    fields.push((code.to_owned(), None));
                }
                Piece::Code(code) => {
                    if let (Some((_, nested @ None)), true) =
                        (fields.last_mut(), code.starts_with('{'))
                    {
                        *nested = Some(parse_object(&mut code.chars().peekable()));
                    }
                }
            }
        }
        assert_eq!(depth, 0, "unbalanced parentheses in {cell:?}");
        (Shape(fields), sometimes)
    }

    /// `{name, name: word, name: {…}, name: [{…}]}`: the names and the objects they hold.
    fn parse_object(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Shape {
        assert_eq!(chars.next(), Some('{'));
        let mut fields = Vec::new();
        loop {
            let name: String =
                std::iter::from_fn(|| chars.next_if(|c| c.is_alphanumeric() || *c == '_'))
                    .collect();
            assert!(!name.is_empty(), "a field name is missing");
            let mut nested = None;
            while chars.next_if_eq(&' ').is_some() {}
            if chars.next_if_eq(&':').is_some() {
                while chars.next_if_eq(&' ').is_some() {}
                let bracket = chars.next_if_eq(&'[').is_some();
                if chars.peek() == Some(&'{') {
                    nested = Some(parse_object(chars));
                } else {
                    // A word describing a value.
                    while chars.next_if(|c| !matches!(c, ',' | '}' | ']')).is_some() {}
                }
                if bracket {
                    assert_eq!(chars.next(), Some(']'));
                }
            }
            fields.push((name, nested));
            match chars.next() {
                Some(',') => while chars.next_if_eq(&' ').is_some() {},
                Some('}') => return Shape(fields),
                other => panic!("unexpected {other:?} in an object's description"),
            }
        }
    }

    /// docs/json.md's "Per command" table: each command's name (a row may name several)
    /// and the shape of its fields after `schema` and `command`.
    fn per_command() -> Vec<(String, Shape)> {
        let mut rows = Vec::new();
        for cells in table_rows(section(JSON_MD, "## Per command")) {
            assert_eq!(cells.len(), 2, "{cells:?}");
            let (shape, sometimes) = fields_of_cell(&cells[1]);
            assert!(sometimes.is_empty(), "{cells:?}");
            for piece in pieces(&cells[0]) {
                if let Piece::Code(command) = piece {
                    rows.push((command.to_owned(), shape.clone()));
                }
            }
        }
        rows
    }

    /// The shape of a sample's fields after `schema` and `command`.
    fn body_shape(sample: &Sample) -> Shape {
        let Shape(mut fields) = shape_of(&sample.object).unwrap();
        let header: Vec<String> = fields.drain(..2).map(|(name, _)| name).collect();
        assert_eq!(header, ["schema", "command"]);
        assert_eq!(sample.object["schema"], crate::output::SCHEMA);
        assert_eq!(sample.object["command"], sample.command);
        Shape(fields)
    }

    /// Every struct prints exactly the fields, in the order, that docs/json.md lists for
    /// its command, and the fields of their nested objects; every command the table lists
    /// has a struct. (`log`'s actions are held to "The action log" below.)
    #[test]
    fn every_struct_has_the_fields_docs_json_md_lists() {
        let documented = per_command();
        let samples = samples();
        let mut covered = BTreeSet::new();
        for sample in &samples {
            let mut shape = body_shape(sample);
            if sample.command == "log" {
                // Held to the action log's own table.
                shape.0[1].1 = None;
            }
            for row in sample.rows {
                let (_, doc) = documented
                    .iter()
                    .find(|(name, _)| name == row)
                    .unwrap_or_else(|| panic!("docs/json.md has no row for `{row}`"));
                assert_eq!(
                    shape,
                    *doc,
                    "`{row}`: the struct prints {:?}, docs/json.md lists {:?}",
                    shape.names(),
                    doc.names()
                );
                assert!(covered.insert(*row), "two structs for `{row}`");
            }
        }
        for (row, _) in &documented {
            assert!(
                covered.contains(row.as_str()),
                "no struct for the row `{row}` of docs/json.md"
            );
        }
    }

    /// The action log's table: each field in order, and whether it appears only sometimes.
    fn action_fields() -> (Vec<String>, Vec<String>) {
        let mut fields = Vec::new();
        let mut sometimes = Vec::new();
        for cells in table_rows(section(JSON_MD, "## The action log")) {
            let (shape, italic) = fields_of_cell(&cells[0]);
            fields.extend(shape.names().into_iter().map(str::to_owned));
            sometimes.extend(italic);
        }
        (fields, sometimes)
    }

    fn keys(value: &Value) -> Vec<String> {
        value.as_object().unwrap().keys().cloned().collect()
    }

    /// `log`'s actions have the fields of docs/json.md's action log table, in its order,
    /// those in italics only when set; the nested `state` and `keyring` name theirs.
    #[test]
    fn actions_have_the_fields_of_the_action_log_table() {
        let (fields, sometimes) = action_fields();
        let full = serde_json::to_value(full_action()).unwrap();
        assert_eq!(keys(&full), fields);
        let bare = keys(&serde_json::to_value(bare_action()).unwrap());
        let always: Vec<String> = fields
            .iter()
            .filter(|f| !sometimes.contains(f))
            .cloned()
            .collect();
        assert_eq!(bare, always);
        let rows = table_rows(section(JSON_MD, "## The action log"));
        let row_of = |field: &str| {
            rows.iter()
                .find(|cells| cells[0].contains(&format!("`{field}`")))
                .unwrap()[1]
                .clone()
        };
        for name in keys(&full["state"]) {
            assert!(
                row_of("state").contains(&format!("`{name}`")),
                "`state.{name}` is not in docs/json.md"
            );
        }
        let added = &full["keyring"]["added"];
        for name in keys(added) {
            assert!(
                row_of("keyring").contains(&format!("\"{name}\"")),
                "`keyring.added.{name}` is not in docs/json.md"
            );
        }
    }

    /// The `json` blocks of docs/json.md parse, and each line has the fields of its struct
    /// (a command's object, or an action): all of them, in order, but those that appear
    /// only sometimes.
    #[test]
    fn the_examples_of_docs_json_md_have_the_fields_of_their_structs() {
        let samples = samples();
        let (action_fields, action_sometimes) = action_fields();
        let mut seen = 0;
        let mut block = None::<String>;
        for line in JSON_MD.lines() {
            if line.starts_with("```") {
                block = match block {
                    None => Some(line.trim_start_matches('`').to_owned()),
                    Some(_) => None,
                };
                continue;
            }
            if block.as_deref() != Some("json") {
                continue;
            }
            let example: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("docs/json.md: {e}: {line}"));
            let (all, sometimes): (Vec<String>, Vec<String>) = if example.get("schema").is_some() {
                let command = example["command"].as_str().unwrap();
                let sample = samples
                    .iter()
                    .find(|s| s.command == command)
                    .unwrap_or_else(|| panic!("no struct for the example {line}"));
                // Only `mint`'s and `rotate`'s `output` is left out when not set.
                let sometimes = if matches!(command, "mint" | "rotate") {
                    vec!["output".to_owned()]
                } else {
                    Vec::new()
                };
                (keys(&sample.object), sometimes)
            } else {
                (action_fields.clone(), action_sometimes.clone())
            };
            let expected: Vec<String> = all
                .into_iter()
                .filter(|f| example.get(f).is_some() || !sometimes.contains(f))
                .collect();
            assert_eq!(keys(&example), expected, "docs/json.md: {line}");
            seen += 1;
        }
        assert_eq!(seen, 4, "docs/json.md's JSON examples");
    }

    /// `/healthz`'s body has the fields of docs/coordinators.md's two examples.
    #[test]
    fn health_has_the_fields_of_docs_coordinators_md() {
        let ok = Health {
            state: "ok",
            error: None,
            since: None,
            loaded_at: "2026-11-24T12:00:00Z".into(),
            last_reload: None,
        };
        let stale = Health {
            state: "stale",
            error: Some("policy: not valid TOML"),
            since: Some("2026-11-24T12:05:02Z".into()),
            loaded_at: ok.loaded_at.clone(),
            last_reload: Some("2026-11-24T12:07:40Z".into()),
        };
        let examples: Vec<Value> = COORDINATORS_MD
            .lines()
            .filter(|line| line.starts_with("{\"state\":"))
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(examples.len(), 2);
        for (health, example) in [ok, stale].iter().zip(&examples) {
            assert_eq!(example["state"], health.state);
            let printed = serde_json::to_value(health).unwrap();
            assert_eq!(keys(&printed), keys(example));
        }
    }

    /// A grace period prints as docs/json.md says: `false`, `true` or its end.
    #[test]
    fn keep_previous_is_false_true_or_the_end() {
        let end: jiff::Timestamp = "2026-12-01T12:00:00Z".parse().unwrap();
        let printed = |grace| serde_json::to_string(&KeepPrevious(grace)).unwrap();
        assert_eq!(printed(Grace::None), "false");
        assert_eq!(printed(Grace::Open), "true");
        assert_eq!(printed(Grace::Until(end)), r#""2026-12-01T12:00:00Z""#);
    }

    /// `mint` leaves `output` out when it printed the key, and adds nothing after it;
    /// `rotate` adds its fields after `mint`'s, whether `output` is there or not.
    #[test]
    fn mint_and_rotate_objects() {
        let mint = Mint {
            principal: "host-a",
            machine: None,
            machine_generation: None,
            expires: None,
            generation: 0,
            algorithm: "hmac-sha256",
            fingerprint: "SHA256:dbbf3b9776cdffb3",
            key: Some("0123"),
            output: None,
            rotation: (),
        };
        assert_eq!(
            crate::output::encode("mint", &mint).unwrap(),
            r#"{"schema":"gobuildkey/1","command":"mint","principal":"host-a","generation":0,"algorithm":"hmac-sha256","fingerprint":"SHA256:dbbf3b9776cdffb3","key":"0123"}"#
        );
        let rotate = Mint {
            principal: mint.principal,
            machine: None,
            machine_generation: None,
            expires: None,
            generation: mint.generation,
            algorithm: mint.algorithm,
            fingerprint: mint.fingerprint,
            key: None,
            output: Some(Path::new("/tmp/k")),
            rotation: Rotation {
                keep_previous: KeepPrevious(Grace::None),
                revoked: true,
            },
        };
        assert_eq!(
            crate::output::encode("rotate", &rotate).unwrap(),
            r#"{"schema":"gobuildkey/1","command":"rotate","principal":"host-a","generation":0,"algorithm":"hmac-sha256","fingerprint":"SHA256:dbbf3b9776cdffb3","key":null,"output":"/tmp/k","keep_previous":false,"revoked":true}"#
        );
        // `rotate --machine`: the machine and its new generation after the principal.
        let machine = Mint {
            machine: Some("builder-1"),
            machine_generation: Some(3),
            output: None,
            ..rotate
        };
        assert_eq!(
            crate::output::encode("rotate", &machine).unwrap(),
            r#"{"schema":"gobuildkey/1","command":"rotate","principal":"host-a","machine":"builder-1","machine_generation":3,"generation":0,"algorithm":"hmac-sha256","fingerprint":"SHA256:dbbf3b9776cdffb3","key":null,"keep_previous":false,"revoked":true}"#
        );
    }
}
