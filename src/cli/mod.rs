//! The command line: clap definitions and the typed parsers of its values. Here: the
//! top level (`Cli`, `Command`), `completions` and `man`, the environment and files
//! `--help` lists, and the refusal of a key on the command line; the commands' arguments by
//! who runs them ([`admin`], [`builder`], [`coordinator`]), the shared [`options`] groups and
//! the value [`parsers`] in their own files.

mod admin;
mod builder;
mod coordinator;
mod options;
mod parsers;

pub use admin::*;
pub use builder::*;
pub use coordinator::*;
pub use options::*;

use std::ffi::{OsStr, OsString};

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};

use gobuildkey::master::{
    self, ENV_COMMAND as ENV_MASTER_COMMAND, ENV_COMMAND_TIMEOUT, ENV_FILE as ENV_MASTER_FILE,
};
use gobuildkey::policy::ENV_FILE as ENV_POLICY;

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

/// The commands. Each one's arguments are built only when it is the one that runs
/// (`defer`), not for every process: start-up cost (docs/performance.md, "Start-up"). So the
/// argument structs and nested command enums carry no doc comment (`//`): built late, it
/// would replace the command's `about` written on its variant
/// (`deferred_commands_keep_their_about` checks).
#[derive(Debug, Subcommand)]
#[command(defer = true)]
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
    /// `deny REASON` (invalid, malformed, revoked, kind, expired), in order; masters and policy are
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
    /// send the dev key instead of reading the file. --explain adds why the agent reads
    /// that file and which it does not, what the key's length means (HMAC-MD5 keys are
    /// those of Go's genbuilderkey), and, since only the master can say whose key it is,
    /// what to ask the admin.
    #[command(after_help = "\
Exit status: 0 the key is in place (and valid, with --verify); 1 a problem was found; with
--verify, 66 no master; see `gobuildkey --help` for the others.

Examples:
  gobuildkey check host-linux-arm-aws
  gobuildkey check --explain host-linux-arm-aws   # why this file, and what the key is
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
    ///
    /// With --machine NAME, only that machine's own key (`mint --machine`) is replaced: the
    /// machine's own generation goes up by one and its previous key stops verifying at once
    /// (no grace period); the principal's generation, its shared key and every other
    /// machine's key stay valid.
    #[command(after_help = "\
Exit status: 0 rotated; 1 the previous key is still in its grace period (see
--discard-previous); 2 a grace-period option with --machine; 66 no master or no policy; 75
another edit held the policy's lock too long; 78 a bad policy file; see `gobuildkey --help`
for the others.

Examples:
  gobuildkey rotate host-linux-arm-aws > host-linux-arm-aws.key
  gobuildkey rotate --keep-previous-for 7d host-linux-arm-aws > new.key
  gobuildkey rotate --machine builder-07 host-linux-arm-aws -o builder-07.key")]
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

Examples:
  gobuildkey revoke --reason \"laptop stolen\" host-linux-arm-aws   # undo: gobuildkey reinstate host-linux-arm-aws
  gobuildkey revoke --machine builder-07 host-linux-arm-aws       # that machine only")]
    Revoke(RevokeArgs),

    /// Undo `revoke` (admins)
    #[command(after_help = "\
Exit status: 0; 78 a bad policy file; see `gobuildkey --help` for the others.

Examples:
  gobuildkey reinstate host-linux-arm-aws
  gobuildkey reinstate --machine builder-07 host-linux-arm-aws")]
    Reinstate(ReinstateArgs),

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

    /// Say what a key that does not verify is (admins)
    ///
    /// For the admin a builder owner sends a refused key to: reads the key from --key-file
    /// or standard input (never the command line) and says what it is, as far as the
    /// masters, the policy and the action log know — the principal's valid key; its key in
    /// another algorithm than the policy accepts; an earlier generation (and when it was
    /// replaced); another principal's key; a key with uppercase letters or whitespace
    /// inside, and what it is once repaired; a key minted under a master since retired
    /// (recognised by the key fingerprints the action log records); not a key at all; or
    /// nothing the farm knows. Needs the master: verify, --batch and serve never say more
    /// than a reason, so that nobody else can learn whose key they hold. Never shows the
    /// key.
    #[command(after_help = "\
Exit status: 0 the key is valid; 1 it is not (whatever it is); 66 no master; see `gobuildkey
--help` for the others.

