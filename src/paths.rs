//! Where the builder agent (Go's buildlet) looks for its key.
//!
//! This module is the only place that encodes the lookup; `install`, `path` and `check`
//! all ask [`locate`] or [`Candidates`]. The rules, from golang.org/x/build's buildlet:
//!
//! 1. If `GO_BUILD_KEY_PATH` is set and not empty, the key file is that path.
//! 2. Otherwise it is `<home>/.gobuildkey-<host type>`.
//! 3. Older buildlets (`-reverse` with one host type), and the farm's setup guide, fall
//!    back to `<home>/.gobuildkey` when the file of rule 1 or 2 does not exist. Current
//!    buildlets (`-reverse-type`) no longer read it.
//!
//! `<home>` is `$HOME`; if that is empty or unset, `/root` for uid 0 and `/` otherwise. On
//! Windows it is `%HOMEDRIVE%%HOMEPATH%`, on Plan 9 `$home`. The whole file is read and the
//! whitespace around it trimmed. When `GO_BUILD_KEY_DELETE_AFTER_READ` is true by Go's
//! `strconv.ParseBool`, the agent deletes the file after reading it.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use crate::keys::Principal;

/// The variable naming the key file, overriding the home folder's files.
pub const ENV_KEY_PATH: &str = "GO_BUILD_KEY_PATH";
/// The variable that makes the agent delete the key file after reading it.
pub const ENV_DELETE_AFTER_READ: &str = "GO_BUILD_KEY_DELETE_AFTER_READ";
/// The name of the legacy key file in the home folder.
pub const LEGACY_FILE_NAME: &str = ".gobuildkey";

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
    /// The legacy `<home>/.gobuildkey`, read by older buildlets only when the file of the
    /// first two rules does not exist.
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
                "the legacy ~/.gobuildkey, read because the per-host file does not exist \
                 (older buildlets only: current buildlets, started with -reverse-type, do not read it)"
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
    /// The file of rule 1 or 2: `GO_BUILD_KEY_PATH`, else the per-host file. `install`
    /// writes here.
    pub primary: (PathBuf, Rule),
    /// The per-host file, which `GO_BUILD_KEY_PATH` hides.
    pub per_host: PathBuf,
    /// The legacy `<home>/.gobuildkey`; `install --legacy` writes here.
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
    /// # Ok::<(), gobuildkey::keys::PrincipalError>(())
    /// ```
    #[must_use]
    pub fn new(principal: &Principal, env: &AgentEnv) -> Self {
        let per_host = env
            .home
            .join(format!("{LEGACY_FILE_NAME}-{}", principal.as_str()));
        let primary = match &env.key_path {
            Some(path) => (path.clone(), Rule::EnvPath),
            None => (per_host.clone(), Rule::PerHost),
        };
        Self {
            primary,
            per_host,
            legacy: env.home.join(LEGACY_FILE_NAME),
        }
    }
}

/// Where the agent will read its key, as [`locate`] finds it on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file the agent will read (it may not exist: then the agent fails).
    pub path: PathBuf,
    /// The rule that chose it.
    pub rule: Rule,
    /// Whether something exists at `path`.
    pub exists: bool,
    /// Other candidate files that exist but that the rule hides, with their rules.
    pub shadowed: Vec<(PathBuf, Rule)>,
}

/// Which file the agent will read for `principal`, by which rule, and which other existing
/// candidate files that hides.
///
/// Existence is judged as the agent's `os.ReadFile` judges it: through links, so a
/// dangling link counts as missing.
///
/// ```
/// use gobuildkey::paths::{locate, AgentEnv, Rule};
///
/// let home = tempfile::tempdir()?;
/// let env = AgentEnv { home: home.path().into(), key_path: None, delete_after_read: false };
/// let host = "host-linux-arm-aws".parse()?;
///
/// // Nothing installed: the agent will look for the per-host file and fail.
/// let loc = locate(&host, &env);
/// assert_eq!((loc.rule, loc.exists), (Rule::PerHost, false));
///
/// // Only a legacy file: older buildlets read it.
/// std::fs::write(home.path().join(".gobuildkey"), "key\n")?;
/// assert_eq!(locate(&host, &env).rule, Rule::Legacy);
///
/// // A per-host file hides the legacy one.
/// std::fs::write(home.path().join(".gobuildkey-host-linux-arm-aws"), "key\n")?;
/// let loc = locate(&host, &env);
/// assert_eq!(loc.rule, Rule::PerHost);
/// assert_eq!(loc.shadowed, [(home.path().join(".gobuildkey"), Rule::Legacy)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub fn locate(principal: &Principal, env: &AgentEnv) -> Location {
    let candidates = Candidates::new(principal, env);
    let (primary, primary_rule) = candidates.primary;
    let exists = |path: &Path| fs::metadata(path).is_ok();
    let mut others = Vec::new();
    if primary_rule == Rule::EnvPath && candidates.per_host != primary {
        others.push((candidates.per_host, Rule::PerHost));
    }
    if candidates.legacy != primary {
        others.push((candidates.legacy, Rule::Legacy));
    }
    let mut existing: Vec<(PathBuf, Rule)> =
        others.into_iter().filter(|(p, _)| exists(p)).collect();

    if exists(&primary) {
        return Location {
            path: primary,
            rule: primary_rule,
            exists: true,
            shadowed: existing,
        };
    }
    // The primary file is missing: older buildlets fall back to the legacy file.
    if let Some(i) = existing.iter().position(|(_, rule)| *rule == Rule::Legacy) {
        let (legacy, _) = existing.remove(i);
        return Location {
            path: legacy,
            rule: Rule::Legacy,
            exists: true,
            shadowed: existing,
        };
    }
    Location {
        path: primary,
        rule: primary_rule,
        exists: false,
        shadowed: existing,
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
            ((false, false, false, true), (LEGACY, Legacy, true, &[])),
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
            // The variable's file is missing: older buildlets fall back to the legacy file.
            ((true, false, false, true), (LEGACY, Legacy, true, &[])),
            (
                (true, false, true, true),
                (LEGACY, Legacy, true, &[(PER_HOST, PerHost)]),
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
