//! The URL form:
//! `postgres[ql]://[user[:password]@][host][:port][,host2[:port2]...][/dbname][?param=value&...]`.
//!
//! Follows libpq's `conninfo_uri_parse`: every component is percent-decoded; an IPv6 address
//! is written in brackets; a host that decodes to an absolute path (`%2Fvar%2Frun%2Fpostgresql`)
//! is a unix socket directory; query parameters take the same keywords as the keyword form,
//! plus `ssl=true` (meaning `sslmode=require`) for JDBC compatibility.
//!
//! Two deliberate differences from libpq, both in the user's favour: the credentials end at the
//! *last* `@` of the authority, so an unencoded `@` in a password still works, and the authority
//! ends at the first `/` or `?`, so a missing `/` before the query is fine.
//!
//! Invariant: errors name the URL component at fault (`password`, `host`, ...), never its text.
//! A password holding an unencoded `/`, `?` or `#` splits the URL in the wrong place and puts a
//! piece of it where a port, a database name or a query parameter belongs; such URLs are
//! refused with [`UNENCODED_CREDENTIALS`], which quotes none of it.

use super::raw::RawSettings;
use super::ConnInfoError;

const SCHEMES: [&str; 2] = ["postgresql://", "postgres://"];

/// The one error for a URL whose credentials were cut short by a reserved character.
const UNENCODED_CREDENTIALS: ConnInfoError = ConnInfoError::InvalidUrl {
    reason: "the part after the host is not a port, database name and parameters as expected; \
             a user name or password holding \"/\", \"?\", \"#\" or \":\" must be \
             percent-encoded (%2F, %3F, %23, %3A)",
};

/// Whether `s` is in URL form rather than keyword/value form.
pub(super) fn is_url(s: &str) -> bool {
    SCHEMES.iter().any(|scheme| s.starts_with(scheme))
}

/// Parses a URL accepted by [`is_url`].
pub(super) fn parse(s: &str) -> Result<RawSettings, ConnInfoError> {
    let rest = SCHEMES
        .iter()
        .find_map(|scheme| s.strip_prefix(scheme))
        .ok_or(ConnInfoError::InvalidUrl {
            reason: "expected it to start with postgresql:// or postgres://",
        })?;
    let mut raw = RawSettings::default();

    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, rest) = rest.split_at(authority_end);

    let credentials = authority.rfind('@');
    let hostlist = match credentials {
        Some(at) => {
            parse_userinfo(&authority[..at], &mut raw)?;
            &authority[at + 1..]
        }
        None => authority,
    };
    // Without credentials before the host, an `@` further on means a password was cut short
    // by a `/` or `?` in it: what follows the cut must not reach a message.
    let cut_short = |e: ConnInfoError, after: &str| {
        if credentials.is_none() && after.contains('@') {
            UNENCODED_CREDENTIALS
        } else {
            e
        }
    };
    parse_hostlist(hostlist, &mut raw).map_err(|e| cut_short(e, rest))?;

    let (path, query) = match rest.find('?') {
        Some(q) => (&rest[..q], Some(&rest[q + 1..])),
        None => (rest, None),
    };
    if credentials.is_none() && path.contains('@') {
        return Err(UNENCODED_CREDENTIALS);
    }
    if let Some(dbname) = path.strip_prefix('/') {
        if !dbname.is_empty() {
            raw.dbname = Some(decode(dbname, "database name")?);
        }
    }
    if let Some(query) = query {
        parse_query(query, &mut raw).map_err(|e| cut_short(e, query))?;
    }
    Ok(raw)
}

fn parse_userinfo(userinfo: &str, raw: &mut RawSettings) -> Result<(), ConnInfoError> {
    let (user, password) = match userinfo.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (userinfo, None),
    };
    if !user.is_empty() {
        raw.set("user", decode(user, "user name")?)?;
    }
    if let Some(password) = password {
        raw.set("password", decode(password, "password")?)?;
    }
    Ok(())
}