Examples:
  gobuildkey explain host-linux-arm-aws < refused.key
  gobuildkey explain --key-file refused.key --json host-linux-arm-aws")]
    Explain(ExplainArgs),

    /// Find leaked keys and tokens in files, and say whose they are and whether they are live
    ///
    /// For pre-commit hooks and CI. Reads every file under each PATH (the working folder by
    /// default; `-` is standard input), binary files too, in chunks; symbolic links are
    /// never followed (they are reported as skipped), nor are FIFOs and devices read;
    /// folders named .git are skipped. Finds gobuildkey tokens (gbk1_…) by their prefix,
    /// length and checksum, so nothing else is taken for one. With the master (given with
    /// --master-key, --master-key-command or their variables, or the default master file
    /// when it exists), it also finds the plain keys of the principals the policy names
    /// (current and previous generation, machine keys of the machines it lists), by
    /// computing them, and says of each finding whose it is (by the action log, else by
    /// searching as `explain` does) and whether the one verify function accepts it now:
    /// live, or dead and why (expired, revoked, rotated, retired-master, algorithm,
    /// shared-refused, refused). Without a master (CI), a token is dead if it has expired
    /// and of unknown liveness otherwise, and plain keys are not looked for, since only
    /// the master can tell one from other hex. A given master that cannot be loaded is an
    /// error: scan never falls back to scanning without it. One line per finding on
    /// standard output, PATH:LINE: and what it is; never the key or token itself.
    #[command(after_help = "\
Exit status: 0 nothing found, or only dead keys; 1 a live key, or a token whose liveness is
unknown (no master, or nobody the farm knows); 74 a file or folder could not be read, and
nothing live was found; 66 or 77 a master was given but cannot be used; see `gobuildkey
--help` for the others.

Examples:
  gobuildkey scan                                     # the working folder, with the master if at hand
  git diff --cached --name-only -z | xargs -0 gobuildkey scan --no-master
  gobuildkey scan --json --master-key /etc/farm/master.key /srv/logs")]
    Scan(ScanArgs),

    /// Show the admin action log: who changed what, when and why (admins)
    ///
    /// Every change of the policy or the master (init, mint of a new principal, every mint
    /// of a machine key or a token, rotate, revoke, reinstate, end-grace, master
    /// rotate/add/retire, policy init) appends one JSON line to gobuildkey-actions.log beside
    /// the policy: the time (UTC), the user and the person behind sudo, the host, the command,
    /// the principal, its generation, the machine, the fingerprints of the master and of the
    /// key minted (never a secret), a token's expiry, and --reason. This shows it as a table
    /// (its last column the machine, a token's expiry and the reason); --json gives one
    /// object holding the actions.
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

// `gobuildkey completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

// `gobuildkey man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The command whose page to print (e.g. `verify`, `master rotate`); none: the tool's
    #[arg(value_name = "COMMAND", num_args = 0..)]
    pub command: Vec<String>,
}

/// The whole command-line definition, with the exit-status, environment and files tables
/// (the man pages render the same tables).
pub fn command() -> clap::Command {
    // Pieces, not `format!`: every process builds this text (docs/performance.md,
    // "Start-up").
    let mut after = Exit::help_table();
    after.reserve(3072);
    after.push_str("\nEnvironment:\n");
    for (name, meaning) in ENVIRONMENT {
        for piece in ["  ", name, "\n      ", meaning, "\n"] {
            after.push_str(piece);
        }
    }
    after.push_str("\nFiles:\n");
    for (path, meaning) in files() {
        for piece in ["  ", &path, "\n      ", meaning, "\n"] {
            after.push_str(piece);
        }
    }
    Cli::command().after_help(after)
}

