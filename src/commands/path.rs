//! `gobuildkey path`: the file the builder agent will read.

use anyhow::Result;

use gobuildkey::paths::{self, AgentEnv, Rule};

use crate::cli::PathArgs;
use crate::exit::Exit;
use crate::output;
use serde_json::json;

/// Prints the path; with `--explain`, the rule, the hidden files and the caveats.
pub fn run(args: &PathArgs) -> Result<Exit> {
    let env = AgentEnv::from_process();
    let loc = paths::locate(&args.principal, &env);
    let mut lines = vec![loc.path.display().to_string()];
    let mut notes = super::agent_notes(&env);
    if loc.rule == Rule::Legacy {
        notes.push(format!(
            "current buildlets (-reverse-type) read {} instead and will not start: \
             install the key there too",
            paths::Candidates::new(&args.principal, &env)
                .primary
                .0
                .display()
        ));
    }
    if args.explain {
        lines.push(format!("rule: {}", loc.rule.describe()));
        if !loc.exists {
            lines.push(format!(
                "missing: nothing is there yet; the agent will fail to start until the key is installed \
                 (gobuildkey install {})",
                args.principal
            ));
        }
        for (path, rule) in &loc.shadowed {
            lines.push(format!(
                "hidden: {} ({rule}) exists but is not read",
                path.display()
            ));
        }
        lines.extend(notes.iter().map(|note| format!("note: {note}")));
    }
    let shadowed: Vec<_> = loc
        .shadowed
        .iter()
        .map(|(path, rule)| json!({ "path": path, "rule": rule.to_string() }))
        .collect();
    output::report(
        "path",
        &lines.join("\n"),
        json!({
            "path": loc.path,
            "rule": loc.rule.to_string(),
            "exists": loc.exists,
            "shadowed": shadowed,
            "notes": notes,
        }),
    );
    Ok(Exit::Ok)
}
