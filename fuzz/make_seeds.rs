//! Writes the seed corpus (fuzz/corpus/<target>/) from scratch: RTMP server replies and a
//! publisher's chunk stream made with rml_rtmp and the SDK's own session, URLs, and small
//! H.264 / ADTS / FLV files made by ffmpeg. Run by `scripts/fuzz --seed`; the fuzzers grow the
//! corpus from these and `cargo fuzz cmin` keeps it small.
use kitepush::core::metadata::{AudioMeta, StreamMetadata, VideoCodec, VideoMeta};
use kitepush::core::session::{PublishSession, SessionState};
use kitepush::core::url::RtmpUrl;
use rml_amf0::Amf0Value;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::messages::{PeerBandwidthLimitType, RtmpMessage, UserControlEventType};
use rml_rtmp::time::RtmpTimestamp;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

fn write(target: &str, name: &str, data: &[u8]) {
    let dir = Path::new("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), data).unwrap();
}

fn status(code: &str) -> Amf0Value {
    let mut p = HashMap::new();
    p.insert("level".to_string(), Amf0Value::Utf8String("status".into()));
    p.insert("code".to_string(), Amf0Value::Utf8String(code.into()));
    p.insert("description".to_string(), Amf0Value::Utf8String("seed".into()));
    Amf0Value::Object(p)
}

/// The replies of an nginx-like server to a publisher, as one chunk stream.
fn server_replies() -> Vec<u8> {
    let mut ser = ChunkSerializer::new();
    let mut out = Vec::new();
    let mut send = |ser: &mut ChunkSerializer, m: RtmpMessage, sid: u32| {
        let p = m.into_message_payload(RtmpTimestamp::new(0), sid).unwrap();
        out.extend(ser.serialize(&p, false, false).unwrap().bytes);
    };
    let cmd = |name: &str, tid: f64, args: Vec<Amf0Value>| RtmpMessage::Amf0Command {
        command_name: name.into(),
        transaction_id: tid,
        command_object: Amf0Value::Null,
        additional_arguments: args,
    };
    send(&mut ser, RtmpMessage::WindowAcknowledgement { size: 5_000_000 }, 0);
    send(&mut ser, RtmpMessage::SetPeerBandwidth { size: 5_000_000, limit_type: PeerBandwidthLimitType::Dynamic }, 0);
    send(&mut ser, RtmpMessage::SetChunkSize { size: 4000 }, 0);
    ser.set_max_chunk_size(4000, RtmpTimestamp::new(0)).unwrap();
    send(&mut ser, cmd("_result", 1.0, vec![status("NetConnection.Connect.Success")]), 0);
    send(&mut ser, cmd("onBWDone", 0.0, vec![Amf0Value::Number(8192.0)]), 0);
    send(&mut ser, cmd("_result", 4.0, vec![Amf0Value::Number(1.0)]), 0);
    send(&mut ser, cmd("onStatus", 0.0, vec![status("NetStream.Publish.Start")]), 1);
    send(
        &mut ser,
        RtmpMessage::UserControl {
            event_type: UserControlEventType::PingRequest,
            stream_id: None,
            buffer_length: None,
            timestamp: Some(RtmpTimestamp::new(1234)),
        },
        0,
    );
    send(&mut ser, RtmpMessage::Acknowledgement { sequence_number: 100_000 }, 0);
    send(&mut ser, cmd("onStatus", 0.0, vec![status("NetStream.Publish.BadName")]), 1);
    out
}

fn ffmpeg(args: &[&str], out: &Path) -> Vec<u8> {
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .arg(out)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "ffmpeg {args:?}");
    std::fs::read(out).unwrap()
}

