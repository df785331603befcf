//! `gobuildkey mint`: print a principal's key.

use std::io::{self, Write};

use anyhow::{Context, Result};

use gobuildkey::keys::Deriver;

use crate::cli::MintArgs;
use crate::exit::Exit;

/// Prints the key and a newline on standard output; the fingerprint on standard error.
pub fn run(args: &MintArgs) -> Result<Exit> {
    let master = args.master.source()?.load()?;
    let key = Deriver::new(&master, args.alg).derive(&args.principal);
    let mut out = io::stdout().lock();
    out.write_all(key.expose_secret().as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .context("cannot write the key to standard output")?;
    eprintln!(
        "minted the {} key of {} (fingerprint {})",
        args.alg,
        args.principal,
        key.fingerprint()
    );
    Ok(Exit::Ok)
}
