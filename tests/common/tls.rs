//! A certificate authority made for one test run, and server certificates signed by it, for the
//! RTMPS tests (nginx terminates TLS with them; the pusher trusts the CA or, on purpose, does not).

use super::nginx::TlsListener;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

pub struct TestCa {
    cert: Certificate,
    key: KeyPair,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("self-sign CA");
        TestCa { cert, key }
    }

    /// The CA certificate, PEM: what the pusher is told to trust.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses) signed by this CA, valid now.
    pub fn server(&self, names: &[&str]) -> TlsListener {
        self.server_with(names, |_| {})
    }

    /// An expired server certificate for `names`: valid during 2020 only.
    pub fn expired_server(&self, names: &[&str]) -> TlsListener {
        self.server_with(names, |p| {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        })
    }

    fn server_with(&self, names: &[&str], tweak: impl FnOnce(&mut CertificateParams)) -> TlsListener {
        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("server params");
        params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("server"));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        tweak(&mut params);
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("sign server certificate");
        // nginx sends the whole file as the chain: leaf, then the CA.
        TlsListener { cert_pem: format!("{}{}", cert.pem(), self.cert.pem()), key_pem: key.serialize_pem() }
    }
}
