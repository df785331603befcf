//! Fuzz target: `gobuildkey::fuzzing::service_headers` (its properties are documented there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gobuildkey::fuzzing::service_headers(data));
