//! Tests of the `gobuildkey` command, one module per command. Every test runs the real
//! binary with an empty temporary HOME, a cleared environment and umask 000, so a file
//! mode that is right here is right whatever the user's umask.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod batch;
mod check;
mod closed_pipe;
mod concurrency;
mod crash;
mod doc_examples;
mod docs;
mod dry_run;
mod explain;
mod fingerprint;
#[cfg(all(feature = "serve", feature = "probe"))]
mod go_coordinator;
mod help;
mod init;
mod install;
mod json;
mod leaks;
mod log;
mod master;
mod migration;
mod mint;
#[cfg(feature = "serve")]
mod nginx;
mod path;
mod policy;
#[cfg(feature = "probe")]
mod probe;
mod rotate;
mod scan;
#[cfg(feature = "serve")]
mod serve;
#[cfg(feature = "serve")]
mod serve_hostile;
#[cfg(feature = "serve")]
mod serve_reload;
#[cfg(feature = "serve")]
mod server;
mod service_managers;
mod snapshots;
mod terminal;
mod tokens;
mod trust;
mod verify;
