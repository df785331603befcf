//! How results are printed: for people (the default), as one JSON object (`--json`), or not
//! at all (`-q`). Chosen once in `main`; every command reports through here, so the three
//! modes cannot drift apart. The JSON schema is documented in docs/json.md.

use std::io::{self, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value};

/// The schema every JSON object names; bump it on an incompatible change.
pub const SCHEMA: &str = "gobuildkey/1";

/// The output mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Lines for people.
    Human,
    /// One JSON object on standard output.
    Json,
    /// Nothing but errors (and the key `mint` and `rotate` exist to print).
    Quiet,
}

static MODE: OnceLock<Mode> = OnceLock::new();

/// Set when a write to standard output failed: its reader went away (`| head -c0`).
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Whether a write to standard output failed. `main` then exits 141, as a process killed by
/// SIGPIPE would, unless the command's exit status is a verdict (`verify`).
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Writes `text` and a newline to standard output; a failure is remembered, never a panic
/// (Rust's `println!` panics on a closed pipe).
pub fn out_line(text: &str) {
    let mut out = io::stdout().lock();
    if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Writes `text` and a newline to standard error; nothing more can be done if that fails.
pub fn err_line(text: &str) {
    let _ = writeln!(io::stderr().lock(), "{text}");
}

/// Sets the mode; the first call wins.
pub fn set(mode: Mode) {
    let _ = MODE.set(mode);
}

/// The mode in force.
pub fn mode() -> Mode {
    MODE.get().copied().unwrap_or(Mode::Human)
}

/// A command's result: `human` on standard output, or `fields` as one JSON object with the
/// schema and the command's name, or nothing.
pub fn report(command: &str, human: &str, fields: Value) {
    match mode() {
        Mode::Human => {
            if !human.is_empty() {
                out_line(human.trim_end_matches('\n'));
            }
        }
        Mode::Json => out_line(&object(command, fields).to_string()),
        Mode::Quiet => {}
    }
}

/// A remark for people on standard error (a warning, a note, a fingerprint); silent with
/// `-q`, and kept on standard error with `--json`, where standard output is the object.
pub fn note(text: &str) {
    if mode() != Mode::Quiet {
        err_line(text);
    }
}

/// `fields` with `schema` and `command` first.
pub fn object(command: &str, fields: Value) -> Value {
    let mut out = Map::new();
    out.insert("schema".into(), Value::from(SCHEMA));
    out.insert("command".into(), Value::from(command));
    if let Value::Object(fields) = fields {
        out.extend(fields);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_lead_with_schema_and_command() {
        let o = object("mint", serde_json::json!({"principal": "host-a"}));
        assert_eq!(
            o.to_string(),
            r#"{"schema":"gobuildkey/1","command":"mint","principal":"host-a"}"#
        );
    }
}
