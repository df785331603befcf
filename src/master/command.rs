//! Running a master (or keyring) command: its output read while it runs, within a deadline,
//! and nothing it started left running behind it.
//!
//! On unix the command leads a process group of its own. Its output is read while it runs;
//! once it has exited, whatever is left in its group is killed (a background process there
//! holding its standard output would otherwise keep the read waiting), and the pipe is read
//! to its end: what the command wrote is in the pipe and is not lost. At the deadline the
//! group is killed and the command reaped; a process that left the group (`setsid`) and
//! still holds the pipe is given up on then. On Linux the wait is for the pipe or the
//! command's exit (a pidfd); elsewhere the exit is looked for every few milliseconds.

use std::ffi::OsStr;
#[cfg(unix)]
use std::io;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::{MAX_LEN, MasterError};

/// Runs `command` and returns what it printed (at most [`MAX_LEN`] bytes), giving it
/// `timeout` to exit and close its standard output.
#[cfg(unix)]
pub(super) fn run(command: &OsStr, timeout: Duration) -> Result<Zeroizing<Vec<u8>>, MasterError> {
    use std::io::Read;
    use std::os::fd::AsFd;

    let deadline = Instant::now().checked_add(timeout);
    let (mut group, mut stdout) = Group::spawn(command).map_err(MasterError::CommandStart)?;
    // Room for one byte too many, allocated once: a growing `Vec` would leave copies.
    let mut output = Zeroizing::new(vec![0u8; MAX_LEN + 1]);
    let mut len = 0;
    let mut open = true;
    let mut tick = Duration::from_millis(1);
    loop {
        if let Some(status) = group.exit_status().map_err(MasterError::CommandStart)? {
            if !status.success() {
                return Err(MasterError::CommandFailed { status });
            }
            if !open {
                output.truncate(len);
                return Ok(output);
            }
        }
        let left = time_left(deadline).ok_or(MasterError::CommandTimedOut { timeout })?;
        let exit = group.exit_fd();
        // Without a pidfd to wait on, the exit is looked for every tick.
        let wait = match exit {
            Some(_) => left.min(MAX_WAIT),
            None => left.min(tick),
        };
        tick = (tick * 2).min(MAX_TICK);
        let pipe = open.then(|| stdout.as_fd());
        if wait_for(pipe, exit, wait).map_err(MasterError::CommandStart)? {
            match stdout.read(&mut output[len..]) {
                Ok(0) => open = false,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(MasterError::CommandStart(e)),
            }
            if len > MAX_LEN {
                return Err(MasterError::TooLong);
            }
        }
    }
}

/// The longest wait between two looks at whether a command has exited, without a pidfd.
#[cfg(unix)]
const MAX_TICK: Duration = Duration::from_millis(50);

/// The longest single wait (the deadline is checked after each).
#[cfg(unix)]
const MAX_WAIT: Duration = Duration::from_secs(1);

/// How long until `deadline` (`None`: later than the clock can say, so never); `None` once
/// it has passed.
fn time_left(deadline: Option<Instant>) -> Option<Duration> {
    match deadline {
        Some(deadline) => deadline
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero()),
        None => Some(Duration::MAX),
    }
}

