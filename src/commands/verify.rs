//! `gobuildkey verify`: check a presented key against the master.

use anyhow::Result;

use gobuildkey::keys::{Deriver, Reason, Verdict};

use crate::cli::VerifyArgs;
use crate::exit::Exit;

/// Loads the master, reads the key, and asks the library's verify function.
pub fn run(args: &VerifyArgs) -> Result<Exit> {
    // The master first: without one, nothing can be valid, whatever the input.
    let master = args.master.source()?.load()?;
    let presented = super::read_key_input(args.key_file.as_deref())?;
    let deriver = Deriver::new(&master, args.alg);
    let verdict = match presented {
        Some(presented) => deriver.verify(&args.principal, &presented),
        None => Verdict::Invalid(Reason::Malformed),
    };
    match verdict {
        Verdict::Valid => {
            println!("valid build key for {}", args.principal);
            Ok(Exit::Ok)
        }
        Verdict::Invalid(reason) => {
            let why = match reason {
                Reason::Malformed => format!(
                    "not {} lowercase hex digits, as an {} key is",
                    args.alg.hex_len(),
                    args.alg
                ),
                _ => format!(
                    "not the {} key of {} under this master",
                    args.alg, args.principal
                ),
            };
            eprintln!("gobuildkey: invalid build key ({why})");
            Ok(Exit::Invalid)
        }
    }
}
