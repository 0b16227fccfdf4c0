//! The command parser: `parse_command`, then `parse_path` on its argument.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| smtp_core::__fuzz::command(input));
