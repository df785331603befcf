//! The policy file: each principal's generation, grace period and revocation, and the
//! previous masters that verification still accepts.
//!
//! ```toml
//! [keyring]
//! # Masters accepted besides the primary; a relative path is relative to this file.
//! previous = [{ file = "gobuilder-master.2025.key" }, { command = "pass show farm/old" }]
//!
//! [principals.host-linux-arm-aws]
//! generation = 2                        # keys of generation 2 verify ...
//! keep_previous = 2026-12-01T00:00:00Z  # ... and of generation 1 until then (or `true`)
//! minted_under = "SHA256:1f0c2a9d4b7e3c55"
//!
//! [principals.host-openbsd-amd64-70]
//! revoked = true                        # no key of it verifies
//! ```
//!
//! No file means every principal is at generation 0 with nothing revoked: exactly the
//! keys of Go's `genbuilderkey`. The tool edits the file through `toml_edit`, so comments,
//! order and layout of hand edits survive; it is written atomically with mode 0600, and
//! refused when others may write it (they could reinstate a principal or add a master).
//! Any error in it — syntax, an unknown field, a wrong type — names the file, line and
//! column, and no verification happens (fail closed).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use toml_edit::{Array, DocumentMut, InlineTable, Item, TableLike, Value};

use crate::keys::Principal;
use crate::master::{MasterSecret, MasterSource};
use crate::secret_file::{self, Existing, ReadError, WriteError};

/// The policy's file name, beside the master key file by default.
pub const DEFAULT_FILE_NAME: &str = "gobuildkey.toml";
/// The largest policy file read.
pub const MAX_LEN: usize = 4 << 20;

const TEMPLATE: &str = "\
# gobuildkey policy: principals' generations, grace periods and revocations, and the
# previous masters that verification still accepts. gobuildkey edits it (mint, rotate,
# revoke, reinstate, end-grace, master); comments and hand edits are kept.
[principals]
";

/// How long a principal's previous generation stays valid after a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Grace {
    /// Not at all: the previous key stopped verifying at the rotation.
    #[default]
    None,
    /// Until the admin ends it (`gobuildkey end-grace`).
    Open,
    /// Until this moment.
    Until(Timestamp),
}

impl Grace {
    /// Whether the previous generation is accepted at `now`.
    #[must_use]
    pub fn active_at(self, now: Timestamp) -> bool {
        match self {
            Self::None => false,
            Self::Open => true,
            Self::Until(end) => now < end,
        }
    }
}

impl fmt::Display for Grace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("-"),
            Self::Open => f.write_str("until ended"),
            Self::Until(end) => write!(f, "until {end}"),
        }
    }
}

/// What the policy says of one principal. The default is a principal it does not name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrincipalState {
    /// The current generation: its keys verify. 0 is the key of `genbuilderkey`.
    pub generation: u64,
    /// Whether the key of generation − 1 still verifies.
    pub keep_previous: Grace,
    /// Whether every key of the principal is refused.
    pub revoked: bool,
    /// The fingerprint of the master the current key was last minted under.
    pub minted_under: Option<String>,
}

/// A previous master named in the keyring, and where in the file it is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyringEntry {
    /// The master's file (resolved against the policy's folder) or command.
    pub source: MasterSource,
    /// Where the entry is: 1-based line and column.
    pub at: (usize, usize),
}

/// A parsed policy, and the document it came from for edits that keep its layout.
#[derive(Debug, Clone)]
pub struct Policy {
    path: Option<PathBuf>,
    exists: bool,
    doc: DocumentMut,
    principals: BTreeMap<Principal, PrincipalState>,
    keyring: Vec<KeyringEntry>,
}

impl Default for Policy {
    fn default() -> Self {
        Self::none()
    }
}

impl Policy {
    /// No policy: every principal at generation 0, nothing revoked, no previous master.
    #[must_use]
    pub fn none() -> Self {
        Self {
            path: None,
            exists: false,
            doc: TEMPLATE.parse().unwrap_or_default(),
            principals: BTreeMap::new(),
            keyring: Vec::new(),
        }
    }

