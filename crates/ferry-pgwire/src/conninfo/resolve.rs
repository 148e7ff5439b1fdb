//! From [`RawSettings`] to [`ConnParams`]: environment fallbacks, defaults and validation.
//!
//! Precedence is libpq's: a keyword in the string beats its `PG*` variable, which beats the
//! default. A keyword given with an empty value still shadows the variable and then means "the
//! default", as in libpq. Everything the machine contributes (variables, OS user, which files
//! exist) comes in through [`Machine`], so resolution is a pure function under test.
//!
//! Files that libpq would look for at connect time (`~/.pgpass`, `~/.postgresql/root.crt`,
//! `postgresql.crt`, `postgresql.key`) are resolved here to concrete paths, so the TLS and
//! authentication code never consult `$HOME` themselves.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::RawSettings;
use super::{ConnInfoError, ConnParams, Endpoint, Host, SslMode};

/// The port libpq uses when none is given.
pub const DEFAULT_PORT: u16 = 5432;

/// The socket directory used by default when it exists (Debian's and most distributions'
/// libpq build); otherwise the default host is `localhost`.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// The `sslrootcert` value that asks for the operating system's trust store.
pub const SSLROOTCERT_SYSTEM: &str = "system";

/// What resolution may ask of the machine.
pub(super) struct Machine<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub os_user: &'a str,
    pub path_exists: &'a dyn Fn(&Path) -> bool,
}

/// A setting's value and, if it came from the environment, the variable's name.
struct Picked {
    value: String,
    env_var: Option<&'static str>,
}

impl Machine<'_> {
    /// The string's value, else the variable's; `None` if neither is given or the winner is
    /// empty.
    fn pick(&self, raw: Option<String>, env_var: &'static str) -> Option<Picked> {
        let picked = match raw {
            Some(value) => Picked {
                value,
                env_var: None,
            },
            None => Picked {
                value: (self.env)(env_var)?,
                env_var: Some(env_var),
            },
        };
        (!picked.value.is_empty()).then_some(picked)
    }

    fn home(&self) -> Option<PathBuf> {
        (self.env)("HOME")
            .filter(|home| !home.is_empty())
            .map(PathBuf::from)
    }

    /// `~/.postgresql/<name>` if it exists.
    fn default_cert_file(&self, name: &str) -> Option<PathBuf> {
        let path = self.home()?.join(".postgresql").join(name);
        (self.path_exists)(&path).then_some(path)
    }
}

pub(super) fn resolve(
    raw: RawSettings,
    machine: &Machine<'_>,
) -> Result<ConnParams, ConnInfoError> {
    let hosts = resolve_hosts(&raw, machine)?;

    let user = machine
        .pick(raw.user, "PGUSER")
        .map(|p| p.value)
        .unwrap_or_else(|| machine.os_user.to_owned());
    if user.is_empty() {
        return Err(ConnInfoError::NoUser);
    }
    let dbname = machine
        .pick(raw.dbname, "PGDATABASE")
        .map_or_else(|| user.clone(), |p| p.value);
    let password = match raw.password {
        Some(password) => Some(password).filter(|p| !p.expose().is_empty()),
        None => machine
            .pick(None, "PGPASSWORD")
            .map(|p| super::Password::new(p.value)),
    };

    let sslrootcert = match machine.pick(raw.sslrootcert, "PGSSLROOTCERT") {
        Some(p) => Some(PathBuf::from(p.value)),
        None => machine.default_cert_file("root.crt"),
    };
    let system_roots = sslrootcert.as_deref() == Some(Path::new(SSLROOTCERT_SYSTEM));
    let sslmode = match machine.pick(raw.sslmode, "PGSSLMODE") {
        Some(p) => {
            let mode: SslMode = p.value.parse().map_err(|_| ConnInfoError::InvalidSslMode {
                value: p.value,
                env_var: p.env_var,
            })?;
            if system_roots && mode != SslMode::VerifyFull {
                return Err(ConnInfoError::WeakSslModeWithSystemRoots { sslmode: mode });
            }
            mode
        }
        // Since PostgreSQL 16, trusting the system store implies checking the host name.
        None if system_roots => SslMode::VerifyFull,
        None => SslMode::Prefer,
    };
    let sslcert = match machine.pick(raw.sslcert, "PGSSLCERT") {
        Some(p) => Some(PathBuf::from(p.value)),
        None => machine.default_cert_file("postgresql.crt"),
    };
    let sslkey = match machine.pick(raw.sslkey, "PGSSLKEY") {
        Some(p) => Some(PathBuf::from(p.value)),
        None => machine.default_cert_file("postgresql.key"),
    };
    let passfile = match machine.pick(raw.passfile, "PGPASSFILE") {
        Some(p) => Some(PathBuf::from(p.value)),
        None => machine.home().map(|home| home.join(".pgpass")),
    };

    let application_name = machine
        .pick(raw.application_name, "PGAPPNAME")
        .map(|p| p.value)
        .or_else(|| {
            raw.fallback_application_name
                .filter(|name| !name.is_empty())
        });
    let connect_timeout = machine
        .pick(raw.connect_timeout, "PGCONNECT_TIMEOUT")
        .map(parse_connect_timeout)
        .transpose()?
        .flatten();
    let options = machine.pick(raw.options, "PGOPTIONS").map(|p| p.value);

    Ok(ConnParams {
        hosts,
        user,
        password,
        dbname,
        sslmode,
        sslrootcert,
        sslcert,
        sslkey,
        passfile,
        application_name,
        connect_timeout,
        options,
    })
}

