//! `gobuildkey probe`: send the registration the builder agent sends, and explain the
//! coordinator's answer.

use std::time::Duration;

use anyhow::Result;

use gobuildkey::paths::{self, AgentEnv};

use crate::cli::ProbeArgs;
use crate::exit::{Exit, Refused};

/// What the agent sends as its protocol version; the probe says who it is instead.
const PROBE_VERSION: &str = concat!("gobuildkey-probe-", env!("CARGO_PKG_VERSION"));

/// Reads the installed key as the agent would, registers with it, and explains the answer.
pub fn run(args: &ProbeArgs) -> Result<Exit> {
    let env = AgentEnv::from_process();
    let loc = paths::locate(&args.principal, &env);
    let principal = &args.principal;
    let Some(key) = installed_key(&loc.path, principal) else {
        crate::output::report(
            "probe",
            "",
            &crate::commands::json::Probe {
                principal: principal.as_str(),
                key_file: &loc.path,
                fingerprint: None,
                coordinator: None,
                status: None,
                meaning: "the key file has a problem (see standard error); nothing was sent",
                accepted: false,
            },
        );
        return Ok(Exit::Invalid);
    };
    let mut lines = vec![format!(
        "key: {} ({}), fingerprint {}",
        loc.path.display(),
        loc.rule,
        key.fingerprint()
    )];
    let hostname = args.hostname.clone().unwrap_or_else(local_hostname);
    let url = registration_url(&args.coordinator, &args.path, args.insecure_http)?;
    if url.scheme_str() == Some("http") {
        crate::output::note(&format!(
            "warning: --insecure-http: the key goes to {url} unencrypted, readable on the way"
        ));
    }
    let roots = match &args.cacert {
        None => ureq::tls::RootCerts::PlatformVerifier,
        Some(file) => ureq::tls::RootCerts::new_with_certs(&certificates(file)?),
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(args.timeout)))
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .provider(ureq::tls::TlsProvider::Rustls)
                .root_certs(roots)
                .build(),
        )
        .build()
        .into();
    let response = agent
        .get(&url)
        .header("X-Go-Host-Type", principal.as_str())
        .header("X-Go-Builder-Key", key.expose_secret())
        .header("X-Go-Builder-Hostname", &hostname)
        .header("X-Go-Builder-Version", PROBE_VERSION)
        .header("X-Revdial-Version", "2")
        .call()
        .map_err(|e| unreachable(&url, &e))?;
    let status = response.status().as_u16();
    let mut body = String::new();
    if status != 101 {
        // Only the first line of a short body is shown, escaped: it comes from the network.
        body = response
            .into_body()
            .with_config()
            .limit(4096)
            .read_to_string()
            .unwrap_or_default();
    }
    let first_line = body.lines().next().unwrap_or("").trim();
    let said = gobuildkey::text::escape_for_terminal(first_line, 200);
    let (meaning, exit) = match status {
        101 | 200 => {
            lines.push(format!(
                "accepted: the coordinator at {url} let {principal} register ({status})"
            ));
            ("accepted", Exit::Ok)
        }
        403 | 412 => {
            lines.push(format!(
                "refused: {status} {said}: the coordinator does not accept this key for {principal}"
            ));
            lines.push("likely causes:".into());
            lines.push(
                "  - the host type was renamed: ask the admin which host type this machine registers as"
                    .into(),
            );
            lines.push(
                "  - the key is old: the admin rotated it, or replaced the master; compare the fingerprint"
                    .into(),
            );
            lines.push("    above with the admin's (`gobuildkey mint` printed it)".into());
            lines.push(format!(
                "  - the agent reads another file than you think: see `gobuildkey path --explain {principal}`"
            ));
            lines.push("  - the principal was revoked".into());
            ("invalid build key", Exit::Invalid)
        }
        400 => {
            lines.push(format!("refused: bad request: {said}"));
            ("bad request", Exit::Invalid)
        }
        429 => {
            lines.push(
                "refused: too many failed attempts from this address: wait a minute, then fix the key first"
                    .into(),
            );
            ("too many failed attempts", Exit::Invalid)
        }
        other => {
            lines.push(format!(
                "unexpected answer {other}: {said}: is {url} the coordinator's address?"
            ));
            ("unexpected answer", Exit::Invalid)
        }
    };
    crate::output::report(
        "probe",
        &lines.join("\n"),
        &crate::commands::json::Probe {
            principal: principal.as_str(),
            key_file: &loc.path,
            fingerprint: Some(key.fingerprint().as_str()),
            coordinator: Some(url.to_string()),
            status: Some(status),
            meaning,
            accepted: exit == Exit::Ok,
        },
    );
    Ok(exit)
}

