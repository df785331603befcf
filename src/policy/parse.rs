//! Reading the policy's TOML into its model: every field checked, every error placed.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use toml_edit::{Item, TableLike, Value};

use super::grace::timestamp_of;
use super::{Grace, KeyringEntry, Policy, PolicyError, PrincipalState};
use crate::key::{Algorithm, AlgorithmSet};
use crate::master::MasterSource;
use crate::principal::Principal;
use crate::text::escape_for_terminal;

impl Policy {
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
        let mut algorithm = Algorithm::default();
        for (key, item) in parsed.iter() {
            match key {
                "algorithm" => algorithm = ctx.algorithm(item, "`algorithm`")?,
                "principals" => principals = ctx.principals(item)?,
                "keyring" => keyring = ctx.keyring(item)?,
                other => {
                    let at = parsed.key(other).and_then(toml_edit::Key::span);
                    return Err(ctx.invalid(
                        at,
                        format!(
                            "unknown field {}: expected `algorithm`, `keyring` or `principals`",
                            crate::text::escape_for_terminal(other, 64)
                        ),
                    ));
                }
            }
        }
        Ok(Self {
            path: path.map(Path::to_owned),
            doc: parsed.into_mut(),
            algorithm,
            principals,
            keyring,
        })
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

    fn keyring(&self, item: &Item) -> Result<Vec<KeyringEntry>, PolicyError> {
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
    fn algorithm(&self, item: &Item, what: &str) -> Result<Algorithm, PolicyError> {
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
                "unknown field \"genration\"",
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
            ("[keyring]\nold = 1\n", (2, 1), "unknown field \"old\""),
            ("\n\nmasters = 1\n", (3, 1), "unknown field \"masters\""),
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
    fn unknown_fields_are_named_escaped() {
        let err = Policy::parse("\"\\u001b[2Jx\" = 1\n", None)
            .unwrap_err()
            .to_string();
        assert!(!err.contains('\u{1b}'), "{err}");
        assert!(err.contains("unknown field"), "{err}");
    }
}
