//! Known-answer tests: every vector of `tests/data/keys.json` (computed by three
//! independent HMAC implementations) through the library's derive and verify.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gobuildkey::derive::Deriver;
use gobuildkey::key::Algorithm;
use gobuildkey::master::MasterSecret;
use gobuildkey::principal::Principal;
use gobuildkey::verifier::{Reason, Verdict, Verifier};

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

/// `tests/data/trim.json`: Go's trimming (`bytes.TrimSpace` for masters and key files,
/// `net/http`'s spaces and tabs for header values), computed by `tests/data/trim.py`, an
/// independent Python implementation written from Go's documented semantics.
#[derive(serde::Deserialize)]
struct TrimVectors {
    white_space: Vec<u32>,
    masters: Vec<MasterCase>,
    key_files: Vec<KeyCase>,
    headers: Vec<KeyCase>,
    mixed: Vec<MixedCase>,
}

#[derive(serde::Deserialize)]
struct MasterCase {
    name: String,
    raw: String,
    trimmed: Option<String>,
    error: Option<String>,
    principal: Option<String>,
    hmac_sha256: Option<String>,
    hmac_md5: Option<String>,
}

#[derive(serde::Deserialize)]
struct KeyCase {
    name: String,
    raw: String,
    key: Option<String>,
}

#[derive(serde::Deserialize)]
struct MixedCase {
    raw: String,
    trimmed: String,
    header: String,
}

fn trim_vectors() -> TrimVectors {
    serde_json::from_str(include_str!("data/trim.json")).unwrap()
}

fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text).unwrap()
}

/// The principal and master the key-file and header vectors are keyed under.
const TRIM_PRINCIPAL: &str = "host-linux-arm-aws";
const TRIM_MASTER: &[u8] = b"f23ffcafa5d6010469d9b02cbe015c52768bd735acc996245b0084127335ec80";

#[test]
fn trim_vectors_every_white_space_code_point_and_no_other_is_trimmed() {
    use gobuildkey::text::trim_space;
    let v = trim_vectors();
    assert_eq!(v.white_space.len(), 25);
    let mut buf = [0u8; 4];
    for c in (0..=0x10_ffff).filter_map(char::from_u32) {
        let alone = c.encode_utf8(&mut buf).as_bytes().to_vec();
        let around = format!("{c}a{c}");
        if v.white_space.contains(&u32::from(c)) {
            assert_eq!(trim_space(&alone), b"", "{c:?}");
            assert_eq!(trim_space(around.as_bytes()), b"a", "{c:?}");
        } else {
            assert_eq!(trim_space(&alone), &alone[..], "{c:?}");
            assert_eq!(trim_space(around.as_bytes()), around.as_bytes(), "{c:?}");
        }
    }
}

#[test]
fn trim_vectors_masters_trim_and_derive_as_go_does() {
    use gobuildkey::master::MasterError;
    let v = trim_vectors();
    assert!(v.masters.len() >= 200, "{}", v.masters.len());
    let mut derived = 0;
    for case in &v.masters {
        let raw = unhex(&case.raw);
        let name = &case.name;
        match (&case.trimmed, case.error.as_deref()) {
            (Some(trimmed), None) => {
                let trimmed = unhex(trimmed);
                assert_eq!(gobuildkey::text::trim_space(&raw), &trimmed[..], "{name}");
                let master =
                    MasterSecret::from_text(&raw).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(master.expose_secret(), &trimmed[..], "{name}");
                let principal: Principal = case.principal.as_deref().unwrap().parse().unwrap();
                for (alg, want) in [
                    (Algorithm::HmacSha256, &case.hmac_sha256),
                    (Algorithm::HmacMd5, &case.hmac_md5),
                ] {
                    let want = want.as_deref().unwrap();
                    let key = Deriver::new(&master, alg).derive(&principal);
                    assert_eq!(key.expose_secret(), want, "{name} {alg}");
                    let verifier = Verifier::new(&master, alg);
                    assert!(
                        verifier
                            .verify(&principal, want.as_bytes())
                            .verdict
                            .is_valid(),
                        "{name}"
                    );
                }
                derived += 1;
            }
            (None, Some("empty")) => {
                assert!(
                    matches!(MasterSecret::from_text(&raw), Err(MasterError::Empty)),
                    "{name}"
                );
            }
            (None, Some("too_short")) => {
                assert!(
                    matches!(
                        MasterSecret::from_text(&raw),
                        Err(MasterError::TooShort { .. })
                    ),
                    "{name}"
                );
            }
            _ => panic!("bad vector {name}"),
        }
    }
    assert!(derived >= 200, "{derived}");
    // Invalid UTF-8 next to spaces made a master, and so its keys, differ from the master
    // the spaces alone would leave.
    let blocked = v
        .masters
        .iter()
        .filter(|c| {
            c.trimmed
                .as_deref()
                .is_some_and(|t| unhex(t) != TRIM_MASTER)
        })
        .count();
    assert!(blocked >= 100, "{blocked}");
}

#[test]
fn trim_vectors_key_files_parse_and_verify_as_the_buildlet_reads_them() {
    use gobuildkey::key::BuildKey;
    let v = trim_vectors();
    let master = MasterSecret::from_text(TRIM_MASTER).unwrap();
    let principal: Principal = TRIM_PRINCIPAL.parse().unwrap();
    let sha = Verifier::new(&master, Algorithm::HmacSha256);
    let md5 = Verifier::new(&master, Algorithm::HmacMd5);
    assert!(v.key_files.len() >= 100);
    assert!(v.key_files.iter().filter(|c| c.key.is_some()).count() >= 25);
    for case in &v.key_files {
        let raw = unhex(&case.raw);
        let (name, parsed) = (&case.name, BuildKey::parse(&raw));
        match &case.key {
            Some(key) => {
                assert_eq!(parsed.unwrap().expose_secret(), key, "{name}");
                let verifier = if key.len() == 32 { &md5 } else { &sha };
                assert_eq!(
                    verifier.verify(&principal, &raw).verdict,
                    Verdict::Valid,
                    "{name}"
                );
            }
            None => {
                assert!(parsed.is_err(), "{name}");
                for verifier in [&sha, &md5] {
                    assert_eq!(
                        verifier.verify(&principal, &raw).verdict,
                        Verdict::Invalid(Reason::Malformed),
                        "{name}"
                    );
                }
            }
        }
    }
}

