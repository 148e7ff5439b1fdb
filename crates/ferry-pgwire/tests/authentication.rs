//! Authentication of both connection kinds against real servers: SCRAM-SHA-256 and MD5
//! succeed, a wrong or missing password is a definite error that says how to fix it, and the
//! password never shows up in `Debug` output or in any error message.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ferry_pgwire::{connect_sql, ConnParams, Error, ReplicationClient};
use ferry_testkit::{Auth, RoleSpec, TempCluster};

const USER: &str = "ferry";
/// Distinctive, and full of characters the URL must percent-encode.
const PASSWORD: &str = "Sc4m-p@ss:w/rd #42";

/// Parses `url` as on a machine whose home is `home` and which sets no `PG*` variable, so the
/// tester's own `~/.pgpass`, `PGPASSWORD` or certificates cannot change the outcome.
fn params(url: &str, home: &Path) -> ConnParams {
    let home = home.to_string_lossy().into_owned();
    let env = move |name: &str| (name == "HOME").then(|| home.clone());
    ConnParams::parse_with(url, &env, "nobody", &|path| path.exists()).unwrap()
}

/// The error's message and those of all its sources, joined by `: `.
fn display_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn cluster(auth: Auth) -> TempCluster {
    TempCluster::builder()
        .auth(auth)
        .role(RoleSpec::new(USER).password(PASSWORD).replication())
        .start()
        .unwrap()
}

/// How the server stored the role's password: `SCRAM-SHA-256$…` or `md5…`.
async fn stored_password(cluster: &TempCluster) -> String {
    cluster
        .admin_client()
        .await
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&USER],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn scram_replication_connection_identifies_the_system() {
    let cluster = cluster(Auth::ScramSha256);
    assert!(stored_password(&cluster)
        .await
        .starts_with("SCRAM-SHA-256$"));
    let home = tempfile::tempdir().unwrap();
    let url = cluster.url(USER, Some(PASSWORD), "postgres");

    let mut client = ReplicationClient::connect(&params(&url, home.path()))
        .await
        .unwrap();
    let system = client.identify_system().await.unwrap();

    assert!(!system.xlog_pos.is_zero(), "{system:?}");
    assert_eq!(system.dbname.as_deref(), Some("postgres"));
    assert_eq!(system.timeline, 1);
    assert!(
        !system.system_id.is_empty() && system.system_id.bytes().all(|b| b.is_ascii_digit()),
        "{system:?}"
    );
    client.close().await;
}

#[tokio::test]
async fn md5_replication_connection_succeeds() {
    let cluster = cluster(Auth::Md5);
    // With a SCRAM-hashed password the server would silently use SCRAM instead.
    assert!(stored_password(&cluster).await.starts_with("md5"));
    let home = tempfile::tempdir().unwrap();
    let url = cluster.url(USER, Some(PASSWORD), "postgres");

    let mut client = ReplicationClient::connect(&params(&url, home.path()))
        .await
        .unwrap();
    let system = client.identify_system().await.unwrap();

    assert!(!system.xlog_pos.is_zero(), "{system:?}");
    assert_eq!(system.dbname.as_deref(), Some("postgres"));
    client.close().await;
}

