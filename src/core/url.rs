//! RTMP ingest URLs: `rtmp[s]://host[:port]/app[/instance]/stream-key[?query]`, and [`DestUrl`],
//! a destination URL of any transport (SRT URLs: `super::srt_url`).
//!
//! The last path segment plus the query string is the stream key (signed URLs carry their
//! signature in the query); everything between the authority and the key is the application.
//! The key is a secret: [`RtmpUrl::redacted`] is what goes into logs, events and messages.

use crate::error::{Error, Result};
use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    /// `rtmps`: TLS on the connection.
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Application name, including the instance when there is one (`live`, `live/_definst_`).
    pub app: String,
    /// Stream key including its query string (`key?sig=...`).
    pub stream_key: String,
}

impl RtmpUrl {
    pub fn parse(url: &str) -> Result<RtmpUrl> {
        let bad = |why: &str| Error::InvalidUrl(format!("{why} (in {})", redact_str(url)));
        if url.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(bad("control characters or spaces"));
        }
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("missing scheme"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "rtmp" => false,
            "rtmps" => true,
            _ => return Err(bad("scheme must be rtmp or rtmps")),
        };
        let (authority, path) = rest.split_once('/').ok_or_else(|| bad("missing application and stream key"))?;
        if authority.contains('@') {
            return Err(bad("user info in the authority is not supported"));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("bad host or port"))?;
        let port = port.unwrap_or(if tls { 443 } else { 1935 });
        // The query belongs to the key, whatever slashes it contains.
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        let path = path.trim_end_matches('/');
        let (app, key) = path.rsplit_once('/').ok_or_else(|| bad("missing stream key"))?;
        let app = app.trim_matches('/');
        if app.is_empty() {
            return Err(bad("missing application"));
        }
        if key.is_empty() {
            return Err(bad("missing stream key"));
        }
        let stream_key = match query {
            Some(q) => format!("{key}?{q}"),
            None => key.to_string(),
        };
        Ok(RtmpUrl { tls, host, port, app: app.to_string(), stream_key })
    }

    /// `tcUrl` as sent in `connect`: the URL without the stream key.
    pub fn tc_url(&self) -> String {
        let scheme = if self.tls { "rtmps" } else { "rtmp" };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        format!("{scheme}://{host}:{}/{}", self.port, self.app)
    }

    /// The URL with the stream key and query masked: safe for logs and events.
    pub fn redacted(&self) -> String {
        format!("{}/{}", self.tc_url(), mask_key(&self.stream_key))
    }

    /// `text` with every piece of the stream key and query masked: for text that did not come
    /// from us (a server's status description or command name, which some servers fill with the
    /// stream name) before it reaches a log, an event or an error.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in self.secrets() {
            if out.contains(secret) {
                out = out.replace(secret, "***");
            }
        }
        out
    }

    /// The key with its query, the key alone, the query, each `name=value` pair and each value,
    /// longest first (so a longer secret is masked whole before a part of it is). Pieces shorter
    /// than [`MIN_SECRET_LEN`] are left alone: masking every "1" or "live" would garble the text
    /// while hiding nothing.
    fn secrets(&self) -> Vec<&str> {
        let mut v = vec![self.stream_key.as_str()];
        let (key, query) = match self.stream_key.split_once('?') {
            Some((k, q)) => (k, Some(q)),
            None => (self.stream_key.as_str(), None),
        };
        v.push(key);
        if let Some(q) = query {
            v.push(q);
            for pair in q.split('&') {
                v.push(pair);
                if let Some((_, value)) = pair.split_once('=') {
                    v.push(value);
                }
            }
        }
        v.retain(|s| s.len() >= MIN_SECRET_LEN);
        v.sort_by_key(|s| std::cmp::Reverse(s.len()));
        v.dedup();
        v
    }
}

/// A destination URL of any transport: the scheme picks it (`rtmp`, `rtmps`, `srt`,
/// `whip+http`, `whip+https`).
#[derive(Clone, PartialEq, Eq)]
pub enum DestUrl {
    Rtmp(RtmpUrl),
    Srt(super::srt_url::SrtUrl),
    Whip(super::whip_url::WhipUrl),
}