/// The whole definition, every command built, for completions and man pages.
///
/// When clap builds the top level it copies the commands under its `help` command (names,
/// abouts, subcommands) before it builds the deferred commands, so `help policy init`,
/// which only building `policy` adds, would be missing from the completions. So every
/// command is built apart first: without a `help` of its own for clap's copy (as the copy
/// was before commands were deferred), then as it is, in place of the copied one.
pub fn built_command() -> clap::Command {
    let built = |own_help: bool| {
        let mut top = command();
        if !own_help {
            top = top.mut_subcommands(|sub| sub.disable_help_subcommand(true));
        }
        top.build();
        // Not clap's `help`: the one `whole` makes holds the whole tree.
        top.get_subcommands()
            .filter(|sub| sub.get_name() != "help")
            .cloned()
            .collect::<Vec<_>>()
    };
    // In place, in their order.
    let put = |whole: clap::Command, mut built: Vec<clap::Command>| {
        whole.mut_subcommands(|sub| {
            match built.iter().position(|b| b.get_name() == sub.get_name()) {
                Some(at) => built.swap_remove(at),
                None => sub,
            }
        })
    };
    let mut whole = put(command(), built(false));
    whole.build();
    put(whole, built(true))
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
    (
        ENV_POLICY,
        "the policy file, unless --policy is given (set but empty: refused)",
    ),
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
    // `concat`, not `format!`: `--help` shows this table, so every process builds it.
    let keys = master::DEFAULT_PATH_IN_HOME
        .rsplit_once('/')
        .map_or("", |(dir, _)| dir);
    let policy = gobuildkey::policy::DEFAULT_FILE_NAME;
    vec![
        (
            ["~/", master::DEFAULT_PATH_IN_HOME].concat(),
            "the master secret (mode 0600), where Go's genbuilderkey keeps it",
        ),
        (
            ["~/", keys, "/", policy].concat(),
            "the policy: generations, grace periods, revocations, algorithms, previous masters",
        ),
        (
            [
                "~/",
                keys,
                "/",
                policy,
                gobuildkey::policy::store::LOCK_SUFFIX,
            ]
            .concat(),
            "the lock every change of the policy takes (it holds the last holder's pid)",
        ),
        (
            ["~/", keys, "/", gobuildkey::policy::actions::FILE_NAME].concat(),
            "the admin action log: one JSON line per change of the policy or the master",
        ),
        (
            "~/.gobuildkey-HOST".to_owned(),
            "the key the builder agent reads for host type HOST",
        ),
        (
            ["~/", gobuildkey::paths::LEGACY_FILE_NAME].concat(),
            "the key only buildlets built before 2019 read",
        ),
    ]
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
    use gobuildkey::key::Algorithm;
    use gobuildkey::principal::Principal;

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
            // A stray digit glued to a key does not hide it.
            format!("{hex64}0"),
            format!("f{hex64}"),
        ] {
            assert!(looks_like_key(OsStr::new(&word)), "{word}");
        }
        for word in [
            "host-linux-arm-aws".to_owned(),
            "0123456789abcdef".repeat(3),
            "SHA256:0123456789abcdef".to_owned(),
            // A git commit named in a --reason is no key.
            "--reason=reverts 0123456789abcdef0123456789abcdef01234567".to_owned(),
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

    /// Building a deferred command must not change what its parent's help says of it (an
    /// argument struct's doc comment would replace the variant's), nor its own --help.
    #[test]
    fn deferred_commands_keep_their_about() {
        fn walk(unbuilt: &clap::Command, built: &clap::Command, path: &str) {
            for sub in unbuilt.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                let done = built
                    .find_subcommand(sub.get_name())
                    .unwrap_or_else(|| panic!("{path} missing once built"));
                assert_eq!(
                    sub.get_about().map(ToString::to_string),
                    done.get_about().map(ToString::to_string),
                    "{path}"
                );
                assert_eq!(
                    sub.get_long_about().map(ToString::to_string),
                    done.get_long_about().map(ToString::to_string),
                    "{path}"
                );
                walk(sub, done, &path);
            }
        }
        let unbuilt = command();
        let mut built = command();
        built.build();
        walk(&unbuilt, &built, "gobuildkey");
    }

    /// Completions and man pages see every command, under `help` too (`help policy init`),
    /// with the options they had before commands were deferred.
    #[test]
    fn the_built_definition_is_whole() {
        fn names(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
            for sub in cmd.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                let mut args: Vec<String> = sub
                    .get_arguments()
                    .map(|a| a.get_id().to_string())
                    .collect();
                args.sort();
                out.push(format!("{path}: {}", args.join(",")));
                names(sub, &path, out);
            }
        }
        let whole = built_command();
        let mut listed = Vec::new();
        names(&whole, "gobuildkey", &mut listed);
        for expected in [
            "gobuildkey help policy init: ",
            "gobuildkey help master rotate: ",
            "gobuildkey policy init: ",
            "gobuildkey master help: ",
        ] {
            assert!(
                listed.iter().any(|l| l.starts_with(expected)),
                "{expected} missing"
            );
        }
        // clap's copy under `help` holds the commands, not their own `help`.
        assert!(
            !listed
                .iter()
                .any(|l| l.starts_with("gobuildkey help master help")),
            "{listed:#?}"
        );
        let init = whole
            .find_subcommand("policy")
            .and_then(|p| p.find_subcommand("init"))
            .expect("policy init");
        for global in ["json", "quiet", "help", "version"] {
            assert!(
                init.get_arguments().any(|a| a.get_id() == global),
                "policy init lacks --{global}"
            );
        }
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
