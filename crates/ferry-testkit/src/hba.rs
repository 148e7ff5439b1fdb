//! The pg_hba.conf of a test cluster.
//!
//! Local (unix socket) connections are always trusted, so the admin helpers work whatever the
//! test configures. TCP lines for 127.0.0.1/32 and ::1/128 use the builder's method, or the
//! test's own lines. Note that PostgreSQL matches the `replication` keyword only for
//! *physical* replication; a logical walsender (`replication=database`) is matched by the
//! ordinary database lines, so leaving out the `replication` lines does not stop it.

use crate::builder::Auth;

/// What the TCP part of pg_hba.conf says.
#[derive(Clone, Debug)]
pub(crate) enum TcpHba {
    /// `host all` lines, plus `host replication` lines when `replication` is set.
    Method { auth: Auth, replication: bool },
    /// Lines supplied verbatim by the test.
    Custom(Vec<String>),
}

/// The full text of pg_hba.conf.
pub(crate) fn render(tcp: &TcpHba) -> String {
    let mut lines = vec![
        "# ferry-testkit: local connections are trusted so the admin helpers always work"
            .to_owned(),
        "local all all trust".to_owned(),
        "local replication all trust".to_owned(),
    ];
    match tcp {
        TcpHba::Method { auth, replication } => {
            let mut databases = vec!["all"];
            if *replication {
                databases.push("replication");
            }
            for database in databases {
                for address in ["127.0.0.1/32", "::1/128"] {
                    lines.push(format!(
                        "host {database} all {address} {}",
                        auth.hba_method()
                    ));
                }
            }
        }
        TcpHba::Custom(custom) => lines.extend(custom.iter().cloned()),
    }
    lines.push(String::new());
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scram_without_replication_lines() {
        let text = render(&TcpHba::Method {
            auth: Auth::ScramSha256,
            replication: false,
        });
        assert!(text.contains("host all all 127.0.0.1/32 scram-sha-256"));
        assert!(text.contains("host all all ::1/128 scram-sha-256"));
        assert!(!text.contains("host replication"));
        assert!(text.contains("local replication all trust"));
    }

    #[test]
    fn custom_lines_replace_the_tcp_part() {
        let text = render(&TcpHba::Custom(vec![
            "host all all 127.0.0.1/32 reject".into()
        ]));
        assert!(text.ends_with("host all all 127.0.0.1/32 reject\n"));
        assert!(!text.contains("trust\nhost all all 127.0.0.1/32 trust"));
    }
}
