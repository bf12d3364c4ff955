//! Pusher.
