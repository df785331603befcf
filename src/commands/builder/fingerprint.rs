//! `gobuildkey fingerprint`: print a key's fingerprint.

use anyhow::Result;

use crate::cli::FingerprintArgs;
use crate::exit::Exit;
use crate::output;

/// Reads a well-formed key and prints its fingerprint.
pub fn run(args: &FingerprintArgs) -> Result<Exit> {
    let key = crate::commands::read_well_formed_key(args.key_file.as_deref())?;
    let fingerprint = key.fingerprint();
    output::report(
        "fingerprint",
        fingerprint.as_str(),
        &crate::commands::json::Fingerprint {
            fingerprint: fingerprint.as_str(),
            algorithm: key.algorithm().name(),
        },
    );
    Ok(Exit::Ok)
}
