//! Linker arguments of the shared library (Linux, Android): the SONAME carries the major version
//! (`libkitepush.so.0`), so an app linked against it loads a compatible library only, and the
//! version script exports the C API alone.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=kitepush.map");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os == "android" {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libkitepush.so.{major}");
        println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/kitepush.map");
    }
}
