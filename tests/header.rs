//! The checked-in C header must be exactly what cbindgen generates from the current source.
//!
//! `KP_BLESS_HEADER=1 cargo test --no-default-features --test header` rewrites it instead.

use std::path::Path;

#[test]
fn header_is_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // cbindgen expands macros with `cargo rustc -- -Zunpretty=expanded` (see cbindgen.toml), an
    // unstable flag: allow it on a stable toolchain, and expand in a target dir of its own so the
    // nested cargo neither waits on this build's lock nor rebuilds from scratch every run.
    if std::env::var_os("RUSTC_BOOTSTRAP").is_none() {
        std::env::set_var("RUSTC_BOOTSTRAP", "1");
    }
    if std::env::var_os("CARGO_EXPAND_TARGET_DIR").is_none() {
        std::env::set_var("CARGO_EXPAND_TARGET_DIR", root.join("target/cbindgen-expand"));
    }
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen failed")
        .write(&mut generated);
    let generated = String::from_utf8(generated).expect("header is UTF-8");

    let path = root.join("include/kitepush.h");
    if std::env::var_os("KP_BLESS_HEADER").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("write include/kitepush.h");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in != generated {
        let first_diff = checked_in
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| checked_in.lines().count().min(generated.lines().count()));
        panic!(
            "include/kitepush.h is stale (first difference at line {}); regenerate it with \
             KP_BLESS_HEADER=1 cargo test --no-default-features --test header and commit it",
            first_diff + 1
        );
    }
}
