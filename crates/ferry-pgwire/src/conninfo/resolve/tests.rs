//! Environment fallbacks, defaults and validation, through the public `parse_with`.

use std::collections::HashMap;

use super::*;

/// Parses with the given variables, OS user "osuser", and only `existing` paths present.
fn parse_env(
    s: &str,
    vars: &[(&str, &str)],
    existing: &[&str],
) -> Result<ConnParams, ConnInfoError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let existing: Vec<PathBuf> = existing.iter().map(PathBuf::from).collect();
    ConnParams::parse_with(s, &|name| vars.get(name).cloned(), "osuser", &|path| {
        existing.iter().any(|p| p == path)
    })
}

fn tcp(host: &str, port: u16) -> Endpoint {
    Endpoint {
        host: Host::Tcp(host.into()),
        port,
    }
}

#[test]
fn defaults_without_socket_dir() {
    let params = parse_env("", &[], &[]).unwrap();
    assert_eq!(params.hosts, vec![tcp("localhost", 5432)]);
    assert_eq!(params.user, "osuser");
    assert_eq!(params.dbname, "osuser");
    assert_eq!(params.password, None);
    assert_eq!(params.sslmode, SslMode::Prefer);
    assert_eq!(params.sslrootcert, None);
    assert_eq!(params.sslcert, None);
    assert_eq!(params.sslkey, None);
    assert_eq!(params.passfile, None);
    assert_eq!(params.application_name, None);
    assert_eq!(params.connect_timeout, None);
    assert_eq!(params.options, None);
}

#[test]
fn default_host_is_socket_dir_when_it_exists() {
    let params = parse_env("port=5433", &[], &[DEFAULT_SOCKET_DIR]).unwrap();
    assert_eq!(
        params.hosts,
        vec![Endpoint {
            host: Host::Unix(PathBuf::from(DEFAULT_SOCKET_DIR)),
            port: 5433
        }]
    );
}

#[test]
fn every_variable_is_a_fallback() {
    let vars = [
        ("PGHOST", "envhost"),
        ("PGPORT", "6000"),
        ("PGUSER", "envuser"),
        ("PGPASSWORD", "envpw"),
        ("PGDATABASE", "envdb"),
        ("PGSSLMODE", "verify-ca"),
        ("PGSSLROOTCERT", "/ca.pem"),
        ("PGSSLCERT", "/c.pem"),
        ("PGSSLKEY", "/k.pem"),
        ("PGPASSFILE", "/pgpass"),
        ("PGAPPNAME", "envapp"),
        ("PGCONNECT_TIMEOUT", "9"),
        ("PGOPTIONS", "-c a=b"),
    ];
    let params = parse_env("", &vars, &[]).unwrap();
    assert_eq!(params.hosts, vec![tcp("envhost", 6000)]);
    assert_eq!(params.user, "envuser");
    assert_eq!(params.password.as_ref().unwrap().expose(), "envpw");
    assert_eq!(params.dbname, "envdb");
    assert_eq!(params.sslmode, SslMode::VerifyCa);
    assert_eq!(params.sslrootcert, Some(PathBuf::from("/ca.pem")));
    assert_eq!(params.sslcert, Some(PathBuf::from("/c.pem")));
    assert_eq!(params.sslkey, Some(PathBuf::from("/k.pem")));
    assert_eq!(params.passfile, Some(PathBuf::from("/pgpass")));
    assert_eq!(params.application_name.as_deref(), Some("envapp"));
    assert_eq!(params.connect_timeout, Some(Duration::from_secs(9)));
    assert_eq!(params.options.as_deref(), Some("-c a=b"));

    // The string beats every variable.
    let params = parse_env(
        "host=h port=1 user=u password=p dbname=d sslmode=disable sslrootcert=/r \
         sslcert=/c sslkey=/k passfile=/f application_name=a connect_timeout=3 options=o",
        &vars,
        &[],
    )
    .unwrap();
    assert_eq!(params.hosts, vec![tcp("h", 1)]);
    assert_eq!(params.user, "u");
    assert_eq!(params.password.as_ref().unwrap().expose(), "p");
    assert_eq!(params.dbname, "d");
    assert_eq!(params.sslmode, SslMode::Disable);
    assert_eq!(params.sslrootcert, Some(PathBuf::from("/r")));
    assert_eq!(params.sslcert, Some(PathBuf::from("/c")));
    assert_eq!(params.sslkey, Some(PathBuf::from("/k")));
    assert_eq!(params.passfile, Some(PathBuf::from("/f")));
    assert_eq!(params.application_name.as_deref(), Some("a"));
    assert_eq!(params.connect_timeout, Some(Duration::from_secs(3)));
    assert_eq!(params.options.as_deref(), Some("o"));
}

