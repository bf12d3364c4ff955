//! Sockets: the only place that does network I/O.

#[cfg(feature = "whip")]
pub mod http;
#[cfg(feature = "tls")]
pub mod tls;
pub mod tls_config;
pub mod transport;
pub mod udp;

pub use transport::Transport;
