//! OpenH264 backend.
