//! Edits of the policy document that keep its layout: comments, order and hand edits survive.

use toml_edit::{Array, DocumentMut, InlineTable, Item, TableLike, Value};

use super::{Grace, Policy, PolicyError, PrincipalState};
use crate::key::{Algorithm, AlgorithmSet};
use crate::master::MasterSource;
use crate::principal::Principal;
use std::path::Path;

impl Policy {
    /// Records `state` for `principal`, keeping the rest of the document as it is. A
    /// principal with a `[principals.NAME]` header of its own is edited in that part of the
    /// text alone (its comments and layout kept, the rest of the file untouched, cheap at a
    /// fleet's size); any other layout through the whole document.
    ///
    /// # Errors
    /// [`PolicyError::Invalid`] if the document cannot hold the change (a hand edit made
    /// `principals` something other than a table).
    pub fn set_state(
        &mut self,
        principal: &Principal,
        state: &PrincipalState,
    ) -> Result<(), PolicyError> {
        let shown = self.shown_path();
        if let Some(range) = self
            .principals
            .get(principal)
            .and_then(|entry| entry.section.clone())
        {
            let mut part = self.document_of(&self.text[range.clone()])?;
            record_state(&mut part, principal, state, &shown)?;
            let part = part.to_string();
            let mut text = String::with_capacity(self.text.len() - range.len() + part.len());
            text.push_str(&self.text[..range.start]);
            text.push_str(&part);
            text.push_str(&self.text[range.end..]);
            return self.replace_text(text);
        }
        self.edit_document(|doc| record_state(doc, principal, state, &shown))
    }

    /// Sets the farm's default algorithm (the top-level `algorithm`; not written while it
    /// is HMAC-SHA256, the default).
    ///
    /// # Errors
    /// [`PolicyError::Invalid`] if the result is not a valid policy.
    pub fn set_default_algorithm(&mut self, alg: Algorithm) -> Result<(), PolicyError> {
        self.edit_document(|doc| {
            if alg == Algorithm::default() {
                doc.remove("algorithm");
            } else {
                doc.insert("algorithm", toml_edit::value(alg.name()));
            }
            Ok(())
        })
    }

    /// Adds a previous master to the keyring; `algorithms`, when given, are those its keys
    /// were minted with (no other key of it verifies).
    ///
    /// # Errors
    /// [`PolicyError::Invalid`] if `keyring.previous` is not an array.
    pub fn add_previous_master(
        &mut self,
        source: &MasterSource,
        algorithms: Option<AlgorithmSet>,
    ) -> Result<(), PolicyError> {
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
        if let Some(algorithms) = algorithms {
            entry.insert("algorithms", names(algorithms));
        }
        let path = self.shown_path();
        self.edit_document(|doc| add_entry(doc, entry, path))
    }

    /// Removes the keyring's entry number `index` (0-based, in the file's order).
    ///
    /// # Errors
    /// [`PolicyError::Invalid`] if there is no such entry.
    pub fn remove_previous_master(&mut self, index: usize) -> Result<(), PolicyError> {
        let path = self.shown_path();
        self.edit_document(|doc| {
            let removed = doc
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
            if removed {
                Ok(())
            } else {
                Err(PolicyError::Invalid {
                    path,
                    at: (1, 1),
                    message: format!("the keyring has no entry {index}"),
                })
            }
        })
    }

    /// The text as a `toml_edit` document, for an edit that keeps its layout.
    fn document_of(&self, text: &str) -> Result<DocumentMut, PolicyError> {
        // The reader accepted this text (or the whole it is part of); toml_edit runs on
        // the same parser, so this fails only if the two ever disagree.
        text.parse()
            .map_err(|e: toml_edit::TomlError| PolicyError::Syntax {
                path: self.shown_path(),
                at: (1, 1),
                message: e.message().trim_end().to_owned(),
            })
    }

    /// Edits the whole document, then keeps the result once the reader accepts it.
    fn edit_document(
        &mut self,
        edit: impl FnOnce(&mut DocumentMut) -> Result<(), PolicyError>,
    ) -> Result<(), PolicyError> {
        let mut doc = self.document_of(&self.text)?;
        edit(&mut doc)?;
        self.replace_text(doc.to_string())
    }

    /// Keeps `text` as the policy once the one reader accepts it: the model never
    /// disagrees with the text, and every edit passes the checks a loaded file does.
    fn replace_text(&mut self, mut text: String) -> Result<(), PolicyError> {
        if text.is_empty() {
            // The last table removed (a file of one principal, reinstated): an empty file
            // is what `load` refuses as a truncated one, so the empty policy is written out.
            text.push_str("[principals]\n");
        }
        let path = self.path.take();
        let parsed = Self::parse_owned(text, path.as_deref());
        self.path = path;
        *self = parsed?;
        Ok(())
    }
}

