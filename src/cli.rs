//! The command line: clap definitions and the typed parsers of its values.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};

use gobuildkey::key::Algorithm;
use gobuildkey::master::{
    self, ENV_COMMAND as ENV_MASTER_COMMAND, ENV_COMMAND_TIMEOUT, ENV_FILE as ENV_MASTER_FILE,
    MasterError, MasterSecret, MasterSource,
};
use gobuildkey::policy::{self, ENV_FILE as ENV_POLICY};
use gobuildkey::principal::{Kind, Principal, PrincipalError};

use crate::exit::Exit;

/// Issue and check the keys a build farm's machines use to join it.
///
/// A build key is the lowercase hex of HMAC(master, principal), where the principal is a
/// host type such as host-linux-arm-aws. Admins create a master (`init`) and mint keys
/// (`mint`); anyone holding the master can check a key (`verify`). Keys are compatible with
/// Go's build farm; `--alg hmac-md5` gives exactly the keys of Go's genbuilderkey.
///
/// Secrets never go on the command line: keys are read from standard input or a file.
#[derive(Debug, Parser)]
#[command(name = "gobuildkey", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,

    /// Print the result as one JSON object (schema gobuildkey/1, see docs/json.md)
    #[arg(long, global = true)]
    pub json: bool,

    /// Print nothing but errors (and the key that mint and rotate print): for scripts that
    /// want only the exit status
    #[arg(short, long, global = true, conflicts_with = "json")]
    pub quiet: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new master secret (admins)
    ///
    /// Draws 32 bytes from the operating system's random generator and writes them as 64
    /// hex digits and a newline to the master key file, mode 0600, creating missing folders
    /// with mode 0700. An existing file is kept unless --force is given; then it is replaced
    /// atomically. Prints the path and the master's fingerprint, never the secret.
    #[command(after_help = "\
Exit status: 0 created; 73 the file exists (use --force) or a link or folder is in the way;
see `gobuildkey --help` for the others.

Examples:
  gobuildkey init
  gobuildkey init --master-key /etc/gobuildkey/master.key")]
    Init(InitArgs),

    /// Print the key of a principal (admins)
    ///
    /// Standard output is the key and a newline, nothing else, so `gobuildkey mint HOST >
    /// FILE` makes a key file. The key's fingerprint goes to standard error: the machine's
    /// owner can compare it with what `gobuildkey check` shows, without the key travelling
    /// again.
    #[command(after_help = "\
Exit status: 0 minted; 66 no master (a new farm: `gobuildkey init`; an existing one: restore it
from its backup); 77 the master file is open to others; see `gobuildkey --help` for the others.

Examples:
  gobuildkey mint -o host-linux-arm-aws.key host-linux-arm-aws   # written 0600
  gobuildkey mint host-linux-arm-aws | ssh builder gobuildkey install host-linux-arm-aws
  gobuildkey mint --alg hmac-md5 host-darwin-amd64-12_0    # a genbuilderkey-compatible key")]
    Mint(MintArgs),

    /// Check a key against the master (exit 0 valid, 1 invalid)
    ///
    /// The key is read from --key-file or standard input, never from the command line, and
    /// the whitespace around it is trimmed. It is compared in constant time with the
    /// principal's current key under every accepted master, as the policy says (revoked
    /// principals, generations, grace periods). Any wrong, malformed, empty or wrong-length
    /// key is "invalid build key", exit 1; the message never shows the key.
    ///
    /// --batch answers many: each input line `PRINCIPAL KEY` gets one output line, `ok` or
    /// `deny REASON` (invalid, malformed, revoked, kind), in order; masters and policy are
    /// loaded once. The process exits 0 when its input ends.
    #[command(after_help = "\
Exit status: 0 valid; 1 invalid; 2 usage; 66 no master; 77 the master file is open to others;
see `gobuildkey --help` for the others.

Examples:
  gobuildkey verify host-linux-arm-aws < host-linux-arm-aws.key
  gobuildkey verify --key-file ~/.gobuildkey-host-linux-arm-aws host-linux-arm-aws
  printf 'host-linux-arm-aws %s\n' \"$key\" | gobuildkey verify --batch --kind host")]
    Verify(VerifyArgs),

    /// Put a key where the builder agent reads it (builder owners)
    ///
    /// The key comes from --key-file or standard input, never the command line. It must be
    /// 64 (hmac-sha256) or 32 (hmac-md5) lowercase hex digits, whitespace around it aside,
    /// or nothing is written. The target is the file the agent reads (see `gobuildkey path`):
    /// $GO_BUILD_KEY_PATH if set and not empty, else ~/.gobuildkey-PRINCIPAL, cleaned as Go
    /// cleans it.
    /// --legacy writes ~/.gobuildkey instead, for buildlets built before 2019: later ones do
    /// not read it. The file is written as the key and a newline, mode 0600, atomically; a
    /// link at the target is refused. The same key already there is left as it is; a
    /// different one is replaced only with --force. Prints the path written and the key's
    /// fingerprint, never the key, and warns when $GO_BUILD_KEY_DELETE_AFTER_READ is set
    /// (the agent deletes the file after its first read).
    #[command(after_help = "\
