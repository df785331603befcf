//! The policy file: each principal's generation, grace period and revocation, and the
//! previous masters that verification still accepts.
//!
//! ```toml
//! [keyring]
//! # Masters accepted besides the primary; a relative path is relative to this file.
//! previous = [{ file = "gobuilder-master.2025.key" }, { command = "pass show farm/old" }]
//!
//! [principals.host-linux-arm-aws]
//! generation = 2                        # keys of generation 2 verify ...
//! keep_previous = 2026-12-01T00:00:00Z  # ... and of generation 1 until then (or `true`)
//! minted_under = "SHA256:1f0c2a9d4b7e3c55"
//!
//! [principals.host-openbsd-amd64-70]
//! revoked = true                        # no key of it verifies
//! ```
//!
//! A principal the file does not name is at generation 0 with nothing revoked: exactly the
//! keys of Go's `genbuilderkey`. The file itself is required: a missing or empty policy is
//! an error, never "nothing revoked" (whoever deletes it must not revive every revoked
//! key). `gobuildkey init` and `gobuildkey policy init` create it.
//!
//! The tool edits the file through `toml_edit`, so comments, order and layout of hand edits
//! survive; every edit goes through [`store::Store`] (a lock, a re-read under it, an atomic
//! replace that keeps the file's owner and mode), and the file is refused when others may
//! write it (they could reinstate a principal or add a master). Any error in it — syntax,
//! an unknown field, a wrong type — names the file, line and column, and no verification
//! happens (fail closed).

pub mod actions;
mod edit;
mod parse;
pub mod store;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use toml_edit::DocumentMut;

use parse::{Ctx, timestamp_of};

use crate::key::{Algorithm, AlgorithmSet};
use crate::master::{MasterSecret, MasterSource};
use crate::principal::Principal;
use crate::secret_file::{self, ReadError, WriteError};

/// The policy's file name, beside the master key file by default.
pub const DEFAULT_FILE_NAME: &str = "gobuildkey.toml";
/// The environment variable naming the policy file, read when no flag names it
/// ([`named_path`]).
pub const ENV_FILE: &str = "GOBUILDKEY_POLICY";

/// The policy file a caller named: `explicit` (a flag), else [`ENV_FILE`] when set and not
/// empty. `None`: the policy is the one [`path_beside`] the master.
///
/// ```
/// use gobuildkey::policy::named_path;
///
/// assert_eq!(named_path(Some("/etc/farm/gobuildkey.toml".into())), Some("/etc/farm/gobuildkey.toml".into()));
/// ```
pub fn named_path(explicit: Option<PathBuf>) -> Option<PathBuf> {
    explicit.or_else(|| {
        std::env::var_os(ENV_FILE)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
    })
}

/// The policy that goes with `master` when none is named: [`DEFAULT_FILE_NAME`] beside the
/// master key file, or beside the default master file
/// ([`crate::master::default_path`]) when the master comes from a command.
///
/// ```
/// use gobuildkey::master::MasterSource;
/// use gobuildkey::policy::path_beside;
///
/// let master = MasterSource::File("/etc/farm/master.key".into());
/// assert_eq!(path_beside(&master)?, std::path::Path::new("/etc/farm/gobuildkey.toml"));
/// # Ok::<(), gobuildkey::policy::PolicyError>(())
/// ```
///
/// # Errors
/// [`PolicyError::NoFile`] for a command master when there is no home folder.
pub fn path_beside(master: &MasterSource) -> Result<PathBuf, PolicyError> {
    let file = match master {
        MasterSource::File(path) => path.clone(),
        MasterSource::Command(_) => {
            crate::master::default_path().map_err(|_| PolicyError::NoFile)?
        }
    };
    Ok(file.with_file_name(DEFAULT_FILE_NAME))
}
/// The largest policy file read.
pub const MAX_LEN: usize = 4 << 20;

const TEMPLATE: &str = "\
# gobuildkey policy: principals' generations, grace periods and revocations, and the
# previous masters that verification still accepts. gobuildkey edits it (mint, rotate,
# revoke, reinstate, end-grace, master); comments and hand edits are kept.
[principals]
";

/// How long a principal's previous generation stays valid after a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Grace {
    /// Not at all: the previous key stopped verifying at the rotation.
    #[default]
    None,
    /// Until the admin ends it (`gobuildkey end-grace`).
    Open,
    /// Until this moment.
    Until(Timestamp),
}