/// Writes `state` into `principal`'s table of `doc` (removing it when all is default).
fn record_state(
    doc: &mut DocumentMut,
    principal: &Principal,
    state: &PrincipalState,
    path: &str,
) -> Result<(), PolicyError> {
    let invalid = |message: &str| PolicyError::Invalid {
        path: path.to_owned(),
        at: (1, 1),
        message: message.to_owned(),
    };
    let principals = doc
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
    set_or_remove(entry, "algorithms", state.algorithms.map(names));
    let machines = |set: &std::collections::BTreeSet<crate::machine::Machine>| {
        (!set.is_empty()).then(|| Value::Array(set.iter().map(|m| m.as_str()).collect()))
    };
    set_or_remove(entry, "machines", machines(&state.machines));
    set_or_remove(entry, "revoked_machines", machines(&state.revoked_machines));
    set_or_remove(
        entry,
        "machine_keys_only",
        state.machine_keys_only.then(|| Value::from(true)),
    );
    set_machine_generations(entry, &state.machine_generations)
        .map_err(|()| invalid("a principal's `machine_generations` is not a table"))?;
    if entry.is_empty() {
        principals.remove(principal.as_str());
    }
    Ok(())
}

/// Writes each machine's own generation into `entry`'s `machine_generations` (removed when
/// none is above 0): an inline table `{ builder-1 = 2 }` when new; a table already there, in
/// whatever form a hand edit gave it, is edited in place — its keys keep their spelling and
/// comments, those of machines no longer above 0 go.
fn set_machine_generations(
    entry: &mut dyn TableLike,
    generations: &std::collections::BTreeMap<crate::machine::Machine, u64>,
) -> Result<(), ()> {
    // Generations beyond i64 cannot be written; `rotate --machine` refuses before that.
    let value = |generation: u64| Value::from(i64::try_from(generation).unwrap_or(i64::MAX));
    if generations.is_empty() {
        entry.remove("machine_generations");
        return Ok(());
    }
    let Some(table) = entry
        .get_mut("machine_generations")
        .and_then(Item::as_table_like_mut)
    else {
        if entry.contains_key("machine_generations") {
            return Err(());
        }
        let mut table = InlineTable::new();
        for (machine, &generation) in generations {
            table.insert(machine.as_str(), value(generation));
        }
        entry.insert(
            "machine_generations",
            Item::Value(Value::InlineTable(table)),
        );
        return Ok(());
    };
    let spelled: Vec<String> = table.iter().map(|(key, _)| key.to_owned()).collect();
    let mut written = std::collections::BTreeSet::new();
    for key in spelled {
        let wanted = crate::machine::Machine::new(&key)
            .ok()
            .and_then(|machine| generations.get_key_value(&machine));
        match wanted {
            Some((machine, &generation)) if written.insert(machine.clone()) => {
                set_or_remove(table, &key, Some(value(generation)));
            }
            _ => {
                table.remove(&key);
            }
        }
    }
    for (machine, &generation) in generations {
        if !written.contains(machine) {
            table.insert(machine.as_str(), Item::Value(value(generation)));
        }
    }
    Ok(())
}

/// Appends a keyring entry to `doc`'s `keyring.previous`.
fn add_entry(doc: &mut DocumentMut, entry: InlineTable, path: String) -> Result<(), PolicyError> {
    let keyring = doc
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
    Ok(())
}

