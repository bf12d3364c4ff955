//! The sans-IO core: no sockets, no threads, no clock reads. Bytes and time go in; bytes, events
//! and decisions come out, so everything here is tested on scripted input.

pub mod abr;
pub mod adts;
pub mod alerts;
pub mod annexb;
pub mod body_pool;
pub mod drop_policy;
pub mod flv;
pub mod hevc;
pub mod ladder;
pub mod media;
pub mod message_carry;
pub mod metadata;
pub mod opus_packet;
pub mod reconnect;
pub mod rtp_h264;
pub mod sei;
pub mod send_queue;
pub mod session;
pub mod srt;
pub mod srt_url;
pub mod stall;
pub mod text_data;
pub mod ts;
pub mod url;
pub mod whip_url;
