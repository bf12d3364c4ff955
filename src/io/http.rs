//! One blocking HTTP/1.1 request per connection, for WHIP's POST and DELETE: over [`Transport`],
//! so it has the connect deadline, the cancellation (network changed, stop) and the TLS settings
//! (custom CA, platform roots) every other transport has. Responses are parsed by `httparse`;
//! bodies come with `Content-Length`, chunked, or up to the close. No keep-alive, no
//! redirects here (the caller decides what a 307 means), no compression.

use super::transport::{Transport, WakeReceiver};
use crate::error::{Error, Result};
use std::time::{Duration, Instant};

/// An SDP answer is a few KiB; an endpoint sending more is not a WHIP endpoint.
const MAX_RESPONSE: usize = 256 * 1024;
const MAX_HEADERS: usize = 64;

pub struct Request<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub port: u16,
    /// The `Host` header's value.
    pub host_header: &'a str,
    /// Path and query.
    pub target: &'a str,
    /// Extra header lines, without CRLF (e.g. `Authorization: Bearer ...`).
    pub headers: &'a [String],
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of that (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Every header of that (lowercase) name.
    pub fn headers<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// How the request reaches the server.
pub struct Connection<'a> {
    #[cfg(feature = "tls")]
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    pub wake: Option<&'a WakeReceiver>,
    pub cancel: &'a mut dyn FnMut() -> Option<Error>,
}

/// Sends `req` on a new connection and reads the whole response by `deadline`.
pub fn exchange(req: &Request<'_>, conn: Connection<'_>, deadline: Instant) -> Result<Response> {
    let Connection { wake, cancel, .. } = conn;
    #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
    let mut t = Transport::connect_cancellable(req.host, req.port, deadline, wake, cancel)?;
    #[cfg(feature = "tls")]
    if let Some(config) = conn.tls {
        t.start_tls(config, req.host)?;
    }
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: kitepush/{}\r\nConnection: close\r\n",
        req.method,
        req.target,
        req.host_header,
        env!("CARGO_PKG_VERSION")
    );
    if let Some(ct) = req.content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    if !req.body.is_empty() || req.method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", req.body.len()));
    }
    for h in req.headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(req.body);
    let mut sent = 0;
    let mut buf = Vec::with_capacity(8 * 1024);
    let mut chunk = [0u8; 8 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Timeout(format!("no HTTP answer from {} within the deadline", req.host)));
        }
        if let Some(e) = cancel() {
            return Err(e);
        }
        while sent < out.len() {
            match t.write_some(&out[sent..])? {
                0 => break,
                n => sent += n,
            }
        }
        match t.read_some(&mut chunk) {
            Ok(Some(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > MAX_RESPONSE {
                    return Err(Error::Protocol(format!("HTTP response from {} over {MAX_RESPONSE} bytes", req.host)));
                }
                if let Some(r) = parse(&buf, false)? {
                    return Ok(r);
                }
                continue;
            }
            Ok(None) => {}
            // The server closed: what it sent is the whole response (a body delimited by the close).
            Err(Error::Io(_)) if !buf.is_empty() => {
                return parse(&buf, true)?
                    .ok_or_else(|| Error::Protocol(format!("truncated HTTP response from {}", req.host)));
            }
            Err(e) => return Err(e),
        }
        t.wait(sent < out.len(), wake, left.min(Duration::from_millis(100)));
    }
}

