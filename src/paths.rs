//! Where the builder agent (Go's buildlet) looks for its key.
//!
//! This module is the only place that encodes the lookup; `install`, `path`, `check` and
//! `probe` all ask [`locate`] or [`Candidates`]. The rules, from golang.org/x/build's
//! buildlet (`keyForMode` in cmd/buildlet):
//!
//! 1. If `GO_BUILD_KEY_PATH` is set and not empty, the key file is that path, as it is.
//! 2. Otherwise it is Go's `filepath.Join(<home>, ".gobuildkey-" + <host type>)`: joined and
//!    then cleaned *lexically* ([`go_clean`]), so `HOME=/home/a/link/..` means `/home` even
//!    when `link` is a symbolic link to a folder elsewhere.
//! 3. Nothing else. The legacy `<home>/.gobuildkey` was read only by buildlets built before
//!    November 2019 (started with `-reverse` and one builder type), and only when the file
//!    of rule 1 or 2 did not exist; buildlets built since then (`-reverse-type`) never read
//!    it. It is still a [`Candidates`] entry, for `install --legacy` and to say that it is
//!    not read.
//!
//! `<home>` is `$HOME`; if that is empty or unset, `/root` for uid 0 and `/` otherwise. On
//! Windows it is `%HOMEDRIVE%%HOMEPATH%`, on Plan 9 `$home`. The whole file is read and the
//! whitespace around it trimmed. When `GO_BUILD_KEY_DELETE_AFTER_READ` is true by Go's
//! `strconv.ParseBool`, the agent deletes the file after reading it.
//!
//! None of this happens unless the buildlet's `-coordinator` starts with
//! `farmer.golang.org` ([`stock_buildlet_reads_key_file`]): with any other address (its
//! default is `localhost:8119`) a stock buildlet is in its dev mode, reads no key file and
//! sends the dev key, the HMAC-MD5 of the host type under [`DEV_MASTER`].

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use crate::principal::Principal;

/// The variable naming the key file, overriding the home folder's files.
pub const ENV_KEY_PATH: &str = "GO_BUILD_KEY_PATH";
/// The variable that makes the agent delete the key file after reading it.
pub const ENV_DELETE_AFTER_READ: &str = "GO_BUILD_KEY_DELETE_AFTER_READ";
/// The name of the legacy key file in the home folder.
pub const LEGACY_FILE_NAME: &str = ".gobuildkey";
/// What a stock buildlet's `-coordinator` must start with for it to read a key file at
/// all (Go's `isDevReverseMode` is the negation).
pub const PRODUCTION_COORDINATOR_PREFIX: &str = "farmer.golang.org";
/// A stock buildlet's `-coordinator` when none is given: dev mode.
pub const DEFAULT_COORDINATOR: &str = "localhost:8119";
/// The master under which a buildlet in dev mode computes the key it sends (HMAC-MD5 of
/// the host type); only a coordinator in dev mode uses it too.
pub const DEV_MASTER: &str = "gophers rule";

/// Whether a stock buildlet started with `-coordinator coordinator` reads its key file:
/// only when the address starts with `farmer.golang.org`, byte for byte, as Go's
/// `strings.HasPrefix` has it. Otherwise it is in dev mode and sends the dev key (HMAC-MD5
/// of the host type under [`DEV_MASTER`]) without looking for a file.
///
/// ```
/// use gobuildkey::paths::stock_buildlet_reads_key_file as reads;
///
/// assert!(reads("farmer.golang.org"));
/// assert!(reads("farmer.golang.org:443"));
/// assert!(reads("farmer.golang.org.farm.example:443")); // a prefix, not a host name
/// assert!(!reads("localhost:8119")); // the buildlet's default
/// assert!(!reads("farm.example:443"));
/// assert!(!reads("https://farmer.golang.org")); // a scheme is not part of the address
/// assert!(!reads("Farmer.golang.org:443")); // case counts
/// assert!(!reads(""));
/// ```
#[must_use]
pub fn stock_buildlet_reads_key_file(coordinator: &str) -> bool {
    coordinator.starts_with(PRODUCTION_COORDINATOR_PREFIX)
}

