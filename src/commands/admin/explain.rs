//! `gobuildkey explain`: what a key that does not verify is, for the admin who holds the
//! masters.

use anyhow::Result;

use gobuildkey::explain::{Explanation, Fix, explain};
use gobuildkey::key::Presented;
use gobuildkey::principal::Principal;
use gobuildkey::verifier::Reason;

use crate::cli::ExplainArgs;
use crate::exit::Exit;
use crate::output;

/// Loads the masters, the policy and the action log, reads the key, and says what it is.
pub fn run(args: &ExplainArgs) -> Result<Exit> {
    let verifier = crate::commands::load_verifier(&args.master, None, Some(&args.principal))?
        .with_clock_skew(args.skew.clock_skew);
    let history = crate::commands::load_history(&args.master)?;
    let Some(presented) = crate::commands::read_key_input(args.key_file.as_deref())? else {
        // Past the bound, not read to its end: no key, and not "0 bytes" either.
        let fields = crate::commands::json::Explain {
            principal: args.principal.as_str(),
            finding: "malformed",
            ..Default::default()
        };
        let text = format!(
            "not a key: more than {} bytes, where a key is 64 (hmac-sha256) or 32 (hmac-md5) \
             hex digits: was the right file sent?",
            gobuildkey::key::MAX_KEY_INPUT
        );
        output::report("explain", &text, &fields);
        return Ok(Exit::Invalid);
    };
    let presented = Presented::from(presented.as_slice()).from_machine(args.machine.as_ref());
    let found = explain(
        &verifier,
        &history,
        &args.principal,
        presented,
        jiff::Timestamp::now(),
    );
    let valid = matches!(found, Explanation::Valid { .. });
    let mut fields = crate::commands::json::Explain {
        principal: args.principal.as_str(),
        valid,
        ..Default::default()
    };
    let text = describe(&args.principal, &found, &mut fields);
    output::report("explain", &text, &fields);
    Ok(if valid { Exit::Ok } else { Exit::Invalid })
}

