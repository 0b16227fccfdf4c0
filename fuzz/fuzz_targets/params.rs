//! The extension arguments: BDAT chunk sizes, DSN parameters of MAIL and RCPT, xtext.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| smtp_core::__fuzz::params(input));
