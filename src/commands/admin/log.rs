//! `gobuildkey log`: the admin action log, as a table or JSON.

use anyhow::Result;

use gobuildkey::policy::actions::ActionLog;

use crate::cli::LogArgs;
use crate::exit::Exit;
use crate::output;

/// Shows the actions on the policy, oldest first, filtered by principal and date.
pub fn run(args: &LogArgs) -> Result<Exit> {
    let log = ActionLog::beside(&args.master.policy_path()?);
    let (actions, unreadable) = log.read_skipping()?;
    for (line, why) in &unreadable {
        output::note(&format!(
            "warning: line {line} of {} is not an action ({why}); it is left out",
            log.path().display()
        ));
    }
    let actions: Vec<_> = actions
        .into_iter()
        .filter(|a| {
            args.principal
                .as_ref()
                .is_none_or(|p| a.principal.as_deref() == Some(p.as_str()))
        })
        .filter(|a| {
            args.since.is_none_or(|since| {
                a.time
                    .parse::<jiff::Timestamp>()
                    .is_ok_and(|time| time >= since)
            })
        })
        .collect();
    let mut lines = vec![format!(
        "{:<20}  {:<18} {:<16} {:<32} {:>4}  {}",
        "time (UTC)", "who", "command", "principal", "gen", "reason"
    )];
    for a in &actions {
        let who = match &a.invoked_by {
            Some(person) => format!("{person} as {}", a.user),
            None => a.user.clone(),
        };
        // The machine and a token's expiry, when the action has them, before the reason.
        let detail: Vec<String> = [
            a.machine.as_ref().map(|m| format!("machine {m}")),
            a.expires.as_ref().map(|t| format!("token expires {t}")),
            a.reason.clone(),
        ]
        .into_iter()
        .flatten()
        .collect();
        lines.push(format!(
            "{:<20}  {:<18} {:<16} {:<32} {:>4}  {}",
            a.time,
            who,
            a.command,
            a.principal.as_deref().unwrap_or("-"),
            a.generation
                .map_or_else(|| "-".to_owned(), |g| g.to_string()),
            detail.join("; ")
        ));
    }
    if actions.is_empty() {
        lines.push(format!("(no actions in {})", log.path().display()));
    }
    output::report(
        "log",
        &lines.join("\n"),
        &crate::commands::json::Log {
            log: log.path(),
            actions: &actions,
        },
    );
    Ok(Exit::Ok)
}
