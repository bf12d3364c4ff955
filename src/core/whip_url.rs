//! WHIP endpoint URLs as destinations: `whip+http://host[:port]/path[?query]` or
//! `whip+https://...`. The prefix picks the transport (RFC 9725 has no scheme of its own); the
//! rest is the HTTP(S) endpoint the SDP offer is POSTed to.
//!
//! Endpoints often carry the stream's credential in the path (`/whip/<stream key>`) or the
//! query, so the last path segment and the query are secrets like an RTMP stream key:
//! [`WhipUrl::redacted`] and [`WhipUrl::scrub`] keep them out of logs, events and messages. The
//! bearer token lives in the configuration, never in the URL.

use super::url::{mask_key, redact_str, split_host_port, MIN_SECRET_LEN};
use crate::error::{Error, Result};
use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct WhipUrl {
    /// `whip+https`: the POST and DELETE go over TLS (the media is DTLS-SRTP either way).
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The request target: path and query, starting with `/`.
    pub target: String,
}

impl WhipUrl {
    pub fn parse(url: &str) -> Result<WhipUrl> {
        let bad = |why: &str| Error::InvalidUrl(format!("{why} (in {})", redact_str(url)));
        if url.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(bad("control characters or spaces"));
        }
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("missing scheme"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "whip+http" => false,
            "whip+https" => true,
            _ => return Err(bad("scheme must be whip+http or whip+https")),
        };
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(end);
        if authority.contains('@') {
            return Err(bad("user info in the authority is not supported (put a bearer token in the config)"));
        }
        if target.contains('#') {
            return Err(bad("a fragment (#...) is never sent to an HTTP endpoint"));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("bad host or port"))?;
        let target = match target {
            "" => "/".to_string(),
            t if t.starts_with('?') => format!("/{t}"),
            t => t.to_string(),
        };
        Ok(WhipUrl { tls, host, port: port.unwrap_or(if tls { 443 } else { 80 }), target })
    }

    /// `http(s)://host:port`: what a relative `Location` is resolved against.
    pub fn origin(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        format!("{}://{host}:{}", if self.tls { "https" } else { "http" }, self.port)
    }

    /// The `Host` header's value.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// A `Location` (or redirect) as the server wrote it, resolved against this URL: absolute
    /// `http(s)://` URLs, `//authority/...` and paths (absolute, or relative to this one's).
    pub fn resolve(&self, location: &str) -> Result<WhipUrl> {
        let lower = location.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return WhipUrl::parse(&format!("whip+{location}"));
        }
        if let Some(rest) = location.strip_prefix("//") {
            return WhipUrl::parse(&format!("whip+{}://{rest}", if self.tls { "https" } else { "http" }));
        }
        let target = if location.starts_with('/') {
            location.to_string()
        } else {
            let path = self.target.split('?').next().unwrap_or("/");
            let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
            format!("{}{location}", if dir.is_empty() { "/" } else { dir })
        };
        if target.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(Error::Protocol("the endpoint sent a location with control characters or spaces".into()));
        }
        Ok(WhipUrl { target, ..self.clone() })
    }

    /// Safe for logs and events: the last path segment and the query masked.
    pub fn redacted(&self) -> String {
        let scheme = if self.tls { "whip+https" } else { "whip+http" };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let path = self.target.split('?').next().unwrap_or("");
        let query = if self.target.contains('?') { "?***" } else { "" };
        match path.rsplit_once('/') {
            Some((dir, last)) if !last.is_empty() => format!("{scheme}://{host}:{}{dir}/{}", self.port, mask_key(last)),
            _ => format!("{scheme}://{host}:{}{path}{query}", self.port),
        }
    }

    /// `text` with the URL's secret pieces masked: for text that did not come from us (an error
    /// body from the endpoint) before it reaches a log, an event or an error.
    pub fn scrub(&self, text: &str) -> String {
        let path = self.target.split('?').next().unwrap_or("");
        let mut secrets: Vec<&str> = path.rsplit('/').take(1).collect();
        if let Some((_, q)) = self.target.split_once('?') {
            secrets.push(q);
            for pair in q.split('&') {
                secrets.push(pair);
                secrets.extend(pair.split_once('=').map(|(_, v)| v));
            }
        }
        secrets.retain(|s| s.len() >= MIN_SECRET_LEN);
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut out = text.to_string();
        for s in secrets {
            if out.contains(s) {
                out = out.replace(s, "***");
            }
        }
        out
    }
}

impl fmt::Debug for WhipUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_keep_their_secrets_out_of_logs() {
        let u = WhipUrl::parse("whip+http://127.0.0.1:8080/whip/streamkey123?token=abcdef").unwrap();
        assert!(!u.tls);
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 8080));
        assert_eq!(u.target, "/whip/streamkey123?token=abcdef");
        assert_eq!(u.redacted(), "whip+http://127.0.0.1:8080/whip/st***");
        assert_eq!(u.scrub("bad key streamkey123, token abcdef"), "bad key ***, token ***");
        let s = WhipUrl::parse("WHIP+HTTPS://[::1]/ingest").unwrap();
        assert!(s.tls);
        assert_eq!((s.host.as_str(), s.port, s.target.as_str()), ("::1", 443, "/ingest"));
        assert_eq!(s.host_header(), "[::1]");
        assert_eq!(WhipUrl::parse("whip+http://h").unwrap().target, "/");
        for bad in ["http://h/x", "whip://h/x", "whip+http://user:pw@h/x", "whip+http://h:0/x", "whip+http://h/a b"] {
            let e = WhipUrl::parse(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidUrl(_)), "{bad}: {e}");
            assert!(!e.to_string().contains("pw"), "{e}");
        }
    }

    #[test]
    fn locations_resolve_against_the_endpoint() {
        let u = WhipUrl::parse("whip+http://127.0.0.1:8080/whip/key?x=1").unwrap();
        assert_eq!(u.resolve("/session/7").unwrap().target, "/session/7");
        assert_eq!(u.resolve("session/7").unwrap().target, "/whip/session/7");
        let abs = u.resolve("https://edge.example:8443/r/1").unwrap();
        assert!(abs.tls);
        assert_eq!((abs.host.as_str(), abs.port, abs.target.as_str()), ("edge.example", 8443, "/r/1"));
        let auth = u.resolve("//other:81/p").unwrap();
        assert_eq!((auth.host.as_str(), auth.port, auth.tls), ("other", 81, false));
        assert!(u.resolve("/a\r\nb").is_err());
    }
}