Exit status: 0 installed (or already there); 65 not a well-formed key; 73 a different key is
there (use --force) or a link or folder is in the way; see `gobuildkey --help` for the others.

Examples:
  gobuildkey install host-linux-arm-aws < host-linux-arm-aws.key
  GO_BUILD_KEY_PATH=/buildkey/gobuildkey gobuildkey install host-linux-arm-aws --key-file k")]
    Install(InstallArgs),

    /// Print the file the builder agent will read its key from
    ///
    /// One line, the path, for scripts. --explain adds the rule that chose it and the existing
    /// files that are not read. The rules, as Go's buildlet applies them: $GO_BUILD_KEY_PATH
    /// if set and not empty, as it is; else ~/.gobuildkey-PRINCIPAL, joined and cleaned
    /// lexically as Go's filepath.Join does (HOME=/a/link/.. means /a, wherever link points);
    /// no other file. The legacy ~/.gobuildkey is not read by buildlets built since 2019. A
    /// stock buildlet reads no key file at all unless its -coordinator starts with
    /// farmer.golang.org: --coordinator ADDR says what yours does.
    #[command(after_help = "\
Exit status: 0; see `gobuildkey --help` for the others.

Examples:
  gobuildkey path host-linux-arm-aws
  gobuildkey path --explain host-linux-arm-aws")]
    Path(PathArgs),

    /// Check the installed key before starting the agent (builder owners)
    ///
    /// Finds the key file as the agent would and checks that it exists, is a regular file
    /// that only its owner can read or write, and holds a well-formed key. The agent reads
    /// that one file: when it is missing the check fails, even if ~/.gobuildkey (not read by
    /// buildlets built since 2019) or a per-host file hidden by $GO_BUILD_KEY_PATH exists.
    /// Each problem is one line with its fix. On success prints the path, the rule and the
    /// key's fingerprint: compare it with the one the admin saw when minting. With --verify
    /// (for whoever holds the master) the key is also verified against the master. With
    /// --coordinator ADDR it warns when a stock buildlet started with that address would
    /// send the dev key instead of reading the file.
    #[command(after_help = "\
Exit status: 0 the key is in place (and valid, with --verify); 1 a problem was found; with
--verify, 66 no master; see `gobuildkey --help` for the others.

Examples:
  gobuildkey check host-linux-arm-aws
  gobuildkey check --verify host-linux-arm-aws    # where the master is at hand")]
    Check(CheckArgs),

    /// Print a key's fingerprint, to compare keys without showing them
    ///
    /// Reads the key from standard input or --key-file. The fingerprint is SHA256: and the
    /// first 16 hex digits of the SHA-256 of the key's text; `mint` and `check` show the
    /// same one.
    #[command(after_help = "\
Exit status: 0; 65 not a well-formed key; see `gobuildkey --help` for the others.

Examples:
  gobuildkey fingerprint < host-linux-arm-aws.key
  gobuildkey fingerprint --key-file ~/.gobuildkey-host-linux-arm-aws")]
    Fingerprint(FingerprintArgs),

    /// Give a principal a new key; the old one stops verifying (admins)
    ///
    /// Raises the principal's generation by one in the policy file and prints the new key
    /// on standard output, as `mint` does. The previous key stops verifying at once, unless
    /// --keep-previous (until `gobuildkey end-grace`), --keep-previous-until DATE or
    /// --keep-previous-for DURATION keeps it valid while the machine switches. No other
    /// principal's key changes. A principal whose previous key is still in its grace period
    /// is not rotated again (that key, already handed out, would stop verifying at once)
    /// unless --discard-previous says so.
    #[command(after_help = "\
Exit status: 0 rotated; 1 the previous key is still in its grace period (see
--discard-previous); 66 no master or no policy; 75 another edit held the policy's lock too
long; 78 a bad policy file; see `gobuildkey --help` for the others.

Examples:
  gobuildkey rotate host-linux-arm-aws > host-linux-arm-aws.key
  gobuildkey rotate --keep-previous-for 7d host-linux-arm-aws > new.key")]
    Rotate(RotateArgs),

    /// End the grace period of a principal's previous key (admins)
    #[command(after_help = "\
Exit status: 0; 78 a bad policy file; see `gobuildkey --help` for the others.

Example:
  gobuildkey end-grace host-linux-arm-aws")]
    EndGrace(EndGraceArgs),

    /// Refuse every key of a principal, of every generation and master (admins)
    #[command(after_help = "\
Exit status: 0; 1 the farm never knew the principal (the message suggests near names;
--allow-unknown revokes it anyway); 66 no policy; 75 another edit held the policy's lock too
long; 78 a bad policy file; see `gobuildkey --help` for the others.

Example:
  gobuildkey revoke --reason \"laptop stolen\" host-linux-arm-aws   # undo: gobuildkey reinstate host-linux-arm-aws")]
    Revoke(RevokeArgs),

    /// Undo `revoke` (admins)
    #[command(after_help = "\
