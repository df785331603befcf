//! Fuzz target: `gobuildkey::fuzzing::batch_line` (its properties are documented there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gobuildkey::fuzzing::batch_line(data));
