//! Where the master comes from ([`MasterSource`]): a command or a file named by a flag, else
//! one named in the environment ([`ENV_COMMAND`], [`ENV_FILE`]), else [`default_path`]
//! (`$HOME/keys/gobuilder-master.key`, as `genbuilderkey`); and loading it from there, a
//! command within its time limit ([`DEFAULT_COMMAND_TIMEOUT`], [`ENV_COMMAND_TIMEOUT`]).

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::command;
use super::file::load_file;
use super::{MasterError, MasterSecret};

/// Where the master lives by default, relative to the home folder (as in `genbuilderkey`).
pub const DEFAULT_PATH_IN_HOME: &str = "keys/gobuilder-master.key";
/// The environment variable naming the master key file, read when no flag names a master
/// ([`MasterSource::resolve`]).
pub const ENV_FILE: &str = "GOBUILDKEY_MASTER_KEY_FILE";
/// The environment variable holding the master key command, read when no flag names a
/// master ([`MasterSource::resolve`]).
pub const ENV_COMMAND: &str = "GOBUILDKEY_MASTER_KEY_COMMAND";
/// The environment variable holding how long a master or keyring command may run (the
/// command line's `--command-timeout`).
pub const ENV_COMMAND_TIMEOUT: &str = "GOBUILDKEY_COMMAND_TIMEOUT";
/// How long a master key command may run when no other limit is given
/// ([`MasterSource::load`]; the command line's `--command-timeout`).
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the master lives when none is named: `$HOME/keys/gobuilder-master.key`, as in
/// Go's `genbuilderkey`.
///
/// # Errors
/// [`MasterError::NoHome`] when there is no home folder.
pub fn default_path() -> Result<PathBuf, MasterError> {
    home_dir()
        .map(|home| home.join(DEFAULT_PATH_IN_HOME))
        .ok_or(MasterError::NoHome)
}

/// The home folder: on unix `$HOME`, which must be set and absolute. There is no fallback
/// to the password database: a cron job or service without `HOME` gets a clear error
/// instead of a master in an unexpected place.
#[cfg(unix)]
fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|home| home.is_absolute())
}

/// The home folder: on Windows the user's profile folder.
#[cfg(not(unix))]
fn home_dir() -> Option<PathBuf> {
    dirs::home_dir()
}

/// Where the master comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterSource {
    /// A file; it must be a regular file that only its owner can read or write (unix).
    File(PathBuf),
    /// A shell command whose standard output is the master, for secret managers
    /// (`vault kv get -field=master secret/gobuildkey`, `pass show farm/master`, ...).
    ///
    /// It is run as `sh -c CMD` (`cmd /C CMD` on Windows) with standard input closed and
    /// standard error passed through; it must exit 0 and print at most
    /// [`MAX_LEN`](super::MAX_LEN) bytes, within a time limit
    /// ([`MasterSource::load_within`]). On unix it runs in a process group of its own,
    /// which is killed when it exits (what it leaves behind there holds nothing it printed)
    /// and at the time limit.
    Command(OsString),
}

impl MasterSource {
    /// Where the master comes from, decided as the command line decides it: a named
    /// `command`, else a named `file`, else [`ENV_COMMAND`] or [`ENV_FILE`] (set and not
    /// empty; both set is [`MasterError::Ambiguous`]: which one was meant?), else
    /// [`default_path`]. A flag beats both variables, so a variable left in a shell's
    /// environment never conflicts with an explicit choice.
    ///
    /// A coordinator linking this crate calls it with its own flags to find the master
    /// where `gobuildkey` would; nothing is read or run yet.
    ///
    /// ```
    /// use gobuildkey::master::{MasterSource, ENV_COMMAND};
    ///
    /// let named = MasterSource::resolve(Some("/etc/farm/master.key".into()), None)?;
    /// assert_eq!(named, MasterSource::File("/etc/farm/master.key".into()));
    ///
    /// let env = |name: &str| (name == ENV_COMMAND).then(|| "pass show farm/master".into());
    /// let from_env = MasterSource::resolve_with(None, None, env)?;
    /// assert_eq!(from_env, MasterSource::Command("pass show farm/master".into()));
    /// # Ok::<(), gobuildkey::master::MasterError>(())
    /// ```
    ///
    /// # Errors
    /// [`MasterError::Ambiguous`] when both variables are set and no flag chooses;
    /// [`MasterError::NoHome`] when the default is needed and there is no home folder.
    pub fn resolve(file: Option<PathBuf>, command: Option<OsString>) -> Result<Self, MasterError> {
        Self::resolve_with(file, command, |name| std::env::var_os(name))
    }