Exit status: 0; 78 a bad policy file; see `gobuildkey --help` for the others.

Example:
  gobuildkey reinstate host-linux-arm-aws")]
    Reinstate(PrincipalArgs),

    /// Show the masters and each principal's generation, grace and revocation
    ///
    /// Never shows a secret: masters appear by fingerprint. --stale lists, one per line,
    /// the principals whose current key was not minted under the primary master: those to
    /// re-mint after `gobuildkey master rotate`.
    #[command(
        visible_alias = "list",
        args_conflicts_with_subcommands = true,
        after_help = "\
Exit status: 0; 66 no master or no policy; 78 a bad policy file; see `gobuildkey --help` for
the others.

Examples:
  gobuildkey policy
  gobuildkey policy --stale
  gobuildkey policy init --policy /etc/farm/gobuildkey.toml"
    )]
    Policy(PolicyArgs),

    /// Record principals whose keys were minted elsewhere, e.g. by Go's genbuilderkey (admins)
    ///
    /// For a farm moving to gobuildkey: records each principal as minted under the primary
    /// master with keys of --alg (hmac-md5 for genbuilderkey's keys), so verify, batch and
    /// serve accept them, without changing any key. A principal already recorded gains the
    /// algorithm. Creates the policy when there is none (but not where an action log says
    /// the farm had one). Principals come from the command line and/or --from FILE (one per
    /// line; blank lines and # comments are skipped).
    #[command(after_help = "\
Exit status: 0; 2 a bad principal in the file; 66 no master; 73 the policy is missing but an
action log is there; see `gobuildkey --help` for the others.

Examples:
  gobuildkey import --alg hmac-md5 host-linux-arm-aws host-darwin-amd64-12_0
  gobuildkey import --alg hmac-md5 --from host-types.txt")]
    Import(ImportArgs),

    /// Show the admin action log: who changed what, when and why (admins)
    ///
    /// Every change of the policy or the master (init, mint of a new principal, rotate,
    /// revoke, reinstate, end-grace, master rotate/add/retire, policy init) appends one JSON
    /// line to gobuildkey-actions.log beside the policy: the time (UTC), the user and the
    /// person behind sudo, the host, the command, the principal, its generation, the
    /// fingerprints of the master and of the key minted (never a secret), and --reason.
    /// This shows it as a table; --json gives one object holding the actions.
    #[command(after_help = "\
Exit status: 0; 74 the log cannot be read; see `gobuildkey --help` for the others.

Examples:
  gobuildkey log
  gobuildkey log host-linux-arm-aws --since 2026-11-01")]
    Log(LogArgs),

    /// Manage the masters: replace the primary, accept or retire previous ones (admins)
    #[command(subcommand)]
    Master(MasterCommand),

    /// Serve verifications over HTTP, for a reverse proxy's auth subrequest (coordinators)
    ///
    /// `GET /verify` checks the builder agent's own headers in the order and with the words
    /// of Go's coordinator: 400 without X-Revdial-Version ("buildlet binary is too old") or
    /// with another than 2, 400 without X-Go-Builder-Hostname or X-Go-Host-Type (or a header
    /// repeated or too long), then the key: 200 valid; 403 "invalid build key" for a key
    /// missing, malformed, wrong, revoked or of another kind (see --kind) — one answer, so
    /// the status tells nobody which host types are revoked; 429 too many failures from the
    /// client. `GET /healthz` answers
    /// 200 and JSON: {"state":"ok","loaded_at":…}, or after a failed reload
    /// {"state":"stale","error":…,"since":…,"loaded_at":…}. SIGHUP reloads the masters and
    /// the policy without dropping requests; a failed reload keeps the last good ones (and
    /// every revocation they hold) and is logged: alert when the state is not ok (`GET
    /// /metrics`: gobuildkey_policy_stale, in Prometheus' text format). Replicas share only
    /// the master and the policy.
    #[cfg(all(feature = "serve", unix))]
    #[command(after_help = "\
Exit status: 0 stopped by SIGTERM or SIGINT; 66 no master; 78 a bad policy file; 74 cannot
listen; see `gobuildkey --help` for the others.

Examples:
  gobuildkey serve
  gobuildkey serve --listen 127.0.0.1:8790 --client-ip-header X-Real-IP --audit /var/log/gobuildkey.log")]
    Serve(ServeArgs),

    /// Print a shell completion script (bash, zsh, fish, powershell, elvish)
    #[command(after_help = "\
Exit status: 0; see `gobuildkey --help` for the others.

Examples:
  gobuildkey completions bash > /etc/bash_completion.d/gobuildkey
  gobuildkey completions zsh > \"${fpath[1]}/_gobuildkey\"
  gobuildkey completions fish > ~/.config/fish/completions/gobuildkey.fish")]
    Completions(CompletionsArgs),

    /// Print the man page of gobuildkey, or of one of its commands (roff)
    #[command(after_help = "\
Exit status: 0; 2 no such command; see `gobuildkey --help` for the others.