impl DestUrl {
    pub fn parse(url: &str) -> Result<DestUrl> {
        let scheme = url.split_once("://").map_or("", |(s, _)| s);
        if scheme.eq_ignore_ascii_case("srt") {
            return super::srt_url::SrtUrl::parse(url).map(DestUrl::Srt);
        }
        if scheme.to_ascii_lowercase().starts_with("whip") {
            return super::whip_url::WhipUrl::parse(url).map(DestUrl::Whip);
        }
        RtmpUrl::parse(url)
            .map_err(|e| match (e, scheme) {
                (Error::InvalidUrl(m), s)
                    if !s.is_empty() && !s.eq_ignore_ascii_case("rtmp") && !s.eq_ignore_ascii_case("rtmps") =>
                {
                    Error::InvalidUrl(m.replace(
                        "scheme must be rtmp or rtmps",
                        "scheme must be rtmp, rtmps, srt, whip+http or whip+https",
                    ))
                }
                (e, _) => e,
            })
            .map(DestUrl::Rtmp)
    }

    pub fn host(&self) -> &str {
        match self {
            DestUrl::Rtmp(u) => &u.host,
            DestUrl::Srt(u) => &u.host,
            DestUrl::Whip(u) => &u.host,
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            DestUrl::Rtmp(u) => u.port,
            DestUrl::Srt(u) => u.port,
            DestUrl::Whip(u) => u.port,
        }
    }

    /// Safe for logs and events: no stream key, stream id or passphrase.
    pub fn redacted(&self) -> String {
        match self {
            DestUrl::Rtmp(u) => u.redacted(),
            DestUrl::Srt(u) => u.redacted(),
            DestUrl::Whip(u) => u.redacted(),
        }
    }

    /// `text` with this URL's secrets masked.
    pub fn scrub(&self, text: &str) -> String {
        match self {
            DestUrl::Rtmp(u) => u.scrub(text),
            DestUrl::Srt(u) => u.scrub(text),
            DestUrl::Whip(u) => u.scrub(text),
        }
    }
}

impl fmt::Debug for DestUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Secret pieces shorter than this are not masked inside foreign text by [`RtmpUrl::scrub`].
pub const MIN_SECRET_LEN: usize = 4;

impl fmt::Debug for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Keep the first 2 characters of a key so two streams can still be told apart in a log, but only
/// of a key of 8 characters or more: of a shorter one they would give away too much (of a key of
/// two multi-byte characters, all of it: the URL fuzz target found that).
pub fn mask_key(key: &str) -> String {
    let key = key.split('?').next().unwrap_or("");
    let visible: String = if key.chars().count() >= 8 { key.chars().take(2).collect() } else { String::new() };
    format!("{visible}***")
}

/// A raw URL string that did not parse, with what may be secret masked: user info (it may hold a
/// password), the last path segment (the stream key) and the query.
pub(crate) fn redact_str(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<not a URL>".to_string();
    };
    // User info ends at the last '@' before the path, even where a '?' comes first.
    let (userinfo, rest) = match rest[..rest.find('/').unwrap_or(rest.len())].rfind('@') {
        Some(at) => ("***@", &rest[at + 1..]),
        None => ("", rest),
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    // A "port" that is not a number may be a password typed without its '@'.
    let authority = match authority.rsplit_once(':') {
        Some((host, port)) if !port.bytes().all(|b| b.is_ascii_digit()) && !host.contains(':') => {
            format!("{userinfo}{host}:***")
        }
        _ => format!("{userinfo}{authority}"),
    };
    let (path, query) = match path.split_once('?') {
        Some((p, _)) => (p, "?***"),
        None => (path, ""),
    };
    match path.rsplit_once('/') {
        Some((app, key)) if !key.is_empty() => format!("{scheme}://{authority}{app}/{}", mask_key(key)),
        _ => format!("{scheme}://{authority}{path}{query}"),
    }
}

