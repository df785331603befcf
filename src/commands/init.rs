//! `gobuildkey init`: create a new master secret.

use anyhow::Result;

use gobuildkey::master::MasterSecret;
use gobuildkey::secret_file::{Existing, write_secret_file};

use crate::cli::InitArgs;
use crate::exit::Exit;

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
    println!("created master key {}", path.display());
    println!("fingerprint {}", master.fingerprint());
    Ok(Exit::Ok)
}
