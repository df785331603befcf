//! Fuzz target: `gobuildkey::fuzzing::policy_parsing` (its properties are documented there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gobuildkey::fuzzing::policy_parsing(data));
