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
            serde_json::json!({
                "principal": principal.as_str(),
                "key_file": loc.path,
                "fingerprint": null,
                "coordinator": null,
                "status": null,
                "meaning": "the key file has a problem (see standard error); nothing was sent",
                "accepted": false,
            }),
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
    let url = format!("{}{}", args.coordinator.trim_end_matches('/'), args.path);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(args.timeout)))
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .provider(ureq::tls::TlsProvider::Rustls)
                .root_certs(ureq::tls::RootCerts::PlatformVerifier)
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
        .map_err(|e| {
            Refused::new(
                Exit::Unavailable,
                format!("cannot reach the coordinator at {url}: {e}"),
            )
        })?;
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
    let said = gobuildkey::keys::escape_for_terminal(first_line, 200);
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
        serde_json::json!({
            "principal": principal.as_str(),
            "key_file": loc.path,
            "fingerprint": key.fingerprint().as_str(),
            "coordinator": url,
            "status": status,
            "meaning": meaning,
            "accepted": exit == Exit::Ok,
        }),
    );
    Ok(exit)
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
    principal: &gobuildkey::keys::Principal,
) -> Option<gobuildkey::keys::BuildKey> {
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
