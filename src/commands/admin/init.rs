//! `gobuildkey init`: create a new master secret, and the policy beside it.

use anyhow::{Context, Result};

use gobuildkey::master::MasterSecret;
use gobuildkey::policy::Policy;
use gobuildkey::policy::actions::{Action, ActionLog};
use gobuildkey::policy::store::Store;
use gobuildkey::secret_file::{self, Existing, ReadError, write_secret_file};

use crate::cli::InitArgs;
use crate::exit::{Exit, Refused};
use crate::output;

/// Draws a master, writes it, creates the policy when there is none, and prints where and
/// the master's fingerprint.
pub fn run(args: &InitArgs) -> Result<Exit> {
    let path = args.path()?;
    let policy_path = args.policy_path()?;
    let store = Store::new(&policy_path)
        .lock_timeout(std::time::Duration::from_secs(args.edit.lock_timeout));
    let master = MasterSecret::generate()?;
    let creates_policy = std::fs::symlink_metadata(&policy_path).is_err();
    let log = ActionLog::beside(&policy_path);
    if creates_policy && log.exists() {
        // The farm had a policy: an empty one now, with the old master brought back later
        // (from FILE.replaced-…), would make every key it revoked verify again.
        return Err(Refused::new(
            Exit::CantCreate,
            format!(
                "the policy {} is missing, but an action log is at {}: this farm had a policy. \
                 Restore it from its backup, or rebuild it with \
                 `gobuildkey policy init --from-log`, then run init again; nothing was changed",
                policy_path.display(),
                log.path().display()
            ),
        )
        .into());
    }
    if args.edit.dry_run {
        output::note(&format!(
            "dry run: nothing was written; a new master would be written to {}{}",
            path.display(),
            if creates_policy {
                format!(" and a new policy to {}", policy_path.display())
            } else {
                String::new()
            }
        ));
        return Ok(Exit::Ok);
    }
    let replaced = if args.force {
        keep_replaced(&path)?
    } else {
        None
    };
    let existing = if args.force {
        Existing::Replace
    } else {
        Existing::Refuse
    };
    write_secret_file(&path, &master.file_contents(), existing)?;
    if let Some(dir) = policy_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        secret_file::create_private_dir(dir)
            .map_err(|error| secret_file::WriteError::CreateDir {
                path: dir.to_owned(),
                error,
            })
            .map_err(gobuildkey::policy::PolicyError::Write)?;
    }
    let lock = store.lock(|holder| super::say_waiting(&store, &args.edit, holder))?;
    let mut action = Action::new("init");
    action.master = Some(master.fingerprint().to_string());
    action.reason.clone_from(&args.edit.reason);
    log.append(&action)?;
    let created = if std::fs::symlink_metadata(&policy_path).is_err() {
        lock.create(&Policy::template(&policy_path))?;
        true
    } else {
        false
    };
    drop(lock);
    let mut human = format!(
        "created master key {}\nfingerprint {}",
        path.display(),
        master.fingerprint()
    );
    if let Some(old) = &replaced {
        human.push_str(&format!("\nthe old master was moved to {}", old.display()));
    }
    human.push_str(&format!(
        "\npolicy {} ({})",
        policy_path.display(),
        if created { "created" } else { "kept as it was" }
    ));
    output::report(
        "init",
        &human,
        &crate::commands::json::Init {
            path: &path,
            fingerprint: master.fingerprint().as_str(),
            replaced: replaced.as_deref(),
            policy: &policy_path,
            policy_created: created,
        },
    );
    Ok(Exit::Ok)
}

/// Before `--force` replaces a master, its content is kept at FILE.replaced-TIMESTAMP
/// (0600): a mistaken `init --force` must not destroy the secret every key depends on.
fn keep_replaced(path: &std::path::Path) -> Result<Option<std::path::PathBuf>> {
    // A link or a folder in the way is refused by the write that follows, as without --force.
    if secret_file::inspect_target(path)? == secret_file::Target::Absent {
        return Ok(None);
    }
    let old = match secret_file::read_secret_file(path, gobuildkey::master::MAX_LEN * 4) {
        Ok(file) => file,
        Err(ReadError::Missing { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let contents = old
        .contents
        .context("the master to replace is larger than a master can be: move it away by hand")?;
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    // Two replacements in one second keep both: `.replaced-STAMP`, `.replaced-STAMP.2` …
    for n in 1..=100 {
        let mut name = path.file_name().unwrap_or_default().to_owned();
        name.push(format!(".replaced-{stamp}"));
        if n > 1 {
            name.push(format!(".{n}"));
        }
        let kept = path.with_file_name(name);
        match write_secret_file(&kept, &contents, Existing::Refuse) {
            Err(secret_file::WriteError::Exists { .. }) => {}
            other => return other.map(|()| Some(kept)).map_err(Into::into),
        }
    }
    anyhow::bail!(
        "too many replaced masters from this second beside {}",
        path.display()
    )
}
