//! A default cluster answers queries over TCP, the unix socket and psql, with logical WAL.

use ferry_testkit::TempCluster;

#[tokio::test]
async fn default_cluster_answers_and_has_logical_wal_level() {
    let cluster = TempCluster::new().unwrap();

    let admin = cluster.admin_client().await;
    let one: i32 = admin.query_one("select 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    let wal_level: String = admin.query_one("show wal_level", &[]).await.unwrap().get(0);
    assert_eq!(wal_level, "logical");

    let (tcp, connection) = tokio_postgres::connect(&cluster.admin_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let port: String = tcp.query_one("show port", &[]).await.unwrap().get(0);
    assert_eq!(port, cluster.port().to_string());

    assert_eq!(
        cluster
            .psql("select 40 + 2; show max_replication_slots;")
            .unwrap(),
        "42\n20\n"
    );
    cluster.create_database("Other DB").unwrap();
    let other = cluster.admin_client_db("Other DB").await;
    let name: String = other
        .query_one("select current_database()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "Other DB");

    assert!(cluster.server_log().contains("database system is ready"));
    assert_eq!(cluster.host(), "127.0.0.1");
}
