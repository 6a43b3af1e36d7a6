//! TLS for PostgreSQL connections with rustls (its `ring` provider; no
//! system OpenSSL), with libpq's `sslmode` meanings: `prefer` and `require`
//! encrypt without checking the certificate, `verify-ca` checks it chains to
//! a trusted root, `verify-full` also that it names the host. Roots come
//! from `sslrootcert` (a PEM file, or `system`), else the system's store
//! (`rustls-native-certs`, which honours `SSL_CERT_FILE`/`SSL_CERT_DIR`).

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    /// libpq's names (`allow` is refused when the address is parsed).
    pub(super) fn parse(text: &str) -> Option<SslMode> {
        Some(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// What tokio-postgres is told: whether TLS is tried and whether it must
    /// succeed (the checks are the verifier's).
    pub(super) fn negotiation(self) -> postgres::config::SslMode {
        match self {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                postgres::config::SslMode::Require
            }
        }
    }

    fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// Where trusted roots come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Roots {
    /// A PEM file of one or more CA certificates (`sslrootcert=FILE`).
    File(PathBuf),
    /// The system's store (`sslrootcert=system`, or none given).
    System,
}

impl Roots {
    pub(super) fn from_param(value: Option<&str>) -> Roots {
        match value {
            None | Some("system") => Roots::System,
            Some(path) => Roots::File(PathBuf::from(path)),
        }
    }
}

/// The connector for `mode`; roots are loaded only when it verifies. An
/// error (unreadable roots, no system roots) says why, naming files only.
pub(super) fn connector(mode: SslMode, roots: &Roots) -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = if mode.verifies() {
        let store = load_roots(roots)?;
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
            .build()
            .map_err(|e| format!("TLS roots: {e}"))?;
        Some(webpki)
    } else {
        None
    };
    let verifier: Arc<dyn ServerCertVerifier> = match chain {
        Some(webpki) if mode == SslMode::VerifyFull => webpki,
        chain => Arc::new(Lenient {
            chain,
            provider: provider.clone(),
        }),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

fn load_roots(roots: &Roots) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            let what = format!("sslrootcert {}", path.display());
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("{what}: {e}"))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("{what}: holds no usable certificate"));
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(
                    "no trusted root certificates found on this system: give the CA with sslrootcert=FILE"
                        .into(),
                );
            }
        }
    }
    Ok(store)
}

/// The modes that do not check the name: `prefer`/`require` accept any
/// certificate (`chain: None`; libpq's meaning, which guards against
/// passive listeners only), `verify-ca` one that chains to a trusted root.
/// Either way the handshake's signatures are checked against the
/// certificate presented.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // webpki checks the name after the chain, so a name error means the
        // chain was good.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_as_libpq_names_them() {
        for name in super::super::address::SSL_MODES {
            assert!(SslMode::parse(name).is_some(), "{name}");
        }
        assert_eq!(SslMode::parse("allow"), None);
    }

    #[test]
    fn a_roots_file_without_certificates_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = connector(SslMode::VerifyFull, &Roots::File(path.clone()))
            .err()
            .unwrap();
        assert!(err.contains(&path.display().to_string()), "{err}");
        let missing = dir.path().join("missing.pem");
        let err = connector(SslMode::VerifyCa, &Roots::File(missing))
            .err()
            .unwrap();
        assert!(err.contains("missing.pem"), "{err}");
        // Modes that do not verify never read it.
        assert!(connector(SslMode::Require, &Roots::File(path)).is_ok());
    }
}