#[tokio::test]
async fn wrong_password_is_a_definite_28p01() {
    let cluster = cluster(Auth::ScramSha256);
    let home = tempfile::tempdir().unwrap();
    let wrong = "Wrong-Secret-9d1c";
    let url = cluster.url(USER, Some(wrong), "postgres");

    let err = ReplicationClient::connect(&params(&url, home.path()))
        .await
        .unwrap_err();

    let Error::Db(db) = &err else {
        panic!("expected a server error, got {err:?}");
    };
    assert_eq!(db.code(), "28P01", "{db}");
    assert!(!err.is_transient());
    let text = display_chain(&err);
    assert!(!text.contains(wrong), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
}

#[tokio::test]
async fn missing_password_names_the_user_and_the_fix_but_no_secret() {
    let cluster = cluster(Auth::ScramSha256);
    // An empty home: no ~/.pgpass to fall back on.
    let home = tempfile::tempdir().unwrap();
    let url = cluster.url(USER, None, "postgres");

    let err = ReplicationClient::connect(&params(&url, home.path()))
        .await
        .unwrap_err();

    let Error::PasswordMissing { user, .. } = &err else {
        panic!("expected PasswordMissing, got {err:?}");
    };
    assert_eq!(user, USER);
    assert!(!err.is_transient());
    let text = display_chain(&err);
    assert!(text.contains(USER), "{text}");
    assert!(text.contains("PGPASSWORD"), "{text}");
    assert!(text.contains(".pgpass"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(!text.contains(cluster.admin_password().unwrap()), "{text}");
}

#[tokio::test]
async fn password_from_pgpass_is_used_when_the_url_has_none() {
    let cluster = cluster(Auth::ScramSha256);
    let home = tempfile::tempdir().unwrap();
    let passfile = home.path().join(".pgpass");
    let escaped = PASSWORD.replace('\\', "\\\\").replace(':', "\\:");
    std::fs::write(
        &passfile,
        format!("127.0.0.1:{}:*:{USER}:{escaped}\n", cluster.port()),
    )
    .unwrap();
    // libpq (and Ferry) ignore a password file others can read.
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    let url = cluster.url(USER, None, "postgres");

    let mut client = ReplicationClient::connect(&params(&url, home.path()))
        .await
        .unwrap();
    assert!(client.identify_system().await.is_ok());
    client.close().await;
}

#[tokio::test]
async fn sql_connection_authenticates_with_scram() {
    let cluster = cluster(Auth::ScramSha256);
    let home = tempfile::tempdir().unwrap();
    let url = cluster.url(USER, Some(PASSWORD), "postgres");

    let client = connect_sql(&params(&url, home.path())).await.unwrap();
    let row = client
        .query_one("SELECT current_user::text, 1 + 1", &[])
        .await
        .unwrap();

    assert_eq!(row.get::<_, String>(0), USER);
    assert_eq!(row.get::<_, i32>(1), 2);
}

#[tokio::test]
async fn sql_connection_with_a_wrong_password_is_a_definite_28p01() {
    let cluster = cluster(Auth::ScramSha256);
    let home = tempfile::tempdir().unwrap();
    let url = cluster.url(USER, Some("Wrong-Secret-9d1c"), "postgres");

    let err = connect_sql(&params(&url, home.path())).await.unwrap_err();

    assert_eq!(err.code(), Some("28P01"), "{err:?}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn password_in_the_url_never_appears_in_debug_or_error_messages() {
    let cluster = cluster(Auth::ScramSha256);
    let home = tempfile::tempdir().unwrap();
    let secret = "Never-Print-Me-5e7b";
    let good = params(&cluster.url(USER, Some(secret), "postgres"), home.path());

    for text in [format!("{good:?}"), good.to_string(), good.redacted()] {
        assert!(!text.contains(secret), "{text}");
    }

    // Every kind of failure a password could leak into: the server refusing it (both
    // clients), nothing listening, and TLS refused.
    let mut failures: Vec<Box<dyn std::error::Error>> = Vec::new();
    failures.push(Box::new(
        ReplicationClient::connect(&good).await.unwrap_err(),
    ));
    failures.push(Box::new(connect_sql(&good).await.unwrap_err()));
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let nowhere = params(
        &format!("postgres://{USER}:{secret}@127.0.0.1:{closed}/postgres"),
        home.path(),
    );
    failures.push(Box::new(
        ReplicationClient::connect(&nowhere).await.unwrap_err(),
    ));
    failures.push(Box::new(connect_sql(&nowhere).await.unwrap_err()));
    let require = params(
        &format!(
            "{}?sslmode=require",
            cluster.url(USER, Some(secret), "postgres")
        ),
        home.path(),
    );
    failures.push(Box::new(
        ReplicationClient::connect(&require).await.unwrap_err(),
    ));
    failures.push(Box::new(connect_sql(&require).await.unwrap_err()));

    for err in &failures {
        let text = display_chain(err.as_ref());
        assert!(!text.contains(secret), "{text}");
        let debug = format!("{err:?}");
        assert!(!debug.contains(secret), "{debug}");
    }
}
