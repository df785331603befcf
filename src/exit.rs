//! The exit codes of the `gobuildkey` command: one enum, the only place they are defined.
//!
//! 0 and 1 answer the question a command asks (is the key valid, did the check pass);
//! 2 is a usage error (clap's); everything from 65 on is an operational error, numbered
//! after BSD's sysexits.h so that service managers and scripts can tell them apart.

use std::io;
use std::process::ExitCode;

use gobuildkey::audit::AuditError;
use gobuildkey::key::KeyFormatError;
use gobuildkey::master::MasterError;
use gobuildkey::policy::PolicyError;
use gobuildkey::secret_file::{ReadError, WriteError};
use gobuildkey::verifier::LoadError;

/// How the command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Done; the key is valid.
    Ok = 0,
    /// The key is invalid, or a check failed.
    Invalid = 1,
    /// The command line is wrong (clap's code).
    Usage = 2,
    /// The master or an input is malformed: empty, too short, too long.
    DataErr = 65,
    /// A file that must exist does not: the master, a key file.
    NoInput = 66,
    /// The master key command could not be run or failed.
    Unavailable = 69,
    /// A bug in gobuildkey.
    Software = 70,
    /// A file was not written: it exists (use --force), or a link or folder is in the way.
    CantCreate = 73,
    /// Reading or writing failed.
    IoErr = 74,
    /// Another edit held the policy's lock for longer than this one would wait, or a master
    /// key command did not finish within `--command-timeout`: try again.
    TempFail = 75,
    /// A secret file is readable or writable by others, or access was denied.
    NoPerm = 77,
    /// The environment is wrong: no home folder.
    Config = 78,
    /// The reader of standard output went away (a closed pipe), as for a process killed by
    /// SIGPIPE (128 + 13).
    ReaderGone = 141,
}

impl Exit {
    /// Every code, in order.
    pub const ALL: [Self; 13] = [
        Self::Ok,
        Self::Invalid,
        Self::Usage,
        Self::DataErr,
        Self::NoInput,
        Self::Unavailable,
        Self::Software,
        Self::CantCreate,
        Self::IoErr,
        Self::TempFail,
        Self::NoPerm,
        Self::Config,
        Self::ReaderGone,
    ];

