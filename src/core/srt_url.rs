//! SRT caller URLs in libsrt's URI syntax, as users paste them from their server's docs:
//! `srt://host:port?streamid=...&latency=MS&passphrase=...&pbkeylen=16|24|32&mode=caller`.
//!
//! - Values are percent-decoded (`streamid=%23!::r=live/x,m=publish` is `#!::r=live/x,m=publish`);
//!   a raw `#` is taken as part of the value, not as a fragment, since users paste it that way.
//! - `latency` is in milliseconds as libsrt's URIs write it. FFmpeg's `srt://` option of the same
//!   name is in microseconds: a value above 60 000 is refused with a message naming the unit,
//!   rather than silently asking for minutes of latency.
//! - Only a caller in live mode is what a pusher is: `mode=listener|rendezvous` and
//!   `transtype=file` are refused. Options this SDK does not act on are ignored (logged), as
//!   libsrt ignores what a socket does not support.
//! - The stream id and the passphrase are secrets like an RTMP stream key: [`SrtUrl::redacted`]
//!   and [`SrtUrl::scrub`] keep them out of logs, events and messages.

use super::url::{mask_key, redact_str, split_host_port, MIN_SECRET_LEN};
use crate::error::{Error, Result};
use std::fmt;

/// The most latency a URL may ask for, in ms (libsrt's URI unit). Anything above looks like
/// FFmpeg's microseconds.
pub const MAX_LATENCY_MS: u32 = 60_000;
/// libsrt's passphrase length bounds.
pub const PASSPHRASE_LEN: std::ops::RangeInclusive<usize> = 10..=79;
/// libsrt's stream id limit.
pub const MAX_STREAM_ID: usize = 512;

#[derive(Clone, PartialEq, Eq)]
pub struct SrtUrl {
    pub host: String,
    pub port: u16,
    /// Percent-decoded.
    pub stream_id: Option<String>,
    /// TSBPD latency in ms; None: the configuration's (120 ms by default).
    pub latency_ms: Option<u32>,
    pub passphrase: Option<String>,
    /// AES key length in bytes (16, 24 or 32); None: the configuration's, or 16.
    pub pbkeylen: Option<u8>,
    /// Connect timeout in ms (`conntimeo`); the pusher's connect timeout bounds it too.
    pub connect_timeout_ms: Option<u32>,
}

/// Stream ids in the forms the servers users get wrong expect. Values are stable (they cross the
/// C ABI as `kp_srt_stream_id_preset`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum StreamIdPreset {
    /// As given.
    KP_SRT_STREAM_ID_RAW = 0,
    /// SRS and ZLMediaKit: the access control syntax `#!::r=app/stream,m=publish` from
    /// `app/stream`.
    KP_SRT_STREAM_ID_SRS = 1,
    /// MediaMTX: `publish:path` from the path.
    KP_SRT_STREAM_ID_MEDIAMTX = 2,
}

impl StreamIdPreset {
    pub fn from_raw(v: i64) -> Result<Self> {
        Ok(match v {
            0 => StreamIdPreset::KP_SRT_STREAM_ID_RAW,
            1 => StreamIdPreset::KP_SRT_STREAM_ID_SRS,
            2 => StreamIdPreset::KP_SRT_STREAM_ID_MEDIAMTX,
            other => return Err(Error::InvalidArgument(format!("unknown SRT stream id preset {other}"))),
        })
    }

    /// The stream id for publishing `resource` (`app/stream` for SRS, the path for MediaMTX).
    pub fn stream_id(self, resource: &str) -> String {
        let r = resource.trim_matches('/');
        match self {
            StreamIdPreset::KP_SRT_STREAM_ID_SRS => format!("#!::r={r},m=publish"),
            StreamIdPreset::KP_SRT_STREAM_ID_MEDIAMTX => format!("publish:{r}"),
            StreamIdPreset::KP_SRT_STREAM_ID_RAW => resource.to_string(),
        }
    }
}

