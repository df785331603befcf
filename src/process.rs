//! Hardening of the process that holds secrets: no core files, and on Linux not dumpable,
//! so that neither a crash nor another process of the same user can read the master (or
//! its keyed HMAC state, as good as the master) out of this one's memory. The command
//! calls [`forbid_core_dumps`] first, before anything is read.

use std::io;

/// Keeps the secrets this process holds out of core files: no core file at all
/// (`RLIMIT_CORE` 0), and the process not dumpable (`PR_SET_DUMPABLE` 0, which also keeps
/// other processes of the same user from reading its memory through `/proc` or ptrace).
/// A crash would otherwise write the master's keyed HMAC state — as good as the master — to
/// disk. Every command calls it first.
///
/// # Errors
/// What the system said; the caller decides whether to go on.
#[cfg(target_os = "linux")]
pub fn forbid_core_dumps() -> io::Result<()> {
    use rustix::process::{DumpableBehavior, set_dumpable_behavior};
    set_dumpable_behavior(DumpableBehavior::NotDumpable)?;
    no_core_files()
}

/// Keeps the secrets this process holds out of core files: no core file (`RLIMIT_CORE` 0).
///
/// # Errors
/// What the system said.
#[cfg(all(unix, not(target_os = "linux")))]
pub fn forbid_core_dumps() -> io::Result<()> {
    no_core_files()
}

/// `RLIMIT_CORE` 0, soft and hard, so not even a child can raise it again.
#[cfg(unix)]
fn no_core_files() -> io::Result<()> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let none = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    Ok(setrlimit(Resource::Core, none)?)
}

/// Nothing to do where there are no core files of this kind.
///
/// # Errors
/// None.
#[cfg(not(unix))]
pub fn forbid_core_dumps() -> io::Result<()> {
    Ok(())
}
