//! Where the policy file is: the one a flag or [`ENV_FILE`] names ([`named_path`]), else
//! [`DEFAULT_FILE_NAME`] beside the master ([`path_beside`]).

use std::path::PathBuf;

use super::PolicyError;
use crate::master::MasterSource;

/// The policy's file name, beside the master key file by default.
pub const DEFAULT_FILE_NAME: &str = "gobuildkey.toml";
/// The environment variable naming the policy file, read when no flag names it
/// ([`named_path`]).
pub const ENV_FILE: &str = "GOBUILDKEY_POLICY";

/// The policy file a caller named: `explicit` (a flag), else [`ENV_FILE`]. `None`: the
/// policy is the one [`path_beside`] the master.
///
/// ```
/// use gobuildkey::policy::named_path;
///
/// let named = named_path(Some("/etc/farm/gobuildkey.toml".into()))?;
/// assert_eq!(named, Some("/etc/farm/gobuildkey.toml".into()));
/// # Ok::<(), gobuildkey::policy::PolicyError>(())
/// ```
///
/// # Errors
/// [`PolicyError::EmptyVariable`] when [`ENV_FILE`] is set but empty and no flag names the
/// file: the policy holds the revocations, and a unit whose `$POLICY` expanded to nothing
/// must not quietly get another policy than the one it meant.
pub fn named_path(explicit: Option<PathBuf>) -> Result<Option<PathBuf>, PolicyError> {
    if explicit.is_some() {
        return Ok(explicit);
    }
    match std::env::var_os(ENV_FILE) {
        Some(value) if value.is_empty() => Err(PolicyError::EmptyVariable),
        value => Ok(value.map(PathBuf::from)),
    }
}

/// The policy that goes with `master` when none is named: [`DEFAULT_FILE_NAME`] beside the
/// master key file, or beside the default master file
/// ([`crate::master::default_path`]) when the master comes from a command.
///
/// ```
/// use gobuildkey::master::MasterSource;
/// use gobuildkey::policy::path_beside;
///
/// let master = MasterSource::File("/etc/farm/master.key".into());
/// assert_eq!(path_beside(&master)?, std::path::Path::new("/etc/farm/gobuildkey.toml"));
/// # Ok::<(), gobuildkey::policy::PolicyError>(())
/// ```
///
/// # Errors
/// [`PolicyError::NoFile`] for a command master when there is no home folder.
pub fn path_beside(master: &MasterSource) -> Result<PathBuf, PolicyError> {
    let file = match master {
        MasterSource::File(path) => path.clone(),
        MasterSource::Command(_) => {
            crate::master::default_path().map_err(|_| PolicyError::NoFile)?
        }
    };
    Ok(file.with_file_name(DEFAULT_FILE_NAME))
}
