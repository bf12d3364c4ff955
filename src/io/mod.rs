//! Sockets: the only place that does network I/O.

pub mod transport;

pub use transport::Transport;
