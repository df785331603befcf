//! `gobuildkey install`: put a key where the builder agent reads it.

use anyhow::{Context, Result};

use gobuildkey::keys::{BuildKey, MAX_KEY_INPUT};
use gobuildkey::paths::{self, AgentEnv, Candidates};
use gobuildkey::secret_file::{self, Existing, Target, WriteError};

use crate::cli::InstallArgs;
use crate::exit::Exit;

/// Writes the key to the agent's key file, unless the same key is already there.
pub fn run(args: &InstallArgs) -> Result<Exit> {
    let key = super::read_well_formed_key(args.key_file.as_deref())?;
    let env = AgentEnv::from_process();
    let candidates = Candidates::new(&args.principal, &env);
    let target = if args.legacy {
        candidates.legacy
    } else {
        candidates.primary.0
    };

    let existing = match secret_file::inspect_target(&target)? {
        Target::Absent => Existing::Refuse,
        Target::File => {
            let installed = secret_file::read_secret_file(&target, MAX_KEY_INPUT).ok();
            let same = installed
                .as_ref()
                .and_then(|file| file.contents.as_deref())
                .and_then(|contents| BuildKey::parse(contents).ok())
                .is_some_and(|installed| installed.ct_eq(&key));
            if same {
                let mode = installed.as_ref().and_then(|f| f.mode);
                report(
                    args,
                    &target,
                    &key,
                    mode,
                    false,
                    &format!(
                        "{} already holds this key (fingerprint {}); left as it is",
                        target.display(),
                        key.fingerprint()
                    ),
                );
                if mode.is_some_and(secret_file::is_too_open) {
                    crate::output::note(&format!(
                        "warning: {} is readable or writable by others: run `chmod 600 {}`",
                        target.display(),
                        target.display()
                    ));
                }
                warn_where_the_agent_reads(args, &env, &target);
                return Ok(Exit::Ok);
            }
            if !args.force {
                return Err(WriteError::Exists { path: target })
                    .context("a different key is installed");
            }
            Existing::Replace
        }
    };
    secret_file::write_secret_file(
        &target,
        &secret_file::secret_line(key.expose_secret().as_bytes()),
        existing,
    )?;
    report(
        args,
        &target,
        &key,
        Some(secret_file::FILE_MODE),
        true,
        &format!(
            "installed the key of {} at {} (fingerprint {})",
            args.principal,
            target.display(),
            key.fingerprint()
        ),
    );
    warn_where_the_agent_reads(args, &env, &target);
    Ok(Exit::Ok)
}

/// The result: `human` for people, or the object of docs/json.md.
fn report(
    args: &InstallArgs,
    path: &std::path::Path,
    key: &BuildKey,
    mode: Option<u32>,
    written: bool,
    human: &str,
) {
    crate::output::report(
        "install",
        human,
        serde_json::json!({
            "principal": args.principal.as_str(),
            "path": path,
            "fingerprint": key.fingerprint().as_str(),
            "mode": mode.map(|m| format!("{:04o}", m & 0o7777)),
            "written": written,
        }),
    );
}

/// Says so when the agent will read another file than the one just written, and what else
/// the owner should know (`GO_BUILD_KEY_DELETE_AFTER_READ`, a relative `HOME`).
fn warn_where_the_agent_reads(args: &InstallArgs, env: &AgentEnv, written: &std::path::Path) {
    let loc = paths::locate(&args.principal, env);
    if args.legacy {
        crate::output::note(&format!(
            "note: {} is for buildlets built before 2019 (started with -reverse and one builder \
             type), which read it when {} does not exist; buildlets built since 2019 do not \
             read it: they read {}",
            written.display(),
            loc.path.display(),
            loc.path.display()
        ));
        if loc.exists {
            crate::output::note(&format!(
                "warning: {} exists, so no buildlet reads {}: see `gobuildkey path --explain {}`",
                loc.path.display(),
                written.display(),
                args.principal
            ));
        }
    } else if loc.path != written {
        crate::output::note(&format!(
            "warning: the agent will read {} ({}), not {}: see `gobuildkey path --explain {}`",
            loc.path.display(),
            loc.rule,
            written.display(),
            args.principal
        ));
    }
    for note in super::agent_notes(env) {
        crate::output::note(&format!("note: {note}"));
    }
}
