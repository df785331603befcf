//! The shell examples of README.md and docs/*.md, run as a reader would type them.
//!
//! Each document gets a fresh sandbox: an empty HOME, a working folder, and a `bin` folder
//! on PATH holding the built `gobuildkey` and a stand-in for `pass(1)` (`pass show
//! farm/master` prints `~/keys/gobuilder-master.key`). Its ```sh blocks run in order, each
//! in its own `bash` with `set -eo pipefail`, standard input empty; files persist from block
//! to block, variables do not. A block that fails fails the test, naming the document and
//! the line.
//!
//! An HTML comment on the lines right above a block, invisible on the rendered page, can
//! say how to run it:
//!
//! - `<!-- examples: setup: COMMANDS -->` runs COMMANDS first (what the reader already has,
//!   such as a key file the admin sent);
//! - `<!-- examples: needs: PROGRAM -->`: the block needs PROGRAM (`.ci/run` installs it;
//!   without it the block is skipped with a message, except under CI);
//! - `<!-- examples: args-only: WHY -->`: every `gobuildkey` command of the block is given
//!   `--help`, so its command and options are checked but it does not run (a server, a
//!   prompt at a terminal, a request to a real coordinator);
//! - `<!-- examples: commands: NAME… -->`: the block uses these commands, which a build
//!   without default features lacks (`serve`, `probe`); it is skipped in such a build;
//! - `<!-- examples: skip: WHY -->`: the block is not run at all.
//!
//! Paths under /etc/farm, /etc/gobuildkey, /etc/bash_completion.d and /buildkey in a block
//! are moved into the sandbox; nothing outside it is written. Blocks of other languages are
//! checked elsewhere: the Rust example of docs/coordinators.md is a doctest (src/lib.rs),
//! the nginx snippet runs in `nginx.rs`, the Kubernetes YAML of docs/operations.md is
//! validated in `service_managers.rs`, the TOML and JSON examples are parsed below.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::common::{TestEnv, is_built, write_file};

/// Absolute folders the examples name, moved into the sandbox; `true`: made beforehand, as
/// on a system that has them.
const MOVED: [(&str, bool); 4] = [
    ("/etc/farm", false),
    ("/etc/gobuildkey", false),
    ("/etc/bash_completion.d", true),
    ("/buildkey", false),
];

/// A fenced code block and the directives above it.
#[derive(Debug)]
pub(crate) struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    pub(crate) lang: String,
    pub(crate) text: String,
    directives: Vec<(String, String)>,
}

/// The fenced blocks of a Markdown text.
pub(crate) fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut directives = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in markdown.lines().enumerate() {
        if let Some(block) = open.as_mut() {
            if line.starts_with("```") {
                out.push(open.take().unwrap());
            } else {
                block.text.push_str(line);
                block.text.push('\n');
            }
        } else if let Some(lang) = line.strip_prefix("```") {
            open = Some(Block {
                line: i + 1,
                lang: lang.trim().to_owned(),
                text: String::new(),
                directives: std::mem::take(&mut directives),
            });
        } else if let Some(body) = line
            .strip_prefix("<!-- examples:")
            .and_then(|rest| rest.strip_suffix("-->"))
        {
            let (name, arg) = body.trim().split_once(':').unwrap_or((body.trim(), ""));
            directives.push((name.trim().to_owned(), arg.trim().to_owned()));
        } else {
            directives.clear();
        }
    }
    assert!(open.is_none(), "a code block is not closed");
    out
}

/// README.md and every page of docs/.
fn documents() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut names = vec!["README.md".to_owned()];
    let mut pages: Vec<String> = fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    pages.sort();
    names.extend(pages);
    names
        .into_iter()
        .map(|name| {
            let text = fs::read_to_string(root.join(&name)).unwrap();
            (name, text)
        })
        .collect()
}

/// One document's sandbox.
struct Sandbox {
    env: TestEnv,
}

impl Sandbox {
    fn new() -> Self {
        let env = TestEnv::new();
        for dir in ["home", "work", "bin", "root"] {
            fs::create_dir(env.path(dir)).unwrap();
        }
        for (moved, made) in MOVED {
            if made {
                fs::create_dir_all(env.path(&format!("root{moved}"))).unwrap();
            }
        }
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_gobuildkey"), env.path("bin/gobuildkey"))
            .unwrap();
        let pass = env.path("bin/pass");
        fs::write(
            &pass,
            "#!/bin/sh\n# pass(1)'s stand-in: the master of `gobuildkey init`.\n\
             [ \"$1 $2\" = 'show farm/master' ] && exec cat \"$HOME/keys/gobuilder-master.key\"\n\
             echo \"pass: no such secret: $2\" >&2; exit 1\n",
        )
        .unwrap();
        fs::set_permissions(&pass, fs::Permissions::from_mode(0o755)).unwrap();
        Self { env }
    }