pub(crate) fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (h, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host.contains(['/', '[', ']']) {
        return None;
    }
    let port = match port {
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return None,
            Ok(p) => Some(p),
        },
        None => None,
    };
    Some((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_url_with_default_port() {
        let u = RtmpUrl::parse("rtmp://example.com/live/abc123").unwrap();
        assert!(!u.tls);
        assert_eq!(u.host, "example.com");
        assert_eq!(u.port, 1935);
        assert_eq!(u.app, "live");
        assert_eq!(u.stream_key, "abc123");
        assert_eq!(u.tc_url(), "rtmp://example.com:1935/live");
    }

    #[test]
    fn port_instance_and_query() {
        let u = RtmpUrl::parse("rtmps://127.0.0.1:4443/live/_definst_/key?sig=a/b&exp=1").unwrap();
        assert!(u.tls);
        assert_eq!(u.port, 4443);
        assert_eq!(u.app, "live/_definst_");
        assert_eq!(u.stream_key, "key?sig=a/b&exp=1");
        assert_eq!(RtmpUrl::parse("rtmps://h/app/k").unwrap().port, 443);
    }

    #[test]
    fn ipv6_host() {
        let u = RtmpUrl::parse("rtmp://[::1]:1936/app/k").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.port, 1936);
        assert_eq!(u.tc_url(), "rtmp://[::1]:1936/app");
    }

    #[test]
    fn bad_urls_are_rejected() {
        for bad in [
            "",
            "http://h/app/key",
            "rtmp://",
            "rtmp://host",
            "rtmp://host/",
            "rtmp://host/app",
            "rtmp://host/app/",
            "rtmp://host:0/app/key",
            "rtmp://host:99999/app/key",
            "rtmp://host:x/app/key",
            "rtmp://:1935/app/key",
            "rtmp://user:pw@host/app/key",
            "rtmp://host/app/ke y",
            "rtmp://[::1/app/key",
        ] {
            let e = RtmpUrl::parse(bad).expect_err(bad);
            assert_eq!(e.code(), crate::ResultCode::KP_ERR_INVALID_URL, "{bad}");
        }
    }

    #[test]
    fn the_key_never_shows() {
        let u = RtmpUrl::parse("rtmp://h/live/supersecretkey?token=hunter2").unwrap();
        for s in [u.redacted(), format!("{u}"), format!("{u:?}")] {
            assert!(!s.contains("supersecret"), "{s}");
            assert!(!s.contains("hunter2"), "{s}");
        }
        for bad in [
            "rtmp://h:bad/live/supersecretkey?token=hunter2",
            "rtmp://user:supersecret@h/live/k?token=hunter2",
            "rtmp://user:supersecret?token=hunter2",
            "rtmp://h?token=hunter2",
            "rtmp://h/live/supersecretkey with space?token=hunter2",
            "ftp://h/supersecretkey",
        ] {
            let msg = RtmpUrl::parse(bad).unwrap_err().to_string();
            assert!(!msg.contains("supersecret") && !msg.contains("hunter2"), "{msg}");
        }
        let msg = RtmpUrl::parse("rtmp://h:bad/live/supersecretkey?token=hunter2").unwrap_err().to_string();
        assert!(msg.ends_with("(in rtmp://h:***/live/su***)"), "{msg}");
        let msg = RtmpUrl::parse("rtmp://[::1/live/supersecretkey").unwrap_err().to_string();
        assert!(msg.ends_with("(in rtmp://[::1/live/su***)"), "{msg}");
    }

    #[test]
    fn a_short_key_shows_nothing_of_itself() {
        // The fuzz target's find: two 4-byte characters, 8 bytes, shown whole by "first 2 chars".
        let u = RtmpUrl::parse("rtmp://h/-//krtmp-//krtmps://ztp//////////////-/\u{4dad7}\u{4dad7}/").unwrap();
        assert_eq!(u.stream_key.chars().count(), 2);
        assert!(!u.redacted().contains(&u.stream_key), "{}", u.redacted());
        assert_eq!(mask_key("abc"), "***");
        assert_eq!(mask_key("abcdefgh?x=1"), "ab***");
    }

    #[test]
    fn scrub_masks_every_piece_of_the_key_and_query() {
        let u = RtmpUrl::parse("rtmp://h/live/supersecretkey?token=hunter2&exp=1").unwrap();
        for echoed in [
            "Stream supersecretkey?token=hunter2&exp=1 is now published",
            "publish supersecretkey denied",
            "bad signature token=hunter2",
            "hunter2",
            "args: token=hunter2&exp=1",
        ] {
            let s = u.scrub(echoed);
            assert!(!s.contains("supersecret") && !s.contains("hunter2"), "{echoed} -> {s}");
            assert!(s.contains("***"), "{s}");
        }
        // Short pieces and unrelated text are left as they are.
        assert_eq!(u.scrub("NetStream.Publish.Start 1 live"), "NetStream.Publish.Start 1 live");
    }
}
