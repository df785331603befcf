//! Rebuilding a policy from its action log ([`replay`]): each principal's last recorded
//! state, and the keyring's entries added and not removed since.

use std::io;
use std::path::Path;

use super::{Action, FILE_NAME, KeyringChange};
use crate::master::MasterSource;
use crate::policy::{Policy, PolicyError};
use crate::principal::Principal;

/// The policy the actions of a log leave behind, starting from a new one at `path`: each
/// principal's last recorded state, and the keyring's entries added and not removed since.
///
/// # Errors
/// [`PolicyError::ActionLog`] when an action's record cannot be applied (its line is
/// named); [`PolicyError::Invalid`] when the result is not a valid policy.
pub fn replay(actions: &[Action], path: &Path) -> Result<Policy, PolicyError> {
    let mut policy = Policy::template(path);
    let bad = |n: usize, what: &str| PolicyError::ActionLog {
        path: path.with_file_name(FILE_NAME),
        error: io::Error::other(format!("line {}: {what}", n + 1)),
    };
    for (n, action) in actions.iter().enumerate() {
        if let (Some(name), "policy init") = (&action.algorithm, action.command.as_str()) {
            let alg = name
                .parse()
                .map_err(|_| bad(n, "an algorithm gobuildkey does not know"))?;
            policy.set_default_algorithm(alg)?;
        }
        if let (Some(name), Some(record)) = (&action.principal, &action.state) {
            let principal: Principal = name.parse().map_err(|_| bad(n, "not a principal"))?;
            let state = record
                .state()
                .ok_or_else(|| bad(n, "a state gobuildkey does not write"))?;
            policy.set_state(&principal, &state)?;
        }
        match &action.keyring {
            Some(KeyringChange::Added(added)) => {
                let source = resolve(added.source.source(), path);
                let algorithms = match &added.algorithms {
                    None => None,
                    Some(names) => Some(
                        names
                            .iter()
                            .map(|name| name.parse().ok())
                            .collect::<Option<crate::key::AlgorithmSet>>()
                            .ok_or_else(|| bad(n, "an algorithm gobuildkey does not know"))?,
                    ),
                };
                if !policy.keyring().iter().any(|entry| entry.source == source) {
                    policy.add_previous_master(&source, algorithms)?;
                }
            }
            Some(KeyringChange::Removed(source)) => {
                let source = resolve(source.source(), path);
                while let Some(index) = policy
                    .keyring()
                    .iter()
                    .position(|entry| entry.source == source)
                {
                    policy.remove_previous_master(index)?;
                }
            }
            None => {}
        }
    }
    Ok(policy)
}

/// A recorded file, as the keyring holds it: relative to the policy's folder.
fn resolve(source: MasterSource, policy: &Path) -> MasterSource {
    match source {
        MasterSource::File(file) => MasterSource::File(
            policy
                .parent()
                .map_or_else(|| file.clone(), |dir| dir.join(&file)),
        ),
        command @ MasterSource::Command(_) => command,
    }
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::{KeyringAdded, KeyringSource};
    use crate::policy::{Grace, PrincipalState};

    use super::*;

    fn p(name: &str) -> Principal {
        name.parse().unwrap()
    }

    #[test]
    fn replay_rebuilds_the_last_state_and_the_keyring() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gobuildkey.toml");
        let revoked = PrincipalState {
            revoked: true,
            ..Default::default()
        };
        let mut rotated = PrincipalState {
            generation: 2,
            keep_previous: Grace::Until("2026-12-01T00:00:00Z".parse().unwrap()),
            ..Default::default()
        };
        rotated
            .machine_generations
            .insert("builder-1".parse().unwrap(), 3);
        let mut add = Action::new("master add");
        add.keyring = Some(KeyringChange::Added(KeyringAdded::of(
            &MasterSource::File("old.key".into()),
            None,
        )));
        let mut add2 = Action::new("master add");
        add2.keyring = Some(KeyringChange::Added(KeyringAdded::of(
            &MasterSource::Command("pass x".into()),
            Some(crate::key::AlgorithmSet::only(
                crate::key::Algorithm::HmacMd5,
            )),
        )));
        let mut retire = Action::new("master retire");
        retire.keyring = Some(KeyringChange::Removed(KeyringSource::File(
            "old.key".into(),
        )));
        let actions = [
            Action::new("init"),
            Action::new("rotate").on(&p("host-a"), &PrincipalState::default()),
            Action::new("revoke").on(&p("host-b"), &revoked),
            Action::new("rotate").on(&p("host-a"), &rotated),
            add,
            add2,
            retire,
        ];
        let policy = replay(&actions, &path).unwrap();
        assert_eq!(policy.state(&p("host-a")), rotated);
        assert!(policy.state(&p("host-b")).revoked);
        assert_eq!(policy.keyring().len(), 1);
        assert_eq!(
            policy.keyring()[0].source,
            MasterSource::Command("pass x".into())
        );
        assert_eq!(
            policy.keyring()[0].algorithms,
            Some(crate::key::AlgorithmSet::only(
                crate::key::Algorithm::HmacMd5
            ))
        );
    }

    #[test]
    fn replay_keeps_the_default_algorithm_and_each_principals_set() {
        use crate::key::{Algorithm, AlgorithmSet};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gobuildkey.toml");
        let mut init = Action::new("policy init");
        init.algorithm = Some("hmac-md5".into());
        let both = PrincipalState {
            algorithms: Some(AlgorithmSet::ALL),
            ..Default::default()
        };
        let actions = [init, Action::new("import").on(&p("host-a"), &both)];
        let policy = replay(&actions, &path).unwrap();
        assert_eq!(policy.default_algorithm(), Algorithm::HmacMd5);
        assert_eq!(policy.accepted_algorithms(&p("host-a")), AlgorithmSet::ALL);
        assert_eq!(
            policy.accepted_algorithms(&p("host-z")),
            AlgorithmSet::only(Algorithm::HmacMd5)
        );
    }

    /// A generation no policy can hold (past i64::MAX), the principal's or a machine's, in a
    /// hand-edited log: the replay refuses it, naming the line, rather than clamping it.
    #[test]
    fn replay_refuses_a_generation_past_what_a_policy_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gobuildkey.toml");
        let huge = u64::try_from(i64::MAX).unwrap() + 1;
        let mut principal = Action::new("rotate").on(&p("host-a"), &PrincipalState::default());
        principal.state.as_mut().unwrap().generation = huge;
        let mut machine = Action::new("rotate").on(&p("host-a"), &PrincipalState::default());
        machine
            .state
            .as_mut()
            .unwrap()
            .machine_generations
            .insert("builder-1".into(), huge);
        for bad in [principal, machine] {
            let error = replay(&[Action::new("init"), bad], &path).unwrap_err();
            assert!(error.to_string().contains("line 2"), "{error}");
        }
        let mut fine = Action::new("rotate").on(&p("host-a"), &PrincipalState::default());
        fine.state.as_mut().unwrap().generation = huge - 1;
        assert_eq!(
            replay(&[fine], &path)
                .unwrap()
                .state(&p("host-a"))
                .generation,
            huge - 1
        );
    }
}
