//! The built-in receiver's guard: every byte a publisher sends goes through it before
//! rml_rtmp's server session.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kitepush::receiver::fuzz_guard(data));
