//! The admins' commands' arguments: `init`, `mint`, `rotate`, `revoke`, `reinstate`,
//! `end-grace`, `policy`, `import`, `log`, `master`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use gobuildkey::key::Algorithm;
use gobuildkey::machine::Machine;
use gobuildkey::master::{MasterError, MasterSource};
use gobuildkey::policy::{self};
use gobuildkey::principal::Principal;

use super::options::*;
use super::parsers::*;

// `gobuildkey master ...`.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum MasterCommand {
    /// Replace the primary master; keep accepting the old one until it is retired
    ///
    /// Copies the current master to a file beside it named after its fingerprint, lists
    /// that file in the policy's keyring (so its keys still verify), then writes a new
    /// master in its place. Re-mint the keys `gobuildkey policy --stale` lists, hand them
    /// out, then `gobuildkey master retire FINGERPRINT`.
    #[command(after_help = "\
Exit status: 0; 66 no master; 78 a bad policy file or a master from a command; see
`gobuildkey --help` for the others.

Example:
  gobuildkey master rotate")]
    Rotate(MasterOnlyArgs),

    /// Accept keys minted under another master (a file or a command)
    #[command(after_help = "\
Exit status: 0; 66 the master named does not exist; see `gobuildkey --help` for the others.

Examples:
  gobuildkey master add --file ~/keys/old-master.key
  gobuildkey master add --command 'pass show farm/old-master'")]
    Add(MasterAddArgs),

    /// Stop accepting keys minted under a previous master
    #[command(after_help = "\
Exit status: 0; 65 no previous master has that fingerprint; see `gobuildkey --help` for the
others.

Example:
  gobuildkey master retire SHA256:9400c745792c2465")]
    Retire(MasterRetireArgs),
}

// Commands that need only the master and policy options, and change them.
#[derive(Debug, Args)]
pub struct MasterOnlyArgs {
    #[command(flatten)]
    pub master: MasterArgs,

    #[command(flatten)]
    pub edit: EditArgs,
}

// `gobuildkey master add`.
#[derive(Debug, Args)]
pub struct MasterAddArgs {
    /// The previous master's file
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "command",
        conflicts_with = "command"
    )]
    pub file: Option<PathBuf>,

    /// A shell command whose standard output is the previous master
    #[arg(long, value_name = "CMD")]
    pub command: Option<OsString>,

    /// Accept only keys of this algorithm under it (repeat for both) [default: any]
    #[arg(long = "alg", value_name = "ALG", value_parser = alg_parser())]
    pub algs: Vec<Algorithm>,

    #[command(flatten)]
    pub master: MasterArgs,

    #[command(flatten)]
    pub edit: EditArgs,
}

// `gobuildkey master retire`.
#[derive(Debug, Args)]
pub struct MasterRetireArgs {
    /// The previous master's fingerprint, as `gobuildkey policy` shows it
    #[arg(value_name = "FINGERPRINT")]
    pub fingerprint: String,

    #[command(flatten)]
    pub master: MasterArgs,

    #[command(flatten)]
    pub edit: EditArgs,
}

// `gobuildkey end-grace`.
#[derive(Debug, Args)]
pub struct EndGraceArgs {
    #[command(flatten)]
    pub target: PrincipalArgs,

    /// Instead of the grace period, end the acceptance of the principal's keys of this
    /// algorithm (once its machines have keys of another)
    #[arg(long, value_name = "ALG", value_parser = alg_parser())]
    pub alg: Option<Algorithm>,
}

// `gobuildkey revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    pub target: PrincipalArgs,

    /// Revoke a principal the farm never knew (not in the policy, nor in the action log)
    #[arg(long)]
    pub allow_unknown: bool,

    /// Revoke one machine of the principal only: nothing presented from it verifies, its own
    /// key (`mint --machine`) nor the shared one; the other machines are not touched
    #[arg(long, value_name = "NAME", value_parser = MachineParser)]
    pub machine: Option<Machine>,
}

// `gobuildkey reinstate`.
#[derive(Debug, Args)]
pub struct ReinstateArgs {
    #[command(flatten)]
    pub target: PrincipalArgs,

    /// Reinstate one revoked machine of the principal only
    #[arg(long, value_name = "NAME", value_parser = MachineParser)]
    pub machine: Option<Machine>,
}

