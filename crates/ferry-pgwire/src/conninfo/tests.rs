//! Tests of the public [`ConnParams`] API end to end: both string forms, printing, password
//! resolution, and the promise that no error or printout ever shows the password.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

const SECRET: &str = "hunter2";

fn parse(s: &str) -> Result<ConnParams, ConnInfoError> {
    ConnParams::parse_with(s, &|_| None, "osuser", &|_: &Path| false)
}

fn tcp(host: &str, port: u16) -> Endpoint {
    Endpoint {
        host: Host::Tcp(host.into()),
        port,
    }
}

fn unix(dir: &str, port: u16) -> Endpoint {
    Endpoint {
        host: Host::Unix(PathBuf::from(dir)),
        port,
    }
}

#[test]
fn url_and_keyword_forms_agree() {
    let from_url = parse(
        "postgresql://alice:s%20cret@db1:5433,[::1]:5434/my%20db?sslmode=require&connect_timeout=5",
    )
    .unwrap();
    let from_keywords = parse(
        "host=db1,::1 port=5433,5434 user=alice password='s cret' dbname='my db' \
         sslmode=require connect_timeout=5",
    )
    .unwrap();
    assert_eq!(from_url, from_keywords);
    assert_eq!(from_url.hosts, vec![tcp("db1", 5433), tcp("::1", 5434)]);
    assert_eq!(from_url.password.as_ref().unwrap().expose(), "s cret");
    assert_eq!(from_url.connect_timeout, Some(Duration::from_secs(5)));
}

#[test]
fn url_unix_socket() {
    let params = parse("postgres://%2Fvar%2Frun%2Fpostgresql:5433/app").unwrap();
    assert_eq!(params.hosts, vec![unix("/var/run/postgresql", 5433)]);
    assert_eq!(params.dbname, "app");
    assert_eq!(
        params.hosts[0].socket_path(),
        Some(PathBuf::from("/var/run/postgresql/.s.PGSQL.5433"))
    );
    let params = parse("postgresql:///app?host=%2Ftmp").unwrap();
    assert_eq!(params.hosts, vec![unix("/tmp", 5432)]);
}

#[test]
fn url_with_nothing_uses_defaults_and_env() {
    let params = ConnParams::parse_with(
        "postgresql://",
        &|name| (name == "PGHOST").then(|| "envhost".to_owned()),
        "osuser",
        &|_: &Path| false,
    )
    .unwrap();
    assert_eq!(params.hosts, vec![tcp("envhost", 5432)]);
    assert_eq!(params.user, "osuser");
}

#[test]
fn surrounding_whitespace_is_ignored() {
    let params = parse("  postgres://h/db \n").unwrap();
    assert_eq!(params.dbname, "db");
}

#[test]
fn ssl_mode_text() {
    for mode in SslMode::ALL {
        assert_eq!(mode.to_string().parse::<SslMode>().unwrap(), mode);
    }
    assert_eq!(SslMode::VerifyCa.to_string(), "verify-ca");
    assert_eq!(SslMode::default(), SslMode::Prefer);
    assert!("Require".parse::<SslMode>().is_err());
}

