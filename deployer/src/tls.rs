//! The balancer's TLS material: a certificate chain and its private key, read from PEM and
//! checked before anything reaches the engine — the files parse, the key belongs to the first
//! certificate, and what that certificate covers (names) and until when. Pure: bytes in,
//! typed values or a typed error out; the caller reads the files and judges dates and names.
//!
//! The key is held in a type whose `Debug` prints nothing of it and which never serializes.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Why a certificate chain or key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("no PEM certificate in it (`-----BEGIN CERTIFICATE-----`)")]
    NoCertificate,
    #[error("certificate {index} of the chain is not valid PEM/DER: {why}")]
    BadCertificate { index: usize, why: String },
    #[error("no PEM private key in it (`-----BEGIN PRIVATE KEY-----`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`)")]
    NoKey,
    #[error("the private key cannot be read: {0}")]
    BadKey(String),
    #[error("the private key is of a kind the balancer's check cannot use: {0}")]
    UnsupportedKey(String),
    #[error("the private key does not belong to the certificate: their public keys differ")]
    Mismatch,
}

/// The first certificate of a chain (the one the balancer presents), what it covers, and the
/// whole chain as read. Nothing here is secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Certificate {
    /// The chain as PEM, leaf first, exactly as the file holds it (certificates only).
    #[serde(skip)]
    chain_pem: String,
    /// How many certificates the chain holds.
    pub chain_len: usize,
    /// SHA-256 of the leaf's DER, lowercase hex: names this certificate in the nginx config.
    pub sha256: String,
    /// The leaf's subject, e.g. `CN=example.com`.
    pub subject: String,
    /// The names clients check: subjectAltName DNS names and IP addresses (the subject's CN
    /// only when there is no subjectAltName, as old certificates do).
    pub names: Vec<String>,
    /// Valid from / until, seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
}

impl Certificate {
    pub fn chain_pem(&self) -> &str {
        &self.chain_pem
    }

    /// Each certificate of the chain as DER, leaf first.
    pub fn chain_der(&self) -> Vec<Vec<u8>> {
        CertificateDer::pem_slice_iter(self.chain_pem.as_bytes())
            .filter_map(Result::ok)
            .map(|c| c.as_ref().to_vec())
            .collect()
    }

    /// `not_after` as a date, `2027-02-25`.
    pub fn expiry_date(&self) -> String {
        date(self.not_after)
    }

    /// Whether `host` (a DNS name or an IP address as text) is one this certificate covers,
    /// wildcards matching one label (`*.example.com` covers `a.example.com`).
    pub fn covers(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.names.iter().any(|n| {
            let n = n.to_ascii_lowercase();
            match n.strip_prefix("*.") {
                Some(suffix) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
                None => n == host,
            }
        })
    }
}

/// `secs` since the epoch as a calendar date (UTC).
pub fn date(secs: i64) -> String {
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A private key in PEM. Its `Debug` shows nothing of it; it never serializes.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey {
    pem: String,
    /// `ECDSA`, `RSA`, `Ed25519`.
    pub kind: String,
}

impl PrivateKey {
    pub fn pem(&self) -> &str {
        &self.pem
    }
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Reads a PEM certificate chain (leaf first); other PEM blocks are ignored.
pub fn read_chain(pem: &[u8]) -> Result<Certificate, TlsError> {
    let mut ders = Vec::new();
    for (i, c) in CertificateDer::pem_slice_iter(pem).enumerate() {
        ders.push(c.map_err(|e| TlsError::BadCertificate {
            index: i + 1,
            why: e.to_string(),
        })?);
    }
    let leaf = ders.first().ok_or(TlsError::NoCertificate)?;
    for (i, der) in ders.iter().enumerate() {
        x509_parser::parse_x509_certificate(der).map_err(|e| TlsError::BadCertificate {
            index: i + 1,
            why: e.to_string(),
        })?;
    }
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf).map_err(|e| TlsError::BadCertificate {
            index: 1,
            why: e.to_string(),
        })?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(n) => names.push(n.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(ip) => {
                    if let Some(ip) = ip_text(ip) {
                        names.push(ip);
                    }
                }
                _ => {}
            }
        }
    }
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok().map(str::to_string)),
        );
    }
    let chain_pem = ders
        .iter()
        .map(|d| pem_block("CERTIFICATE", d))
        .collect::<String>();
    Ok(Certificate {
        chain_len: ders.len(),
        sha256: hex::encode(Sha256::digest(leaf.as_ref())),
        subject: cert.subject().to_string(),
        names,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        chain_pem,
    })
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    Some(match bytes.len() {
        4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?).to_string(),
        16 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?).to_string(),
        _ => return None,
    })
}