/// Pairs the comma-separated host and port lists as libpq does: one port applies to every
/// host, otherwise there must be one port per host. Empty entries mean the default.
fn resolve_hosts(raw: &RawSettings, machine: &Machine<'_>) -> Result<Vec<Endpoint>, ConnInfoError> {
    let host = machine.pick(raw.host.clone(), "PGHOST");
    let hostaddr = machine.pick(raw.hostaddr.clone(), "PGHOSTADDR");
    let host = match (host, hostaddr) {
        (Some(host), Some(addr)) if host.value != addr.value => {
            return Err(ConnInfoError::HostaddrWithHost)
        }
        (host, addr) => host.or(addr),
    };
    let names: Vec<&str> = match &host {
        Some(p) => p.value.split(',').collect(),
        None => vec![""],
    };

    let ports: Vec<u16> = match machine.pick(raw.port.clone(), "PGPORT") {
        Some(p) => p
            .value
            .split(',')
            .map(|port| parse_port(port, p.env_var))
            .collect::<Result<_, _>>()?,
        None => vec![DEFAULT_PORT],
    };
    let port_for = |i: usize| {
        match ports.as_slice() {
            [one] => Some(*one),
            many if many.len() == names.len() => many.get(i).copied(),
            _ => None,
        }
        .ok_or(ConnInfoError::HostPortMismatch {
            hosts: names.len(),
            ports: ports.len(),
        })
    };

    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            Ok(Endpoint {
                host: host_from(name, machine),
                port: port_for(i)?,
            })
        })
        .collect()
}

fn host_from(name: &str, machine: &Machine<'_>) -> Host {
    if name.is_empty() {
        let dir = Path::new(DEFAULT_SOCKET_DIR);
        if (machine.path_exists)(dir) {
            Host::Unix(dir.to_path_buf())
        } else {
            Host::Tcp("localhost".to_owned())
        }
    } else if name.starts_with('/') {
        Host::Unix(PathBuf::from(name))
    } else {
        Host::Tcp(name.to_owned())
    }
}

fn parse_port(text: &str, env_var: Option<&'static str>) -> Result<u16, ConnInfoError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(DEFAULT_PORT);
    }
    match trimmed.parse::<u16>() {
        Ok(port) if port != 0 && trimmed.bytes().all(|b| b.is_ascii_digit()) => Ok(port),
        _ => Err(ConnInfoError::InvalidPort {
            value: text.to_owned(),
            env_var,
        }),
    }
}

/// libpq semantics: zero or negative waits forever; anything under 2 seconds means 2.
fn parse_connect_timeout(p: Picked) -> Result<Option<Duration>, ConnInfoError> {
    let seconds: i64 =
        p.value
            .trim()
            .parse()
            .map_err(|_| ConnInfoError::InvalidConnectTimeout {
                value: p.value.clone(),
                env_var: p.env_var,
            })?;
    Ok(u64::try_from(seconds)
        .ok()
        .filter(|&s| s > 0)
        .map(|s| Duration::from_secs(s.max(2))))
}

#[cfg(test)]
mod tests;