#[test]
fn empty_value_shadows_variable_and_means_default() {
    let vars = [
        ("PGHOST", "envhost"),
        ("PGUSER", "envuser"),
        ("PGPASSWORD", "envpw"),
    ];
    let params = parse_env("host='' user='' password=''", &vars, &[]).unwrap();
    assert_eq!(params.hosts, vec![tcp("localhost", 5432)]);
    assert_eq!(params.user, "osuser");
    assert_eq!(params.password, None);
    // An empty variable is the default too.
    let params = parse_env("", &[("PGHOST", ""), ("PGSSLMODE", "")], &[]).unwrap();
    assert_eq!(params.hosts, vec![tcp("localhost", 5432)]);
    assert_eq!(params.sslmode, SslMode::Prefer);
}

#[test]
fn dbname_defaults_to_the_resolved_user() {
    let params = parse_env("", &[("PGUSER", "envuser")], &[]).unwrap();
    assert_eq!(params.dbname, "envuser");
    let params = parse_env("user=u", &[("PGDATABASE", "db")], &[]).unwrap();
    assert_eq!(params.dbname, "db");
}

#[test]
fn no_user_anywhere_is_an_error() {
    let err = ConnParams::parse_with("", &|_| None, "", &|_: &Path| false).unwrap_err();
    assert_eq!(err, ConnInfoError::NoUser);
    assert!(err
        .to_string()
        .contains("set user in the connection string or PGUSER"));
}

#[test]
fn home_files_are_found_when_present() {
    let home = [("HOME", "/home/a")];
    let params = parse_env("", &home, &[]).unwrap();
    assert_eq!(params.passfile, Some(PathBuf::from("/home/a/.pgpass")));
    assert_eq!(params.sslrootcert, None);
    let params = parse_env(
        "",
        &home,
        &[
            "/home/a/.postgresql/root.crt",
            "/home/a/.postgresql/postgresql.crt",
            "/home/a/.postgresql/postgresql.key",
        ],
    )
    .unwrap();
    assert_eq!(
        params.sslrootcert,
        Some(PathBuf::from("/home/a/.postgresql/root.crt"))
    );
    assert_eq!(params.effective_sslrootcert(), params.sslrootcert);
    assert_eq!(
        params.sslcert,
        Some(PathBuf::from("/home/a/.postgresql/postgresql.crt"))
    );
    assert_eq!(
        params.sslkey,
        Some(PathBuf::from("/home/a/.postgresql/postgresql.key"))
    );
    // An explicit value wins over the file.
    let params = parse_env("sslrootcert=/x", &home, &["/home/a/.postgresql/root.crt"]).unwrap();
    assert_eq!(params.sslrootcert, Some(PathBuf::from("/x")));
}

#[test]
fn host_and_port_lists_pair_up() {
    let params = parse_env("host=a,b,c port=1", &[], &[]).unwrap();
    assert_eq!(params.hosts, vec![tcp("a", 1), tcp("b", 1), tcp("c", 1)]);
    let params = parse_env("host=a,/tmp,c port=1,,3", &[], &[]).unwrap();
    assert_eq!(
        params.hosts,
        vec![
            tcp("a", 1),
            Endpoint {
                host: Host::Unix(PathBuf::from("/tmp")),
                port: 5432
            },
            tcp("c", 3)
        ]
    );
    let params = parse_env("host=a,,c", &[("PGPORT", "7")], &[]).unwrap();
    assert_eq!(
        params.hosts,
        vec![tcp("a", 7), tcp("localhost", 7), tcp("c", 7)]
    );
    let params = parse_env("port=1,2", &[("PGHOST", "x,y")], &[]).unwrap();
    assert_eq!(params.hosts, vec![tcp("x", 1), tcp("y", 2)]);
}

#[test]
fn mismatched_lists_are_an_error() {
    let err = parse_env("host=a,b,c port=1,2", &[], &[]).unwrap_err();
    assert_eq!(err, ConnInfoError::HostPortMismatch { hosts: 3, ports: 2 });
    assert_eq!(
        err.to_string(),
        "2 ports given for 3 hosts: expected one port for all hosts or one port per host, \
         in the same order"
    );
    let err = parse_env("port=1,2", &[], &[]).unwrap_err();
    assert_eq!(err, ConnInfoError::HostPortMismatch { hosts: 1, ports: 2 });
}

