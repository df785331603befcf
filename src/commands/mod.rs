//! One module per command; each has a `run` that returns the exit status or an error.

pub mod init;
pub mod mint;
pub mod verify;

use std::io::{self, IsTerminal};
use std::path::Path;

use anyhow::Result;
use zeroize::Zeroizing;

use gobuildkey::keys::MAX_KEY_INPUT;
use gobuildkey::secret_file;

/// Reads a key someone presents: from `key_file`, else from standard input. At most
/// [`MAX_KEY_INPUT`] bytes are read; `None` means there was more.
fn read_key_input(key_file: Option<&Path>) -> Result<Option<Zeroizing<Vec<u8>>>> {
    match key_file {
        Some(path) => Ok(secret_file::read_secret_file(path, MAX_KEY_INPUT)?.contents),
        None => {
            let stdin = io::stdin();
            if stdin.is_terminal() {
                eprintln!("gobuildkey: reading the key from standard input (end with Ctrl-D)");
            }
            Ok(secret_file::read_bounded(stdin.lock(), MAX_KEY_INPUT)?)
        }
    }
}