    /// Loads the policy at `path`; a missing file is an empty policy that will be created
    /// there on [`Policy::save`].
    ///
    /// ```
    /// use gobuildkey::policy::{Policy, PrincipalState};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut policy = Policy::load(&dir.path().join("gobuildkey.toml"))?;
    /// let host = "host-linux-arm-aws".parse()?;
    /// assert_eq!(policy.state(&host), PrincipalState::default());
    ///
    /// policy.set_state(&host, &PrincipalState { generation: 1, ..Default::default() })?;
    /// policy.save()?;
    /// let again = Policy::load(&dir.path().join("gobuildkey.toml"))?;
    /// assert_eq!(again.state(&host).generation, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`PolicyError`] when the file cannot be read, may be written by others, or is not a
    /// valid policy.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let file = match secret_file::read_secret_file(path, MAX_LEN) {
            Ok(file) => file,
            Err(ReadError::Missing { .. }) => {
                return Ok(Self {
                    path: Some(path.to_owned()),
                    ..Self::none()
                });
            }
            Err(e) => return Err(PolicyError::Read(e)),
        };
        if let Some(mode) = file.mode.filter(|mode| mode & 0o022 != 0) {
            return Err(PolicyError::Writable {
                path: path.to_owned(),
                mode: mode & 0o7777,
            });
        }
        let contents = file.contents.ok_or_else(|| PolicyError::Invalid {
            path: path.display().to_string(),
            at: (1, 1),
            message: format!("the file is larger than {MAX_LEN} bytes"),
        })?;
        let text = String::from_utf8(contents.to_vec()).map_err(|_| PolicyError::Invalid {
            path: path.display().to_string(),
            at: (1, 1),
            message: "the file is not UTF-8".into(),
        })?;
        let mut policy = Self::parse(&text, Some(path))?;
        policy.exists = true;
        Ok(policy)
    }

    /// Parses policy text; `path` names it in errors and anchors relative master paths.
    ///
    /// # Errors
    /// [`PolicyError::Syntax`] or [`PolicyError::Invalid`], with the line and column.
    pub fn parse(text: &str, path: Option<&Path>) -> Result<Self, PolicyError> {
        let shown = path.map_or_else(|| "policy".to_owned(), |p| p.display().to_string());
        let ctx = Ctx {
            raw: text,
            path: &shown,
            dir: path.and_then(Path::parent).unwrap_or(Path::new("")),
        };
        // The parser's own message quotes the offending line; that line may hold something
        // pasted by mistake (a key), so only its position and the parser's words are kept.
        let parsed = toml_edit::Document::parse(text).map_err(|e| PolicyError::Syntax {
            path: shown.clone(),
            at: ctx.position(e.span()),
            message: e.message().trim_end().to_owned(),
        })?;
        let mut principals = BTreeMap::new();
        let mut keyring = Vec::new();
        for (key, item) in parsed.iter() {
            match key {
                "principals" => principals = ctx.principals(item)?,
                "keyring" => keyring = ctx.keyring(item)?,
                other => {
                    let at = parsed.key(other).and_then(toml_edit::Key::span);
                    return Err(ctx.invalid(
                        at,
                        format!("unknown field `{other}`: expected `keyring` or `principals`"),
                    ));
                }
            }
        }
        Ok(Self {
            path: path.map(Path::to_owned),
            exists: false,
            doc: parsed.into_mut(),
            principals,
            keyring,
        })
    }

    /// Where the policy lives, if it has a file.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// What the policy says of `principal` (the default when it does not name it).
    #[must_use]
    pub fn state(&self, principal: &Principal) -> PrincipalState {
        self.principals.get(principal).cloned().unwrap_or_default()
    }

    /// What the policy says of `principal`, without a copy; `None` means the defaults.
    #[must_use]
    pub fn state_ref(&self, principal: &Principal) -> Option<&PrincipalState> {
        self.principals.get(principal)
    }

    /// Every principal the policy names, in order.
    pub fn principals(&self) -> impl Iterator<Item = (&Principal, &PrincipalState)> {
        self.principals.iter()
    }

    /// The previous masters, in the file's order.
    #[must_use]
    pub fn keyring(&self) -> &[KeyringEntry] {
        &self.keyring
    }

    /// Loads every previous master of the keyring, in order. Fails closed: an entry that
    /// cannot be loaded is an error naming its line and column.
    ///
    /// # Errors
    /// [`PolicyError::Master`].
    pub fn load_keyring(&self) -> Result<Vec<(&KeyringEntry, MasterSecret)>, PolicyError> {
        self.keyring
            .iter()
            .map(|entry| {
                entry
                    .source
                    .load()
                    .map(|master| (entry, master))
                    .map_err(|error| PolicyError::Master {
                        path: self.shown_path(),
                        at: entry.at,
                        source_shown: entry.source.to_string(),
                        error,
                    })
            })
            .collect()
    }

    /// Records `state` for `principal`, keeping the rest of the document as it is.
    ///
    /// # Errors
    /// [`PolicyError::Invalid`] if the document cannot hold the change (a hand edit made
    /// `principals` something other than a table).
    pub fn set_state(
        &mut self,
        principal: &Principal,
        state: &PrincipalState,
    ) -> Result<(), PolicyError> {
        let path = self.shown_path();
        let invalid = |message: &str| PolicyError::Invalid {
            path: path.clone(),
            at: (1, 1),
            message: message.to_owned(),
        };
        let principals = self
            .doc
            .entry("principals")
            .or_insert_with(|| {
                let mut table = toml_edit::Table::new();
                table.set_implicit(true);
                Item::Table(table)
            })
            .as_table_like_mut()
            .ok_or_else(|| invalid("`principals` is not a table"))?;
        let entry = principals
            .entry(principal.as_str())
            .or_insert_with(|| Item::Table(toml_edit::Table::new()))
            .as_table_like_mut()
            .ok_or_else(|| invalid("a principal's entry is not a table"))?;
        set_or_remove(
            entry,
            "generation",
            (state.generation != 0).then(|| {
                // Generations beyond i64 cannot be written; `rotate` refuses before that.
                Value::from(i64::try_from(state.generation).unwrap_or(i64::MAX))
            }),
        );
        set_or_remove(
            entry,
            "keep_previous",
            match state.keep_previous {
                Grace::None => None,
                Grace::Open => Some(Value::from(true)),
                Grace::Until(end) => end
                    .to_string()
                    .parse::<toml_edit::Datetime>()
                    .ok()
                    .map(Value::from),
            },
        );
        set_or_remove(entry, "revoked", state.revoked.then(|| Value::from(true)));
        set_or_remove(
            entry,
            "minted_under",
            state.minted_under.as_deref().map(Value::from),
        );
        if entry.is_empty() {
            principals.remove(principal.as_str());
        }
        self.reparse()
    }

    /// Adds a previous master to the keyring.
    ///
    /// # Errors
    /// [`PolicyError::Invalid`] if `keyring.previous` is not an array.
    pub fn add_previous_master(&mut self, source: &MasterSource) -> Result<(), PolicyError> {
        let mut entry = InlineTable::new();
        match source {
            MasterSource::File(file) => {
                let shown = self
                    .path
                    .as_deref()
                    .and_then(Path::parent)
                    .and_then(|dir| file.strip_prefix(dir).ok())
                    .unwrap_or(file);
                entry.insert("file", Value::from(shown.display().to_string()));
            }
            MasterSource::Command(command) => {
                entry.insert(
                    "command",
                    Value::from(command.to_string_lossy().into_owned()),
                );
            }
        }
        let path = self.shown_path();
        let keyring = self
            .doc
            .entry("keyring")
            .or_insert_with(|| Item::Table(toml_edit::Table::new()))
            .as_table_like_mut()
            .ok_or_else(|| PolicyError::Invalid {
                path: path.clone(),
                at: (1, 1),
                message: "`keyring` is not a table".into(),
            })?;
        let previous = keyring
            .entry("previous")
            .or_insert_with(|| Item::Value(Value::Array(Array::new())));
        if let Some(tables) = previous.as_array_of_tables_mut() {
            tables.push(entry.into_table());
        } else if let Some(array) = previous.as_array_mut() {
            array.push(entry);
        } else {
            return Err(PolicyError::Invalid {
                path,
                at: (1, 1),
                message: "`keyring.previous` is not an array".into(),
            });
        }
        self.reparse()
    }

    /// Removes the keyring's entry number `index` (0-based, in the file's order).
    ///
    /// # Errors
    /// [`PolicyError::Invalid`] if there is no such entry.
    pub fn remove_previous_master(&mut self, index: usize) -> Result<(), PolicyError> {
        let removed = self
            .doc
            .get_mut("keyring")
            .and_then(Item::as_table_like_mut)
            .and_then(|keyring| keyring.get_mut("previous"))
            .is_some_and(|previous| {
                if let Some(tables) = previous.as_array_of_tables_mut() {
                    (index < tables.len())
                        .then(|| tables.remove(index))
                        .is_some()
                } else if let Some(array) = previous.as_array_mut() {
                    (index < array.len()).then(|| array.remove(index)).is_some()
                } else {
                    false
                }
            });
        if !removed {
            return Err(PolicyError::Invalid {
                path: self.shown_path(),
                at: (1, 1),
                message: format!("the keyring has no entry {index}"),
            });
        }
        self.reparse()
    }

    /// Writes the policy to its file: atomically, mode 0600.
    ///
    /// # Errors
    /// [`PolicyError::NoFile`] for a policy without a file; [`PolicyError::Write`].
    pub fn save(&mut self) -> Result<(), PolicyError> {
        let path = self.path.clone().ok_or(PolicyError::NoFile)?;
        let existing = if self.exists {
            Existing::Replace
        } else {
            Existing::Refuse
        };
        secret_file::write_secret_file(&path, self.to_text().as_bytes(), existing)?;
        self.exists = true;
        Ok(())
    }

    /// The document as text, as [`Policy::save`] would write it.
    #[must_use]
    pub fn to_text(&self) -> String {
        self.doc.to_string()
    }

    fn shown_path(&self) -> String {
        self.path
            .as_deref()
            .map_or_else(|| "policy".to_owned(), |p| p.display().to_string())
    }

    /// Rebuilds the model from the edited document, so the two never disagree and every
    /// edit passes the same checks as a loaded file.
    fn reparse(&mut self) -> Result<(), PolicyError> {
        let text = self.doc.to_string();
        let exists = self.exists;
        *self = Self::parse(&text, self.path.as_deref())?;
        self.exists = exists;
        Ok(())
    }
}