/// Go's `path.Clean`, which is `filepath.Clean` on Unix: the shortest path that names the
/// same file by purely lexical processing, without looking at the disk (so a symbolic link
/// followed by `..` is undone, not resolved). The rules, applied until none applies:
///
/// 1. replace multiple slashes with one;
/// 2. drop each `.` element;
/// 3. drop each `..` element together with the element before it, when that element is
///    not itself `..`;
/// 4. drop the `..` elements that begin a rooted path (`/..` is `/`).
///
/// A trailing slash is dropped unless the result is `/`; an empty result is `.`. A relative
/// path keeps the `..` elements it cannot drop (`a/../..` is `..`).
///
/// ```
/// use gobuildkey::paths::go_clean;
///
/// assert_eq!(go_clean(b"/home/a/link/../.gobuildkey-host-x"), b"/home/a/.gobuildkey-host-x");
/// assert_eq!(go_clean(b""), b".");
/// ```
#[must_use]
pub fn go_clean(path: &[u8]) -> Vec<u8> {
    const SEP: u8 = b'/';
    if path.is_empty() {
        return b".".to_vec();
    }
    let n = path.len();
    let rooted = path[0] == SEP;
    let mut out: Vec<u8> = Vec::with_capacity(n);
    // `r` reads `path`; `dotdot` is where `out` can back up to (after the root, or after
    // the leading `..` elements of a relative path).
    let (mut r, mut dotdot) = (0, 0);
    if rooted {
        out.push(SEP);
        (r, dotdot) = (1, 1);
    }
    let ends_element = |i: usize| i == n || path[i] == SEP;
    while r < n {
        if path[r] == SEP || (path[r] == b'.' && ends_element(r + 1)) {
            // An empty element (a slash after a slash) or ".": dropped.
            r += 1;
        } else if path[r] == b'.' && r + 1 < n && path[r + 1] == b'.' && ends_element(r + 2) {
            r += 2;
            if out.len() > dotdot {
                // Back up over the last element and the slash before it.
                out.pop();
                while out.len() > dotdot && out.last() != Some(&SEP) {
                    out.pop();
                }
                if out.len() > dotdot {
                    out.pop();
                }
            } else if !rooted {
                if !out.is_empty() {
                    out.push(SEP);
                }
                out.extend_from_slice(b"..");
                dotdot = out.len();
            }
        } else {
            if (rooted && out.len() != 1) || (!rooted && !out.is_empty()) {
                out.push(SEP);
            }
            while r < n && path[r] != SEP {
                out.push(path[r]);
                r += 1;
            }
        }
    }
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

/// Go's `filepath.Join(dir, name)` on Unix: the two joined with a slash and cleaned by
/// [`go_clean`] (an empty `dir` is left out). Elsewhere the two are joined as
/// [`Path::join`] does, without cleaning.
#[must_use]
pub fn go_join(dir: &Path, name: &str) -> PathBuf {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::{OsStrExt, OsStringExt};
        let dir = dir.as_os_str().as_bytes();
        let mut joined = Vec::with_capacity(dir.len() + 1 + name.len());
        if !dir.is_empty() {
            joined.extend_from_slice(dir);
            joined.push(b'/');
        }
        joined.extend_from_slice(name.as_bytes());
        PathBuf::from(OsString::from_vec(go_clean(&joined)))
    }
    #[cfg(not(unix))]
    {
        dir.join(name)
    }
}

