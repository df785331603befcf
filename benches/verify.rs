//! Derivation and verification in-process, against the raw keyed HMAC-SHA256 rate of the
//! same crate (precomputed key state, cloned per message): the floor our code adds to.
//!
//! Run: `cargo bench --bench verify`. Results and the machine: docs/performance.md.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gobuildkey::derive::Deriver;
use gobuildkey::key::Algorithm;
use gobuildkey::master::MasterSecret;
use gobuildkey::policy::{Grace, Policy, PrincipalState};
use gobuildkey::principal::Principal;
use gobuildkey::verifier::Verifier;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

fn benches(c: &mut Criterion) {
    let master = MasterSecret::from_text(
        b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    )
    .unwrap();
    let host: Principal = "host-linux-arm-aws".parse().unwrap();
    let deriver = Deriver::new(&master, Algorithm::HmacSha256);
    let key = deriver.derive(&host).expose_secret().to_owned();
    let wrong = key.replace('a', "b");
    let verifier = Verifier::new(&master, Algorithm::HmacSha256);

    let mut group = c.benchmark_group("hmac-sha256");
    group.throughput(Throughput::Elements(1));
    let keyed = Hmac::<Sha256>::new_from_slice(master.expose_secret()).unwrap();
    group.bench_function("raw keyed HMAC (reference)", |b| {
        b.iter(|| {
            let mut mac = keyed.clone();
            mac.update(black_box(host.as_str().as_bytes()));
            black_box(mac.finalize())
        });
    });
    group.bench_function("Deriver::derive", |b| {
        b.iter(|| black_box(deriver.derive(black_box(&host))))
    });
    group.bench_function("Verifier::verify, valid", |b| {
        b.iter(|| black_box(verifier.verify(black_box(&host), black_box(key.as_bytes()))));
    });
    group.bench_function("Verifier::verify, invalid", |b| {
        b.iter(|| black_box(verifier.verify(black_box(&host), black_box(wrong.as_bytes()))));
    });

    // The worst case of the keyring: two masters, grace on: four MACs per verification.
    let old =
        MasterSecret::from_text(b"the previous master of this farm, 64 bytes long or so.....")
            .unwrap();
    let mut policy = Policy::none();
    policy
        .set_state(
            &host,
            &PrincipalState {
                generation: 1,
                keep_previous: Grace::Open,
                ..Default::default()
            },
        )
        .unwrap();
    let busy = Verifier::new(&master, Algorithm::HmacSha256)
        .with_previous_master(&old)
        .with_policy(policy);
    let current = deriver
        .derive_generation(&host, 1)
        .expose_secret()
        .to_owned();
    group.bench_function("Verifier::verify, 2 masters x 2 generations", |b| {
        b.iter(|| black_box(busy.verify(black_box(&host), black_box(current.as_bytes()))));
    });
    group.finish();
}

criterion_group!(verify, benches);
criterion_main!(verify);
