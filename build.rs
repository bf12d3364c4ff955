//! Linker arguments of the shared library (Linux, Android): the SONAME carries the major version
//! (`libkitepush.so.0`), so an app linked against it loads a compatible library only.
//!
//! No version script of ours: rustc already passes one that exports the `#[no_mangle]` C API
//! (`kp_*`, and `JNI_*`/`Java_*` with the `jni` feature) and makes everything else local — Rust
//! std, the crates and the bundled C/C++ codecs. A second script was merged by lld (the host's
//! linker) but GNU ld, which Debian's ARM cross compilers use, refuses two anonymous version
//! scripts. tests/c_install.rs checks that the installed library exports kp_* only.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os == "android" {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libkitepush.so.{major}");
    }
}
