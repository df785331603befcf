//! `gobuildkey verify`: check a presented key against the masters and the policy.

use std::io;

use anyhow::Result;

use gobuildkey::audit::{AuditLog, AuditRecord};
use gobuildkey::batch;
use gobuildkey::keys::{Reason, Verdict};

use crate::cli::VerifyArgs;
use crate::exit::Exit;
use crate::output;
use serde_json::json;

/// Loads the masters and policy, reads the key, and asks the library's verify function.
pub fn run(args: &VerifyArgs) -> Result<Exit> {
    // Masters, policy and audit file first: without them nothing can be valid.
    let mut verifier = super::load_verifier(&args.master, args.alg, args.principal.as_ref())?;
    if let Some(kind) = args.kind {
        verifier = verifier.only_kind(kind);
    }
    let mut audit = args.audit.as_deref().map(AuditLog::open).transpose()?;
    let Some(principal) = &args.principal else {
        // --batch: clap allows no principal only with it.
        let stats = batch::run(
            &verifier,
            // A large buffer makes large batches, so helper threads start seldom.
            &mut io::BufReader::with_capacity(1 << 20, io::stdin().lock()),
            &mut io::BufWriter::with_capacity(64 * 1024, io::stdout().lock()),
            audit.as_mut(),
        )?;
        output::note(&format!(
            "gobuildkey: answered {} lines, {} ok",
            stats.lines, stats.ok
        ));
        return Ok(Exit::Ok);
    };
    let presented = super::read_key_input(args.key_file.as_deref())?;
    // Input past the bound is not read to its end, and is no key.
    let presented = presented.as_deref().map_or(&b""[..], Vec::as_slice);
    let now = jiff::Timestamp::now();
    let decision = verifier.verify_at(principal, presented, now);
    if let Some(audit) = audit.as_mut() {
        audit.write(&AuditRecord::new(principal, &decision, presented, now))?;
    }
    let p = principal;
    let fields = json!({
        "principal": p.as_str(),
        "valid": decision.verdict.is_valid(),
        "reason": match decision.verdict {
            Verdict::Valid => None,
            Verdict::Invalid(reason) => Some(reason.as_str()),
        },
        "master": decision.master.as_ref().map(|fp| fp.as_str()),
        "generation": decision.generation,
    });
    match decision.verdict {
        Verdict::Valid => {
            output::report("verify", &format!("valid build key for {p}"), fields);
            Ok(Exit::Ok)
        }
        Verdict::Invalid(reason) => {
            let why = match reason {
                Reason::Malformed => {
                    let accepted = verifier.accepted_algorithms(p);
                    let digits: Vec<String> = accepted
                        .iter()
                        .map(|alg| {
                            format!("{} lowercase hex digits, as an {alg} key is", alg.hex_len())
                        })
                        .collect();
                    format!("not {}", digits.join(", nor "))
                }
                Reason::Revoked => format!("{p} is revoked"),
                Reason::WrongKind => format!("{p} is not a principal of the kind asked for"),
                _ => format!("not a current key of {p} under the masters"),
            };
            // The refusal is the answer, not an error: a message for people, the object
            // for scripts, nothing with -q.
            output::report("verify", "", fields);
            if output::mode() == output::Mode::Human {
                output::err_line(&format!("gobuildkey: invalid build key ({why})"));
            }
            Ok(Exit::Invalid)
        }
    }
}
