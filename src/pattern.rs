//! Test pattern generator.
