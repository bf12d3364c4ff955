//! RTMPS: rustls on top of the non-blocking socket of [`super::Transport`].
//!
//! rustls' `ClientConnection` does no I/O of its own, so it runs inside the same poll(2) loop as
//! plain RTMP: the handshake is driven by the network worker's ordinary reads and writes, and so
//! obeys the connect deadline and wakes up for stop() like any other step of the connect.
//!
//! Crypto provider: `ring`. aws-lc-rs (rustls' default) needs cmake (and Go or a pre-generated
//! source tree) to build, cross-compiles with more effort for Android/iOS, and makes a larger
//! binary; ring is plain C and assembly built by `cc`, and is all an RTMPS client needs.

use crate::error::{Error, Result};
use crate::io::tls_config::TlsConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

/// The certificates in a PEM text (other blocks, such as keys, are ignored). An empty result or a
/// malformed certificate block is an error: a CA the app meant to trust must not be lost silently.
pub fn parse_ca_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::InvalidArgument(format!("CA PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::InvalidArgument("CA PEM: no CERTIFICATE block found".into()));
    }
    // Parse each one now, so a broken certificate is reported by the call that added it.
    let mut check = RootCertStore::empty();
    for c in &certs {
        check.add(c.clone()).map_err(|e| Error::InvalidArgument(format!("CA PEM: unusable certificate: {e}")))?;
    }
    Ok(certs)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls client settings for `cfg`. Built once per destination and reused across reconnects,
/// so TLS session resumption can shorten the handshake after an outage.
pub fn client_config(cfg: &TlsConfig) -> Result<Arc<ClientConfig>> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS setup: {e}")))?;
    let config = if cfg.danger_accept_invalid_certs {
        log::warn!(
            "RTMPS certificate verification is OFF (danger_accept_invalid_certs): anyone on the network path can \
             impersonate the ingest and read the stream key"
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        builder.with_root_certificates(root_store(cfg)?).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

fn root_store(cfg: &TlsConfig) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if cfg.platform_roots {
        add_platform_roots(&mut roots)?;
    }
    for pem in &cfg.extra_ca_pem {
        for cert in parse_ca_pem(pem)? {
            roots.add(cert).map_err(|e| Error::InvalidArgument(format!("CA PEM: unusable certificate: {e}")))?;
        }
    }
    Ok(roots)
}

#[cfg(feature = "native-roots")]
fn add_platform_roots(roots: &mut RootCertStore) -> Result<()> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        log::warn!("platform root certificates: {e}");
    }
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    log::debug!("platform root certificates: {added} added, {ignored} unusable");
    Ok(())
}

#[cfg(not(feature = "native-roots"))]
fn add_platform_roots(_: &mut RootCertStore) -> Result<()> {
    Err(Error::Unsupported("platform root certificates need the `native-roots` feature".into()))
}

/// `danger_accept_invalid_certs`: the chain, host name and dates go unchecked. The handshake
/// signatures are still verified against the presented key, so the TLS session itself is sound —
/// only the server's identity is not.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One TLS client session over a non-blocking socket.
pub struct TlsSession {
    conn: ClientConnection,
    /// Encrypted bytes rustls produced that the socket has not taken yet. Plaintext is accepted
    /// only while this is empty, so backpressure (and the stall detector) still see the socket.
    out: Vec<u8>,
    host: String,
}

