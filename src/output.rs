//! How results are printed: for people (the default), as one JSON object (`--json`), or not
//! at all (`-q`). Chosen once in `main`; every command reports through here, so the three
//! modes cannot drift apart. The JSON schema is documented in docs/json.md.

use std::io::{self, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

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

/// Set when a result could not be encoded as JSON; the first failure's message.
static UNPRINTED: OnceLock<String> = OnceLock::new();

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
    // One write: standard error is unbuffered, and `writeln!` would write the text and the
    // newline apart, two system calls between which another process's line could land.
    let mut line = String::with_capacity(text.len() + 1);
    line.push_str(text);
    line.push('\n');
    let _ = io::stderr().lock().write_all(line.as_bytes());
}

/// Sets the mode; the first call wins.
pub fn set(mode: Mode) {
    let _ = MODE.set(mode);
}

/// The mode in force.
pub fn mode() -> Mode {
    MODE.get().copied().unwrap_or(Mode::Human)
}

/// A command's result: `human` on standard output, or `body` (a struct of
/// `commands::json`) as one JSON object with the schema and the command's name, or nothing.
///
/// An object that cannot be encoded (a path that is not UTF-8) is not printed, and is
/// remembered: `main` then reports it as the command's error ([`unprinted`]), as it exits
/// 141 after a closed standard output. What the command did stands either way: it is not
/// an error of the command, which must not undo anything for it.
pub fn report<T: Serialize>(command: &str, human: &str, body: &T) {
    match mode() {
        Mode::Human => {
            if !human.is_empty() {
                out_line(human.trim_end_matches('\n'));
            }
        }
        Mode::Json => match encode(command, body) {
            Ok(text) => out_line(&text),
            Err(e) => {
                let _ = UNPRINTED.set(format!("cannot print the result of {command} as JSON: {e}"));
            }
        },
        Mode::Quiet => {}
    }
}

/// Why a result was not printed ([`report`]), if one was not.
pub fn unprinted() -> Option<&'static str> {
    UNPRINTED.get().map(String::as_str)
}

/// A remark for people on standard error (a warning, a note, a fingerprint); silent with
/// `-q`, and kept on standard error with `--json`, where standard output is the object.
pub fn note(text: &str) {
    if mode() != Mode::Quiet {
        err_line(text);
    }
}

/// Every object: `schema` and `command` first, then the fields of `body`, in the order its
/// struct declares them (`flatten` writes them as entries of the same object).
#[derive(Serialize)]
struct Envelope<'a, T> {
    schema: &'static str,
    command: &'a str,
    #[serde(flatten)]
    body: &'a T,
}

/// `body` as the object of `command`, on one line.
pub fn encode<T: Serialize>(command: &str, body: &T) -> serde_json::Result<String> {
    serde_json::to_string(&Envelope {
        schema: SCHEMA,
        command,
        body,
    })
}

/// `body` as the object of `command`, written to `writer` as it is encoded (no copy of it
/// is made elsewhere: `mint`'s key goes straight into the buffer that is wiped).
pub fn encode_into<W: Write, T: Serialize>(
    writer: W,
    command: &str,
    body: &T,
) -> serde_json::Result<()> {
    serde_json::to_writer(
        writer,
        &Envelope {
            schema: SCHEMA,
            command,
            body,
        },
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn objects_lead_with_schema_and_command_then_the_fields_in_declared_order() {
        #[derive(Serialize)]
        struct Body {
            principal: &'static str,
            zeta: u8,
            alpha: Option<bool>,
            #[serde(flatten)]
            more: More,
        }
        #[derive(Serialize)]
        struct More {
            middle: bool,
            aardvark: (),
        }
        let body = Body {
            principal: "host-a",
            zeta: 1,
            alpha: None,
            more: More {
                middle: true,
                aardvark: (),
            },
        };
        let text = encode("mint", &body).unwrap();
        assert_eq!(
            text,
            r#"{"schema":"gobuildkey/1","command":"mint","principal":"host-a","zeta":1,"alpha":null,"middle":true,"aardvark":null}"#
        );
        // Read back, the order holds too (serde_json's `preserve_order`).
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value.to_string(), text);
    }
}