/// The explanation in words, with what to do next; `fields` filled for --json.
fn describe(
    principal: &Principal,
    found: &Explanation,
    fields: &mut crate::commands::json::Explain<'_>,
) -> String {
    match found {
        Explanation::Valid { master, generation } => {
            fields.finding = "valid";
            fields.generation = Some(*generation);
            fields.master = Some(master.as_str().to_owned());
            format!(
                "valid: the key of {principal}, generation {generation}, under the master {master}"
            )
        }
        Explanation::Revoked { its_key } => {
            fields.finding = "revoked";
            fields.its_key = Some(*its_key);
            let whose = if *its_key {
                "it is its current key"
            } else {
                "and it is not even its current key"
            };
            format!(
                "not valid: {principal} is revoked, so no key of it verifies; {whose} \
                 (`gobuildkey reinstate {principal}` if the revocation was a mistake)"
            )
        }
        Explanation::Repaired { fixes, then } => {
            fields.fixes = fixes.iter().map(|f| f.as_str()).collect();
            let what: Vec<&str> = fixes
                .iter()
                .map(|fix| match fix {
                    Fix::Joined => "whitespace inside it",
                    Fix::Lowercased => "uppercase letters (keys are lowercase hex)",
                })
                .collect();
            // The finding is what the repaired key is; `fixes` says it was repaired.
            let inner = describe(principal, then, fields);
            format!(
                "not valid as written: it has {}. Repaired: {inner}\nhave the builder's key \
                 file written again from the key as minted (`gobuildkey install` checks the form)",
                what.join(" and ")
            )
        }
        Explanation::Algorithm {
            algorithm,
            accepted,
        } => {
            fields.finding = "algorithm";
            fields.algorithm = Some(algorithm.name());
            fields.accepted = Some(accepted.to_string());
            let alg = algorithm;
            format!(
                "not valid: the {alg} key of {principal}, but the policy accepts only \
                 {accepted} keys for it: give the builder its key in that algorithm \
                 (`gobuildkey mint {principal}`), or accept {alg} for it \
                 (`gobuildkey import --alg {alg} {principal}`)"
            )
        }
        Explanation::Generation {
            generation,
            current,
            replaced,
        } => {
            fields.finding = "generation";
            fields.generation = Some(*generation);
            fields.current_generation = Some(*current);
            fields.time.clone_from(replaced);
            let when = replaced
                .as_ref()
                .map_or_else(String::new, |time| format!(", replaced on {time}"));
            format!(
                "not valid: the key of {principal} at generation {generation}{when}; its current \
                 generation is {current}: give the builder the current key \
                 (`gobuildkey mint {principal}`)"
            )
        }
        Explanation::OtherPrincipal {
            principal: other,
            generation,
            current,
            machine,
        } => {
            fields.finding = "other-principal";
            fields.other_principal = Some(other.as_str().to_owned());
            fields.generation = Some(*generation);
            fields.machine = machine.as_ref().map(|m| m.as_str().to_owned());
            let which = if *current {
                "its current key"
            } else {
                "not its current generation"
            };
            let bound = machine
                .as_ref()
                .map_or_else(String::new, |m| format!(" bound to the machine {m}"));
            format!(
                "not valid: the key of {other}{bound} (generation {generation}, {which}), \
                 presented as {principal}: the builder runs as the wrong host type, or the key \
                 file of {other} was installed for {principal}"
            )
        }
        Explanation::MachineGeneration {
            machine,
            generation,
            current,
            replaced,
        } => {
            fields.finding = "machine-generation";
            fields.machine = Some(machine.as_str().to_owned());
            fields.machine_generation = Some(*generation);
            fields.current_machine_generation = Some(*current);
            fields.time.clone_from(replaced);
            let when = replaced
                .as_ref()
                .map_or_else(String::new, |time| format!(", replaced on {time}"));
            format!(
                "not valid: the key of {principal} bound to the machine {machine} at its own \
                 generation {generation}{when}; the machine's current generation is {current} \
                 (`gobuildkey rotate --machine {machine} {principal}` replaced it): give the \
                 builder its current key (`gobuildkey mint --machine {machine} {principal}`)"
            )
        }
        Explanation::OtherMachine { machine } => {
            fields.finding = "other-machine";
            fields.machine = Some(machine.as_str().to_owned());
            format!(
                "not valid: the key of {principal} bound to the machine {machine}, presented from \
                 another machine (or without saying which: `--machine NAME`): a key file copied \
                 from {machine}, or a builder whose host name changed \
                 (`gobuildkey mint --machine NAME {principal}` for its new name)"
            )
        }
        Explanation::SharedRefused => {
            fields.finding = "shared-refused";
            format!(
                "not valid: the shared key of {principal}, but the policy accepts only keys bound \
                 to a machine for it: give the builder its own \
                 (`gobuildkey mint --machine NAME {principal}`), or accept the shared key again \
                 (`gobuildkey policy machine-keys-only --off {principal}`)"
            )
        }
        Explanation::MachineRevoked { machine, its_key } => {
            fields.finding = "machine-revoked";
            fields.machine = Some(machine.as_str().to_owned());
            fields.its_key = Some(*its_key);
            format!(
                "not valid: presented from the machine {machine}, which is revoked for \
                 {principal}: nothing from it verifies \
                 (`gobuildkey reinstate --machine {machine} {principal}` if that was a mistake)"
            )
        }
        Explanation::Retired(minted) => {
            fields.finding = "retired-master";
            fields.other_principal = Some(minted.principal.clone());
            fields.generation = Some(minted.generation);
            fields.master = Some(minted.master.clone());
            fields.time = Some(minted.time.clone());
            format!(
                "not valid: minted for {} (generation {}) on {} by {} ({}) under the master \
                 {}, which is no longer in the keyring: give the builder a key minted now \
                 (`gobuildkey mint {principal}`)",
                minted.principal,
                minted.generation,
                minted.time,
                minted.user,
                minted.command,
                minted.master
            )
        }
        Explanation::Logged(minted) => {
            fields.finding = "minted";
            fields.other_principal = Some(minted.principal.clone());
            fields.generation = Some(minted.generation);
            fields.master = Some(minted.master.clone());
            fields.time = Some(minted.time.clone());
            format!(
                "not valid as the key of {principal}: the action log records it as minted for {} \
                 (generation {}) on {} by {} ({}) under the master {}, which is in the keyring, \
                 yet it is no principal's shared key: a key bound to a machine \
                 (`mint --machine`)? `gobuildkey verify --machine NAME {}` checks it from that \
                 machine",
                minted.principal,
                minted.generation,
                minted.time,
                minted.user,
                minted.command,
                minted.master,
                minted.principal
            )
        }
        Explanation::Expired { expires } => {
            fields.finding = "expired";
            fields.time = Some(expires.to_string());
            format!(
                "not valid: the expiring token of {principal}, its current one, expired at \
                 {expires}: give the builder a new one \
                 (`gobuildkey mint --expires-in 24h {principal}`), or a verifier whose clock \
                 is behind may need `--clock-skew`"
            )
        }
        Explanation::BadToken(error) => {
            fields.finding = "bad-token";
            format!("not a token: {error}; nothing was computed with the masters")
        }
        Explanation::Malformed { length } => {
            fields.finding = "malformed";
            format!(
                "not a key: {length} bytes that are not 64 (hmac-sha256) or 32 (hmac-md5) hex \
                 digits, even with case and whitespace repaired: was the right file sent?"
            )
        }
        Explanation::Unknown { algorithm } => {
            fields.finding = "unknown";
            fields.algorithm = Some(algorithm.name());
            format!(
                "not valid: a well-formed {algorithm} key, but of nothing the farm knows — no \
                 principal of the policy or the action log at any generation under the masters \
                 of the keyring, nor bound to any machine the policy or the log names, and no \
                 key the action log records: a key bound to a machine the farm does not list \
                 (`gobuildkey verify --machine NAME {principal}` checks it), else a key of \
                 another farm or made up"
            )
        }
        Explanation::Refused(reason) => {
            fields.finding = "refused";
            fields.reason = Some(reason.as_str());
            let why = match reason {
                Reason::Malformed => "its master's keys are accepted only in other algorithms",
                _ => "the verifier refuses it",
            };
            format!("not valid: the key of {principal}, but {why}")
        }
    }
}
