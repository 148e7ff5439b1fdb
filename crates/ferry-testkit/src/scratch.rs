//! The scratch directory every template and cluster lives under, and copying trees into it.
//!
//! The base is `$FERRY_TESTKIT_DIR`, else `/dev/shm/ferry-testkit-<uid>` when `/dev/shm` is
//! a writable directory, else `$TMPDIR/ferry-testkit-<uid>` (per user, because a base made by
//! root is not writable by anyone else). A cluster copy is ~1,000 files and on some disks
//! creating a file costs a millisecond, so copying to tmpfs is ~10x faster (0.1 s instead of
//! 1 s); the price is RAM (about 40 MB per running cluster, plus what the test writes), and
//! the template is rebuilt after a reboot. If the temp path is too long for a unix socket
//! (`sun_path` holds 107 bytes and the server puts `.s.PGSQL.<port>.lock` inside the cluster
//! directory) we fall back to `/tmp/ferry-testkit-<uid>`. Cluster directories
//! are named `c<pid>-<counter>-<random>`: unique across threads and processes without any
//! shared state. Because the pid is in the name, the first cluster of each process removes
//! directories left behind by processes that no longer exist (killed with SIGKILL, so their
//! `Drop` never ran).

use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::BuildHasher;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

use nix::errno::Errno;
use nix::unistd::{AccessFlags, Pid};

use crate::error::TestkitError;

/// Longest base path we accept: leaves room for `/c<pid>-<n>-<rand>/.s.PGSQL.65535.lock`.
const MAX_BASE_LEN: usize = 64;

/// Prefix of a cluster directory name.
pub(crate) const CLUSTER_PREFIX: &str = "c";
/// Prefix of a template being built (renamed away when complete).
pub(crate) const BUILD_PREFIX: &str = "b";

/// The base directory, created (mode 0755, so `postgres` can traverse it) if missing.
pub(crate) fn base_dir() -> Result<PathBuf, TestkitError> {
    let shm = Path::new("/dev/shm");
    let name = format!("ferry-testkit-{}", nix::unistd::Uid::effective());
    let base = match std::env::var_os("FERRY_TESTKIT_DIR") {
        Some(dir) => PathBuf::from(dir),
        None if shm.is_dir()
            && nix::unistd::access(shm, AccessFlags::W_OK | AccessFlags::X_OK).is_ok() =>
        {
            shm.join(&name)
        }
        None => {
            let preferred = std::env::temp_dir().join(&name);
            if preferred.as_os_str().len() <= MAX_BASE_LEN {
                preferred
            } else {
                Path::new("/tmp").join(&name)
            }
        }
    };
    match fs::DirBuilder::new().mode(0o755).create(&base) {
        Ok(()) => crate::process::set_mode(&base, 0o755)?,
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(TestkitError::io(format!("create {}", base.display()))(err)),
    }
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| remove_orphans(&base));
    Ok(base)
}

/// Creates a fresh, empty directory `<base>/<prefix><pid>-<counter>-<random>`.
pub(crate) fn unique_dir(prefix: &str) -> Result<PathBuf, TestkitError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = base_dir()?;
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let random = RandomState::new().hash_one(n) & 0xffff;
        let dir = base.join(format!("{prefix}{}-{n}-{random:04x}", std::process::id()));
        match fs::DirBuilder::new().mode(0o755).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(TestkitError::io(format!("create {}", dir.display()))(err)),
        }
    }
}

/// Removes cluster and build directories whose owning process is gone.
fn remove_orphans(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name
            .strip_prefix(CLUSTER_PREFIX)
            .or_else(|| name.strip_prefix(BUILD_PREFIX))
        else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if pid != Pid::this().as_raw()
            && nix::sys::signal::kill(Pid::from_raw(pid), None) == Err(Errno::ESRCH)
        {
            tracing::debug!(dir = %entry.path().display(), "removing orphaned test cluster directory");
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Copies the tree at `from` to `to` (which must not exist), keeping permission bits.
pub(crate) fn copy_tree(from: &Path, to: &Path) -> Result<(), TestkitError> {
    copy_tree_inner(from, to).map_err(TestkitError::io(format!(
        "copy {} to {}",
        from.display(),
        to.display()
    )))
}

fn copy_tree_inner(from: &Path, to: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(from)?;
    let file_type = meta.file_type();
    if file_type.is_dir() {
        fs::create_dir(to)?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            copy_tree_inner(&entry.path(), &to.join(entry.file_name()))?;
        }
        fs::set_permissions(to, meta.permissions())?;
    } else if file_type.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(from)?, to)?;
    } else {
        fs::copy(from, to)?;
    }
    Ok(())
}