impl SrtUrl {
    pub fn parse(url: &str) -> Result<SrtUrl> {
        let bad = |why: String| Error::InvalidUrl(format!("{why} (in {})", redact(url)));
        if url.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(bad("control characters or spaces".into()));
        }
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("missing scheme".into()))?;
        if !scheme.eq_ignore_ascii_case("srt") {
            return Err(bad("scheme must be srt".into()));
        }
        let (authority, query) = match rest.split_once('?') {
            Some((a, q)) => (a, q),
            None => (rest, ""),
        };
        let authority = authority.trim_end_matches('/');
        if authority.contains('/') {
            return Err(bad("an SRT URL has no path: put the stream in `streamid=`".into()));
        }
        if authority.contains('@') {
            return Err(bad("user info in the authority is not supported".into()));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("bad host or port".into()))?;
        let port = port.ok_or_else(|| bad("an SRT URL needs a port".into()))?;
        let mut u = SrtUrl {
            host,
            port,
            stream_id: None,
            latency_ms: None,
            passphrase: None,
            pbkeylen: None,
            connect_timeout_ms: None,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(raw).ok_or_else(|| bad(format!("bad percent-encoding in `{key}`")))?;
            let number = |what: &str| {
                value.parse::<u32>().map_err(|_| bad(format!("`{key}` must be a number of {what}, not `{}`", value)))
            };
            match key.to_ascii_lowercase().as_str() {
                "streamid" => {
                    if value.len() > MAX_STREAM_ID {
                        return Err(bad(format!("streamid is {} bytes, SRT allows {MAX_STREAM_ID}", value.len())));
                    }
                    u.stream_id = Some(value);
                }
                "latency" | "rcvlatency" | "peerlatency" => {
                    let ms = number("milliseconds")?;
                    if ms > MAX_LATENCY_MS {
                        return Err(bad(format!(
                            "latency={ms} is in milliseconds in SRT URLs (libsrt's unit); {ms} ms is over \
                             {MAX_LATENCY_MS} ms: was it FFmpeg's microseconds (latency={})?",
                            ms / 1000
                        )));
                    }
                    u.latency_ms = Some(ms);
                }
                "passphrase" => {
                    if !PASSPHRASE_LEN.contains(&value.chars().count()) {
                        return Err(bad("passphrase must be 10 to 79 characters (as libsrt requires)".into()));
                    }
                    u.passphrase = Some(value);
                }
                "pbkeylen" => {
                    u.pbkeylen = match number("bytes")? {
                        0 => None,
                        n @ (16 | 24 | 32) => Some(n as u8),
                        n => return Err(bad(format!("pbkeylen must be 16, 24 or 32 (bytes), not {n}"))),
                    }
                }
                "mode" => {
                    if !value.eq_ignore_ascii_case("caller") && !value.eq_ignore_ascii_case("client") {
                        return Err(Error::Unsupported(format!(
                            "SRT mode `{value}`: a pusher connects as caller (in {})",
                            redact(url)
                        )));
                    }
                }
                "transtype" => {
                    if !value.eq_ignore_ascii_case("live") {
                        return Err(Error::Unsupported(format!(
                            "SRT transtype `{value}`: live mode only (in {})",
                            redact(url)
                        )));
                    }
                }
                "conntimeo" => u.connect_timeout_ms = Some(number("milliseconds")?),
                other => log::debug!("SRT URL option `{other}` ignored"),
            }
        }
        if u.pbkeylen.is_some() && u.passphrase.is_none() {
            return Err(bad("pbkeylen without a passphrase".into()));
        }
        Ok(u)
    }

    /// `srt://host:port` with the options that are not secret; the stream id masked.
    pub fn redacted(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let mut s = format!("srt://{host}:{}", self.port);
        let mut sep = '?';
        if let Some(id) = &self.stream_id {
            s.push_str(&format!("{sep}streamid={}", mask_key(id)));
            sep = '&';
        }
        if let Some(ms) = self.latency_ms {
            s.push_str(&format!("{sep}latency={ms}"));
            sep = '&';
        }
        if self.passphrase.is_some() {
            s.push_str(&format!("{sep}passphrase=***"));
        }
        s
    }

    /// `text` with the stream id, its pieces and the passphrase masked (see `RtmpUrl::scrub`).
    pub fn scrub(&self, text: &str) -> String {
        let mut secrets: Vec<&str> = Vec::new();
        if let Some(p) = &self.passphrase {
            secrets.push(p);
        }
        if let Some(id) = &self.stream_id {
            secrets.push(id);
            // `#!::r=live/key,m=publish,u=user` and `publish:path:user:pass`: every value and
            // path segment may carry the key.
            for piece in id.split([',', ':', '/', '=', '?', '&']) {
                secrets.push(piece);
            }
        }
        const NOT_SECRET: [&str; 4] = ["publish", "request", "#!::r", "live"];
        secrets.retain(|s| s.len() >= MIN_SECRET_LEN && !NOT_SECRET.contains(s));
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        let mut out = text.to_string();
        for s in secrets {
            if out.contains(s) {
                out = out.replace(s, "***");
            }
        }
        out
    }
}

fn redact(url: &str) -> String {
    // The query holds the stream id and the passphrase: none of it is shown.
    match url.split_once('?') {
        Some((a, _)) => format!("{}?***", redact_str(a)),
        None => redact_str(url),
    }
}