#[test]
fn trim_vectors_header_values_are_trimmed_as_net_http_does() {
    use gobuildkey::key::Presented;
    let v = trim_vectors();
    let master = MasterSecret::from_text(TRIM_MASTER).unwrap();
    let principal: Principal = TRIM_PRINCIPAL.parse().unwrap();
    let verifier = Verifier::new(&master, Algorithm::HmacSha256);
    let now = jiff::Timestamp::now();
    assert!(v.headers.len() >= 45);
    for case in &v.headers {
        let raw = unhex(&case.raw);
        let name = &case.name;
        let verdict = verifier
            .verify_at(&principal, Presented::header(&raw), now)
            .verdict;
        let status =
            gobuildkey::service::answer(&verifier, &[TRIM_PRINCIPAL.as_bytes()], &[&raw], now)
                .status;
        if case.key.is_some() {
            assert_eq!((verdict, status), (Verdict::Valid, 200), "{name}");
        } else {
            // Malformed to the verifier; to a registration, one answer for every bad key.
            assert_eq!(
                (verdict, status),
                (Verdict::Invalid(Reason::Malformed), 403),
                "{name}"
            );
        }
    }
}

#[test]
fn trim_vectors_mixed_bytes_trim_by_both_rules() {
    use gobuildkey::text::{Trim, trim_space};
    let v = trim_vectors();
    assert_eq!(v.mixed.len(), 600);
    for case in &v.mixed {
        let raw = unhex(&case.raw);
        assert_eq!(hex::encode(trim_space(&raw)), case.trimmed, "{}", case.raw);
        assert_eq!(
            hex::encode(Trim::Space.apply(&raw)),
            case.trimmed,
            "{}",
            case.raw
        );
        assert_eq!(
            hex::encode(Trim::Header.apply(&raw)),
            case.header,
            "{}",
            case.raw
        );
    }
}

/// The trimming vectors agree with Go's own `bytes.TrimSpace` and `strings.TrimSpace`:
/// tests/go/trimspace runs them through Go where Go is installed (`.ci/run` installs
/// golang-go; without it this fails under CI and is skipped elsewhere).
#[test]
fn trim_vectors_agree_with_go_itself() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let cache = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("go")
        .current_dir(root.join("tests/go/trimspace"))
        .args(["run", "."])
        .arg(root.join("tests/data/trim.json"))
        .env("GOCACHE", cache.path().join("cache"))
        .env("GOPATH", cache.path().join("path"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .output();
    let Ok(out) = out else {
        assert!(
            std::env::var_os("CI").is_none(),
            "Go is needed (.ci/run installs golang-go)"
        );
        eprintln!("skipped: no Go toolchain");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(" 0 differ from Go"), "{text}");
}

/// The builder agent's key file, as gobuildkey finds it, is the one Go's buildlet reads:
/// `filepath.Join(HOME, ".gobuildkey-"+host type)`, lexically cleaned, compared with Go's
/// own `filepath.Join` (tests/go/joinpath) on odd and random HOME values, where Go is
/// installed (`.ci/run` installs golang-go; without it this fails under CI and is skipped
/// elsewhere).
#[test]
fn key_paths_agree_with_go_itself() {
    use std::io::Write;
    let mut homes: Vec<Vec<u8>> = [
        "/home/a",
        "/home/a/",
        "/home//a",
        "/home/a/./b",
        "/home/a/link/..",
        "/home/a/../..",
        "/../x",
        "/",
        "",
        "relative/dir",
        "./x/../y",
        "a/../../b",
        "/a/b/c/../../d/.",
        "//",
        "/a/./../b/",
        "...",
        "/a/.../b",
        "/a/..b/c",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    // Random homes from the pieces that matter.
    let pieces: [&[u8]; 7] = [b"/", b".", b"..", b"a", b"bc", b"//", b"..."];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..2000 {
        let mut home = Vec::new();
        for _ in 0..(state % 9) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            home.extend_from_slice(pieces[(state % 7) as usize]);
        }
        homes.push(home);
    }
    let input: String = homes
        .iter()
        .map(|home| format!("{}\thost-linux-arm-aws\n", hex::encode(home)))
        .collect();
    let cache = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let child = std::process::Command::new("go")
        .current_dir(root.join("tests/go/joinpath"))
        .args(["run", "."])
        .env("GOCACHE", cache.path().join("cache"))
        .env("GOPATH", cache.path().join("path"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        assert!(
            std::env::var_os("CI").is_none(),
            "Go is needed (.ci/run installs golang-go)"
        );
        eprintln!("skipped: no Go toolchain");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let go: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(go.len(), homes.len());
    for (home, go_path) in homes.iter().zip(&go) {
        let ours = gobuildkey::paths::go_join(
            std::path::Path::new(std::str::from_utf8(home).unwrap()),
            ".gobuildkey-host-linux-arm-aws",
        );
        assert_eq!(
            hex::encode(ours.as_os_str().as_encoded_bytes()),
            *go_path,
            "HOME={:?}",
            String::from_utf8_lossy(home)
        );
    }
}
