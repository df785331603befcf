//! `gobuildkey scan`: finds leaked keys and tokens in files and says whose they are and
//! whether they are live, never the key: the library's `scan` finds, `found` judges.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::Result;
use jiff::Timestamp;

use gobuildkey::found::{Finding, Judge, Liveness, judge_without_master};
use gobuildkey::scan::{Shape, find_in_stream};

use crate::cli::ScanArgs;
use crate::commands::json;
use crate::exit::Exit;
use crate::output::{self, Mode};

/// Scans every path and reports what it found; the exit status says whether anything live
/// (or of unknown liveness) was.
pub fn run(args: &ScanArgs) -> Result<Exit> {
    let now = Timestamp::now();
    let farm = if uses_master(args) {
        let verifier = crate::commands::load_verifier(&args.master, None, None)?
            .with_clock_skew(args.skew.clock_skew);
        let history = crate::commands::load_history(&args.master)?;
        Some((verifier, history))
    } else {
        None
    };
    let mode = if let Some((verifier, _)) = &farm {
        let principals = verifier.policy().principals().count();
        let masters: Vec<&str> = verifier
            .masters()
            .map(gobuildkey::fingerprint::Fingerprint::as_str)
            .collect();
        output::note(&format!(
            "scan: with the master{} {} and the policy ({} principal{}) and the action log: \
                 tokens and the policy's keys, whose they are and whether they are live",
            if masters.len() == 1 { "" } else { "s" },
            masters.join(", "),
            principals,
            if principals == 1 { "" } else { "s" },
        ));
        "master"
    } else {
        output::note(
            "scan: without a master: tokens only, by their checksum; whose they are is not \
                 known, and plain keys are not looked for (only the master tells them from \
                 other hex)",
        );
        "no-master"
    };
    let mut scan = Scan {
        judge: farm.as_ref().map(|(v, h)| Judge::new(v, h, now)),
        now,
        skew: args.skew.clock_skew,
        body: json::Scan {
            mode,
            ..Default::default()
        },
        live: 0,
        dead: 0,
        unknown: 0,
    };
    let dot = [PathBuf::from(".")];
    let paths = if args.paths.is_empty() {
        &dot[..]
    } else {
        &args.paths[..]
    };
    for path in paths {
        if path.as_os_str() == "-" {
            scan.read("-".to_owned(), io::stdin().lock());
        } else {
            scan.visit(path.clone());
        }
    }
    Ok(scan.finish())
}

/// Whether the master is used: never with `--no-master`; when it is given (a flag or a
/// variable), always — and then one that cannot be loaded is an error, never a scan
/// without it; otherwise when the default master file exists (an admin's machine).
fn uses_master(args: &ScanArgs) -> bool {
    if args.no_master {
        return false;
    }
    let master = &args.master;
    let set = |name: &str| std::env::var_os(name).is_some_and(|value| !value.is_empty());
    if master.master_key.is_some()
        || master.master_key_command.is_some()
        || set(gobuildkey::master::ENV_FILE)
        || set(gobuildkey::master::ENV_COMMAND)
    {
        return true;
    }
    let default = gobuildkey::master::default_path().is_ok_and(|p| p.symlink_metadata().is_ok());
    if !default && master.policy.is_some() {
        output::note("scan: no master, so the policy (--policy) is not read");
    }
    default
}

/// A scan under way: what judges the candidates, and what was found.
struct Scan<'a> {
    judge: Option<Judge<'a>>,
    now: Timestamp,
    skew: std::time::Duration,
    body: json::Scan,
    live: usize,
    dead: usize,
    unknown: usize,
}

/// `path` as it is shown: as it is, unless it holds control characters or the marks that
/// reorder text on a terminal (bidirectional controls: a file named with U+202E shows as
/// another name), which are escaped.
fn shown(path: &Path) -> String {
    let text = path.to_string_lossy();
    let bidi = |c: char| matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if text.chars().any(|c| c.is_control() || bidi(c)) {
        gobuildkey::text::escape_for_terminal(&text, 4096)
    } else {
        text.into_owned()
    }
}

