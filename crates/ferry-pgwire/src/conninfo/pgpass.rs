//! The password file (`~/.pgpass`, `passfile`, `PGPASSFILE`), read as libpq's
//! `passwordFromFile` does.
//!
//! Each line is `hostname:port:database:username:password`; a field that is exactly `*`
//! matches anything, `\:` and `\\` escape a colon and a backslash, and lines starting with `#`
//! are comments. The first matching line wins. A file that is group- or world-accessible is
//! skipped with a warning, because a password readable by others must not be trusted to stay
//! secret (libpq refuses it for the same reason).
//!
//! Invariant: nothing from the file's content reaches a log or an error; warnings name only
//! the file. Matching is split from I/O ([`find_password`]) so it is tested without files.

use std::fs;
use std::io;
use std::path::Path;

use tracing::warn;

use super::{Endpoint, Host, Password};

/// What a line must match: the connection's host, port, database and user.
pub(super) struct Key<'a> {
    /// Any of these host spellings matches (a unix socket matches its directory or
    /// `localhost`).
    pub hosts: Vec<String>,
    pub port: u16,
    pub dbname: &'a str,
    pub user: &'a str,
}

impl<'a> Key<'a> {
    pub fn new(endpoint: &Endpoint, dbname: &'a str, user: &'a str) -> Self {
        let hosts = match &endpoint.host {
            Host::Tcp(name) => vec![name.clone()],
            // libpq maps only its compiled-in default socket directory to "localhost"; that
            // directory differs between builds, so any socket directory matches either.
            Host::Unix(dir) => vec![dir.to_string_lossy().into_owned(), "localhost".to_owned()],
        };
        Key {
            hosts,
            port: endpoint.port,
            dbname,
            user,
        }
    }
}

/// Looks `key` up in the password file at `path`. A missing file is silently no password; an
/// unreadable or insecure one is no password plus a warning.
pub(super) fn lookup(path: &Path, key: &Key<'_>) -> Option<Password> {
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return None,
        Err(err) => {
            warn!(path = %path.display(), error = %err, "cannot read password file, ignoring it");
            return None;
        }
    };
    if !metadata.is_file() {
        warn!(path = %path.display(), "password file is not a plain file, ignoring it");
        return None;
    }
    if is_group_or_world_accessible(&metadata) {
        warn!(
            path = %path.display(),
            "password file has group or world access, ignoring it: permissions should be \
             u=rw (0600) or less"
        );
        return None;
    }
    match fs::read(path) {
        Ok(bytes) => find_password(&String::from_utf8_lossy(&bytes), key),
        Err(err) => {
            warn!(path = %path.display(), error = %err, "cannot read password file, ignoring it");
            None
        }
    }
}

#[cfg(unix)]
fn is_group_or_world_accessible(metadata: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o077 != 0
}

#[cfg(not(unix))]
fn is_group_or_world_accessible(_metadata: &fs::Metadata) -> bool {
    false
}

/// The password of the first line of `contents` matching `key`; an empty password counts as
/// none, so the server's own password request still fails clearly.
pub(super) fn find_password(contents: &str, key: &Key<'_>) -> Option<Password> {
    let port = key.port.to_string();
    contents
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(split_fields)
        .find(|fields| {
            key.hosts.iter().any(|host| fields[0].matches(host))
                && fields[1].matches(&port)
                && fields[2].matches(key.dbname)
                && fields[3].matches(key.user)
        })
        .map(|fields| fields[4].value.clone())
        .filter(|password| !password.is_empty())
        .map(Password::new)
}

/// One colon-separated field with escapes removed.
struct Field {
    value: String,
    /// The field was an unescaped `*`.
    wildcard: bool,
}

impl Field {
    fn matches(&self, token: &str) -> bool {
        self.wildcard || self.value == token
    }
}

