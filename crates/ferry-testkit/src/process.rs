//! Spawning PostgreSQL programs as the OS user that owns the cluster.
//!
//! `initdb` and `postgres` refuse to run as root. When the tests run as root we therefore set
//! the uid and gid of the child to the `postgres` user directly on the `Command` (no sudo or
//! runuser wrapper, so the pid we hold is the postmaster's), and hand it every directory the
//! server writes to. When not root, everything runs as the current user.
//!
//! The postmaster is started with `PR_SET_PDEATHSIG` so that a test process killed by a
//! signal (or by nextest's timeout) takes its servers with it. The kernel sends that signal
//! when the *thread* that forked the child exits, not the process, so all postmasters are
//! forked by one spawner thread that lives as long as the process; a cluster created in a
//! short-lived thread (tokio's blocking pool, a scoped thread) survives that thread.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::{Gid, Uid, User};

use crate::error::TestkitError;

/// Environment variables of libpq and the server that must not leak in from the developer's
/// shell: a stray `PGPORT` or `PGDATA` would silently point a test at the wrong server.
const PG_ENV: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGOPTIONS",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGDATA",
    "PGAPPNAME",
    "PGCLIENTENCODING",
    "PGTZ",
];

/// The OS user that runs `initdb` and `postgres`.
#[derive(Clone, Debug)]
pub(crate) struct ServerUser {
    name: String,
    /// `Some` when we must switch user (we are root), `None` to run as ourselves.
    ids: Option<(Uid, Gid)>,
}

impl ServerUser {
    /// The `postgres` user when running as root, the current user otherwise.
    pub(crate) fn resolve() -> Result<Self, TestkitError> {
        let euid = Uid::effective();
        if !euid.is_root() {
            let name = User::from_uid(euid)
                .ok()
                .flatten()
                .map_or_else(|| euid.to_string(), |user| user.name);
            return Ok(Self { name, ids: None });
        }
        match User::from_name("postgres") {
            Ok(Some(user)) => Ok(Self {
                name: user.name,
                ids: Some((user.uid, user.gid)),
            }),
            Ok(None) | Err(_) => Err(TestkitError::NoPostgresUser),
        }
    }

    /// The user name, part of the template cache key (templates differ in file ownership).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// A command for `program` that runs as this user in `cwd`, with no libpq environment.
    ///
    /// `cwd` matters: the inherited working directory may not be readable by `postgres`.
    pub(crate) fn command(&self, program: &Path, cwd: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(cwd).stdin(Stdio::null());
        for var in PG_ENV {
            cmd.env_remove(var);
        }
        if let Some((uid, gid)) = self.ids {
            // std drops supplementary groups when a root parent sets a uid.
            cmd.uid(uid.as_raw()).gid(gid.as_raw());
        }
        cmd
    }

    /// Hands `path` to this user (a no-op when not root).
    pub(crate) fn chown(&self, path: &Path) -> Result<(), TestkitError> {
        if let Some((uid, gid)) = self.ids {
            nix::unistd::chown(path, Some(uid), Some(gid)).map_err(|errno| {
                TestkitError::io(format!("chown {} to {}", path.display(), self.name))(
                    io::Error::from(errno),
                )
            })?;
        }
        Ok(())
    }

    /// Hands `root` and everything below it to this user (a no-op when not root).
    pub(crate) fn chown_tree(&self, root: &Path) -> Result<(), TestkitError> {
        if self.ids.is_none() {
            return Ok(());
        }
        self.chown(root)?;
        let meta = fs::symlink_metadata(root)
            .map_err(TestkitError::io(format!("stat {}", root.display())))?;
        if meta.is_dir() {
            let entries =
                fs::read_dir(root).map_err(TestkitError::io(format!("list {}", root.display())))?;
            for entry in entries {
                let entry = entry.map_err(TestkitError::io(format!("list {}", root.display())))?;
                self.chown_tree(&entry.path())?;
            }
        }
        Ok(())
    }
}

/// Sets the permission bits of `path`.
pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<(), TestkitError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(TestkitError::io(format!(
        "chmod {mode:o} {}",
        path.display()
    )))
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns a long-running server process that dies with this process.
///
/// The child gets its own process group (so the whole server, backends included, can be
/// killed at once) and `SIGQUIT` (immediate shutdown) as its parent-death signal.
pub(crate) fn spawn_server(mut cmd: Command) -> io::Result<Child> {
    let parent = nix::unistd::Pid::this();
    cmd.process_group(0);
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // calls are allowed. It makes two raw syscalls (prctl, getppid) and builds an io::Error
    // from a raw errno, which does not allocate. It captures only a Copy pid. It runs after
    // std has switched uid/gid, which matters because a credential change clears the
    // parent-death signal.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGQUIT).map_err(io::Error::from)?;
            // The parent may have died between fork and prctl; then nobody would signal us.
            if nix::unistd::getppid() != parent {
                return Err(io::Error::from(Errno::ESRCH));
            }
            Ok(())
        });
    }
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner()
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("the testkit spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("the testkit spawner thread did not answer"))?
}

/// The process-lifetime thread that forks every postmaster (see the module docs).
fn spawner() -> &'static mpsc::Sender<SpawnRequest> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("ferry-testkit-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    // The requester may have given up; nothing to do then.
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawn the ferry-testkit spawner thread");
        tx
    })
}