#[test]
fn password_never_prints() {
    let password = Password::new(SECRET);
    assert_eq!(format!("{password:?}"), "***");
    assert_eq!(format!("{password}"), "***");
    assert_eq!(password.expose(), SECRET);

    let params = parse(&format!("postgres://u:{SECRET}@h/db")).unwrap();
    let debug = format!("{params:?} {params:#?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(debug.contains("***"));
    assert!(!params.redacted().contains(SECRET));
    assert!(!params.to_string().contains(SECRET));
}

#[test]
fn redacted_form() {
    let params = parse(&format!(
        "postgres://u:{SECRET}@db1,%2Ftmp:5433,[::1]/my%20db?application_name=it's\
         &options=-c%20a%3Db&connect_timeout=4&sslrootcert=/ca.pem&passfile=/pp"
    ))
    .unwrap();
    assert_eq!(
        params.redacted(),
        "host=db1,/tmp,::1 port=5432,5433,5432 user=u password=*** dbname='my db' \
         sslmode=prefer sslrootcert=/ca.pem passfile=/pp application_name='it\\'s' \
         connect_timeout=4 options='-c a=b'"
    );
    let minimal = parse("host=h").unwrap();
    assert_eq!(
        minimal.redacted(),
        "host=h port=5432 user=osuser dbname=osuser sslmode=prefer"
    );
}

#[test]
fn printed_form_parses_back() {
    for input in [
        "host=h",
        "postgres://u@a:1,b:2/db%20x?sslmode=verify-full&application_name=a%5Cb",
        "host=/var/run/my\\ sock port=6000 options='-c x=\\'y\\''",
        "sslrootcert=system connect_timeout=1 sslcert=/c sslkey=/k",
    ] {
        let params = parse(input).unwrap();
        assert_eq!(parse(&params.to_string()).unwrap(), params, "{input}");
    }
    // With a password, everything but the password survives.
    let params = parse("password=pw host=h").unwrap();
    let reparsed = parse(&params.redacted()).unwrap();
    assert_eq!(reparsed.password.as_ref().unwrap().expose(), "***");
    assert_eq!(reparsed.hosts, params.hosts);
}

#[test]
fn endpoint_display() {
    assert_eq!(tcp("db1", 5432).to_string(), "db1:5432");
    assert_eq!(tcp("::1", 5433).to_string(), "[::1]:5433");
    assert_eq!(
        unix("/var/run/postgresql", 5432).to_string(),
        "/var/run/postgresql/.s.PGSQL.5432"
    );
    assert_eq!(tcp("db1", 5432).socket_path(), None);
}

/// One input per error variant reachable from a string; each carries the password
/// somewhere, and neither the message nor the Debug output may show it.
#[test]
fn no_error_shows_the_password() {
    type Case = (String, fn(&ConnInfoError) -> bool);
    let cases: Vec<Case> = vec![
        (format!("password={SECRET} port=abc"), |e| {
            matches!(e, ConnInfoError::InvalidPort { .. })
        }),
        (format!("password={SECRET} sslmode=strict"), |e| {
            matches!(e, ConnInfoError::InvalidSslMode { .. })
        }),
        (
            format!("password={SECRET} sslrootcert=system sslmode=prefer"),
            |e| matches!(e, ConnInfoError::WeakSslModeWithSystemRoots { .. }),
        ),
        (format!("password={SECRET} connect_timeout=soon"), |e| {
            matches!(e, ConnInfoError::InvalidConnectTimeout { .. })
        }),
        (format!("host=h password='{SECRET}"), |e| {
            matches!(e, ConnInfoError::UnterminatedQuote { .. })
        }),
        (format!("password=x {SECRET}"), |e| {
            matches!(e, ConnInfoError::MissingEquals { keyword: None, .. })
        }),
        (format!("password='{SECRET}' dbname"), |e| {
            matches!(
                e,
                ConnInfoError::MissingEquals {
                    keyword: Some(_),
                    ..
                }
            )
        }),
        (format!("password=x {SECRET}=1"), |e| {
            matches!(e, ConnInfoError::UnknownKeyword { keyword: None })
        }),
        (format!("password='{SECRET}' colour=blue"), |e| {
            matches!(e, ConnInfoError::UnknownKeyword { keyword: Some(_) })
        }),
        (
            format!("password={SECRET} target_session_attrs=primary"),
            |e| matches!(e, ConnInfoError::UnsupportedValue { .. }),
        ),
        (format!("postgres://u:{SECRET}%zz@h"), |e| {
            matches!(e, ConnInfoError::InvalidPercentEncoding { .. })
        }),
        (format!("postgres://u:{SECRET}@[::1"), |e| {
            matches!(e, ConnInfoError::InvalidUrl { .. })
        }),
        (format!("postgres://u:{SECRET}@h?sslmode"), |e| {
            matches!(e, ConnInfoError::QueryParameterWithoutValue { .. })
        }),
        (format!("postgres://u:{SECRET}@a,b?port=1,2,3"), |e| {
            matches!(e, ConnInfoError::HostPortMismatch { .. })
        }),
        (format!("password={SECRET} host=a hostaddr=10.0.0.1"), |e| {
            matches!(e, ConnInfoError::HostaddrWithHost)
        }),
    ];
    for (input, is_expected) in cases {
        let err = parse(&input).unwrap_err();
        assert!(is_expected(&err), "{input}: got {err:?}");
        let shown = format!("{err} | {err:?}");
        assert!(!shown.contains(SECRET), "{input}: {shown}");
        assert!(!err.is_transient());
    }
    let err = ConnParams::parse_with(&format!("password={SECRET}"), &|_| None, "", &|_: &Path| {
        false
    })
    .unwrap_err();
    assert_eq!(err, ConnInfoError::NoUser);
}

fn private_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    fs::File::create(&path)
        .unwrap()
        .write_all(contents.as_bytes())
        .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

#[test]
fn resolve_password_prefers_explicit_then_passfile_per_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let passfile = private_file(
        dir.path(),
        "pgpass",
        "# ferry\nprimary:5432:app:alice:p1\nreplica:*:app:alice:p2\n",
    );
    let conninfo = format!(
        "host=primary,replica,other user=alice dbname=app passfile='{}'",
        passfile.display()
    );
    let params = parse(&conninfo).unwrap();
    let found: Vec<Option<String>> = params
        .hosts
        .iter()
        .map(|e| params.resolve_password(e).map(|p| p.expose().to_owned()))
        .collect();
    assert_eq!(found, vec![Some("p1".into()), Some("p2".into()), None]);

    let params = parse(&format!("{conninfo} password=given")).unwrap();
    assert_eq!(
        params.resolve_password(&params.hosts[2]).unwrap().expose(),
        "given"
    );
}