/// `%XX` decoded (as UTF-8); None for a bad escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl fmt::Debug for SrtUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for SrtUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ResultCode;

    #[test]
    fn the_forms_users_paste() {
        let u =
            SrtUrl::parse("srt://127.0.0.1:10080?streamid=%23!::r=live/x,m=publish&latency=200&mode=caller").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 10080));
        assert_eq!(u.stream_id.as_deref(), Some("#!::r=live/x,m=publish"));
        assert_eq!(u.latency_ms, Some(200));
        // A raw '#' is part of the value.
        let raw = SrtUrl::parse("srt://h:1?streamid=#!::r=live/x,m=publish").unwrap();
        assert_eq!(raw.stream_id, u.stream_id);
        let m = SrtUrl::parse("srt://[::1]:8890?streamid=publish:mystream&passphrase=0123456789&pbkeylen=32").unwrap();
        assert_eq!(m.host, "::1");
        assert_eq!(m.stream_id.as_deref(), Some("publish:mystream"));
        assert_eq!((m.passphrase.as_deref(), m.pbkeylen), (Some("0123456789"), Some(32)));
        let plain = SrtUrl::parse("SRT://example.com:9000/").unwrap();
        assert_eq!((plain.stream_id, plain.latency_ms, plain.passphrase), (None, None, None));
    }

    #[test]
    fn microseconds_are_refused_naming_the_unit() {
        let e = SrtUrl::parse("srt://h:1?latency=120000").unwrap_err();
        assert_eq!(e.code(), ResultCode::KP_ERR_INVALID_URL);
        let m = e.to_string();
        assert!(m.contains("milliseconds") && m.contains("microseconds") && m.contains("latency=120"), "{m}");
        assert_eq!(SrtUrl::parse("srt://h:1?latency=60000").unwrap().latency_ms, Some(60000));
    }

    #[test]
    fn bad_urls_are_refused() {
        for (bad, code) in [
            ("srt://h?streamid=x", ResultCode::KP_ERR_INVALID_URL),
            ("srt://h:0", ResultCode::KP_ERR_INVALID_URL),
            ("srt://:9000", ResultCode::KP_ERR_INVALID_URL),
            ("srt://h:9000/live/key", ResultCode::KP_ERR_INVALID_URL),
            ("srt://h:9000?latency=abc", ResultCode::KP_ERR_INVALID_URL),
            ("srt://h:9000?passphrase=short", ResultCode::KP_ERR_INVALID_URL),
            ("srt://h:9000?passphrase=0123456789&pbkeylen=20", ResultCode::KP_ERR_INVALID_URL),
            ("srt://h:9000?pbkeylen=16", ResultCode::KP_ERR_INVALID_URL),
            ("srt://h:9000?streamid=%zz", ResultCode::KP_ERR_INVALID_URL),
            ("srt://h:9000?mode=listener", ResultCode::KP_ERR_UNSUPPORTED),
            ("srt://h:9000?transtype=file", ResultCode::KP_ERR_UNSUPPORTED),
            ("rtmp://h:9000", ResultCode::KP_ERR_INVALID_URL),
        ] {
            let e = SrtUrl::parse(bad).expect_err(bad);
            assert_eq!(e.code(), code, "{bad}: {e}");
        }
        let long = format!("srt://h:1?streamid={}", "x".repeat(513));
        assert!(SrtUrl::parse(&long).is_err());
    }

    #[test]
    fn secrets_never_show() {
        let url = "srt://h:1?streamid=%23!::r=live/supersecret,m=publish&passphrase=hunter2hunter2";
        let u = SrtUrl::parse(url).unwrap();
        for s in [u.redacted(), format!("{u}"), format!("{u:?}")] {
            assert!(!s.contains("supersecret") && !s.contains("hunter2"), "{s}");
        }
        let echoed = u.scrub("rejected stream live/supersecret (passphrase hunter2hunter2)");
        assert!(!echoed.contains("supersecret") && !echoed.contains("hunter2"), "{echoed}");
        let e = SrtUrl::parse("srt://h?streamid=supersecret&passphrase=hunter2hunter2").unwrap_err().to_string();
        assert!(!e.contains("supersecret") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn presets() {
        assert_eq!(StreamIdPreset::KP_SRT_STREAM_ID_SRS.stream_id("live/cam1"), "#!::r=live/cam1,m=publish");
        assert_eq!(StreamIdPreset::KP_SRT_STREAM_ID_MEDIAMTX.stream_id("/cam1"), "publish:cam1");
        assert_eq!(StreamIdPreset::KP_SRT_STREAM_ID_RAW.stream_id("x/y"), "x/y");
        assert!(StreamIdPreset::from_raw(3).is_err());
    }
}
