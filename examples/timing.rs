//! A dudect-style timing measurement of `Verifier::verify`: does the time taken tell an
//! attacker anything? Five experiments, each with two classes of input measured interleaved
//! in random order, compared with Welch's t-test (|t| < 4.5: no evidence of a leak).
//!
//! 1. prefix: wrong keys that match the right key in all but the last byte, against
//!    random wrong keys (a byte-by-byte comparison would make the first class slower);
//! 2. keyring: valid keys under the primary master, against valid keys under the
//!    previous master (with two masters, which one matched must not show);
//! 3. machine: presented from a machine, its own key (`mint --machine`) against the
//!    principal's shared key (both valid: which kind matched must not show);
//! 4. token: unexpired tokens whose MAC matches the right one in all but its last digit,
//!    against tokens with a random MAC (the same expiry, checksums made right: what an
//!    attacker forging a token would send);
//! 5. expired: expired tokens with the right MAC against expired tokens with a wrong one
//!    (both answered `expired`: whether the MAC was right must not show in the time either).
//!
//! Run: `cargo run --release --example timing -- [MEASUREMENTS_PER_CLASS]` (default 1,000,000).
//! Results and method: docs/security.md. Not a test: timing belongs to no test.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use gobuildkey::derive::Deriver;
use gobuildkey::key::{Algorithm, Presented};
use gobuildkey::machine::Machine;
use gobuildkey::master::MasterSecret;
use gobuildkey::principal::Principal;
use gobuildkey::verifier::Verifier;

/// A small xorshift generator: the class order must be random, not secure.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Welch's t over the measurements of the two classes, after dropping the slowest 5 % of
/// each (interrupts, migrations), as dudect does with its percentile crops.
fn welch_t(a: &mut [f64], b: &mut [f64]) -> f64 {
    let crop = |v: &mut [f64]| {
        v.sort_by(f64::total_cmp);
        let keep = v.len() * 95 / 100;
        v[..keep].to_vec()
    };
    let (a, b) = (crop(a), crop(b));
    let stats = |v: &[f64]| {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var, n)
    };
    let (ma, va, na) = stats(&a);
    let (mb, vb, nb) = stats(&b);
    println!(
        "    class A: mean {ma:.1} ns over {na} runs; class B: mean {mb:.1} ns over {nb} runs"
    );
    (ma - mb) / (va / na + vb / nb).sqrt()
}

fn measure(
    verifier: &Verifier,
    principal: &Principal,
    machine: Option<&Machine>,
    inputs: [&[Vec<u8>]; 2],
    per_class: usize,
    rng: &mut Rng,
) -> f64 {
    let mut times = [Vec::with_capacity(per_class), Vec::with_capacity(per_class)];
    // Every input is copied into this one buffer before it is measured, so that both
    // classes are read from the same addresses: two inputs allocated apart can differ in
    // alignment (one key within a cache line, another across two), which shows as a
    // difference of a few nanoseconds that has nothing to do with their contents.
    let mut buffer: Vec<u8> = Vec::with_capacity(128);
    while times[0].len() < per_class || times[1].len() < per_class {
        let class = (rng.next() & 1) as usize;
        if times[class].len() == per_class {
            continue;
        }
        let pool = inputs[class];
        buffer.clear();
        buffer.extend_from_slice(&pool[(rng.next() as usize) % pool.len()]);
        let presented = Presented::from(&buffer[..]).from_machine(machine);
        let start = Instant::now();
        black_box(verifier.verify(black_box(principal), black_box(presented)));
        times[class].push(start.elapsed().as_nanos() as f64);
    }
    let [mut a, mut b] = times;
    welch_t(&mut a, &mut b)
}

