//! Uses the standard library's allocator, formatting and unwinding, so its copies of them (and
//! rust_eh_personality) are linked in.

/// 42, computed through a caught panic and a formatted string.
#[no_mangle]
pub extern "C" fn nightly_lib_answer() -> u32 {
    std::panic::set_hook(Box::new(|_| {}));
    let caught = std::panic::catch_unwind(|| -> u32 { panic!("{}", 40) });
    let n: u32 = match caught {
        Ok(n) => n,
        Err(p) => p.downcast_ref::<String>().and_then(|s| s.parse().ok()).unwrap_or(0),
    };
    format!("{}", n + 2).parse().unwrap_or(0)
}
