//! The coordinators' commands' arguments: `verify` (and `--batch`), `serve`.

use std::path::PathBuf;

use clap::Args;

use gobuildkey::key::Algorithm;
use gobuildkey::machine::Machine;
use gobuildkey::principal::{Kind, Principal};

use super::options::*;
use super::parsers::*;

// `gobuildkey serve`.
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
    #[arg(long, value_name = "HEADER", value_parser = Plain(header_name_parser))]
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
    pub skew: SkewArgs,

    #[command(flatten)]
    pub master: MasterArgs,
}

/// A network: `192.0.2.0/24`, `2001:db8::/64`, or one address.
#[cfg(all(feature = "serve", unix))]
fn cidr_parser(text: &str) -> Result<ipnet::IpNet, String> {
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| format!("`{text}` is not an address or a network: write it as 10.0.0.0/8, 192.0.2.7 or 2001:db8::/64"))
}

/// An HTTP header's name (hyper's rule: a token). A name no request can carry would leave
/// every client counted as the proxy, silently.
#[cfg(all(feature = "serve", unix))]
fn header_name_parser(text: &str) -> Result<String, String> {
    hyper::header::HeaderName::from_bytes(text.as_bytes())
        .map(|_| text.to_owned())
        .map_err(|_| {
            format!(
                "`{text}` is not a header name: one word of letters, digits and `-` (X-Real-IP, \
                 X-Forwarded-For)"
            )
        })
}

// `gobuildkey verify`.
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

    /// The machine the key came from (the agent's X-Go-Builder-Hostname): a key bound to
    /// it (`mint --machine`) verifies as well as the principal's shared key
    #[arg(long, value_name = "NAME", value_parser = MachineParser, conflicts_with = "batch")]
    pub machine: Option<Machine>,

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
    pub skew: SkewArgs,

    #[command(flatten)]
    pub master: MasterArgs,
}