Examples:
  gobuildkey man | man -l -
  gobuildkey man verify > gobuildkey-verify.1")]
    Man(ManArgs),

    /// Register with the coordinator as the builder agent would, and explain the answer
    /// (builder owners)
    ///
    /// Reads the installed key as the agent does (see `gobuildkey path`), then sends
    /// `GET /reverse` with X-Go-Host-Type, X-Go-Builder-Key, X-Go-Builder-Hostname,
    /// X-Go-Builder-Version and X-Revdial-Version: 2. 101 or 200 is accepted; 412 (Go's
    /// coordinator) or 403 is an invalid build key, and the likely causes are listed with
    /// the key's path, rule and fingerprint; 400 shows its reason. HTTPS uses the system's
    /// root certificates.
    #[cfg(all(feature = "probe", unix))]
    #[command(after_help = "\
Exit status: 0 accepted; 1 refused, or the key file has a problem; 69 the coordinator cannot be
reached; see `gobuildkey --help` for the others.

Examples:
  gobuildkey probe --coordinator https://farmer.example.org host-linux-arm-aws
  gobuildkey probe --insecure-http --coordinator http://127.0.0.1:8790 --path /verify host-linux-arm-aws")]
    Probe(ProbeArgs),
}

/// `gobuildkey probe`.
#[cfg(all(feature = "probe", unix))]
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The host type the agent registers as
    #[arg(value_name = "PRINCIPAL", value_parser = PrincipalParser)]
    pub principal: Principal,

    /// The coordinator: https://HOST[:PORT] (a bare HOST[:PORT] means https); its path, if
    /// any, is replaced by --path
    #[arg(long, value_name = "URL")]
    pub coordinator: String,

    /// The path registered at (`/verify` to ask a `gobuildkey serve` directly): absolute,
    /// and without `//`, `?`, `#`, `@`, `\` or control characters
    #[arg(long, value_name = "PATH", default_value = "/reverse", value_parser = Plain(probe_path_parser))]
    pub path: String,

    /// Trust the certificate authorities in FILE (PEM) for the coordinator, instead of
    /// the system's
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// Allow plain http:// (for tests on loopback): the key then crosses the network
    /// unencrypted
    #[arg(long)]
    pub insecure_http: bool,

    /// The host name to announce [default: this machine's]
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,

    /// Seconds to wait for the whole exchange
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,
}

/// A `probe --path`: an absolute path that cannot change the host the key is sent to, nor
/// carry a query or fragment: no `//` at its start, no `?`, `#`, `@`, `\\` or control
/// characters.
#[cfg(all(feature = "probe", unix))]
fn probe_path_parser(text: &str) -> Result<String, String> {
    let bad = |c: char| matches!(c, '?' | '#' | '@' | '\\') || c.is_control();
    if !text.starts_with('/') || text.starts_with("//") || text.chars().any(bad) {
        return Err(
            "the path must be absolute (/reverse, /verify), and hold no `//` at its start, \
             `?`, `#`, `@`, `\\` or control characters: the key must go to the coordinator \
             named, nowhere else"
                .into(),
        );
    }
    Ok(text.to_owned())
}

/// `gobuildkey serve`.
#[cfg(all(feature = "serve", unix))]
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The address to listen on (loopback by default: put a proxy in front)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8790")]
    pub listen: std::net::SocketAddr,

    /// Refuse principals of any other kind: host (the default), user, other, or any
    #[arg(long, value_name = "KIND", default_value = "host", value_parser = kind_parser())]
    pub kind: ::std::option::Option<Kind>,

    /// Refuse keys of any other MAC than ALG [default: the algorithms the policy records]
    #[arg(long, value_name = "ALG", value_parser = alg_parser())]
    pub alg: Option<Algorithm>,

    /// The most connections open at once; at the limit the least recently active one is
    /// closed to make room. Kept below the file-descriptor limit, which serve raises to
    /// its hard limit at start
    #[arg(long, value_name = "N", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// How long a client has to send a request's headers, from their first byte
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = Plain(timeout_parser))]
    pub header_timeout: std::time::Duration,

    /// How long a connection may wait without a request (after it opens, or between
    /// requests) before it is closed
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = Plain(timeout_parser))]
    pub idle_timeout: std::time::Duration,

    /// Failed attempts a client may make per window before its failures get 429 (0: no
    /// limit). A correct key is never refused
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub max_failures: u32,

    /// The failure limit's window
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = Plain(timeout_parser))]
    pub failure_window: std::time::Duration,

    /// The most clients the failure limit tracks; when all have failures in their
    /// window, failures from any other client get 429
    #[arg(long, value_name = "N", default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tracked_clients: u32,

    /// Count IPv4 clients per network of this prefix length
    #[arg(long, value_name = "BITS", default_value_t = 32, value_parser = clap::value_parser!(u8).range(0..=32))]
    pub ipv4_prefix: u8,

    /// Count IPv6 clients per network of this prefix length
    #[arg(long, value_name = "BITS", default_value_t = 64, value_parser = clap::value_parser!(u8).range(0..=128))]
    pub ipv6_prefix: u8,

    /// Take the client's address from this header (X-Real-IP, X-Forwarded-For) when the
    /// request comes from a trusted proxy
    #[arg(long, value_name = "HEADER")]
    pub client_ip_header: Option<String>,

    /// A proxy whose --client-ip-header is believed (repeatable) [default: 127.0.0.0/8
    /// and ::1]
    #[arg(long, value_name = "CIDR", value_parser = Plain(cidr_parser))]
    pub trusted_proxy: Vec<ipnet::IpNet>,

    /// Append one JSON line per verification to FILE (mode 0600); `-` for standard error
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,

    /// Check only X-Go-Host-Type and X-Go-Builder-Key, not the Go buildlet's own
    /// X-Revdial-Version and X-Go-Builder-Hostname: for other agents
    #[arg(long)]
    pub key_headers_only: bool,

    /// Reload on SIGHUP only, not also when the master or the policy file changes
    #[arg(long)]
    pub no_watch: bool,

    #[command(flatten)]
    pub master: MasterArgs,
}

