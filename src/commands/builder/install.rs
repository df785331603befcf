//! `gobuildkey install`: put a key where the builder agent reads it.

use anyhow::{Context, Result};

use gobuildkey::key::{BuildKey, MAX_KEY_INPUT};
use gobuildkey::paths::{self, AgentEnv, Candidates};
use gobuildkey::secret_file::{self, Existing, Target, WriteError};

use crate::cli::InstallArgs;
use crate::exit::Exit;

/// Writes the key to the agent's key file, unless the same key is already there.
pub fn run(args: &InstallArgs) -> Result<Exit> {
    let key = crate::commands::read_well_formed_key(args.key_file.as_deref())?;
    if let Some(name) = &args.user {
        return install_as(name, &key, args);
    }
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
        &crate::commands::json::Install {
            principal: args.principal.as_str(),
            path,
            fingerprint: key.fingerprint().as_str(),
            mode: mode.map(|m| format!("{:04o}", m & 0o7777)),
            written,
        },
    );
}

/// `install --user NAME`: runs this same `install` again as NAME, with NAME's home as
/// `HOME` and the key on its standard input, so that every file-system access is NAME's.
#[cfg(unix)]
fn install_as(name: &str, key: &BuildKey, args: &InstallArgs) -> Result<Exit> {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    if !rustix::process::geteuid().is_root() {
        return Err(crate::exit::Refused::new(
            Exit::NoPerm,
            "--user installs for another user, which only root can: run it as root, or run \
             `gobuildkey install` as that user",
        )
        .into());
    }
    let user = nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .ok_or_else(|| {
            crate::exit::Refused::new(
                Exit::Usage,
                format!(
                    "no user {} in the password database",
                    gobuildkey::text::escape_for_terminal(name, 64)
                ),
            )
        })?;
    // The child gets a fresh environment: root's variables are no business of NAME's (who
    // could read them in /proc while it runs). Only what decides the target is passed on.
    let key_path = std::env::var_os(paths::ENV_KEY_PATH).filter(|v| !v.is_empty());
    crate::output::note(&format!(
        "installing as {} (uid {}), with HOME={} from the password database{}",
        user.name,
        user.uid,
        user.dir.display(),
        match &key_path {
            Some(path) => format!(
                "; {}={} is passed on, so the key goes there, not to that home",
                paths::ENV_KEY_PATH,
                std::path::Path::new(path).display()
            ),
            None => ": the buildlet reads $HOME, so start it with that HOME".to_owned(),
        }
    ));
    let mut child = std::process::Command::new(std::env::current_exe()?);
    child.arg0("gobuildkey");
    match crate::output::mode() {
        crate::output::Mode::Json => {
            child.arg("--json");
        }
        crate::output::Mode::Quiet => {
            child.arg("-q");
        }
        crate::output::Mode::Human => {}
    }
    child.arg("install").arg(args.principal.as_str());
    if args.force {
        child.arg("--force");
    }
    if args.legacy {
        child.arg("--legacy");
    }
    child
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin");
    for (name, value) in std::env::vars_os() {
        let passed = name == paths::ENV_DELETE_AFTER_READ
            || name == "NO_COLOR"
            || name
                .to_str()
                .is_some_and(|n| n == "LANG" || n.starts_with("LC_"));
        if passed {
            child.env(name, value);
        }
    }
    if let Some(path) = &key_path {
        child.env(paths::ENV_KEY_PATH, path);
    }
    // Root's supplementary groups are dropped by the standard library when it sets the uid.
    let mut child = child
        .env("HOME", &user.dir)
        .uid(user.uid.as_raw())
        .gid(user.gid.as_raw())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .context("cannot start the install as the other user")?;
    if let Some(mut stdin) = child.stdin.take() {
        let line = secret_file::secret_line(key.expose_secret().as_bytes());
        // The child may already have refused (its error says why).
        let _ = stdin.write_all(&line);
    }
    let status = child.wait()?;
    Ok(match status.code() {
        Some(0) => Exit::Ok,
        Some(code) => Exit::ALL
            .into_iter()
            .find(|exit| i32::from(exit.code()) == code)
            .unwrap_or(Exit::Software),
        None => Exit::Software,
    })
}

#[cfg(not(unix))]
fn install_as(_: &str, _: &BuildKey, _: &InstallArgs) -> Result<Exit> {
    Err(crate::exit::Refused::new(Exit::Usage, "--user is for unix").into())
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
