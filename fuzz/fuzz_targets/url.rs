//! The ingest URL parser, and the redaction that must never show the key.
#![no_main]
use kitepush::core::url::RtmpUrl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(u) = RtmpUrl::parse(s) {
        assert!(!u.host.is_empty() && !u.app.is_empty() && !u.stream_key.is_empty());
        let _ = u.tc_url();
        let red = u.redacted();
        // A key long enough to be masked must not appear whole in what goes to logs.
        // (Unless the same text is also the host:port or app, which are not secret.)
        let k = &u.stream_key;
        if k.len() >= 8 && !u.tc_url().contains(k.as_str()) {
            assert!(!red.contains(&u.stream_key), "{red}");
        }
        // What the SDK prints must parse back to the same place.
        let again = RtmpUrl::parse(&format!(
            "{}://{}:{}/{}/{}",
            if u.tls { "rtmps" } else { "rtmp" },
            if u.host.contains(':') { format!("[{}]", u.host) } else { u.host.clone() },
            u.port,
            u.app,
            u.stream_key
        ));
        if let Ok(again) = again {
            assert_eq!(again, u);
        }
    }
});