/// `gobuildkey master ...`.
#[derive(Debug, Subcommand)]
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

/// Commands that need only the master and policy options, and change them.
#[derive(Debug, Args)]
pub struct MasterOnlyArgs {
    #[command(flatten)]
    pub master: MasterArgs,

    #[command(flatten)]
    pub edit: EditArgs,
}

/// What every command that changes the policy or the master takes.
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

/// Where `mint` and `rotate` put the key.
#[derive(Debug, Clone, Args)]
pub struct KeyOutputArgs {
    /// Write the key to FILE (created 0600, atomically) instead of standard output
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Replace FILE when it exists
    #[arg(long, requires = "output")]
    pub force: bool,
}

/// A `--reason`: one line of at most 1000 characters.
fn reason_parser(text: &str) -> Result<String, String> {
    if text.chars().count() > 1000 {
        return Err("a reason has at most 1000 characters".into());
    }
    if text.chars().any(char::is_control) {
        return Err("a reason is one line, without control characters".into());
    }
    Ok(text.to_owned())
}

/// `gobuildkey master add`.
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

/// `gobuildkey master retire`.
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

/// Commands that change one principal's state in the policy.
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

/// `gobuildkey end-grace`.
#[derive(Debug, Args)]
pub struct EndGraceArgs {
    #[command(flatten)]
    pub target: PrincipalArgs,

    /// Instead of the grace period, end the acceptance of the principal's keys of this
    /// algorithm (once its machines have keys of another)
    #[arg(long, value_name = "ALG", value_parser = alg_parser())]
    pub alg: Option<Algorithm>,
}

/// `gobuildkey revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    pub target: PrincipalArgs,

    /// Revoke a principal the farm never knew (not in the policy, nor in the action log)
    #[arg(long)]
    pub allow_unknown: bool,
}

/// `gobuildkey rotate`.
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

    #[command(flatten)]
    pub out: KeyOutputArgs,

    #[command(flatten)]
    pub master: MasterArgs,

    #[command(flatten)]
    pub edit: EditArgs,
}

/// `gobuildkey policy`.
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

/// `gobuildkey policy ...`.
#[derive(Debug, Subcommand)]
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
}

/// `gobuildkey policy init`.
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

/// `gobuildkey import`.
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

/// `gobuildkey log`.
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

fn moment_parser(text: &str) -> Result<jiff::Timestamp, String> {
    gobuildkey::policy::parse_moment(text)
}

/// A `--keep-previous-until` value: a moment after now. A past one would end the grace
/// period before it started, cutting off the machine the flag was meant to keep working.
fn future_moment_parser(text: &str) -> Result<jiff::Timestamp, String> {
    let moment = gobuildkey::policy::parse_moment(text)?;
    if moment <= jiff::Timestamp::now() {
        return Err(format!(
            "{moment} is in the past, so the previous key would stop verifying at once: give a later date, or a length with --keep-previous-for 7d"
        ));
    }
    Ok(moment)
}

/// A `--keep-previous-for` value: a positive length of time, in jiff's friendly or ISO 8601
/// form.
fn duration_parser(text: &str) -> Result<jiff::Span, String> {
    match text.parse::<jiff::Span>() {
        Ok(span) if span.is_positive() => Ok(span),
        _ => Err(format!(
            "`{text}` is not a positive length of time: write it as 7d, 2w, 36h or \"1 week\""
        )),
    }
}

/// A timeout or window (`--command-timeout`, serve's timeouts): a positive length of time
/// in jiff's friendly form (10s, 500ms, 2m, "1m 30s") or ISO 8601's (PT10S), at most a week
/// (a longer one is a mistake, and some would overflow the clock).
fn timeout_parser(text: &str) -> Result<std::time::Duration, String> {
    const WEEK: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
    text.trim()
        .parse::<jiff::SignedDuration>()
        .ok()
        .filter(|d| d.is_positive())
        .and_then(|d| std::time::Duration::try_from(d).ok())
        .filter(|d| *d <= WEEK)
        .ok_or_else(|| {
            format!(
                "`{text}` is not a positive length of time of at most a week: write it as \
                 10s, 500ms, 2m or \"1m 30s\""
            )
        })
}

