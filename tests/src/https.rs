//! Certificates made at test time: a CA of the test's own, and certificates it signs for the
//! balancer, written where cluster.toml's `tls_cert` and `tls_key` name them.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// Where [`Issued::write`] puts the chain and the key, relative to cluster.toml.
pub const CERT_FILE: &str = "tls/cert.pem";
pub const KEY_FILE: &str = "tls/key.pem";

/// A certificate authority made for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate the test CA signed, and its key, PEM; `der` is what the server presents.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        TestCa { issuer }
    }

    /// The CA's certificate, PEM (what a client adds as a root: `curl --cacert`).
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA as a root for reqwest.
    pub fn root(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(self.pem().as_bytes()).unwrap()
    }

    /// A server certificate for `names` (DNS names or IP addresses), with a key of its own.
    pub fn issue(&self, names: &[&str]) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("test"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

impl Issued {
    /// Writes the chain and key next to cluster.toml in `dir` (the key mode 0600).
    pub fn write(&self, dir: &Path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir.join("tls")).unwrap();
        std::fs::write(dir.join(CERT_FILE), &self.cert_pem).unwrap();
        let key = dir.join(KEY_FILE);
        std::fs::write(&key, &self.key_pem).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// A line of the key's base64 body: what must never show in generated files or logs.
    pub fn key_line(&self) -> &str {
        self.key_pem.lines().nth(1).unwrap()
    }
}

/// The certificate the cluster's balancer presents over HTTPS (DER).
pub fn served_certificate(c: &crate::Cluster) -> Vec<u8> {
    c.rt.block_on(async {
        let client = c.client_builder().tls_info(true).build().unwrap();
        let r = client.get(c.url("/lb/health")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|i| i.peer_certificate())
            .expect("the TLS connection shows the server's certificate")
            .to_vec()
    })
}
