//! The `initdb` template every cluster is copied from, cached on disk across processes.
//!
//! `initdb` takes a second or two; copying its output takes tens of milliseconds. Under
//! cargo-nextest every test is its own process, so an in-process cache alone would still run
//! `initdb` once per test: the template lives at
//! `<scratch>/template-<pg version>-<hash>`, where the hash covers everything that shapes it
//! (server version string, binary directory, initdb arguments, template settings, the owning
//! OS user, this crate's version and [`TEMPLATE_FORMAT`]). Change any of those and a new
//! template is built beside the old one.
//!
//! Building is crash-safe and race-safe: `initdb` writes into a private build directory, which
//! is renamed into place only when complete (a rename is atomic, and fails if another process
//! got there first, in which case we use theirs). An advisory `flock` on a lock file beside the
//! template keeps concurrent processes from all running `initdb` at once on a cold cache, and
//! a mutex does the same for threads of one process, which also memoises the path.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use nix::fcntl::{Flock, FlockArg};

use crate::error::TestkitError;
use crate::process::ServerUser;
use crate::scratch;

/// Bump when the template layout changes in a way the hash inputs do not capture.
const TEMPLATE_FORMAT: u32 = 1;

/// Where the PostgreSQL 15 binaries live unless `FERRY_PG_BIN` says otherwise.
const DEFAULT_PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// Arguments to `initdb` besides `-D`. The superuser is always `postgres`, whoever runs it.
const INITDB_ARGS: &[&str] = &[
    "--username=postgres",
    "--auth=trust",
    "--encoding=UTF8",
    "--locale=C",
    "--no-sync",
    "--no-instructions",
];

/// Settings appended to the template's postgresql.conf. These are throwaway clusters, so
/// durability is off; per-cluster settings (socket directory, TLS, the builder's own
/// settings) are appended later and win because they come last.
const TEMPLATE_CONF: &str = "
# ferry-testkit template settings: throwaway test clusters, durability is off
listen_addresses = '127.0.0.1'
max_connections = 50
shared_buffers = 32MB
wal_level = logical
max_wal_senders = 20
max_replication_slots = 20
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
";

/// The directory holding `initdb`, `postgres` and `psql`: `$FERRY_PG_BIN` or the Debian
/// location of PostgreSQL 15.
pub fn pg_bin_dir() -> PathBuf {
    std::env::var_os("FERRY_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PG_BIN))
}

/// Path of `program` in `bin_dir`, or an error that says how to fix a missing install.
pub(crate) fn program(bin_dir: &Path, program: &str) -> Result<PathBuf, TestkitError> {
    let path = bin_dir.join(program);
    if path.is_file() {
        Ok(path)
    } else {
        Err(TestkitError::MissingBinary { path })
    }
}

/// The template data directory for these binaries and this user, built if missing.
pub(crate) fn ensure(bin_dir: &Path, user: &ServerUser) -> Result<PathBuf, TestkitError> {
    static MEMO: Mutex<BTreeMap<(PathBuf, String), PathBuf>> = Mutex::new(BTreeMap::new());
    let mut memo = MEMO.lock().unwrap_or_else(|poison| poison.into_inner());
    let key = (bin_dir.to_path_buf(), user.name().to_owned());
    if let Some(path) = memo.get(&key) {
        return Ok(path.clone());
    }
    let version = server_version(bin_dir)?;
    let path = scratch::base_dir()?.join(format!(
        "template-{}-{:016x}",
        version_number(&version),
        fingerprint(&version, bin_dir, user)
    ));
    if !is_complete(&path) {
        build_locked(bin_dir, user, &path)?;
    }
    memo.insert(key, path.clone());
    Ok(path)
}

/// Output of `postgres --version`, e.g. `postgres (PostgreSQL) 15.13 (Debian 15.13-1)`.
fn server_version(bin_dir: &Path) -> Result<String, TestkitError> {
    let postgres = program(bin_dir, "postgres")?;
    let output = Command::new(&postgres)
        .arg("--version")
        .output()
        .map_err(TestkitError::io(format!(
            "run {} --version",
            postgres.display()
        )))?;
    if !output.status.success() {
        return Err(TestkitError::CommandFailed {
            program: format!("{} --version", postgres.display()),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The `15.13` in a version string, for a readable directory name.
fn version_number(version: &str) -> &str {
    version
        .split_whitespace()
        .find(|word| word.starts_with(|c: char| c.is_ascii_digit()))
        .unwrap_or("unknown")
}

/// FNV-1a over every input that shapes the template (stable across processes and builds,
/// unlike `DefaultHasher`'s unspecified algorithm).
fn fingerprint(version: &str, bin_dir: &Path, user: &ServerUser) -> u64 {
    let format = TEMPLATE_FORMAT.to_string();
    let bin = bin_dir.to_string_lossy();
    let mut parts = vec![
        format.as_str(),
        env!("CARGO_PKG_VERSION"),
        version,
        &bin,
        user.name(),
        TEMPLATE_CONF,
    ];
    parts.extend_from_slice(INITDB_ARGS);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

fn is_complete(template: &Path) -> bool {
    template.join("PG_VERSION").is_file()
}

/// Builds the template under a cross-process lock, unless another process just did.
fn build_locked(bin_dir: &Path, user: &ServerUser, template: &Path) -> Result<(), TestkitError> {
    // Not `with_extension`: the version in the name has a dot.
    let mut lock_path = template.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let lock_file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(TestkitError::io(format!("open {}", lock_path.display())))?;
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusive).map_err(|(_, errno)| {
        TestkitError::io(format!("lock {}", lock_path.display()))(errno.into())
    })?;
    if is_complete(template) {
        return Ok(());
    }
    let build_root = scratch::unique_dir(scratch::BUILD_PREFIX)?;
    let result = build(bin_dir, user, &build_root, template);
    let _ = fs::remove_dir_all(&build_root);
    result
}

/// Runs initdb in `build_root/data`, applies the template settings, renames it to `template`.
fn build(
    bin_dir: &Path,
    user: &ServerUser,
    build_root: &Path,
    template: &Path,
) -> Result<(), TestkitError> {
    let initdb = program(bin_dir, "initdb")?;
    user.chown(build_root)?;
    let data = build_root.join("data");
    tracing::info!(template = %template.display(), "building PostgreSQL template with initdb");
    let output = user
        .command(&initdb, build_root)
        .arg("-D")
        .arg(&data)
        .args(INITDB_ARGS)
        .output()
        .map_err(TestkitError::io(format!("run {}", initdb.display())))?;
    if !output.status.success() {
        return Err(TestkitError::CommandFailed {
            program: initdb.display().to_string(),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    append(&data.join("postgresql.conf"), TEMPLATE_CONF)?;
    match fs::rename(&data, template) {
        Ok(()) => Ok(()),
        // Another process (not holding the lock, e.g. an older testkit) won the race.
        Err(_) if is_complete(template) => Ok(()),
        Err(err) => Err(TestkitError::io(format!(
            "rename {} to {}",
            data.display(),
            template.display()
        ))(err)),
    }
}

/// Appends `text` to the file at `path`.
pub(crate) fn append(path: &Path, text: &str) -> Result<(), TestkitError> {
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(TestkitError::io(format!("append to {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_number_is_the_first_numeric_word() {
        assert_eq!(
            version_number("postgres (PostgreSQL) 15.13 (Debian 15.13-1.pgdg120+1)"),
            "15.13"
        );
        assert_eq!(version_number("garbage"), "unknown");
    }
}