/// A network: `192.0.2.0/24`, `2001:db8::/64`, or one address.
#[cfg(all(feature = "serve", unix))]
fn cidr_parser(text: &str) -> Result<ipnet::IpNet, String> {
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| format!("`{text}` is not an address or a network: write it as 10.0.0.0/8, 192.0.2.7 or 2001:db8::/64"))
}

/// `gobuildkey init`.
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
        match policy::named_path(self.policy.clone()) {
            Some(path) => Ok(path),
            None => Ok(policy::path_beside(&MasterSource::File(self.path()?))?),
        }
    }
}

/// Where the master comes from, for the commands that read it.
///
/// The environment is read by [`MasterArgs::source`], not by clap, so that a flag beats
/// both variables: with clap's `env`, `GOBUILDKEY_MASTER_KEY_FILE` in the environment
/// would conflict with an explicit `--master-key-command`.
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
        match policy::named_path(self.policy.clone()) {
            Some(path) => Ok(path),
            None => Ok(policy::path_beside(&self.source()?)?),
        }
    }

    /// The source: the library's [`MasterSource::resolve`] of the two flags.
    pub fn source(&self) -> Result<MasterSource, MasterError> {
        MasterSource::resolve(self.master_key.clone(), self.master_key_command.clone())
    }
}

/// `gobuildkey mint`.
#[derive(Debug, Args)]
pub struct MintArgs {
    /// The host type (host-linux-arm-aws), person (user-NAME) or builder name
    #[arg(value_name = "PRINCIPAL", value_parser = PrincipalParser)]
    pub principal: Principal,

    /// The MAC: hmac-sha256, or hmac-md5 for keys compatible with Go's genbuilderkey; the
    /// policy then accepts keys of it for the principal [default: the policy's algorithm]
    #[arg(long, value_name = "ALG", value_parser = alg_parser())]
    pub alg: Option<Algorithm>,

    #[command(flatten)]
    pub out: KeyOutputArgs,

    #[command(flatten)]
    pub master: MasterArgs,

    #[command(flatten)]
    pub edit: EditArgs,
}

/// `gobuildkey verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The principal the key should belong to
    #[arg(
        value_name = "PRINCIPAL",
        value_parser = PrincipalParser,
        required_unless_present = "batch",
        conflicts_with = "batch"
    )]
    pub principal: Option<Principal>,

    /// Answer `PRINCIPAL KEY` lines from standard input with `ok` or `deny REASON` lines,
    /// until it ends: a coprocess for a coordinator
    #[arg(long, conflicts_with = "key_file")]
    pub batch: bool,

    /// Read the key from FILE instead of standard input
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,

    /// Refuse keys of any other MAC than ALG (it must be one the policy accepts for the
    /// principal) [default: the algorithms the policy records]
    #[arg(long, value_name = "ALG", value_parser = alg_parser())]
    pub alg: Option<Algorithm>,

    /// Refuse principals of any other kind: host (host-*), user (user-*), other, or any
    #[arg(long, value_name = "KIND", default_value = "any", value_parser = kind_parser())]
    pub kind: ::std::option::Option<Kind>,

    /// Append one JSON line per verification to FILE (mode 0600); `-` for standard error
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,

    /// With --batch: reload on SIGHUP only, not also when the master or the policy file
    /// changes
    #[arg(long, conflicts_with = "principal")]
    pub no_watch: bool,

    #[command(flatten)]
    pub master: MasterArgs,
}

/// `gobuildkey completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// `gobuildkey man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The command whose page to print (e.g. `verify`, `master rotate`); none: the tool's
    #[arg(value_name = "COMMAND", num_args = 0..)]
    pub command: Vec<String>,
}

/// `gobuildkey install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The host type the key is for
    #[arg(value_name = "PRINCIPAL", value_parser = PrincipalParser)]
    pub principal: Principal,

    /// Read the key from FILE instead of standard input
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,

    /// Replace a different key already installed
    #[arg(long)]
    pub force: bool,

    /// Write the legacy ~/.gobuildkey, for buildlets built before 2019 (later ones do not
    /// read it)
    #[arg(long)]
    pub legacy: bool,

    /// Install for the user NAME (root only): as NAME, into the home folder of NAME's
    /// password entry (or $GO_BUILD_KEY_PATH, when set, which is passed on) — the whole write
    /// is done by a child process running as NAME with a fresh environment, so the file is
    /// NAME's and no link NAME planted can send it elsewhere
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
}

/// `gobuildkey path`.
#[derive(Debug, Args)]
pub struct PathArgs {
    /// The host type the agent runs as
    #[arg(value_name = "PRINCIPAL", value_parser = PrincipalParser)]
    pub principal: Principal,

    /// Also say which rule chose the file and which existing files are not read
    #[arg(long)]
    pub explain: bool,

