//! The policy's schema: the TOML tree ([`super::tree`]) given its meaning, every field
//! checked, every error placed. The one reader of the file: verification, listing and every
//! edit (which re-reads the text it is about to write) go through it.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use super::grace::timestamp_of;
use super::tree::{Kind, NodeId, Tree};
use super::{Entry, Grace, KeyringEntry, Policy, PolicyError, PrincipalState};
use crate::key::{Algorithm, AlgorithmSet};
use crate::machine::Machine;
use crate::master::MasterSource;
use crate::principal::Principal;
use crate::text::escape_for_terminal;

impl Policy {
    /// Parses policy text; `path` names it in errors and anchors relative master paths.
    ///
    /// # Errors
    /// [`PolicyError::Syntax`] or [`PolicyError::Invalid`], with the line and column.
    pub fn parse(text: &str, path: Option<&Path>) -> Result<Self, PolicyError> {
        Self::parse_owned(text.to_owned(), path)
    }

    /// [`Policy::parse`] of text the policy then keeps (no copy).
    pub(super) fn parse_owned(text: String, path: Option<&Path>) -> Result<Self, PolicyError> {
        let shown = path.map_or_else(|| "policy".to_owned(), |p| p.display().to_string());
        let ctx = Ctx {
            raw: &text,
            path: &shown,
            dir: path.and_then(Path::parent).unwrap_or(Path::new("")),
        };
        // The parser's own words and the place; never the offending line, which may hold
        // something pasted by mistake (a key).
        let tree = Tree::parse(&text).map_err(|e| PolicyError::Syntax {
            path: shown.clone(),
            at: ctx.position(Some(e.span)),
            message: e.message,
        })?;
        let mut principals = BTreeMap::new();
        let mut keyring = Vec::new();
        let mut algorithm = Algorithm::default();
        for item in tree.children(Tree::root()) {
            match &*tree.key(item) {
                "algorithm" => algorithm = ctx.algorithm(&tree, item, "`algorithm`")?,
                "principals" => principals = ctx.principals(&tree, item)?,
                "keyring" => keyring = ctx.keyring(&tree, item)?,
                other => {
                    return Err(ctx.invalid(
                        Some(tree.key_span(item)),
                        format!(
                            "unknown field {}: expected `algorithm`, `keyring` or `principals`",
                            escape_for_terminal(other, 64)
                        ),
                    ));
                }
            }
        }
        drop(tree);
        Ok(Self {
            path: path.map(Path::to_owned),
            text: Arc::new(text),
            algorithm,
            principals: Arc::new(principals),
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
        let offset = (0..=offset)
            .rev()
            .find(|&i| self.raw.is_char_boundary(i))
            .unwrap_or(0);
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

    fn table(&self, tree: &Tree<'_>, item: NodeId, what: &str) -> Result<(), PolicyError> {
        match tree.kind(item) {
            Kind::Table => Ok(()),
            _ => Err(self.invalid(
                Some(tree.value_span(item)),
                format!("{what} must be a table"),
            )),
        }
    }

    fn principals(
        &self,
        tree: &Tree<'_>,
        item: NodeId,
    ) -> Result<BTreeMap<Principal, Entry>, PolicyError> {
        self.table(tree, item, "`principals`")?;
        // Collected, then built at once (the tree already refused a name given twice):
        // cheaper than inserting 100,000 names one by one.
        let mut out = Vec::new();
        for entry in tree.children(item) {
            let name = tree.key(entry);
            let principal = Principal::new(&name)
                .map_err(|e| self.invalid(Some(tree.key_span(entry)), e.to_string()))?;
            self.table(tree, entry, &format!("`principals.{name}`"))?;
            let state = self.state(tree, &name, entry)?;
            // A field with a `[header]` of its own (`[principals.NAME.machine_generations]`)
            // puts part of the principal elsewhere in the text: no section of its own to
            // edit alone, so its edits go through the whole document.
            let split = tree
                .children(entry)
                .any(|field| tree.section(field).is_some());
            let section = tree.section(entry).filter(|_| !split);
            out.push((principal, Entry { state, section }));
        }
        Ok(out.into_iter().collect())
    }

    fn state(
        &self,
        tree: &Tree<'_>,
        name: &str,
        fields: NodeId,
    ) -> Result<PrincipalState, PolicyError> {
        let mut state = PrincipalState::default();
        for item in tree.children(fields) {
            let field = tree.key(item);
            let wrong = |expected: &str| {
                self.invalid(
                    Some(tree.value_span(item)),
                    format!("`principals.{name}.{field}` must be {expected}"),
                )
            };
            match &*field {
                "generation" => {
                    state.generation = tree
                        .integer(item)
                        .and_then(|n| u64::try_from(n).ok())
                        .ok_or_else(|| wrong("a whole number from 0 up"))?;
                }
                "keep_previous" => {
                    let dates = "true, false, a date or a date and time with an offset";
                    state.keep_previous = match (tree.boolean(item), tree.datetime(item)) {
                        (Some(true), _) => Grace::Open,
                        (Some(false), _) => Grace::None,
                        (None, Some(dt)) => {
                            Grace::Until(timestamp_of(&dt).ok_or_else(|| wrong(dates))?)
                        }
                        (None, None) => return Err(wrong(dates)),
                    };
                }
                "revoked" => {
                    state.revoked = tree.boolean(item).ok_or_else(|| wrong("true or false"))?;
                }
                "minted_under" => {
                    state.minted_under = Some(
                        tree.string(item)
                            .ok_or_else(|| wrong("a string"))?
                            .into_owned(),
                    );
                }
                "algorithms" => {
                    state.algorithms = Some(self.algorithms(
                        tree,
                        item,
                        &format!("`principals.{name}.algorithms`"),
                    )?);
                }
                "machines" => {
                    state.machines =
                        self.machines(tree, item, &format!("`principals.{name}.machines`"))?;
                }
                "revoked_machines" => {
                    state.revoked_machines = self.machines(
                        tree,
                        item,
                        &format!("`principals.{name}.revoked_machines`"),
                    )?;
                }
                "machine_keys_only" => {
                    state.machine_keys_only =
                        tree.boolean(item).ok_or_else(|| wrong("true or false"))?;
                }
                "machine_generations" => {
                    state.machine_generations = self.machine_generations(
                        tree,
                        item,
                        &format!("`principals.{name}.machine_generations`"),
                    )?;
                }
                other => {
                    return Err(self.invalid(
                        Some(tree.key_span(item)),
                        format!(
                            "unknown field {} in `principals.{name}`: expected generation, \
                             keep_previous, revoked, minted_under, algorithms, machines, \
                             revoked_machines, machine_keys_only or machine_generations",
                            escape_for_terminal(other, 64)
                        ),
                    ));
                }
            }
        }
        Ok(state)
    }

    fn keyring(&self, tree: &Tree<'_>, item: NodeId) -> Result<Vec<KeyringEntry>, PolicyError> {
        self.table(tree, item, "`keyring`")?;
        let mut out: Vec<KeyringEntry> = Vec::new();
        for value in tree.children(item) {
            let field = tree.key(value);
            if field != "previous" {
                return Err(self.invalid(
                    Some(tree.key_span(value)),
                    format!(
                        "unknown field {} in `keyring`: expected `previous`",
                        escape_for_terminal(&field, 64)
                    ),
                ));
            }
            let entries = match tree.kind(value) {
                Kind::ArrayOfTables | Kind::Array => tree.children(value),
                _ => {
                    return Err(self.invalid(
                        Some(tree.value_span(value)),
                        "`keyring.previous` must be an array".into(),
                    ));
                }
            };
            for entry in entries {
                if tree.kind(entry) != Kind::Table {
                    return Err(self.invalid(
                        Some(tree.value_span(entry)),
                        "each `keyring.previous` entry must be \
                         { file = \"...\" } or { command = \"...\" }"
                            .into(),
                    ));
                }
                let span = tree.value_span(entry);
                let entry = self.keyring_entry(tree, entry, span.clone())?;
                // `master retire` removes the entries of one master; a second copy would
                // keep its keys verifying.
                if let Some(first) = out.iter().find(|e| e.source == entry.source) {
                    return Err(self.invalid(
                        Some(span),
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
        tree: &Tree<'_>,
        entry: NodeId,
        span: Range<usize>,
    ) -> Result<KeyringEntry, PolicyError> {
        let expected = "each `keyring.previous` entry must be { file = \"...\" } or \
                        { command = \"...\" }, with `algorithms = [...]` if its keys are of \
                        some algorithms only";
        let mut algorithms = None;
        let mut named = Vec::new();
        for value in tree.children(entry) {
            let field = tree.key(value);
            if field == "algorithms" {
                algorithms =
                    Some(self.algorithms(tree, value, "a keyring entry's `algorithms`")?);
            } else {
                named.push((field, value));
            }
        }
        let [(ref field, value)] = named[..] else {
            return Err(self.invalid(Some(span), expected.into()));
        };
        let text = tree
            .string(value)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| self.invalid(Some(tree.value_span(value)), expected.into()))?;
        let source = match &**field {
            "file" => MasterSource::File(self.dir.join(&*text)),
            "command" => MasterSource::Command(text.into_owned().into()),
            _ => return Err(self.invalid(Some(span), expected.into())),
        };
        Ok(KeyringEntry {
            source,
            algorithms,
            at: self.position(Some(span)),
        })
    }

    /// An algorithm's name.
    fn algorithm(
        &self,
        tree: &Tree<'_>,
        item: NodeId,
        what: &str,
    ) -> Result<Algorithm, PolicyError> {
        tree.string(item)
            .and_then(|name| name.parse().ok())
            .ok_or_else(|| {
                self.invalid(
                    Some(tree.value_span(item)),
                    format!("{what} must be \"hmac-sha256\" or \"hmac-md5\""),
                )
            })
    }

    /// An array of machine names ([`Machine::RULE`]), none twice (in any case).
    fn machines(
        &self,
        tree: &Tree<'_>,
        item: NodeId,
        what: &str,
    ) -> Result<BTreeSet<Machine>, PolicyError> {
        let wrong = |span| {
            self.invalid(
                Some(span),
                format!(
                    "{what} must be an array of machine names, each at most once ({})",
                    Machine::RULE
                ),
            )
        };
        if tree.kind(item) != Kind::Array {
            return Err(wrong(tree.value_span(item)));
        }
        let mut set = BTreeSet::new();
        for value in tree.children(item) {
            let machine = tree
                .string(value)
                .and_then(|name| Machine::new(&name).ok())
                .ok_or_else(|| wrong(tree.value_span(value)))?;
            if !set.insert(machine) {
                return Err(wrong(tree.value_span(value)));
            }
        }
        Ok(set)
    }

    /// A table of machine names ([`Machine::RULE`]), none twice (in any case), each with its
    /// own generation, a whole number from 0 up; the machines at 0 are left out (the
    /// default, which the editor never writes).
    fn machine_generations(
        &self,
        tree: &Tree<'_>,
        item: NodeId,
        what: &str,
    ) -> Result<BTreeMap<Machine, u64>, PolicyError> {
        if tree.kind(item) != Kind::Table {
            return Err(self.invalid(
                Some(tree.value_span(item)),
                format!(
                    "{what} must be a table of machine names and their generations: \
                     {{ builder-1 = 2 }}"
                ),
            ));
        }
        let mut generations = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for entry in tree.children(item) {
            let machine = Machine::new(&tree.key(entry)).map_err(|_| {
                self.invalid(
                    Some(tree.key_span(entry)),
                    format!(
                        "{what} names a machine twice or not as a machine name ({})",
                        Machine::RULE
                    ),
                )
            })?;
            let generation = tree
                .integer(entry)
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| {
                    self.invalid(
                        Some(tree.value_span(entry)),
                        format!(
                            "{what}: each machine's generation must be a whole number from 0 up"
                        ),
                    )
                })?;
            if !seen.insert(machine.clone()) {
                return Err(self.invalid(
                    Some(tree.key_span(entry)),
                    format!(
                        "{what} names a machine twice or not as a machine name ({})",
                        Machine::RULE
                    ),
                ));
            }
            if generation != 0 {
                generations.insert(machine, generation);
            }
        }
        Ok(generations)
    }

    /// A non-empty array of algorithm names, none twice.
    fn algorithms(
        &self,
        tree: &Tree<'_>,
        item: NodeId,
        what: &str,
    ) -> Result<AlgorithmSet, PolicyError> {
        let wrong = |span| {
            self.invalid(
                Some(span),
                format!(
                    "{what} must be a non-empty array of \"hmac-sha256\" and \"hmac-md5\", each at most once"
                ),
            )
        };
        if tree.kind(item) != Kind::Array || tree.children(item).next().is_none() {
            return Err(wrong(tree.value_span(item)));
        }
        let mut set = AlgorithmSet::default();
        for value in tree.children(item) {
            let alg: Algorithm = tree
                .string(value)
                .and_then(|name| name.parse().ok())
                .ok_or_else(|| wrong(tree.value_span(value)))?;
            if set.contains(alg) {
                return Err(wrong(tree.value_span(value)));
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
    fn machine_fields_are_read() {
        let text = "[principals.host-a]\nrevoked_machines = [\"Builder-2\", \"b-1\"]\n\
                    machine_keys_only = true\n[principals.host-b]\nrevoked_machines = []\n";
        let policy = Policy::parse(text, None).unwrap();
        let a = policy.state(&p("host-a"));
        let names: Vec<&str> = a.revoked_machines.iter().map(Machine::as_str).collect();
        assert_eq!(names, ["b-1", "builder-2"]);
        assert!(a.machine_keys_only);
        assert!(policy.state(&p("host-b")).revoked_machines.is_empty());
    }

    #[test]
    fn machine_generations_are_read_in_any_table_form() {
        let forms = [
            "[principals.host-a]\nmachine_generations = { Builder-1 = 2, \"b.x\" = 1, b-0 = 0 }\n",
            "[principals.host-a]\nmachine_generations.builder-1 = 2\nmachine_generations.\"b.x\" = 1\n",
            "[principals.host-a]\n[principals.host-a.machine_generations]\nbuilder-1 = 2\n\"b.x\" = 1\n",
        ];
        for text in forms {
            let policy = Policy::parse(text, None).unwrap();
            let a = policy.state(&p("host-a"));
            let read: Vec<(&str, u64)> = a
                .machine_generations
                .iter()
                .map(|(m, &g)| (m.as_str(), g))
                .collect();
            assert_eq!(read, [("b.x", 1), ("builder-1", 2)], "{text}");
        }
        // Its own header: the principal has no one section to edit alone.
        let policy = Policy::parse(forms[2], None).unwrap();
        assert!(policy.principals[&p("host-a")].section.is_none());
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
                "[principals.host-a]\nrevoked_machines = [\"b-1\", \"b 2\"]\n",
                (2, 28),
                "machine names",
            ),
            (
                "[principals.host-a]\nrevoked_machines = [\"b-1\", \"B-1\"]\n",
                (2, 28),
                "each at most once",
            ),
            (
                "[principals.host-a]\nrevoked_machines = \"b-1\"\n",
                (2, 20),
                "an array of machine names",
            ),
            (
                "[principals.host-a]\nmachine_generations = [\"b-1\"]\n",
                (2, 23),
                "a table of machine names",
            ),
            (
                "[principals.host-a]\nmachine_generations = { b-1 = -1 }\n",
                (2, 31),
                "whole number from 0 up",
            ),
            (
                "[principals.host-a]\nmachine_generations = { b-1 = \"2\" }\n",
                (2, 31),
                "whole number from 0 up",
            ),
            (
                "[principals.host-a]\nmachine_generations = { b-1 = 1, B-1 = 2 }\n",
                (2, 34),
                "names a machine twice",
            ),
            (
                "[principals.host-a]\nmachine_generations = { \"b 1\" = 1 }\n",
                (2, 25),
                "not as a machine name",
            ),
            (
                "[principals.host-a]\nmachine_keys_only = 1\n",
                (2, 21),
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
