//! The stream description sent as `@setDataFrame onMetaData`, and the AMF0 encoding of it.
//!
//! Encoded by hand as an AMF0 ECMA array with a fixed key order: `rml_amf0` serialises objects
//! from a `HashMap` (random key order), and some ingests read the first keys only.

/// FLV `videocodecid` values (legacy codec ids, or Enhanced RTMP FourCCs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    /// H.265 over Enhanced RTMP (FourCC `hvc1`).
    Hevc,
}

impl VideoCodec {
    pub fn flv_codec_id(self) -> f64 {
        match self {
            VideoCodec::H264 => 7.0,
            // Enhanced RTMP: the FourCC read as a big-endian 32-bit number.
            VideoCodec::Hevc => u32::from_be_bytes(super::flv::FOURCC_HEVC) as f64,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct VideoMeta {
    pub codec: VideoCodec,
    pub width: u32,
    pub height: u32,
    pub framerate: f64,
    pub bitrate_kbps: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AudioMeta {
    pub sample_rate: u32,
    pub channels: u32,
    pub bitrate_kbps: u32,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamMetadata {
    pub video: Option<VideoMeta>,
    pub audio: Option<AudioMeta>,
    /// Free text, e.g. `kitepush 0.1.0`.
    pub encoder: String,
}

/// A value in the metadata array (the subset of AMF0 that onMetaData uses).
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    Number(f64),
    Bool(bool),
    String(String),
}

impl StreamMetadata {
    /// The keys and values in the order they are sent.
    pub fn entries(&self) -> Vec<(&'static str, MetaValue)> {
        use MetaValue::*;
        let mut e = vec![("duration", Number(0.0)), ("fileSize", Number(0.0))];
        if let Some(v) = &self.video {
            e.push(("width", Number(v.width as f64)));
            e.push(("height", Number(v.height as f64)));
            e.push(("videodatarate", Number(v.bitrate_kbps as f64)));
            e.push(("framerate", Number(v.framerate)));
            e.push(("videocodecid", Number(v.codec.flv_codec_id())));
        }
        if let Some(a) = &self.audio {
            e.push(("audiodatarate", Number(a.bitrate_kbps as f64)));
            e.push(("audiosamplerate", Number(a.sample_rate as f64)));
            e.push(("audiosamplesize", Number(16.0)));
            e.push(("stereo", Bool(a.channels >= 2)));
            e.push(("audiocodecid", Number(10.0)));
        }
        e.push(("encoder", String(self.encoder.clone())));
        e
    }

    /// The payload of the AMF0 data message: `"@setDataFrame", "onMetaData", {ECMA array}`.
    pub fn set_data_frame_payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(384);
        amf0_string(&mut out, "@setDataFrame");
        out.extend_from_slice(&self.on_metadata_payload());
        out
    }

    /// `"onMetaData", {ECMA array}`: the body of an FLV script tag.
    pub fn on_metadata_payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(384);
        amf0_string(&mut out, "onMetaData");
        let entries = self.entries();
        out.push(0x08); // ECMA array
        out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        for (k, v) in entries {
            amf0_key(&mut out, k);
            match v {
                MetaValue::Number(n) => {
                    out.push(0x00);
                    out.extend_from_slice(&n.to_be_bytes());
                }
                MetaValue::Bool(b) => {
                    out.push(0x01);
                    out.push(b as u8);
                }
                MetaValue::String(s) => amf0_string(&mut out, &s),
            }
        }
        out.extend_from_slice(&[0x00, 0x00, 0x09]); // object end
        out
    }
}

fn amf0_key(out: &mut Vec<u8>, k: &str) {
    let b = &k.as_bytes()[..k.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

fn amf0_string(out: &mut Vec<u8>, s: &str) {
    out.push(0x02);
    amf0_key(out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hevc_codec_id_is_the_fourcc_as_a_number() {
        assert_eq!(VideoCodec::Hevc.flv_codec_id(), 1_752_589_105.0); // 0x68766331, "hvc1"
        let m = StreamMetadata {
            video: Some(VideoMeta {
                codec: VideoCodec::Hevc,
                width: 320,
                height: 240,
                framerate: 25.0,
                bitrate_kbps: 500,
            }),
            audio: None,
            encoder: String::new(),
        };
        let values = rml_amf0::deserialize(&mut std::io::Cursor::new(m.on_metadata_payload())).unwrap();
        match &values[1] {
            rml_amf0::Amf0Value::Object(p) => {
                assert_eq!(p["videocodecid"], rml_amf0::Amf0Value::Number(1_752_589_105.0))
            }
            other => panic!("not an object: {other:?}"),
        }
    }

    #[test]
    fn encodes_as_ecma_array_in_order_and_rml_amf0_reads_it() {
        let m = StreamMetadata {
            video: Some(VideoMeta {
                codec: VideoCodec::H264,
                width: 1280,
                height: 720,
                framerate: 30.0,
                bitrate_kbps: 2000,
            }),
            audio: Some(AudioMeta { sample_rate: 44100, channels: 2, bitrate_kbps: 128 }),
            encoder: "kitepush test".into(),
        };
        let p = m.set_data_frame_payload();
        assert_eq!(&p[..16], b"\x02\x00\x0d@setDataFrame");
        let mut cursor = std::io::Cursor::new(p);
        let values = rml_amf0::deserialize(&mut cursor).unwrap();
        assert_eq!(values.len(), 3);
        assert_eq!(values[1], rml_amf0::Amf0Value::Utf8String("onMetaData".into()));
        let props = match &values[2] {
            rml_amf0::Amf0Value::Object(p) => p,
            other => panic!("not an object: {other:?}"),
        };
        assert_eq!(props["width"], rml_amf0::Amf0Value::Number(1280.0));
        assert_eq!(props["videocodecid"], rml_amf0::Amf0Value::Number(7.0));
        assert_eq!(props["audiocodecid"], rml_amf0::Amf0Value::Number(10.0));
        assert_eq!(props["stereo"], rml_amf0::Amf0Value::Boolean(true));
        assert_eq!(props["encoder"], rml_amf0::Amf0Value::Utf8String("kitepush test".into()));
        let keys: Vec<_> = m.entries().into_iter().map(|(k, _)| k).collect();
        assert_eq!(&keys[2..4], &["width", "height"]);
    }
}
