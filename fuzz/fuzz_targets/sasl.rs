//! The SASL mechanisms (PLAIN, LOGIN, SCRAM, CRAM-MD5, XOAUTH2, OAUTHBEARER, EXTERNAL,
//! ANONYMOUS) and the base64 decoding of their responses, over a scripted exchange.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| smtp_core::__fuzz::sasl(input));
