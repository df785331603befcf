//! The option groups several commands share (`#[command(flatten)]`): where the master and
//! the policy come from, how an edit of the policy waits and logs, where a minted key goes,
//! a principal.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use gobuildkey::master::{ENV_COMMAND_TIMEOUT, MasterError, MasterSecret, MasterSource};
use gobuildkey::policy::{self};
use gobuildkey::principal::Principal;

use super::parsers::*;

// What every verifier of expiring tokens takes (verify, serve, explain).
#[derive(Debug, Clone, Copy, Args)]
pub struct SkewArgs {
    /// Accept an expiring token (gbk1_…) this long past its expiry, for a clock behind the
    /// minter's: 0s, 60s, 5m, at most 1h
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = Plain(skew_parser))]
    pub clock_skew: Duration,
}

// What every command that changes the policy or the master takes.
#[derive(Debug, Clone, Args)]
pub struct EditArgs {
    /// Print what would change, and change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Why: recorded with the change in the action log (gobuildkey-actions.log)
    #[arg(long, value_name = "TEXT", value_parser = Plain(reason_parser))]
    pub reason: Option<String>,

    /// Seconds to wait for another edit of the policy to finish (exit 75 after that)
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub lock_timeout: u64,
}

// Where `mint` and `rotate` put the key.
#[derive(Debug, Clone, Args)]
pub struct KeyOutputArgs {
    /// Write the key to FILE (created 0600, atomically) instead of standard output
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Replace FILE when it exists
    #[arg(long, requires = "output")]
    pub force: bool,
}

// Commands that change one principal's state in the policy.
#[derive(Debug, Args)]
pub struct PrincipalArgs {
    /// The principal
    #[arg(value_name = "PRINCIPAL", value_parser = PrincipalParser)]
    pub principal: Principal,

    #[command(flatten)]
    pub master: MasterArgs,

    #[command(flatten)]
    pub edit: EditArgs,
}

// Where the master comes from, for the commands that read it.
//
// The environment is read by [`MasterArgs::source`], not by clap, so that a flag beats
// both variables: with clap's `env`, `GOBUILDKEY_MASTER_KEY_FILE` in the environment
// would conflict with an explicit `--master-key-command`.
#[derive(Debug, Clone, Args)]
pub struct MasterArgs {
    /// The master key file [default: ~/keys/gobuilder-master.key]
    ///
    /// It must be a regular file that only its owner can read or write (chmod 600).
    /// [env: GOBUILDKEY_MASTER_KEY_FILE]
    #[arg(long, value_name = "FILE")]
    pub master_key: Option<PathBuf>,

    /// A shell command whose standard output is the master
    ///
    /// For secret managers, e.g. 'pass show farm/master' or 'vault kv get -field=master
    /// secret/farm'. It runs as `sh -c CMD` with standard input closed and standard error
    /// shown; it must exit 0 and print at most 4096 bytes. Put no secret in the command
    /// itself. [env: GOBUILDKEY_MASTER_KEY_COMMAND]
    #[arg(long, value_name = "CMD", conflicts_with = "master_key")]
    pub master_key_command: Option<OsString>,

    /// The policy file: generations, revocations, previous masters
    /// [default: gobuildkey.toml beside the master key file] [env: GOBUILDKEY_POLICY]
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// How long the master key command, and each keyring command of the policy, may run
    ///
    /// A command that has not exited and closed its standard output by then is killed with
    /// every process of its process group, and the master cannot be loaded (exit 75).
    /// Written as 10s, 500ms, 2m or "1m 30s".
    #[arg(
        long,
        value_name = "DURATION",
        env = ENV_COMMAND_TIMEOUT,
        default_value = "10s",
        value_parser = Plain(timeout_parser)
    )]
    pub command_timeout: Duration,
}

impl MasterArgs {
    /// The master: [`MasterArgs::source`], loaded, its command given `--command-timeout`.
    pub fn load(&self) -> Result<MasterSecret, MasterError> {
        self.source()?.load_within(self.command_timeout)
    }

    /// The policy file: `--policy` or `GOBUILDKEY_POLICY`, else `gobuildkey.toml` beside
    /// the master key file (beside the default one when the master comes from a command):
    /// the library's [`policy::named_path`] and [`policy::path_beside`].
    pub fn policy_path(&self) -> anyhow::Result<PathBuf> {
        match policy::named_path(self.policy.clone())? {
            Some(path) => Ok(path),
            None => Ok(policy::path_beside(&self.source()?)?),
        }
    }

    /// The source: the library's [`MasterSource::resolve`] of the two flags.
    pub fn source(&self) -> Result<MasterSource, MasterError> {
        MasterSource::resolve(self.master_key.clone(), self.master_key_command.clone())
    }
}
