//! Dropping a cluster, also by panicking, stops its server and deletes its directory.

use std::net::TcpStream;
use std::path::PathBuf;

use ferry_testkit::TempCluster;

fn accepts_connections(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn dropped_cluster_refuses_connections_and_is_deleted() {
    let cluster = TempCluster::new().unwrap();
    let port = cluster.port();
    let dir = cluster.data_dir().to_path_buf();
    assert!(accepts_connections(port));
    assert!(dir.join("PG_VERSION").is_file());

    drop(cluster);

    assert!(!accepts_connections(port));
    assert!(!dir.exists());
    assert!(!dir.parent().unwrap().exists());
}

#[test]
fn panicking_test_still_cleans_up() {
    let (tx, rx) = std::sync::mpsc::channel::<(u16, PathBuf)>();
    let outcome = std::thread::spawn(move || {
        let cluster = TempCluster::new().unwrap();
        tx.send((cluster.port(), cluster.data_dir().to_path_buf()))
            .unwrap();
        panic!("test failed while its cluster was running");
    })
    .join();
    assert!(outcome.is_err());
    let (port, dir) = rx.recv().unwrap();
    assert!(!accepts_connections(port));
    assert!(!dir.exists());
}
