//! kitepush: a live-stream push SDK.
//!
//! Raw camera frames and microphone samples (or access units from a hardware encoder) go in;
//! H.264/AAC in FLV goes out over RTMP to an ingest server.
//!
//! Layers (see DESIGN.md): [`core`] is sans-IO (FLV, RTMP publish session, URL parsing: bytes and
//! time in, bytes and events out), [`io`] owns sockets, [`encode`] wraps the codecs, [`pusher`] owns
//! the threads and [`ffi`] is the C ABI.

// The JNI glue of the Android shim (android/): native methods of dev.kitepush.Native.
#[cfg(feature = "jni")]
mod android;
pub mod core;
pub mod encode;
mod error;
pub mod ffi;
pub mod io;
pub mod pattern;
pub mod pusher;
pub mod receiver;

pub use error::{Error, ResultCode};

/// The crate version, also returned by `kp_version()`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