pub(super) fn set_or_remove(table: &mut dyn TableLike, key: &str, value: Option<Value>) {
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

/// A set of algorithms as the policy writes it: an array of names.
fn names(set: AlgorithmSet) -> Value {
    Value::Array(set.iter().map(Algorithm::name).collect::<Array>())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn p(name: &str) -> Principal {
        name.parse().unwrap()
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

    /// Machines' generations: a new table is written inline; one a hand edit wrote (any
    /// form, names in any case) is edited in place, spelling and comments kept, a machine
    /// back at 0 left out, the table gone with the last one.
    #[test]
    fn machine_generations_are_written_and_edited_in_place() {
        let b1: crate::machine::Machine = "builder-1".parse().unwrap();
        let b2: crate::machine::Machine = "b.2".parse().unwrap();
        let mut policy = Policy::none();
        let mut state = PrincipalState::default();
        state.machine_generations.insert(b1.clone(), 2);
        state.machine_generations.insert(b2.clone(), 1);
        policy.set_state(&p("host-a"), &state).unwrap();
        assert!(
            policy
                .as_text()
                .contains("machine_generations = { \"b.2\" = 1, builder-1 = 2 }"),
            "{}",
            policy.as_text()
        );
        let text = "[principals.host-a]\n[principals.host-a.machine_generations]\n\
                    Builder-1 = 1 # first\nold = 3\n";
        let mut policy = Policy::parse(text, None).unwrap();
        state.machine_generations.insert(b1.clone(), 4);
        policy.set_state(&p("host-a"), &state).unwrap();
        let out = policy.to_text();
        assert!(out.contains("Builder-1 = 4 # first"), "{out}");
        assert!(!out.contains("old"), "{out}");
        assert_eq!(policy.state(&p("host-a")), state);
        policy
            .set_state(&p("host-a"), &PrincipalState::default())
            .unwrap();
        assert!(!policy.to_text().contains("machine_generations"));
    }

    /// Removing the only principal of a hand-written file leaves a policy `load` reads
    /// again, not an empty file (which it refuses as truncated).
    #[test]
    fn the_last_principal_removed_leaves_a_policy() {
        for text in [
            "[principals.host-a]\nrevoked = true\n",
            "[principals.host-a]\nrevoked = true",
            "principals.host-a.revoked = true\n",
        ] {
            let mut policy = Policy::parse(text, None).unwrap();
            policy
                .set_state(&p("host-a"), &PrincipalState::default())
                .unwrap();
            assert!(!policy.as_text().is_empty(), "{text:?}");
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("p.toml");
            std::fs::write(&path, policy.as_text()).unwrap();
            let again = Policy::load(&path).unwrap();
            assert_eq!(again.principals().count(), 0);
        }
    }

    #[test]
    fn keyring_edits() {
        let mut policy = Policy::parse("", Some(Path::new("/farm/gobuildkey.toml"))).unwrap();
        policy
            .add_previous_master(&MasterSource::File("/farm/old.key".into()), None)
            .unwrap();
        policy
            .add_previous_master(&MasterSource::Command("pass show x".into()), None)
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

    fn state() -> impl proptest::strategy::Strategy<Value = PrincipalState> {
        use proptest::prelude::*;
        (
            0u64..4,
            prop_oneof![
                Just(Grace::None),
                Just(Grace::Open),
                Just(Grace::Until("2026-12-01T00:00:00Z".parse().unwrap()))
            ],
            any::<bool>(),
            proptest::option::of(Just("SHA256:8899aabbccddeeff".to_owned())),
            proptest::option::of(Just(AlgorithmSet::ALL)),
            proptest::collection::btree_set("[a-z0-9][a-z0-9.-]{0,5}", 0..3),
            any::<bool>(),
            proptest::collection::btree_map("[a-zA-Z0-9][a-z0-9._-]{0,5}", 1u64..5, 0..3),
        )
            .prop_map(
                |(
                    generation,
                    keep_previous,
                    revoked,
                    minted_under,
                    algorithms,
                    machines,
                    machine_keys_only,
                    machine_generations,
                )| PrincipalState {
                    generation,
                    keep_previous,
                    revoked,
                    minted_under,
                    algorithms,
                    // Some of the machines listed, the first revoked.
                    machines: machines
                        .iter()
                        .map(|name| crate::machine::Machine::new(name).unwrap())
                        .collect(),
                    revoked_machines: machines
                        .iter()
                        .take(1)
                        .map(|name| crate::machine::Machine::new(name).unwrap())
                        .collect(),
                    machine_keys_only,
                    // Names in any case: one machine drawn twice keeps one generation.
                    machine_generations: machine_generations
                        .iter()
                        .map(|(name, &g)| (crate::machine::Machine::new(name).unwrap(), g))
                        .collect(),
                },
            )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

        /// An edit of a principal's own section means what an edit of the whole document
        /// means (the reader reads the same policy from both), touches nothing outside that
        /// section, and the reader then reads the new state and nothing else new. (The two
        /// texts may differ: `toml_edit` rewriting the whole document can respell a key it
        /// did not change, `principals."host-a"` as `principals.host-a`.)
        #[test]
        fn a_section_edit_is_a_whole_document_edit(
            text in crate::policy::tree::tests::generate::policy(),
            pick in proptest::prelude::any::<proptest::sample::Index>(),
            new in state(),
        ) {
            let Ok(policy) = Policy::parse(&text, None) else { return Ok(()) };
            let names: Vec<Principal> = policy.principals().map(|(p, _)| p.clone()).collect();
            let principal = if names.is_empty() { p("host-new") } else { names[pick.index(names.len())].clone() };
            let mut by_section = policy.clone();
            by_section.set_state(&principal, &new).unwrap();
            let mut whole = policy.clone();
            whole
                .edit_document(|doc| record_state(doc, &principal, &new, "policy"))
                .unwrap();
            let read = |p: &Policy| p.principals().map(|(n, s)| (n.clone(), s.clone())).collect::<Vec<_>>();
            proptest::prop_assert_eq!(read(&by_section), read(&whole));
            proptest::prop_assert_eq!(by_section.keyring(), whole.keyring());
            proptest::prop_assert_eq!(by_section.default_algorithm(), whole.default_algorithm());
            if let Some(section) = policy.principals.get(&principal).and_then(|e| e.section.clone()) {
                proptest::prop_assert!(by_section.as_text().starts_with(&text[..section.start]));
                proptest::prop_assert!(by_section.as_text().ends_with(&text[section.end..]));
            } else {
                proptest::prop_assert_eq!(by_section.as_text(), whole.as_text());
            }
            proptest::prop_assert_eq!(by_section.state(&principal), new);
            for (other, state) in policy.principals().filter(|(o, _)| **o != principal) {
                proptest::prop_assert_eq!(&by_section.state(other), state);
            }
        }
    }
}
