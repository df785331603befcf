//! Fuzz target: `gobuildkey::fuzzing::principal_parsing` (its properties are documented there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gobuildkey::fuzzing::principal_parsing(data));