    /// The block's text with the moved folders put in the sandbox.
    fn moved(&self, text: &str) -> String {
        MOVED.iter().fold(text.to_owned(), |text, (moved, _)| {
            let inside = self.env.path(&format!("root{moved}"));
            text.replace(moved, inside.to_str().unwrap())
        })
    }

    /// Runs `script` in bash; (success, what it printed).
    fn run(&self, script: &str) -> (bool, String) {
        let path = format!(
            "{}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            self.env.path("bin").display()
        );
        let out = Command::new("bash")
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.env.path("home"))
            .env("LANG", "C.UTF-8")
            .current_dir(self.env.path("work"))
            .args(["-c", &format!("set -eo pipefail\n{script}")])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let printed = format!(
            "--- stdout\n{}--- stderr\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), printed)
    }
}

/// Whether `program` is on the sandbox's PATH (less its own `bin`).
fn installed(program: &str) -> bool {
    ["/usr/local/bin", "/usr/bin", "/bin"]
        .iter()
        .any(|dir| PathBuf::from(dir).join(program).exists())
}

/// Each `gobuildkey` command shows its help instead of running: its options are parsed.
const ARGS_ONLY: &str = "gobuildkey() { command gobuildkey \"$@\" --help > /dev/null; }\n";

/// What became of a document's blocks.
#[derive(Debug, Default)]
struct Tally {
    ran: usize,
    args_only: usize,
    skipped: usize,
}

fn run_document(name: &str, markdown: &str) -> Tally {
    let sandbox = Sandbox::new();
    let mut tally = Tally::default();
    'blocks: for block in blocks(markdown).into_iter().filter(|b| b.lang == "sh") {
        let at = format!("{name}:{}", block.line);
        let mut prelude = String::new();
        let mut args_only = false;
        for (directive, arg) in &block.directives {
            match directive.as_str() {
                "skip" => {
                    assert!(!arg.is_empty(), "{at}: say why the block is skipped");
                    tally.skipped += 1;
                    continue 'blocks;
                }
                "args-only" => {
                    assert!(!arg.is_empty(), "{at}: say why the block does not run");
                    args_only = true;
                }
                "setup" => {
                    prelude.push_str(arg);
                    prelude.push('\n');
                }
                "commands" if arg.split(' ').all(is_built) => {}
                "commands" => {
                    eprintln!("{at}: this build lacks one of `{arg}`: skipping the block");
                    tally.skipped += 1;
                    continue 'blocks;
                }
                "needs" if installed(arg) => {}
                "needs" => {
                    assert!(
                        std::env::var_os("CI").is_none(),
                        "{at} needs {arg}, missing under CI: .ci/run must install it"
                    );
                    eprintln!("{at}: {arg} is not installed: skipping the block");
                    tally.skipped += 1;
                    continue 'blocks;
                }
                other => panic!("{at}: unknown directive `{other}`"),
            }
        }
        if !prelude.is_empty() {
            let (ok, printed) = sandbox.run(&sandbox.moved(&prelude));
            assert!(ok, "{at}: the setup failed\n{prelude}{printed}");
        }
        let script = format!(
            "{}{}",
            if args_only { ARGS_ONLY } else { "" },
            sandbox.moved(&block.text)
        );
        let (ok, printed) = sandbox.run(&script);
        assert!(ok, "{at}: the example failed\n{}{printed}", block.text);
        if args_only {
            tally.args_only += 1;
        } else {
            tally.ran += 1;
        }
    }
    tally
}

#[test]
fn every_shell_example_in_the_docs_works() {
    let mut total = Tally::default();
    for (name, markdown) in documents() {
        let tally = run_document(&name, &markdown);
        eprintln!("{name}: {tally:?}");
        total.ran += tally.ran;
        total.args_only += tally.args_only;
        total.skipped += tally.skipped;
    }
    // Most examples really run; a change that stops them running shows here.
    assert!(total.ran >= 15, "{total:?}");
    assert!(total.args_only + total.skipped <= 5, "{total:?}");
}

