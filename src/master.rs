//! The master secret: its type, where it comes from, and the checks it must pass.
//!
//! The master is the content of its file (or of a command's standard output) with the
//! surrounding whitespace trimmed ([`crate::text::trim_space`]: Go's `bytes.TrimSpace`,
//! Unicode spaces included, invalid UTF-8 never), exactly as Go's `genbuilderkey` and
//! coordinator read `$HOME/keys/gobuilder-master.key`, so an existing master works
//! unchanged and gives Go's keys. Every way of getting it fails closed: missing, empty,
//! short, unreadable or too-open masters are errors, never a master that accepts anything.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use rand::TryRng;
use zeroize::Zeroizing;

use crate::fingerprint::Fingerprint;
use crate::key::hex_of;
use crate::secret_file::{self, ReadError};
use crate::text::trim_space;

mod command;

/// The fewest bytes a master may have after trimming.
pub const MIN_LEN: usize = 16;
/// The most bytes a master file or command output may have.
pub const MAX_LEN: usize = 4096;
/// Where the master lives by default, relative to the home folder (as in `genbuilderkey`).
pub const DEFAULT_PATH_IN_HOME: &str = "keys/gobuilder-master.key";
/// How many random bytes `gobuildkey init` draws; the master is their hex, 64 characters.
pub const GENERATED_BYTES: usize = 32;
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

/// The master secret, held in memory that is wiped on drop. Its [`Debug`] shows only its
/// fingerprint.
///
/// ```
/// use gobuildkey::master::MasterSecret;
///
/// let master = MasterSecret::from_text(b"  correct horse battery staple, 2026\n")?;
/// assert_eq!(master.expose_secret(), b"correct horse battery staple, 2026");
/// assert!(MasterSecret::from_text(b"too short\n").is_err());
/// assert!(MasterSecret::from_text(b" \n").is_err());
/// # Ok::<(), gobuildkey::master::MasterError>(())
/// ```
pub struct MasterSecret {
    bytes: Zeroizing<Vec<u8>>,
}

impl MasterSecret {
    /// The master held by `raw`, the content of a master file: trimmed as Go trims it
    /// ([`crate::text::trim_space`]), then at least
    /// [`MIN_LEN`] and at most [`MAX_LEN`] bytes.
    ///
    /// # Errors
    /// [`MasterError::Empty`], [`MasterError::TooShort`] or [`MasterError::TooLong`].
    pub fn from_text(raw: &[u8]) -> Result<Self, MasterError> {
        let master = Self::from_text_allow_short(raw)?;
        if master.bytes.len() < MIN_LEN {
            return Err(MasterError::TooShort {
                len: master.bytes.len(),
            });
        }
        Ok(master)
    }

    /// Like [`MasterSecret::from_text`] but with no minimum length beyond one byte: for
    /// tests and for Go's well-known development master, `gophers rule`. Never for a
    /// farm's real master.
    ///
    /// # Errors
    /// [`MasterError::Empty`] or [`MasterError::TooLong`].
    pub fn from_text_allow_short(raw: &[u8]) -> Result<Self, MasterError> {
        let text = trim_space(raw);
        if text.is_empty() {
            return Err(MasterError::Empty);
        }
        if text.len() > MAX_LEN {
            return Err(MasterError::TooLong);
        }
        Ok(Self {
            bytes: Zeroizing::new(text.to_vec()),
        })
    }

    /// A new master: [`GENERATED_BYTES`] bytes from the operating system's CSPRNG, as
    /// lowercase hex.
    ///
    /// ```
    /// let master = gobuildkey::master::MasterSecret::generate()?;
    /// assert_eq!(master.expose_secret().len(), 64);
    /// # Ok::<(), gobuildkey::master::MasterError>(())
    /// ```
    ///
    /// # Errors
    /// [`MasterError::Random`] when the operating system gives no randomness.
    pub fn generate() -> Result<Self, MasterError> {
        let mut raw = Zeroizing::new([0u8; GENERATED_BYTES]);
        rand::rngs::SysRng
            .try_fill_bytes(&mut raw[..])
            .map_err(|e| MasterError::Random(e.to_string()))?;
        let mut text = hex_of(&raw[..]);
        Ok(Self {
            bytes: Zeroizing::new(std::mem::take(&mut *text).into_bytes()),
        })
    }

