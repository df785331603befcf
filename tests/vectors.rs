//! Known-answer tests: every vector of `tests/data/keys.json` (computed by three
//! independent HMAC implementations) through the library's derive and verify.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gobuildkey::keys::{Algorithm, Deriver, Principal, Reason, Verdict};
use gobuildkey::master::MasterSecret;
use gobuildkey::verifier::Verifier;

#[derive(serde::Deserialize)]
struct Vector {
    alg: String,
    master: String,
    principal: String,
    key: String,
}

fn vectors() -> Vec<Vector> {
    serde_json::from_str(include_str!("data/keys.json")).unwrap()
}

#[test]
fn all_vectors_derive_and_verify() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 144);
    for v in &vectors {
        let alg: Algorithm = v.alg.parse().unwrap();
        // The master as a file would hold it, with whitespace around it; Go's development
        // master `gophers rule` is shorter than real masters may be, hence allow_short.
        let file = format!("\n\t {}\r\n", v.master);
        let master = MasterSecret::from_text_allow_short(file.as_bytes()).unwrap();
        let principal: Principal = v.principal.parse().unwrap();
        let deriver = Deriver::new(&master, alg);
        let key = deriver.derive(&principal);
        assert_eq!(
            key.expose_secret(),
            v.key,
            "{} {} {}",
            v.alg,
            v.master,
            v.principal
        );
        assert_eq!(key.algorithm(), alg);
        let verifier = Verifier::new(&master, alg);
        assert_eq!(
            verifier.verify(&principal, v.key.as_bytes()).verdict,
            Verdict::Valid
        );
    }
}

#[test]
fn both_algorithms_and_the_dev_master_are_covered() {
    let vectors = vectors();
    for alg in ["hmac-sha256", "hmac-md5"] {
        assert_eq!(vectors.iter().filter(|v| v.alg == alg).count(), 72);
    }
    assert!(vectors.iter().any(|v| v.master == "gophers rule"));
}

#[test]
fn a_vector_key_fails_for_every_other_principal() {
    let vectors = vectors();
    for v in vectors.iter().filter(|v| v.alg == "hmac-sha256") {
        let master = MasterSecret::from_text_allow_short(v.master.as_bytes()).unwrap();
        let verifier = Verifier::new(&master, Algorithm::HmacSha256);
        for other in vectors.iter().filter(|o| o.principal != v.principal) {
            let principal: Principal = other.principal.parse().unwrap();
            assert_eq!(
                verifier.verify(&principal, v.key.as_bytes()).verdict,
                Verdict::Invalid(Reason::Mismatch)
            );
        }
    }
}

#[test]
fn the_dev_master_is_refused_for_real_use() {
    assert!(MasterSecret::from_text(b"gophers rule").is_err());
}
