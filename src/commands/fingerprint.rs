//! `gobuildkey fingerprint`: print a key's fingerprint.

use anyhow::Result;

use crate::cli::FingerprintArgs;
use crate::exit::Exit;

/// Reads a well-formed key and prints its fingerprint.
pub fn run(args: &FingerprintArgs) -> Result<Exit> {
    let key = super::read_well_formed_key(args.key_file.as_deref())?;
    println!("{}", key.fingerprint());
    Ok(Exit::Ok)
}
