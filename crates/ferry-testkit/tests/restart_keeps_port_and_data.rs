//! A stopped and restarted cluster comes back on the same port with its data.

use std::net::TcpStream;

use ferry_testkit::TempCluster;

#[tokio::test]
async fn restart_keeps_port_and_committed_rows() {
    let cluster = TempCluster::new().unwrap();
    let port = cluster.port();
    cluster
        .psql("create table kept (id int primary key); insert into kept values (1), (2);")
        .unwrap();

    cluster.stop().unwrap();
    assert!(!cluster.is_running());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(cluster.psql("select 1").is_err());

    cluster.start().unwrap();
    assert_eq!(cluster.port(), port);
    assert_eq!(cluster.psql("select count(*) from kept").unwrap(), "2\n");

    // A crash-like stop, restarted from async code: recovery keeps committed rows whose WAL
    // was flushed (the clusters run with synchronous_commit = off, so ask for it here).
    cluster
        .psql("set synchronous_commit = on; insert into kept values (3);")
        .unwrap();
    cluster.stop_immediate().unwrap();
    cluster.start_async().await.unwrap();
    cluster.restart_async().await.unwrap();
    let admin = cluster.admin_client().await;
    let count: i64 = admin
        .query_one("select count(*) from kept", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 3);
    assert_eq!(cluster.port(), port);
    assert!(cluster
        .server_log()
        .contains("database system was interrupted"));
}