#[test]
fn hostaddr() {
    let params = parse_env("hostaddr=10.0.0.1", &[], &[]).unwrap();
    assert_eq!(params.hosts, vec![tcp("10.0.0.1", 5432)]);
    let params = parse_env("host=10.0.0.1 hostaddr=10.0.0.1", &[], &[]).unwrap();
    assert_eq!(params.hosts, vec![tcp("10.0.0.1", 5432)]);
    let err = parse_env("host=db hostaddr=10.0.0.1", &[], &[]).unwrap_err();
    assert_eq!(err, ConnInfoError::HostaddrWithHost);
}

#[test]
fn bad_ports() {
    for bad in ["abc", "0", "65536", "-1", "+5", "54 32"] {
        let err = parse_env(&format!("port='{bad}'"), &[], &[]).unwrap_err();
        assert_eq!(
            err,
            ConnInfoError::InvalidPort {
                value: bad.into(),
                env_var: None
            }
        );
    }
    let err = parse_env("", &[("PGPORT", "abc")], &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid port \"abc\" in PGPORT: expected a number from 1 to 65535"
    );
    let params = parse_env("port=' 65535 '", &[], &[]).unwrap();
    assert_eq!(params.hosts[0].port, 65535);
}

#[test]
fn sslmode_values() {
    for mode in SslMode::ALL {
        let params = parse_env(&format!("sslmode={mode}"), &[], &[]).unwrap();
        assert_eq!(params.sslmode, mode);
    }
    let err = parse_env("sslmode=on", &[], &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid sslmode \"on\": expected one of disable, allow, prefer, require, verify-ca, \
         verify-full"
    );
    let err = parse_env("", &[("PGSSLMODE", "VERIFY-FULL")], &[]).unwrap_err();
    assert_eq!(
        err,
        ConnInfoError::InvalidSslMode {
            value: "VERIFY-FULL".into(),
            env_var: Some("PGSSLMODE")
        }
    );
}

#[test]
fn system_roots_imply_verify_full() {
    let params = parse_env("sslrootcert=system", &[], &[]).unwrap();
    assert_eq!(params.sslmode, SslMode::VerifyFull);
    assert!(params.uses_system_roots());
    let params = parse_env("sslrootcert=system sslmode=verify-full", &[], &[]).unwrap();
    assert_eq!(params.sslmode, SslMode::VerifyFull);
    let err = parse_env("sslrootcert=system sslmode=require", &[], &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "sslmode=require cannot be used with sslrootcert=system: use sslmode=verify-full or \
         leave sslmode out"
    );
}

#[test]
fn connect_timeout_follows_libpq() {
    let timeout = |s: &str| {
        parse_env(&format!("connect_timeout='{s}'"), &[], &[])
            .unwrap()
            .connect_timeout
    };
    assert_eq!(timeout("10"), Some(Duration::from_secs(10)));
    assert_eq!(timeout(" 10 "), Some(Duration::from_secs(10)));
    assert_eq!(timeout("1"), Some(Duration::from_secs(2)));
    assert_eq!(timeout("0"), None);
    assert_eq!(timeout("-5"), None);
    for bad in ["1.5", "10s", "abc"] {
        let err = parse_env(&format!("connect_timeout={bad}"), &[], &[]).unwrap_err();
        assert_eq!(
            err,
            ConnInfoError::InvalidConnectTimeout {
                value: bad.into(),
                env_var: None
            }
        );
    }
    let err = parse_env("", &[("PGCONNECT_TIMEOUT", "x")], &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid connect_timeout \"x\" in PGCONNECT_TIMEOUT: expected a whole number of seconds"
    );
}

#[test]
fn fallback_application_name() {
    let params = parse_env("fallback_application_name=fb", &[], &[]).unwrap();
    assert_eq!(params.application_name.as_deref(), Some("fb"));
    let params = parse_env("fallback_application_name=fb", &[("PGAPPNAME", "env")], &[]).unwrap();
    assert_eq!(params.application_name.as_deref(), Some("env"));
    let params = parse_env("application_name=a fallback_application_name=fb", &[], &[]).unwrap();
    assert_eq!(params.application_name.as_deref(), Some("a"));
}
