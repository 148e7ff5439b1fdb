//! TLS per sslmode against real servers, for both connection kinds: verification accepts the
//! cluster's CA and rejects an unrelated one, the server confirms the session is encrypted,
//! `require` never falls back to plain text, `prefer` does, and a verifying mode without a
//! root certificate is a configuration error that says how to set one.

use std::path::Path;

use ferry_pgwire::tls::TlsConfigError;
use ferry_pgwire::{connect_sql, ConnParams, Error, ReplicationClient, SqlConnectError};
use ferry_testkit::TempCluster;

const SSL_IN_USE: &str = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

/// Parses `url` as on a machine whose home is `home` and which sets no `PG*` variable, so the
/// tester's own `~/.postgresql/root.crt` or `PGSSLMODE` cannot change the outcome.
fn params(url: &str, home: &Path) -> ConnParams {
    let home = home.to_string_lossy().into_owned();
    let env = move |name: &str| (name == "HOME").then(|| home.clone());
    ConnParams::parse_with(url, &env, "nobody", &|path| path.exists()).unwrap()
}

/// A URL query value with everything but unreserved characters and `/` percent-encoded.
fn query_value(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `postgres@cluster` with the given sslmode and, if any, root certificate.
fn url(cluster: &TempCluster, sslmode: &str, root_cert: Option<&Path>) -> String {
    let mut url = format!(
        "{}?sslmode={sslmode}",
        cluster.url("postgres", None, "postgres")
    );
    if let Some(path) = root_cert {
        url.push_str("&sslrootcert=");
        url.push_str(&query_value(&path.to_string_lossy()));
    }
    url
}

fn tls_cluster() -> TempCluster {
    TempCluster::builder().tls(true).start().unwrap()
}

/// Whether the server sees the replication connection as encrypted.
async fn replication_ssl(client: &mut ReplicationClient) -> bool {
    let results = client.simple_query(SSL_IN_USE).await.unwrap();
    match results.first().and_then(|r| r.get(0, "ssl")) {
        Some("t") => true,
        Some("f") => false,
        other => panic!("unexpected pg_stat_ssl answer {other:?}"),
    }
}

/// Whether the server sees the SQL connection as encrypted.
async fn sql_ssl(client: &tokio_postgres::Client) -> bool {
    client.query_one(SSL_IN_USE, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn verify_full_with_the_cluster_ca_encrypts_both_connection_kinds() {
    let cluster = tls_cluster();
    let home = tempfile::tempdir().unwrap();
    let params = params(
        &url(&cluster, "verify-full", cluster.ca_cert_path()),
        home.path(),
    );

    let mut replication = ReplicationClient::connect(&params).await.unwrap();
    assert!(replication_ssl(&mut replication).await);
    assert!(!replication
        .identify_system()
        .await
        .unwrap()
        .xlog_pos
        .is_zero());
    replication.close().await;

    let sql = connect_sql(&params).await.unwrap();
    assert!(sql_ssl(&sql).await);
}

#[tokio::test]
async fn verify_full_rejects_a_certificate_from_another_ca() {
    let cluster = tls_cluster();
    let home = tempfile::tempdir().unwrap();
    let params = params(
        &url(&cluster, "verify-full", cluster.other_ca_cert_path()),
        home.path(),
    );

    let err = ReplicationClient::connect(&params).await.unwrap_err();
    assert!(
        matches!(err, Error::TlsHandshake { .. }),
        "expected a TLS handshake error, got {err:?}"
    );
    assert!(!err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn sql_connection_with_verify_full_rejects_another_ca_for_good() {
    let cluster = tls_cluster();
    let home = tempfile::tempdir().unwrap();
    let params = params(
        &url(&cluster, "verify-full", cluster.other_ca_cert_path()),
        home.path(),
    );

    let err = connect_sql(&params).await.unwrap_err();
    assert!(
        matches!(err, SqlConnectError::Connect { .. }),
        "expected a connect error, got {err:?}"
    );
    // A certificate that does not verify will not verify on retry either.
    assert!(!err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn verify_ca_with_the_cluster_ca_connects() {
    let cluster = tls_cluster();
    let home = tempfile::tempdir().unwrap();
    let params = params(
        &url(&cluster, "verify-ca", cluster.ca_cert_path()),
        home.path(),
    );

    let mut replication = ReplicationClient::connect(&params).await.unwrap();
    assert!(replication_ssl(&mut replication).await);
    replication.close().await;

    let sql = connect_sql(&params).await.unwrap();
    assert!(sql_ssl(&sql).await);
}

#[tokio::test]
async fn verify_ca_still_checks_the_chain() {
    let cluster = tls_cluster();
    let home = tempfile::tempdir().unwrap();
    let params = params(
        &url(&cluster, "verify-ca", cluster.other_ca_cert_path()),
        home.path(),
    );

    let err = ReplicationClient::connect(&params).await.unwrap_err();
    assert!(
        matches!(err, Error::TlsHandshake { .. }),
        "expected a TLS handshake error, got {err:?}"
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn require_against_a_server_without_tls_is_refused() {
    let cluster = TempCluster::new().unwrap();
    let home = tempfile::tempdir().unwrap();
    let params = params(&url(&cluster, "require", None), home.path());

    let err = ReplicationClient::connect(&params).await.unwrap_err();
    let Error::TlsRefused { sslmode, .. } = &err else {
        panic!("expected TlsRefused, got {err:?}");
    };
    assert_eq!(sslmode, "require");
    assert!(!err.is_transient());
    assert!(err.to_string().contains("sslmode=require"), "{err}");

    let err = connect_sql(&params).await.unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn prefer_against_a_server_without_tls_connects_in_plain_text() {
    let cluster = TempCluster::new().unwrap();
    let home = tempfile::tempdir().unwrap();
    let params = params(&url(&cluster, "prefer", None), home.path());

    let mut replication = ReplicationClient::connect(&params).await.unwrap();
    assert!(!replication_ssl(&mut replication).await);
    replication.close().await;

    let sql = connect_sql(&params).await.unwrap();
    assert!(!sql_ssl(&sql).await);
}

#[tokio::test]
async fn prefer_against_a_tls_server_encrypts() {
    let cluster = tls_cluster();
    let home = tempfile::tempdir().unwrap();
    let params = params(&url(&cluster, "prefer", None), home.path());

    let mut replication = ReplicationClient::connect(&params).await.unwrap();
    assert!(replication_ssl(&mut replication).await);
    replication.close().await;

    let sql = connect_sql(&params).await.unwrap();
    assert!(sql_ssl(&sql).await);
}

#[tokio::test]
async fn verify_full_without_a_root_certificate_says_how_to_set_one() {
    let cluster = tls_cluster();
    // An empty home: no ~/.postgresql/root.crt to fall back on.
    let home = tempfile::tempdir().unwrap();
    let params = params(&url(&cluster, "verify-full", None), home.path());
    assert_eq!(params.sslrootcert, None);

    let err = ReplicationClient::connect(&params).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::TlsConfig(TlsConfigError::MissingRootCert { .. })
        ),
        "expected MissingRootCert, got {err:?}"
    );
    assert!(!err.is_transient());
    let text = err.to_string();
    assert!(text.contains("sslrootcert="), "{text}");
    assert!(text.contains("verify-full"), "{text}");

    let err = connect_sql(&params).await.unwrap_err();
    assert!(
        matches!(
            err,
            SqlConnectError::Tls(TlsConfigError::MissingRootCert { .. })
        ),
        "expected MissingRootCert, got {err:?}"
    );
    assert!(!err.is_transient());
}