impl Grace {
    /// Whether the previous generation is accepted at `now`.
    #[must_use]
    pub fn active_at(self, now: Timestamp) -> bool {
        match self {
            Self::None => false,
            Self::Open => true,
            Self::Until(end) => now < end,
        }
    }
}

impl fmt::Display for Grace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("-"),
            Self::Open => f.write_str("until ended"),
            Self::Until(end) => write!(f, "until {end}"),
        }
    }
}

/// What the policy says of one principal. The default is a principal it does not name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrincipalState {
    /// The current generation: its keys verify. 0 is the key of `genbuilderkey`.
    pub generation: u64,
    /// Whether the key of generation − 1 still verifies.
    pub keep_previous: Grace,
    /// Whether every key of the principal is refused.
    pub revoked: bool,
    /// The fingerprint of the master the current key was last minted under.
    pub minted_under: Option<String>,
    /// The algorithms its keys may be in; `None`: the policy's default algorithm only.
    pub algorithms: Option<AlgorithmSet>,
}

/// A previous master named in the keyring, and where in the file it is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyringEntry {
    /// The master's file (resolved against the policy's folder) or command.
    pub source: MasterSource,
    /// The algorithms keys were minted with under it; `None`: any.
    pub algorithms: Option<AlgorithmSet>,
    /// Where the entry is: 1-based line and column.
    pub at: (usize, usize),
}

/// A parsed policy, and the document it came from for edits that keep its layout.
#[derive(Debug, Clone)]
pub struct Policy {
    path: Option<PathBuf>,
    doc: DocumentMut,
    algorithm: Algorithm,
    principals: BTreeMap<Principal, PrincipalState>,
    keyring: Vec<KeyringEntry>,
}

impl Default for Policy {
    fn default() -> Self {
        Self::none()
    }
}

impl Policy {
    /// No policy: every principal at generation 0, nothing revoked, no previous master.
    #[must_use]
    pub fn none() -> Self {
        Self {
            path: None,
            doc: TEMPLATE.parse().unwrap_or_default(),
            algorithm: Algorithm::default(),
            principals: BTreeMap::new(),
            keyring: Vec::new(),
        }
    }

    /// A new policy for the file at `path`, naming no principal: what `gobuildkey init`
    /// and `gobuildkey policy init` write ([`store::Store::create`]). Its text is never
    /// empty, so an empty file can be told apart as a truncated one.
    #[must_use]
    pub fn template(path: &Path) -> Self {
        Self {
            path: Some(path.to_owned()),
            ..Self::none()
        }
    }

