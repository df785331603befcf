//! Reloading the masters and the policy while they are in use, off the request path: the
//! one mechanism of `gobuildkey serve` and `gobuildkey verify --batch`.
//!
//! A [`Live`] value is what requests read: they take the current one ([`Live::current`])
//! and never wait for a reload. A [`Reloader`] runs the loads on a thread of its own, when
//! asked (SIGHUP: [`Reloader::request`]) or when a watched file changes ([`Reloader::watch`],
//! inotify): the changes of a moment (an editor's several writes, Kubernetes' swap of a
//! `..data` link) are gathered into one load. A load that succeeds replaces the value at
//! once; one that fails leaves it in place, with every revocation it holds, and the
//! failure is recorded in [`Live::health`] until a load succeeds, as nginx keeps its
//! configuration after a bad reload. How long a load may take is the loader's business:
//! the masters' and keyrings' commands run with a deadline (`--command-timeout`).
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use gobuildkey::reload::{Live, Reloader};
//!
//! let live = Arc::new(Live::new(0u32));
//! let loads = Arc::new(AtomicU32::new(0));
//! let counter = Arc::clone(&loads);
//! let (done, finished) = std::sync::mpsc::channel();
//! let reloader = Reloader::spawn(
//!     Arc::clone(&live),
//!     move || match counter.fetch_add(1, Ordering::SeqCst) {
//!         0 => Ok(1),
//!         _ => Err("the policy, line 2: not valid TOML".to_owned()),
//!     },
//!     move |event| { let _ = done.send(format!("{event:?}")); },
//! )?;
//! reloader.request();
//! while !finished.recv()?.starts_with("Loaded") {}
//! assert_eq!(*live.current(), 1);
//! reloader.request();
//! while !finished.recv()?.starts_with("Failed") {}
//! // The failed load kept the last good value, and says why.
//! assert_eq!(*live.current(), 1);
//! assert!(live.health().failure.is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashSet;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

/// How long the changes of a moment are gathered before one load.
const SETTLE: Duration = Duration::from_millis(200);
/// The longest a stream of changes delays a load.
const SETTLE_AT_MOST: Duration = Duration::from_secs(2);
/// How often the watched files are looked at, besides inotify: a folder replaced, a file
/// reached through a link to another folder, or no inotify at all.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// The name of the link Kubernetes swaps to update a mounted Secret or ConfigMap.
const KUBERNETES_DATA: &str = "..data";

/// A value loaded from files, replaced whole by each successful reload.
#[derive(Debug)]
pub struct Live<T> {
    current: RwLock<Arc<T>>,
    health: Mutex<Health>,
}

/// How the loads went: when the value in use was loaded, the last attempt, and the
/// failures since the last success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// When the value in use was loaded.
    pub loaded_at: Timestamp,
    /// When the last reload (successful or not) ended; `None` before any.
    pub last_reload: Option<Timestamp>,
    /// Set while reloads fail; cleared by one that succeeds.
    pub failure: Option<Failure>,
}

/// Reloads failing since the last good load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The last failure's error, on one line.
    pub error: String,
    /// When the first failed.
    pub since: Timestamp,
}

impl<T> Live<T> {
    /// `value`, loaded now.
    pub fn new(value: T) -> Self {
        Self {
            current: RwLock::new(Arc::new(value)),
            health: Mutex::new(Health {
                loaded_at: Timestamp::now(),
                last_reload: None,
                failure: None,
            }),
        }
    }

    /// The value in use.
    pub fn current(&self) -> Arc<T> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// How the loads went.
    pub fn health(&self) -> Health {
        self.health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn replace(&self, value: T, at: Timestamp) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(value);
        let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        *health = Health {
            loaded_at: at,
            last_reload: Some(at),
            failure: None,
        };
    }

    fn failed(&self, error: String, at: Timestamp) {
        let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        health.last_reload = Some(at);
        let since = health.failure.as_ref().map_or(at, |f| f.since);
        health.failure = Some(Failure { error, since });
    }
}

