//! The coordinators' commands: `verify` (one key, or `--batch` as a coprocess) and `serve`;
//! and what the long-lived ones share: loading the verifier narrowed to `--alg` and
//! `--kind`, and reloading it on SIGHUP and file changes.

#[cfg(all(feature = "serve", unix))]
pub mod serve;
pub mod verify;

use anyhow::{Context, Result};

use gobuildkey::key::Algorithm;
use gobuildkey::verifier::Verifier;

use crate::cli::MasterArgs;

/// Starts the reloads of `live` by `load` (see `gobuildkey::reload`), watching the master
/// file (when the master is a file) and the policy unless `watch` is false, for `serve`
/// and `verify --batch`.
#[cfg(unix)]
fn reloader<T: Send + Sync + 'static>(
    master: &MasterArgs,
    watch: bool,
    live: std::sync::Arc<gobuildkey::reload::Live<T>>,
    load: impl FnMut() -> std::result::Result<T, String> + Send + 'static,
    events: impl FnMut(gobuildkey::reload::Event) + Send + 'static,
) -> Result<gobuildkey::reload::Reloader> {
    let mut reloader = gobuildkey::reload::Reloader::spawn(live, load, events)
        .context("cannot start the reloading thread")?;
    if !watch {
        return Ok(reloader);
    }
    let mut files = vec![master.policy_path()?];
    if let gobuildkey::master::MasterSource::File(path) = master.source()? {
        files.push(path);
    }
    if let Err(e) = reloader.watch(&files) {
        // Still looked at every second: slower, not blind.
        crate::output::note(&format!(
            "gobuildkey: warning: cannot watch {} with inotify ({e}): changes are noticed \
             by looking at the files every second instead; raise \
             fs.inotify.max_user_instances and fs.inotify.max_user_watches",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(" and ")
        ));
    }
    Ok(reloader)
}

/// The verifier of a long-lived command (`serve`, `verify --batch`): the masters and the
/// policy, narrowed to `alg` and `kind`. At start (`at_start`) an `alg` the policy accepts
/// for nobody is a usage error ([`load_verifier`]); a reload only narrows: it must never
/// fail for that (after `end-grace --alg`), and so freeze a state that lacks every
/// revocation made since.
#[cfg(unix)]
fn load_narrowed(
    master: &MasterArgs,
    alg: Option<Algorithm>,
    kind: Option<gobuildkey::principal::Kind>,
    skew: std::time::Duration,
    at_start: bool,
) -> Result<Verifier> {
    let verifier = match alg {
        Some(alg) if at_start => super::load_verifier(master, Some(alg), None)?,
        Some(alg) => super::load_verifier(master, None, None)?.only_algorithm(alg),
        None => super::load_verifier(master, None, None)?,
    };
    let verifier = verifier.with_clock_skew(skew);
    Ok(match kind {
        Some(kind) => verifier.only_kind(kind),
        None => verifier,
    })
}

/// A reload's error on one line (`{:#}` of anyhow, the lines of a parser's message
/// joined), for logs and health answers that others read: anything in it that looks like a
/// key (one pasted into the policy by mistake, quoted back as a field name) is redacted.
#[cfg(unix)]
fn one_line(error: &impl std::fmt::Display) -> String {
    let line = format!("{error:#}")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    gobuildkey::key::redact_keys(&line)
}