fn set_or_remove(table: &mut dyn TableLike, key: &str, value: Option<Value>) {
    match value {
        Some(value) => {
            // Keep the comments around a value that is replaced.
            let decor = table
                .get(key)
                .and_then(Item::as_value)
                .map(|old| old.decor().clone());
            let mut value = value;
            if let Some(decor) = decor {
                *value.decor_mut() = decor;
            }
            table.insert(key, Item::Value(value));
        }
        None => {
            table.remove(key);
        }
    }
}

/// Parsing context: the raw text for positions, the path for messages.
struct Ctx<'a> {
    raw: &'a str,
    path: &'a str,
    dir: &'a Path,
}

impl Ctx<'_> {
    fn position(&self, span: Option<Range<usize>>) -> (usize, usize) {
        let offset = span.map_or(0, |s| s.start).min(self.raw.len());
        let before = &self.raw[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
        (line, column)
    }

    fn invalid(&self, span: Option<Range<usize>>, message: String) -> PolicyError {
        PolicyError::Invalid {
            path: self.path.to_owned(),
            at: self.position(span),
            message,
        }
    }

    fn table<'i>(&self, item: &'i Item, what: &str) -> Result<&'i dyn TableLike, PolicyError> {
        item.as_table_like()
            .ok_or_else(|| self.invalid(item.span(), format!("{what} must be a table")))
    }

    fn principals(&self, item: &Item) -> Result<BTreeMap<Principal, PrincipalState>, PolicyError> {
        let table = self.table(item, "`principals`")?;
        let mut out = BTreeMap::new();
        for (name, entry) in table.iter() {
            let key_span = table.get_key_value(name).and_then(|(k, _)| k.span());
            let principal =
                Principal::new(name).map_err(|e| self.invalid(key_span, e.to_string()))?;
            let fields = self.table(entry, &format!("`principals.{name}`"))?;
            out.insert(principal, self.state(name, fields)?);
        }
        Ok(out)
    }

    fn state(&self, name: &str, fields: &dyn TableLike) -> Result<PrincipalState, PolicyError> {
        let mut state = PrincipalState::default();
        for (field, item) in fields.iter() {
            let wrong = |expected: &str| {
                self.invalid(
                    item.span(),
                    format!("`principals.{name}.{field}` must be {expected}"),
                )
            };
            match field {
                "generation" => {
                    state.generation = item
                        .as_integer()
                        .and_then(|n| u64::try_from(n).ok())
                        .ok_or_else(|| wrong("a whole number from 0 up"))?;
                }
                "keep_previous" => {
                    state.keep_previous = match item.as_value() {
                        Some(Value::Boolean(b)) if *b.value() => Grace::Open,
                        Some(Value::Boolean(_)) => Grace::None,
                        Some(Value::Datetime(dt)) => {
                            Grace::Until(timestamp_of(dt.value()).ok_or_else(|| {
                                wrong("true, false, a date or a date and time with an offset")
                            })?)
                        }
                        _ => {
                            return Err(wrong(
                                "true, false, a date or a date and time with an offset",
                            ));
                        }
                    };
                }
                "revoked" => {
                    state.revoked = item.as_bool().ok_or_else(|| wrong("true or false"))?;
                }
                "minted_under" => {
                    state.minted_under =
                        Some(item.as_str().ok_or_else(|| wrong("a string"))?.to_owned());
                }
                other => {
                    let at = fields.get_key_value(other).and_then(|(k, _)| k.span());
                    return Err(self.invalid(
                        at,
                        format!(
                            "unknown field `{other}` in `principals.{name}`: expected \
                             generation, keep_previous, revoked or minted_under"
                        ),
                    ));
                }
            }
        }
        Ok(state)
    }

    fn keyring(&self, item: &Item) -> Result<Vec<KeyringEntry>, PolicyError> {
        let table = self.table(item, "`keyring`")?;
        let mut out = Vec::new();
        for (field, value) in table.iter() {
            if field != "previous" {
                let at = table.get_key_value(field).and_then(|(k, _)| k.span());
                return Err(self.invalid(
                    at,
                    format!("unknown field `{field}` in `keyring`: expected `previous`"),
                ));
            }
            let entries: Vec<(&dyn TableLike, Option<Range<usize>>)> =
                if let Some(tables) = value.as_array_of_tables() {
                    tables
                        .iter()
                        .map(|t| (t as &dyn TableLike, t.span()))
                        .collect()
                } else if let Some(array) = value.as_array() {
                    array
                        .iter()
                        .map(|v| {
                            v.as_inline_table()
                                .map(|t| (t as &dyn TableLike, v.span()))
                                .ok_or_else(|| {
                                    self.invalid(
                                        v.span(),
                                        "each `keyring.previous` entry must be \
                                         { file = \"...\" } or { command = \"...\" }"
                                            .into(),
                                    )
                                })
                        })
                        .collect::<Result<_, _>>()?
                } else {
                    return Err(
                        self.invalid(value.span(), "`keyring.previous` must be an array".into())
                    );
                };
            for (entry, span) in entries {
                out.push(self.keyring_entry(entry, span)?);
            }
        }
        Ok(out)
    }

    fn keyring_entry(
        &self,
        entry: &dyn TableLike,
        span: Option<Range<usize>>,
    ) -> Result<KeyringEntry, PolicyError> {
        let expected =
            "each `keyring.previous` entry must be { file = \"...\" } or { command = \"...\" }";
        let mut fields = entry.iter();
        let (Some((field, value)), None) = (fields.next(), fields.next()) else {
            return Err(self.invalid(span, expected.into()));
        };
        let text = value
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| self.invalid(value.span().or(span.clone()), expected.into()))?;
        let source = match field {
            "file" => MasterSource::File(self.dir.join(text)),
            "command" => MasterSource::Command(text.into()),
            _ => return Err(self.invalid(span, expected.into())),
        };
        Ok(KeyringEntry {
            source,
            at: self.position(span.or(value.span())),
        })
    }
}