/// Asks a [`Reloader`] for reloads; it goes on working once the reloader is dropped, and
/// then asks nobody.
#[derive(Debug, Clone)]
pub struct Requester(Sender<Cause>);

impl Requester {
    /// As [`Reloader::request`].
    pub fn request(&self) {
        let _ = self.0.send(Cause::Request);
    }
}

/// Why a reload happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Asked for ([`Reloader::request`]: SIGHUP).
    Request,
    /// A watched file changed.
    Change,
}

/// What a [`Reloader`] reports, as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A reload begins.
    Started(Cause),
    /// It succeeded: the new value is in use.
    Loaded(Timestamp),
    /// It failed (the error, on one line): the last good value is kept.
    Failed(String),
}

/// Runs reloads of a [`Live`] value on a thread of its own (see the [module](self)
/// documentation). Dropping it stops the thread once a load under way ends.
pub struct Reloader {
    requests: Sender<Cause>,
    /// The files looked at every [`LOOK_EVERY`], and what was seen (shared with the
    /// thread).
    looked: Arc<Mutex<Looked>>,
    watcher: Option<RecommendedWatcher>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("watching", &self.watcher.is_some())
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// Starts the thread that reloads `live` with `load`, telling `events` how each
    /// reload goes.
    ///
    /// # Errors
    /// The thread cannot be started.
    pub fn spawn<T, L, E>(live: Arc<Live<T>>, mut load: L, mut events: E) -> io::Result<Self>
    where
        T: Send + Sync + 'static,
        L: FnMut() -> Result<T, String> + Send + 'static,
        E: FnMut(Event) + Send + 'static,
    {
        let (requests, received) = mpsc::channel::<Cause>();
        let looked = Arc::new(Mutex::new(Looked::default()));
        let shared = Arc::clone(&looked);
        std::thread::Builder::new()
            .name("gobuildkey-reload".into())
            .spawn(move || {
                let look = || shared.lock().unwrap_or_else(PoisonError::into_inner);
                loop {
                    let first = match received.recv_timeout(LOOK_EVERY) {
                        Ok(cause) => cause,
                        Err(RecvTimeoutError::Disconnected) => return,
                        Err(RecvTimeoutError::Timeout) => {
                            if !look().changed() {
                                continue;
                            }
                            Cause::Change
                        }
                    };
                    // Gather what arrives while things settle into one load; a request
                    // (SIGHUP) among them names the cause.
                    let mut cause = first;
                    let deadline = Instant::now() + SETTLE_AT_MOST;
                    loop {
                        let wait = SETTLE.min(deadline.saturating_duration_since(Instant::now()));
                        match received.recv_timeout(wait) {
                            Ok(Cause::Request) => cause = Cause::Request,
                            Ok(Cause::Change) => {}
                            Err(RecvTimeoutError::Timeout) => break,
                            Err(RecvTimeoutError::Disconnected) => return,
                        }
                    }
                    // Looked at before the load: a change made while it runs is seen next time.
                    look().refresh();
                    events(Event::Started(cause));
                    match load() {
                        Ok(value) => {
                            let at = Timestamp::now();
                            live.replace(value, at);
                            events(Event::Loaded(at));
                        }
                        Err(error) => {
                            live.failed(error.clone(), Timestamp::now());
                            events(Event::Failed(error));
                        }
                    }
                }
            })?;
        Ok(Self {
            requests,
            looked,
            watcher: None,
        })
    }

    /// Asks for a reload (SIGHUP). Requests made while one is under way make one more.
    pub fn request(&self) {
        let _ = self.requests.send(Cause::Request);
    }

    /// A handle that asks for reloads from another thread (a signal handler's).
    #[must_use]
    pub fn requester(&self) -> Requester {
        Requester(self.requests.clone())
    }

