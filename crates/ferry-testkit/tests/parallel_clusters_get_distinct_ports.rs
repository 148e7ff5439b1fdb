//! Clusters started at the same time get their own ports and directories.

use ferry_testkit::TempCluster;

#[test]
fn two_clusters_started_in_parallel_are_independent() {
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| TempCluster::new().unwrap());
        let b = scope.spawn(|| TempCluster::new().unwrap());
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_ne!(a.port(), b.port());
    assert_ne!(a.data_dir(), b.data_dir());

    a.psql("create table only_in_a (id int)").unwrap();
    assert_eq!(
        a.psql("select count(*) from pg_tables where tablename = 'only_in_a'")
            .unwrap(),
        "1\n"
    );
    assert_eq!(
        b.psql("select count(*) from pg_tables where tablename = 'only_in_a'")
            .unwrap(),
        "0\n"
    );
}