/// Parses `host[:port][,host[:port]...]` into comma-joined `host` and `port` lists, the shape
/// the keyword form uses, so both forms resolve the same way.
fn parse_hostlist(list: &str, raw: &mut RawSettings) -> Result<(), ConnInfoError> {
    if list.is_empty() {
        return Ok(());
    }
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    let mut rest = list;
    loop {
        let host;
        if let Some(after_bracket) = rest.strip_prefix('[') {
            let close = after_bracket.find(']').ok_or(ConnInfoError::InvalidUrl {
                reason: "missing \"]\" after an IPv6 host address",
            })?;
            host = &after_bracket[..close];
            if host.is_empty() {
                return Err(ConnInfoError::InvalidUrl {
                    reason: "empty IPv6 host address in \"[]\"",
                });
            }
            rest = &after_bracket[close + 1..];
            if !(rest.is_empty() || rest.starts_with([':', ','])) {
                return Err(ConnInfoError::InvalidUrl {
                    reason: "expected \":port\" or \",\" after an IPv6 host address in \"[...]\"",
                });
            }
        } else {
            let end = rest.find([':', ',']).unwrap_or(rest.len());
            host = &rest[..end];
            rest = &rest[end..];
        }
        hosts.push(decode(host, "host")?);

        let port = match rest.strip_prefix(':') {
            Some(after_colon) => {
                let end = after_colon.find(',').unwrap_or(after_colon.len());
                rest = &after_colon[end..];
                decode(&after_colon[..end], "port")?
            }
            None => String::new(),
        };
        // Never quoted: in `user:pass/word@host` the "port" is the start of the password.
        if !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(UNENCODED_CREDENTIALS);
        }
        ports.push(port);

        match rest.strip_prefix(',') {
            Some(after_comma) => rest = after_comma,
            None => break,
        }
    }
    // Like libpq, an all-empty list is "not given", so PGHOST/PGPORT still apply.
    if hosts.len() > 1 || hosts.iter().any(|h| !h.is_empty()) {
        raw.set("host", hosts.join(","))?;
    }
    if ports.iter().any(|p| !p.is_empty()) {
        raw.set("port", ports.join(","))?;
    }
    Ok(())
}

fn parse_query(query: &str, raw: &mut RawSettings) -> Result<(), ConnInfoError> {
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let Some((name, value)) = param.split_once('=') else {
            return Err(ConnInfoError::QueryParameterWithoutValue {
                name: decode(param, "query parameter name")?,
            });
        };
        let name = decode(name, "query parameter name")?;
        let value = decode(value, &format!("value of query parameter \"{name}\""))?;
        if name == "ssl" {
            // JDBC spelling, also understood by libpq.
            if value != "true" {
                return Err(ConnInfoError::UnsupportedValue {
                    keyword: "ssl",
                    value,
                    expected: "true (meaning sslmode=require), or use sslmode",
                });
            }
            raw.set("sslmode", "require".to_owned())?;
        } else {
            raw.set(&name, value)?;
        }
    }
    Ok(())
}

/// Percent-decodes one URL component; `component` names it in the error.
fn decode(s: &str, component: &str) -> Result<String, ConnInfoError> {
    let invalid = || ConnInfoError::InvalidPercentEncoding {
        component: component.to_owned(),
    };
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes
                .get(i + 1)
                .and_then(|&c| hex_value(c))
                .ok_or_else(invalid)?;
            let lo = bytes
                .get(i + 2)
                .and_then(|&c| hex_value(c))
                .ok_or_else(invalid)?;
            let decoded = hi << 4 | lo;
            if decoded == 0 {
                return Err(invalid());
            }
            out.push(decoded);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid())
}