    /// Reloads also when one of `files` changes: written, replaced, removed, its mode or
    /// owner changed, or, for a file in a Kubernetes volume, the volume's `..data` link
    /// swapped. Each file's folder is watched with inotify, so a change is seen at once
    /// (a file replaced by rename included; other files there are ignored); and every
    /// second the files are looked at (through their links: the file, its size, times,
    /// mode and inode), which sees what inotify cannot: the folder itself replaced, a file
    /// reached through a link to another folder.
    ///
    /// # Errors
    /// inotify is not available or a folder cannot be watched: the files are still looked
    /// at every second.
    pub fn watch(&mut self, files: &[PathBuf]) -> Result<(), notify::Error> {
        {
            let mut looked = self.looked.lock().unwrap_or_else(PoisonError::into_inner);
            files.clone_into(&mut looked.files);
            looked.refresh();
        }
        let mut names: HashSet<OsString> = HashSet::from([OsString::from(KUBERNETES_DATA)]);
        let mut folders: HashSet<PathBuf> = HashSet::new();
        for file in files {
            let file = std::path::absolute(file)?;
            if let Some(name) = file.file_name() {
                names.insert(name.to_owned());
            }
            folders.insert(
                file.parent()
                    .map_or_else(|| PathBuf::from("/"), Path::to_path_buf),
            );
        }
        let requests = self.requests.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                let changes = matches!(
                    event.kind,
                    EventKind::Create(_)
                        | EventKind::Modify(_)
                        | EventKind::Remove(_)
                        | EventKind::Access(AccessKind::Close(AccessMode::Write))
                );
                // Reading the files (as each load does) is no change.
                if changes
                    && event
                        .paths
                        .iter()
                        .any(|path| path.file_name().is_some_and(|name| names.contains(name)))
                {
                    let _ = requests.send(Cause::Change);
                }
            })?;
        for folder in &folders {
            watcher.watch(folder, RecursiveMode::NonRecursive)?;
        }
        self.watcher = Some(watcher);
        Ok(())
    }
}

/// The watched files and what the last look at them saw.
#[derive(Debug, Default)]
struct Looked {
    files: Vec<PathBuf>,
    seen: Stamp,
}

impl Looked {
    /// Looks again; whether anything changed since the last look.
    fn changed(&mut self) -> bool {
        let now = Stamp::of(&self.files);
        let changed = now != self.seen;
        self.seen = now;
        changed
    }

    fn refresh(&mut self) {
        self.seen = Stamp::of(&self.files);
    }
}

/// What a look at the watched files sees: for each, the file its links lead to and its
/// identity, size, times, mode and owner (`None` when it cannot be reached).
#[derive(Debug, Default, PartialEq, Eq)]
struct Stamp(Vec<Option<(PathBuf, [i64; 9])>>);