fn main() {
    let per_class: usize = std::env::args()
        .nth(1)
        .map_or(1_000_000, |n| n.parse().expect("a number of measurements"));
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let host: Principal = "host-linux-arm-aws".parse().unwrap();
    let primary = MasterSecret::from_text(
        b"f23ffcafa5d6010469d9b02cbe015c52768bd735acc996245b0084127335ec80",
    )
    .unwrap();
    let previous =
        MasterSecret::from_text(b"8e442f6bf96badf04a176f7c051384a0-the-previous-one").unwrap();
    let right = Deriver::new(&primary, Algorithm::HmacSha256).derive(&host);
    let right = right.expose_secret().as_bytes();

    // 1. Long matching prefix against random keys.
    let hex = b"0123456789abcdef";
    let near: Vec<Vec<u8>> = (0..256)
        .map(|i| {
            let mut k = right.to_vec();
            let last = k.len() - 1;
            let mut digit = hex[(i % 16) as usize];
            if digit == k[last] {
                digit = hex[((i + 1) % 16) as usize];
            }
            k[last] = digit;
            k
        })
        .collect();
    let random: Vec<Vec<u8>> = (0..256)
        .map(|_| (0..64).map(|_| hex[(rng.next() % 16) as usize]).collect())
        .collect();
    let verifier = Verifier::new(&primary, Algorithm::HmacSha256);
    println!(
        "prefix: wrong keys matching in 63 of 64 digits (A) against random wrong keys (B), {per_class} each"
    );
    let t1 = measure(
        &verifier,
        &host,
        None,
        [&near, &random],
        per_class,
        &mut rng,
    );
    println!("    Welch's t = {t1:.2}");

    // 2. Which master matched.
    let keyring = Verifier::new(&primary, Algorithm::HmacSha256).with_previous_master(&previous);
    let under_primary = vec![right.to_vec()];
    let under_previous = vec![
        Deriver::new(&previous, Algorithm::HmacSha256)
            .derive(&host)
            .expose_secret()
            .as_bytes()
            .to_vec(),
    ];
    println!(
        "keyring: valid keys under the primary (A) against valid keys under the previous master (B), {per_class} each"
    );
    let t2 = measure(
        &keyring,
        &host,
        None,
        [&under_primary, &under_previous],
        per_class,
        &mut rng,
    );
    println!("    Welch's t = {t2:.2}");
    // 3. Which kind of key matched, from a machine.
    let machine: Machine = "builder-1".parse().unwrap();
    let own = vec![
        Deriver::new(&primary, Algorithm::HmacSha256)
            .derive_machine(&host, 0, &machine, 0)
            .expose_secret()
            .as_bytes()
            .to_vec(),
    ];
    let shared = vec![right.to_vec()];
    println!(
        "machine: from builder-1, its own key (A) against the shared key (B), {per_class} each"
    );
    let t3 = measure(
        &verifier,
        &host,
        Some(&machine),
        [&own, &shared],
        per_class,
        &mut rng,
    );
    println!("    Welch's t = {t3:.2}");

    // 4. Forged tokens: near the right MAC against random MACs, one expiry.
    let deriver = Deriver::new(&primary, Algorithm::HmacSha256);
    let in_a_day = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24);
    let token = deriver.derive_token(&host, 0, None, in_a_day);
    let token = token.expose_secret();
    let (signed, _) = token.split_at(token.len() - 8);
    let near_tokens: Vec<Vec<u8>> = forged(&signed[..21], &near);
    let random_tokens: Vec<Vec<u8>> = forged(&signed[..21], &random);
    println!(
        "token: forged tokens matching the right MAC in 63 of 64 digits (A) against random MACs (B), {per_class} each"
    );
    let t4 = measure(
        &verifier,
        &host,
        None,
        [&near_tokens, &random_tokens],
        per_class,
        &mut rng,
    );
    println!("    Welch's t = {t4:.2}");

    // 5. Expired tokens: the right MAC against a wrong one, both answered `expired`.
    let an_hour_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    let expired = deriver.derive_token(&host, 0, None, an_hour_ago);
    let expired = expired.expose_secret();
    let right_expired = vec![expired.as_bytes().to_vec()];
    let wrong_expired: Vec<Vec<u8>> = forged(&expired[..21], &random);
    println!(
        "expired: expired tokens with the right MAC (A) against a wrong MAC (B), {per_class} each"
    );
    let t5 = measure(
        &verifier,
        &host,
        None,
        [&right_expired, &wrong_expired],
        per_class,
        &mut rng,
    );
    println!("    Welch's t = {t5:.2}");
    let verdict = |t: f64| {
        if t.abs() < 4.5 {
            "no evidence of a leak"
        } else {
            "LEAK SUSPECTED"
        }
    };
    println!(
        "summary: prefix |t| = {:.2} ({}), keyring |t| = {:.2} ({}), machine |t| = {:.2} ({}), token |t| = {:.2} ({}), expired |t| = {:.2} ({})",
        t1.abs(),
        verdict(t1),
        t2.abs(),
        verdict(t2),
        t3.abs(),
        verdict(t3),
        t4.abs(),
        verdict(t4),
        t5.abs(),
        verdict(t5)
    );
}

/// Tokens of `head` (`gbk1_` and the expiry's hex) and each of `macs` (hex), with their
/// checksums made right as docs/design.md documents them (the first 4 bytes of SHA-256 of
/// the text): what someone forging tokens would send.
fn forged(head: &str, macs: &[Vec<u8>]) -> Vec<Vec<u8>> {
    use sha2::Digest;
    macs.iter()
        .map(|mac| {
            let signed = format!("{head}{}", std::str::from_utf8(mac).unwrap());
            let digest = sha2::Sha256::digest(signed.as_bytes());
            format!("{signed}{}", hex::encode(&digest[..4])).into_bytes()
        })
        .collect()
}
