//! TLS for both connection kinds, with libpq's `sslmode` semantics on rustls.
//!
//! | sslmode     | encrypts          | verifies chain | verifies host name |
//! |-------------|-------------------|----------------|--------------------|
//! | disable     | no                | -              | -                  |
//! | allow       | if plain fails    | no             | no                 |
//! | prefer      | if server can     | no             | no                 |
//! | require     | yes               | only if a root certificate is present (as libpq) | no |
//! | verify-ca   | yes               | yes            | no                 |
//! | verify-full | yes               | yes            | yes                |
//!
//! One crypto provider (ring) is used everywhere, so builds need no C toolchain beyond what
//! ring itself needs, and the provider is passed explicitly rather than installed globally.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::conninfo::{ConnParams, SslMode};

/// A TLS setting that cannot work: what is wrong and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error(
        "sslmode={sslmode} verifies the server certificate, but no root certificate is set: \
         set sslrootcert=/path/to/root.crt (or PGSSLROOTCERT), or place it at ~/.postgresql/root.crt"
    )]
    MissingRootCert { sslmode: SslMode },
    #[error("cannot read certificate file {path}")]
    ReadCert {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("certificate file {path} holds no PEM certificate")]
    NoCertificates { path: PathBuf },
    #[error("cannot use the certificates of {path}")]
    BadCertificate {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("cannot read private key file {path}")]
    ReadKey {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("sslcert is set but sslkey is not: set both to use a client certificate")]
    ClientCertWithoutKey,
    #[error("cannot build the TLS configuration")]
    Build(#[source] rustls::Error),
    #[error("{host:?} is not a valid TLS server name")]
    InvalidServerName { host: String },
    #[error("sslrootcert=system, but no certificate could be loaded from the system store")]
    NoSystemRoots,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls configuration for `params`, or `None` when TLS is never to be used.
pub fn client_config(params: &ConnParams) -> Result<Option<Arc<ClientConfig>>, TlsConfigError> {
    let sslmode = params.sslmode;
    if sslmode == SslMode::Disable {
        return Ok(None);
    }
    let provider = provider();
    let root_cert = params.effective_sslrootcert();
    let verifier: Arc<dyn ServerCertVerifier> = match (sslmode, root_cert) {
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err(TlsConfigError::MissingRootCert { sslmode })
        }
        (SslMode::VerifyFull, Some(path)) => webpki_verifier(&roots(params, &path)?, &provider)?,
        // libpq: require with a root certificate present behaves as verify-ca.
        (SslMode::VerifyCa | SslMode::Require, Some(path)) => Arc::new(VerifyChainOnly {
            inner: webpki_verifier(&roots(params, &path)?, &provider)?,
        }),
        (_, _) => Arc::new(NoVerification {
            provider: provider.clone(),
        }),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsConfigError::Build)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&params.sslcert, &params.sslkey) {
        (Some(cert), Some(key)) => {
            let certs = read_certs(cert)?;
            let key =
                PrivateKeyDer::from_pem_file(key).map_err(|source| TlsConfigError::ReadKey {
                    path: key.clone(),
                    source,
                })?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|source| TlsConfigError::BadCertificate {
                    path: cert.clone(),
                    source,
                })?
        }
        (Some(_), None) => return Err(TlsConfigError::ClientCertWithoutKey),
        _ => builder.with_no_client_auth(),
    };
    Ok(Some(Arc::new(config)))
}

/// The name to send in SNI and verify against: a DNS name or an IP address.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsConfigError> {
    ServerName::try_from(host.to_owned()).map_err(|_| TlsConfigError::InvalidServerName {
        host: host.to_owned(),
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let read_err = |source| TlsConfigError::ReadCert {
        path: path.to_owned(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(read_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err)?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificates {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The trusted roots: the file `root_cert`, or the operating system's store for
/// `sslrootcert=system`.
fn roots(params: &ConnParams, root_cert: &Path) -> Result<RootCertStore, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    if params.uses_system_roots() {
        let loaded = rustls_native_certs::load_native_certs();
        let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
        if added == 0 {
            return Err(TlsConfigError::NoSystemRoots);
        }
        return Ok(roots);
    }
    for cert in read_certs(root_cert)? {
        roots
            .add(cert)
            .map_err(|source| TlsConfigError::BadCertificate {
                path: root_cert.to_owned(),
                source,
            })?;
    }
    Ok(roots)
}

fn webpki_verifier(
    roots: &RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, TlsConfigError> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots.clone()), provider.clone())
        .build()
        .map_err(|e| TlsConfigError::Build(rustls::Error::General(e.to_string())))
}

/// verify-ca: the chain must lead to the root certificate; the host name is not checked.
#[derive(Debug)]
struct VerifyChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for VerifyChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
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
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// prefer / require without a root certificate: encrypt, but trust any certificate, as libpq
/// does. The handshake signatures are still checked, so the peer must hold the key of the
/// certificate it presents.
#[derive(Debug)]
struct NoVerification {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