/// The response in `buf` once complete (`closed`: the server has closed, so a body without a
/// length ends here).
fn parse(buf: &[u8], closed: bool) -> Result<Option<Response>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Response::new(&mut headers);
    let head_len = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if closed => return Err(Error::Protocol("truncated HTTP response head".into())),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(Error::Protocol(format!("bad HTTP response: {e}"))),
    };
    let status = r.code.unwrap_or(0);
    let reason = r.reason.unwrap_or("").to_string();
    let headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).trim().to_string()))
        .collect();
    let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let rest = &buf[head_len..];
    // 1xx, 204 and 304 have no body.
    if (100..200).contains(&status) || status == 204 || status == 304 {
        if (100..200).contains(&status) {
            // An interim answer (100 Continue): the real one follows.
            return parse(rest, closed).map(|r| r.filter(|_| !rest.is_empty()));
        }
        return Ok(Some(Response { status, reason, headers, body: Vec::new() }));
    }
    let body = if find("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        match dechunk(rest)? {
            Some(b) => b,
            None if closed => return Err(Error::Protocol("truncated chunked HTTP body".into())),
            None => return Ok(None),
        }
    } else if let Some(len) = find("content-length") {
        let len: usize = len.parse().map_err(|_| Error::Protocol(format!("bad Content-Length {len:?}")))?;
        if rest.len() < len {
            if closed {
                return Err(Error::Protocol(format!("HTTP body cut at {} of {len} bytes", rest.len())));
            }
            return Ok(None);
        }
        rest[..len].to_vec()
    } else if closed {
        rest.to_vec()
    } else {
        return Ok(None);
    };
    Ok(Some(Response { status, reason, headers, body }))
}

/// A chunked body, once its last chunk has arrived.
fn dechunk(mut b: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    loop {
        match httparse::parse_chunk_size(b) {
            Ok(httparse::Status::Complete((used, 0))) => {
                // The trailer section ends with an empty line.
                let rest = &b[used..];
                return Ok(rest.windows(2).position(|w| w == b"\r\n").map(|_| out));
            }
            Ok(httparse::Status::Complete((used, size))) => {
                let size = size as usize;
                if b.len() < used + size + 2 {
                    return Ok(None);
                }
                out.extend_from_slice(&b[used..used + size]);
                b = &b[used + size + 2..];
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(Error::Protocol("bad chunk size in HTTP body".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn responses_with_length_chunks_or_close() {
        let r =
            parse(b"HTTP/1.1 201 Created\r\nLocation: /s/1\r\nContent-Length: 3\r\n\r\nabc", false).unwrap().unwrap();
        assert_eq!((r.status, r.header("location"), r.body.as_slice()), (201, Some("/s/1"), &b"abc"[..]));
        assert!(parse(b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nab", false).unwrap().is_none());
        let chunked = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse(chunked, false).unwrap().unwrap().body, b"abcde");
        assert!(parse(&chunked[..chunked.len() - 2], false).unwrap().is_none());
        let close = b"HTTP/1.0 200 OK\r\n\r\nv=0";
        assert!(parse(close, false).unwrap().is_none());
        assert_eq!(parse(close, true).unwrap().unwrap().body, b"v=0");
        let interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(parse(interim, false).unwrap().unwrap().status, 204);
        assert!(parse(b"SSH-2.0-OpenSSH\r\n\r\n", false).is_err());
    }

    #[test]
    fn a_post_to_a_real_socket() {
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            let mut got = Vec::new();
            let mut b = [0u8; 1024];
            while !got.ends_with(b"offer") {
                let n = s.read(&mut b).unwrap();
                got.extend_from_slice(&b[..n]);
            }
            s.write_all(b"HTTP/1.1 201 Created\r\nLocation: /x\r\nContent-Length: 6\r\n\r\nanswer").unwrap();
            String::from_utf8(got).unwrap()
        });
        let headers = ["Authorization: Bearer t0k".to_string()];
        let req = Request {
            method: "POST",
            host: "127.0.0.1",
            port,
            host_header: "127.0.0.1",
            target: "/whip/k",
            headers: &headers,
            content_type: Some("application/sdp"),
            body: b"offer",
        };
        let conn = Connection {
            #[cfg(feature = "tls")]
            tls: None,
            wake: None,
            cancel: &mut || None,
        };
        let r = exchange(&req, conn, Instant::now() + Duration::from_secs(5)).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (201, &b"answer"[..]));
        let sent = t.join().unwrap();
        assert!(sent.starts_with("POST /whip/k HTTP/1.1\r\nHost: 127.0.0.1\r\n"), "{sent}");
        assert!(sent.contains("Content-Type: application/sdp\r\nContent-Length: 5\r\n"), "{sent}");
        assert!(sent.contains("Authorization: Bearer t0k\r\n\r\noffer"), "{sent}");
    }
}