/// Waits at most `wait` for `pipe` to have something to read (or its end), or `exit` to
/// say the command exited; whether `pipe` can be read.
#[cfg(unix)]
fn wait_for(
    pipe: Option<std::os::fd::BorrowedFd<'_>>,
    exit: Option<std::os::fd::BorrowedFd<'_>>,
    wait: Duration,
) -> io::Result<bool> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};

    let wait = Timespec::try_from(wait).map_err(io::Error::other)?;
    let mut fds: Vec<PollFd<'_>> = [pipe, exit]
        .into_iter()
        .flatten()
        .map(|fd| PollFd::from_borrowed_fd(fd, PollFlags::IN))
        .collect();
    match poll(&mut fds, Some(&wait)) {
        Ok(_) => Ok(pipe.is_some() && fds.first().is_some_and(|fd| !fd.revents().is_empty())),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A command running as the leader of a process group of its own. Whatever happens to
/// the one reading it, the group is killed and the command reaped when this is dropped.
#[cfg(unix)]
struct Group {
    child: std::process::Child,
    /// A pidfd of the command, readable once it has exited (Linux 5.3 and later).
    #[cfg(target_os = "linux")]
    pidfd: Option<std::os::fd::OwnedFd>,
    /// Its exit status, once it has been reaped.
    status: Option<std::process::ExitStatus>,
}

#[cfg(unix)]
impl Group {
    /// Starts `command` in a new process group, standard input closed, standard error
    /// passed through, standard output a pipe (returned).
    fn spawn(command: &OsStr) -> io::Result<(Self, std::process::ChildStdout)> {
        use std::os::unix::process::CommandExt;

        let mut child = shell(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()?;
        let stdout = child.stdout.take();
        let group = Self {
            // The pid is the child's and unreaped: it cannot name another process.
            #[cfg(target_os = "linux")]
            pidfd: rustix::process::pidfd_open(
                rustix::process::Pid::from_child(&child),
                rustix::process::PidfdFlags::empty(),
            )
            .ok(),
            child,
            status: None,
        };
        let stdout = stdout.ok_or_else(|| io::Error::other("no pipe to the command's output"))?;
        Ok((group, stdout))
    }

    /// What to wait on for the command's exit, while it runs (none: look every tick).
    fn exit_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        #[cfg(target_os = "linux")]
        if self.status.is_none() {
            return self.pidfd.as_ref().map(std::os::fd::AsFd::as_fd);
        }
        None
    }

    /// The command's exit status, once it has exited. At that moment every process left in
    /// its group is killed, then the command is reaped.
    fn exit_status(&mut self) -> io::Result<Option<std::process::ExitStatus>> {
        if self.status.is_none() && has_exited(&mut self.child)? {
            self.kill_group();
            self.status = Some(self.child.wait()?);
        }
        Ok(self.status)
    }

    /// SIGKILL to every process of the group. Its id is the command's pid, which stays the
    /// command's until the command is reaped.
    fn kill_group(&self) {
        let group = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
}

#[cfg(unix)]
impl Drop for Group {
    fn drop(&mut self) {
        if self.status.is_none() {
            self.kill_group();
            // The command itself, should it have moved to another group.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether `child` has exited, leaving it unreaped (`WNOWAIT`): until it is reaped its pid,
/// which is its group's id, cannot be given to another process.
#[cfg(all(
    unix,
    not(any(
        target_os = "openbsd",
        target_os = "cygwin",
        target_os = "horizon",
        target_os = "redox"
    ))
))]
fn has_exited(child: &mut std::process::Child) -> io::Result<bool> {
    use rustix::process::{Pid, WaitId, WaitIdOptions, waitid};

    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    match waitid(WaitId::Pid(Pid::from_child(child)), options) {
        Ok(status) => Ok(status.is_some()),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether `child` has exited, where there is no `waitid`: it is reaped here, and its
/// group is killed just after (its leftovers keep the group's id from being reused).
#[cfg(all(
    unix,
    any(
        target_os = "openbsd",
        target_os = "cygwin",
        target_os = "horizon",
        target_os = "redox"
    )
))]
fn has_exited(child: &mut std::process::Child) -> io::Result<bool> {
    Ok(child.try_wait()?.is_some())
}

/// Runs `command` and returns what it printed (at most [`MAX_LEN`] bytes), giving it
/// `timeout` to exit and close its standard output; at the deadline it is killed. (There
/// are no process groups to kill here: a process it started that holds its output makes it
/// time out.)
#[cfg(not(unix))]
pub(super) fn run(command: &OsStr, timeout: Duration) -> Result<Zeroizing<Vec<u8>>, MasterError> {
    let deadline = Instant::now().checked_add(timeout);
    let mut child = shell(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(MasterError::CommandStart)?;
    let stdout = child.stdout.take();
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let output = match stdout {
            Some(stdout) => crate::secret_file::read_bounded(stdout, MAX_LEN),
            None => Ok(Some(Zeroizing::new(Vec::new()))),
        };
        let _ = send.send(output);
    });
    let give_up = |child: &mut std::process::Child, error| {
        let _ = child.kill();
        let _ = child.wait();
        Err(error)
    };
    let output = match time_left(deadline).map(|left| receive.recv_timeout(left)) {
        Some(Ok(Ok(Some(output)))) => output,
        Some(Ok(Ok(None))) => return give_up(&mut child, MasterError::TooLong),
        Some(Ok(Err(e))) => return give_up(&mut child, MasterError::CommandStart(e)),
        Some(Err(_)) | None => {
            return give_up(&mut child, MasterError::CommandTimedOut { timeout });
        }
    };
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(output),
            Ok(Some(status)) => return Err(MasterError::CommandFailed { status }),
            Ok(None) => {}
            Err(e) => return give_up(&mut child, MasterError::CommandStart(e)),
        }
        match time_left(deadline) {
            Some(left) => std::thread::sleep(left.min(Duration::from_millis(50))),
            None => return give_up(&mut child, MasterError::CommandTimedOut { timeout }),
        }
    }
}

#[cfg(unix)]
fn shell(command: &OsStr) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(command);
    cmd
}

#[cfg(windows)]
fn shell(command: &OsStr) -> Command {
    let mut cmd = Command::new("cmd");
    cmd.arg("/C").arg(command);
    cmd
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::master::MasterSource;
    use std::fs;
    use std::path::Path;

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
}