/// A TOML date or date-time as a moment: a date alone is 00:00 UTC of that day; a time
/// without an offset is refused (whose midnight?).
fn timestamp_of(dt: &toml_edit::Datetime) -> Option<Timestamp> {
    match (dt.date, dt.time, dt.offset) {
        (Some(_), Some(_), Some(_)) => dt.to_string().parse().ok(),
        (Some(date), None, None) => format!("{date}T00:00:00Z").parse().ok(),
        _ => None,
    }
}

/// Parses a `--keep-previous-until` value: an RFC 3339 date-time with an offset, or a date
/// (00:00 UTC of that day).
///
/// ```
/// use gobuildkey::policy::parse_moment;
///
/// assert_eq!(parse_moment("2026-12-01")?.to_string(), "2026-12-01T00:00:00Z");
/// assert!(parse_moment("2026-12-01T10:00:00+02:00").is_ok());
/// assert!(parse_moment("next tuesday").is_err());
/// # Ok::<(), String>(())
/// ```
///
/// # Errors
/// A message saying what is accepted.
pub fn parse_moment(text: &str) -> Result<Timestamp, String> {
    let as_toml = text
        .parse::<toml_edit::Datetime>()
        .ok()
        .and_then(|dt| timestamp_of(&dt));
    as_toml.ok_or_else(|| {
        format!("`{text}` is not a date (2026-12-01) or a date and time with an offset (2026-12-01T12:00:00Z)")
    })
}

