//! [`ServerVersion`]: which server we talk to, because replication syntax changed over time.
//!
//! The server reports `server_version` at startup as text (`15.18 (Debian 15.18-0+deb12u1)`,
//! `9.6.24`, `16beta1`); this turns it into the `server_version_num` form (150018, 90624)
//! that version checks compare.

use std::fmt;

/// A server version as `server_version_num`: major * 10000 + minor (10 and later), or
/// major * 10000 + minor * 100 + patch (9.x).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerVersion(pub u32);

impl ServerVersion {
    /// Parses the `server_version` parameter; `None` if it does not start with a number.
    pub fn parse(text: &str) -> Option<ServerVersion> {
        let numeric: String = text
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let mut parts = numeric.split('.').filter(|p| !p.is_empty());
        let major: u32 = parts.next()?.parse().ok()?;
        let second: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let third: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if major >= 10 {
            Some(ServerVersion(major * 10_000 + second.min(9_999)))
        } else {
            Some(ServerVersion(
                major * 10_000 + second.min(99) * 100 + third.min(99),
            ))
        }
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 100_000 {
            write!(f, "{}.{}", self.0 / 10_000, self.0 % 10_000)
        } else {
            write!(
                f,
                "{}.{}.{}",
                self.0 / 10_000,
                self.0 / 100 % 100,
                self.0 % 100
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_servers_report() {
        assert_eq!(
            ServerVersion::parse("15.18 (Debian 15.18-0+deb12u1)"),
            Some(ServerVersion(150_018))
        );
        assert_eq!(ServerVersion::parse("9.6.24"), Some(ServerVersion(90_624)));
        assert_eq!(ServerVersion::parse("9.4.0"), Some(ServerVersion(90_400)));
        assert_eq!(
            ServerVersion::parse("16beta1"),
            Some(ServerVersion(160_000))
        );
        assert_eq!(ServerVersion::parse("10.5"), Some(ServerVersion(100_005)));
        assert_eq!(ServerVersion::parse("banana"), None);
    }

    #[test]
    fn displays_as_people_write_it() {
        assert_eq!(ServerVersion(150_018).to_string(), "15.18");
        assert_eq!(ServerVersion(90_624).to_string(), "9.6.24");
    }
}
