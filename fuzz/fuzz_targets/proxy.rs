//! The PROXY protocol header parser (versions 1 and 2), fed every prefix of the input.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| smtp_core::__fuzz::proxy(input));
