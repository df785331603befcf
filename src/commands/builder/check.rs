//! `gobuildkey check`: the builder owner's preflight.

use anyhow::Result;

use gobuildkey::key::Algorithm;
use gobuildkey::paths::{self, AgentEnv};
use gobuildkey::verifier::{Reason, Verdict};

use crate::cli::CheckArgs;
use crate::exit::Exit;
use crate::output;

/// Finds the key as the agent would, reports each problem with its fix, and on success
/// shows the path, the rule and the fingerprint.
///
/// The agent reads one file: when it is missing, no other file makes up for it (the legacy
/// `~/.gobuildkey`, a per-host file hidden by `GO_BUILD_KEY_PATH`); the problem names them.
pub fn run(args: &CheckArgs) -> Result<Exit> {
    let env = AgentEnv::from_process();
    let loc = paths::locate(&args.principal, &env);
    let principal = &args.principal;
    let mut warnings: Vec<String> = super::agent_notes(&env)
        .into_iter()
        .map(|note| format!("note: {note}"))
        .collect();
    if let Some(note) = super::path::dev_mode_note(args.coordinator.as_deref()) {
        warnings.push(format!("warning: {note}"));
    }
    let (key, mut problems) = match super::inspect_key_file(&loc.path, principal) {
        Ok(key) => (Some(key), Vec::new()),
        // The file the agent reads is missing and others exist: say that they are not read.
        Err(problems) if is_missing(&loc.path) => (
            None,
            super::path::unread_files_note(&loc, principal).map_or(problems, |note| vec![note]),
        ),
        Err(problems) => (None, problems),
    };
    let now = jiff::Timestamp::now();
    if let Some(expires) = key.as_ref().and_then(gobuildkey::key::BuildKey::expires)
        && gobuildkey::token::has_expired(expires, now, std::time::Duration::ZERO)
    {
        problems.push(format!(
            "the token in {} expired at {expires}: ask the admin for a new one \
             (`gobuildkey mint --expires-in 24h {principal}`)",
            loc.path.display()
        ));
    }
    let mut verified = None;
    if let (Some(key), true) = (&key, args.verify) {
        // Verified as the coordinator would: by the policy's record of the algorithms the
        // principal's keys may be in.
        let verifier = crate::commands::load_verifier(&args.master, None, None)?;
        let presented = gobuildkey::key::Presented::from(key.expose_secret().as_bytes())
            .from_machine(args.machine.as_ref());
        let verdict = verifier.verify(principal, presented).verdict;
        verified = Some(verdict.is_valid());
        if let Verdict::Invalid(reason) = verdict {
            let why = match reason {
                Reason::Revoked => format!("{principal} is revoked"),
                Reason::Expired => "the token has expired".to_owned(),
                Reason::Malformed => format!(
                    "it is an {} key, and the policy accepts only {} keys for {principal}: ask \
                     the admin for a key of that algorithm",
                    key.algorithm(),
                    verifier.accepted_algorithms(principal)
                ),
                _ => format!(
                    "it is a well-formed {} key, but not a current key of {principal} under the masters \
                     (host types get renamed; keys get rotated; a key bound to this machine needs \
                     --machine NAME, the agent's -hostname): ask the admin for the key of {principal}",
                    key.algorithm()
                ),
            };
            problems.push(format!("{} does not verify: {why}", loc.path.display()));
        }
    }
    let explained = if args.explain {
        explanation(&loc, principal, key.as_ref(), args)
    } else {
        Vec::new()
    };
    for warning in &warnings {
        output::note(warning);
    }
    for problem in &problems {
        output::note(&format!("problem: {problem}"));
    }
    let ok = problems.is_empty();
    let human = match (&key, ok) {
        (Some(key), true) => {
            let mut lines = vec![
                format!("ok: {}", loc.path.display()),
                format!("rule: {}", loc.rule.describe()),
                format!("algorithm: {}", key.algorithm()),
                format!("fingerprint: {}", key.fingerprint()),
            ];
            if let Some(expires) = key.expires() {
                lines.push(format!(
                    "expires: {expires} (in {:#})",
                    now.duration_until(expires)
                        .round(jiff::SignedDurationRound::new().smallest(jiff::Unit::Minute))
                        .unwrap_or_default()
                ));
            }
            if args.verify {
                lines.push(format!("verified: the key of {principal} under the master"));
            }
            lines.join("\n")
        }
        _ => String::new(),
    };
    // With --explain, after the verdict (or the problems) and whatever it was.
    let human = if explained.is_empty() {
        human
    } else {
        let explained = explained.iter().map(|line| format!("explain: {line}"));
        human
            .lines()
            .map(str::to_owned)
            .chain(explained)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let fingerprint = key.as_ref().map(gobuildkey::key::BuildKey::fingerprint);
    output::report(
        "check",
        &human,
        &crate::commands::json::Check {
            ok,
            principal: principal.as_str(),
            path: &loc.path,
            rule: loc.rule.to_string(),
            algorithm: key.as_ref().map(|k| k.algorithm().name()),
            fingerprint: fingerprint.as_ref().map(|fp| fp.as_str()),
            expires: key
                .as_ref()
                .and_then(|k| k.expires())
                .map(|t| t.to_string()),
            verified,
            problems: &problems,
            warnings: &warnings,
            explanation: &explained,
        },
    );
    Ok(if ok { Exit::Ok } else { Exit::Invalid })
}

/// Whether nothing is at `path` (through links), as opposed to something the check cannot
/// reach (a folder on the way it may not enter).
fn is_missing(path: &std::path::Path) -> bool {
    std::fs::metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
}

/// What `--explain` adds, one line each: why this file ([`super::path::why_this_file`]),
/// what the key's length means, and what only the admin can say.
fn explanation(
    loc: &paths::Location,
    principal: &gobuildkey::principal::Principal,
    key: Option<&gobuildkey::key::BuildKey>,
    args: &CheckArgs,
) -> Vec<String> {
    let mut lines = super::path::why_this_file(loc, principal, args.coordinator.is_some());
    if let Some(expires) = key.and_then(gobuildkey::key::BuildKey::expires) {
        lines.push(format!(
            "key: a gobuildkey token (gbk1_, {} characters, {}) that expires at {expires}; only \
             a coordinator that verifies with gobuildkey (its service, `verify --batch`, the \
             library) accepts tokens: Go's own coordinator refuses them",
            key.map_or(0, |k| k.expose_secret().len()),
            key.map_or("", |k| k.algorithm().name()),
        ));
    } else if let Some(key) = key {
        lines.push(match key.algorithm() {
            Algorithm::HmacMd5 => format!(
                "key: 32 hex digits, an hmac-md5 key, as Go's genbuilderkey makes them; a farm \
                 that has moved to hmac-sha256 refuses it once the admin has ended hmac-md5 for \
                 {principal} (ask for its hmac-sha256 key)"
            ),
            Algorithm::HmacSha256 => format!(
                "key: 64 hex digits, an hmac-sha256 key, as gobuildkey mints by default; Go's own \
                 coordinator accepts only hmac-md5 keys (genbuilderkey), so a farm run by Go's \
                 coordinator refuses it (ask for the key of {principal} with --alg hmac-md5)"
            ),
        });
    }
    if !args.verify {
        lines.push(format!(
            "whose key this is, and of which generation, only the master can tell: if the \
             coordinator refuses it, send the key file to the admin, who runs \
             `gobuildkey explain {principal}` on it (compare fingerprints first: \
             `gobuildkey check` shows this key's, `gobuildkey mint` showed the admin the one \
             it minted)"
        ));
    }
    lines
}