/// The URL the registration goes to: the coordinator's scheme, host and port, with `path`
/// set as its path — never a string joined onto it, so that no `--path` can change the
/// host. No scheme means https; http only with `--insecure-http`.
fn registration_url(
    coordinator: &str,
    path: &str,
    insecure_http: bool,
) -> Result<ureq::http::Uri, Refused> {
    let usage = |why: String| Refused::new(Exit::Usage, why);
    let shown = gobuildkey::text::escape_for_terminal(coordinator, 200);
    let with_scheme = if coordinator.contains("://") {
        coordinator.to_owned()
    } else if coordinator.to_ascii_lowercase().starts_with("http") && coordinator.contains(':')
        || coordinator.contains(['/', '?', '#', '@', '\\'])
    {
        // `https:/host` would make a host named "https": whatever is not a URL must be a
        // bare HOST[:PORT].
        return Err(usage(format!(
            "--coordinator {shown}: give https://HOST[:PORT], or a bare HOST[:PORT]"
        )));
    } else {
        format!("https://{coordinator}")
    };
    let uri: ureq::http::Uri = with_scheme.parse().map_err(|_| {
        usage(format!(
            "--coordinator {shown}: not a URL; give https://HOST[:PORT]"
        ))
    })?;
    let scheme = match uri.scheme_str() {
        Some("https") => "https",
        Some("http") if insecure_http => "http",
        Some("http") => {
            return Err(usage(
                "--coordinator uses http://, which sends the key unencrypted: use https:// \
                 (or --insecure-http, for a test on loopback)"
                    .into(),
            ));
        }
        _ => return Err(usage("--coordinator must be an https:// URL".into())),
    };
    let authority = uri
        .authority()
        .filter(|a| !a.as_str().contains('@') && !a.host().is_empty())
        .filter(|a| port_is_valid(a.as_str()))
        .ok_or_else(|| {
            usage(format!(
                "--coordinator {shown} must name a host (and no user), and a port from 1 to \
                 65535 if any: https://HOST[:PORT]"
            ))
        })?;
    ureq::http::Uri::builder()
        .scheme(scheme)
        .authority(authority.as_str())
        .path_and_query(path)
        .build()
        .map_err(|e| usage(format!("cannot build the registration URL: {e}")))
}

/// Whether an authority's port, if it has one, is a number from 1 to 65535 (the URI parser
/// drops a port that is not, and the request would go to 443).
fn port_is_valid(authority: &str) -> bool {
    if authority.ends_with(']') {
        return true;
    }
    match authority.rsplit_once(':') {
        None => true,
        Some((_, port)) => port.parse::<u16>().is_ok_and(|p| p != 0),
    }
}

/// The certificates of a PEM file, for `--cacert`.
fn certificates(file: &std::path::Path) -> Result<Vec<ureq::tls::Certificate<'static>>, Refused> {
    let bad =
        |why: String| Refused::new(Exit::DataErr, format!("--cacert {}: {why}", file.display()));
    let pem = std::fs::read(file).map_err(|e| bad(e.to_string()))?;
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => Some(Ok(cert)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// A failure to talk to the coordinator, said as its cause and its fix.
fn unreachable(url: &ureq::http::Uri, error: &ureq::Error) -> Refused {
    let host = url.host().unwrap_or_default();
    let detail = format!("{error:?}");
    let https = url.scheme_str() == Some("https");
    let why = match error {
        ureq::Error::HostNotFound => format!(
            "the name {host} does not resolve (DNS): check --coordinator, or this machine's resolver"
        ),
        ureq::Error::Timeout(_) => format!("{host} did not answer in time ({error})"),
        _ if detail.contains("UnknownIssuer") => format!(
            "{host}'s certificate is signed by an authority this machine does not trust: \
             pass its CA with --cacert FILE (a self-signed coordinator's own certificate)"
        ),
        _ if detail.contains("NotValidForName") => format!(
            "{host}'s certificate is for another name: use the name the certificate is for \
             in --coordinator"
        ),
        _ if detail.contains("Expired") => format!(
            "{host}'s certificate has expired (or this machine's clock is wrong): the \
             coordinator's admin must renew it"
        ),
        _ if detail.contains("Tls")
            || detail.contains("Rustls")
            || detail.contains("peer certificate")
            || (https && detail.contains("UnexpectedEof")) =>
        {
            format!("the TLS handshake with {host} failed ({error}): is it really HTTPS there?")
        }
        ureq::Error::ConnectionFailed | ureq::Error::Io(_) => {
            format!("cannot connect to {host}: is the coordinator up, and the port open? ({error})")
        }
        _ => format!("{error}"),
    };
    Refused::new(
        Exit::Unavailable,
        format!("cannot reach the coordinator at {url}: {why}"),
    )
}

fn local_hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| {
            rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned()
        })
}

/// The installed key at `path`, or `None` after printing every problem with its fix.
fn installed_key(
    path: &std::path::Path,
    principal: &gobuildkey::principal::Principal,
) -> Option<gobuildkey::key::BuildKey> {
    match super::inspect_key_file(path, principal) {
        Ok(key) => Some(key),
        Err(problems) => {
            for problem in problems {
                crate::output::note(&format!("problem: {problem}"));
            }
            None
        }
    }
}