    /// [`MasterSource::resolve`] with the environment read through `env` (for tests, and
    /// for callers that keep their own).
    ///
    /// # Errors
    /// As [`MasterSource::resolve`].
    pub fn resolve_with(
        file: Option<PathBuf>,
        command: Option<OsString>,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Self, MasterError> {
        if let Some(command) = command {
            return Ok(Self::Command(command));
        }
        if let Some(path) = file {
            return Ok(Self::File(path));
        }
        let set = |name| non_empty(env(name));
        match (set(ENV_COMMAND), set(ENV_FILE)) {
            (Some(_), Some(_)) => Err(MasterError::Ambiguous),
            (Some(command), None) => Ok(Self::Command(command)),
            (None, Some(path)) => Ok(Self::File(path.into())),
            (None, None) => default_path().map(Self::File),
        }
    }

    /// The file a new master is written to (`gobuildkey init`): `file`, else [`ENV_FILE`]
    /// (set and not empty), else [`default_path`]. A master command names no file.
    ///
    /// # Errors
    /// [`MasterError::NoHome`] when the default is needed and there is no home folder.
    pub fn file_to_create(file: Option<PathBuf>) -> Result<PathBuf, MasterError> {
        match file.or_else(|| non_empty(std::env::var_os(ENV_FILE)).map(PathBuf::from)) {
            Some(path) => Ok(path),
            None => default_path(),
        }
    }

    /// The same source with a file's path made absolute (against the working folder), as it
    /// must be before it is written anywhere that resolves relative paths otherwise (the
    /// policy's keyring, relative to the policy's folder).
    ///
    /// # Errors
    /// When the working folder cannot be found.
    pub fn absolute(self) -> io::Result<Self> {
        match self {
            Self::File(path) => Ok(Self::File(std::path::absolute(path)?)),
            command @ Self::Command(_) => Ok(command),
        }
    }

    /// Reads and checks the master; a command has [`DEFAULT_COMMAND_TIMEOUT`] to finish.
    ///
    /// ```
    /// use gobuildkey::master::{MasterError, MasterSource};
    ///
    /// let missing = MasterSource::File("/nonexistent/master.key".into());
    /// assert!(matches!(missing.load(), Err(MasterError::Missing { .. })));
    /// # #[cfg(unix)]
    /// let from_command = MasterSource::Command("echo a-master-from-a-secret-manager".into());
    /// # #[cfg(unix)]
    /// assert_eq!(from_command.load()?.expose_secret(), b"a-master-from-a-secret-manager");
    /// # Ok::<(), MasterError>(())
    /// ```
    ///
    /// # Errors
    /// [`MasterError`] for a master that is missing, unreadable, too open, empty, short or
    /// too long, or a command that fails or does not finish in time.
    pub fn load(&self) -> Result<MasterSecret, MasterError> {
        self.load_within(DEFAULT_COMMAND_TIMEOUT)
    }

    /// Reads and checks the master, giving a command `timeout` to finish: to exit, and to
    /// close its standard output. At the time limit the command is killed (on unix with
    /// every process of its group) and reaped, and the error is
    /// [`MasterError::CommandTimedOut`]. A file is read at once, whatever the limit.
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use std::time::Duration;
    /// use gobuildkey::master::{MasterError, MasterSource};
    ///
    /// let hung = MasterSource::Command("sleep 60".into());
    /// let err = hung.load_within(Duration::from_millis(200)).unwrap_err();
    /// assert!(matches!(err, MasterError::CommandTimedOut { .. }));
    /// assert!(err.to_string().contains("did not finish within 200ms"));
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`MasterSource::load`].
    pub fn load_within(&self, timeout: Duration) -> Result<MasterSecret, MasterError> {
        match self {
            Self::File(path) => load_file(path),
            Self::Command(command) => MasterSecret::from_text(&command::run(command, timeout)?),
        }
    }
}

impl fmt::Display for MasterSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            // The command line may name a secret store; it is not repeated in messages.
            Self::Command(_) => f.write_str("the master key command"),
        }
    }
}

/// A master variable's value, `None` when it is unset or set to nothing: for the master
/// variables the one rule is that an empty one is unset (the policy's variable is stricter:
/// [`crate::policy::named_path`]).
fn non_empty(value: Option<OsString>) -> Option<OsString> {
    value.filter(|value| !value.is_empty())
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// Flags › environment › default, as `MasterSource::resolve` decides: each step.
    #[test]
    fn resolution_prefers_flags_then_the_environment() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let both = env(&[(ENV_FILE, "/env/master.key"), (ENV_COMMAND, "env-cmd")]);
        // A flag beats both variables, even when they contradict each other.
        let flag = MasterSource::resolve_with(Some("/flag.key".into()), None, both).unwrap();
        assert_eq!(flag, MasterSource::File("/flag.key".into()));
        let cmd =
            MasterSource::resolve_with(Some("/flag.key".into()), Some("flag-cmd".into()), env(&[]));
        assert_eq!(cmd.unwrap(), MasterSource::Command("flag-cmd".into()));
        // No flag: both variables set is ambiguous, one of them decides.
        let ambiguous = MasterSource::resolve_with(None, None, both);
        assert!(matches!(ambiguous, Err(MasterError::Ambiguous)));
        let file = MasterSource::resolve_with(None, None, env(&[(ENV_FILE, "/env.key")]));
        assert_eq!(file.unwrap(), MasterSource::File("/env.key".into()));
        let command = MasterSource::resolve_with(None, None, env(&[(ENV_COMMAND, "pass x")]));
        assert_eq!(command.unwrap(), MasterSource::Command("pass x".into()));
        // An empty variable is unset: the other one decides, not an ambiguity.
        let empty = env(&[(ENV_FILE, ""), (ENV_COMMAND, "pass x")]);
        let command = MasterSource::resolve_with(None, None, empty);
        assert_eq!(command.unwrap(), MasterSource::Command("pass x".into()));
    }
}