impl TlsSession {
    pub fn new(config: Arc<ClientConfig>, host: &str) -> Result<TlsSession> {
        // A DNS name is sent as SNI and checked against the certificate; an IP address is checked
        // against the certificate's IP addresses (and, per RFC 6066, not sent as SNI).
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| Error::Tls(format!("{host} is not usable as a TLS server name: {e}")))?;
        let conn = ClientConnection::new(config, name).map_err(|e| Error::Tls(format!("TLS setup for {host}: {e}")))?;
        Ok(TlsSession { conn, out: Vec::with_capacity(20 * 1024), host: host.to_string() })
    }

    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// The TLS close alert goes out with the next flush.
    pub fn queue_close_notify(&mut self) {
        self.conn.send_close_notify();
    }

    /// Encrypted output is waiting for the socket.
    pub fn wants_write(&self) -> bool {
        !self.out.is_empty() || self.conn.wants_write()
    }

    /// Encrypted bytes held here (not yet in the kernel's send buffer).
    pub fn buffered(&self) -> usize {
        self.out.len()
    }

    /// Move encrypted bytes to the socket until it would block. True when nothing is left.
    pub fn flush(&mut self, sock: &mut TcpStream) -> Result<bool> {
        loop {
            if self.out.is_empty() {
                if !self.conn.wants_write() {
                    return Ok(true);
                }
                // Writing into a Vec cannot fail.
                let _ = self.conn.write_tls(&mut self.out);
                if self.out.is_empty() {
                    return Ok(true);
                }
            }
            match sock.write(&self.out) {
                Ok(0) => return Err(Error::Io("write: the socket accepts no more data".into())),
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if would_block(&e) => return Ok(false),
                Err(e) => return Err(Error::from_io("write", &e)),
            }
        }
    }

    /// Encrypt what fits of `buf` (none while earlier records still wait for the socket) and send
    /// what the socket takes. Ok(0) means it would block.
    pub fn write(&mut self, sock: &mut TcpStream, buf: &[u8]) -> Result<usize> {
        if !self.flush(sock)? {
            return Ok(0);
        }
        let n = self.conn.writer().write(buf).map_err(|e| Error::Tls(format!("encrypt: {e}")))?;
        self.flush(sock)?;
        Ok(n)
    }

    /// Decrypted bytes that have arrived. Ok(None) means nothing yet; a closed connection is an
    /// error, as for plain TCP.
    pub fn read(&mut self, sock: &mut TcpStream, buf: &mut [u8]) -> Result<Option<usize>> {
        // Handshake replies and alerts queued by the last read go out first.
        self.flush(sock)?;
        let mut eof = false;
        loop {
            match self.conn.reader().read(buf) {
                Ok(0) => return Err(Error::Io("connection closed by the server (TLS close_notify)".into())),
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !eof => {}
                Err(_) => return Err(Error::Io("connection closed by the server".into())),
            }
            match self.conn.read_tls(sock) {
                Ok(0) => eof = true,
                Ok(_) => {}
                Err(e) if would_block(&e) => return Ok(None),
                Err(e) => return Err(Error::from_io("read", &e)),
            }
            if let Err(e) = self.conn.process_new_packets() {
                // Tell the server why (a certificate alert shows in its log), best effort.
                let _ = self.flush(sock);
                return Err(self.describe(e));
            }
            self.flush(sock)?;
        }
    }

    /// A TLS failure as an error whose message says what is wrong in words an app developer acts
    /// on, followed by rustls' own detail.
    fn describe(&self, e: rustls::Error) -> Error {
        use rustls::CertificateError as C;
        let host = &self.host;
        let why = match &e {
            rustls::Error::InvalidCertificate(c) => match c {
                C::UnknownIssuer => format!(
                    "the certificate of {host} is not signed by a trusted authority (unknown issuer); for a \
                     private ingest, add its CA certificate to the config"
                ),
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    format!("the certificate presented is not valid for the host name {host} (wrong host)")
                }
                C::Expired | C::ExpiredContext { .. } => format!("the certificate of {host} has expired"),
                C::NotValidYet | C::NotValidYetContext { .. } => {
                    format!("the certificate of {host} is not valid yet (is the device clock right?)")
                }
                C::Revoked => format!("the certificate of {host} has been revoked"),
                C::BadSignature => format!("the certificate of {host} has a bad signature"),
                _ => format!("the certificate of {host} was rejected"),
            },
            rustls::Error::NoCertificatesPresented => format!("{host} presented no certificate"),
            rustls::Error::AlertReceived(a) => format!("{host} ended the TLS session with alert {a:?}"),
            rustls::Error::InvalidMessage(_)
            | rustls::Error::InappropriateMessage { .. }
            | rustls::Error::InappropriateHandshakeMessage { .. }
                if self.conn.is_handshaking() =>
            {
                format!("{host} does not answer as a TLS server on this port")
            }
            _ if self.conn.is_handshaking() => format!("TLS handshake with {host} failed"),
            _ => format!("TLS session with {host} failed"),
        };
        Error::Tls(format!("{why} ({e})"))
    }
}

fn would_block(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_ca_pem_is_refused() {
        assert!(parse_ca_pem(b"").is_err());
        assert!(parse_ca_pem(b"not a pem").is_err());
        let broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let e = parse_ca_pem(broken).unwrap_err();
        assert_eq!(e.code(), crate::ResultCode::KP_ERR_INVALID_ARGUMENT, "{e}");
    }

    #[test]
    fn default_config_trusts_the_bundled_roots() {
        let c = client_config(&TlsConfig::default()).unwrap();
        assert!(c.alpn_protocols.is_empty());
        assert!(webpki_roots::TLS_SERVER_ROOTS.len() > 50);
    }

    #[test]
    fn platform_roots_follow_the_feature() {
        let cfg = TlsConfig { platform_roots: true, ..TlsConfig::default() };
        let r = client_config(&cfg);
        if cfg!(feature = "native-roots") {
            r.unwrap();
        } else {
            assert_eq!(r.unwrap_err().code(), crate::ResultCode::KP_ERR_UNSUPPORTED);
        }
    }
}
