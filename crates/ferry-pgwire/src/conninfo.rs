//! Connection settings as libpq users know them: [`ConnParams`], parsed from a URL or a
//! keyword/value string, completed from the `PG*` environment and libpq's defaults.
//!
//! One type serves both tokio-postgres (SQL) and Ferry's replication client, so a connection
//! string means the same server, user and TLS policy to both. The pipeline is:
//!
//! ```text
//!  "postgres://..."     ── url::parse ──────┐
//!                                           ├─ RawSettings ── resolve ── ConnParams
//!  "host=... port=..."  ── keyword::parse ──┘   (PG* env, defaults)         │
//!                                                                           │ per endpoint,
//!                                          pgpass ── resolve_password ◄─────┘ at connect time
//! ```
//!
//! Invariants: a `ConnParams` always has at least one endpoint, a non-empty user and dbname;
//! the password is a [`Password`], whose `Debug` and `Display` print `***`, and no error, log
//! line or [`ConnParams::redacted`] string ever contains it.
//!
//! Files libpq looks for implicitly are resolved during parsing (documented on each field), so
//! later code needs no access to `$HOME`. `sslrootcert=system` is kept as the path `system`;
//! [`ConnParams::uses_system_roots`] tells it apart.

mod error;
mod keyword;
mod pgpass;
mod raw;
mod resolve;
mod url;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

pub use error::ConnInfoError;
pub use resolve::{DEFAULT_PORT, DEFAULT_SOCKET_DIR, SSLROOTCERT_SYSTEM};

/// Everything needed to reach and authenticate to one PostgreSQL server (or a list of
/// candidates, tried in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnParams {
    /// At least one; tried in order, like libpq's multi-host strings.
    pub hosts: Vec<Endpoint>,
    pub user: String,
    /// Given in the string or `PGPASSWORD`; the password file is consulted later, per
    /// endpoint, by [`ConnParams::resolve_password`].
    pub password: Option<Password>,
    pub dbname: String,
    pub sslmode: SslMode,
    /// Given, or `~/.postgresql/root.crt` when that file exists (libpq's default). As in libpq,
    /// a root certificate makes `sslmode=require` verify the chain like `verify-ca`.
    pub sslrootcert: Option<PathBuf>,
    /// Given, or `~/.postgresql/postgresql.crt` when that file exists.
    pub sslcert: Option<PathBuf>,
    /// Given, or `~/.postgresql/postgresql.key` when that file exists.
    pub sslkey: Option<PathBuf>,
    /// `passfile` / `PGPASSFILE`, else `$HOME/.pgpass`; `None` only when `$HOME` is unknown.
    pub passfile: Option<PathBuf>,
    pub application_name: Option<String>,
    /// `None` waits forever; libpq rounds values under 2 seconds up to 2.
    pub connect_timeout: Option<Duration>,
    /// libpq `options`, sent to the server at startup (e.g. `-c statement_timeout=0`).
    pub options: Option<String>,
}

/// One server address: a TCP host and port, or a unix socket directory and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub host: Host,
    pub port: u16,
}

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A host name or IP address, without brackets.
    Tcp(String),
    /// A directory holding the socket `.s.PGSQL.<port>`.
    Unix(PathBuf),
}

/// libpq's `sslmode`, from weakest to strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SslMode {
    Disable,
    Allow,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A secret that prints as `***` and is never serialized.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl ConnParams {
    /// Parses a URL or keyword/value string, completing it from the process environment, the
    /// OS user name and the files present on this machine.
    pub fn parse(s: &str) -> Result<ConnParams, ConnInfoError> {
        let env = |name: &str| std::env::var(name).ok();
        let os_user = os_user_name(&env);
        Self::parse_with(s, &env, &os_user, &|path| path.exists())
    }

    /// [`ConnParams::parse`] with the machine injected: `env` reads a variable (including
    /// `HOME`), `os_user` is the default user, `path_exists` decides the default socket
    /// directory and the default certificate files.
    pub fn parse_with(
        s: &str,
        env: &dyn Fn(&str) -> Option<String>,
        os_user: &str,
        path_exists: &dyn Fn(&Path) -> bool,
    ) -> Result<ConnParams, ConnInfoError> {
        let s = s.trim();
        let raw = if url::is_url(s) {
            url::parse(s)?
        } else {
            keyword::parse(s)?
        };
        let machine = resolve::Machine {
            env,
            os_user,
            path_exists,
        };
        resolve::resolve(raw, &machine)
    }

    /// The password for `endpoint`: the explicit one if given, else the first matching line of
    /// the password file. Reads the file on each call (it may change between reconnects); an
    /// insecure or unreadable file is skipped with a warning naming only the file.
    pub fn resolve_password(&self, endpoint: &Endpoint) -> Option<Password> {
        if let Some(password) = &self.password {
            return Some(password.clone());
        }
        let passfile = self.passfile.as_deref()?;
        pgpass::lookup(
            passfile,
            &pgpass::Key::new(endpoint, &self.dbname, &self.user),
        )
    }

    /// The root certificate file to verify servers with: `sslrootcert`, which parsing already
    /// defaulted to `~/.postgresql/root.crt` when that exists. May be the path `system` (see
    /// [`ConnParams::uses_system_roots`]).
    pub fn effective_sslrootcert(&self) -> Option<PathBuf> {
        self.sslrootcert.clone()
    }

    /// Whether `sslrootcert=system` asks for the operating system's trust store.
    pub fn uses_system_roots(&self) -> bool {
        self.sslrootcert.as_deref() == Some(Path::new(SSLROOTCERT_SYSTEM))
    }

    /// The settings as a keyword/value string with the password shown as `***`, for logs.
    pub fn redacted(&self) -> String {
        self.to_string()
    }
}

