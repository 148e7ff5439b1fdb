//! A TLS cluster serves a certificate that verifies against its CA and not another one.

use ferry_testkit::TempCluster;

#[test]
fn tls_cluster_verifies_against_its_ca_only() {
    let cluster = TempCluster::builder().tls(true).start().unwrap();
    assert_eq!(cluster.psql("show ssl").unwrap(), "on\n");

    let ca = cluster.ca_cert_path().unwrap();
    let conninfo = |root: &std::path::Path| {
        format!(
            "host=localhost hostaddr=127.0.0.1 port={} user=postgres dbname=postgres sslmode=verify-full sslrootcert={}",
            cluster.port(),
            root.display()
        )
    };
    let ssl = cluster
        .psql_with(
            &conninfo(ca),
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
        )
        .unwrap();
    assert_eq!(ssl, "t\n");

    let err = cluster
        .psql_with(&conninfo(cluster.other_ca_cert_path().unwrap()), "select 1")
        .unwrap_err();
    assert!(
        err.to_string().contains("certificate verify failed"),
        "{err}"
    );
}