impl Scan<'_> {
    /// Scans `top`: a file, or a folder and everything under it (but `.git` folders). `top`
    /// itself is followed if it is a link (it was named: `scan ~/src` where `~/src` is a link
    /// reads what it points to, as `scan ~/src/` does), but no link under it is.
    fn visit(&mut self, top: PathBuf) {
        let mut stack = vec![(top, true)];
        while let Some((path, named)) = stack.pop() {
            let meta = if named {
                fs::metadata(&path)
            } else {
                fs::symlink_metadata(&path)
            };
            let meta = match meta {
                Ok(meta) => meta,
                Err(e) => {
                    self.unreadable(&path, &e);
                    continue;
                }
            };
            let kind = meta.file_type();
            if kind.is_symlink() {
                self.skipped(&path, "a symbolic link, not followed");
            } else if kind.is_dir() {
                match list(&path) {
                    // In reverse, so that they are popped in order.
                    Ok(entries) => stack.extend(entries.into_iter().rev().map(|e| (e, false))),
                    Err(e) => self.unreadable(&path, &e),
                }
            } else if kind.is_file() {
                self.file(&path, named);
            } else {
                self.skipped(
                    &path,
                    "not a regular file (a FIFO, socket or device), not read",
                );
            }
        }
    }

    /// Reads the regular file `path`, unless it became something else since it was looked
    /// at (a link is not followed unless `named`; a FIFO opened does not block).
    fn file(&mut self, path: &Path, named: bool) {
        let opened = open(path, !named).and_then(|file| Ok((file.metadata()?, file)));
        match opened {
            Ok((meta, file)) if meta.is_file() => self.read(shown(path), file),
            Ok(_) => self.skipped(path, "not a regular file, not read"),
            Err(e) if is_link_error(&e) => self.skipped(path, "a symbolic link, not followed"),
            Err(e) => self.unreadable(path, &e),
        }
    }

    /// Scans what `reader` holds, shown as `path`.
    fn read(&mut self, path: String, reader: impl Read) {
        self.body.files += 1;
        let result = find_in_stream(reader, |found| {
            let finding = match &mut self.judge {
                Some(judge) => judge.judge(found.shape, found.text),
                None => judge_without_master(found.shape, found.text, self.now, self.skew),
            };
            if let Some(finding) = finding {
                self.record(&path, found.line, &finding);
            }
        });
        if let Err(e) = result {
            self.body.files -= 1;
            let why = format!("{e}");
            output::note(&format!("{path}: not read: {why}"));
            self.body.unreadable.push(json::ScanPath { path, why });
        }
    }

    fn record(&mut self, path: &str, line: u64, finding: &Finding) {
        let whose = finding.whose.as_ref();
        let reason = match finding.liveness {
            Liveness::Live => {
                self.live += 1;
                None
            }
            Liveness::Dead(death) => {
                self.dead += 1;
                Some(death.as_str())
            }
            Liveness::Unknown => {
                self.unknown += 1;
                None
            }
        };
        let kind = match finding.shape {
            Shape::Token => "token",
            Shape::Hex => "key",
        };
        let row = json::ScanFinding {
            path: path.to_owned(),
            line,
            state: finding.liveness.as_str(),
            reason,
            kind,
            algorithm: finding.algorithm.name(),
            principal: whose.map(|w| w.principal.as_str().to_owned()),
            machine: whose.and_then(|w| w.machine.as_ref().map(|m| m.as_str().to_owned())),
            generation: whose.map(|w| w.generation),
            expires: finding.expires.map(|t| t.to_string()),
            fingerprint: finding.fingerprint.as_str().to_owned(),
        };
        // Each finding is printed as it is found; only the JSON object holds them all, so
        // memory grows with the findings in that mode alone.
        match output::mode() {
            Mode::Human => output::out_line(&describe(&row)),
            Mode::Json => self.body.findings.push(row),
            Mode::Quiet => {}
        }
    }

    fn skipped(&mut self, path: &Path, why: &str) {
        let path = shown(path);
        output::note(&format!("{path}: skipped: {why}"));
        self.body.skipped.push(json::ScanPath {
            path,
            why: why.to_owned(),
        });
    }

    fn unreadable(&mut self, path: &Path, error: &io::Error) {
        let path = shown(path);
        let why = error.to_string();
        output::note(&format!("{path}: not read: {why}"));
        self.body.unreadable.push(json::ScanPath { path, why });
    }

    /// Reports the totals and gives the exit status: 1 for anything live or unknown, else
    /// 74 if something could not be read, else 0.
    fn finish(self) -> Exit {
        let body = &self.body;
        let dead = self.dead;
        output::note(&format!(
            "scan: {} read: {} live, {dead} dead, {} of unknown liveness; {} skipped, {} not read",
            plural(body.files, "file"),
            self.live,
            self.unknown,
            body.skipped.len(),
            body.unreadable.len()
        ));
        if self.live > 0 {
            output::note(
                "a live key is leaked: give its principal a new key \
                 (`gobuildkey rotate PRINCIPAL`; `gobuildkey revoke PRINCIPAL` if it must stop \
                 at once), then remove it from the files and their history",
            );
        }
        if let Some(unsearched) = self.judge.as_ref().map(Judge::unsearched)
            && unsearched > 0
        {
            output::note(&format!(
                "scan: {unsearched} tokens the action log does not know were not searched for \
                 (past the first {}): of unknown liveness",
                gobuildkey::found::SEARCHES
            ));
        }
        if self.unknown > 0 {
            let hint = if self.judge.is_some() {
                "tokens of nobody the farm knows, not expired: of another farm, or minted under a \
                 master the farm no longer has and the log does not record"
            } else {
                "tokens that have not expired: whether they are live takes the master \
                 (`gobuildkey scan` where it is); remove them from the files"
            };
            output::note(hint);
        }
        output::report("scan", "", body);
        if self.live + self.unknown > 0 {
            Exit::Invalid
        } else if !body.unreadable.is_empty() {
            Exit::IoErr
        } else {
            Exit::Ok
        }
    }
}