    /// The number the process exits with.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// What the code means, as `--help` and docs/design.md say it.
    pub const fn meaning(self) -> &'static str {
        match self {
            Self::Ok => "success; the key is valid",
            Self::Invalid => "the key is invalid, or a check failed",
            Self::Usage => "usage error: a wrong option, argument or principal",
            Self::DataErr => {
                "malformed master or key input: empty, too short or long, not a regular file"
            }
            Self::NoInput => "a file that must exist does not (the master, the policy, a key file)",
            Self::Unavailable => {
                "the master key command could not be run or failed; probe: the coordinator cannot be reached"
            }
            Self::Software => "internal error (a bug: please report it)",
            Self::CantCreate => {
                "refused to write a file (it exists, or a link or folder is in the way)"
            }
            Self::IoErr => "reading or writing failed",
            Self::TempFail => {
                "another edit held the policy's lock too long, or a master key command did not \
                 finish in time: try again"
            }
            Self::NoPerm => "a secret file is open to others, or access was denied",
            Self::Config => {
                "configuration error: a bad policy file, no usable HOME, or both master variables set"
            }
            Self::ReaderGone => {
                "the reader of standard output went away (a closed pipe), as after SIGPIPE"
            }
        }
    }

    /// The table for `--help`.
    pub fn help_table() -> String {
        // Built from pieces, not `format!`: every process builds this table for `--help`
        // (docs/performance.md, "Start-up").
        let mut table = String::with_capacity(1024);
        table.push_str("Exit status:\n");
        let mut digits = itoa::Buffer::new();
        for exit in Self::ALL {
            let code = digits.format(exit.code());
            table.push_str(&"     "[code.len()..]); // "  " and the code right-aligned in 3
            table.push_str(code);
            table.push_str("  ");
            table.push_str(exit.meaning());
            table.push('\n');
        }
        table
    }

    /// The code for an error, found by the first error in its chain that says.
    pub fn for_error(err: &anyhow::Error) -> Self {
        err.chain()
            .find_map(|cause| {
                if let Some(refused) = cause.downcast_ref::<Refused>() {
                    Some(refused.exit)
                } else if let Some(e) = cause.downcast_ref::<LoadError>() {
                    Some(match e {
                        LoadError::Primary(e) => Self::for_master(e),
                        LoadError::Policy(e) => Self::for_policy(e),
                    })
                } else if let Some(e) = cause.downcast_ref::<PolicyError>() {
                    Some(Self::for_policy(e))
                } else if let Some(e) = cause.downcast_ref::<AuditError>() {
                    Some(Self::for_io(&e.error))
                } else if let Some(e) = cause.downcast_ref::<MasterError>() {
                    Some(Self::for_master(e))
                } else if let Some(e) = cause.downcast_ref::<ReadError>() {
                    Some(Self::for_read(e))
                } else if let Some(e) = cause.downcast_ref::<WriteError>() {
                    Some(Self::for_write(e))
                } else if cause.is::<KeyFormatError>() {
                    Some(Self::DataErr)
                } else {
                    cause.downcast_ref::<io::Error>().map(Self::for_io)
                }
            })
            .unwrap_or(Self::Software)
    }

    fn for_master(err: &MasterError) -> Self {
        match err {
            MasterError::Missing { .. } => Self::NoInput,
            MasterError::TooOpen { .. } | MasterError::Untrusted(_) => Self::NoPerm,
            MasterError::Read(e) => Self::for_read(e),
            MasterError::Empty | MasterError::TooShort { .. } | MasterError::TooLong => {
                Self::DataErr
            }
            MasterError::CommandStart(_) | MasterError::CommandFailed { .. } => Self::Unavailable,
            MasterError::CommandTimedOut { .. } => Self::TempFail,
            MasterError::NoHome | MasterError::Ambiguous => Self::Config,
            MasterError::Random(_) => Self::Software,
        }
    }

    fn for_policy(err: &PolicyError) -> Self {
        match err {
            PolicyError::Read(e) => Self::for_read(e),
            PolicyError::Write(e) => Self::for_write(e),
            PolicyError::Master { error, .. } => Self::for_master(error),
            PolicyError::Untrusted(_) | PolicyError::NotOwner { .. } => Self::NoPerm,
            PolicyError::Missing { .. } => Self::NoInput,
            PolicyError::Locked { .. } => Self::TempFail,
            PolicyError::Lock { error, .. } | PolicyError::ActionLog { error, .. } => {
                Self::for_io(error)
            }
            PolicyError::EditThroughLink { .. } => Self::CantCreate,
            PolicyError::Syntax { .. }
            | PolicyError::Invalid { .. }
            | PolicyError::NoFile
            | PolicyError::EmptyVariable => Self::Config,
        }
    }

    fn for_read(err: &ReadError) -> Self {
        match err {
            ReadError::Missing { .. } => Self::NoInput,
            ReadError::NotAFile { .. } => Self::DataErr,
            ReadError::Io { error, .. } => Self::for_io(error),
        }
    }

    fn for_write(err: &WriteError) -> Self {
        match err {
            WriteError::CreateDir { error, .. } | WriteError::Io { error, .. }
                if error.kind() == io::ErrorKind::PermissionDenied =>
            {
                Self::NoPerm
            }
            WriteError::Exists { .. }
            | WriteError::Symlink { .. }
            | WriteError::NotAFile { .. }
            | WriteError::CreateDir { .. }
            | WriteError::Ownership { .. }
            | WriteError::Io { .. } => Self::CantCreate,
        }
    }

    fn for_io(err: &io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::PermissionDenied => Self::NoPerm,
            _ => Self::IoErr,
        }
    }
}