impl FromStr for ConnParams {
    type Err = ConnInfoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Prints [`ConnParams::redacted`]: keyword/value form that parses back to the same settings,
/// except that a password reads `***`.
impl fmt::Display for ConnParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use keyword::quote;
        let join = |part: fn(&Endpoint) -> String| {
            self.hosts.iter().map(part).collect::<Vec<_>>().join(",")
        };
        let hosts = join(|e| e.host.to_string());
        let ports = join(|e| e.port.to_string());
        write!(
            f,
            "host={} port={} user={}",
            quote(&hosts),
            quote(&ports),
            quote(&self.user)
        )?;
        if self.password.is_some() {
            f.write_str(" password=***")?;
        }
        write!(
            f,
            " dbname={} sslmode={}",
            quote(&self.dbname),
            self.sslmode
        )?;
        for (keyword, path) in [
            ("sslrootcert", &self.sslrootcert),
            ("sslcert", &self.sslcert),
            ("sslkey", &self.sslkey),
            ("passfile", &self.passfile),
        ] {
            if let Some(path) = path {
                write!(f, " {keyword}={}", quote(&path.to_string_lossy()))?;
            }
        }
        if let Some(name) = &self.application_name {
            write!(f, " application_name={}", quote(name))?;
        }
        if let Some(timeout) = self.connect_timeout {
            write!(f, " connect_timeout={}", timeout.as_secs())?;
        }
        if let Some(options) = &self.options {
            write!(f, " options={}", quote(options))?;
        }
        Ok(())
    }
}

impl Endpoint {
    /// The socket file for a unix endpoint (`<dir>/.s.PGSQL.<port>`), `None` for TCP.
    pub fn socket_path(&self) -> Option<PathBuf> {
        match &self.host {
            Host::Unix(dir) => Some(dir.join(format!(".s.PGSQL.{}", self.port))),
            Host::Tcp(_) => None,
        }
    }
}

/// `db1:5432`, `[::1]:5432`, or the socket file path.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.host, self.socket_path()) {
            (_, Some(socket)) => write!(f, "{}", socket.display()),
            (Host::Tcp(name), None) if name.contains(':') => write!(f, "[{name}]:{}", self.port),
            (host, None) => write!(f, "{host}:{}", self.port),
        }
    }
}

/// The name or IP as given, or the socket directory.
impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Tcp(name) => f.write_str(name),
            Host::Unix(dir) => write!(f, "{}", dir.display()),
        }
    }
}

impl SslMode {
    /// All modes, weakest first.
    pub const ALL: [SslMode; 6] = [
        SslMode::Disable,
        SslMode::Allow,
        SslMode::Prefer,
        SslMode::Require,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ];

    /// The libpq spelling, e.g. `verify-full`.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl FromStr for SslMode {
    type Err = ConnInfoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SslMode::ALL
            .into_iter()
            .find(|mode| mode.as_str() == s)
            .ok_or_else(|| ConnInfoError::InvalidSslMode {
                value: s.to_owned(),
                env_var: None,
            })
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Password {
    pub fn new(password: impl Into<String>) -> Self {
        Password(password.into())
    }

    /// The secret itself, for the authentication exchange only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Password {
    fn from(password: String) -> Self {
        Password(password)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The OS user name libpq would default to: the passwd entry of our uid, else `$USER` or
/// `$LOGNAME`; empty if none is known (then a user must be given).
fn os_user_name(env: &dyn Fn(&str) -> Option<String>) -> String {
    passwd_name_of_current_user()
        .or_else(|| env("USER"))
        .or_else(|| env("LOGNAME"))
        .unwrap_or_default()
}

#[cfg(unix)]
fn passwd_name_of_current_user() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    // /proc/self is owned by the process's effective uid; no libc call (and no unsafe) needed.
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let entry_uid: u32 = fields.nth(1)?.parse().ok()?;
        (entry_uid == uid && !name.is_empty()).then(|| name.to_owned())
    })
}

#[cfg(not(unix))]
fn passwd_name_of_current_user() -> Option<String> {
    None
}

#[cfg(test)]
mod tests;