/// Why the policy cannot be used. Verification does not happen without it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file cannot be read, or is not a regular file.
    #[error("cannot read the policy: {0}")]
    Read(ReadError),
    /// Group or others may write the file.
    #[error(
        "policy {path} may be written by others (mode {mode:04o}), who could reinstate principals or add masters: run `chmod 600 {path}`",
        path = path.display()
    )]
    Writable {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Not TOML.
    #[error("policy {path}, line {}, column {}: not valid TOML: {message}", at.0, at.1)]
    Syntax {
        /// The file.
        path: String,
        /// Line and column, 1-based.
        at: (usize, usize),
        /// The parser's words, without the quoted line.
        message: String,
    },
    /// TOML, but not a policy.
    #[error("policy {path}, line {}, column {}: {message}", at.0, at.1)]
    Invalid {
        /// The file.
        path: String,
        /// Line and column, 1-based.
        at: (usize, usize),
        /// What is wrong.
        message: String,
    },
    /// A previous master of the keyring cannot be loaded.
    #[error("policy {path}, line {}, column {}: previous master {source_shown}: {error}", at.0, at.1)]
    Master {
        /// The file.
        path: String,
        /// Line and column of the entry, 1-based.
        at: (usize, usize),
        /// The entry, as it can be shown.
        source_shown: String,
        /// Why it cannot be loaded.
        error: crate::master::MasterError,
    },
    /// No policy file could be named (no `--policy`, no home folder to find it in).
    #[error("no policy file: pass --policy FILE (or set HOME)")]
    NoFile,
    /// The file could not be written.
    #[error("cannot write the policy: {0}")]
    Write(WriteError),
}

