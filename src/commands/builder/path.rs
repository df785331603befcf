//! `gobuildkey path`: the file the builder agent will read.

use anyhow::Result;

use gobuildkey::paths::{self, AgentEnv, Location, Rule};
use gobuildkey::principal::Principal;
use gobuildkey::text::escape_for_terminal;

use crate::cli::PathArgs;
use crate::exit::Exit;
use crate::output;

/// The longest coordinator address shown in a message, in characters.
const ADDRESS_SHOWN: usize = 200;

/// Prints the path; with `--explain`, the rule, the files not read and the caveats.
pub fn run(args: &PathArgs) -> Result<Exit> {
    let env = AgentEnv::from_process();
    let loc = paths::locate(&args.principal, &env);
    let mut lines = vec![loc.path.display().to_string()];
    let mut notes = super::agent_notes(&env);
    notes.extend(dev_mode_note(args.coordinator.as_deref()));
    notes.extend(unread_files_note(&loc, &args.principal));
    if args.explain {
        lines.extend(why_this_file(
            &loc,
            &args.principal,
            args.coordinator.is_some(),
        ));
        lines.extend(notes.iter().map(|note| format!("note: {note}")));
    }
    let shadowed = loc
        .shadowed
        .iter()
        .map(|(path, rule)| crate::commands::json::Shadowed {
            path,
            rule: rule.to_string(),
        })
        .collect();
    output::report(
        "path",
        &lines.join("\n"),
        &crate::commands::json::AgentPath {
            path: &loc.path,
            rule: loc.rule.to_string(),
            exists: loc.exists,
            shadowed,
            notes: &notes,
        },
    );
    Ok(Exit::Ok)
}

/// Why the agent reads the file it reads, one line each: the rule, whether it is there, the
/// files it does not read, and (when no `--coordinator` was given) when a stock buildlet
/// reads none. What `path --explain` and `check --explain` both show.
pub(super) fn why_this_file(
    loc: &Location,
    principal: &Principal,
    coordinator_given: bool,
) -> Vec<String> {
    let mut lines = vec![format!("rule: {}", loc.rule.describe())];
    if !loc.exists {
        lines.push(format!(
            "missing: nothing is there yet; the agent will fail to start until the key is installed \
             (gobuildkey install {principal})"
        ));
    }
    for (path, rule) in &loc.shadowed {
        lines.push(match rule {
            Rule::Legacy => format!(
                "hidden: {} ({rule}) exists but is not read by buildlets built since 2019",
                path.display()
            ),
            _ => format!("hidden: {} ({rule}) exists but is not read", path.display()),
        });
    }
    if !coordinator_given {
        lines.push(format!(
            "coordinator: a stock buildlet reads this file only when its -coordinator starts \
             with {}; its default ({}) does not (check yours with --coordinator ADDR)",
            paths::PRODUCTION_COORDINATOR_PREFIX,
            paths::DEFAULT_COORDINATOR
        ));
    }
    lines
}

/// When a stock buildlet started with `-coordinator coordinator` reads no key file and
/// sends the dev key instead: a sentence saying so, and what a self-hosted farm does.
/// `None` when no address is given or the address makes it read the file.
pub(super) fn dev_mode_note(coordinator: Option<&str>) -> Option<String> {
    let addr = coordinator.filter(|addr| !paths::stock_buildlet_reads_key_file(addr))?;
    Some(format!(
        "a stock buildlet started with -coordinator {} reads no key file at all: the address \
         does not start with {prefix}, so the buildlet is in its dev mode and sends the dev key \
         (HMAC-MD5 of the host type under \"{dev}\"), which only a coordinator in dev mode \
         accepts. A self-hosted farm needs a buildlet built with that check changed, or a \
         coordinator address starting with {prefix} with a certificate the builders trust \
         (docs/builders.md)",
        escape_for_terminal(addr, ADDRESS_SHOWN),
        prefix = paths::PRODUCTION_COORDINATOR_PREFIX,
        dev = paths::DEV_MASTER,
    ))
}

/// When the file the agent reads is missing but other candidate files exist: a sentence
/// saying that they are not read, and how to put the key where it is.
pub(super) fn unread_files_note(loc: &Location, principal: &Principal) -> Option<String> {
    if loc.exists {
        return None;
    }
    let (source, _) = loc.shadowed.first()?;
    let unread: Vec<String> = loc
        .shadowed
        .iter()
        .map(|(path, rule)| match rule {
            Rule::Legacy => format!(
                "{} (legacy: not read by buildlets built since 2019)",
                path.display()
            ),
            _ => format!("{} ({rule})", path.display()),
        })
        .collect();
    let (because, or_unset) = match loc.rule {
        Rule::EnvPath => (
            format!(" ({} names it)", paths::ENV_KEY_PATH),
            loc.shadowed_by(Rule::PerHost)
                .map(|_| format!(", or unset {}", paths::ENV_KEY_PATH))
                .unwrap_or_default(),
        ),
        _ => (String::new(), String::new()),
    };
    Some(format!(
        "{} is missing, and the agent reads no other file{because}: not {}; put the key where \
         it is read with `gobuildkey install {principal} --key-file {}`{or_unset}",
        loc.path.display(),
        unread.join(", nor "),
        source.display(),
    ))
}
