//! [`Plugin`]: the logical decoding output plugins Ferry reads, and what each needs.
//!
//! The set is closed (DESIGN.md: enums, not registries). Each plugin knows the oldest server
//! it works with and how a user installs it, so `check` can say both.

use std::fmt;
use std::str::FromStr;

/// A logical decoding output plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plugin {
    /// Built into PostgreSQL 10 and later; the one native subscriptions use.
    Pgoutput,
    /// JSON output, available from PostgreSQL 9.4.
    Wal2json,
    /// Protocol buffers, Debezium's format.
    Decoderbufs,
}

impl Plugin {
    /// Every plugin, in the order the docs list them.
    pub const ALL: [Plugin; 3] = [Plugin::Pgoutput, Plugin::Wal2json, Plugin::Decoderbufs];

    /// The name the server loads (`CREATE_REPLICATION_SLOT … LOGICAL <name>`).
    pub fn name(self) -> &'static str {
        match self {
            Plugin::Pgoutput => "pgoutput",
            Plugin::Wal2json => "wal2json",
            Plugin::Decoderbufs => "decoderbufs",
        }
    }

    /// The oldest server version (`server_version_num`) the plugin runs on.
    pub fn min_server_version(self) -> u32 {
        match self {
            Plugin::Pgoutput => 100_000,
            Plugin::Wal2json => 90_400,
            Plugin::Decoderbufs => 90_600,
        }
    }

    /// How to install the plugin on a server of major version `major`.
    pub fn install_hint(self, major: &str) -> String {
        match self {
            Plugin::Pgoutput => "pgoutput ships with PostgreSQL 10 and later".to_owned(),
            Plugin::Wal2json => format!(
                "install it on the database server: apt-get install postgresql-{major}-wal2json \
                 (Debian/Ubuntu) or dnf install wal2json_{major} (PGDG on RHEL)"
            ),
            Plugin::Decoderbufs => format!(
                "install it on the database server: apt-get install postgresql-{major}-decoderbufs \
                 (Debian/Ubuntu); no restart is needed"
            ),
        }
    }
}

impl fmt::Display for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Plugin {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Plugin::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                format!("unknown plugin {s:?}: expected pgoutput, wal2json or decoderbufs")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Plugin::ALL {
            assert_eq!(p.name().parse::<Plugin>().unwrap(), p);
        }
        assert!("test_decoding".parse::<Plugin>().is_err());
    }
}
