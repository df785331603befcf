//! gobuildkey issues and checks the keys a build farm's machines use to join it.
//!
//! A build key is the lowercase hex of HMAC(master, principal), where the principal is a
//! host type such as `host-linux-arm-aws`. This is the scheme of Go's build farm
//! (golang.org/x/build), with HMAC-SHA256 by default and HMAC-MD5 for keys already handed
//! out by Go's `genbuilderkey`.
//!
//! This library is what the `gobuildkey` command runs, and what a coordinator written in
//! Rust links to check the key a machine presents:
//!
//! ```
//! use gobuildkey::key::Algorithm;
//! use gobuildkey::master::MasterSource;
//! use gobuildkey::policy::Policy;
//! use gobuildkey::principal::{Kind, Principal};
//! use gobuildkey::verifier::{Verdict, Verifier};
//!
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("master.key");
//! # gobuildkey::secret_file::write_secret_file(
//! #     &path, b"0123456789abcdef0123456789abcdef\n", gobuildkey::secret_file::Existing::Refuse)?;
//! # let policy_path = dir.path().join("gobuildkey.toml");
//! # gobuildkey::policy::store::Store::new(&policy_path).create(&Policy::template(&policy_path))?;
//! // Once, at start-up: load the master, the policy and the keyring (all fail closed).
//! let verifier = Verifier::open(&MasterSource::File(path), &policy_path)?
//!     .only_kind(Kind::Host);
//!
//! // Per registration: the host type and the key the machine presented.
//! let host: Principal = "host-linux-arm-aws".parse()?;
//! # let master = MasterSource::File(dir.path().join("master.key")).load()?;
//! # let presented = gobuildkey::derive::Deriver::new(&master, Algorithm::HmacSha256)
//! #     .derive(&host).expose_secret().as_bytes().to_vec();
//! let decision = verifier.verify(&host, &presented);
//! match decision.verdict {
//!     Verdict::Valid => { /* let it in */ }
//!     Verdict::Invalid(reason) => { /* answer "invalid build key"; log `reason` */ }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Modules, each using only those before it in this list: [`text`] (Go's trimming,
//! untrusted text quoted for a terminal), [`fingerprint`] (the short, safe name of a
//! secret), [`principal`] (the names keys are minted for: their rule and kind), [`machine`]
//! (the machines a key can be bound to), [`key`]
//! (algorithms, build keys and their format, keys as presented, what looks like a key),
//! [`process`] (hardening of the process that holds secrets: no core dumps),
//! [`secret_file`] (safe reads and writes of files that hold secrets), [`trust`] (who may
//! have written the master or the policy: owners and folders up to `/`), [`master`] (the
//! master secret and where it comes from), [`derive`](mod@derive) (the keyed HMAC state:
//! the one derivation for mint and verify), [`policy`] (generations, grace, revocation,
//! the keyring), [`verifier`] (the one verification path, its verdicts and reasons),
//! [`explain`] (what a key that does not verify is, for the admin), [`scan`] (finding keys
//! and tokens in bytes), [`found`] (whose a key found is and whether it is live), [`audit`] (one JSON line
//! per verification), [`batch`] (the `verify --batch` protocol),
//! [`service`] (what `gobuildkey serve` answers), `reload` (reloading the masters and the
//! policy while in use, on SIGHUP and on file change), [`paths`] (where the builder agent
//! looks for its key). The command-line tool (`src/main.rs` and what it declares) uses the
//! library, never the other way round.

#![forbid(unsafe_code)]
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

pub mod audit;
pub mod batch;
pub mod derive;
pub mod explain;
pub mod fingerprint;
pub mod found;
#[doc(hidden)]
pub mod fuzzing;
pub mod key;
pub mod machine;
pub mod master;
pub mod paths;
pub mod policy;
pub mod principal;
pub mod process;
#[cfg(unix)]
pub mod reload;
pub mod scan;
pub mod secret_file;
pub mod service;
pub mod text;
pub mod token;
pub mod trust;
pub mod verifier;

/// The Rust examples of docs/coordinators.md, compiled (and run where they can be) as
/// doctests, so the guide cannot drift from the library. (Its shell examples, and the
/// README's, run in tests/cli/doc_examples.rs.)
#[cfg(doctest)]
#[doc = include_str!("../docs/coordinators.md")]
pub struct CoordinatorsGuide;

/// The README's Rust examples, should it get any, as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct Readme;
