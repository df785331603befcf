//! Why the policy cannot be used: [`PolicyError`], one variant per way it fails, each
//! message naming the file (and the line and column when the fault is in its text).

use std::path::PathBuf;

use crate::secret_file::{ReadError, WriteError};

/// Why the policy cannot be used. Verification does not happen without it.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// There is no policy file. It is required: without it every revocation it held would
    /// be forgotten.
    #[error(
        "policy {} does not exist, and without it every key it revoked would verify again: \
         restore it from its backup (or `gobuildkey policy init --from-log` rebuilds it from \
         the action log beside it); for a new farm, `gobuildkey policy init` creates an empty one",
        path.display()
    )]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The file cannot be read, or is not a regular file.
    #[error("cannot read the policy: {0}")]
    Read(ReadError),
    /// Someone but root and this user could have written or replaced the file, and so
    /// reinstated a principal or added a keyring command to run.
    #[error("refusing to use the policy: {0}")]
    Untrusted(Box<crate::trust::TrustError>),
    /// Not TOML.
    #[error("policy {path}, line {}, column {}: not valid TOML: {message}", at.0, at.1)]
    Syntax {
        /// The file.
        path: String,
        /// Line and column, 1-based.
        at: (usize, usize),
        /// The parser's words, without the quoted line.
        message: String,
    },
    /// TOML, but not a policy.
    #[error("policy {path}, line {}, column {}: {message}", at.0, at.1)]
    Invalid {
        /// The file.
        path: String,
        /// Line and column, 1-based.
        at: (usize, usize),
        /// What is wrong.
        message: String,
    },
    /// A previous master of the keyring cannot be loaded.
    #[error("policy {path}, line {}, column {}: previous master {source_shown}: {error}", at.0, at.1)]
    Master {
        /// The file.
        path: String,
        /// Line and column of the entry, 1-based.
        at: (usize, usize),
        /// The entry, as it can be shown.
        source_shown: String,
        /// Why it cannot be loaded.
        error: crate::master::MasterError,
    },
    /// No policy file could be named (no `--policy`, no home folder to find it in).
    #[error("no policy file: pass --policy FILE (or set HOME)")]
    NoFile,
    /// `GOBUILDKEY_POLICY` is set to nothing and no `--policy` names the file.
    #[error(
        "GOBUILDKEY_POLICY is set but empty: name the policy file in it, or unset it to use \
         gobuildkey.toml beside the master"
    )]
    EmptyVariable,
    /// The file could not be written.
    #[error("cannot write the policy: {0}")]
    Write(WriteError),
    /// Another edit held the lock for longer than the edit would wait.
    #[error(
        "the policy is locked by another edit ({}) and was still locked after {}s: \
         nothing was changed; try again when it is done (or raise --lock-timeout)",
        pid.map_or_else(|| "lock file ".to_owned() + &path.display().to_string(), |pid| format!("pid {pid}, lock file {}", path.display())),
        waited.as_secs_f64()
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The holder's process id, when it left one.
        pid: Option<u32>,
        /// How long this edit waited.
        waited: std::time::Duration,
    },
    /// The lock file cannot be opened or locked.
    #[error("cannot lock the policy with {}: {error}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// The action log beside the policy cannot be read or appended to. An edit that cannot
    /// be logged is not made.
    #[error("action log {}: {error}", path.display())]
    ActionLog {
        /// The log.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// The policy is a symbolic link: read through, never edited through.
    #[error(
        "policy {} is a symbolic link (a mounted ConfigMap or Secret?): gobuildkey reads \
         through it but never edits through it: make the change where the file comes from",
        path.display()
    )]
    EditThroughLink {
        /// The link.
        path: PathBuf,
    },
    /// The policy belongs to another user, and only root could keep it theirs.
    #[error(
        "policy {} belongs to uid {owner}, not to you (uid {uid}): an edit would make it \
         yours; run the edit as that user (`sudo -u#{owner} gobuildkey …`) or as root",
        path.display()
    )]
    NotOwner {
        /// The file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The user running gobuildkey.
        uid: u32,
    },
}

impl From<WriteError> for PolicyError {
    fn from(error: WriteError) -> Self {
        Self::Write(error)
    }
}