impl Stamp {
    fn of(files: &[PathBuf]) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self(
            files
                .iter()
                .map(|file| {
                    let target = std::fs::canonicalize(file).ok()?;
                    let m = std::fs::metadata(&target).ok()?;
                    // As numbers, for comparing only.
                    #[allow(clippy::cast_possible_wrap)]
                    let seen = [
                        m.dev() as i64,
                        m.ino() as i64,
                        m.size() as i64,
                        m.mtime(),
                        m.mtime_nsec(),
                        m.ctime(),
                        m.ctime_nsec(),
                        i64::from(m.mode()),
                        i64::from(m.uid()),
                    ];
                    Some((target, seen))
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A reloader of a counter that reads `file`, and the events it reported.
    fn counter(
        file: PathBuf,
    ) -> (
        Arc<Live<String>>,
        Reloader,
        mpsc::Receiver<Event>,
        Arc<AtomicU32>,
    ) {
        let live = Arc::new(Live::new(String::new()));
        let loads = Arc::new(AtomicU32::new(0));
        let count = Arc::clone(&loads);
        let (tx, rx) = mpsc::channel();
        let reloader = Reloader::spawn(
            Arc::clone(&live),
            move || {
                count.fetch_add(1, Ordering::SeqCst);
                std::fs::read_to_string(&file).map_err(|e| e.to_string())
            },
            move |event| {
                let _ = tx.send(event);
            },
        )
        .unwrap();
        (live, reloader, rx, loads)
    }

    fn next_end(events: &mpsc::Receiver<Event>) -> Event {
        loop {
            match events.recv_timeout(Duration::from_secs(60)).unwrap() {
                Event::Started(_) => {}
                end => return end,
            }
        }
    }

    #[test]
    fn a_failed_reload_keeps_the_last_good_value_and_says_since_when() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy");
        std::fs::write(&file, "one").unwrap();
        let (live, reloader, events, _) = counter(file.clone());
        reloader.request();
        assert!(matches!(next_end(&events), Event::Loaded(_)));
        assert_eq!(*live.current(), "one");
        std::fs::remove_file(&file).unwrap();
        reloader.request();
        assert!(matches!(next_end(&events), Event::Failed(_)));
        reloader.request();
        assert!(matches!(next_end(&events), Event::Failed(_)));
        let health = live.health();
        let failure = health.failure.unwrap();
        assert_eq!(*live.current(), "one");
        assert!(failure.since <= health.last_reload.unwrap());
        std::fs::write(&file, "two").unwrap();
        reloader.request();
        assert!(matches!(next_end(&events), Event::Loaded(_)));
        assert_eq!(*live.current(), "two");
        assert_eq!(live.health().failure, None);
    }

    /// Requests made in a burst make one load.
    #[test]
    fn a_burst_of_requests_is_one_load() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy");
        std::fs::write(&file, "one").unwrap();
        let (_live, reloader, events, loads) = counter(file);
        for _ in 0..50 {
            reloader.request();
        }
        assert!(matches!(next_end(&events), Event::Loaded(_)));
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    /// Writing the file, replacing it by rename, and Kubernetes' swap of the `..data` link
    /// each make a reload; reading it (as every load does) and other files do not.
    #[test]
    fn changes_of_the_watched_files_reload_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy");
        std::fs::write(&file, "one").unwrap();
        let (live, mut reloader, events, loads) = counter(file.clone());
        reloader.watch(std::slice::from_ref(&file)).unwrap();

        std::fs::write(&file, "two").unwrap();
        assert!(matches!(next_end(&events), Event::Loaded(_)));
        assert_eq!(*live.current(), "two");

        let temp = dir.path().join(".policy.tmp");
        std::fs::write(&temp, "three").unwrap();
        std::fs::rename(&temp, &file).unwrap();
        assert!(matches!(next_end(&events), Event::Loaded(_)));
        assert_eq!(*live.current(), "three");

        // The load read the file: no reload from that. Another file: none either. Then a
        // request shows that nothing else was queued before it.
        std::fs::write(dir.path().join("audit.log"), "x").unwrap();
        let before = loads.load(Ordering::SeqCst);
        reloader.request();
        assert!(matches!(next_end(&events), Event::Loaded(_)));
        assert_eq!(loads.load(Ordering::SeqCst), before + 1);
        assert!(events.try_recv().is_err());
    }
}

#[cfg(test)]
mod looking {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// What inotify on the file's folder cannot see, the look every second does: the file
    /// behind a link into another folder replaced, the folder itself replaced.
    #[test]
    fn a_look_sees_a_link_target_elsewhere_and_a_replaced_folder() {
        let dir = tempfile::tempdir().unwrap();
        let (here, there) = (dir.path().join("here"), dir.path().join("there"));
        std::fs::create_dir(&here).unwrap();
        std::fs::create_dir(&there).unwrap();
        std::fs::write(there.join("policy"), "one").unwrap();
        std::os::unix::fs::symlink(there.join("policy"), here.join("policy")).unwrap();
        let files = [here.join("policy")];
        let before = Stamp::of(&files);
        assert_eq!(before, Stamp::of(&files), "nothing changed");
        std::fs::write(there.join("new"), "two").unwrap();
        std::fs::rename(there.join("new"), there.join("policy")).unwrap();
        let after = Stamp::of(&files);
        assert_ne!(before, after, "the target replaced");
        std::fs::rename(&there, dir.path().join("old")).unwrap();
        std::fs::create_dir(&there).unwrap();
        std::fs::copy(dir.path().join("old/policy"), there.join("policy")).unwrap();
        assert_ne!(after, Stamp::of(&files), "the folder replaced");
        std::fs::remove_dir_all(&there).unwrap();
        assert_eq!(Stamp::of(&files).0, [None], "gone");
    }
}
