//! The builder owners' commands' arguments: `install`, `path`, `check`, `fingerprint`,
//! `probe`.

use std::path::PathBuf;

use clap::Args;

use gobuildkey::machine::Machine;
use gobuildkey::principal::Principal;

use super::options::*;
use super::parsers::*;

// `gobuildkey probe`.
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

// `gobuildkey install`.
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

// `gobuildkey path`.
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

// `gobuildkey check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The host type the agent runs as
    #[arg(value_name = "PRINCIPAL", value_parser = PrincipalParser)]
    pub principal: Principal,

    /// Also verify the key against the master and policy (needs the master)
    #[arg(long)]
    pub verify: bool,

    /// Also say why this file, what its key's length means, and what only the admin can
    /// tell (`gobuildkey explain`)
    #[arg(long)]
    pub explain: bool,

    /// With --verify: the host name the agent registers with (its -hostname), for a key
    /// bound to this machine (`mint --machine`)
    #[arg(long, value_name = "NAME", value_parser = MachineParser, requires = "verify")]
    pub machine: Option<Machine>,

    /// The address the buildlet is started with (its -coordinator): warn when a stock
    /// buildlet would send the dev key with it instead of reading the key file
    #[arg(long, value_name = "ADDR")]
    pub coordinator: Option<String>,

    #[command(flatten)]
    pub master: MasterArgs,
}

// `gobuildkey fingerprint`.
#[derive(Debug, Args)]
pub struct FingerprintArgs {
    /// Read the key from FILE instead of standard input
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}
