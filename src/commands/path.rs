//! `gobuildkey path`: the file the builder agent will read.

use anyhow::Result;

use gobuildkey::paths::{self, AgentEnv, Rule};

use crate::cli::PathArgs;
use crate::exit::Exit;

/// Prints the path; with `--explain`, the rule, the hidden files and the caveats.
pub fn run(args: &PathArgs) -> Result<Exit> {
    let env = AgentEnv::from_process();
    let loc = paths::locate(&args.principal, &env);
    println!("{}", loc.path.display());
    if !args.explain {
        return Ok(Exit::Ok);
    }
    println!("rule: {}", loc.rule.describe());
    if !loc.exists {
        println!(
            "missing: nothing is there yet; the agent will fail to start until the key is installed \
             (gobuildkey install {})",
            args.principal
        );
    }
    for (path, rule) in &loc.shadowed {
        println!("hidden: {} ({rule}) exists but is not read", path.display());
    }
    if loc.rule == Rule::Legacy {
        println!(
            "note: current buildlets (-reverse-type) read {} instead and will not start: \
             install the key there too",
            paths::Candidates::new(&args.principal, &env)
                .primary
                .0
                .display()
        );
    }
    for note in super::agent_notes(&env) {
        println!("note: {note}");
    }
    Ok(Exit::Ok)
}