fn main() {
    let replies = server_replies();
    // inbound: first byte picks the read size.
    write("inbound", "replies-1", &[&[0u8][..], &replies].concat());
    write("inbound", "replies-big", &[&[255u8][..], &replies].concat());
    // session: bit 0 = a valid handshake goes first.
    write("session", "replies", &[&[0x21u8][..], &replies].concat());
    write("session", "replies-bytewise", &[&[1u8][..], &replies].concat());

    // receiver_guard: what a publisher sends after the handshake, from the SDK's own session.
    let url = RtmpUrl::parse("rtmp://127.0.0.1/live/key").unwrap();
    let meta = StreamMetadata {
        video: Some(VideoMeta { codec: VideoCodec::H264, width: 64, height: 64, framerate: 30.0, bitrate_kbps: 100 }),
        audio: Some(AudioMeta { sample_rate: 44100, channels: 2, bitrate_kbps: 64 }),
        encoder: "seed".into(),
    };
    let mut s = PublishSession::new(&url, meta).unwrap();
    let c0c1 = s.pending_output().len();
    s.consume_output(c0c1);
    let mut ev = Vec::new();
    s.handle_input(&[&[3u8][..], &[0u8; 3072][..]].concat(), &mut ev).unwrap();
    // Skip C2: the receiver's guard sees the bytes after the handshake.
    let mut client = s.pending_output()[1536..].to_vec();
    s.consume_output(usize::MAX);
    s.handle_input(&replies[..replies.len() - 40], &mut ev).ok();
    assert_eq!(s.state(), SessionState::Publishing);
    s.send_video(0, &[0x17, 0, 0, 0, 0], &[1, 0x42, 0, 0x1e, 0xff]).unwrap();
    s.send_video(33, &[], &[0x27u8; 300]).unwrap();
    s.send_audio(20, &[0xaf, 1], &[1, 2, 3]).unwrap();
    s.unpublish().unwrap();
    client.extend_from_slice(s.pending_output());
    write("receiver_guard", "publish", &[&[0u8][..], &client].concat());

    for (i, u) in [
        "rtmp://127.0.0.1/live/key",
        "rtmps://a.rtmp.youtube.com:443/live2/abcd-efgh-ijkl?backup=1",
        "rtmp://[::1]:1935/app/inst/key?sig=a/b",
        "rtmp://host/live//k",
    ]
    .iter()
    .enumerate()
    {
        write("url", &format!("url{i}"), u.as_bytes());
    }
    // opus_packet: one packet of each framing code (RFC 6716 section 3.2), padding and VBR lengths.
    let two_byte_length = [&[(31u8 << 3) | 2, 252, 1][..], &[5u8; 260]].concat();
    let opus: [(&str, &[u8]); 6] = [
        ("celt-fb-20ms", &[31 << 3, 1, 2, 3]),
        ("silk-nb-60ms-two-equal", &[(3 << 3) | 1, 1, 2]),
        ("hybrid-two-coded", &[(14 << 3) | 2, 2, 9, 9, 9]),
        ("celt-cbr-six", &[(16 << 3) | 3, 6, 1, 1, 1, 1, 1, 1]),
        ("celt-vbr-padded", &[(18 << 3) | 3, 0xc0 | 3, 2, 2, 1, 7, 7, 8, 9, 9, 9, 0, 0]),
        ("two-byte-length", &two_byte_length),
    ];
    for (name, p) in opus {
        write("opus_packet", name, p);
    }

    let tmp = std::env::temp_dir().join(format!("kitepush-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let h264 = ffmpeg(
        &["-f", "lavfi", "-i", "testsrc2=size=64x64:rate=10", "-t", "0.3", "-c:v", "libx264", "-g", "2", "-f", "h264"],
        &tmp.join("a.h264"),
    );
    write("annexb", "x264-64x64", &[&[128u8][..], &h264].concat());
    let aac = ffmpeg(
        &["-f", "lavfi", "-i", "sine=sample_rate=22050", "-t", "0.15", "-c:a", "aac", "-b:a", "24k", "-f", "adts"],
        &tmp.join("a.aac"),
    );
    write("adts", "aac-lc", &aac);
    let flv = ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=32x32:rate=5",
            "-f",
            "lavfi",
            "-i",
            "sine=sample_rate=22050",
            "-t",
            "0.4",
            "-c:v",
            "libx264",
            "-c:a",
            "aac",
            "-b:a",
            "24k",
            "-f",
            "flv",
        ],
        &tmp.join("a.flv"),
    );
    write("flv_read", "ffmpeg", &flv);
    let mut w = vec![0, 0, 0, 33, 1, 9];
    for (t, ts, body) in [(9u8, 0u32, &b"\x17\x00\x00\x00\x00\x01\x42"[..]), (8, 0x0100_0000, &b"\xaf\x01abc"[..])] {
        w.push(t);
        w.extend_from_slice(&ts.to_be_bytes());
        w.extend_from_slice(&(body.len() as u16).to_be_bytes());
        w.extend_from_slice(body);
    }
    write("flv_write", "two-tags", &w);
    // SEI messages as the pusher writes them (the first byte picks the codec: even H.264, odd HEVC).
    use kitepush::core::{media::Codec, sei};
    for (name, sel, codec, payload) in [
        ("h264-msg", 0u8, Codec::H264, &b"msg 1 \x00\x00\x00\x01\x00\x00\x03"[..]),
        ("hevc-msg", 1, Codec::Hevc, &[b'x'; 300][..]),
    ] {
        let mut nal = vec![sel];
        sei::write_nal(codec, &sei::MESSAGE_UUID, payload, &mut nal);
        write("sei", name, &nal);
    }
    write("sei", "zeros", &[0u8; 65]);
    std::fs::remove_dir_all(&tmp).ok();
}