    /// The address the buildlet is started with (its -coordinator): say whether a stock
    /// buildlet reads a key file at all with it
    #[arg(long, value_name = "ADDR")]
    pub coordinator: Option<String>,
}

/// `gobuildkey check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The host type the agent runs as
    #[arg(value_name = "PRINCIPAL", value_parser = PrincipalParser)]
    pub principal: Principal,

    /// Also verify the key against the master and policy (needs the master)
    #[arg(long)]
    pub verify: bool,

    /// The address the buildlet is started with (its -coordinator): warn when a stock
    /// buildlet would send the dev key with it instead of reading the key file
    #[arg(long, value_name = "ADDR")]
    pub coordinator: Option<String>,

    #[command(flatten)]
    pub master: MasterArgs,
}

/// `gobuildkey fingerprint`.
#[derive(Debug, Args)]
pub struct FingerprintArgs {
    /// Read the key from FILE instead of standard input
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

/// The whole command-line definition, with the exit-status, environment and files tables
/// (the man pages render the same tables).
pub fn command() -> clap::Command {
    let mut after = Exit::help_table();
    after.push_str("\nEnvironment:\n");
    for (name, meaning) in ENVIRONMENT {
        after.push_str(&format!("  {name}\n      {meaning}\n"));
    }
    after.push_str("\nFiles:\n");
    for (path, meaning) in files() {
        after.push_str(&format!("  {path}\n      {meaning}\n"));
    }
    Cli::command().after_help(after)
}

/// The environment variables gobuildkey reads, and what for: `--help` and the man pages
/// (ENVIRONMENT) show this one table.
pub const ENVIRONMENT: [(&str, &str); 9] = [
    (
        ENV_MASTER_FILE,
        "the master key file, unless --master-key or --master-key-command is given",
    ),
    (
        ENV_MASTER_COMMAND,
        "a command printing the master, unless --master-key or --master-key-command is given",
    ),
    (ENV_POLICY, "the policy file, unless --policy is given"),
    (
        ENV_COMMAND_TIMEOUT,
        "how long a master or keyring command may run, unless --command-timeout is given",
    ),
    (
        gobuildkey::paths::ENV_KEY_PATH,
        "the file the builder agent reads its key from, when set and not empty (install, path, check, probe)",
    ),
    (
        gobuildkey::paths::ENV_DELETE_AFTER_READ,
        "set for the builder agent, it deletes its key file after reading it (install warns)",
    ),
    (
        "HOME",
        "where the master and the agent's key file are by default; it must be absolute",
    ),
    (
        "SUDO_USER",
        "recorded in the action log as the person who ran gobuildkey through sudo",
    ),
    ("NO_COLOR", "when set, messages are never coloured"),
];

/// The files gobuildkey uses by default, and what they hold: `--help` and the man pages
/// (FILES) show this one table.
pub fn files() -> Vec<(String, &'static str)> {
    let keys = std::path::Path::new(master::DEFAULT_PATH_IN_HOME)
        .parent()
        .map_or_else(String::new, |dir| dir.display().to_string());
    let policy = gobuildkey::policy::DEFAULT_FILE_NAME;
    vec![
        (
            format!("~/{}", master::DEFAULT_PATH_IN_HOME),
            "the master secret (mode 0600), where Go's genbuilderkey keeps it",
        ),
        (
            format!("~/{keys}/{policy}"),
            "the policy: generations, grace periods, revocations, algorithms, previous masters",
        ),
        (
            format!(
                "~/{keys}/{policy}{}",
                gobuildkey::policy::store::LOCK_SUFFIX
            ),
            "the lock every change of the policy takes (it holds the last holder's pid)",
        ),
        (
            format!("~/{keys}/{}", gobuildkey::policy::actions::FILE_NAME),
            "the admin action log: one JSON line per change of the policy or the master",
        ),
        (
            "~/.gobuildkey-HOST".to_owned(),
            "the key the builder agent reads for host type HOST",
        ),
        (
            format!("~/{}", gobuildkey::paths::LEGACY_FILE_NAME),
            "the key only buildlets built before 2019 read",
        ),
    ]
}

fn kind_parser() -> impl TypedValueParser<Value = Option<Kind>> {
    PossibleValuesParser::new(["host", "user", "other", "any"]).map(|name| {
        [Kind::Host, Kind::User, Kind::Other]
            .into_iter()
            .find(|kind| kind.name() == name)
    })
}

fn alg_parser() -> impl TypedValueParser<Value = Algorithm> {
    PossibleValuesParser::new(Algorithm::ALL.map(Algorithm::name)).try_map(|name| name.parse())
}

/// A value parser for free text: `parse`, after refusing a value with control characters
/// without repeating it. clap's refusal repeats the value as typed, and a newline or a
/// terminal's escape codes in it would reach the terminal (principals have their own
/// parser, which shows them escaped).
#[derive(Clone, Copy)]
struct Plain<T>(fn(&str) -> Result<T, String>);

impl<T: Clone + Send + Sync + 'static> TypedValueParser for Plain<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        if value.to_string_lossy().chars().any(char::is_control) {
            let option = arg.map_or_else(|| "the value".to_owned(), |arg| format!("'{arg}'"));
            let mut cmd = cmd.clone();
            return Err(clap::Error::raw(
                ErrorKind::ValueValidation,
                format!(
                    "invalid value for {option}: it holds control characters (a line break, \
                     a tab, a terminal's escape codes), not shown here; write it on one line"
                ),
            )
            .format(&mut cmd));
        }
        let parse = self.0;
        clap::builder::StringValueParser::new()
            .try_map(move |text| parse(&text))
            .parse_ref(cmd, arg, value)
    }
}

