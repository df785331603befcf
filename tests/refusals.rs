//! The catalogue of refusals: every case in `tests/refusals/COMMAND/` runs `gobuildkey` with
//! the arguments, environment and standard input its `.toml` gives, and checks the exit
//! status it records and the exact bytes of standard output and standard error in the
//! `.stdout` and `.stderr` files beside it (tests/refusals/README.md). After a deliberate
//! change, `TRYCMD=overwrite cargo test --test refusals` rewrites them.
//!
//! Only refusals of arguments, standard input and the environment are here: git keeps no
//! file modes or owners, so refusals that depend on them stay in `tests/cli/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The home folder every case names: one that does not exist, so no case finds a master, a
/// policy or a key, and a refusal that wrote anything after all would create it.
const HOME: &str = "/nonexistent-gobuildkey-home";

/// The folders of cases that need a feature, and the feature.
const FEATURE_FOLDERS: [(&str, bool); 2] = [
    ("serve", cfg!(feature = "serve")),
    ("probe", cfg!(feature = "probe")),
];

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/refusals")
}

/// Every case file, sorted.
fn case_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for folder in std::fs::read_dir(cases_dir()).unwrap() {
        let folder = folder.unwrap().path();
        if !folder.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&folder).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|ext| ext == "toml") {
                files.push(file);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn refusals() {
    assert!(
        !Path::new(HOME).exists(),
        "{HOME} exists: the cases need it not to (remove it)"
    );
    let cases = trycmd::TestCases::new();
    cases
        .default_bin_path(trycmd::cargo::cargo_bin!("gobuildkey"))
        // A refusal is immediate; this only ends a case that, broken, would wait.
        .timeout(Duration::from_secs(60))
        .case("tests/refusals/*/*.toml");
    for (folder, built) in FEATURE_FOLDERS {
        if !built {
            cases.skip(format!("tests/refusals/{folder}/*.toml"));
        }
    }
    cases.run();
    assert!(
        !Path::new(HOME).exists(),
        "a refusal wrote under {HOME}: something that should have been refused was done"
    );
}

/// Each case is hermetic and complete: it starts from an empty environment (naming HOME
/// and whatever else it needs itself), compares bytes exactly, and records an exit status
/// that is a refusal's, standard output and standard error.
#[test]
fn every_case_is_hermetic_and_complete() {
    let files = case_files();
    assert!(files.len() >= 30, "only {} cases", files.len());
    for file in files {
        let name = file.display();
        let text = std::fs::read_to_string(&file).unwrap();
        let case: toml_edit::DocumentMut = text.parse().unwrap();
        assert!(
            text.starts_with('#'),
            "{name}: begins with a comment saying what is refused"
        );
        assert_eq!(
            case.get("env")
                .and_then(|env| env.get("inherit"))
                .and_then(|inherit| inherit.as_bool()),
            Some(false),
            "{name}: needs `env.inherit = false`"
        );
        assert_eq!(
            case.get("binary").and_then(|binary| binary.as_bool()),
            Some(true),
            "{name}: needs `binary = true` (text mode turns `\\` into `/`)"
        );
        assert!(
            case.get("bin").is_none(),
            "{name}: runs the gobuildkey cargo built"
        );
        let code = case
            .get("status")
            .and_then(|status| status.get("code"))
            .and_then(|code| code.as_integer());
        assert!(
            code.is_some_and(|code| code != 0),
            "{name}: records a refusal's exit status (`status.code`), not {code:?}"
        );
        for stream in ["stdout", "stderr"] {
            assert!(
                case.get(stream).is_none() && file.with_extension(stream).is_file(),
                "{name}: its {stream} is in a .{stream} file beside it"
            );
        }
    }
}

/// No file is left over from a case renamed or removed.
#[test]
fn every_file_belongs_to_a_case() {
    let cases = case_files();
    for folder in std::fs::read_dir(cases_dir()).unwrap() {
        let folder = folder.unwrap().path();
        if !folder.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&folder).unwrap() {
            let file = file.unwrap().path();
            assert!(
                cases.contains(&file.with_extension("toml")),
                "{} belongs to no case",
                file.display()
            );
        }
    }
}

/// Every case docs/ names by its path (`tests/refusals/mint/principal-empty`, or a pattern
/// with one `*`, `tests/refusals/install/key-*`) is one, so the docs cannot point at a case
/// renamed or removed.
#[test]
fn the_cases_the_docs_name_exist() {
    let cases: Vec<String> = case_files()
        .iter()
        .map(|file| {
            let rel = file.strip_prefix(cases_dir()).unwrap().with_extension("");
            format!("tests/refusals/{}", rel.display())
        })
        .collect();
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let mut named = 0;
    for doc in std::fs::read_dir(docs).unwrap() {
        let doc = doc.unwrap().path();
        if doc.extension().is_none_or(|ext| ext != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&doc).unwrap();
        for quoted in text.split('`').skip(1).step_by(2) {
            let Some(rest) = quoted.strip_prefix("tests/refusals/") else {
                continue;
            };
            // A folder (`tests/refusals/rotate/`) or the README is not a case.
            if rest.is_empty() || rest.ends_with('/') || rest == "README.md" {
                continue;
            }
            let pattern = format!("tests/refusals/{rest}");
            let matches = |case: &String| match pattern.split_once('*') {
                Some((head, tail)) => {
                    case.len() >= head.len() + tail.len()
                        && case.starts_with(head)
                        && case.ends_with(tail)
                }
                None => *case == pattern,
            };
            assert!(
                cases.iter().any(matches),
                "{} names `{pattern}`, which is no case",
                doc.display()
            );
            named += 1;
        }
    }
    assert!(named > 0, "docs/ names no case");
}