/// `count` of `what`, in the plural when it is not 1.
fn plural(count: u64, what: &str) -> String {
    if count == 1 {
        format!("1 {what}")
    } else {
        format!("{count} {what}s")
    }
}

/// The line `scan` prints for a finding: never the key.
fn describe(row: &json::ScanFinding) -> String {
    use std::fmt::Write as _;
    // Writing to a String cannot fail.
    let mut line = format!("{}:{}: {}", row.path, row.line, row.state);
    if let Some(reason) = row.reason {
        let _ = write!(line, " ({reason})");
    }
    let _ = write!(line, " {} {}", row.algorithm, row.kind);
    if let Some(principal) = &row.principal {
        let _ = write!(line, " of {principal}");
    }
    if let Some(machine) = &row.machine {
        let _ = write!(line, " bound to {machine}");
    }
    let mut details = Vec::new();
    if let Some(generation) = row.generation {
        details.push(format!("generation {generation}"));
    }
    if let Some(expires) = &row.expires {
        details.push(format!("expires {expires}"));
    }
    details.push(format!("fingerprint {}", row.fingerprint));
    let _ = write!(line, " ({})", details.join(", "));
    line
}

/// The entries of the folder `dir`, sorted by name, but those named `.git`.
fn list(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name() != ".git" {
            entries.push(entry.path());
        }
    }
    entries.sort();
    Ok(entries)
}

/// Opens `path` for reading without following a link at its end (if `no_follow`), and
/// without blocking on a FIFO that appeared there.
fn open(path: &Path, no_follow: bool) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut flags = rustix::fs::OFlags::NONBLOCK;
        if no_follow {
            flags |= rustix::fs::OFlags::NOFOLLOW;
        }
        options.custom_flags(flags.bits().cast_signed());
    }
    #[cfg(not(unix))]
    let _ = no_follow;
    options.open(path)
}

/// Whether `error` is what opening a link without following it gives.
fn is_link_error(error: &io::Error) -> bool {
    #[cfg(unix)]
    {
        error.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
    }
    #[cfg(not(unix))]
    {
        let _ = error;
        false
    }
}
