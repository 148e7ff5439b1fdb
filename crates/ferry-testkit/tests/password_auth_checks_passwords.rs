//! With a password method, TCP connections need the right password.

use ferry_testkit::{Auth, RoleSpec, TempCluster};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

#[tokio::test]
async fn scram_rejects_a_wrong_password_and_accepts_the_right_one() {
    let cluster = TempCluster::builder()
        .auth(Auth::ScramSha256)
        .role(RoleSpec::new("ferry").password("right p@ss").replication())
        .start()
        .unwrap();

    let wrong = tokio_postgres::connect(&cluster.url("ferry", Some("wrong"), "postgres"), NoTls)
        .await
        .err()
        .expect("a wrong password must be rejected");
    assert_eq!(wrong.code(), Some(&SqlState::INVALID_PASSWORD));

    let (client, connection) =
        tokio_postgres::connect(&cluster.url("ferry", Some("right p@ss"), "postgres"), NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one(
            "select current_user::text, rolreplication, rolsuper from pg_roles where rolname = current_user",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "ferry");
    assert!(row.get::<_, bool>(1));
    assert!(!row.get::<_, bool>(2));

    let (admin, connection) = tokio_postgres::connect(&cluster.admin_url(), NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let method: String = admin
        .query_one(
            "select auth_method from pg_hba_file_rules where type = 'host' limit 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(method, "scram-sha-256");
}

#[test]
fn md5_auth_stores_md5_hashes() {
    let cluster = TempCluster::builder()
        .auth(Auth::Md5)
        .role(RoleSpec::new("old_client").password("secret"))
        .start()
        .unwrap();
    assert_eq!(
        cluster
            .psql("select left(rolpassword, 3) from pg_authid where rolname = 'old_client'")
            .unwrap(),
        "md5\n"
    );
}