    /// Loads the policy at `path`. The file must exist: a missing policy is an error, not
    /// an empty policy.
    ///
    /// ```
    /// use gobuildkey::policy::{Policy, PolicyError, PrincipalState, store::Store};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("gobuildkey.toml");
    /// assert!(matches!(Policy::load(&path), Err(PolicyError::Missing { .. })));
    ///
    /// Store::new(&path).create(&Policy::template(&path))?;
    /// let policy = Policy::load(&path)?;
    /// let host = "host-linux-arm-aws".parse()?;
    /// assert_eq!(policy.state(&host), PrincipalState::default());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`PolicyError`] when the file is missing, empty, cannot be read, may be written by
    /// others, or is not a valid policy.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let missing = || PolicyError::Missing {
            path: path.to_owned(),
        };
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
            // Whoever could write the policy could reinstate a principal, or add a keyring
            // `command` for gobuildkey to run: checked before a byte of it is read.
            Ok(meta) if meta.is_file() => crate::trust::check_file(path, "the policy")
                .map_err(|e| PolicyError::Untrusted(Box::new(e)))?,
            // Not a regular file, or not to be looked at: the read below says which.
            _ => {}
        }
        let file = match secret_file::read_secret_file(path, MAX_LEN) {
            Ok(file) => file,
            Err(ReadError::Missing { .. }) => return Err(missing()),
            Err(e) => return Err(PolicyError::Read(e)),
        };
        let contents = file.contents.ok_or_else(|| PolicyError::Invalid {
            path: path.display().to_string(),
            at: (1, 1),
            message: format!("the file is larger than {MAX_LEN} bytes"),
        })?;
        let text = String::from_utf8(contents.to_vec()).map_err(|_| PolicyError::Invalid {
            path: path.display().to_string(),
            at: (1, 1),
            message: "the file is not UTF-8".into(),
        })?;
        if text.is_empty() {
            return Err(PolicyError::Invalid {
                path: path.display().to_string(),
                at: (1, 1),
                message: "the file is empty: a policy gobuildkey writes never is, so it was \
                          truncated; restore it from its backup"
                    .into(),
            });
        }
        Self::parse(&text, Some(path))
    }

    /// Parses policy text; `path` names it in errors and anchors relative master paths.
    ///
    /// # Errors
    /// [`PolicyError::Syntax`] or [`PolicyError::Invalid`], with the line and column.
    pub fn parse(text: &str, path: Option<&Path>) -> Result<Self, PolicyError> {
        let shown = path.map_or_else(|| "policy".to_owned(), |p| p.display().to_string());
        let ctx = Ctx {
            raw: text,
            path: &shown,
            dir: path.and_then(Path::parent).unwrap_or(Path::new("")),
        };
        // The parser's own message quotes the offending line; that line may hold something
        // pasted by mistake (a key), so only its position and the parser's words are kept.
        let parsed = toml_edit::Document::parse(text).map_err(|e| PolicyError::Syntax {
            path: shown.clone(),
            at: ctx.position(e.span()),
            message: e.message().trim_end().to_owned(),
        })?;
        let mut principals = BTreeMap::new();
        let mut keyring = Vec::new();
        let mut algorithm = Algorithm::default();
        for (key, item) in parsed.iter() {
            match key {
                "algorithm" => algorithm = ctx.algorithm(item, "`algorithm`")?,
                "principals" => principals = ctx.principals(item)?,
                "keyring" => keyring = ctx.keyring(item)?,
                other => {
                    let at = parsed.key(other).and_then(toml_edit::Key::span);
                    return Err(ctx.invalid(
                        at,
                        format!(
                            "unknown field {}: expected `algorithm`, `keyring` or `principals`",
                            crate::text::escape_for_terminal(other, 64)
                        ),
                    ));
                }
            }
        }
        Ok(Self {
            path: path.map(Path::to_owned),
            doc: parsed.into_mut(),
            algorithm,
            principals,
            keyring,
        })
    }

    /// Where the policy lives, if it has a file.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// What the policy says of `principal` (the default when it does not name it).
    #[must_use]
    pub fn state(&self, principal: &Principal) -> PrincipalState {
        self.principals.get(principal).cloned().unwrap_or_default()
    }

    /// The farm's default algorithm: what `mint` mints, and what a principal with no
    /// recorded algorithms accepts (the `algorithm` field; HMAC-SHA256 when absent).
    #[must_use]
    pub fn default_algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The algorithms `principal`'s keys may be in: its recorded set, else the default.
    ///
    /// ```
    /// use gobuildkey::key::{Algorithm, AlgorithmSet};
    /// use gobuildkey::policy::Policy;
    ///
    /// let policy = Policy::parse(
    ///     "[principals.host-old]\nalgorithms = [\"hmac-md5\", \"hmac-sha256\"]\n",
    ///     None,
    /// )?;
    /// assert_eq!(policy.accepted_algorithms(&"host-old".parse()?), AlgorithmSet::ALL);
    /// assert_eq!(
    ///     policy.accepted_algorithms(&"host-new".parse()?),
    ///     AlgorithmSet::only(Algorithm::HmacSha256)
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn accepted_algorithms(&self, principal: &Principal) -> AlgorithmSet {
        self.principals
            .get(principal)
            .and_then(|state| state.algorithms)
            .unwrap_or(AlgorithmSet::only(self.algorithm))
    }

    /// Every algorithm the policy accepts for some principal, the default included.
    #[must_use]
    pub fn all_algorithms(&self) -> AlgorithmSet {
        self.principals
            .values()
            .filter_map(|state| state.algorithms)
            .fold(AlgorithmSet::only(self.algorithm), AlgorithmSet::union)
    }

    /// What the policy says of `principal`, without a copy; `None` means the defaults.
    #[must_use]
    pub fn state_ref(&self, principal: &Principal) -> Option<&PrincipalState> {
        self.principals.get(principal)
    }

    /// Every principal the policy names, in order.
    pub fn principals(&self) -> impl Iterator<Item = (&Principal, &PrincipalState)> {
        self.principals.iter()
    }

    /// The previous masters, in the file's order.
    #[must_use]
    pub fn keyring(&self) -> &[KeyringEntry] {
        &self.keyring
    }

    /// Loads every previous master of the keyring, in order. Fails closed: an entry that
    /// cannot be loaded is an error naming its line and column, and so is a master that two
    /// entries lead to (through two files or commands): retiring one would leave the other.
    ///
    /// A keyring `command` has [`crate::master::DEFAULT_COMMAND_TIMEOUT`] to finish.
    ///
    /// # Errors
    /// [`PolicyError::Master`], [`PolicyError::Invalid`].
    pub fn load_keyring(&self) -> Result<Vec<(&KeyringEntry, MasterSecret)>, PolicyError> {
        self.load_keyring_within(crate::master::DEFAULT_COMMAND_TIMEOUT)
    }

    /// [`Policy::load_keyring`], giving each keyring `command` `timeout` to finish
    /// ([`MasterSource::load_within`]).
    ///
    /// # Errors
    /// [`PolicyError::Master`], [`PolicyError::Invalid`].
    pub fn load_keyring_within(
        &self,
        timeout: std::time::Duration,
    ) -> Result<Vec<(&KeyringEntry, MasterSecret)>, PolicyError> {
        let mut loaded: Vec<(&KeyringEntry, MasterSecret)> = Vec::with_capacity(self.keyring.len());
        for entry in &self.keyring {
            let master =
                entry
                    .source
                    .load_within(timeout)
                    .map_err(|error| PolicyError::Master {
                        path: self.shown_path(),
                        at: entry.at,
                        source_shown: entry.source.to_string(),
                        error,
                    })?;
            let fingerprint = master.fingerprint();
            if let Some((first, _)) = loaded.iter().find(|(_, m)| m.fingerprint() == fingerprint) {
                return Err(PolicyError::Invalid {
                    path: self.shown_path(),
                    at: entry.at,
                    message: format!(
                        "the keyring names the master {fingerprint} twice (first on line {}): \
                         remove one entry",
                        first.at.0
                    ),
                });
            }
            loaded.push((entry, master));
        }
        Ok(loaded)
    }

    /// The document as text, as [`store::Lock::write`] writes it.
    #[must_use]
    pub fn to_text(&self) -> String {
        self.doc.to_string()
    }

    pub(crate) fn shown_path(&self) -> String {
        self.path
            .as_deref()
            .map_or_else(|| "policy".to_owned(), |p| p.display().to_string())
    }

    /// Rebuilds the model from the edited document, so the two never disagree and every
    /// edit passes the same checks as a loaded file.
    pub(crate) fn reparse(&mut self) -> Result<(), PolicyError> {
        let text = self.doc.to_string();
        *self = Self::parse(&text, self.path.as_deref())?;
        Ok(())
    }
}

