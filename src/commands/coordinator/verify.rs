//! `gobuildkey verify`: check a presented key against the masters and the policy.

use std::io;

use anyhow::Result;

use gobuildkey::audit::{AuditLog, Context};
use gobuildkey::batch;
use gobuildkey::verifier::{Reason, Verdict};

use crate::cli::VerifyArgs;
use crate::exit::Exit;
use crate::output;
#[cfg(unix)]
use gobuildkey::reload::{Event, Live};

/// Loads the masters and policy, reads the key, and asks the library's verify function.
pub fn run(args: &VerifyArgs) -> Result<Exit> {
    // --batch: clap allows no principal only with it.
    let Some(principal) = &args.principal else {
        return batch(args);
    };
    // Masters, policy and audit file first: without them nothing can be valid.
    let mut verifier =
        crate::commands::load_verifier(&args.master, args.alg, args.principal.as_ref())?
            .with_clock_skew(args.skew.clock_skew);
    if let Some(kind) = args.kind {
        verifier = verifier.only_kind(kind);
    }
    let mut audit = args.audit.as_deref().map(AuditLog::open).transpose()?;
    let presented = crate::commands::read_key_input(args.key_file.as_deref())?;
    // Input past the bound is not read to its end, and is no key.
    let presented = presented.as_deref().map_or(&b""[..], Vec::as_slice);
    let now = jiff::Timestamp::now();
    let from = gobuildkey::key::Presented::from(presented).from_machine(args.machine.as_ref());
    let decision = verifier.verify_at(principal, from, now);
    if let Some(audit) = audit.as_mut() {
        let context = Context::new(principal, presented, now).from_machine(args.machine.as_ref());
        audit.record(&decision, &context)?;
    }
    let p = principal;
    let fields = crate::commands::json::Verify {
        principal: p.as_str(),
        valid: decision.verdict.is_valid(),
        reason: match decision.verdict {
            Verdict::Valid => None,
            Verdict::Invalid(reason) => Some(reason.as_str()),
        },
        master: decision.master.as_ref().map(|fp| fp.as_str()),
        generation: decision.generation,
        machine: args
            .machine
            .as_ref()
            .filter(|_| decision.machine)
            .map(gobuildkey::machine::Machine::as_str),
        expires: decision.expires.map(|t| t.to_string()),
    };
    match decision.verdict {
        Verdict::Valid => {
            let bound = fields
                .machine
                .map_or_else(String::new, |m| format!(", bound to the machine {m}"));
            output::report(
                "verify",
                &format!("valid build key for {p}{bound}"),
                &fields,
            );
            Ok(Exit::Ok)
        }
        Verdict::Invalid(reason) => {
            let why = match reason {
                Reason::Malformed if gobuildkey::token::is_token(from.text()) => {
                    match gobuildkey::key::BuildKey::parse(from.text()) {
                        Err(error) => error.to_string(),
                        Ok(token)
                            if !verifier.accepted_algorithms(p).contains(token.algorithm()) =>
                        {
                            format!(
                                "an {} token, and the policy accepts only {} keys for {p}",
                                token.algorithm(),
                                verifier.accepted_algorithms(p)
                            )
                        }
                        Ok(_) => "a token that claims to expire more than 366 days from now, \
                                  which no token minted by gobuildkey does"
                            .to_owned(),
                    }
                }
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
                Reason::Mismatch => format!("not a current key of {p} under the masters"),
                Reason::Expired => format!(
                    "a token that expired at {}, past the clock skew allowed",
                    fields.expires.as_deref().unwrap_or("a past moment")
                ),
            };
            // The refusal is the answer, not an error: a message for people, the object
            // for scripts, nothing with -q.
            output::report("verify", "", &fields);
            if output::mode() == output::Mode::Human {
                output::err_line(&format!("gobuildkey: invalid build key ({why})"));
            }
            Ok(Exit::Invalid)
        }
    }
}

/// `verify --batch`: the coprocess a coordinator keeps for days. It reloads the masters and
/// the policy on SIGHUP and when their files change (as `serve` does, through the same
/// code), keeps its last good state when a reload fails, reopens its audit file on SIGHUP
/// (logrotate), and never dies of the signal.
#[cfg(unix)]
fn batch(args: &VerifyArgs) -> Result<Exit> {
    use std::sync::{Arc, Mutex};
    // SIGHUP is ours before anything else happens: its default action is death.
    let mut hangups = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
    let (master, alg, kind, skew) = (
        args.master.clone(),
        args.alg,
        args.kind,
        args.skew.clock_skew,
    );
    let live = Arc::new(Live::new(super::load_narrowed(
        &master, alg, kind, skew, true,
    )?));
    let audit_path = args.audit.clone().filter(|p| p.as_os_str() != "-");
    let audit = args
        .audit
        .as_deref()
        .map(AuditLog::open)
        .transpose()?
        .map(|log| Arc::new(Mutex::new(log)));
    let reloader = super::reloader(
        &args.master,
        !args.no_watch,
        Arc::clone(&live),
        move || {
            super::load_narrowed(&master, alg, kind, skew, false).map_err(|e| super::one_line(&e))
        },
        |event| match event {
            Event::Started(_) => {}
            Event::Loaded(_) => output::note("gobuildkey: reloaded the masters and the policy"),
            Event::Failed(error) => output::note(&format!(
                "gobuildkey: reload failed, keeping the last good masters and policy: {error}"
            )),
        },
    )?;
    let requester = reloader.requester();
    let reopened = audit.clone();
    std::thread::Builder::new()
        .name("gobuildkey-sighup".into())
        .spawn(move || {
            for _ in hangups.forever() {
                if let (Some(audit), Some(path)) = (&reopened, &audit_path)
                    && let Err(e) = gobuildkey::audit::reopen(audit, path)
                {
                    output::note(&format!(
                        "gobuildkey: {e}; still writing to the file opened before"
                    ));
                }
                requester.request();
            }
        })?;
    let answered = answer_stdin(|| live.current(), audit.as_deref());
    drop(reloader);
    answered
}

/// Answers standard input's lines on standard output until it ends, then says how many.
fn answer_stdin(
    current: impl Fn() -> std::sync::Arc<gobuildkey::verifier::Verifier> + Sync,
    audit: Option<&std::sync::Mutex<AuditLog>>,
) -> Result<Exit> {
    let stats = batch::run(
        current,
        // A large buffer makes reads few and batches full while input streams in. Neither
        // stream is locked here: the pipeline's threads take turns reading and writing.
        &mut io::BufReader::with_capacity(1 << 20, io::stdin()),
        &mut io::BufWriter::with_capacity(64 * 1024, io::stdout()),
        audit,
    )?;
    output::note(&format!(
        "gobuildkey: answered {} lines, {} ok",
        stats.lines, stats.ok
    ));
    Ok(Exit::Ok)
}

/// `verify --batch` where there are no signals to reload on.
#[cfg(not(unix))]
fn batch(args: &VerifyArgs) -> Result<Exit> {
    use std::sync::{Arc, Mutex};
    let mut verifier = crate::commands::load_verifier(&args.master, args.alg, None)?;
    if let Some(kind) = args.kind {
        verifier = verifier.only_kind(kind);
    }
    let verifier = Arc::new(verifier);
    let audit = args
        .audit
        .as_deref()
        .map(AuditLog::open)
        .transpose()?
        .map(Mutex::new);
    answer_stdin(|| Arc::clone(&verifier), audit.as_ref())
}