/// A refusal of the command's own, with the code it exits with. The message says what to
/// do next.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    /// The exit code.
    pub exit: Exit,
    /// What was refused and what to do.
    pub message: String,
}

impl Refused {
    /// A refusal exiting with `exit`.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        Self::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::path::PathBuf;

    #[test]
    fn codes_are_distinct_and_classed() {
        let codes: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        let mut sorted = codes.clone();
        sorted.dedup();
        assert_eq!(codes, sorted, "ALL is in order without repeats");
        assert_eq!(Exit::Ok.code(), 0);
        assert_eq!(Exit::Invalid.code(), 1);
        assert_eq!(Exit::Usage.code(), 2);
        assert!(
            codes[3..].iter().all(|&c| c >= 3),
            "operational errors are >= 3"
        );
    }

    #[test]
    fn help_table_lists_every_code() {
        let table = Exit::help_table();
        let mut expected = String::from("Exit status:\n");
        for exit in Exit::ALL {
            assert!(table.contains(&format!("{:>3}  {}", exit.code(), exit.meaning())));
            expected.push_str(&format!("  {:>3}  {}\n", exit.code(), exit.meaning()));
        }
        assert_eq!(table, expected);
    }

    #[test]
    fn design_doc_lists_every_code() {
        let doc = include_str!("../docs/design.md");
        for exit in Exit::ALL {
            let row = format!("| {} | {} |", exit.code(), exit.meaning());
            assert!(doc.contains(&row), "docs/design.md lacks the row {row}");
        }
    }

    #[test]
    fn errors_map_to_codes() {
        let path = PathBuf::from("/x");
        let cases: Vec<(anyhow::Error, Exit)> = vec![
            (
                MasterError::Missing { path: path.clone() }.into(),
                Exit::NoInput,
            ),
            (
                MasterError::TooOpen {
                    path: path.clone(),
                    mode: 0o644,
                    mounted: false,
                }
                .into(),
                Exit::NoPerm,
            ),
            (MasterError::Empty.into(), Exit::DataErr),
            (MasterError::TooShort { len: 3 }.into(), Exit::DataErr),
            (MasterError::NoHome.into(), Exit::Config),
            (
                MasterError::CommandTimedOut {
                    timeout: std::time::Duration::from_secs(10),
                }
                .into(),
                Exit::TempFail,
            ),
            (
                PolicyError::Master {
                    path: "p".into(),
                    at: (3, 12),
                    source_shown: "the master key command".into(),
                    error: MasterError::CommandTimedOut {
                        timeout: std::time::Duration::from_secs(10),
                    },
                }
                .into(),
                Exit::TempFail,
            ),
            (
                WriteError::Exists { path: path.clone() }.into(),
                Exit::CantCreate,
            ),
            (
                WriteError::Symlink { path: path.clone() }.into(),
                Exit::CantCreate,
            ),
            (ReadError::Missing { path }.into(), Exit::NoInput),
            (KeyFormatError::Empty.into(), Exit::DataErr),
            (KeyFormatError::TooLong.into(), Exit::DataErr),
            (
                io::Error::from(io::ErrorKind::PermissionDenied).into(),
                Exit::NoPerm,
            ),
            (anyhow::anyhow!("something else"), Exit::Software),
            (Refused::new(Exit::DataErr, "no").into(), Exit::DataErr),
            (PolicyError::NoFile.into(), Exit::Config),
            (PolicyError::EmptyVariable.into(), Exit::Config),
            (
                PolicyError::Invalid {
                    path: "p".into(),
                    at: (1, 1),
                    message: "m".into(),
                }
                .into(),
                Exit::Config,
            ),
            (
                LoadError::Primary(MasterError::Missing {
                    path: PathBuf::from("/m"),
                })
                .into(),
                Exit::NoInput,
            ),
        ];
        for (err, want) in cases {
            assert_eq!(Exit::for_error(&err), want, "{err}");
        }
        let wrapped = anyhow::Error::from(MasterError::Empty).context("loading the master");
        assert_eq!(Exit::for_error(&wrapped), Exit::DataErr);
    }
}
