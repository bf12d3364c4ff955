//! The built-in receiver fed a publisher's bytes: its guard, then rml_rtmp's server session on
//! what the guard let through. The receiver runs both under `catch_unwind` (conn.rs: a panic
//! inside rml_rtmp ends that connection only), so a panic raised in rml_rtmp's own source is
//! tolerated here; a panic anywhere else (the guard is ours), a stack overflow or an allocation
//! over the limit is a crash.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        std::panic::set_hook(Box::new(|info| {
            let in_rml = info.location().is_some_and(|l| l.file().contains("rml_"));
            if !in_rml {
                eprintln!("{info}");
                std::process::abort();
            }
        }));
    },
    |data: &[u8]| kitepush::receiver::fuzz_guard(data)
);