/// Parses a principal, refusing any that breaks the rule with a usage error (exit 2) whose
/// message states the rule and shows the value escaped.
#[derive(Clone, Debug)]
struct PrincipalParser;

impl TypedValueParser for PrincipalParser {
    type Value = Principal;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<Principal, clap::Error> {
        if looks_like_key(value) {
            let mut cmd = cmd.clone();
            return Err(
                clap::Error::raw(ErrorKind::ValueValidation, KEY_ON_COMMAND_LINE).format(&mut cmd),
            );
        }
        let parsed = match value.to_str() {
            Some(text) => Principal::new(text),
            None => Err(PrincipalError::new(&value.to_string_lossy())),
        };
        parsed.map_err(|e| {
            // `Error::raw` keeps clap from echoing the raw value, which may hold escape codes.
            let mut cmd = cmd.clone();
            clap::Error::raw(ErrorKind::ValueValidation, e).format(&mut cmd)
        })
    }
}

/// What is said, instead of the word itself, of a command-line word that looks like a key.
pub const KEY_ON_COMMAND_LINE: &str = "that looks like a key: keys are read from standard \
     input or a file (--key-file), never from the command line, where other users and the \
     shell's history see them";

/// Whether a command-line word holds what looks like a key (the library's one rule,
/// [`gobuildkey::key::looks_like_key`]). Such a word is never echoed.
pub fn looks_like_key(word: &OsStr) -> bool {
    gobuildkey::key::looks_like_key(word.as_encoded_bytes())
}

/// Refuses a command line holding a word that looks like a key before clap sees it, so that
/// no error message (clap's "unexpected argument 'KEY'") can repeat the key: a usage error
/// (exit 2) that says what to do instead.
///
/// # Errors
/// The usage error, ready to print and exit with.
pub fn refuse_keys(args: &[OsString]) -> Result<(), clap::Error> {
    if args.iter().skip(1).any(|word| looks_like_key(word)) {
        let mut cmd = command();
        return Err(
            clap::Error::raw(ErrorKind::ValueValidation, KEY_ON_COMMAND_LINE).format(&mut cmd),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn key_like_words_are_recognised() {
        let hex64 = "0123456789abcdef".repeat(4);
        for word in [
            hex64.clone(),
            hex64.to_uppercase(),
            "0123456789abcdef".repeat(2),
            format!("--reason={hex64}"),
            "gbk1_anything".to_owned(),
            format!("{hex64} "),
            format!("{hex64}\r"),
            format!(" {hex64}"),
            format!("\"{hex64}\","),
            format!("{hex64}:"),
            format!("leaked key {hex64} yesterday"),
            "x-gbk1_y".to_owned(),
        ] {
            assert!(looks_like_key(OsStr::new(&word)), "{word}");
        }
        for word in [
            "host-linux-arm-aws".to_owned(),
            "0123456789abcdef".repeat(3),
            "SHA256:0123456789abcdef".to_owned(),
            format!("{hex64}0"),
            "--alg=hmac-md5".to_owned(),
        ] {
            assert!(!looks_like_key(OsStr::new(&word)), "{word}");
        }
    }
    use clap::FromArgMatches;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let matches = command().try_get_matches_from(args)?;
        Cli::from_arg_matches(&matches)
    }

    #[test]
    fn definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn alg_defaults_to_the_policy() {
        let Command::Mint(args) = parse(&["gobuildkey", "mint", "host-x"]).unwrap().command else {
            panic!("not mint")
        };
        assert_eq!(args.alg, None);
        let Command::Mint(args) = parse(&["gobuildkey", "mint", "--alg", "hmac-md5", "host-x"])
            .unwrap()
            .command
        else {
            panic!("not mint")
        };
        assert_eq!(args.alg, Some(Algorithm::HmacMd5));
    }

    #[test]
    fn bad_principal_is_a_usage_error_stating_the_rule() {
        let err = parse(&["gobuildkey", "mint", "Host/\u{1b}x"]).unwrap_err();
        assert_eq!(err.exit_code(), i32::from(Exit::Usage.code()));
        let text = err.to_string();
        assert!(text.contains(Principal::RULE), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
    }

    #[test]
    fn master_command_and_file_conflict() {
        let err = parse(&[
            "gobuildkey",
            "mint",
            "--master-key",
            "f",
            "--master-key-command",
            "c",
            "host-x",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
    }
}
