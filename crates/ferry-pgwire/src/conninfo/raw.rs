//! `RawSettings`: the settings exactly as a connection string spelled them, one slot per
//! supported keyword, before environment fallbacks and defaults are applied.
//!
//! Both the URL and the keyword parser funnel every `keyword=value` through
//! [`RawSettings::set`], so the set of accepted keywords (and the harmless libpq keywords that
//! are accepted but ignored) is decided in one place. A slot holding `Some("")` means "given
//! but empty": like libpq, that shadows the environment variable and then falls back to the
//! default.

use super::{ConnInfoError, Password};

/// Settings as written in a connection string; `None` means the keyword did not appear.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct RawSettings {
    pub host: Option<String>,
    pub hostaddr: Option<String>,
    pub port: Option<String>,
    pub user: Option<String>,
    pub password: Option<Password>,
    pub dbname: Option<String>,
    pub sslmode: Option<String>,
    pub sslrootcert: Option<String>,
    pub sslcert: Option<String>,
    pub sslkey: Option<String>,
    pub passfile: Option<String>,
    pub application_name: Option<String>,
    pub fallback_application_name: Option<String>,
    pub connect_timeout: Option<String>,
    pub options: Option<String>,
}

impl RawSettings {
    /// Records one `keyword=value`; a repeated keyword overrides the earlier one, as in libpq.
    pub fn set(&mut self, keyword: &str, value: String) -> Result<(), ConnInfoError> {
        let slot = match keyword {
            "host" => &mut self.host,
            "hostaddr" => &mut self.hostaddr,
            "port" => &mut self.port,
            "user" => &mut self.user,
            "password" => {
                self.password = Some(Password::new(value));
                return Ok(());
            }
            "dbname" => &mut self.dbname,
            "sslmode" => &mut self.sslmode,
            "sslrootcert" => &mut self.sslrootcert,
            "sslcert" => &mut self.sslcert,
            "sslkey" => &mut self.sslkey,
            "passfile" => &mut self.passfile,
            "application_name" => &mut self.application_name,
            "fallback_application_name" => &mut self.fallback_application_name,
            "connect_timeout" => &mut self.connect_timeout,
            "options" => &mut self.options,
            // TCP keepalive tuning: the client's socket defaults are fine, and ignoring these
            // never changes which server we reach or how securely.
            "keepalives"
            | "keepalives_idle"
            | "keepalives_interval"
            | "keepalives_count"
            | "tcp_user_timeout" => return Ok(()),
            "target_session_attrs" => {
                return accept_only("target_session_attrs", value, &["any"], "any");
            }
            // No GSSAPI support: "prefer" falls back to no GSS encryption, as libpq does when
            // no credentials are available.
            "gssencmode" => {
                return accept_only(
                    "gssencmode",
                    value,
                    &["disable", "prefer"],
                    "disable or prefer (GSSAPI encryption is not supported)",
                );
            }
            other => {
                return Err(ConnInfoError::UnknownKeyword {
                    keyword: Some(other.to_owned()),
                })
            }
        };
        *slot = Some(value);
        Ok(())
    }
}

/// Accepts an ignored keyword only with a value that keeps its meaning when ignored.
fn accept_only(
    keyword: &'static str,
    value: String,
    allowed: &[&str],
    expected: &'static str,
) -> Result<(), ConnInfoError> {
    if value.is_empty() || allowed.contains(&value.as_str()) {
        Ok(())
    } else {
        Err(ConnInfoError::UnsupportedValue {
            keyword,
            value,
            expected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_value_wins() {
        let mut raw = RawSettings::default();
        raw.set("host", "a".into()).unwrap();
        raw.set("host", "b".into()).unwrap();
        assert_eq!(raw.host.as_deref(), Some("b"));
    }

    #[test]
    fn harmless_keywords_are_ignored() {
        let mut raw = RawSettings::default();
        for (k, v) in [
            ("keepalives", "1"),
            ("keepalives_idle", "30"),
            ("tcp_user_timeout", "0"),
            ("target_session_attrs", "any"),
            ("gssencmode", "disable"),
            ("gssencmode", "prefer"),
        ] {
            raw.set(k, v.into()).unwrap();
        }
        assert_eq!(raw, RawSettings::default());
    }

    #[test]
    fn ignored_keyword_with_meaningful_value_is_refused() {
        let mut raw = RawSettings::default();
        let err = raw
            .set("target_session_attrs", "read-write".into())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported value \"read-write\" for target_session_attrs: expected any"
        );
        let err = raw.set("gssencmode", "require".into()).unwrap_err();
        assert!(matches!(
            err,
            ConnInfoError::UnsupportedValue {
                keyword: "gssencmode",
                ..
            }
        ));
    }

    #[test]
    fn unknown_keyword_is_named() {
        let err = RawSettings::default()
            .set("replication", "database".into())
            .unwrap_err();
        assert_eq!(
            err,
            ConnInfoError::UnknownKeyword {
                keyword: Some("replication".into())
            }
        );
        assert!(err.to_string().starts_with(
            "unknown connection option \"replication\": supported options are host, hostaddr"
        ));
    }
}
