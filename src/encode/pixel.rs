//! Pixel format conversion.
