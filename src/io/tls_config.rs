//! The TLS settings of `rtmps://` destinations (the pusher's config re-exports them).

/// RTMPS settings (used by `rtmps://` URLs; feature `tls`). The server's certificate is verified by
/// default: against Mozilla's root certificates bundled in the library, for the URL's host name.
#[derive(Clone, PartialEq, Default)]
pub struct TlsConfig {
    /// More trusted CA certificates, each entry a PEM text with one or more certificates: for
    /// private ingests whose certificate comes from an own CA. The bundled roots stay trusted.
    pub extra_ca_pem: Vec<Vec<u8>>,
    /// Also trust the operating system's root store (feature `native-roots`; without it,
    /// validate() refuses this with Unsupported).
    pub platform_roots: bool,
    /// DANGER, lab use only: accept any server certificate (untrusted, expired or for another
    /// host). The stream is still encrypted, but anyone on the path can pose as the ingest and read
    /// the stream key. Logged as a warning when a destination first connects with it.
    pub danger_accept_invalid_certs: bool,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("extra_ca_pem", &format_args!("{} PEM text(s)", self.extra_ca_pem.len()))
            .field("platform_roots", &self.platform_roots)
            .field("danger_accept_invalid_certs", &self.danger_accept_invalid_certs)
            .finish()
    }
}