// `gobuildkey rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The principal whose key is replaced
    #[arg(value_name = "PRINCIPAL", value_parser = PrincipalParser)]
    pub principal: Principal,

    /// Keep the previous key valid until `gobuildkey end-grace`
    #[arg(long, conflicts_with_all = ["keep_previous_until", "keep_previous_for"])]
    pub keep_previous: bool,

    /// Keep the previous key valid until DATE, a future date (2026-12-01, meaning 00:00 UTC)
    /// or date and time (2026-12-01T12:00:00Z)
    #[arg(long, value_name = "DATE", value_parser = Plain(future_moment_parser), conflicts_with = "keep_previous_for")]
    pub keep_previous_until: Option<jiff::Timestamp>,

    /// Keep the previous key valid for a while from now: 7d, 2w, 36h, "1 week"
    #[arg(long, value_name = "DURATION", value_parser = Plain(duration_parser))]
    pub keep_previous_for: Option<jiff::Span>,

    /// The MAC: hmac-sha256, or hmac-md5 for keys compatible with Go's genbuilderkey; the
    /// policy then accepts keys of it for the principal [default: the policy's algorithm]
    #[arg(long, value_name = "ALG", value_parser = alg_parser())]
    pub alg: Option<Algorithm>,

    /// Rotate even though the previous key is still in its grace period: that key (already
    /// handed out) then stops verifying at once
    #[arg(long)]
    pub discard_previous: bool,

    /// Replace only the key of its own of the machine NAME (`mint --machine`): its previous
    /// key stops verifying at once, with no grace period; the shared key and the other
    /// machines' keys stay valid
    #[arg(long, value_name = "NAME", value_parser = MachineParser)]
    pub machine: Option<Machine>,

    #[command(flatten)]
    pub out: KeyOutputArgs,

    #[command(flatten)]
    pub master: MasterArgs,

    #[command(flatten)]
    pub edit: EditArgs,
}

// `gobuildkey policy`.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Only the principals to re-mint under the primary master, one per line
    #[arg(long)]
    pub stale: bool,

    #[command(flatten)]
    pub master: MasterArgs,

    #[command(subcommand)]
    pub action: Option<PolicyCommand>,
}

// `gobuildkey policy ...`.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum PolicyCommand {
    /// Create the policy file for a master made another way (admins)
    ///
    /// For a farm whose master came from Go's genbuilderkey or a secret manager: writes a
    /// policy naming no principal (mode 0600) where the master options say (gobuildkey.toml
    /// beside the master, or --policy). An existing policy is never replaced. When an
    /// action log is beside it, the farm had a policy: restore that from its backup, or
    /// rebuild it from the log with --from-log — a new empty policy would make every key
    /// it revoked verify again, so that is refused.
    #[command(after_help = "\
Exit status: 0 created; 73 a policy is there, or an action log is (use --from-log); see
`gobuildkey --help` for the others.

Examples:
  gobuildkey policy init --master-key-command 'pass show farm/master' --policy /etc/farm/gobuildkey.toml
  gobuildkey policy init --from-log")]
    Init(PolicyInitArgs),

    /// Accept only keys bound to a machine for a principal, or (--off) its shared key too
    /// (admins)
    ///
    /// Once every machine of a host type has its own key (`mint --machine`), its
    /// shared key is only a risk: this refuses it, so that revoking one machine shuts it
    /// out. The shared key's MAC is still computed, so the time taken does not tell which
    /// kind of key was presented.
    #[command(after_help = "\
Exit status: 0; 66 no policy; 78 a bad policy file; see `gobuildkey --help` for the others.

Examples:
  gobuildkey policy machine-keys-only host-linux-arm-aws
  gobuildkey policy machine-keys-only --off host-linux-arm-aws")]
    MachineKeysOnly(MachineKeysOnlyArgs),
}

// `gobuildkey policy machine-keys-only`.
#[derive(Debug, Args)]
pub struct MachineKeysOnlyArgs {
    /// Accept the principal's shared key again
    #[arg(long)]
    pub off: bool,

    #[command(flatten)]
    pub target: PrincipalArgs,
}

// `gobuildkey policy init`.
#[derive(Debug, Args)]
pub struct PolicyInitArgs {
    /// Rebuild the policy by replaying the action log beside it
    #[arg(long)]
    pub from_log: bool,

    /// The farm's default algorithm: what `mint` mints, and what principals the policy
    /// records no algorithm for accept
    #[arg(long, value_name = "ALG", default_value = Algorithm::default().name(), value_parser = alg_parser(), conflicts_with = "from_log")]
    pub alg: Algorithm,

    #[command(flatten)]
    pub master: MasterArgs,

    #[command(flatten)]
    pub edit: EditArgs,
}

// `gobuildkey import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The principals to record
    #[arg(value_name = "PRINCIPAL", value_parser = PrincipalParser, required_unless_present = "from")]
    pub principals: Vec<Principal>,

    /// Read the principals from FILE, one per line
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,

    /// The algorithm their keys were minted with (hmac-md5 for genbuilderkey's)
    #[arg(long, value_name = "ALG", value_parser = alg_parser())]
    pub alg: Algorithm,

    #[command(flatten)]
    pub master: MasterArgs,

    #[command(flatten)]
    pub edit: EditArgs,
}

