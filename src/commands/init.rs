//! `gobuildkey init`: create a new master secret.

use anyhow::Result;

use gobuildkey::master::MasterSecret;
use gobuildkey::secret_file::{Existing, write_secret_file};

use crate::cli::InitArgs;
use crate::exit::Exit;
use crate::output;
use serde_json::json;

/// Draws a master, writes it, and prints where and its fingerprint.
pub fn run(args: &InitArgs) -> Result<Exit> {
    let path = args.path()?;
    let master = MasterSecret::generate()?;
    let existing = if args.force {
        Existing::Replace
    } else {
        Existing::Refuse
    };
    write_secret_file(&path, &master.file_contents(), existing)?;
    output::report(
        "init",
        &format!(
            "created master key {}\nfingerprint {}",
            path.display(),
            master.fingerprint()
        ),
        json!({ "path": path, "fingerprint": master.fingerprint().as_str() }),
    );
    Ok(Exit::Ok)
}
