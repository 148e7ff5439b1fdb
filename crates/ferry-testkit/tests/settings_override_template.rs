//! Builder settings win over the template's postgresql.conf, which still applies otherwise.

use ferry_testkit::TempCluster;

#[test]
fn wal_level_replica_setting_is_applied() {
    let cluster = TempCluster::builder()
        .setting("wal_level", "replica")
        .setting("cluster_name", "it's quoted")
        .start()
        .unwrap();
    assert_eq!(cluster.psql("show wal_level").unwrap(), "replica\n");
    assert_eq!(cluster.psql("show cluster_name").unwrap(), "it's quoted\n");
    assert_eq!(cluster.psql("show max_wal_senders").unwrap(), "20\n");
}
