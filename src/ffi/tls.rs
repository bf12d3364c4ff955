//! RTMPS settings of a `kp_config`. The functions exist in every build so the header does not
//! depend on features; without the `tls` feature they report KP_ERR_UNSUPPORTED.

use super::config::{config_mut, kp_config};
use super::error::null_arg;
use crate::Error;
use std::ffi::c_char;

ffi_fn! {
    /// Adds trusted CA certificates for rtmps:// URLs, for private ingests whose certificate is
    /// issued by an own CA; Mozilla's root certificates bundled in the library stay trusted. `pem` points
    /// to `len` bytes of PEM text (no NUL terminator needed) holding one or more CERTIFICATE blocks;
    /// other blocks are ignored. The bytes are copied and checked now. May be called several times.
    /// Errors: KP_ERR_INVALID_ARGUMENT if cfg or pem is NULL, len is 0, the text holds no certificate
    /// or a certificate is malformed; KP_ERR_UNSUPPORTED if the library was built without TLS.
    /// Not thread-safe for the same cfg; non-blocking.
    fn kp_config_add_ca_pem(cfg: *mut kp_config, pem: *const c_char, len: usize) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_add_ca_pem") }?;
        if pem.is_null() {
            return Err(null_arg("kp_config_add_ca_pem", "pem"));
        }
        if len == 0 {
            return Err(Error::InvalidArgument("kp_config_add_ca_pem: len is 0".into()));
        }
        // SAFETY: per the contract, pem points to len readable bytes for the duration of the call.
        let text = unsafe { std::slice::from_raw_parts(pem.cast::<u8>(), len) };
        #[cfg(feature = "tls")]
        {
            crate::io::tls::parse_ca_pem(text)?;
            cfg.inner.tls.extra_ca_pem.push(text.to_vec());
            Ok(())
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = (cfg, text);
            Err(Error::Unsupported("kp_config_add_ca_pem: this build has no TLS (feature `tls`)".into()))
        }
    }
}

ffi_fn! {
    /// Also trust the operating system's root certificates for rtmps:// URLs (besides the bundled
    /// ones and those added with kp_config_add_ca_pem). Off by default.
    /// Errors: KP_ERR_INVALID_ARGUMENT if cfg is NULL; KP_ERR_UNSUPPORTED when enabling it in a build
    /// without the `native-roots` feature. Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_tls_platform_roots(cfg: *mut kp_config, enable: bool) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_set_tls_platform_roots") }?;
        if enable && !cfg!(feature = "native-roots") {
            return Err(Error::Unsupported(
                "kp_config_set_tls_platform_roots: this build lacks the `native-roots` feature".into(),
            ));
        }
        cfg.inner.tls.platform_roots = enable;
        Ok(())
    }
}

ffi_fn! {
    /// DANGER, for lab use only: with `accept` true, rtmps:// connections accept ANY server
    /// certificate (self-signed, expired, or issued for another host). The stream stays encrypted, but
    /// anyone on the network path can pose as the ingest and read the stream key. Off by default; a
    /// warning is logged each time a destination builds its TLS settings with it on. Prefer
    /// kp_config_add_ca_pem for private ingests.
    /// Errors: KP_ERR_INVALID_ARGUMENT if cfg is NULL; KP_ERR_UNSUPPORTED when enabling it in a build
    /// without TLS. Not thread-safe for the same cfg; non-blocking.
    fn kp_config_set_tls_danger_accept_invalid_certs(cfg: *mut kp_config, accept: bool) -> kp_result {
        // SAFETY: per the contract above, cfg is NULL or a live kp_config.
        let cfg = unsafe { config_mut(cfg, "kp_config_set_tls_danger_accept_invalid_certs") }?;
        if accept && !cfg!(feature = "tls") {
            return Err(Error::Unsupported(
                "kp_config_set_tls_danger_accept_invalid_certs: this build has no TLS (feature `tls`)".into(),
            ));
        }
        cfg.inner.tls.danger_accept_invalid_certs = accept;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::config::{kp_config_free, kp_config_new};
    use crate::ResultCode::*;

    #[test]
    fn null_and_empty_arguments_are_refused() {
        let pem = c"-----BEGIN CERTIFICATE-----";
        // SAFETY: NULL configs and pointers are allowed inputs; cfg comes from kp_config_new.
        unsafe {
            let null = std::ptr::null_mut();
            assert_eq!(kp_config_add_ca_pem(null, pem.as_ptr(), 10), KP_ERR_INVALID_ARGUMENT as i32);
            assert_eq!(kp_config_set_tls_platform_roots(null, false), KP_ERR_INVALID_ARGUMENT as i32);
            assert_eq!(kp_config_set_tls_danger_accept_invalid_certs(null, true), KP_ERR_INVALID_ARGUMENT as i32);
            let cfg = kp_config_new();
            assert_eq!(kp_config_add_ca_pem(cfg, std::ptr::null(), 10), KP_ERR_INVALID_ARGUMENT as i32);
            assert_eq!(kp_config_add_ca_pem(cfg, pem.as_ptr(), 0), KP_ERR_INVALID_ARGUMENT as i32);
            kp_config_free(cfg);
        }
    }

    #[cfg(feature = "tls")]
    #[test]
    fn ca_pem_is_checked_and_copied() {
        let ca = rcgen::generate_simple_self_signed(vec!["ingest.test".to_string()]).unwrap();
        let mut pem = ca.cert.pem().into_bytes();
        // SAFETY: cfg comes from kp_config_new and is freed once; pem outlives each call.
        unsafe {
            let cfg = kp_config_new();
            let bad = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
            assert_eq!(kp_config_add_ca_pem(cfg, bad.as_ptr().cast(), bad.len()), KP_ERR_INVALID_ARGUMENT as i32);
            let msg = std::ffi::CStr::from_ptr(crate::ffi::error::kp_last_error_message()).to_string_lossy();
            assert!(msg.contains("CA PEM"), "{msg}");
            assert_eq!(kp_config_add_ca_pem(cfg, pem.as_ptr().cast(), pem.len()), 0);
            pem.iter_mut().for_each(|b| *b = 0);
            let stored = &(*cfg).inner.tls.extra_ca_pem;
            assert_eq!(stored.len(), 1);
            assert!(stored[0].starts_with(b"-----BEGIN CERTIFICATE-----"), "copied");
            assert_eq!(kp_config_set_tls_danger_accept_invalid_certs(cfg, true), 0);
            assert!((*cfg).inner.tls.danger_accept_invalid_certs);
            assert_eq!(kp_config_set_tls_danger_accept_invalid_certs(cfg, false), 0);
            assert!(!(*cfg).inner.tls.danger_accept_invalid_certs);
            let platform = kp_config_set_tls_platform_roots(cfg, true);
            if cfg!(feature = "native-roots") {
                assert_eq!(platform, 0);
                assert!((*cfg).inner.tls.platform_roots);
            } else {
                assert_eq!(platform, KP_ERR_UNSUPPORTED as i32);
            }
            kp_config_free(cfg);
        }
    }
}
