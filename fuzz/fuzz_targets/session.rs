//! A whole session over an in-memory stream: well-formed replies, each accepted message
//! handled once, no password in the log.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| smtp_core::__fuzz::session(input));