#[test]
fn a_failing_example_fails_the_test() {
    let run = |markdown: &str| {
        std::panic::catch_unwind(|| run_document("test.md", markdown))
            .map_err(|_| ())
            .map(|_| ())
    };
    assert!(
        run("```sh\ngobuildkey mint host-a\n```\n").is_err(),
        "no master"
    );
    assert!(run("```sh\ngobuildkey init\ngobuildkey mint host-a\n```\n").is_ok());
    // A failure inside a pipe counts.
    assert!(run("```sh\ngobuildkey mint host-a | cat\n```\n").is_err());
    // args-only still refuses an option that does not exist, or a bad value.
    let args_only = "<!-- examples: args-only: a test -->\n";
    assert!(
        run(&format!(
            "{args_only}```sh\ngobuildkey rotate --keep-previous-until 2999-01-01 host-a\n```\n"
        ))
        .is_ok()
    );
    assert!(
        run(&format!(
            "{args_only}```sh\ngobuildkey rotate --keep-previus host-a\n```\n"
        ))
        .is_err()
    );
    assert!(
        run(&format!(
            "{args_only}```sh\ngobuildkey rotate --keep-previous-until soon host-a\n```\n"
        ))
        .is_err()
    );
    // A directive must be known and give its reason.
    assert!(run("<!-- examples: skipp: typo -->\n```sh\ntrue\n```\n").is_err());
    assert!(run("<!-- examples: skip -->\n```sh\ntrue\n```\n").is_err());
    // A directive belongs to the block right below it only.
    let tally = run_document(
        "test.md",
        "<!-- examples: skip: a test -->\n```sh\nfalse\n```\n\ntext\n\n```sh\ntrue\n```\n",
    );
    assert_eq!((tally.ran, tally.skipped), (1, 1));
    // Moved folders stay in the sandbox.
    let tally = run_document(
        "test.md",
        "```sh\ngobuildkey init --master-key /etc/farm/master.key\n\
         gobuildkey completions bash > /etc/bash_completion.d/gobuildkey\n```\n",
    );
    assert_eq!(tally.ran, 1);
    assert!(!Path::new("/etc/farm/master.key").exists());
}

