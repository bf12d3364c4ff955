//! The one macro every C export goes through.
//!
//! Generating each `extern "C"` function from a macro (as hyper's C API does) means nobody can add an
//! export that forgets the panic boundary: a Rust panic unwinding into C is undefined behaviour and
//! would take the host app down with it.

/// Defines an exported C function whose body runs inside the panic boundary.
///
/// Three shapes:
/// - `fn name(args) -> kp_result { body }`: the body evaluates to `Result<(), Error>`; `Ok` becomes
///   `KP_OK`, an error becomes its code and its Display text becomes the thread's last error message,
///   a panic becomes `KP_ERR_INTERNAL`.
/// - `fn name(args) -> T = fallback; { body }`: a getter; the body evaluates to `T`, a panic returns
///   `fallback` (NULL, 0 or a "failed" value) and records the panic as the last error.
/// - `fn name(args) { body }`: returns nothing; a panic is recorded and swallowed.
///
/// Exports are `unsafe extern "C"` because they take raw pointers from C; each one's doc comment (copied
/// into the header) states what the caller must guarantee, so no separate `# Safety` section is kept.
macro_rules! ffi_fn {
    ($(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> kp_result $body:block) => {
        $(#[$meta])*
        #[no_mangle]
        #[allow(clippy::missing_safety_doc)]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $crate::ffi::kp_result {
            $crate::ffi::error::result_boundary(
                stringify!($name),
                move || -> ::std::result::Result<(), $crate::Error> { $body },
            )
        }
    };
    ($(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty = $fallback:expr; $body:block) => {
        $(#[$meta])*
        #[no_mangle]
        #[allow(clippy::missing_safety_doc)]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            $crate::ffi::error::value_boundary(stringify!($name), $fallback, move || -> $ret { $body })
        }
    };
    ($(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        #[no_mangle]
        #[allow(clippy::missing_safety_doc)]
        pub unsafe extern "C" fn $name($($arg: $ty),*) {
            $crate::ffi::error::value_boundary(stringify!($name), (), move || $body)
        }
    };
}
