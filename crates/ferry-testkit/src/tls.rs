//! Test certificates: a throwaway CA and a server certificate it signs.
//!
//! The server certificate names `localhost` and `127.0.0.1`, so clients can connect with
//! `sslmode=verify-full` to either. The CA certificate is written world-readable outside the
//! data directory (clients of any user may read it); the server key is mode 0600 and owned by
//! the server user, which PostgreSQL insists on. A second, unrelated CA lets tests check that
//! verification really rejects a server it should not trust.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

use crate::error::TestkitError;
use crate::process::{set_mode, ServerUser};

/// A CA that can sign certificates.
struct TestCa {
    cert: Certificate,
    key: KeyPair,
}

impl TestCa {
    fn generate(common_name: &str) -> Result<Self, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.distinguished_name = named(common_name);
        let cert = params.self_signed(&key)?;
        Ok(Self { cert, key })
    }
}

fn named(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

/// Paths of the CA certificates written for a TLS cluster.
pub(crate) struct ClusterCerts {
    pub(crate) ca_cert: PathBuf,
    pub(crate) other_ca_cert: PathBuf,
}

/// Writes `server.crt` and `server.key` into `data_dir`, and the CA certificate plus an
/// unrelated CA certificate into `public_dir`.
pub(crate) fn write_cluster_certs(
    data_dir: &Path,
    public_dir: &Path,
    user: &ServerUser,
) -> Result<ClusterCerts, TestkitError> {
    let ca = TestCa::generate("ferry-testkit CA").map_err(TestkitError::Certificate)?;
    let server_key = KeyPair::generate().map_err(TestkitError::Certificate)?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .map_err(TestkitError::Certificate)?;
    params.distinguished_name = named("localhost");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = params
        .signed_by(&server_key, &ca.cert, &ca.key)
        .map_err(TestkitError::Certificate)?;

    let crt = data_dir.join("server.crt");
    let key = data_dir.join("server.key");
    write(&crt, &server_cert.pem(), 0o644)?;
    write(&key, &server_key.serialize_pem(), 0o600)?;
    user.chown(&crt)?;
    user.chown(&key)?;

    let ca_cert = public_dir.join("ca.crt");
    write(&ca_cert, &ca.cert.pem(), 0o644)?;
    let other_ca_cert = write_unrelated_ca(public_dir)?;
    Ok(ClusterCerts {
        ca_cert,
        other_ca_cert,
    })
}

/// Writes the certificate of a fresh CA that signed nothing into `dir/other-ca.crt` and
/// returns its path: a root that must make `sslmode=verify-full` (or verify-ca) fail.
pub fn write_unrelated_ca(dir: &Path) -> Result<PathBuf, TestkitError> {
    let ca = TestCa::generate("ferry-testkit unrelated CA").map_err(TestkitError::Certificate)?;
    let path = dir.join("other-ca.crt");
    write(&path, &ca.cert.pem(), 0o644)?;
    Ok(path)
}

fn write(path: &Path, contents: &str, mode: u32) -> Result<(), TestkitError> {
    fs::write(path, contents).map_err(TestkitError::io(format!("write {}", path.display())))?;
    set_mode(path, mode)
}
