//! Server → publisher chunk stream: the bounded chunk reader, control messages and the AMF0
//! command decoder, with chunk size changes and aborts applied as the session applies them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kitepush::core::session::fuzzing::inbound(data));