/// What the agent's lookup depends on: its home folder and two environment variables.
///
/// [`AgentEnv::from_process`] reads them as the agent would; tests build one directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentEnv {
    /// The home folder, resolved as the agent resolves it.
    pub home: PathBuf,
    /// `GO_BUILD_KEY_PATH`, when set and not empty.
    pub key_path: Option<PathBuf>,
    /// Whether `GO_BUILD_KEY_DELETE_AFTER_READ` is true by Go's `strconv.ParseBool`.
    pub delete_after_read: bool,
}

impl AgentEnv {
    /// The agent's view of this process's environment.
    #[must_use]
    pub fn from_process() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Self {
            home: agent_home(&var),
            key_path: var(ENV_KEY_PATH).map(PathBuf::from),
            delete_after_read: var(ENV_DELETE_AFTER_READ)
                .is_some_and(|v| go_parse_bool_true(&v.to_string_lossy())),
        }
    }
}

/// Whether Go's `strconv.ParseBool` reads `value` as true. Anything it cannot parse is
/// false, as the agent ignores the parse error.
///
/// ```
/// use gobuildkey::paths::go_parse_bool_true;
///
/// for t in ["1", "t", "T", "TRUE", "true", "True"] {
///     assert!(go_parse_bool_true(t));
/// }
/// for f in ["0", "false", "yes", "on", " true", "tRUE", ""] {
///     assert!(!go_parse_bool_true(f));
/// }
/// ```
#[must_use]
pub fn go_parse_bool_true(value: &str) -> bool {
    matches!(value, "1" | "t" | "T" | "TRUE" | "true" | "True")
}

#[cfg(unix)]
fn agent_home(var: &dyn Fn(&str) -> Option<OsString>) -> PathBuf {
    match var("HOME") {
        Some(home) => PathBuf::from(home),
        None if rustix::process::getuid().is_root() => PathBuf::from("/root"),
        None => PathBuf::from("/"),
    }
}

#[cfg(windows)]
fn agent_home(var: &dyn Fn(&str) -> Option<OsString>) -> PathBuf {
    let mut home = var("HOMEDRIVE").unwrap_or_default();
    home.push(var("HOMEPATH").unwrap_or_default());
    PathBuf::from(home)
}

#[cfg(not(any(unix, windows)))]
fn agent_home(var: &dyn Fn(&str) -> Option<OsString>) -> PathBuf {
    // Elsewhere: `$home`, as the agent's `homedir` has it for Plan 9.
    PathBuf::from(var("home").unwrap_or_default())
}

/// The rule by which a file is (or would be) the agent's key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// `GO_BUILD_KEY_PATH` names it.
    EnvPath,
    /// The per-host file `<home>/.gobuildkey-<host type>`.
    PerHost,
    /// The legacy `<home>/.gobuildkey`, which buildlets built since 2019 never read (older
    /// ones read it when the file of the first two rules did not exist). Never the rule of a
    /// [`Location`]'s own path: only of a file it lists as not read, and of the file
    /// `install --legacy` writes.
    Legacy,
}

impl Rule {
    /// One line saying what the rule is.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::EnvPath => "GO_BUILD_KEY_PATH names it",
            Self::PerHost => "the per-host key file in the home folder",
            Self::Legacy => {
                "the legacy ~/.gobuildkey, not read by buildlets built since 2019 (only older \
                 ones, started with -reverse and one builder type, read it when the per-host \
                 file did not exist)"
            }
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EnvPath => "GO_BUILD_KEY_PATH",
            Self::PerHost => "per-host",
            Self::Legacy => "legacy",
        })
    }
}

/// The files the agent may read for a principal, before looking at the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidates {
    /// The file of rule 1 or 2, the only file the agent reads: `GO_BUILD_KEY_PATH`, else
    /// the per-host file. `install` writes here.
    pub primary: (PathBuf, Rule),
    /// The per-host file (cleaned as Go's `filepath.Join` cleans it), which
    /// `GO_BUILD_KEY_PATH` hides.
    pub per_host: PathBuf,
    /// The legacy `<home>/.gobuildkey` (cleaned the same way), which buildlets built since
    /// 2019 do not read; `install --legacy` writes here for older ones.
    pub legacy: PathBuf,
}