/// Parses a `--keep-previous-until` value: an RFC 3339 date-time with an offset, or a date
/// (00:00 UTC of that day).
///
/// ```
/// use gobuildkey::policy::parse_moment;
///
/// assert_eq!(parse_moment("2026-12-01")?.to_string(), "2026-12-01T00:00:00Z");
/// assert!(parse_moment("2026-12-01T10:00:00+02:00").is_ok());
/// assert!(parse_moment("next tuesday").is_err());
/// # Ok::<(), String>(())
/// ```
///
/// # Errors
/// A message saying what is accepted.
pub fn parse_moment(text: &str) -> Result<Timestamp, String> {
    let as_toml = text
        .parse::<toml_edit::Datetime>()
        .ok()
        .and_then(|dt| timestamp_of(&dt));
    as_toml.ok_or_else(|| {
        format!("`{text}` is not a date (2026-12-01) or a date and time with an offset (2026-12-01T12:00:00Z)")
    })
}

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn p(name: &str) -> Principal {
        name.parse().unwrap()
    }

    #[test]
    fn parses_every_field() {
        let policy = Policy::parse(
            r#"
[keyring]
previous = [{ file = "old.key" }, { command = "pass show old" }]

[principals.host-a]
generation = 3
keep_previous = true
minted_under = "SHA256:0011223344556677"

[principals."host-b.x"]
revoked = true
keep_previous = 2026-12-01

[principals.host-c]
keep_previous = 2026-12-01T10:00:00+02:00
"#,
            Some(Path::new("/etc/farm/gobuildkey.toml")),
        )
        .unwrap();
        let a = policy.state(&p("host-a"));
        assert_eq!(a.generation, 3);
        assert_eq!(a.keep_previous, Grace::Open);
        assert_eq!(a.minted_under.as_deref(), Some("SHA256:0011223344556677"));
        let b = policy.state(&p("host-b.x"));
        assert!(b.revoked);
        assert_eq!(
            b.keep_previous,
            Grace::Until("2026-12-01T00:00:00Z".parse().unwrap())
        );
        assert_eq!(
            policy.state(&p("host-c")).keep_previous,
            Grace::Until("2026-12-01T08:00:00Z".parse().unwrap())
        );
        assert_eq!(policy.state(&p("host-z")), PrincipalState::default());
        assert_eq!(
            policy.keyring()[0].source,
            MasterSource::File("/etc/farm/old.key".into())
        );
        assert_eq!(policy.keyring()[0].at, (3, 13));
        assert_eq!(
            policy.keyring()[1].source,
            MasterSource::Command("pass show old".into())
        );
    }

    #[test]
    fn array_of_tables_keyring() {
        let policy = Policy::parse("[[keyring.previous]]\nfile = \"a.key\"\n", None).unwrap();
        assert_eq!(policy.keyring().len(), 1);
    }

    #[test]
    fn errors_name_line_and_column() {
        let cases = [
            (
                "[principals.host-a]\ngeneration = \"two\"\n",
                (2, 14),
                "whole number",
            ),
            (
                "[principals.host-a]\ngeneration = -1\n",
                (2, 14),
                "whole number",
            ),
            (
                "[principals.host-a]\ngenration = 1\n",
                (2, 1),
                "unknown field \"genration\"",
            ),
            ("[principals.Host-A]\n", (1, 13), "invalid principal"),
            (
                "[principals.host-a]\nrevoked = \"yes\"\n",
                (2, 11),
                "true or false",
            ),
            (
                "[principals.host-a]\nkeep_previous = 2026-12-01T10:00:00\n",
                (2, 17),
                "offset",
            ),
            ("[keyring]\nprevious = [\"old.key\"]\n", (2, 13), "file = "),
            (
                "[keyring]\nprevious = [{ file = \"a\", command = \"b\" }]\n",
                (2, 13),
                "file = ",
            ),
            ("[keyring]\nold = 1\n", (2, 1), "unknown field \"old\""),
            ("\n\nmasters = 1\n", (3, 1), "unknown field \"masters\""),
            ("principals = 1\n", (1, 14), "must be a table"),
        ];
        for (text, at, message) in cases {
            let err = Policy::parse(text, Some(Path::new("p.toml"))).unwrap_err();
            let PolicyError::Invalid { at: got, .. } = &err else {
                panic!("{text:?}: {err}")
            };
            assert_eq!(*got, at, "{text:?}: {err}");
            assert!(err.to_string().contains(message), "{text:?}: {err}");
            assert!(err.to_string().contains("p.toml"), "{err}");
        }
    }

    #[test]
    fn syntax_errors_and_duplicates_name_the_place() {
        for text in [
            "[principals.host-a]\ngeneration = 1\ngeneration = 2\n",
            "[principals.host-a]\n[principals.host-a]\n",
            "[principals\n",
        ] {
            let err = Policy::parse(text, Some(Path::new("p.toml"))).unwrap_err();
            assert!(matches!(err, PolicyError::Syntax { .. }), "{err}");
            assert!(err.to_string().contains("line"), "{err}");
            // The offending line is not quoted back.
            assert!(!err.to_string().contains("generation = 2"), "{err}");
        }
    }

    #[test]
    fn huge_generations_are_refused_or_kept() {
        let ok = Policy::parse("[principals.h]\ngeneration = 9223372036854775807\n", None);
        assert_eq!(ok.unwrap().state(&p("h")).generation, i64::MAX as u64);
        assert!(Policy::parse("[principals.h]\ngeneration = 9223372036854775808\n", None).is_err());
        assert!(Policy::parse("[principals.h]\ngeneration = 1.5\n", None).is_err());
    }

    #[test]
    fn edits_keep_comments_and_order() {
        let text = "\
# farm policy, kept by hand
[principals.host-b]   # the old one
revoked = true        # leaked 2026-11

[principals.host-a]
generation = 1 # rotated
";
        let mut policy = Policy::parse(text, None).unwrap();
        policy
            .set_state(
                &p("host-a"),
                &PrincipalState {
                    generation: 2,
                    keep_previous: Grace::Open,
                    ..Default::default()
                },
            )
            .unwrap();
        policy
            .set_state(
                &p("host-c"),
                &PrincipalState {
                    revoked: true,
                    ..Default::default()
                },
            )
            .unwrap();
        let out = policy.to_text();
        assert!(out.starts_with("# farm policy, kept by hand\n[principals.host-b]   # the old one\nrevoked = true        # leaked 2026-11\n"), "{out}");
        assert!(out.contains("generation = 2 # rotated"), "{out}");
        assert!(
            out.find("host-b") < out.find("host-a") && out.find("host-a") < out.find("host-c"),
            "{out}"
        );
        let again = Policy::parse(&out, None).unwrap();
        assert_eq!(again.state(&p("host-a")).generation, 2);
        assert_eq!(again.state(&p("host-a")).keep_previous, Grace::Open);
        assert!(again.state(&p("host-c")).revoked);
    }

    #[test]
    fn defaults_are_not_written() {
        let mut policy = Policy::none();
        policy
            .set_state(
                &p("host-a"),
                &PrincipalState {
                    revoked: true,
                    ..Default::default()
                },
            )
            .unwrap();
        policy
            .set_state(&p("host-a"), &PrincipalState::default())
            .unwrap();
        let out = policy.to_text();
        assert!(
            !out.contains("revoked =") && !out.contains("host-a"),
            "{out}"
        );
    }

    #[test]
    fn keyring_edits() {
        let mut policy = Policy::parse("", Some(Path::new("/farm/gobuildkey.toml"))).unwrap();
        policy
            .add_previous_master(&MasterSource::File("/farm/old.key".into()), None)
            .unwrap();
        policy
            .add_previous_master(&MasterSource::Command("pass show x".into()), None)
            .unwrap();
        assert!(
            policy.to_text().contains("file = \"old.key\""),
            "{}",
            policy.to_text()
        );
        assert_eq!(policy.keyring().len(), 2);
        policy.remove_previous_master(0).unwrap();
        assert_eq!(
            policy.keyring()[0].source,
            MasterSource::Command("pass show x".into())
        );
        assert!(policy.remove_previous_master(5).is_err());
    }

    #[test]
    fn unknown_fields_are_named_escaped() {
        let err = Policy::parse("\"\\u001b[2Jx\" = 1\n", None)
            .unwrap_err()
            .to_string();
        assert!(!err.contains('\u{1b}'), "{err}");
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn a_keyring_entry_named_twice_is_an_error() {
        for text in [
            "[keyring]\nprevious = [{ file = \"a.key\" }, { command = \"x\" }, { file = \"a.key\" }]\n",
            "[[keyring.previous]]\ncommand = \"x\"\n[[keyring.previous]]\ncommand = \"x\"\n",
        ] {
            let err = Policy::parse(text, Some(Path::new("/farm/p.toml"))).unwrap_err();
            assert!(err.to_string().contains("twice (first on line"), "{err}");
        }
        // The same master through two sources.
        let policy = Policy::parse(
            "[keyring]\nprevious = [\n  { command = \"echo 0123456789abcdef0123456789abcdef\" },\n  { command = \"echo  0123456789abcdef0123456789abcdef\" },\n]\n",
            None,
        )
        .unwrap();
        let err = policy.load_keyring().unwrap_err();
        let PolicyError::Invalid { at, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(at.0, 4, "{err}");
        assert!(err.to_string().contains("first on line 3"), "{err}");
    }

    #[test]
    fn a_missing_or_empty_policy_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        let err = Policy::load(&path).unwrap_err();
        assert!(matches!(err, PolicyError::Missing { .. }), "{err}");
        assert!(err.to_string().contains("backup"), "{err}");
        std::fs::write(&path, "").unwrap();
        let err = Policy::load(&path).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        assert!(!Policy::template(&path).to_text().is_empty());
    }

    #[test]
    fn grace_is_active_until_its_end() {
        let now: Timestamp = "2026-11-24T00:00:00Z".parse().unwrap();
        assert!(!Grace::None.active_at(now));
        assert!(Grace::Open.active_at(now));
        assert!(Grace::Until("2026-11-25T00:00:00Z".parse().unwrap()).active_at(now));
        assert!(!Grace::Until(now).active_at(now));
    }

    #[cfg(unix)]
    #[test]
    fn writable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "[principals]\n").unwrap();
        for (mode, ok) in [(0o600, true), (0o644, true), (0o620, false), (0o602, false)] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(Policy::load(&path).is_ok(), ok, "{mode:o}");
        }
    }
}