#[test]
fn default_passfile_comes_from_home() {
    let dir = tempfile::tempdir().unwrap();
    private_file(dir.path(), ".pgpass", "*:*:*:*:fromhome\n");
    let home = dir.path().to_string_lossy().into_owned();
    let params = ConnParams::parse_with(
        "host=h",
        &|name| (name == "HOME").then(|| home.clone()),
        "osuser",
        &|_: &Path| false,
    )
    .unwrap();
    assert_eq!(params.passfile, Some(dir.path().join(".pgpass")));
    assert_eq!(
        params.resolve_password(&params.hosts[0]).unwrap().expose(),
        "fromhome"
    );
}

#[test]
fn passfile_from_env_and_unknown_home() {
    let params = ConnParams::parse_with(
        "",
        &|name| (name == "PGPASSFILE").then(|| "/nonexistent/pgpass".to_owned()),
        "osuser",
        &|_: &Path| false,
    )
    .unwrap();
    assert_eq!(params.passfile, Some(PathBuf::from("/nonexistent/pgpass")));
    assert_eq!(params.resolve_password(&params.hosts[0]), None);
    let params = parse("").unwrap();
    assert_eq!(params.passfile, None);
    assert_eq!(params.resolve_password(&params.hosts[0]), None);
}

#[test]
fn parse_uses_the_real_environment() {
    // Only checks that the process-environment path works; values depend on the machine.
    let params = ConnParams::parse("host=h user=u").unwrap();
    assert_eq!(params.hosts, vec![tcp("h", params.hosts[0].port)]);
    assert_eq!(params.user, "u");
    let params: ConnParams = "postgres://u@h/db".parse().unwrap();
    assert_eq!(params.dbname, "db");
}
