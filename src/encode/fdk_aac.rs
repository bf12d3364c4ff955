//! FDK AAC backend.