impl From<WriteError> for PolicyError {
    fn from(error: WriteError) -> Self {
        Self::Write(error)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn p(name: &str) -> Principal {
        name.parse().unwrap()
    }

    #[test]
    fn parses_every_field() {
        let policy = Policy::parse(
            r#"
[keyring]
previous = [{ file = "old.key" }, { command = "pass show old" }]

[principals.host-a]
generation = 3
keep_previous = true
minted_under = "SHA256:0011223344556677"

[principals."host-b.x"]
revoked = true
keep_previous = 2026-12-01

[principals.host-c]
keep_previous = 2026-12-01T10:00:00+02:00
"#,
            Some(Path::new("/etc/farm/gobuildkey.toml")),
        )
        .unwrap();
        let a = policy.state(&p("host-a"));
        assert_eq!(a.generation, 3);
        assert_eq!(a.keep_previous, Grace::Open);
        assert_eq!(a.minted_under.as_deref(), Some("SHA256:0011223344556677"));
        let b = policy.state(&p("host-b.x"));
        assert!(b.revoked);
        assert_eq!(
            b.keep_previous,
            Grace::Until("2026-12-01T00:00:00Z".parse().unwrap())
        );
        assert_eq!(
            policy.state(&p("host-c")).keep_previous,
            Grace::Until("2026-12-01T08:00:00Z".parse().unwrap())
        );
        assert_eq!(policy.state(&p("host-z")), PrincipalState::default());
        assert_eq!(
            policy.keyring()[0].source,
            MasterSource::File("/etc/farm/old.key".into())
        );
        assert_eq!(policy.keyring()[0].at, (3, 13));
        assert_eq!(
            policy.keyring()[1].source,
            MasterSource::Command("pass show old".into())
        );
    }

    #[test]
    fn array_of_tables_keyring() {
        let policy = Policy::parse("[[keyring.previous]]\nfile = \"a.key\"\n", None).unwrap();
        assert_eq!(policy.keyring().len(), 1);
    }

    #[test]
    fn errors_name_line_and_column() {
        let cases = [
            (
                "[principals.host-a]\ngeneration = \"two\"\n",
                (2, 14),
                "whole number",
            ),
            (
                "[principals.host-a]\ngeneration = -1\n",
                (2, 14),
                "whole number",
            ),
            (
                "[principals.host-a]\ngenration = 1\n",
                (2, 1),
                "unknown field `genration`",
            ),
            ("[principals.Host-A]\n", (1, 13), "invalid principal"),
            (
                "[principals.host-a]\nrevoked = \"yes\"\n",
                (2, 11),
                "true or false",
            ),
            (
                "[principals.host-a]\nkeep_previous = 2026-12-01T10:00:00\n",
                (2, 17),
                "offset",
            ),
            ("[keyring]\nprevious = [\"old.key\"]\n", (2, 13), "file = "),
            (
                "[keyring]\nprevious = [{ file = \"a\", command = \"b\" }]\n",
                (2, 13),
                "file = ",
            ),
            ("[keyring]\nold = 1\n", (2, 1), "unknown field `old`"),
            ("\n\nmasters = 1\n", (3, 1), "unknown field `masters`"),
            ("principals = 1\n", (1, 14), "must be a table"),
        ];
        for (text, at, message) in cases {
            let err = Policy::parse(text, Some(Path::new("p.toml"))).unwrap_err();
            let PolicyError::Invalid { at: got, .. } = &err else {
                panic!("{text:?}: {err}")
            };
            assert_eq!(*got, at, "{text:?}: {err}");
            assert!(err.to_string().contains(message), "{text:?}: {err}");
            assert!(err.to_string().contains("p.toml"), "{err}");
        }
    }

    #[test]
    fn syntax_errors_and_duplicates_name_the_place() {
        for text in [
            "[principals.host-a]\ngeneration = 1\ngeneration = 2\n",
            "[principals.host-a]\n[principals.host-a]\n",
            "[principals\n",
        ] {
            let err = Policy::parse(text, Some(Path::new("p.toml"))).unwrap_err();
            assert!(matches!(err, PolicyError::Syntax { .. }), "{err}");
            assert!(err.to_string().contains("line"), "{err}");
            // The offending line is not quoted back.
            assert!(!err.to_string().contains("generation = 2"), "{err}");
        }
    }

    #[test]
    fn huge_generations_are_refused_or_kept() {
        let ok = Policy::parse("[principals.h]\ngeneration = 9223372036854775807\n", None);
        assert_eq!(ok.unwrap().state(&p("h")).generation, i64::MAX as u64);
        assert!(Policy::parse("[principals.h]\ngeneration = 9223372036854775808\n", None).is_err());
        assert!(Policy::parse("[principals.h]\ngeneration = 1.5\n", None).is_err());
    }

    #[test]
    fn edits_keep_comments_and_order() {
        let text = "\
# farm policy, kept by hand
[principals.host-b]   # the old one
revoked = true        # leaked 2026-11

[principals.host-a]
generation = 1 # rotated
";
        let mut policy = Policy::parse(text, None).unwrap();
        policy
            .set_state(
                &p("host-a"),
                &PrincipalState {
                    generation: 2,
                    keep_previous: Grace::Open,
                    ..Default::default()
                },
            )
            .unwrap();
        policy
            .set_state(
                &p("host-c"),
                &PrincipalState {
                    revoked: true,
                    ..Default::default()
                },
            )
            .unwrap();
        let out = policy.to_text();
        assert!(out.starts_with("# farm policy, kept by hand\n[principals.host-b]   # the old one\nrevoked = true        # leaked 2026-11\n"), "{out}");
        assert!(out.contains("generation = 2 # rotated"), "{out}");
        assert!(
            out.find("host-b") < out.find("host-a") && out.find("host-a") < out.find("host-c"),
            "{out}"
        );
        let again = Policy::parse(&out, None).unwrap();
        assert_eq!(again.state(&p("host-a")).generation, 2);
        assert_eq!(again.state(&p("host-a")).keep_previous, Grace::Open);
        assert!(again.state(&p("host-c")).revoked);
    }

    #[test]
    fn defaults_are_not_written() {
        let mut policy = Policy::none();
        policy
            .set_state(
                &p("host-a"),
                &PrincipalState {
                    revoked: true,
                    ..Default::default()
                },
            )
            .unwrap();
        policy
            .set_state(&p("host-a"), &PrincipalState::default())
            .unwrap();
        let out = policy.to_text();
        assert!(
            !out.contains("revoked =") && !out.contains("host-a"),
            "{out}"
        );
    }

    #[test]
    fn keyring_edits() {
        let mut policy = Policy::parse("", Some(Path::new("/farm/gobuildkey.toml"))).unwrap();
        policy
            .add_previous_master(&MasterSource::File("/farm/old.key".into()))
            .unwrap();
        policy
            .add_previous_master(&MasterSource::Command("pass show x".into()))
            .unwrap();
        assert!(
            policy.to_text().contains("file = \"old.key\""),
            "{}",
            policy.to_text()
        );
        assert_eq!(policy.keyring().len(), 2);
        policy.remove_previous_master(0).unwrap();
        assert_eq!(
            policy.keyring()[0].source,
            MasterSource::Command("pass show x".into())
        );
        assert!(policy.remove_previous_master(5).is_err());
    }

    #[test]
    fn grace_is_active_until_its_end() {
        let now: Timestamp = "2026-11-24T00:00:00Z".parse().unwrap();
        assert!(!Grace::None.active_at(now));
        assert!(Grace::Open.active_at(now));
        assert!(Grace::Until("2026-11-25T00:00:00Z".parse().unwrap()).active_at(now));
        assert!(!Grace::Until(now).active_at(now));
    }

    #[cfg(unix)]
    #[test]
    fn writable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "").unwrap();
        for (mode, ok) in [(0o600, true), (0o644, true), (0o620, false), (0o602, false)] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(Policy::load(&path).is_ok(), ok, "{mode:o}");
        }
    }

    #[test]
    fn saving_writes_a_private_file_and_then_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        let mut policy = Policy::load(&path).unwrap();
        policy
            .set_state(
                &p("h"),
                &PrincipalState {
                    generation: 1,
                    ..Default::default()
                },
            )
            .unwrap();
        policy.save().unwrap();
        policy
            .set_state(
                &p("h"),
                &PrincipalState {
                    generation: 2,
                    ..Default::default()
                },
            )
            .unwrap();
        policy.save().unwrap();
        assert_eq!(Policy::load(&path).unwrap().state(&p("h")).generation, 2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
