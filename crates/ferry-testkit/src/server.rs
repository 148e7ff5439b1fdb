//! The postmaster process of one cluster: launch, readiness, shutdown.
//!
//! A launch is ready when `postmaster.pid` (written by the server itself) names our child and
//! says `ready`, and a TCP connect to the port succeeds; only then can a test connect without
//! "the database system is starting up". If the child exits first we look at what it logged
//! since this launch: "Address already in use" means another process took the port between
//! our probe and the server's bind, which the caller can retry with a new port.
//!
//! Shutdown signals the postmaster (SIGINT = fast, SIGQUIT = immediate), waits, and falls
//! back to SIGKILL for the whole process group, so no backend outlives a cluster.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use crate::error::TestkitError;
use crate::process::{spawn_server, ServerUser};
use crate::template::program;

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a shutdown may take before we SIGKILL the process group.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);
/// Lines of server log quoted in errors.
const LOG_TAIL_LINES: usize = 40;

/// Everything needed to run the server of one cluster.
#[derive(Clone, Debug)]
pub(crate) struct ServerSpec {
    pub(crate) bin_dir: PathBuf,
    /// The cluster directory: holds `data/`, the unix socket and the CA certificates.
    pub(crate) root: PathBuf,
    pub(crate) data_dir: PathBuf,
    pub(crate) user: ServerUser,
}

impl ServerSpec {
    /// The server's stderr, appended to across restarts.
    pub(crate) fn log_path(&self) -> PathBuf {
        self.data_dir.join("server.log")
    }

    /// The whole server log (empty if it cannot be read).
    pub(crate) fn log(&self) -> String {
        fs::read(self.log_path())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// The last lines of the server log, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// Starts the server on `port` and waits until it accepts connections.
    ///
    /// On failure the child is gone (killed if it was still running).
    pub(crate) fn launch(&self, port: u16) -> Result<Child, TestkitError> {
        let postgres = program(&self.bin_dir, "postgres")?;
        let log_path = self.log_path();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(TestkitError::io(format!("open {}", log_path.display())))?;
        let log_start = log
            .metadata()
            .map_err(TestkitError::io(format!("stat {}", log_path.display())))?
            .len();
        let stderr = log.try_clone().map_err(TestkitError::io(format!(
            "duplicate {}",
            log_path.display()
        )))?;
        let mut cmd = self.user.command(&postgres, &self.root);
        cmd.arg("-D")
            .arg(&self.data_dir)
            .arg("-p")
            .arg(port.to_string())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr));
        let mut child =
            spawn_server(cmd).map_err(TestkitError::io(format!("start {}", postgres.display())))?;
        match self.wait_ready(&mut child, port, log_start) {
            Ok(()) => Ok(child),
            Err(err) => {
                let _ = shutdown(&mut child, Signal::SIGKILL);
                Err(err)
            }
        }
    }

    fn wait_ready(&self, child: &mut Child, port: u16, log_start: u64) -> Result<(), TestkitError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        loop {
            if let Some(status) = child
                .try_wait()
                .map_err(TestkitError::io("wait for postgres"))?
            {
                let log_tail = self.log_tail();
                if self.log_since(log_start).contains("Address already in use") {
                    return Err(TestkitError::PortTaken { port, log_tail });
                }
                return Err(TestkitError::StartExited { status, log_tail });
            }
            if self.pid_file_says_ready(child.id())
                && TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(TestkitError::StartTimeout {
                    port,
                    timeout_secs: START_TIMEOUT.as_secs(),
                    log_tail: self.log_tail(),
                });
            }
            thread::sleep(POLL);
        }
    }

    fn log_since(&self, offset: u64) -> String {
        let mut text = String::new();
        if let Ok(mut file) = fs::File::open(self.log_path()) {
            if file.seek(SeekFrom::Start(offset)).is_ok() {
                let _ = file.read_to_string(&mut text);
            }
        }
        text
    }

    /// Line 1 of postmaster.pid is the pid, line 8 the status (`starting`, `ready`, …).
    fn pid_file_says_ready(&self, pid: u32) -> bool {
        let Ok(text) = fs::read_to_string(self.data_dir.join("postmaster.pid")) else {
            return false;
        };
        let lines: Vec<&str> = text.lines().collect();
        lines.first().map(|line| line.trim()) == Some(pid.to_string().as_str())
            && lines.get(7).map(|line| line.trim()) == Some("ready")
    }
}

/// A port on 127.0.0.1 that was free a moment ago (the server may still lose a race for it).
pub(crate) fn free_port() -> Result<u16, TestkitError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(TestkitError::io("find a free port on 127.0.0.1"))
}

/// Stops the postmaster with `signal`, escalating to SIGKILL of its process group.
pub(crate) fn shutdown(child: &mut Child, signal: Signal) -> Result<(), TestkitError> {
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("pids fit in i32"));
    let exited = |child: &mut Child| {
        child
            .try_wait()
            .map(|status| status.is_some())
            .map_err(TestkitError::io("wait for postgres"))
    };
    if exited(child)? {
        return Ok(());
    }
    let _ = kill(pid, signal);
    let deadline = Instant::now() + STOP_TIMEOUT;
    while !exited(child)? {
        if Instant::now() > deadline || signal == Signal::SIGKILL {
            if signal != Signal::SIGKILL {
                tracing::warn!(%pid, ?signal, "postgres did not stop in time, killing it");
            }
            // The group id stays reserved while any member lives, even after we reap the
            // leader, so this cannot hit an unrelated process.
            let _ = killpg(pid, Signal::SIGKILL);
            child
                .wait()
                .map_err(TestkitError::io("wait for postgres"))?;
            // Backends orphaned by the SIGKILL must be gone before a restart, or the new
            // postmaster finds their shared memory still attached.
            let deadline = Instant::now() + Duration::from_secs(2);
            while killpg(pid, None) != Err(Errno::ESRCH) && Instant::now() < deadline {
                let _ = killpg(pid, Signal::SIGKILL);
                thread::sleep(POLL);
            }
            break;
        }
        thread::sleep(POLL);
    }
    Ok(())
}
