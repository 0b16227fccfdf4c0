//! The DATA decoder against the reference model, fed in fuzzer-chosen pieces.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| smtp_core::__fuzz::data(input));
