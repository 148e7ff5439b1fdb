//! `ConnInfoError`: everything that can be wrong with a connection string or the `PG*`
//! environment.
//!
//! Invariant: no message ever carries the password. Errors name the offending keyword and, for
//! settings that are never secret (port, sslmode, connect_timeout, ...), the offending value;
//! they never echo the input string, because it may hold a password.

use std::fmt;

use super::SslMode;

/// The keywords a connection string may use, listed in "unknown keyword" errors.
pub(super) const SUPPORTED_KEYWORDS: &str = "host, hostaddr, port, user, password, dbname, \
     sslmode, sslrootcert, sslcert, sslkey, passfile, application_name, \
     fallback_application_name, connect_timeout, options (ignored: keepalives, keepalives_idle, \
     keepalives_interval, keepalives_count, tcp_user_timeout, target_session_attrs=any, \
     gssencmode=disable|prefer)";

/// A connection string or `PG*` variable that cannot be used, with what was expected instead.
///
/// All variants are definite: retrying with the same settings fails the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnInfoError {
    #[error(
        "invalid port \"{value}\"{origin}: expected a number from 1 to 65535",
        origin = Origin(*.env_var)
    )]
    InvalidPort {
        value: String,
        /// The environment variable the value came from, if not from the string.
        env_var: Option<&'static str>,
    },

    #[error(
        "invalid sslmode \"{value}\"{origin}: expected one of disable, allow, prefer, require, \
         verify-ca, verify-full",
        origin = Origin(*.env_var)
    )]
    InvalidSslMode {
        value: String,
        env_var: Option<&'static str>,
    },

    #[error(
        "sslmode={sslmode} cannot be used with sslrootcert=system: use sslmode=verify-full or \
         leave sslmode out"
    )]
    WeakSslModeWithSystemRoots { sslmode: SslMode },

    #[error(
        "invalid connect_timeout \"{value}\"{origin}: expected a whole number of seconds",
        origin = Origin(*.env_var)
    )]
    InvalidConnectTimeout {
        value: String,
        env_var: Option<&'static str>,
    },

    #[error(
        "unterminated quoted value for \"{keyword}\" starting at position {position}: expected \
         a closing ' (write \\' for a quote inside the value)"
    )]
    UnterminatedQuote {
        keyword: String,
        /// 1-based character position of the opening quote.
        position: usize,
    },

    /// `keyword` is `None` when the word may be a fragment of an unquoted password that
    /// contained a space, so it must not be printed.
    #[error(
        "missing \"=\" after {word} at position {position}: expected keyword=value (quote values \
         that contain spaces)",
        word = Word(.keyword)
    )]
    MissingEquals {
        keyword: Option<String>,
        /// 1-based character position where the word starts.
        position: usize,
    },

    /// `keyword` is `None` for the same reason as in [`ConnInfoError::MissingEquals`].
    #[error(
        "unknown connection option {word}: supported options are {SUPPORTED_KEYWORDS}",
        word = Word(.keyword)
    )]
    UnknownKeyword { keyword: Option<String> },

    #[error("unsupported value \"{value}\" for {keyword}: expected {expected}")]
    UnsupportedValue {
        keyword: &'static str,
        value: String,
        expected: &'static str,
    },

    #[error(
        "invalid percent-encoding in the connection url {component}: expected %XX escapes \
         (two hex digits, not %00) that decode to UTF-8"
    )]
    InvalidPercentEncoding { component: String },

    #[error("invalid connection url: {reason}")]
    InvalidUrl { reason: &'static str },

    #[error("url query parameter \"{name}\" has no value: expected {name}=value")]
    QueryParameterWithoutValue { name: String },

    #[error(
        "{ports} ports given for {hosts} hosts: expected one port for all hosts or one port per \
         host, in the same order"
    )]
    HostPortMismatch { hosts: usize, ports: usize },

    #[error(
        "hostaddr together with a different host is not supported: give only host (a name or \
         an IP address)"
    )]
    HostaddrWithHost,

    #[error(
        "no user name given and the operating system user name could not be determined: set \
         user in the connection string or PGUSER"
    )]
    NoUser,
}

impl ConnInfoError {
    /// Whether retrying could help: never, the settings themselves are wrong.
    pub fn is_transient(&self) -> bool {
        false
    }
}

/// Renders " in PGPORT" after a value that came from the environment.
struct Origin(Option<&'static str>);

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(var) => write!(f, " in {var}"),
            None => Ok(()),
        }
    }
}

/// Renders a keyword, or a neutral phrase when it may be part of a password.
struct Word<'a>(&'a Option<String>);

impl fmt::Display for Word<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(keyword) => write!(f, "\"{keyword}\""),
            None => f.write_str(
                "the word following the unquoted password (quote a password that contains spaces)",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_origin_is_named() {
        let err = ConnInfoError::InvalidPort {
            value: "abc".into(),
            env_var: Some("PGPORT"),
        };
        assert_eq!(
            err.to_string(),
            "invalid port \"abc\" in PGPORT: expected a number from 1 to 65535"
        );
    }

    #[test]
    fn redacted_word_is_not_printed() {
        let err = ConnInfoError::UnknownKeyword { keyword: None };
        let msg = err.to_string();
        assert!(
            msg.starts_with("unknown connection option the word following the unquoted password")
        );
        assert!(msg.contains("supported options are host, hostaddr, port"));
    }

    #[test]
    fn no_error_is_transient() {
        assert!(!ConnInfoError::NoUser.is_transient());
    }
}