/// One PEM block, 64 columns of base64.
fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Reads the first PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub fn read_key(pem: &[u8]) -> Result<PrivateKey, TlsError> {
    let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey,
        e => TlsError::BadKey(e.to_string()),
    })?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| TlsError::UnsupportedKey(e.to_string()))?;
    let kind = format!("{:?}", signing.algorithm());
    let label = match &key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    Ok(PrivateKey {
        pem: pem_block(label, key.secret_der()),
        kind,
    })
}

/// Whether `key` is the private key of the chain's first certificate.
pub fn check_pair(cert: &Certificate, key: &PrivateKey) -> Result<(), TlsError> {
    let der = PrivateKeyDer::from_pem_slice(key.pem.as_bytes())
        .map_err(|e| TlsError::BadKey(e.to_string()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| TlsError::UnsupportedKey(e.to_string()))?;
    let chain = cert
        .chain_der()
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    match rustls::sign::CertifiedKey::new(chain, signing).keys_match() {
        Ok(()) => Ok(()),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::Mismatch)
        }
        Err(e) => Err(TlsError::UnsupportedKey(e.to_string())),
    }
}

/// A TLS client configuration that accepts exactly the server certificate `leaf` (DER): the
/// handshake's signatures are checked as usual, the certificate is compared byte for byte
/// instead of chained to a root and matched to a name. For checking that a server presents
/// the certificate it was given, not for browsing.
pub fn pinned_client(leaf: Vec<u8>) -> rustls::ClientConfig {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(Pinned { leaf, provider }))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

#[derive(Debug)]
struct Pinned {
    leaf: Vec<u8>,
    provider: std::sync::Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.leaf.as_slice() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Certificates made at test time.

    /// A self-signed certificate for `names`, valid from `from` to `until` (Unix seconds),
    /// and its key, both PEM.
    pub fn self_signed(names: &[&str], from: i64, until: i64) -> (String, String) {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.not_before = rcgen::date_time_ymd(1970, 1, 1) + time_secs(from);
        params.not_after = rcgen::date_time_ymd(1970, 1, 1) + time_secs(until);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn time_secs(s: i64) -> std::time::Duration {
        std::time::Duration::from_secs(s.max(0) as u64)
    }

    pub fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{now, self_signed};
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn a_chain_and_its_key_are_read_and_match() {
        let (cert, key) = self_signed(&["localhost", "127.0.0.1"], now() - DAY, now() + 90 * DAY);
        let c = read_chain(cert.as_bytes()).unwrap();
        assert_eq!(c.names, ["localhost", "127.0.0.1"]);
        assert_eq!(c.chain_len, 1);
        assert_eq!(c.sha256.len(), 64);
        let k = read_key(key.as_bytes()).unwrap();
        assert_eq!(check_pair(&c, &k), Ok(()));
        assert!(!format!("{k:?}").contains("BEGIN"), "{k:?}");
        assert!(c.covers("LOCALHOST") && c.covers("127.0.0.1") && !c.covers("example.com"));
    }

    #[test]
    fn another_key_is_a_mismatch() {
        let (cert, _) = self_signed(&["a.example"], now(), now() + DAY);
        let (_, other) = self_signed(&["a.example"], now(), now() + DAY);
        let c = read_chain(cert.as_bytes()).unwrap();
        let k = read_key(other.as_bytes()).unwrap();
        assert_eq!(check_pair(&c, &k), Err(TlsError::Mismatch));
    }

    #[test]
    fn files_without_pem_are_refused() {
        assert_eq!(read_chain(b"hello").unwrap_err(), TlsError::NoCertificate);
        assert_eq!(read_key(b"hello").unwrap_err(), TlsError::NoKey);
        let (cert, key) = self_signed(&["a.example"], now(), now() + DAY);
        // A key where the certificate belongs, and the other way round.
        assert_eq!(
            read_chain(key.as_bytes()).unwrap_err(),
            TlsError::NoCertificate
        );
        assert_eq!(read_key(cert.as_bytes()).unwrap_err(), TlsError::NoKey);
        let broken = cert.replace(&cert[40..60], "AAAAAAAAAAAAAAAAAAAA");
        assert!(matches!(
            read_chain(broken.as_bytes()),
            Err(TlsError::BadCertificate { index: 1, .. })
        ));
    }

    #[test]
    fn wildcards_cover_one_label() {
        let (cert, _) = self_signed(&["*.example.com"], now(), now() + DAY);
        let c = read_chain(cert.as_bytes()).unwrap();
        assert!(c.covers("api.example.com"));
        assert!(!c.covers("example.com") && !c.covers("a.b.example.com"));
    }

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_795_000_000), "2026-11-18");
        assert_eq!(date(951_782_400), "2000-02-29");
    }
}
