//! Reading the policy's TOML into its model: every field checked, every error placed.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use jiff::Timestamp;
use toml_edit::{Item, TableLike, Value};

use super::{Grace, KeyringEntry, PolicyError, PrincipalState};
use crate::key::{Algorithm, AlgorithmSet};
use crate::master::MasterSource;
use crate::principal::Principal;
use crate::text::escape_for_terminal;

/// Parsing context: the raw text for positions, the path for messages.
pub(super) struct Ctx<'a> {
    pub(super) raw: &'a str,
    pub(super) path: &'a str,
    pub(super) dir: &'a Path,
}

impl Ctx<'_> {
    pub(super) fn position(&self, span: Option<Range<usize>>) -> (usize, usize) {
        let offset = span.map_or(0, |s| s.start).min(self.raw.len());
        let before = &self.raw[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
        (line, column)
    }

    pub(super) fn invalid(&self, span: Option<Range<usize>>, message: String) -> PolicyError {
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

    pub(super) fn principals(
        &self,
        item: &Item,
    ) -> Result<BTreeMap<Principal, PrincipalState>, PolicyError> {
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
                "algorithms" => {
                    state.algorithms =
                        Some(self.algorithms(item, &format!("`principals.{name}.algorithms`"))?);
                }
                other => {
                    let at = fields.get_key_value(other).and_then(|(k, _)| k.span());
                    return Err(self.invalid(
                        at,
                        format!(
                            "unknown field {} in `principals.{name}`: expected \
                             generation, keep_previous, revoked, minted_under or algorithms",
                            escape_for_terminal(other, 64)
                        ),
                    ));
                }
            }
        }
        Ok(state)
    }

    pub(super) fn keyring(&self, item: &Item) -> Result<Vec<KeyringEntry>, PolicyError> {
        let table = self.table(item, "`keyring`")?;
        let mut out = Vec::new();
        for (field, value) in table.iter() {
            if field != "previous" {
                let at = table.get_key_value(field).and_then(|(k, _)| k.span());
                return Err(self.invalid(
                    at,
                    format!(
                        "unknown field {} in `keyring`: expected `previous`",
                        escape_for_terminal(field, 64)
                    ),
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
                let entry = self.keyring_entry(entry, span.clone())?;
                // `master retire` removes the entries of one master; a second copy would
                // keep its keys verifying.
                if let Some(first) = out
                    .iter()
                    .find(|e: &&KeyringEntry| e.source == entry.source)
                {
                    return Err(self.invalid(
                        span,
                        format!(
                            "the keyring names this master twice (first on line {}): remove one entry",
                            first.at.0
                        ),
                    ));
                }
                out.push(entry);
            }
        }
        Ok(out)
    }

    fn keyring_entry(
        &self,
        entry: &dyn TableLike,
        span: Option<Range<usize>>,
    ) -> Result<KeyringEntry, PolicyError> {
        let expected = "each `keyring.previous` entry must be { file = \"...\" } or \
                        { command = \"...\" }, with `algorithms = [...]` if its keys are of \
                        some algorithms only";
        let mut algorithms = None;
        let mut named = Vec::new();
        for (field, value) in entry.iter() {
            if field == "algorithms" {
                algorithms = Some(self.algorithms(value, "a keyring entry's `algorithms`")?);
            } else {
                named.push((field, value));
            }
        }
        let [(field, value)] = named[..] else {
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
            algorithms,
            at: self.position(span.or(value.span())),
        })
    }

    /// An algorithm's name.
    pub(super) fn algorithm(&self, item: &Item, what: &str) -> Result<Algorithm, PolicyError> {
        item.as_str()
            .and_then(|name| name.parse().ok())
            .ok_or_else(|| {
                self.invalid(
                    item.span(),
                    format!("{what} must be \"hmac-sha256\" or \"hmac-md5\""),
                )
            })
    }

    /// A non-empty array of algorithm names, none twice.
    fn algorithms(&self, item: &Item, what: &str) -> Result<AlgorithmSet, PolicyError> {
        let wrong = |span| {
            self.invalid(
                span,
                format!(
                    "{what} must be a non-empty array of \"hmac-sha256\" and \"hmac-md5\", each at most once"
                ),
            )
        };
        let array = item
            .as_value()
            .and_then(Value::as_array)
            .filter(|array| !array.is_empty())
            .ok_or_else(|| wrong(item.span()))?;
        let mut set = AlgorithmSet::default();
        for value in array {
            let alg: Algorithm = value
                .as_str()
                .and_then(|name| name.parse().ok())
                .ok_or_else(|| wrong(value.span()))?;
            if set.contains(alg) {
                return Err(wrong(value.span()));
            }
            set.insert(alg);
        }
        Ok(set)
    }
}

/// A TOML date or date-time as a moment: a date alone is 00:00 UTC of that day; a time
/// without an offset is refused (whose midnight?).
pub(super) fn timestamp_of(dt: &toml_edit::Datetime) -> Option<Timestamp> {
    match (dt.date, dt.time, dt.offset) {
        (Some(_), Some(_), Some(_)) => dt.to_string().parse().ok(),
        (Some(date), None, None) => format!("{date}T00:00:00Z").parse().ok(),
        _ => None,
    }
}