    /// The secret's bytes. Hand them only to a MAC or to the file the user asked for.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8] {
        &self.bytes
    }

    /// What a master file holding this secret contains: the secret and a newline.
    #[must_use]
    pub fn file_contents(&self) -> Zeroizing<Vec<u8>> {
        secret_file::secret_line(&self.bytes)
    }

    /// The master's fingerprint: shows which master is in use without showing it.
    #[must_use]
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.bytes)
    }
}

impl fmt::Debug for MasterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterSecret")
            .field("fingerprint", &self.fingerprint().as_str())
            .finish_non_exhaustive()
    }
}

/// A length of time as people write it: `10s`, `500ms`, `1m 30s`.
fn show_duration(duration: Duration) -> String {
    match jiff::SignedDuration::try_from(duration) {
        Ok(duration) => format!("{duration:#}"),
        Err(_) => format!("{duration:?}"),
    }
}

fn too_open_message(path: &Path, mode: u32, mounted: bool) -> String {
    let path = path.display();
    if mounted {
        format!(
            "master key {path} is readable or writable by others (mode {mode:04o}), in a mounted \
             volume whose modes `chmod` cannot change for good: mount the Secret with \
             `defaultMode: 0400` (or 0440 with the pod's `fsGroup`, on a read-only volume)"
        )
    } else {
        format!(
            "master key {path} is readable or writable by others (mode {mode:04o}): run `chmod 600 {path}`"
        )
    }
}

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
    /// standard error passed through; it must exit 0 and print at most [`MAX_LEN`] bytes,
    /// within a time limit ([`MasterSource::load_within`]). On unix it runs in a process
    /// group of its own, which is killed when it exits (what it leaves behind there holds
    /// nothing it printed) and at the time limit.
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
        let set = |name| env(name).filter(|value| !value.is_empty());
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
        match file.or_else(|| {
            std::env::var_os(ENV_FILE)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        }) {
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

fn load_file(path: &Path) -> Result<MasterSecret, MasterError> {
    // Who could have written it is checked before a byte of it is read.
    let meta = std::fs::metadata(path).map_err(|error| match error.kind() {
        io::ErrorKind::NotFound => MasterError::Missing {
            path: path.to_owned(),
        },
        _ => MasterError::Read(ReadError::Io {
            path: path.to_owned(),
            error,
        }),
    })?;
    if meta.is_file() {
        // A Kubernetes Secret mounted with `fsGroup` is group-readable, on a read-only
        // filesystem that nobody can write: that one opening is accepted.
        let group_read_on_read_only =
            |mode: u32| mode & 0o077 == 0o040 && crate::trust::on_read_only_fs(path);
        if let Some(mode) = secret_file::mode_of(&meta)
            .filter(|&mode| secret_file::is_too_open(mode) && !group_read_on_read_only(mode))
        {
            return Err(MasterError::TooOpen {
                path: path.to_owned(),
                mode: mode & 0o7777,
                mounted: crate::trust::in_mounted_volume(path),
            });
        }
        // Then who could have written it: its owner, and the folders on the way to it.
        crate::trust::check_file(path, "the master")
            .map_err(|e| MasterError::Untrusted(Box::new(e)))?;
    }
    // Not a regular file (a FIFO, a device): refused here, without opening it.
    let file = secret_file::read_secret_file(path, MAX_LEN).map_err(|e| match e {
        ReadError::Missing { path } => MasterError::Missing { path },
        other => MasterError::Read(other),
    })?;
    let contents = file.contents.ok_or(MasterError::TooLong)?;
    MasterSecret::from_text(&contents)
}

/// Why no master could be had. Never carries the secret, nor the command line that
/// fetches it (it may name a secret store's token or path).
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    /// No file at the master's path.
    #[error(
        "no master key at {}: if this is a new farm, `gobuildkey init` creates one; on an \
         existing farm restore the master from its backup (a new master invalidates every \
         key), or point --master-key at it",
        path.display()
    )]
    Missing {
        /// The path looked at.
        path: PathBuf,
    },
    /// The file can be read or written by group or others.
    #[error("{}", too_open_message(path, *mode, *mounted))]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// Whether it is in a mounted volume (Kubernetes, read-only), whose modes come
        /// from the mount rather than from `chmod`.
        mounted: bool,
    },
    /// The file is not a regular file or cannot be read.
    #[error("cannot use the master key: {0}")]
    Read(ReadError),
    /// Someone but root and this user could have written or replaced the file.
    #[error("refusing to use the master: {0}")]
    Untrusted(Box<crate::trust::TrustError>),
    /// Nothing but whitespace.
    #[error("the master key is empty: create one with `gobuildkey init`")]
    Empty,
    /// Fewer than [`MIN_LEN`] bytes after trimming.
    #[error(
        "the master key is {len} bytes long; at least {MIN_LEN} are needed: create a new one with `gobuildkey init`"
    )]
    TooShort {
        /// Its length after trimming.
        len: usize,
    },
    /// More than [`MAX_LEN`] bytes.
    #[error("the master key is longer than {MAX_LEN} bytes: is this the right file?")]
    TooLong,
    /// The master key command could not be run, or its output not read.
    #[error("cannot run the master key command: {0}")]
    CommandStart(io::Error),
    /// The master key command exited with an error.
    #[error("the master key command failed ({status}); see its messages above")]
    CommandFailed {
        /// How it exited.
        status: ExitStatus,
    },
    /// The master key command did not exit, or did not close its standard output, within
    /// its time limit; it was killed.
    #[error(
        "the master key command did not finish within {}, and was stopped: check that the \
         secret manager answers (is it waiting for a password, or for the network?), or \
         allow it longer with --command-timeout",
        show_duration(*timeout)
    )]
    CommandTimedOut {
        /// The time it was given.
        timeout: Duration,
    },
    /// `HOME` is unset, empty or relative and no master was named.
    #[error(
        "no home folder to find the master key in (HOME is unset, empty or relative): \
         set HOME or pass --master-key FILE"
    )]
    NoHome,
    /// Both a master file and a master command were named in the environment.
    #[error(
        "both GOBUILDKEY_MASTER_KEY_FILE and GOBUILDKEY_MASTER_KEY_COMMAND are set: unset one, \
         or choose with --master-key or --master-key-command"
    )]
    Ambiguous,
    /// The operating system's random number generator failed.
    #[error("the operating system gave no random bytes: {0}")]
    Random(String),
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

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

    fn write(dir: &Path, content: &[u8], mode: u32) -> PathBuf {
        let path = dir.join("master.key");
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn file_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), b"\n\t a master of 24 bytes!! \r\n\x0b", 0o600);
        let master = MasterSource::File(path).load().unwrap();
        assert_eq!(master.expose_secret(), b"a master of 24 bytes!!");
    }

    /// Go's `bytes.TrimSpace`: Unicode spaces at the ends go, an invalid byte stops the
    /// trimming, and what lies inside stays.
    #[test]
    fn file_is_trimmed_as_go_trims_it() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&[u8], &[u8]); 4] = [
            ("\u{feff}".as_bytes(), "\u{feff}".as_bytes()),
            ("\u{3000}\u{a0}".as_bytes(), b""),
            (b"\xff\xc2\xa0", b"\xff\xc2\xa0"),
            ("\u{2028}\u{85}\u{1680}".as_bytes(), b""),
        ];
        for (pad, kept) in cases {
            let mut content = pad.to_vec();
            content.extend_from_slice("a master\u{a0}of 24 bytes".as_bytes());
            content.extend_from_slice("\u{2029}\u{202f}\r\n".as_bytes());
            let path = write(dir.path(), &content, 0o600);
            let master = MasterSource::File(path).load().unwrap();
            let mut expected = kept.to_vec();
            expected.extend_from_slice("a master\u{a0}of 24 bytes".as_bytes());
            assert_eq!(master.expose_secret(), &expected[..], "{pad:?}");
        }
        let only_spaces = write(dir.path(), "\u{3000}\n\u{a0}".as_bytes(), 0o600);
        assert!(matches!(
            MasterSource::File(only_spaces).load(),
            Err(MasterError::Empty)
        ));
    }

    #[test]
    fn command_output_is_trimmed_as_go_trims_it() {
        let master = MasterSource::Command(
            "printf '\\342\\200\\200 from a secret manager \\302\\240\\n'".into(),
        )
        .load()
        .unwrap();
        assert_eq!(master.expose_secret(), b"from a secret manager");
    }

    #[test]
    fn refusals() {
        let dir = tempfile::tempdir().unwrap();
        type Case<'a> = (&'a [u8], u32, fn(&MasterError) -> bool);
        let cases: [Case; 6] = [
            (b"a master of 24 bytes!!", 0o644, |e| {
                matches!(e, MasterError::TooOpen { mode: 0o644, .. })
            }),
            (b"a master of 24 bytes!!", 0o660, |e| {
                matches!(e, MasterError::TooOpen { .. })
            }),
            (b" \n\n", 0o600, |e| matches!(e, MasterError::Empty)),
            (b"", 0o600, |e| matches!(e, MasterError::Empty)),
            (b"  fifteen bytes!!\n", 0o600, |e| {
                matches!(e, MasterError::TooShort { len: 15 })
            }),
            (&[b'a'; MAX_LEN + 1], 0o600, |e| {
                matches!(e, MasterError::TooLong)
            }),
        ];
        for (content, mode, is_expected) in cases {
            let path = write(dir.path(), content, mode);
            let err = MasterSource::File(path).load().unwrap_err();
            assert!(is_expected(&err), "{err}");
        }
    }

    #[test]
    fn too_open_message_has_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), b"a master of 24 bytes!!", 0o640);
        let err = MasterSource::File(path.clone()).load().unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("chmod 600 {}", path.display())),
            "{err}"
        );
    }

    #[test]
    fn sixteen_bytes_is_enough() {
        assert!(MasterSecret::from_text(b"sixteen bytes!!!").is_ok());
        assert!(matches!(
            MasterSecret::from_text(b"fifteen bytes!!"),
            Err(MasterError::TooShort { len: 15 })
        ));
    }

    #[test]
    fn missing_file_says_run_init() {
        let err = MasterSource::File("/nonexistent/x".into())
            .load()
            .unwrap_err();
        assert!(err.to_string().contains("gobuildkey init"), "{err}");
    }

    #[test]
    fn command_output_is_the_master() {
        let master = MasterSource::Command("printf '  from a secret manager \\n'".into())
            .load()
            .unwrap();
        assert_eq!(master.expose_secret(), b"from a secret manager");
    }

    #[test]
    fn command_refusals() {
        let failing = MasterSource::Command("echo a-long-enough-master; exit 3".into());
        assert!(matches!(
            failing.load(),
            Err(MasterError::CommandFailed { .. })
        ));
        let silent = MasterSource::Command("true".into());
        assert!(matches!(silent.load(), Err(MasterError::Empty)));
        let endless = MasterSource::Command("yes".into());
        assert!(matches!(endless.load(), Err(MasterError::TooLong)));
    }

    #[test]
    fn command_errors_do_not_show_the_command() {
        let err = MasterSource::Command("exit 1 # token=hunter2".into())
            .load()
            .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    /// Whether process `pid` is gone: no such process, or one that has died and waits only
    /// to be reaped by init. A process just sent SIGKILL may take a moment to die, so this
    /// waits for that (the bound is only there to end a broken run).
    fn is_gone(pid: &str) -> bool {
        let dead = || match fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            // The state follows the command name, which is in parentheses.
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with(['Z', 'X'])),
        };
        for _ in 0..6000 {
            if dead() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// The pid a command wrote to `file`, once it is there.
    fn pid_in(file: &Path) -> String {
        let pid = fs::read_to_string(file).unwrap().trim().to_owned();
        assert!(pid.parse::<u32>().is_ok(), "{pid:?}");
        pid
    }

    #[test]
    fn a_hung_command_is_killed_with_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let (pid, background) = (dir.path().join("pid"), dir.path().join("background"));
        let hung = MasterSource::Command(
            format!(
                "echo $$ > {}; sleep 1000 & echo $! > {}; wait # token=hunter2",
                pid.display(),
                background.display()
            )
            .into(),
        );
        let err = hung.load_within(Duration::from_secs(1)).unwrap_err();
        assert!(
            matches!(err, MasterError::CommandTimedOut { timeout } if timeout == Duration::from_secs(1)),
            "{err}"
        );
        let message = err.to_string();
        assert!(message.contains("did not finish within 1s"), "{message}");
        assert!(message.contains("--command-timeout"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        assert!(is_gone(&pid_in(&pid)), "the command still runs");
        assert!(
            is_gone(&pid_in(&background)),
            "its background process still runs"
        );
    }

    #[test]
    fn a_command_that_closes_its_output_and_hangs_times_out() {
        let hung = MasterSource::Command("echo a-long-enough-master; exec >&-; sleep 1000".into());
        let err = hung.load_within(Duration::from_millis(500)).unwrap_err();
        assert!(matches!(err, MasterError::CommandTimedOut { .. }), "{err}");
        assert!(err.to_string().contains("within 500ms"), "{err}");
    }

    /// A background process left holding standard output does not keep the read waiting:
    /// once the command has exited it is killed, and what the command printed is the
    /// master. (The limit is far beyond what this needs, so that a read waiting for the
    /// background process fails here rather than passing by the limit.)
    #[test]
    fn a_background_process_holding_the_output_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let background = dir.path().join("background");
        for command in [
            format!(
                "sleep 1000 & echo $! > {}; echo master-text-of-enough-length",
                background.display()
            ),
            format!(
                "sh -c 'sleep 1000 & echo $! > {}'; echo master-text-of-enough-length",
                background.display()
            ),
        ] {
            let master = MasterSource::Command(command.into())
                .load_within(Duration::from_secs(60))
                .unwrap();
            assert_eq!(master.expose_secret(), b"master-text-of-enough-length");
            assert!(
                is_gone(&pid_in(&background)),
                "the background process still runs"
            );
        }
    }

    /// A process that left the command's group (`setsid`) and holds its output cannot be
    /// killed with the group: the read gives up at the time limit. A command that failed is
    /// reported as such at once, whatever still holds its output.
    #[test]
    fn a_process_outside_the_group_holding_the_output_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let escaped = dir.path().join("escaped");
        let command = |then: &str| {
            MasterSource::Command(
                // It says its pid once it has left the group, and only then is the
                // command done: killed with the group before, it would hold nothing.
                format!(
                    "setsid sh -c 'echo $$ > {0}; exec sleep 1000' & \
                     while [ ! -s {0} ]; do sleep 0.01; done; {then}",
                    escaped.display()
                )
                .into(),
            )
        };
        let kill = || {
            let pid = pid_in(&escaped).parse().unwrap();
            rustix::process::kill_process(
                rustix::process::Pid::from_raw(pid).unwrap(),
                rustix::process::Signal::KILL,
            )
            .unwrap();
        };
        let err = command("echo master-text-of-enough-length")
            .load_within(Duration::from_secs(1))
            .unwrap_err();
        kill();
        assert!(matches!(err, MasterError::CommandTimedOut { .. }), "{err}");
        let err = command("exit 3")
            .load_within(Duration::from_secs(60))
            .unwrap_err();
        kill();
        assert!(matches!(err, MasterError::CommandFailed { .. }), "{err}");
    }

    /// Output is read while the command runs: more than a pipe holds is refused as too
    /// long (not a command blocked on a full pipe until the time limit), and a master of
    /// the longest length, written in pieces, is whole.
    #[test]
    fn output_is_read_while_the_command_runs() {
        let flood =
            MasterSource::Command("head -c 1000000 /dev/zero | tr '\\0' a; sleep 1000".into());
        assert!(matches!(
            flood.load_within(Duration::from_secs(60)),
            Err(MasterError::TooLong)
        ));
        let pieces = MasterSource::Command(
            format!(
                "for i in 1 2 3 4; do head -c {} /dev/zero | tr '\\0' a; sleep 0.1; done",
                MAX_LEN / 4
            )
            .into(),
        );
        let master = pieces.load_within(Duration::from_secs(60)).unwrap();
        assert_eq!(master.expose_secret(), &[b'a'; MAX_LEN][..]);
    }

    #[test]
    fn durations_are_shown_as_people_write_them() {
        assert_eq!(show_duration(Duration::from_secs(10)), "10s");
        assert_eq!(show_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(show_duration(Duration::from_secs(120)), "2m");
        assert_eq!(show_duration(Duration::from_secs(90)), "1m 30s");
    }

    #[test]
    fn generated_masters_are_hex_and_distinct() {
        let a = MasterSecret::generate().unwrap();
        let b = MasterSecret::generate().unwrap();
        assert_eq!(a.expose_secret().len(), 2 * GENERATED_BYTES);
        assert!(a.expose_secret().iter().all(u8::is_ascii_hexdigit));
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.file_contents().last(), Some(&b'\n'));
    }

    #[test]
    fn debug_shows_only_the_fingerprint() {
        let master = MasterSecret::from_text(b"a master of 24 bytes!!").unwrap();
        let shown = format!("{master:?}");
        assert!(!shown.contains("master of"), "{shown}");
        assert!(shown.contains(master.fingerprint().as_str()));
    }
}