/// The policy file of docs/operations.md is one gobuildkey reads: `policy` lists it.
#[test]
fn the_policy_example_is_a_valid_policy() {
    let (_, markdown) = documents()
        .into_iter()
        .find(|(name, _)| name == "docs/operations.md")
        .unwrap();
    let toml = blocks(&markdown)
        .into_iter()
        .find(|b| b.lang == "toml")
        .unwrap()
        .text;
    let env = TestEnv::new().with_master();
    write_file(&env.path("keys/gobuildkey.toml"), toml, 0o600);
    // The example's previous master, as `master rotate` would have left it.
    write_file(
        &env.path("keys/gobuilder-master.key.9400c745792c2465"),
        format!("{}\n", "ab".repeat(32)),
        0o600,
    );
    let out = env.cmd().args(["--json", "policy"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let principals = listed["principals"].as_array().unwrap();
    assert_eq!(principals.len(), 3);
    assert_eq!(principals[0]["generation"], 2);
    assert_eq!(principals[0]["keep_previous"], "2026-12-01T00:00:00Z");
    assert_eq!(
        principals[1]["revoked_machines"],
        serde_json::json!(["builder-07"])
    );
    assert_eq!(principals[1]["machine_keys_only"], true);
    assert_eq!(principals[2]["revoked"], true);
    assert_eq!(listed["masters"]["previous"].as_array().unwrap().len(), 1);
}

/// Every JSON example in the docs has the fields, in the order, that gobuildkey prints: the
/// `--json` objects of docs/json.md, the audit lines of docs/operations.md.
#[test]
fn the_json_examples_have_the_fields_of_real_output() {
    let env = TestEnv::new().with_master();
    let real = |args: &[&str], stdin: &str, stderr: bool| -> Value {
        let out = env
            .cmd()
            .arg("--json")
            .args(args)
            .write_stdin(stdin.to_owned())
            .output()
            .unwrap();
        serde_json::from_slice(if stderr { &out.stderr } else { &out.stdout }).unwrap()
    };
    let fields =
        |value: &Value| -> Vec<String> { value.as_object().unwrap().keys().cloned().collect() };
    env.cmd()
        .args(["verify", "--audit", "audit.log", crate::common::ARM])
        .write_stdin(crate::common::ARM_KEY)
        .assert()
        .success();
    let audit_line = fs::read_to_string(env.path("audit.log")).unwrap();
    let audited: Value = serde_json::from_str(audit_line.trim()).unwrap();
    env.cmd()
        .env("SUDO_USER", "someone-else")
        .args(["revoke", "--allow-unknown", "--reason", "r", "host-x"])
        .assert()
        .success();
    let action_line = fs::read_to_string(env.path("keys/gobuildkey-actions.log")).unwrap();
    let mut action: Value = serde_json::from_str(action_line.trim()).unwrap();
    // Present only where the session has an audit login uid other than the user's.
    action.as_object_mut().unwrap().remove("login_uid");
    let mut seen = 0;
    for (name, markdown) in documents() {
        for block in blocks(&markdown).into_iter().filter(|b| b.lang == "json") {
            for line in block.text.lines() {
                let example: Value = serde_json::from_str(line).unwrap();
                let actual = match example["command"].as_str() {
                    Some("error") => {
                        real(&["mint", "--master-key", "nowhere.key", "host-a"], "", true)
                    }
                    Some("verify") => real(
                        &["verify", crate::common::ARM],
                        crate::common::ARM_KEY,
                        false,
                    ),
                    Some("check") => real(&["check", "host-b"], "", false),
                    None if example.get("result").is_some() => audited.clone(),
                    Some(_) if example.get("schema").is_none() => action.clone(),
                    other => panic!("{name}: no real output to compare for {other:?}"),
                };
                assert_eq!(fields(&example), fields(&actual), "{name}: {line}");
                seen += 1;
            }
        }
    }
    assert_eq!(seen, 6);
}

/// The `gobuildkey …` commands quoted inline in the docs, the README and the messages of
/// src/ (each placeholder given a value), checked as the args-only blocks are: a renamed
/// option or command fails here.
#[test]
fn every_command_quoted_in_the_docs_and_messages_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut texts: Vec<(String, String)> = documents();
    for name in rust_sources(root) {
        let text = fs::read_to_string(root.join(&name)).unwrap();
        texts.push((name, text));
    }
    let sandbox = Sandbox::new();
    let mut checked = 0;
    for (name, text) in texts {
        for quoted in text.split('`').skip(1).step_by(2) {
            // A quote may go on over a line break, of a paragraph or of a doc comment.
            let quoted = quoted
                .lines()
                .map(|line| {
                    let line = line.trim();
                    let uncommented = line.strip_prefix("///").or(line.strip_prefix("//!"));
                    uncommented.unwrap_or(line).trim()
                })
                .collect::<Vec<_>>()
                .join(" ");
            let Some(args) = quoted.strip_prefix("gobuildkey ") else {
                continue;
            };
            // Not commands: a synopsis of alternatives, an elision, a placeholder command.
            if args.contains("...") || args.contains('…') || args.contains("COMMAND") {
                continue;
            }
            if args
                .split(' ')
                .any(|word| word.len() > 1 && word.contains('|'))
            {
                continue;
            }
            // A command this build lacks (`serve`, `probe` without default features).
            if !args.split(' ').all(is_built) {
                continue;
            }
            let words: Vec<&str> = args.split(' ').collect();
            let command: Vec<&str> = words
                .iter()
                .enumerate()
                .map(|(i, &word)| match word {
                    // Standard input is not read: the command only shows its help.
                    _ if i > 0 && words[i - 1] == "<" => "/dev/null",
                    "HOST" | "PRINCIPAL" | "{p}" | "{principal}" | "{}" => "host-a",
                    "HOST.key" => "host-a.key",
                    "FILE" | "KEYFILE" => "a.key",
                    "FINGERPRINT" => "SHA256:0123456789abcdef",
                    "CMD" => "true",
                    "{alg}" | "ALG" => "hmac-md5",
                    "{machine}" => "builder-1",
                    word => word,
                })
                .collect();
            let script = format!("{ARGS_ONLY}gobuildkey {}", command.join(" "));
            let (ok, printed) = sandbox.run(&script);
            assert!(ok, "{name}: `gobuildkey {args}` does not parse\n{printed}");
            checked += 1;
        }
    }
    eprintln!("{checked} quoted commands checked");
    assert!(checked >= 60, "{checked}");
}

/// docs/design.md's layout table names every source file (itself, or a folder row that
/// holds it, such as `src/commands/admin/`), and every `src/…` path it names exists: the
/// module map cannot drift from the tree.
#[test]
fn the_design_module_map_matches_the_source_tree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let design = fs::read_to_string(root.join("docs/design.md")).unwrap();
    let layout = design
        .split("\n## Layout\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("docs/design.md has a Layout section");
    let named: Vec<&str> = layout
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|quoted| quoted.starts_with("src/"))
        .collect();
    let files = rust_sources(root);
    let missing: Vec<&String> = files
        .iter()
        .filter(|file| {
            !named
                .iter()
                .any(|n| *n == file.as_str() || (n.ends_with('/') && file.starts_with(n)))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "not in docs/design.md's layout: {missing:?}"
    );
    let stale: Vec<&&str> = named
        .iter()
        .filter(|n| !root.join(n.trim_end_matches('/')).exists())
        .collect();
    assert!(
        stale.is_empty(),
        "docs/design.md names what is not there: {stale:?}"
    );
}

/// Every `.rs` file under `src/`, as a path relative to the crate's root, in a stable order.
fn rust_sources(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(&root.join("src"), root, &mut out);
    out.sort();
    out
}
