//! Built-in RTMP receiver (to be written).