fn hex_value(c: u8) -> Option<u8> {
    char::from(c)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "hunter2";

    fn p(s: &str) -> RawSettings {
        parse(s).unwrap()
    }

    #[test]
    fn scheme_detection() {
        assert!(is_url("postgres://h"));
        assert!(is_url("postgresql://"));
        assert!(!is_url("host=postgres://"));
        assert!(!is_url("mysql://h"));
    }

    #[test]
    fn bare_scheme_sets_nothing() {
        assert_eq!(p("postgresql://"), RawSettings::default());
        assert_eq!(p("postgres:///"), RawSettings::default());
    }

    #[test]
    fn full_url() {
        let raw = p("postgresql://alice:s3cret@db.example.com:6432/app\
                     ?sslmode=verify-full&application_name=ferry");
        assert_eq!(raw.user.as_deref(), Some("alice"));
        assert_eq!(raw.password.unwrap().expose(), "s3cret");
        assert_eq!(raw.host.as_deref(), Some("db.example.com"));
        assert_eq!(raw.port.as_deref(), Some("6432"));
        assert_eq!(raw.dbname.as_deref(), Some("app"));
        assert_eq!(raw.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(raw.application_name.as_deref(), Some("ferry"));
    }

    #[test]
    fn user_without_password_and_empty_password() {
        let raw = p("postgres://bob@h");
        assert_eq!(raw.user.as_deref(), Some("bob"));
        assert_eq!(raw.password, None);
        let raw = p("postgres://bob:@h");
        assert_eq!(raw.password.unwrap().expose(), "");
        let raw = p("postgres://:pw@h");
        assert_eq!(raw.user, None);
        assert_eq!(raw.password.unwrap().expose(), "pw");
    }

    #[test]
    fn percent_decoding_everywhere() {
        let raw = p("postgres://al%40ice:p%3Aw%2Fd%40@h%2Dx/my%20db?application_name=a%26b");
        assert_eq!(raw.user.as_deref(), Some("al@ice"));
        assert_eq!(raw.password.unwrap().expose(), "p:w/d@");
        assert_eq!(raw.host.as_deref(), Some("h-x"));
        assert_eq!(raw.dbname.as_deref(), Some("my db"));
        assert_eq!(raw.application_name.as_deref(), Some("a&b"));
        let raw = p("postgres://h/caf%C3%A9");
        assert_eq!(raw.dbname.as_deref(), Some("café"));
    }

    #[test]
    fn unencoded_at_in_password_uses_last_at() {
        let raw = p("postgres://u:p@ss@h/db");
        assert_eq!(raw.user.as_deref(), Some("u"));
        assert_eq!(raw.password.unwrap().expose(), "p@ss");
        assert_eq!(raw.host.as_deref(), Some("h"));
    }

    /// A password with an unencoded `/` or `?` puts its pieces where a port, a database name
    /// or a parameter belongs; the error points at percent-encoding and shows none of it.
    #[test]
    fn a_password_cut_short_by_a_reserved_character_is_not_shown() {
        for url in [
            format!("postgres://u:zq/{SECRET}@h/db"),
            format!("postgres://u:zq?{SECRET}@h/db"),
            format!("postgres://u:12/{SECRET}@h/db"),
            format!("postgres://u:12?{SECRET}@h/db"),
            format!("postgres://u:12?s={SECRET}@h/db"),
            format!("postgres://u:{SECRET}/x@h/db"),
        ] {
            let err = parse(&url).unwrap_err();
            assert_eq!(err, UNENCODED_CREDENTIALS, "{url}");
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(SECRET) && !shown.contains("zq"), "{shown}");
        }
        // An `@` in a parameter value, with no credentials before the host, is fine.
        let raw = p("postgres://h/db?user=me@corp");
        assert_eq!(raw.user.as_deref(), Some("me@corp"));
    }

    #[test]
    fn ipv6_in_brackets() {
        let raw = p("postgres://[::1]:5433/db");
        assert_eq!(raw.host.as_deref(), Some("::1"));
        assert_eq!(raw.port.as_deref(), Some("5433"));
        let raw = p("postgres://[fe80::1%25eth0]");
        assert_eq!(raw.host.as_deref(), Some("fe80::1%eth0"));
        assert_eq!(raw.port, None);
    }

    #[test]
    fn multi_host() {
        let raw = p("postgres://a:1,[::1]:2,c/db");
        assert_eq!(raw.host.as_deref(), Some("a,::1,c"));
        assert_eq!(raw.port.as_deref(), Some("1,2,"));
        let raw = p("postgres://a,b");
        assert_eq!(raw.host.as_deref(), Some("a,b"));
        assert_eq!(raw.port, None);
    }

    #[test]
    fn port_without_host() {
        let raw = p("postgres://:5433/db");
        assert_eq!(raw.host, None);
        assert_eq!(raw.port.as_deref(), Some("5433"));
    }

    #[test]
    fn unix_socket_host() {
        let raw = p("postgresql://%2Fvar%2Frun%2Fpostgresql/db");
        assert_eq!(raw.host.as_deref(), Some("/var/run/postgresql"));
        let raw = p("postgresql:///db?host=/tmp&port=5433");
        assert_eq!(raw.host.as_deref(), Some("/tmp"));
        assert_eq!(raw.port.as_deref(), Some("5433"));
        assert_eq!(raw.dbname.as_deref(), Some("db"));
    }

    #[test]
    fn query_overrides_netloc_and_needs_no_slash() {
        let raw = p("postgres://a?host=b&&dbname=d&");
        assert_eq!(raw.host.as_deref(), Some("b"));
        assert_eq!(raw.dbname.as_deref(), Some("d"));
    }

    #[test]
    fn ssl_true_means_require() {
        assert_eq!(
            p("postgres://h?ssl=true").sslmode.as_deref(),
            Some("require")
        );
        let err = parse("postgres://h?ssl=false").unwrap_err();
        assert!(matches!(
            err,
            ConnInfoError::UnsupportedValue { keyword: "ssl", .. }
        ));
    }

    #[test]
    fn query_errors() {
        let err = parse("postgres://h?sslmode").unwrap_err();
        assert_eq!(
            err,
            ConnInfoError::QueryParameterWithoutValue {
                name: "sslmode".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "url query parameter \"sslmode\" has no value: expected sslmode=value"
        );
        let err = parse(&format!("postgres://u:{SECRET}@h?colour=blue")).unwrap_err();
        assert_eq!(
            err,
            ConnInfoError::UnknownKeyword {
                keyword: Some("colour".into())
            }
        );
    }

    #[test]
    fn bad_percent_encoding_names_component_only() {
        for (url, component) in [
            ("postgres://u%zz@h", "user name"),
            (&format!("postgres://u:{SECRET}%4@h") as &str, "password"),
            (&format!("postgres://u:{SECRET}%00@h"), "password"),
            (&format!("postgres://u:{SECRET}%FF@h"), "password"),
            ("postgres://h%/db", "host"),
            ("postgres://h:%35%/db", "port"),
            ("postgres://h/d%", "database name"),
            ("postgres://h?a%=1", "query parameter name"),
            (
                &format!("postgres://h?password={SECRET}%"),
                "value of query parameter \"password\"",
            ),
        ] {
            let err = parse(url).unwrap_err();
            assert_eq!(
                err,
                ConnInfoError::InvalidPercentEncoding {
                    component: component.into()
                },
                "{url}"
            );
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(SECRET), "{shown}");
        }
    }

    #[test]
    fn bad_ipv6_brackets() {
        for url in ["postgres://[::1", "postgres://[]:5432", "postgres://[::1]x"] {
            assert!(
                matches!(parse(url).unwrap_err(), ConnInfoError::InvalidUrl { .. }),
                "{url}"
            );
        }
    }

    #[test]
    fn decode_helper() {
        assert_eq!(decode("a%20b%2fc", "x").unwrap(), "a b/c");
        assert_eq!(decode("+", "x").unwrap(), "+");
        assert!(decode("%g0", "x").is_err());
    }
}