// `gobuildkey explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The principal the key was presented as
    #[arg(value_name = "PRINCIPAL", value_parser = PrincipalParser)]
    pub principal: Principal,

    /// Read the key from FILE instead of standard input
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,

    /// The machine the key was presented from (its X-Go-Builder-Hostname), for keys bound
    /// to a machine
    #[arg(long, value_name = "NAME", value_parser = MachineParser)]
    pub machine: Option<Machine>,

    #[command(flatten)]
    pub skew: SkewArgs,

    #[command(flatten)]
    pub master: MasterArgs,
}

// `gobuildkey scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files and folders to scan: folders in full (`.git` skipped), links in them never
    /// followed (a PATH that is a link is);
    /// `-` is standard input [default: .]
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Scan without the master, even where there is one: tokens are found and their expiry
    /// read, but not whose they are; plain keys are not looked for
    #[arg(long, conflicts_with_all = ["master_key", "master_key_command", "policy"])]
    pub no_master: bool,

    #[command(flatten)]
    pub skew: SkewArgs,

    #[command(flatten)]
    pub master: MasterArgs,
}

// `gobuildkey log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Only the actions on this principal
    #[arg(value_name = "PRINCIPAL", value_parser = PrincipalParser)]
    pub principal: Option<Principal>,

    /// Only the actions from this date on (2026-12-01, or a date and time with an offset)
    #[arg(long, value_name = "DATE", value_parser = Plain(moment_parser))]
    pub since: Option<jiff::Timestamp>,

    #[command(flatten)]
    pub master: MasterArgs,
}

// `gobuildkey init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write the master [default: ~/keys/gobuilder-master.key]
    /// [env: GOBUILDKEY_MASTER_KEY_FILE]
    #[arg(long, value_name = "FILE")]
    pub master_key: Option<PathBuf>,

    /// Replace an existing master file, which is moved aside to
    /// FILE.replaced-TIMESTAMP (0600). Every key minted from it stops verifying.
    #[arg(long)]
    pub force: bool,

    /// The policy file to create [default: gobuildkey.toml beside the master key file]
    /// [env: GOBUILDKEY_POLICY]
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    #[command(flatten)]
    pub edit: EditArgs,
}

impl InitArgs {
    /// The file to write: the library's [`MasterSource::file_to_create`].
    pub fn path(&self) -> Result<PathBuf, MasterError> {
        MasterSource::file_to_create(self.master_key.clone())
    }

    /// The policy to create: the library's [`policy::named_path`], else beside the master.
    pub fn policy_path(&self) -> anyhow::Result<PathBuf> {
        match policy::named_path(self.policy.clone())? {
            Some(path) => Ok(path),
            None => Ok(policy::path_beside(&MasterSource::File(self.path()?))?),
        }
    }
}

// `gobuildkey mint`.
#[derive(Debug, Args)]
pub struct MintArgs {
    /// The host type (host-linux-arm-aws), person (user-NAME) or builder name
    #[arg(value_name = "PRINCIPAL", value_parser = PrincipalParser)]
    pub principal: Principal,

    /// The MAC: hmac-sha256, or hmac-md5 for keys compatible with Go's genbuilderkey; the
    /// policy then accepts keys of it for the principal [default: the policy's algorithm]
    #[arg(long, value_name = "ALG", value_parser = alg_parser())]
    pub alg: Option<Algorithm>,

    /// Bind the key to one machine: it verifies only when presented from the host name NAME
    /// (the agent's X-Go-Builder-Hostname; `verify --machine`, a batch line's third field)
    #[arg(long, value_name = "NAME", value_parser = MachineParser)]
    pub machine: Option<Machine>,

    /// Mint an expiring token (gbk1_…) instead of a plain key, valid for DURATION from now:
    /// 24h, 90m, 7d, at most 366 days. Every mint of a token is logged
    #[arg(long, value_name = "DURATION", value_parser = Plain(duration_parser), conflicts_with = "expires_at")]
    pub expires_in: Option<jiff::Span>,

    /// Mint an expiring token valid until DATE: a future date (2026-12-01, meaning 00:00 UTC)
    /// or date and time (2026-12-01T12:00:00Z), within 366 days
    #[arg(long, value_name = "DATE", value_parser = Plain(moment_parser))]
    pub expires_at: Option<jiff::Timestamp>,

    #[command(flatten)]
    pub out: KeyOutputArgs,

    #[command(flatten)]
    pub master: MasterArgs,

    #[command(flatten)]
    pub edit: EditArgs,
}