impl Candidates {
    /// The candidates for `principal` in `env`.
    ///
    /// ```
    /// use gobuildkey::paths::{AgentEnv, Candidates, Rule};
    ///
    /// let env = AgentEnv { home: "/home/gopher".into(), key_path: None, delete_after_read: false };
    /// let c = Candidates::new(&"host-linux-arm-aws".parse()?, &env);
    /// assert_eq!(c.primary, ("/home/gopher/.gobuildkey-host-linux-arm-aws".into(), Rule::PerHost));
    /// assert_eq!(c.legacy, std::path::PathBuf::from("/home/gopher/.gobuildkey"));
    ///
    /// // The home folder is joined and cleaned as Go's filepath.Join does: lexically.
    /// let env = AgentEnv { home: "/home/a/link/..//".into(), key_path: None, delete_after_read: false };
    /// let c = Candidates::new(&"host-x".parse()?, &env);
    /// assert_eq!(c.per_host, std::path::PathBuf::from("/home/a/.gobuildkey-host-x"));
    /// # Ok::<(), gobuildkey::principal::PrincipalError>(())
    /// ```
    #[must_use]
    pub fn new(principal: &Principal, env: &AgentEnv) -> Self {
        let per_host = go_join(
            &env.home,
            &format!("{LEGACY_FILE_NAME}-{}", principal.as_str()),
        );
        let primary = match &env.key_path {
            Some(path) => (path.clone(), Rule::EnvPath),
            None => (per_host.clone(), Rule::PerHost),
        };
        Self {
            primary,
            per_host,
            legacy: go_join(&env.home, LEGACY_FILE_NAME),
        }
    }
}

/// Where the agent will read its key, as [`locate`] finds it on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file the agent will read (it may not exist: then the agent fails).
    pub path: PathBuf,
    /// The rule that chose it: [`Rule::EnvPath`] or [`Rule::PerHost`], never
    /// [`Rule::Legacy`].
    pub rule: Rule,
    /// Whether something exists at `path`.
    pub exists: bool,
    /// Other candidate files that exist but are not read, with their rules: the per-host
    /// file when `GO_BUILD_KEY_PATH` hides it, and the legacy file.
    pub shadowed: Vec<(PathBuf, Rule)>,
}

impl Location {
    /// The existing file of `rule` that is not read, if there is one.
    #[must_use]
    pub fn shadowed_by(&self, rule: Rule) -> Option<&Path> {
        self.shadowed
            .iter()
            .find(|(_, r)| *r == rule)
            .map(|(path, _)| path.as_path())
    }
}