/// Splits a line into its first five fields, or `None` if it has fewer. Text after a fifth
/// unescaped colon is ignored, as libpq does.
fn split_fields(line: &str) -> Option<[Field; 5]> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut fields = Vec::with_capacity(5);
    let mut value = String::new();
    let mut escaped_any = false;
    let mut chars = line.chars();
    loop {
        match chars.next() {
            Some('\\') => {
                escaped_any = true;
                // A trailing lone backslash is kept as is.
                value.push(chars.next().unwrap_or('\\'));
            }
            Some(c) if c != ':' => value.push(c),
            end => {
                fields.push(Field {
                    wildcard: value == "*" && !escaped_any,
                    value: std::mem::take(&mut value),
                });
                escaped_any = false;
                if end.is_none() || fields.len() == 5 {
                    break;
                }
            }
        }
    }
    fields.try_into().ok()
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::PathBuf;

    use super::*;

    fn tcp(host: &str, port: u16) -> Endpoint {
        Endpoint {
            host: Host::Tcp(host.into()),
            port,
        }
    }

    fn find(contents: &str, endpoint: &Endpoint, db: &str, user: &str) -> Option<String> {
        find_password(contents, &Key::new(endpoint, db, user)).map(|p| p.expose().to_owned())
    }

    #[test]
    fn exact_match_and_first_line_wins() {
        let file = "db1:5432:app:alice:first\ndb1:5432:app:alice:second\n";
        assert_eq!(
            find(file, &tcp("db1", 5432), "app", "alice").as_deref(),
            Some("first")
        );
        assert_eq!(find(file, &tcp("db2", 5432), "app", "alice"), None);
        assert_eq!(find(file, &tcp("db1", 5433), "app", "alice"), None);
        assert_eq!(find(file, &tcp("db1", 5432), "other", "alice"), None);
        assert_eq!(find(file, &tcp("db1", 5432), "app", "bob"), None);
    }

    #[test]
    fn wildcards() {
        let file = "db1:*:app:*:one\n*:*:*:*:fallback\n";
        assert_eq!(
            find(file, &tcp("db1", 6000), "app", "x").as_deref(),
            Some("one")
        );
        assert_eq!(
            find(file, &tcp("zz", 1), "q", "r").as_deref(),
            Some("fallback")
        );
        // Only a whole-field "*" is a wildcard, and "\*" is a literal star.
        let file = "db*:5432:app:alice:no\n\\*:5432:app:alice:star\n";
        assert_eq!(find(file, &tcp("db1", 5432), "app", "alice"), None);
        assert_eq!(
            find(file, &tcp("*", 5432), "app", "alice").as_deref(),
            Some("star")
        );
    }

    #[test]
    fn escapes() {
        let file = r"db1:5432:my\:db:al\\ice:pa\:ss\\word";
        assert_eq!(
            find(file, &tcp("db1", 5432), "my:db", r"al\ice").as_deref(),
            Some(r"pa:ss\word")
        );
    }

    #[test]
    fn comments_blank_and_short_lines_are_skipped() {
        let file = "# db1:5432:app:alice:commented\n\n db1:5432:app:alice\n\
                    db1:5432:app:alice:real\r\n";
        assert_eq!(
            find(file, &tcp("db1", 5432), "app", "alice").as_deref(),
            Some("real")
        );
        assert_eq!(find("#*:*:*:*:x", &tcp("#*", 5432), "a", "b"), None);
    }

    #[test]
    fn extra_fields_are_ignored_and_empty_password_is_none() {
        assert_eq!(
            find("*:*:*:*:pw:extra", &tcp("h", 1), "d", "u").as_deref(),
            Some("pw")
        );
        assert_eq!(find("*:*:*:*:", &tcp("h", 1), "d", "u"), None);
        assert_eq!(
            find("*:*:*:*:\n*:*:*:*:later", &tcp("h", 1), "d", "u"),
            None
        );
    }

    #[test]
    fn unix_socket_matches_directory_or_localhost() {
        let socket = Endpoint {
            host: Host::Unix(PathBuf::from("/var/run/postgresql")),
            port: 5432,
        };
        let file = "localhost:5432:app:alice:local\n";
        assert_eq!(
            find(file, &socket, "app", "alice").as_deref(),
            Some("local")
        );
        let file = "/var/run/postgresql:5432:app:alice:bydir\n";
        assert_eq!(
            find(file, &socket, "app", "alice").as_deref(),
            Some("bydir")
        );
        assert_eq!(
            find("/tmp:5432:app:alice:x\n", &socket, "app", "alice"),
            None
        );
    }

    fn write_file(dir: &Path, contents: &str, mode: u32) -> PathBuf {
        let path = dir.join("pgpass");
        let mut file = fs::File::create(&path).unwrap();
        file.write_all(contents.as_bytes()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        }
        #[cfg(not(unix))]
        let _ = mode;
        path
    }

    #[test]
    fn lookup_reads_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "db1:5432:app:alice:secret\n", 0o600);
        let endpoint = tcp("db1", 5432);
        let key = Key::new(&endpoint, "app", "alice");
        assert_eq!(lookup(&path, &key).unwrap().expose(), "secret");
    }

    #[cfg(unix)]
    #[test]
    fn lookup_skips_group_or_world_accessible_file() {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = tcp("db1", 5432);
        let key = Key::new(&endpoint, "app", "alice");
        for mode in [0o640, 0o604, 0o660, 0o610] {
            let path = write_file(dir.path(), "*:*:*:*:secret\n", mode);
            assert_eq!(lookup(&path, &key), None, "mode {mode:o}");
        }
        let path = write_file(dir.path(), "*:*:*:*:secret\n", 0o400);
        assert!(lookup(&path, &key).is_some());
    }

    #[test]
    fn lookup_of_missing_file_or_directory_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = tcp("db1", 5432);
        let key = Key::new(&endpoint, "app", "alice");
        assert_eq!(lookup(&dir.path().join("absent"), &key), None);
        assert_eq!(lookup(dir.path(), &key), None);
    }
}