/// Which file the agent will read for `principal`, by which rule, and which other existing
/// candidate files it does not read.
///
/// The agent reads one file: `GO_BUILD_KEY_PATH`, else the per-host file. When that file is
/// missing it fails, whatever else exists; the legacy `~/.gobuildkey` is never read.
/// Existence is judged as the agent's `os.ReadFile` judges it: through links, so a
/// dangling link counts as missing.
///
/// ```
/// use gobuildkey::paths::{locate, AgentEnv, Rule};
///
/// let home = tempfile::tempdir()?;
/// let env = AgentEnv { home: home.path().into(), key_path: None, delete_after_read: false };
/// let host = "host-linux-arm-aws".parse()?;
/// let per_host = home.path().join(".gobuildkey-host-linux-arm-aws");
///
/// // Nothing installed: the agent will look for the per-host file and fail.
/// let loc = locate(&host, &env);
/// assert_eq!((loc.rule, loc.exists), (Rule::PerHost, false));
///
/// // Only a legacy file: the agent still reads (and misses) the per-host file.
/// std::fs::write(home.path().join(".gobuildkey"), "key\n")?;
/// let loc = locate(&host, &env);
/// assert_eq!((&loc.path, loc.rule, loc.exists), (&per_host, Rule::PerHost, false));
/// assert_eq!(loc.shadowed_by(Rule::Legacy), Some(home.path().join(".gobuildkey").as_path()));
///
/// // The per-host file is read; the legacy one is not.
/// std::fs::write(&per_host, "key\n")?;
/// let loc = locate(&host, &env);
/// assert_eq!((loc.rule, loc.exists), (Rule::PerHost, true));
/// assert_eq!(loc.shadowed, [(home.path().join(".gobuildkey"), Rule::Legacy)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub fn locate(principal: &Principal, env: &AgentEnv) -> Location {
    let candidates = Candidates::new(principal, env);
    let (primary, rule) = candidates.primary;
    let exists = |path: &Path| fs::metadata(path).is_ok();
    let mut others = Vec::new();
    if rule == Rule::EnvPath && candidates.per_host != primary {
        others.push((candidates.per_host, Rule::PerHost));
    }
    if candidates.legacy != primary {
        others.push((candidates.legacy, Rule::Legacy));
    }
    Location {
        exists: exists(&primary),
        path: primary,
        rule,
        shadowed: others.into_iter().filter(|(p, _)| exists(p)).collect(),
    }
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    struct Home {
        dir: tempfile::TempDir,
    }

    impl Home {
        fn new() -> Self {
            Self {
                dir: tempfile::tempdir().unwrap(),
            }
        }
        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }
        fn touch(&self, name: &str) -> PathBuf {
            let path = self.path(name);
            fs::write(&path, "k\n").unwrap();
            path
        }
        fn env(&self, key_path: Option<&str>) -> AgentEnv {
            AgentEnv {
                home: self.dir.path().to_owned(),
                key_path: key_path.map(|name| self.path(name)),
                delete_after_read: false,
            }
        }
    }

    fn host() -> Principal {
        "host-x".parse().unwrap()
    }

    const PER_HOST: &str = ".gobuildkey-host-x";
    const LEGACY: &str = ".gobuildkey";
    const ENV: &str = "env-key";

    /// Every combination of the three files existing, with and without the variable.
    #[test]
    fn every_combination() {
        use Rule::{EnvPath, Legacy, PerHost};
        // (env var set, env file, per-host, legacy) -> (chosen, rule, exists, shadowed)
        type Files = (bool, bool, bool, bool);
        type Found<'a> = (&'a str, Rule, bool, &'a [(&'a str, Rule)]);
        let cases: &[(Files, Found)] = &[
            (
                (false, false, false, false),
                (PER_HOST, PerHost, false, &[]),
            ),
            ((false, false, true, false), (PER_HOST, PerHost, true, &[])),
            // The legacy file alone is not read: the per-host file is missing.
            (
                (false, false, false, true),
                (PER_HOST, PerHost, false, &[(LEGACY, Legacy)]),
            ),
            (
                (false, false, true, true),
                (PER_HOST, PerHost, true, &[(LEGACY, Legacy)]),
            ),
            ((true, false, false, false), (ENV, EnvPath, false, &[])),
            ((true, true, false, false), (ENV, EnvPath, true, &[])),
            (
                (true, true, true, false),
                (ENV, EnvPath, true, &[(PER_HOST, PerHost)]),
            ),
            (
                (true, true, false, true),
                (ENV, EnvPath, true, &[(LEGACY, Legacy)]),
            ),
            (
                (true, true, true, true),
                (ENV, EnvPath, true, &[(PER_HOST, PerHost), (LEGACY, Legacy)]),
            ),
            // The variable's file is missing: nothing else is read, whatever exists.
            (
                (true, false, false, true),
                (ENV, EnvPath, false, &[(LEGACY, Legacy)]),
            ),
            (
                (true, false, true, true),
                (
                    ENV,
                    EnvPath,
                    false,
                    &[(PER_HOST, PerHost), (LEGACY, Legacy)],
                ),
            ),
            (
                (true, false, true, false),
                (ENV, EnvPath, false, &[(PER_HOST, PerHost)]),
            ),
        ];
        for &((var, env_file, per_host, legacy), (chosen, rule, exists, shadowed)) in cases {
            let home = Home::new();
            if env_file {
                home.touch(ENV);
            }
            if per_host {
                home.touch(PER_HOST);
            }
            if legacy {
                home.touch(LEGACY);
            }
            let loc = locate(&host(), &home.env(var.then_some(ENV)));
            let want_shadowed: Vec<_> = shadowed.iter().map(|&(n, r)| (home.path(n), r)).collect();
            let case = (var, env_file, per_host, legacy);
            assert_eq!(loc.path, home.path(chosen), "{case:?}");
            assert_eq!(loc.rule, rule, "{case:?}");
            assert_eq!(loc.exists, exists, "{case:?}");
            assert_eq!(loc.shadowed, want_shadowed, "{case:?}");
        }
    }

    /// Go's `filepath.Clean` on Unix, case by case from its documented rules.
    #[test]
    fn go_clean_follows_go() {
        let cases: &[(&[u8], &[u8])] = &[
            // Empty is ".".
            (b"", b"."),
            // Already clean.
            (b"abc", b"abc"),
            (b"abc/def", b"abc/def"),
            (b".", b"."),
            (b"..", b".."),
            (b"../..", b"../.."),
            (b"../../abc", b"../../abc"),
            (b"/abc", b"/abc"),
            (b"/", b"/"),
            // Names that only look like dots.
            (b"...", b"..."),
            (b".abc/..abc/abc..", b".abc/..abc/abc.."),
            (b"a/.../b", b"a/.../b"),
            // A trailing slash goes, except for the root.
            (b"abc/", b"abc"),
            (b"abc/def/", b"abc/def"),
            (b"./", b"."),
            (b"../", b".."),
            (b"../../", b"../.."),
            (b"/abc/", b"/abc"),
            // Multiple slashes become one.
            (b"abc//def//ghi", b"abc/def/ghi"),
            (b"//abc", b"/abc"),
            (b"///abc", b"/abc"),
            (b"//abc//", b"/abc"),
            (b"abc//", b"abc"),
            (b"//", b"/"),
            // "." elements go.
            (b"abc/./def", b"abc/def"),
            (b"/./abc/def", b"/abc/def"),
            (b"abc/.", b"abc"),
            (b"./abc", b"abc"),
            (b"/.", b"/"),
            // ".." goes with the name before it.
            (b"abc/def/ghi/../jkl", b"abc/def/jkl"),
            (b"abc/def/../ghi/../jkl", b"abc/jkl"),
            (b"abc/def/..", b"abc"),
            (b"abc/def/../..", b"."),
            (b"/abc/def/../..", b"/"),
            (b"abc/./../def", b"def"),
            (b"abc//./../def", b"def"),
            // ".." with no name before it stays in a relative path...
            (b"abc/def/../../..", b".."),
            (b"abc/def/../../../ghi/jkl/../../../mno", b"../../mno"),
            (b"abc/../../././../def", b"../../def"),
            (b"../abc/..", b".."),
            (b"../abc/../..", b"../.."),
            // ... and goes at the root.
            (b"/..", b"/"),
            (b"/../abc", b"/abc"),
            (b"/../../abc/..", b"/"),
            (b"/abc/def/../../..", b"/"),
            // The buildlet's case: a link, then "..", undone without looking at the disk.
            (
                b"/home/a/link/../.gobuildkey-host-x",
                b"/home/a/.gobuildkey-host-x",
            ),
            (b"/home/a/link/..//.gobuildkey", b"/home/a/.gobuildkey"),
            // Bytes that are not UTF-8 are names like any other.
            (b"/a/\xff/../\xfe", b"/a/\xfe"),
        ];
        for &(path, want) in cases {
            assert_eq!(go_clean(path), want, "{:?}", String::from_utf8_lossy(path));
            // Clean is idempotent.
            assert_eq!(go_clean(want), want, "{:?}", String::from_utf8_lossy(want));
        }
    }

    #[test]
    fn go_join_cleans_as_filepath_join() {
        let join = |dir: &str, name: &str| go_join(Path::new(dir), name);
        assert_eq!(
            join("/home/a", ".gobuildkey"),
            Path::new("/home/a/.gobuildkey")
        );
        assert_eq!(
            join("/home/a/", ".gobuildkey"),
            Path::new("/home/a/.gobuildkey")
        );
        assert_eq!(join("/home/a/link/..", ".k"), Path::new("/home/a/.k"));
        assert_eq!(join("/", ".k"), Path::new("/.k"));
        assert_eq!(join("/..", ".k"), Path::new("/.k"));
        assert_eq!(join("rel", ".k"), Path::new("rel/.k"));
        assert_eq!(join("./rel/", ".k"), Path::new("rel/.k"));
        assert_eq!(join("rel/..", ".k"), Path::new(".k"));
        assert_eq!(join("..", ".k"), Path::new("../.k"));
        assert_eq!(join("", ".k"), Path::new(".k"));
    }

    /// `HOME=<dir>/link/..`, `link` a link to a folder elsewhere: the agent reads
    /// `<dir>/.gobuildkey-*` (Go cleans lexically), not the file beside the link's target.
    #[test]
    fn a_link_then_dotdot_in_home_is_undone_lexically() {
        let home = Home::new();
        fs::create_dir_all(home.path("elsewhere/deep")).unwrap();
        std::os::unix::fs::symlink(home.path("elsewhere/deep"), home.path("link")).unwrap();
        // Where the kernel would go through the link: not read.
        home.touch(&format!("elsewhere/{PER_HOST}"));
        let env = AgentEnv {
            home: home.path("link/.."),
            key_path: None,
            delete_after_read: false,
        };
        let loc = locate(&host(), &env);
        assert_eq!(loc.path, home.path(PER_HOST));
        assert_eq!((loc.rule, loc.exists), (Rule::PerHost, false));
        home.touch(PER_HOST);
        assert!(locate(&host(), &env).exists);
    }

    #[test]
    fn a_dangling_link_counts_as_missing() {
        let home = Home::new();
        std::os::unix::fs::symlink(home.path("nowhere"), home.path(PER_HOST)).unwrap();
        let loc = locate(&host(), &home.env(None));
        assert_eq!((loc.rule, loc.exists), (Rule::PerHost, false));
    }

    #[test]
    fn the_variable_may_name_the_per_host_file_itself() {
        let home = Home::new();
        home.touch(PER_HOST);
        let loc = locate(&host(), &home.env(Some(PER_HOST)));
        assert_eq!((loc.rule, loc.exists), (Rule::EnvPath, true));
        assert!(loc.shadowed.is_empty());
    }

    #[test]
    fn home_follows_the_agent() {
        let with = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, OsString)> = vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
                .collect();
            agent_home(&move |name: &str| {
                vars.iter()
                    .find(|(k, v)| k == name && !v.is_empty())
                    .map(|(_, v)| v.clone())
            })
        };
        assert_eq!(
            with(&[("HOME", "/home/gopher")]),
            PathBuf::from("/home/gopher")
        );
        // A relative HOME is used as it is, as the agent does.
        assert_eq!(with(&[("HOME", "rel")]), PathBuf::from("rel"));
        let fallback = if rustix::process::getuid().is_root() {
            "/root"
        } else {
            "/"
        };
        assert_eq!(with(&[]), PathBuf::from(fallback));
        assert_eq!(with(&[("HOME", "")]), PathBuf::from(fallback));
    }
}
